"""Hostile crawled sites: what a feed or a redirect may not make the crawler fetch and store.

Each test serves a real HTTP server on 127.0.0.1 and crawls it through `stiwatch crawl`.
"""

from __future__ import annotations

from crawlsite import FAST, registry, rows
from test_crawl_misbehaving import article, rss

SECRET = "Internal admin console: database password hunter2 and the staff list."


def _serve_secret(http_server) -> None:
    for path in ("/admin.html", "/secret.html"):
        http_server.route(path)(lambda handler: handler.send_body(
            200, article("Internal admin console", SECRET)))


def test_feed_links_and_redirects_to_this_machine_are_refused(stiwatch, http_server, tmp_path,
                                                              db_path):
    # A source on `localhost` whose feed links (directly, and through a redirect on its own
    # site) to 127.0.0.1: an address on the crawler's machine that no source lives on.
    # Before, both pages were fetched and stored, to be searched and mailed to staff.
    port = http_server.url("").rstrip("/").rsplit(":", 1)[1]
    outside = f"http://localhost:{port}"
    inside = f"http://127.0.0.1:{port}"
    _serve_secret(http_server)
    http_server.redirect("/go", f"{inside}/secret.html", status=302)
    http_server.route("/news.html")(lambda handler: handler.send_body(
        200, article("Agency reviews its open access mandate", "The agency asked grant holders "
                     "for comments on its open access mandate, in force since last year.")))
    feed = rss([f"<item><title>Budget</title><link>{outside}/news.html</link></item>",
                f"<item><title>Press kit</title><link>{outside}/go</link></item>",
                f"<item><title>Admin</title><link>{inside}/admin.html</link></item>",
                # 127.0.0.1 in the old numeric spelling the resolver still reads
                f"<item><title>Numeric</title><link>http://2130706433:{port}/admin.html</link>"
                "</item>"])
    http_server.route("/feed.xml")(
        lambda handler: handler.send_body(200, feed, "application/rss+xml"))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "outside", "kind": "feed", "url": f"{outside}/feed.xml"}])

    result = stiwatch("crawl", "--sources", str(reg), env=FAST)

    assert result.exit_code == 0, result.output
    assert http_server.requested("/secret.html") == []
    assert http_server.requested("/admin.html") == []
    stored = {r["title"]: r for r in rows(db_path, "SELECT title, status, body, fetch_error "
                                          "FROM items")}
    assert stored["Agency reviews its open access mandate"]["status"] == "complete"
    for title, host in (("Press kit", "127.0.0.1"), ("Admin", "127.0.0.1"),
                        ("Numeric", "2130706433")):
        assert stored[title]["status"] == "partial"
        assert stored[title]["body"] is None
        assert f"{host} is an address on this machine" in stored[title]["fetch_error"]


def test_a_name_that_resolves_to_this_machine_is_not_stored(stiwatch, http_server, tmp_path,
                                                            db_path):
    # The feed's host is 127.0.0.1 (the operator registered it), but an article link names
    # another host that resolves there: the answer must not reach the store.
    base = http_server.url("").rstrip("/")
    port = base.rsplit(":", 1)[1]
    _serve_secret(http_server)
    feed = rss([f"<item><title>Admin</title><link>http://localhost:{port}/secret.html</link>"
                "</item>"])
    http_server.route("/feed.xml")(
        lambda handler: handler.send_body(200, feed, "application/rss+xml"))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "inside", "kind": "feed", "url": f"{base}/feed.xml"}])

    result = stiwatch("crawl", "--sources", str(reg), env=FAST)

    assert result.exit_code == 0, result.output
    [item] = rows(db_path, "SELECT status, body, fetch_error FROM items")
    assert item["status"] == "partial" and item["body"] is None
    assert "resolves to 127.0.0.1" in item["fetch_error"]
    assert not any(SECRET in (r["body"] or "") for r in rows(db_path, "SELECT body FROM items"))


