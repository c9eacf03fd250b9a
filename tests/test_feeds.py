"""Feed parsing: one fixture per case in tests/fixtures/feeds/ with <case>.expected.json beside it.

An expectation is either ``{"url", "error"}`` (parse_feed must raise FeedError with that text) or
``{"url", "title", "version", "bozo", "entries": [...]}`` where ``bozo`` is false, true or a
fragment of the recorded problem, and each entry lists only the fields the case is about.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
import re
import time

import pytest

from conftest import shared_data
from crawler.feeds import FeedError, parse_feed
from crawler.urls import canonicalize
from fuzz import mangle

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
CASES = sorted(p.name.removesuffix(".expected.json") for p in FEEDS.glob("*.expected.json"))
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_every_fixture_has_an_expectation() -> None:
    feeds = sorted(p.stem for p in FEEDS.glob("*.xml"))
    assert feeds == CASES
    assert len(CASES) >= 10  # a moved folder would leave test_feed_fixture nothing to run


@pytest.mark.parametrize("case", CASES)
def test_feed_fixture(case: str) -> None:
    expected = json.loads((FEEDS / f"{case}.expected.json").read_text("utf-8"))
    body = (FEEDS / f"{case}.xml").read_bytes()
    if "error" in expected:
        started = time.monotonic()
        with pytest.raises(FeedError) as raised:
            parse_feed(body, expected["url"], expected.get("headers"))
        assert expected["error"] in str(raised.value)
        assert expected["url"] in str(raised.value)  # the message names the feed
        assert time.monotonic() - started < 1.0
        return

    feed = parse_feed(body, expected["url"], expected.get("headers"))
    assert feed.title == expected["title"]
    assert feed.version == expected["version"]
    if expected["bozo"] is False:
        assert feed.bozo is None
    elif expected["bozo"] is True:
        assert feed.bozo
    else:
        assert expected["bozo"] in (feed.bozo or "")
    assert feed.skipped == expected.get("skipped", 0)
    assert len(feed.entries) == len(expected["entries"])
    for entry, want in zip(feed.entries, expected["entries"]):
        got = {key: getattr(entry, key) for key in want}
        assert got == want


@pytest.mark.parametrize("name", [
    "ajph_atypon_toc.rdf.xml", "guardian_us_general.rss.xml", "heise_de_general.atom.xml",
    "nasa_breaking_news_2018-07.rss.xml", "nyt_science_2020-02.rss.xml",
    "physorg_latest_2021-07.rss.xml", "science_aaas_twis_2017.rdf.xml",
    "sciencedaily_latest_2020-02.rss.xml",
])
def test_real_feed_captures(name: str) -> None:
    """Real captures (four of them not well-formed) parse into sane entries."""
    path = shared_data(f"feeds/{name}")
    feed = parse_feed(path.read_bytes(), f"https://feeds.example/{name}")
    assert feed.title
    assert len(feed.entries) > 5
    assert feed.version.startswith(("rss", "atom"))
    urls = [entry.url for entry in feed.entries]
    assert len(set(urls)) == len(urls)
    for entry in feed.entries:
        assert entry.url.startswith(("http://", "https://"))
        assert canonicalize(entry.url) == entry.url  # already canonical
        assert "utm_" not in entry.url and "#" not in entry.url
        assert entry.title and "<" not in entry.title
        assert "<p>" not in entry.summary and "<a " not in entry.summary
        assert entry.published_at is None or ISO_UTC.match(entry.published_at)
    assert sum(entry.published_at is not None for entry in feed.entries) >= len(feed.entries) // 2
    malformed = {"ajph_atypon_toc.rdf.xml", "nyt_science_2020-02.rss.xml",
                 "physorg_latest_2021-07.rss.xml", "sciencedaily_latest_2020-02.rss.xml"}
    assert (feed.bozo is not None) == (name in malformed)


def test_real_feed_counts_match_the_captures() -> None:
    """Entry counts as documented in feeds/SOURCE.txt (ScienceDaily repeats 22 links)."""
    counts = {
        "science_aaas_twis_2017.rdf.xml": 69, "physorg_latest_2021-07.rss.xml": 30,
        "guardian_us_general.rss.xml": 55, "ajph_atypon_toc.rdf.xml": 20,
        "nyt_science_2020-02.rss.xml": 42, "nasa_breaking_news_2018-07.rss.xml": 10,
    }
    for name, count in counts.items():
        feed = parse_feed(shared_data(f"feeds/{name}").read_bytes(), "https://feeds.example/")
        assert len(feed.entries) == count, name
    daily = parse_feed(shared_data("feeds/sciencedaily_latest_2020-02.rss.xml").read_bytes(),
                       "https://feeds.example/")
    assert len(daily.entries) + daily.skipped == 119


def test_bytes_that_name_a_local_file_are_not_opened(tmp_path: Path) -> None:
    """feedparser opens a str/bytes argument as a file name; parse_feed never lets it."""
    secret = tmp_path / "secret.xml"
    secret.write_bytes((FEEDS / "rss2.xml").read_bytes())
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed(str(secret).encode(), "https://evil.example/rss")


def test_scrapy_style_headers_are_accepted() -> None:
    """Header names and values as bytes, values as lists (scrapy.http.Headers)."""
    body = (FEEDS / "http_charset_cp1252.xml").read_bytes()
    feed = parse_feed(body, "https://cp.example/rss",
                      {b"Content-Type": [b"application/rss+xml; charset=windows-1252"]})
    assert feed.entries[0].summary == "Naïve café – dash"


def test_mangled_feeds_never_raise_anything_but_feed_error() -> None:
    """Fuzz (fixed seed): bytes cut, flipped and spliced with markup that breaks parsers."""
    rng = random.Random(3)
    feeds = [p.read_bytes() for p in sorted(FEEDS.glob("*.xml")) if p.stat().st_size < 4000]
    splices = [b"<", b">", b"&", b"<!DOCTYPE x [", b"]>", b"\x00", b'<!ENTITY a "b">',
               b"&#x0;", b"\xff\xfe", b"<![CDATA[", b'<?xml encoding="utf-16"?>', b"\x01"]
    for _ in range(150):
        body = mangle(rng, rng.choice(feeds), splices, max_cut=50)
        try:
            feed = parse_feed(body, "https://fuzz.example/rss")
        except FeedError:
            continue
        for entry in feed.entries:
            assert entry.url.startswith(("http://", "https://"))


def test_a_web_page_given_as_the_feed_names_the_feed_it_announces():
    """A newcomer copies the newsroom's address as the feed's: the error says where the feed is
    when the page's <head> names it, relative links resolved against the page."""
    page = (b'<!DOCTYPE html><html><head><title>Press releases</title>'
            b'<link rel="stylesheet" type="text/css" href="/s.css">'
            b'<link rel="alternate" type="application/rss+xml" title="News" href="../rss/news.xml">'
            b'</head><body><ul><li><a href="/a.html">A</a></li></ul></body></html>')
    with pytest.raises(FeedError) as caught:
        parse_feed(page, "https://www.example.go.jp/press/index.html",
                   {"Content-Type": "text/html; charset=utf-8"})
    assert str(caught.value) == (
        "The document at https://www.example.go.jp/press/index.html is not an RSS or Atom feed: "
        "it is an HTML page titled 'Press releases', which names its feed: "
        "https://www.example.go.jp/rss/news.xml (make that the source's url).")
    without = page.replace(b'rel="alternate"', b'rel="preload"')
    with pytest.raises(FeedError, match=r"titled 'Press releases'\.$"):
        parse_feed(without, "https://www.example.go.jp/press/index.html",
                   {"Content-Type": "text/html; charset=utf-8"})
