"""Small text helpers shared by feeds and extraction: HTML to plain text, whitespace, sentences."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any, Mapping
import unicodedata

import lxml.etree
import lxml.html

BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "table", "tr", "section", "article", "header", "footer", "figure", "figcaption", "dd", "dt",
})
LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd"})
DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "svg")

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


# Invisible characters that only break words apart for search: soft hyphens (German sites
# hyphenate with them), zero-width spaces and joiners, stray BOMs.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# C0 control characters other than tab/newline/return mean nothing in text, and lxml refuses them.
# C1 ones (U+0080-U+009F) mean nothing either, and a terminal may obey them: U+009B is CSI, so a
# feed title could clear or recolour the screen of an operator running `stiwatch search`.
_CONTROLS = dict.fromkeys([*(c for c in range(32) if chr(c) not in "\t\n\r"),
                           *range(0x80, 0xA0)])
_INVISIBLE.update(_CONTROLS)


def looks_like_html(body: bytes) -> bool:
    """Whether bytes start as an HTML document does (whatever their Content-Type says:
    application/octet-stream, text/plain from a misconfigured server, or a login page where a
    feed was); browsers show them as one too."""
    start = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head"))


def normalise_space(text: str) -> str:
    """NFC text with one space between words and no blank edges; newlines kept as breaks."""
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment (feed summaries are often HTML, sometimes not)."""
    markup = (markup or "").translate(_CONTROLS)
    if not markup.strip():
        return ""
    if "<" not in markup:
        return normalise_space(" ".join(html.unescape(markup).split("\n")))
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return normalise_space(html.unescape(re.sub(r"<[^>]*>", " ", markup)))
    for bad in root.iter(*DROP_TAGS):
        bad.drop_tree()
    for element in root.iter():
        # Line breaks inside the source are just spaces; only block elements break lines.
        if element.text:
            element.text = element.text.replace("\n", " ")
        if element.tail:
            element.tail = element.tail.replace("\n", " ")
    for element in root.iter():
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if tag in BLOCK_TAGS:
            element.tail = "\n" + (element.tail or "")
            if tag not in LINE_TAGS:  # paragraphs get a blank line; list items just a line
                element.text = "\n" + (element.text or "")
    return normalise_space(root.text_content())


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (with an ellipsis)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


# A sentence ends at . ! ? (or CJK full stops) followed by space and an upper-case/quote/digit
# start; abbreviations like "Dr." or "U.S." are not sentence ends.
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "co", "corp",
    "no", "fig", "e.g", "i.e", "u.s", "u.k", "e.u", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov", "sen", "rep", "min", "approx",
})
_SENTENCE_END = re.compile(r"([.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-ZÀ-ÖØ-Þ0-9])|([。！？])")


def sentences(text: str, limit: int) -> list[str]:
    """The first ``limit`` sentences of ``text`` (its first paragraph if sentences are unclear)."""
    paragraph = text.strip().split("\n", 1)[0].strip()
    found: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.end(1) if match.group(1) else match.end(2)
        piece = paragraph[start:end]
        last_word = piece.rsplit(None, 1)[-1].rstrip(".!?…").lower() if piece.split() else ""
        if match.group(1) == "." and (last_word in _ABBREVIATIONS or len(last_word) == 1):
            continue
        found.append(paragraph[start:match.end()].strip())
        start = match.end()
        if len(found) >= limit:
            return found
    rest = paragraph[start:].strip()
    if rest and len(found) < limit:
        found.append(rest)
    return found


def summarise(text: str, max_chars: int = 400) -> str:
    """The first one or two sentences of an article: two when the first is short, else one."""
    first = sentences(text, 2)
    if not first:
        return ""
    summary = first[0]
    if len(first) > 1 and len(summary) < max_chars // 3 \
            and len(summary) + 1 + len(first[1]) <= max_chars:
        # Chinese and Japanese put no space after a full stop: joining with one would give
        # the summary a space the article does not have.
        gap = "" if summary.endswith(("。", "！", "？")) else " "
        summary = f"{summary}{gap}{first[1]}"
    return shorten(summary, max_chars)


def normalised_for_hash(text: str) -> str:
    """The text as compared for exact duplicates: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hash(text: str) -> str:
    """SHA-256 (hex) of the normalised text, the store's exact-duplicate key; '' for no text."""
    normalised = normalised_for_hash(text)
    if not normalised:
        return ""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def plain_headers(headers: Mapping[Any, Any] | None) -> dict[str, str]:
    """Lower-cased str headers from a dict, Scrapy Headers (bytes, lists) or None."""
    plain: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        plain[str(name).lower()] = str(value)
    return plain
