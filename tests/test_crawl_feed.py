"""`stiwatch crawl` on a feed source, end to end into a real SQLite store: politeness, conditional
GET, incremental crawls, --refresh, and partial items that are completed on the next crawl."""

from __future__ import annotations

import json
from pathlib import Path
import sqlite3

from crawlsite import BRIEF_BACKOFF, FAST, build_site, registry, rows


def _feed(stiwatch, http_server, tmp_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"},
    ])
    return base, reg


def test_feed_source_end_to_end(stiwatch, http_server, tmp_path, db_path):
    base, reg = _feed(stiwatch, http_server, tmp_path)

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert report["cost"]["requests"] == 5  # robots.txt, the feed, three articles
    assert report["cost"]["robots_forbidden"] == 1 and report["cost"]["peak_memory_mb"] > 0
    [source] = report["sources"]
    assert (source["id"], source["status"], source["new"], source["partial"]) == \
        ("newsroom", "ok", 3, 1)
    items = {row["url"]: row for row in rows(db_path, "SELECT * FROM items")}
    # Tracking parameters are gone: one canonical URL per article.
    quantum = items[f"{base}/news/quantum.html"]
    assert quantum["status"] == "complete"
    assert quantum["title"] == "Ministry launches national quantum computing programme"
    assert "450 million euros" in quantum["body"]
    assert quantum["summary"] == "A ten-year programme for quantum computing."
    assert quantum["language"] == "en"
    # The feed's date wins, normalised to UTC (the feed said 09:00 +0100).
    assert (quantum["published_at"], quantum["date_source"]) == ("2026-11-23T08:00:00Z", "feed")
    assert items[f"{base}/news/budget.html"]["status"] == "complete"
    # robots.txt disallows /private/: never fetched, but the entry is kept from the feed.
    secret = items[f"{base}/private/secret.html"]
    assert (secret["status"], secret["fetch_error"]) == ("partial", "forbidden by robots.txt")
    assert secret["title"] == "Draft: not for crawlers" and secret["summary"] == "Delegates only."
    assert not http_server.requested("/private/secret.html")
    assert http_server.requested("/robots.txt")
    # Every request names stiwatch and the configured contact.
    agents = {r.headers.get("user-agent", "") for r in http_server.requests}
    assert agents and all("stiwatch/" in a and "ops@example.org" in a for a in agents)

    [health] = rows(db_path, "SELECT * FROM sources")
    assert health["last_ok_at"] and health["last_crawled_at"]
    assert health["consecutive_failures"] == 0 and health["last_error"] is None
    assert health["etag"]

    [run] = rows(db_path, "SELECT * FROM crawl_runs")
    assert run["status"] == "ok" and run["finished_at"]
    stats = json.loads(run["stats"])
    assert stats["new"] == 3 and stats["by_source"]["newsroom"]["partial"] == 1


def test_later_crawls_are_conditional_incremental_or_refreshed(stiwatch, http_server, tmp_path,
                                                               db_path):
    _, reg = _feed(stiwatch, http_server, tmp_path)
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    ids = {r["url"]: r["id"] for r in rows(db_path, "SELECT id, url FROM items")}

    # 1. Nothing changed: the stored ETag is sent, the server answers 304, nothing else fetched.
    first = len(http_server.requests)
    result = stiwatch("crawl", env=FAST)
    assert result.exit_code == 0, result.output
    second = http_server.requests[first:]
    [feed] = [r for r in second if r.path == "/feed.xml"]
    assert feed.headers.get("if-none-match")
    assert "not modified" in result.output
    assert not [r for r in second if r.path.startswith("/news/")]

    # 2. The feed changed (new ETag): the feed is read, but known articles are not fetched.
    path = http_server.root / "feed.xml"
    path.write_text(path.read_text().replace("<title>Ministry of Science newsroom</title>",
                                             "<title>Ministry of Science news</title>"))
    first = len(http_server.requests)
    report = json.loads(stiwatch("crawl", "--json", env=FAST).stdout)["sources"][0]
    assert report["status"] == "ok" and report["unchanged"] == 3 and report["new"] == 0
    assert not [r for r in http_server.requests[first:] if r.path.startswith("/news/")]

    # 3. --refresh: no conditional headers, every article fetched again, same rows and ids;
    # articles whose text did not change count as unchanged, not updated.
    first = len(http_server.requests)
    report = json.loads(stiwatch("crawl", "--refresh", "--json", env=FAST).stdout)["sources"][0]
    assert report["status"] == "ok" and report["new"] == 0
    assert (report["updated"], report["unchanged"]) == (0, 3)
    later = http_server.requests[first:]
    assert not [r for r in later if "if-none-match" in r.headers]
    assert len([r for r in later if r.path.startswith("/news/")]) == 3
    assert {r["url"]: r["id"] for r in rows(db_path, "SELECT id, url FROM items")} == ids

    # 4. One article's text changed: --refresh updates that one only.
    quantum = http_server.root / "news" / "quantum.html"
    quantum.write_text(quantum.read_text().replace("450 million euros", "480 million euros"))
    result = stiwatch("crawl", "--refresh", env=FAST)
    assert "0 new, 0 duplicates, 1 updated" in result.output and "2 unchanged" in result.output
    [body] = rows(db_path, "SELECT body FROM items WHERE url LIKE '%/news/quantum.html'")
    assert "480 million euros" in body["body"]
    runs = rows(db_path, "SELECT status FROM crawl_runs ORDER BY id")
    assert [r["status"] for r in runs] == ["ok"] * 5
    # The disallowed page, retried as a partial item while robots.txt was still being fetched,
    # was never requested (Scrapy's own middleware lets such concurrent waiters through).
    assert not http_server.requested("/private/secret.html")


