"""What a phone's inbox shows under the subject: the HTML body's first text (the preheader).
It was the banner and greeting ("STI policy digest Week 2026-W47 · 16–22 Nov 2026
(Asia/Tokyo) Hello ..."), which the subject already says; now it is the reader's top headlines,
hidden in the message itself."""

from __future__ import annotations

import email
from email import policy
from html.parser import HTMLParser

import pytest

from digeststore import G7_MEETING, JAPAN_SECURITY, build, story
from digest.send import compose, message_bytes, message_for, prepare_week
from digest.weeks import parse_week
from stiwatch.config import load_settings

WEEK = parse_week("2026-W47", "Asia/Tokyo")


class FirstText(HTMLParser):
    """The body's first text, and the style of the element it stands in."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_body, self.styles, self.first, self.style = False, [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.in_body = True
        elif self.in_body and tag not in ("br", "img", "meta"):
            self.styles.append(dict(attrs).get("style") or "")

    def handle_endtag(self, tag):
        if self.in_body and self.styles and tag not in ("br", "img", "meta"):
            self.styles.pop()

    def handle_data(self, data):
        if self.in_body and self.first is None and data.strip():
            self.first, self.style = data, (self.styles[-1] if self.styles else "")


@pytest.fixture
def store(db_path):
    s = build(db_path, [
        *G7_MEETING, *JAPAN_SECURITY,
        story("https://de-bmbf.example/f", "2026-11-19T08:00:00Z", source="de-bmbf",
              title="Bundesministerium fördert Forschungssicherheit an Hochschulen",
              areas=["research_security"], countries=["DE"], regions=["europe"], score=0.9),
    ])
    s.save_subscribers([{"email": "all@agency.example"},
                        {"email": "de@agency.example", "countries": ["DE"]}])
    return s


def first_text(store, reader):
    settings = load_settings(environ={"STIWATCH_MAIL_FROM": "STI Watch <d@agency.example>"})
    bundle = prepare_week(store, WEEK)
    digest = compose(bundle, store.get_subscriber(reader), settings)
    msg = email.message_from_bytes(message_bytes(message_for(bundle, digest, settings)),
                                   policy=policy.default)
    parser = FirstText()
    parser.feed(msg.get_payload()[0].get_payload()[1].get_content())
    return digest, parser


def test_the_inbox_preview_is_the_readers_top_headlines(store):
    digest, page = first_text(store, "all@agency.example")
    titles = [e.story.title for e in digest.headlines.entries]
    assert page.first.startswith(f"{titles[0]} · {titles[1]} · {titles[2]}")
    assert "Week 2026-W47" not in page.first
    # hidden in the message itself, Outlook included, and padded so that no body text follows
    assert "display:none" in page.style and "mso-hide:all" in page.style
    assert "\u034f\u200c\u00a0" in page.first


def test_a_filtered_reader_previews_their_own_stories(store):
    _, page = first_text(store, "de@agency.example")
    assert page.first.startswith("Bundesministerium fördert Forschungssicherheit an Hochschulen")

