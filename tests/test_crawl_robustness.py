"""Misbehaving servers cost bounded time and are recorded as that source's error; a failing
source never stops the others; exit codes 0 / 1 / 2."""

from __future__ import annotations

from contextlib import contextmanager
import gzip
import json
import time

from crawlsite import FAST, build_site, registry, rows

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>http://example.org/a</link></item></channel></rss>
"""


def _misbehaving(server):
    @server.route("/broken.xml")
    def error(handler):
        handler.send_body(500, b"oops")

    @server.route("/censored.xml")
    def censored(handler):
        handler.send_body(451, b"blocked here")

    @server.route("/hang.xml")
    def hang(handler):
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.1)
        handler.send_body(200, b"too late", "application/rss+xml")

    @server.route("/loop")
    def loop(handler):
        handler.send_redirect(f"/loop?n={len(server.requested('/loop'))}", 302)

    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))

    @server.route("/bomb.xml")
    def gzip_bomb(handler):
        handler.send_body(200, bomb, "application/rss+xml", {"Content-Encoding": "gzip"})

    huge = b"<rss version='2.0'><channel>" + b"<item><title>x</title></item>" * 120_000

    @server.route("/huge.xml")
    def huge_feed(handler):
        try:
            handler.send_body(200, huge, "application/rss+xml")
        except ConnectionError:
            pass  # the crawler hung up after the headers: that is the point

    @server.route("/recovered.xml")
    def malformed_but_usable(handler):
        feed = (server.root / "feed.xml").read_bytes()
        # A bare ampersand: not well-formed XML, but feedparser recovers the entries.
        feed = feed.replace(b"<title>Ministry of Science newsroom</title>",
                            b"<title>Science & Innovation newsroom</title>")
        handler.send_body(200, feed, "application/rss+xml")

    @server.route("/truncated.xml")
    def truncated(handler):
        body = (server.root / "feed.xml").read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.close_connection = True

    @server.route("/reset.xml")
    def reset(handler):
        handler.close_connection = True
        handler.connection.shutdown(2)

    @server.route("/laughs.xml")
    def laughs(handler):
        handler.send_body(200, BILLION_LAUGHS, "application/rss+xml")

    # An article that redirects back to itself through a second URL: without care the
    # repeated URL is dropped as already seen, and the article with it.
    for here, there in (("/articles/loop1.html", "/articles/loop2.html"),
                        ("/articles/loop2.html", "/articles/loop1.html")):
        server.redirect(here, there)


BROKEN = {
    "http500": ("/broken.xml", "HTTP 500 Internal Server Error"),
    "hanging": ("/hang.xml", "no response within 1 s"),
    "redirect-loop": ("/loop", "too many redirects"),
    "gzip-bomb": ("/bomb.xml", "response too large"),
    "huge": ("/huge.xml", "response too large"),
    "laughs": ("/laughs.xml", "entit"),
    "truncated": ("/truncated.xml", "connection closed before the response was complete"),
    "reset": ("/reset.xml", "connection closed without a response"),
    "not-a-feed": ("/listing.html", "not an RSS or Atom feed"),
    "missing": ("/nothing-here.xml", "HTTP 404 Not Found"),
    # a status Scrapy has no phrase for ("HTTP 451 Unknown Status") gets Python's
    "censored": ("/censored.xml", "HTTP 451 Unavailable For Legal Reasons"),
}
LIMITS = {**FAST, "STIWATCH_DOWNLOAD_TIMEOUT": "1", "STIWATCH_MAX_RESPONSE_SIZE": "1000000"}


def test_broken_sources_are_recorded_and_do_not_stop_the_others(stiwatch, http_server,
                                                                 tmp_path, db_path):
    base = build_site(http_server)
    _misbehaving(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "good", "kind": "feed", "url": f"{base}/feed.xml"},
        {"id": "recovered", "kind": "feed", "url": f"{base}/recovered.xml"},
        *({"id": source_id, "kind": "feed", "url": base + path}
          for source_id, (path, _) in BROKEN.items()),
    ])

    started = time.monotonic()
    result = stiwatch("crawl", "--sources", str(reg), env=LIMITS)
    elapsed = time.monotonic() - started

    assert result.exit_code == 0, result.output
    assert elapsed < 30  # bounded: the hanging server costs two 1 s timeouts, not 8 s each
    # The summary names every source; the broken ones with their error.
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert " ok " in lines["good"]
    sources = {row["id"]: row for row in rows(db_path, "SELECT * FROM sources")}
    assert sources["good"]["last_ok_at"] and sources["good"]["consecutive_failures"] == 0
    # A malformed feed that feedparser recovers is used, and the problem is kept on the source.
    recovered = sources["recovered"]
    assert recovered["last_ok_at"] and recovered["last_error"] is None
    assert recovered["last_flag"].startswith("malformed feed, recovered")
    assert " ok " in lines["recovered"] and "malformed feed" in lines["recovered"]
    for source_id, (_, error) in BROKEN.items():
        row = sources[source_id]
        assert error in (row["last_error"] or ""), (source_id, row["last_error"])
        assert row["consecutive_failures"] == 1 and row["failing_since"], source_id
        assert row["last_ok_at"] is None and row["last_crawled_at"], source_id
        assert "failed" in lines[source_id] and error[:20] in lines[source_id], lines[source_id]
    assert len(http_server.requested("/loop")) == 6  # the first request and 5 redirects
    assert len(http_server.requested("/hang.xml")) == 2  # retried once, then given up
    assert rows(db_path, "SELECT count(*) AS n FROM items WHERE status = 'complete'")[0]["n"] == 3
    [run] = rows(db_path, "SELECT * FROM crawl_runs")
    assert run["status"] == "partial"
    assert set(json.loads(run["stats"])["failed"]) == set(BROKEN)

    # Only failing sources: exit 1, and the failure count goes on.
    again = stiwatch("crawl", "--source", "http500", "--source", "missing", env=LIMITS)
    assert again.exit_code == 1
    health = {r["id"]: r for r in rows(db_path, "SELECT * FROM sources")}
    assert health["http500"]["consecutive_failures"] == 2
    assert health["http500"]["failing_since"] == sources["http500"]["failing_since"]
    assert rows(db_path, "SELECT status FROM crawl_runs ORDER BY id DESC")[0]["status"] == "failed"


def test_bad_input_exits_2(stiwatch, http_server, tmp_path):
    # An empty store: nothing to crawl.
    empty = stiwatch("crawl", env=FAST)
    assert empty.exit_code == 2 and "no enabled sources" in empty.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[[source]]\nid = "x"\nkind = "podcast"\n')
    invalid = stiwatch("crawl", "--sources", str(bad), env=FAST)
    assert invalid.exit_code == 2 and "kind" in invalid.output
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "good", "kind": "feed", "url": f"{base}/feed.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    unknown = stiwatch("crawl", "--source", "nope", env=FAST)
    assert unknown.exit_code == 2 and "nope" in unknown.output
    broken_env = stiwatch("crawl", env={**FAST, "STIWATCH_SCRAPY_SETTINGS": "{oops"})
    assert broken_env.exit_code == 2 and "STIWATCH_SCRAPY_SETTINGS" in broken_env.output
    # The escape hatch does not go round the settings' checks.
    for extra, message in [
        ({"DOWNLOAD_TIMEOUT": 0}, "STIWATCH_SCRAPY_SETTINGS sets DOWNLOAD_TIMEOUT, which is the "
         "setting download_timeout: set it as STIWATCH_DOWNLOAD_TIMEOUT or `download_timeout` "
         "in the config file, where it is checked"),
        ({"CONCURRENT_REQUESTS": 0},
         "STIWATCH_SCRAPY_SETTINGS: CONCURRENT_REQUESTS must be an integer of at least 1, not 0"),
        # docs/operations.md's two: "week" stored every page of a paused host partial with
        # "ValueError: could not convert string to float", a failed attempt each; -5 kept a
        # pause "to -5 s"
        ({"STIWATCH_MAX_HOST_PAUSE": "week"}, "STIWATCH_SCRAPY_SETTINGS: "
         "STIWATCH_MAX_HOST_PAUSE must be a number of seconds of at least 0, not 'week'"),
        ({"STIWATCH_MAX_RETRY_AFTER": -5}, "STIWATCH_SCRAPY_SETTINGS: "
         "STIWATCH_MAX_RETRY_AFTER must be a number of seconds of at least 0, not -5"),
    ]:
        refused = stiwatch("crawl", env={**FAST, "STIWATCH_SCRAPY_SETTINGS": json.dumps(extra)})
        assert refused.exit_code == 2 and message in refused.output, refused.output
    # A component Scrapy cannot load stops the crawler as it starts: said on one line (it was
    # "ended with status 0 before reporting; see the log above", and the log said nothing).
    unloadable = stiwatch("crawl", env={**FAST, "STIWATCH_SCRAPY_SETTINGS": json.dumps(
        {"ITEM_PIPELINES": {"nope.Pipeline": 100}})})
    assert unloadable.exit_code == 2
    assert unloadable.output.strip().splitlines()[-1] == (
        "Error: the crawler could not start: ModuleNotFoundError: No module named 'nope' "
        "(check the Scrapy settings of STIWATCH_SCRAPY_SETTINGS)")
    assert "Traceback" not in unloadable.output
    assert not http_server.requests  # nothing was fetched for bad input


def test_sources_that_failed_alike_share_one_mention_of_the_error(stiwatch, http_server,
                                                                    tmp_path):
    _misbehaving(http_server)
    reg = registry(tmp_path / "sources.toml", [
        # one route, three URLs: a registry refuses two enabled sources with one URL
        {"id": name, "kind": "feed", "url": http_server.url(f"/broken.xml?feed={name}")}
        for name in ("first", "second", "third")] + [
        {"id": "fourth", "kind": "feed", "url": http_server.url("/gone.xml")}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    result = stiwatch("-q", "crawl", env=FAST)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: every source failed: first, second, third (HTTP 500 Internal Server Error); "
        "fourth (HTTP 404 Not Found)")  # in name order, whichever finished first


def test_a_failed_crawl_of_many_sources_names_ten_and_counts_the_rest(stiwatch, http_server,
                                                                      tmp_path):
    """The cron mail of a crawl that reached nothing (the network down) names ten sources,
    not the whole registry, and says how many more failed."""
    _misbehaving(http_server)
    names = [f"source-{n:02d}" for n in range(1, 13)]
    reg = registry(tmp_path / "sources.toml", [
        # one route, a URL each: a registry refuses two enabled sources with one URL
        {"id": name, "kind": "feed", "url": http_server.url(f"/nothing-here.xml?feed={name}")}
        for name in names])
    result = stiwatch("-q", "crawl", "--sources", str(reg), env=FAST)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: every source failed: {', '.join(names[:10])} (HTTP 404 Not Found); and 2 more")


LOOPING_ENTRIES = """
  <item>
    <title>Ministry answers parliament on research security</title>
    <link>{base}/articles/loop1.html</link>
    <description>Questions on foreign funding of university labs.</description>
    <pubDate>Thu, 26 Nov 2026 08:00:00 GMT</pubDate>
  </item>
  <item>
    <title>Space agency moves its archive</title>
    <link>{base}/loop</link>
    <description>The archive gets a new address, again and again.</description>
  </item>
