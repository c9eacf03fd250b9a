"""The plain-text part as a reader of a plain-text mail client sees it: stories apart from one
another, and lines that fit a 78-column window (RFC 5322's "should") except where a single URL,
a `stiwatch search` command line or the Unsubscribe line must stay whole."""

from __future__ import annotations

import email
from email import policy
import unicodedata

import pytest

from digeststore import G7_MEETING, JAPAN_SECURITY, build, story
from digest.send import compose, message_bytes, message_for, prepare_week
from digest.weeks import parse_week
from stiwatch.config import load_settings

WEEK = parse_week("2026-W47", "Asia/Tokyo")
LONG_TITLE = ("Federal ministry and the national research foundation announce a joint "
              "programme on secure international cooperation in artificial intelligence")


@pytest.fixture
def store(db_path):
    stories = [
        *G7_MEETING, *JAPAN_SECURITY,
        story("https://de-bmbf.example/ki", "2026-11-18T08:00:00Z", source="de-bmbf",
              title=LONG_TITLE,
              summary="The programme funds joint projects with partners in Japan and Korea.",
              areas=["international", "research_security", "public_research", "governance"],
              domains=["ai", "quantum", "semiconductors"],
              countries=["DE", "JP", "KR", "US", "GB", "FR"],
              regions=["europe", "east_asia", "north_america"], score=0.95),
        story("https://de-bmbf.example/foerderung", "2026-11-19T08:00:00Z", source="de-bmbf",
              title="Bundesministerium fördert Forschungssicherheit an Hochschulen mit "
                    "Beratungsstellen für internationale Kooperationen",
              summary="Hochschulen erhalten Mittel für Beratungsstellen.",
              areas=["research_security"], countries=["DE"], regions=["europe"], score=0.9),
    ]
    s = build(db_path, stories)
    s.save_subscribers([
        {"email": "director@agency.example", "name": "Dr. Jürgen Müller",
         "areas": ["international", "research_security"], "domains": [],
         "countries": ["JP", "DE"], "regions": ["north_america", "east_asia"]},
        {"email": "all@agency.example"},
    ])
    return s


@pytest.fixture
def settings():
    return load_settings(environ={
        "STIWATCH_MAIL_FROM": "STI Watch <digest@agency.example>",
        "STIWATCH_LIST_UNSUBSCRIBE": "https://watch.agency.example/unsubscribe?email={email}"})


def plain_text(store, settings, reader: str) -> str:
    bundle = prepare_week(store, WEEK)
    digest = compose(bundle, store.get_subscriber(reader), settings)
    msg = email.message_from_bytes(message_bytes(message_for(bundle, digest, settings)),
                                   policy=policy.default)
    return msg.get_payload()[0].get_payload()[0].get_content().replace("\r\n", "\n")


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


@pytest.mark.parametrize("reader", ["director@agency.example", "all@agency.example"])
def test_every_story_and_heading_stands_apart(store, settings, reader):
    # A filtered reader's stories ran into one another: the "Why you got this" line ate the
    # blank line after each story, and the next "* title" or "== Section ==" followed at once.
    lines = plain_text(store, settings, reader).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(("* ", "== "))]
    assert len(starts) > 4
    for i in starts:
        assert lines[i - 1] == "", lines[i - 2:i + 1]


@pytest.mark.parametrize("reader", ["director@agency.example", "all@agency.example"])
def test_lines_fit_78_columns_but_urls_and_commands_stay_whole(store, settings, reader):
    text = plain_text(store, settings, reader)
    too_long = [line for line in text.splitlines() if columns(line) > 78
                and len(line.split()) > 1  # a lone URL cannot be broken
                and not line.lstrip().startswith("stiwatch search ")  # pasted whole
                and not line.startswith("Unsubscribe: ")]  # one line, as it always was
    assert too_long == []
    # Nothing lost to the wrapping: the long title, the intro and the reason read whole.
    flat = " ".join(text.split())
    assert f"* {LONG_TITLE}" in flat
    assert "https://de-bmbf.example/ki" in text.splitlines() or any(
        line.strip() == "https://de-bmbf.example/ki" for line in text.splitlines())
    if reader.startswith("director"):
        assert ("Filters: areas: International cooperation or Research security; and places: "
                "Japan or Germany or North America or East Asia." in flat)
        assert "Why you got this: area: International cooperation; area: Research security;" in flat
    assert "Unsubscribe: https://watch.agency.example/unsubscribe?email=" in text