def test_failed_article_is_kept_partial_and_completed_next_crawl(stiwatch, http_server, tmp_path,
                                                                 db_path):
    base, reg = _feed(stiwatch, http_server, tmp_path)

    @http_server.route("/news/flaky.html")
    def broken(handler):
        handler.send_body(500, b"<h1>Internal error</h1>")

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0
    assert json.loads(result.stdout)["sources"][0]["partial"] == 2  # flaky + robots-disallowed
    [flaky] = rows(db_path, "SELECT * FROM items WHERE url = ?", (f"{base}/news/flaky.html",))
    assert flaky["status"] == "partial"
    assert flaky["fetch_error"] == "HTTP 500 Internal Server Error"
    assert flaky["title"] == "Agency opens call for AI research infrastructure"
    assert flaky["summary"].startswith("Grants of up to twenty million euros")
    assert flaky["published_at"] == "2026-11-25T08:00:00Z"
    assert len(http_server.requested("/news/flaky.html")) == 2  # one retry (retry_times=1)

    del http_server.routes["/news/flaky.html"]
    result = stiwatch("crawl", "--json", env=FAST)

    assert json.loads(result.stdout)["sources"][0]["updated"] == 1
    [again] = rows(db_path, "SELECT * FROM items WHERE url = ?", (f"{base}/news/flaky.html",))
    assert again["id"] == flaky["id"]
    assert again["status"] == "complete" and again["fetch_error"] is None
    assert "twenty million euros per project" in again["body"]


def test_retries_back_off_and_honour_retry_after(stiwatch, http_server, tmp_path, db_path):
    base, reg = _feed(stiwatch, http_server, tmp_path)

    @http_server.route("/news/flaky.html")
    def once_busy(handler):
        if len(http_server.requested("/news/flaky.html")) == 1:
            handler.send_body(503, b"busy")
        else:
            handler.serve_file("/news/flaky.html")

    @http_server.route("/news/quantum.html")
    def rate_limited(handler):
        if len(http_server.requested("/news/quantum.html")) == 1:
            handler.send_body(429, b"slow down", headers={"Retry-After": "1"})
        else:
            handler.serve_file("/news/quantum.html")

    # (BRIEF_BACKOFF: the Retry-After is waited out in full, but not the 1 s delay the 429
    # and the 503 would then set for the host's other pages.)
    assert stiwatch("crawl", "--sources", str(reg), env=BRIEF_BACKOFF).exit_code == 0

    stored = {r["url"]: r for r in rows(db_path, "SELECT * FROM items")}
    assert stored[f"{base}/news/flaky.html"]["status"] == "complete"
    assert len(http_server.requested("/news/flaky.html")) == 2
    first, second = http_server.requested("/news/quantum.html")
    assert second.time - first.time >= 0.95
    assert stored[f"{base}/news/quantum.html"]["status"] == "complete"
    # (A Retry-After beyond the limit pauses the whole host: test_crawl_politeness.py.)


