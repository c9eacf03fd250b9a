"""Politeness, as the server sees it: robots.txt and its Crawl-delay, the per-host delay, and
at most `concurrent_requests_per_domain` requests in flight."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import json
import sqlite3
import threading
import time

import pytest

from crawlsite import BRIEF_BACKOFF, FAST, build_site, registry, rows


def test_robots_crawl_delay_is_respected(stiwatch, http_server, tmp_path):
    base = build_site(http_server)
    (http_server.root / "robots.txt").write_text(
        "User-agent: *\nDisallow: /private/\nCrawl-delay: 0.5\n")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"}])

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    times = sorted(r.time for r in http_server.requests if r.path != "/robots.txt")
    assert len(times) == 4  # the feed and three articles
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    assert gaps[len(gaps) // 2] >= 0.48 and gaps[0] >= 0.4, gaps


def test_requests_waiting_for_robots_txt_obey_it_too(stiwatch, http_server, tmp_path):
    """Many requests to one host start before its robots.txt is in: none may skip the check."""
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": f"mirror-{n}", "kind": "feed", "url": f"{base}/feed.xml?copy={n}"}
        for n in range(4)
    ])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    # The second crawl starts with four listings and the stored partial (disallowed) article.
    assert stiwatch("crawl", env=FAST).exit_code == 0
    assert not http_server.requested("/private/secret.html")


def test_download_delay_spaces_requests_to_one_host(stiwatch, http_server, tmp_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"}])
    env = {**FAST, "STIWATCH_DOWNLOAD_DELAY": "0.4", "STIWATCH_AUTOTHROTTLE": "true"}

    assert stiwatch("crawl", "--sources", str(reg), env=env).exit_code == 0

    times = sorted(r.time for r in http_server.requests)
    assert len(times) == 5  # robots.txt, the feed, three articles
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    # Times are taken when the server's handler thread runs: allow for scheduling jitter.
    assert gaps[len(gaps) // 2] >= 0.38 and gaps[0] >= 0.3, gaps


def test_at_most_two_requests_in_flight_per_host(stiwatch, http_server, tmp_path):
    base = build_site(http_server)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    links = []

    def slow(handler):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        handler.serve_file("/news/budget.html")

    for n in range(8):
        http_server.routes[f"/slow/{n}.html"] = slow
        links.append(f'<li><a href="/slow/{n}.html">story {n}</a></li>')
    (http_server.root / "many.html").write_text(
        f"<html><body><ul class='news'>{''.join(links)}</ul></body></html>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "many", "kind": "html", "url": f"{base}/many.html", "links": "ul.news a"}])

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    assert state["max"] == 2


@pytest.mark.parametrize("autothrottle", ["false", "true"])
def test_a_retry_after_pauses_the_host_then_its_delay_comes_back(stiwatch, http_server, tmp_path,
                                                                 autothrottle):
    # One 429 with Retry-After: 2 became the host's delay for the rest of the crawl: each of
    # the next ten article pages waited 2 s (20 s where the host asked for 2).
    base = build_site(http_server)
    answered = []

    def article(handler):
        if not answered:
            answered.append(time.monotonic())
            handler.send_body(429, b"slow down", headers={"Retry-After": "2"})
        else:
            handler.serve_file("/news/budget.html")

    reg = _listing_of(http_server, tmp_path, base, article, 12)

    env = {**FAST, "STIWATCH_AUTOTHROTTLE": autothrottle}
    assert stiwatch("crawl", "--sources", str(reg), env=env).exit_code == 0

    times = sorted(r.time for r in http_server.requests if r.path.startswith("/a/"))
    assert len(times) == 13  # twelve pages and the retry
    # Requests already on their way when the 429 came are answered; then the host rests 2 s.
    later = [t for t in times if t > answered[0] + 0.3]
    assert later[0] - answered[0] >= 1.9
    # Then no more than a doubled delay (1 s, from 0), halved back with each answer (by
    # AutoThrottle when it is on).
    gaps = [b - a for a, b in zip(later, later[1:])]
    assert gaps[0] >= 0.9 and max(gaps) < 1.5 and later[-1] - later[0] < 3.5, gaps


def _listing_of(http_server, tmp_path, base, article, count):
    """A registry of one source, "many": an HTML listing of ``count`` pages /a/N.html, each
    answered by ``article``."""
    for n in range(count):
        http_server.routes[f"/a/{n}.html"] = article
    links = "".join(f"<li><a href='/a/{n}.html'>story {n}</a></li>" for n in range(count))
    (http_server.root / "many.html").write_text(
        f"<html><body><ul class='news'>{links}</ul></body></html>")
    return registry(tmp_path / "sources.toml", [
        {"id": "many", "kind": "html", "url": f"{base}/many.html", "links": "ul.news a"}])


def _story(n: int) -> bytes:
    words = " ".join(f"measure{n}x{k}" for k in range(120))
    return (f"<html lang='en'><head><title>Story {n}</title></head><body><article>"
            f"<h1>Story {n}</h1><p>The ministry of science announced programme {n}. {words}</p>"
            "</article></body></html>").encode()


def _busy_articles(retry_after: str):
    """A handler of article pages answering 429 with ``retry_after`` while ``busy["on"]``, the
    story after; and that switch."""
    busy = {"on": True}

    def article(handler):
        if busy["on"]:
            handler.send_body(429, b"too busy", headers={"Retry-After": retry_after})
        else:
            handler.send_body(200, _story(int(handler.path.rsplit("/", 1)[1].split(".")[0])))

    return busy, article


def test_a_retry_after_beyond_the_limit_pauses_the_host_until_the_next_crawl(
        stiwatch, http_server, tmp_path, db_path):
    # A 429 with Retry-After: 86400 gave that one page up, and the crawl went on asking the
    # host for each of its other pages, each stored partial as a failed attempt.
    base = build_site(http_server)
    busy, article = _busy_articles("86400")

    reg = _listing_of(http_server, tmp_path, base, article, 6)
    log_file = tmp_path / "stiwatch.log"
    env = {**FAST, "STIWATCH_DOWNLOAD_DELAY": "0.2", "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1",
           "STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"}

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=env)
    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    assert len([r for r in http_server.requests if r.path.startswith("/a/")]) == 1
    # Nothing failed: no page is stored as a failed attempt; all twelve wait, and say why.
    assert rows(db_path, "SELECT url FROM items") == []
    assert source["status"] == "ok" and source["deferred"] == 6 and source["partial"] == 0
    assert source["flag"].startswith("6 article pages left for the next crawl: 127.0.0.1 asked "
                                     "for a pause of 86400 s (Retry-After): paused until ")
    [line] = [line for line in log_file.read_text().splitlines() if "asked for a pause" in line]
    assert "nothing more is fetched from it this crawl" in line

    busy["on"] = False  # the next day, once the pause it asked for is over
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE host_pauses SET not_before = '2000-01-01T00:00:00Z'")
    assert stiwatch("crawl", env=env).exit_code == 0
    stored = rows(db_path, "SELECT status, fetch_attempts FROM items")
    assert len(stored) == 6
    assert all(r["status"] == "complete" and r["fetch_attempts"] == 1 for r in stored)


def test_a_long_retry_after_is_kept_for_the_crawls_that_start_before_it_ends(
        stiwatch, http_server, tmp_path, db_path):
    # A host that answered "Retry-After: 7200" was left alone for the rest of that crawl only:
    # the crawl cron started an hour later asked it again, listing, robots.txt and pages.
    base = build_site(http_server)
    busy, article = _busy_articles("7200")

    reg = _listing_of(http_server, tmp_path, base, article, 4)
    env = {**FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1"}
    started = datetime.now(timezone.utc)
    result = stiwatch("crawl", "--sources", str(reg), env=env)
    assert result.exit_code == 0, result.output
    [pause] = rows(db_path, "SELECT * FROM host_pauses")
    until = datetime.fromisoformat(pause["not_before"].replace("Z", "+00:00"))
    assert pause["host"] == "127.0.0.1"
    assert timedelta(seconds=7190) < until - started < timedelta(seconds=7220)
    assert f"paused until {pause['not_before']}" in result.output

    busy["on"] = False  # the host is fine again, but asked for two hours: an hour later...
    sent = len(http_server.requests)
    result = stiwatch("crawl", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert len(http_server.requests) == sent  # nothing at all, not even robots.txt
    [source] = json.loads(result.stdout)["sources"]
    assert source["status"] == "paused"
    assert source["flag"] == ("127.0.0.1 asked for a pause of 7200 s (Retry-After): paused "
                              f"until {pause['not_before']}")
    result = stiwatch("crawl", env=env)
    assert f"paused until {pause['not_before']}" in result.output
    assert "1 of 1 source crawled" in result.output  # the host's wish, not a failure
    [health] = rows(db_path, "SELECT consecutive_failures FROM sources")
    assert health["consecutive_failures"] == 0
    status = stiwatch("status").output  # where the operator looks first
    assert "Hosts paused at their request (Retry-After), not asked until then: 1" in status
    line = next(line for line in status.splitlines() if line.startswith("127.0.0.1"))
    assert pause["not_before"] in line and "asked for a pause of 7200 s" in line

    # Two hours on, the host is asked again, and the pause is forgotten.
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE host_pauses SET not_before = '2000-01-01T00:00:00Z'")
    result = stiwatch("crawl", "--json", env=env)
    assert json.loads(result.stdout)["sources"][0]["new"] == 4
    assert rows(db_path, "SELECT * FROM host_pauses") == []


def test_no_request_reaches_a_host_after_its_long_retry_after_without_a_delay(
        stiwatch, http_server, tmp_path, db_path):
    # With one request at a time and no download delay, one more article was sent to the host
    # after its "429, Retry-After: 7200": Scrapy frees the download slot (and sends the next
    # queued request) before the downloader middlewares see the answer.
    base = build_site(http_server)
    busy, article = _busy_articles("7200")
    reg = _listing_of(http_server, tmp_path, base, article, 6)
    env = {**FAST, "STIWATCH_DOWNLOAD_DELAY": "0", "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1"}

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=env)
    assert result.exit_code == 0, result.output
    assert len([r for r in http_server.requests if r.path.startswith("/a/")]) == 1
    [source] = json.loads(result.stdout)["sources"]
    assert source["deferred"] == 6 and source["partial"] == 0
    assert rows(db_path, "SELECT url FROM items") == []


def test_a_retry_after_of_years_pauses_the_host_a_week_at_most(stiwatch, http_server, tmp_path,
                                                              db_path):
    # Kept between crawls, a misconfigured "Retry-After: 999999999" would silence the source
    # for 31 years, reported "paused" by every crawl.
    base = build_site(http_server)
    reg = _listing_of(http_server, tmp_path, base, lambda handler: handler.send_body(
        503, b"maintenance", headers={"Retry-After": "999999999"}), 2)
    started = datetime.now(timezone.utc)
    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)
    assert result.exit_code == 0, result.output
    [pause] = rows(db_path, "SELECT * FROM host_pauses")
    until = datetime.fromisoformat(pause["not_before"].replace("Z", "+00:00"))
    assert timedelta(days=7) <= until - started < timedelta(days=7, seconds=30)
    assert json.loads(result.stdout)["sources"][0]["flag"].endswith(
        "asked for a pause of 999999999 s (Retry-After), kept to 604800 s "
        f"(STIWATCH_MAX_HOST_PAUSE): paused until {pause['not_before']}")


def test_a_retry_after_of_hundreds_of_digits_is_reported_in_words(stiwatch, http_server,
                                                                  tmp_path, db_path):
    # "Retry-After: 1000...0" (400 digits) is float inf: the pause was kept to a week, but the
    # note read "asked for a pause of inf s (Retry-After), kept to 604800 s".
    base = build_site(http_server)
    huge = "1" + "0" * 399
    reg = _listing_of(http_server, tmp_path, base, lambda handler: handler.send_body(
        503, b"maintenance", headers={"Retry-After": huge}), 2)
    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)
    assert result.exit_code == 0, result.output
    [pause] = rows(db_path, "SELECT * FROM host_pauses")
    flag = json.loads(result.stdout)["sources"][0]["flag"]
    assert "inf" not in flag and "inf" not in pause["reason"]
    assert flag.endswith(
        "asked for a pause of over 30000 years (Retry-After: 100000000000…), kept to 604800 s "
        f"(STIWATCH_MAX_HOST_PAUSE): paused until {pause['not_before']}")
    assert len(flag) < 200


def test_a_garbled_retry_after_is_no_retry_after(stiwatch, http_server, tmp_path, db_path):
    # "Retry-After: ²" (byte 0xb2) passed str.isdigit() but not float(): each page failed with
    # "ValueError: could not convert string to float: '²'", a fetch attempt lost, and on
    # robots.txt the whole site went uncrawled. It is retried with backoff, as "garbage" is.
    base = build_site(http_server)
    answered = set()

    def article(handler):
        if handler.path not in answered:
            answered.add(handler.path)
            handler.send_body(429, b"slow down", headers={"Retry-After": "\u00b2"})
        else:
            handler.send_body(200, _story(int(handler.path.rsplit("/", 1)[1].split(".")[0])))

    reg = _listing_of(http_server, tmp_path, base, article, 2)
    # BRIEF_BACKOFF: each 429 would double the host's delay (1 s, then 2 s) before the retries.
    result = stiwatch("crawl", "--sources", str(reg), "--json", env=BRIEF_BACKOFF)
    assert result.exit_code == 0, result.output
    assert "ValueError" not in result.output
    stored = rows(db_path, "SELECT status, fetch_error FROM items")
    assert stored == [{"status": "complete", "fetch_error": None}] * 2


def test_an_unchanged_source_whose_pages_fail_and_whose_host_pauses_says_both(
        stiwatch, http_server, tmp_path, db_path):
    # A 304 listing, its stored partial pages retried: one still refused, the other answered
    # "Retry-After: 86400". The source was recorded once as unreadable, and its note lost the
    # pause: nothing said that page waits, nor until when.
    base = build_site(http_server)
    crawl = {"n": 1}
    listed, refused = threading.Event(), threading.Event()

    def article(handler):
        if crawl["n"] == 2 and handler.path == "/a/1.html":
            # The listing's 304 and the other page's answer first, whatever order they are
            # sent in: the pause would hold them back.
            listed.wait(10)
            refused.wait(10)
            handler.send_body(429, b"too busy", headers={"Retry-After": "86400"})
            return
        handler.send_body(403, b"<title>Access denied</title>")
        if crawl["n"] == 2:
            refused.set()

    def listing(handler):
        handler.serve_file("/many.html")
        if crawl["n"] == 2:
            listed.set()

    reg = _listing_of(http_server, tmp_path, base, article, 2)
    http_server.routes["/many.html"] = listing
    env = {**FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "2"}
    assert stiwatch("crawl", "--sources", str(reg), env=env).exit_code == 0
    assert len(rows(db_path, "SELECT url FROM items WHERE status = 'partial'")) == 2

    crawl["n"] = 2
    result = stiwatch("crawl", "--json", env=env)

    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    [pause] = rows(db_path, "SELECT * FROM host_pauses")
    unreadable = "could not read its article page (HTTP 403 Forbidden)"
    waiting = ("1 article page left for the next crawl: 127.0.0.1 asked for a pause of 86400 s "
               f"(Retry-After): paused until {pause['not_before']}")
    assert source["status"] == "not_modified"
    assert unreadable in source["flag"] and waiting in source["flag"]
    [stored] = rows(db_path, "SELECT last_flag, consecutive_failures FROM sources")
    assert stored == {"last_flag": source["flag"], "consecutive_failures": 0}
