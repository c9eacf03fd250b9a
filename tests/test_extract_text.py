"""Text helpers behind summaries and feed entries: HTML to text, sentences, hashes."""

from __future__ import annotations

import pytest

from crawler.text import html_to_text, normalise_space, sentences, shorten, summarise


@pytest.mark.parametrize("markup, text", [
    ("<p>Hello\nworld &amp; <b>all</b></p><p>Second <script>track()</script>para</p>",
     "Hello world & all\n\nSecond para"),
    ("Plain &amp; simple\ntext", "Plain & simple text"),
    ("line one<br>line two<br/>line three", "line one\nline two\nline three"),
    ("<ul><li>first</li><li>second</li></ul>", "first\nsecond"),
    ("<style>p {color: red}</style><p>visible</p><noscript>hidden</noscript>", "visible"),
    ("<p>unclosed <b>bold", "unclosed bold"),
    ("a < b and c > d", "a < b and c > d"),
    ("", ""),
    ("   ", ""),
    ("<p>\u00a0non\u00a0breaking\u00a0</p>", "non breaking"),
    ("<b>nul\x00 and\x01 bell\x07</b> text", "nul and bell text"),
])
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize("text, limit, expected", [
    ("Dr. Smith went to Washington. The U.S. Senate voted on Jan. 5 to fund it! Then what?",
     2, ["Dr. Smith went to Washington.", "The U.S. Senate voted on Jan. 5 to fund it!"]),
    ("The budget rose by 3.5 percent. It was approved.", 1, ["The budget rose by 3.5 percent."]),
    ("“We are ready,” said the minister. “The money is there.” More later.", 2,
     ["“We are ready,” said the minister.", "“The money is there.”"]),
    ("No full stop at all", 2, ["No full stop at all"]),
    ("First paragraph only.\nSecond paragraph is not a sentence of the first.", 2,
     ["First paragraph only."]),
    ("文部科学省は計画を発表した。公募は九月に始まる。詳細は後日。", 2,
     ["文部科学省は計画を発表した。", "公募は九月に始まる。"]),
    # an initial is no sentence end either
    ("Prof. J. Smith presented the plan. It was approved.", 1,
     ["Prof. J. Smith presented the plan."]),
    ("", 2, []),
])
def test_sentences(text: str, limit: int, expected: list[str]) -> None:
    assert sentences(text, limit) == expected


def test_summary_takes_two_short_sentences_or_one_long() -> None:
    assert summarise("The agency opened a call. It closes in May. Apply now.") == \
        "The agency opened a call. It closes in May."
    long_first = "The agency " + "really " * 25 + "opened a call."
    assert summarise(long_first + " It closes in May.") == long_first
    assert len(summarise("word " * 500)) <= 400
    # a short first sentence whose second does not fit stays whole, without a cut second
    too_long = "It " + "very " * 80 + "long."
    assert summarise("The agency opened a call. " + too_long) == "The agency opened a call."
    # no space after a Japanese full stop, as in the article
    assert summarise("政府は新しい戦略を発表した。予算は増える。研究者は歓迎した。") == \
        "政府は新しい戦略を発表した。予算は増える。"


def test_shorten_cuts_at_a_word() -> None:
    assert shorten("short", 10) == "short"
    assert shorten("exactly ten", 11) == "exactly ten"  # fits: no ellipsis
    assert shorten("the ministry announced a programme", 20) == "the ministry…"


def test_normalise_space_keeps_paragraphs() -> None:
    assert normalise_space("  a \t b \n\n\n\n c  \r\n d ") == "a b\n\nc\nd"


def test_normalise_space_composes_and_drops_invisible_characters() -> None:
    assert normalise_space("Forschungs\u00adförderung\u200b in Zu\u0308rich") == \
        "Forschungsförderung in Zürich"