def test_a_page_that_never_works_is_given_up_after_the_attempt_limit(stiwatch, http_server,
                                                                     tmp_path, db_path):
    base, reg = _feed(stiwatch, http_server, tmp_path)

    @http_server.route("/news/flaky.html")
    def gone(handler):
        handler.send_body(404, b"gone")

    env = {**FAST, "STIWATCH_SCRAPY_SETTINGS": json.dumps({"STIWATCH_MAX_PARTIAL_ATTEMPTS": 2})}
    assert stiwatch("crawl", "--sources", str(reg), env=env).exit_code == 0
    assert stiwatch("crawl", env=env).exit_code == 0  # the feed is a 304: the retry alone
    feed = http_server.root / "feed.xml"  # the feed changes and still lists the page
    feed.write_text(feed.read_text().replace("newsroom</title>", "news</title>"))
    assert stiwatch("crawl", env=env).exit_code == 0
    [flaky] = rows(db_path, "SELECT * FROM items WHERE url = ?", (f"{base}/news/flaky.html",))
    # Kept from the feed, tried twice, then left alone (the feed still lists it).
    assert flaky["status"] == "partial" and flaky["fetch_attempts"] == 2
    assert len(http_server.requested("/news/flaky.html")) == 2



def test_a_page_robots_txt_forbids_counts_no_attempt_and_is_read_once_allowed(
        stiwatch, http_server, tmp_path, db_path):
    # Each crawl counted one more attempt of a page it never requested, so after
    # max_partial_attempts crawls it was given up as if failing, and never read even once
    # robots.txt allowed it.
    base, reg = _feed(stiwatch, http_server, tmp_path)
    env = {**FAST, "STIWATCH_SCRAPY_SETTINGS": json.dumps({"STIWATCH_MAX_PARTIAL_ATTEMPTS": 2})}
    for crawl in range(3):
        result = stiwatch("crawl", "--sources", str(reg), env=env)
        assert result.exit_code == 0, result.output
        # The summary says how many pages robots.txt kept the crawl from; the page is stored
        # partial once, not written again while robots.txt still forbids it.
        partial = 0 if crawl else 1
        assert f"{partial} partial, 1 forbidden by robots.txt," in result.output
    secret = f"{base}/private/secret.html"
    [row] = rows(db_path, "SELECT * FROM items WHERE url = ?", (secret,))
    assert (row["status"], row["fetch_error"], row["fetch_attempts"]) == (
        "partial", "forbidden by robots.txt", 0)
    [run] = rows(db_path, "SELECT stats FROM crawl_runs ORDER BY id DESC LIMIT 1")
    assert json.loads(run["stats"])["by_source"]["newsroom"]["robots_forbidden"] == 1

    (http_server.root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    result = stiwatch("crawl", "--json", env=env)
    assert json.loads(result.stdout)["sources"][0]["robots_forbidden"] == 0
    [row] = rows(db_path, "SELECT * FROM items WHERE url = ?", (secret,))
    assert row["status"] == "complete" and len(http_server.requested("/private/secret.html")) == 1


def _private_listing(http_server, tmp_path: Path, pages: int):
    """A source whose listing links ``pages`` pages under /private/, and the crawl's settings
    with a debug log; the third value counts the log's "Forbidden by robots.txt" lines since
    it was last called."""
    base = build_site(http_server)
    links = "".join(f"<li><a href='/private/{n}.html'>secret {n}</a></li>"
                    for n in range(pages))
    (http_server.root / "list.html").write_text(
        f"<html><body><ul class='news'>{links}</ul></body></html>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "closed", "kind": "html", "url": f"{base}/list.html", "links": "ul.news a"}])
    log_file = tmp_path / "stiwatch.log"
    env = {**FAST, "STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "DEBUG"}

    def forbidden_lines() -> int:
        lines = log_file.read_text().count("Forbidden by robots.txt: <GET")
        log_file.write_text("")
        return lines

    return reg, env, forbidden_lines


def test_pages_robots_txt_still_forbids_are_not_scheduled_again(stiwatch, http_server,
                                                                tmp_path, db_path):
    # Every crawl scheduled each stored page robots.txt had forbidden, for robots.txt to refuse
    # it again: a site disallowing 3,000 listed pages made a crawl with nothing new take 17 s,
    # with a "Forbidden by robots.txt" line per page in the log.
    reg, env, forbidden_lines = _private_listing(http_server, tmp_path, 60)
    result = stiwatch("crawl", "--sources", str(reg), env=env)
    assert "60 partial, 60 forbidden by robots.txt" in result.output
    assert forbidden_lines() == 60
    for _ in range(2):  # the listing is a 304 now: only the stored forbidden pages are left
        result = stiwatch("crawl", env=env)
        assert result.exit_code == 0, result.output
        assert "0 partial, 60 forbidden by robots.txt" in result.output
        assert forbidden_lines() == 0
    [run] = rows(db_path, "SELECT stats FROM crawl_runs ORDER BY id DESC LIMIT 1")
    assert json.loads(run["stats"])["robots_forbidden"] == 60  # `stiwatch status` shows it

    # robots.txt changes: the page it now allows is read, the others still are not asked.
    (http_server.root / "robots.txt").write_text(
        "User-agent: *\nAllow: /private/7.html\nDisallow: /private/\n")
    http_server.routes["/private/7.html"] = lambda handler: handler.serve_file("/news/budget.html")
    result = stiwatch("crawl", env=env)
    assert "59 forbidden by robots.txt" in result.output and "1 updated" in result.output
    assert forbidden_lines() == 0
    assert [r.path for r in http_server.requests if r.path.startswith("/private/")] == [
        "/private/7.html"]


def test_robots_txt_is_read_for_stiwatchs_own_group_when_fetching_and_when_scheduling(
        stiwatch, http_server, tmp_path):
    # The rules for "stiwatch" are not those for "*": a page is refused, and a stored refused
    # page held back or scheduled again, by the stiwatch group alone.
    reg, env, forbidden_lines = _private_listing(http_server, tmp_path, 3)
    for n in range(3):
        http_server.routes[f"/private/{n}.html"] = (
            lambda handler: handler.serve_file("/news/budget.html"))
    robots = http_server.root / "robots.txt"
    robots.write_text("User-agent: *\nAllow: /\n\nUser-agent: stiwatch\nDisallow: /private/\n")
    result = stiwatch("crawl", "--sources", str(reg), env=env)
    assert "3 partial, 3 forbidden by robots.txt" in result.output
    assert forbidden_lines() == 3
    result = stiwatch("crawl", env=env)  # a 304: held back, not sent to be refused again
    assert "0 partial, 3 forbidden by robots.txt" in result.output
    assert forbidden_lines() == 0

    robots.write_text("User-agent: *\nDisallow: /\n\n"
                      "User-agent: stiwatch\nAllow: /private/1.html\nDisallow: /private/\n")
    result = stiwatch("crawl", env=env)
    assert "2 forbidden by robots.txt" in result.output and "1 updated" in result.output
    assert forbidden_lines() == 0
    assert [r.path for r in http_server.requests if r.path.startswith("/private/")] == [
        "/private/1.html"]


def test_a_paused_hosts_forbidden_pages_are_counted_not_left_for_later(stiwatch, http_server,
                                                                       tmp_path):
    # A crawl that leaves a host alone (an earlier crawl's Retry-After) reads no robots.txt of
    # it: the stored pages robots.txt forbade were scheduled, stopped as paused, and reported
    # as "article pages left for the next crawl" rather than as forbidden.
    base, reg = _feed(stiwatch, http_server, tmp_path)
    assert "1 forbidden by robots.txt" in stiwatch("crawl", "--sources", str(reg),
                                                   env=FAST).output
    http_server.routes["/feed.xml"] = lambda handler: handler.send_body(
        429, b"later", headers={"Retry-After": "7200"})
    for _ in range(2):  # the crawl that is told to wait, and the next, which waits
        result = stiwatch("crawl", "--json", env=FAST)
        assert result.exit_code == 0, result.output
        [source] = json.loads(result.stdout)["sources"]
        assert source["status"] == "paused" and source["robots_forbidden"] == 1
        assert source["deferred"] == 0 and "left for the next crawl" not in source["flag"]


def test_a_gone_page_is_not_tried_again_and_a_missing_one_soon_given_up(stiwatch, http_server,
                                                                       tmp_path, db_path):
    # Every failed page was tried on 8 crawls: a 410 Gone, which the site sends on purpose,
    # and a 404 as often as a server that was down.
    base, reg = _feed(stiwatch, http_server, tmp_path)
    http_server.routes["/news/flaky.html"] = lambda handler: handler.send_body(410, b"gone")
    http_server.routes["/news/budget.html"] = lambda handler: handler.send_body(404, b"no")
    http_server.routes["/news/quantum.html"] = lambda handler: handler.send_body(503, b"busy")

    # BRIEF_BACKOFF: the 503 would hold each crawl's retry of it a second.
    assert stiwatch("crawl", "--sources", str(reg), env=BRIEF_BACKOFF).exit_code == 0
    for _ in range(4):  # the feed is a 304: the retries alone
        assert stiwatch("crawl", env=BRIEF_BACKOFF).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: (r["status"], r["fetch_error"], r["fetch_attempts"])
              for r in rows(db_path, "SELECT * FROM items")}
    assert stored["flaky.html"] == ("partial", "HTTP 410 Gone", 1)
    assert stored["budget.html"] == ("partial", "HTTP 404 Not Found", 3)
    assert stored["quantum.html"] == ("partial", "HTTP 503 Service Unavailable", 5)
    assert len(http_server.requested("/news/flaky.html")) == 1
    assert len(http_server.requested("/news/budget.html")) == 3


def test_an_article_sent_to_its_section_page_is_given_up_like_a_404():
    from crawler.spiders.base import attempts_allowed

    soft_404 = ("redirected to https://example.org/news/, a page above it: the article is gone")
    assert attempts_allowed(soft_404, 8) == attempts_allowed("HTTP 404 Not Found", 8) == 3
    assert attempts_allowed("HTTP 410 Gone", 8) == 1
    assert attempts_allowed("HTTP 404 Not Found", 2) == 2  # a lower limit still holds
    assert attempts_allowed("no response within 30 s", 8) == 8


UNDATED_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Undated newsroom</title><link>{base}/</link>
  <item><title>Committee on research infrastructure</title>
    <link>{base}/news/undated.html</link></item>
  <item><title>Observatory opens its archive</title>
    <link>{base}/news/future.html</link></item>
</channel></rss>"""

UNDATED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{meta}</head><body>
<main><article><h1>{title}</h1>
<p>{lead} brings together funding agencies, universities and national laboratories to plan
shared facilities and open them to outside users.</p>
<p>A roadmap of priority facilities follows, with a review of operating costs, which have grown
faster than construction budgets.</p>
<p>The first task is an inventory of computing, imaging and materials facilities.</p>
</article></main></body></html>"""


def test_a_refetch_keeps_the_first_seen_date_of_an_undated_article(stiwatch, http_server,
                                                                    tmp_path, db_path):
    base = build_site(http_server)
    (http_server.root / "undated.xml").write_text(UNDATED_FEED.format(base=base))
    news = http_server.root / "news"
    (news / "undated.html").write_text(UNDATED_PAGE.format(
        title="Committee on research infrastructure", meta="",
        lead="A standing committee on research infrastructure"))
    # A date beyond tomorrow is not believed: the article counts as undated.
    (news / "future.html").write_text(UNDATED_PAGE.format(
        title="Observatory opens its archive",
        meta='<meta property="article:published_time" content="2031-03-01T09:00:00Z">',
        lead="The observatory's archive"))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "undated", "kind": "feed", "url": f"{base}/undated.xml"}])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    stored = rows(db_path, "SELECT url, published_at, date_source FROM items ORDER BY url")
    assert [r["date_source"] for r in stored] == ["fetched", "fetched"]
    # First seen three weeks ago, as a weekly crawl would have stored them.
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE items SET published_at = '2026-11-06T07:00:00Z'")
    conn.close()

    report = json.loads(stiwatch("crawl", "--refresh", "--json", env=FAST).stdout)["sources"][0]

    # Same text, no date found again: unchanged, and still in the week it was first seen.
    assert (report["updated"], report["unchanged"]) == (0, 2)
    again = rows(db_path, "SELECT url, published_at, date_source FROM items ORDER BY url")
    assert [(r["published_at"], r["date_source"]) for r in again] == \
        [("2026-11-06T07:00:00Z", "fetched")] * 2

    # A real date on the page, once there, replaces the first-seen one.
    undated = news / "undated.html"
    undated.write_text(undated.read_text().replace(
        "</title>", '</title><meta property="article:published_time" '
                    'content="2026-11-20T10:00:00Z">'))
    report = json.loads(stiwatch("crawl", "--refresh", "--json", env=FAST).stdout)["sources"][0]
    assert (report["updated"], report["unchanged"]) == (1, 1)
    [dated] = rows(db_path, "SELECT * FROM items WHERE url = ?", (f"{base}/news/undated.html",))
    assert (dated["published_at"], dated["date_source"]) == ("2026-11-20T10:00:00Z", "page")


def test_refetching_unchanged_articles_leaves_them_classified(stiwatch, http_server, tmp_path,
                                                             db_path):
    """`crawl --refresh` reads every article again; those whose text did not change keep their
    tags and are not queued for the next `classify` (which would redo the whole store)."""
    _, reg = _feed(stiwatch, http_server, tmp_path)
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    assert stiwatch("-q", "classify", "--no-model").exit_code == 0
    waiting = "SELECT count(*) AS n FROM item_classification WHERE classified_at IS NULL"
    assert rows(db_path, waiting) == [{"n": 0}]
    result = stiwatch("crawl", "--refresh", env=FAST)
    assert result.exit_code == 0 and "3 unchanged" in result.output, result.output
    assert rows(db_path, waiting) == [{"n": 0}]
    assert rows(db_path, "SELECT count(*) AS n FROM items WHERE duplicate_of IS NOT NULL") == [
        {"n": 0}]
