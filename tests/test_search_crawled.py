"""Search on a store built by a real crawl of a fixture site (loopback HTTP, `stiwatch crawl`)."""

from __future__ import annotations

import json

from crawlsite import FAST, build_site, registry


def test_crawl_then_search_folds_the_republished_copy(stiwatch, http_server, tmp_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "ministry-news", "kind": "html", "url": f"{base}/listing.html",
         "links": "ul.news a"},
    ])
    crawl = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)
    assert crawl.exit_code == 0, crawl.output

    result = stiwatch("search", "quantum", "--format", "json")
    assert result.exit_code == 0, result.output
    [hit] = json.loads(result.output)  # the original and its republished copy: one result
    assert hit["title"].startswith("Ministry launches national quantum computing programme")
    assert hit["copies"] == 1 and hit["source_id"] == "ministry-news"
    assert "**quantum**" in hit["snippet"].lower()
    assert hit["url"] in (f"{base}/news/quantum.html", f"{base}/mirror/quantum-copy.html")

    [budget] = json.loads(stiwatch("search", "budget AND grants", "--format", "json").output)
    assert budget["url"] == f"{base}/news/budget.html"
    assert json.loads(stiwatch("search", "quantum", "--source", "ministry-news",
                               "--until", "2026-11-01", "--format", "json").output) == []

    table = stiwatch("search", '"quantum computing"')
    assert "Ministry launches national quantum computing programme" in table.output
    assert "+1" in table.output  # the folded copy is shown as a count