</channel>"""

ANSWERED = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Ministry answers parliament on research security</title></head><body><main><article>
<h1>Ministry answers parliament on research security</h1>
<p>The ministry answered a written question from parliament on foreign funding of university
laboratories, listing the agreements signed by public research institutes since 2020.</p>
<p>It said new guidelines on export controls and visiting researchers would be published in
the spring, after consultation with the rectors' conference and the research councils.</p>
<p>Opposition members asked for an independent review of agreements with partners in
countries under sanctions; the ministry said existing reviews were sufficient.</p>
</article></main></body></html>"""


def test_an_article_in_a_redirect_loop_is_kept_partial_and_retried(stiwatch, http_server,
                                                                    tmp_path, db_path):
    base = build_site(http_server)
    _misbehaving(http_server)
    feed = http_server.root / "feed.xml"
    feed.write_text(feed.read_text().replace("</channel>", LOOPING_ENTRIES.format(base=base)))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"}])
    loop1 = f"{base}/articles/loop1.html"

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    # Both looping articles (and the page robots.txt forbids) are partial, none is missing.
    assert (source["new"], source["partial"]) == (3, 3)
    items = {row["url"]: row for row in rows(db_path, "SELECT * FROM items")}
    assert len(items) == 6
    looping = items[loop1]
    assert (looping["status"], looping["fetch_error"]) == ("partial", "too many redirects")
    assert looping["title"] == "Ministry answers parliament on research security"
    assert looping["summary"] == "Questions on foreign funding of university labs."
    assert (looping["published_at"], looping["date_source"]) == ("2026-11-26T08:00:00Z", "feed")
    moving = items[f"{base}/loop"]
    assert (moving["status"], moving["fetch_error"]) == ("partial", "too many redirects")
    # Bounded: the first request and five redirects (REDIRECT_MAX_TIMES), not forever.
    assert len(http_server.requested("/articles/loop1.html")) == 3
    assert len(http_server.requested("/articles/loop2.html")) == 3

    # The feed is unchanged (a 304), yet the looping article is tried again, like any partial.
    again = json.loads(stiwatch("crawl", "--json", env=FAST).stdout)["sources"][0]
    # (the page robots.txt forbids is counted as such, not written again)
    assert again["status"] == "not_modified" and again["partial"] == 2
    assert again["robots_forbidden"] == 1
    assert len(http_server.requested("/articles/loop1.html")) == 6
    [looping] = rows(db_path, "SELECT * FROM items WHERE url = ?", (loop1,))
    assert looping["status"] == "partial" and looping["fetch_attempts"] == 2

    # --refresh fetches every entry again and keeps the looping ones.
    refreshed = json.loads(stiwatch("crawl", "--refresh", "--json", env=FAST).stdout)
    assert refreshed["sources"][0]["partial"] == 2
    assert rows(db_path, "SELECT count(*) AS n FROM items")[0]["n"] == 6

    # The site fixes its redirect: the next crawl completes the article in place.
    for path in ("/articles/loop1.html", "/articles/loop2.html"):
        del http_server.routes[path]
    (http_server.root / "articles").mkdir()
    (http_server.root / "articles" / "loop1.html").write_text(ANSWERED)
    fixed = json.loads(stiwatch("crawl", "--json", env=FAST).stdout)["sources"][0]
    assert fixed["updated"] == 1
    [done] = rows(db_path, "SELECT * FROM items WHERE url = ?", (loop1,))
    assert done["id"] == looping["id"] and done["status"] == "complete"
    assert done["fetch_error"] is None and "export controls" in done["body"]


