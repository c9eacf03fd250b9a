"""`stiwatch crawl` on a feed source, end to end into a real SQLite store."""

from __future__ import annotations

import json

from crawlsite import FAST, build_site, registry, rows


def test_feed_source_end_to_end(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"},
    ])
    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)
    print(result.output)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    items = rows(db_path, "SELECT * FROM items ORDER BY url")
    print(items)
    assert report["status"] == "ok"