def test_an_endless_page_without_a_length_is_too_large_and_not_fetched_again(
        stiwatch, http_server, tmp_path, db_path):
    # A page sent without Content-Length (chunked, or until the connection closes) that runs
    # past max_response_size was cut off as "DownloadCancelledError": not the "response too
    # large" a page with a Content-Length gets, so it was downloaded up to the limit again on
    # every crawl (8 times) instead of waiting for the limit to change.
    base = http_server.url("").rstrip("/")

    @http_server.route("/endless.html")
    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.end_headers()
        handler.close_connection = True
        try:
            for _ in range(200):
                handler.wfile.write(b"<p>" + b"research policy " * 1000 + b"</p>")
        except OSError:
            pass  # the crawler hung up, as it should

    feed = rss([f"<item><title>Endless</title><link>{base}/endless.html</link></item>"])
    http_server.route("/feed.xml")(
        lambda handler: handler.send_body(200, feed, "application/rss+xml"))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "endless", "kind": "feed", "url": f"{base}/feed.xml"}])
    env = {**FAST, "STIWATCH_MAX_RESPONSE_SIZE": "50000"}

    first = stiwatch("crawl", "--sources", str(reg), env=env)
    second = stiwatch("crawl", "--sources", str(reg), env=env)

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "response too large (over the 50,000 byte limit)" in first.output
    [item] = rows(db_path, "SELECT status, fetch_error FROM items")
    assert (item["status"], item["fetch_error"]) == (
        "partial", "response too large (over the 50,000 byte limit)")
    assert len(http_server.requested("/endless.html")) == 1


def test_terminal_controls_on_a_listing_never_reach_the_operators_terminal(
        stiwatch, http_server, tmp_path, db_path):
    # U+009B is CSI to a terminal: a listing's link text "\x9b2J..." cleared the screen of
    # whoever ran `stiwatch search` (C0 controls such as ESC were already dropped, C1 ones
    # were not; feedparser already reads them in a feed as windows-1252 punctuation).
    base = http_server.url("").rstrip("/")
    listing = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>News</title></head>"
               "<body><h2><a href='/gone.html'>Budget \u009b2J\u009b31mrises \u009d0;owned\u0007"
               "</a></h2></body></html>").encode()
    http_server.route("/news.html")(lambda handler: handler.send_body(200, listing))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "controls", "kind": "html", "url": f"{base}/news.html", "links": "h2 a"}])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    found = stiwatch("search", "budget")

    assert found.exit_code == 0, found.output
    assert "Budget 2J31mrises 0;owned" in found.output
    assert not any(0x80 <= ord(ch) < 0xA0 or ord(ch) < 32 and ch != "\n" for ch in found.output)
    [item] = rows(db_path, "SELECT title FROM items")
    assert item["title"] == "Budget 2J31mrises 0;owned"


def test_a_megabyte_title_is_stored_shortened(stiwatch, http_server, tmp_path, db_path):
    # A feed entry's or a page's "title" of 2,000,006 characters was stored whole, and went into
    # every subscriber's digest, every search result and every table row.
    base = http_server.url("").rstrip("/")
    huge = "Budget " + "word " * 400_000
    feed = rss([f"<item><title>{huge}</title><link>{base}/gone.html</link></item>",
                f"<item><title>Short</title><link>{base}/page.html</link></item>"])
    http_server.route("/page.html")(lambda handler: handler.send_body(200, article(
        huge, "The agency asked grant holders for comments on its open access mandate.")))
    http_server.route("/feed.xml")(
        lambda handler: handler.send_body(200, feed, "application/rss+xml"))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "huge", "kind": "feed", "url": f"{base}/feed.xml"}])

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = rows(db_path, "SELECT status, title FROM items ORDER BY status")
    assert [r["status"] for r in stored] == ["complete", "partial"]
    for row in stored:
        assert row["title"].startswith("Budget word") and row["title"].endswith("…")
        assert len(row["title"]) <= 500