@contextmanager
def _slow_site(tmp_path):
    """Another host (localhost, not 127.0.0.1) and its source: a listing of 4 pages that take
    1 s each to answer, two at a time."""
    from mockserver import MockServer

    (tmp_path / "other").mkdir()
    with MockServer(tmp_path / "other") as other:
        def page(handler):
            time.sleep(1)
            handler.send_body(200, f"<html><body><article><p>{handler.path} "
                              f"{'research funding ' * 80}</p></article></body></html>".encode())

        for n in range(4):
            other.routes[f"/p/{n}.html"] = page
        (tmp_path / "other" / "list.html").write_text(
            "<ul class='news'>" + "".join(f"<li><a href='/p/{n}.html'>{n}</a></li>"
                                          for n in range(4)) + "</ul>")
        yield other, {"id": "other", "kind": "html",
                      "url": f"http://localhost:{other.port}/list.html", "links": "ul.news a"}


def test_a_huge_feed_being_read_does_not_hold_other_sites(stiwatch, http_server, tmp_path,
                                                          db_path):
    """A feed of thousands of entries was read in the reactor's thread: for the seconds that
    took (20 s for 30,000 entries), no other site got a request or had its answer read."""
    entries = "".join(f"<item><title>Story {n}</title><link>/n/{n}.html</link><description>"
                      f"&lt;p&gt;Summary of story {n}, &lt;b&gt;with&lt;/b&gt; markup."
                      "&lt;/p&gt;</description></item>" for n in range(8000))
    feed = f"<rss version='2.0'><channel><title>All news</title>{entries}</channel></rss>"

    def slow_feed(handler):
        time.sleep(0.3)  # the other site's first pages are on their way by now
        handler.send_body(200, feed.encode(), "application/rss+xml")

    http_server.routes["/all.xml"] = slow_feed
    with _slow_site(tmp_path) as (other, other_source):
        reg = registry(tmp_path / "sources.toml", [
            {"id": "huge", "kind": "feed", "url": http_server.url("/all.xml")},
            other_source])
        env = {**FAST, "STIWATCH_MAX_NEW_ARTICLES_PER_SOURCE": "4"}
        assert stiwatch("crawl", "--sources", str(reg), env=env).exit_code == 0
        times = sorted(r.time for r in other.requests if r.path.startswith("/p/"))
    assert len(times) == 4
    # Two at a time (concurrent_requests_per_domain): the next two follow the first two's
    # answers (1 s), not the end of the feed's reading.
    assert times[2] - times[0] < 2.2, times
    assert len(rows(db_path, "SELECT id FROM items WHERE source_id = 'other' "
                             "AND status = 'complete'")) == 4


