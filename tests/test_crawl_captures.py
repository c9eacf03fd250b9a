"""Real feed captures (../shared/data/feeds) crawled from the loopback server: every entry of
RSS 0.9x/1.0/2.0 and Atom feeds becomes a row, even when its article page is missing."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import feedparser

from conftest import shared_data
from crawlsite import FAST, registry, rows


def _loopback(body: bytes, base: str) -> bytes:
    """The capture with its article hosts pointed at the test server (never the internet)."""
    parsed = feedparser.parse(body)
    hosts = set()
    for entry in parsed.entries:
        for value in [entry.get("link"), entry.get("id")] + [
                link.get("href") for link in entry.get("links") or []]:
            host = urlsplit(value or "").hostname
            if host:
                hosts.add(host)
    for host in sorted(hosts, key=len, reverse=True):
        for scheme in (b"https://", b"http://"):
            body = body.replace(scheme + host.encode(), base.encode())
    return body


def test_real_feed_captures_lose_no_entry(stiwatch, http_server, tmp_path, db_path):
    folder = shared_data("feeds")
    captures = sorted(folder.glob("*.xml"))
    base = http_server.url("").rstrip("/")
    (http_server.root / "feeds").mkdir()
    sources = []
    for path in captures:
        (http_server.root / "feeds" / path.name).write_bytes(
            _loopback(path.read_bytes(), base))
        source_id = path.name.split(".")[0].replace("_", "-")
        sources.append({"id": source_id, "kind": "feed", "url": f"{base}/feeds/{path.name}"})
    reg = registry(tmp_path / "sources.toml", sources)

    env = {**FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "8"}
    result = stiwatch("crawl", "--sources", str(reg), "--json", env=env)

    assert result.exit_code == 0, result.output
    report = {s["id"]: s for s in json.loads(result.stdout)["sources"]}
    assert set(report) == {s["id"] for s in sources}
    items = rows(db_path, "SELECT * FROM items")
    assert items and all(item["url"].startswith(base + "/") for item in items)
    for source in sources:
        stored = [i for i in items if i["source_id"] == source["id"]]
        entries = feedparser.parse((http_server.root / "feeds" /
                                    source["url"].rsplit("/", 1)[1]).read_bytes()).entries
        linked = {e.get("link") for e in entries if e.get("link")}
        assert report[source["id"]]["status"] == "ok", report[source["id"]]
        # The pages do not exist here: every entry is kept from the feed, marked partial.
        # One row per distinct article link (a feed may repeat an entry).
        assert stored and len(stored) == len(linked), (source["id"], len(stored), len(linked))
        assert all(i["status"] == "partial" and i["fetch_error"] == "HTTP 404 Not Found"
                   for i in stored)
        assert all(i["title"] for i in stored)
        assert all(i["date_source"] in ("feed", "fetched") for i in stored)