def test_a_pathological_page_being_extracted_does_not_hold_other_sites(stiwatch, http_server,
                                                                      tmp_path, db_path):
    """Article pages were extracted in the reactor's thread: a page of thousands of blocks
    (seconds of trafilatura and htmldate) held every other site's downloads for as long."""
    words = "research funding ministry innovation policy science council grant " * 3
    blocks = "".join(f"<div class='c{n % 7}'><p>{words}{n}</p><a href='/x/{n}'>link {n}</a>"
                     "</div>" for n in range(12000))  # 3 MB
    big = (f"<html lang='en'><head><title>Big</title></head><body><article><h1>Big page</h1>"
           f"{blocks}</article></body></html>").encode()
    sent = []

    def big_page(handler):
        handler.send_body(200, big)
        sent.append(time.monotonic())

    http_server.routes["/big.html"] = big_page
    (http_server.root / "big-list.html").write_text(
        "<ul class='news'><li><a href='/big.html'>big</a></li></ul>")
    with _slow_site(tmp_path) as (other, other_source):
        reg = registry(tmp_path / "sources.toml", [
            {"id": "big", "kind": "html", "url": http_server.url("/big-list.html"),
             "links": "ul.news a"},
            other_source])
        assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
        ended = time.monotonic()
        times = sorted(r.time for r in other.requests if r.path.startswith("/p/"))
    assert ended - sent[0] > 3  # the big page took seconds to extract
    assert len(times) == 4
    # Two at a time (concurrent_requests_per_domain): the next two follow the first two's
    # answers (1 s), not the end of the big page's extraction.
    assert times[2] - times[0] < 2.2, (times, ended - sent[0])
    [stored] = rows(db_path, "SELECT status, length(body) AS size FROM items "
                             "WHERE source_id = 'big'")
    assert stored["status"] == "complete" and stored["size"] > 2_000_000
    assert len(rows(db_path, "SELECT id FROM items WHERE source_id = 'other' "
                             "AND status = 'complete'")) == 4
