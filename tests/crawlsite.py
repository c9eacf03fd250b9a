"""Helpers for the crawler tests: fixture sites on the loopback server, registries, settings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import json
from pathlib import Path
import shutil
import sqlite3
from typing import Any

SITES = Path(__file__).resolve().parent / "fixtures" / "sites"

# Politeness off for speed (one host, loopback); retries quick; contact set for the UA.
FAST = {
    "STIWATCH_DOWNLOAD_DELAY": "0",
    "STIWATCH_AUTOTHROTTLE": "false",
    "STIWATCH_CONTACT": "ops@example.org",
    "STIWATCH_RETRY_TIMES": "1",
    "STIWATCH_SCRAPY_SETTINGS": json.dumps({"STIWATCH_RETRY_BACKOFF_BASE": 0.05,
                                            "STIWATCH_BATCH_SECONDS": 0}),
}


def with_scrapy(env: dict[str, str], **settings: Any) -> dict[str, str]:
    """``env`` with more Scrapy settings in its STIWATCH_SCRAPY_SETTINGS."""
    extra = json.loads(env.get("STIWATCH_SCRAPY_SETTINGS", "{}"))
    return {**env, "STIWATCH_SCRAPY_SETTINGS": json.dumps({**extra, **settings})}


# A 429 or 503 doubles its host's delay to at least 1 s for the rest of the crawl (at most
# AUTOTHROTTLE_MAX_DELAY: crawler.middlewares.back_off); tests that are not about that delay
# cap it, so each such answer costs them milliseconds rather than seconds of waiting. A
# Retry-After is still waited out in full.
BRIEF_BACKOFF = with_scrapy(FAST, AUTOTHROTTLE_MAX_DELAY=0.05)


def build_site(server: Any, case: str = "newsroom") -> str:
    """Copy tests/fixtures/sites/<case> to the server's root, filling in {base} and {recent}."""
    recent = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = server.url("").rstrip("/")
    source = SITES / case
    for path in source.rglob("*"):
        target = server.root / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".xml", ".html", ".txt"):
            text = path.read_text(encoding="utf-8")
            target.write_text(text.replace("{base}", base).replace("{recent}", recent),
                              encoding="utf-8")
        else:
            shutil.copyfile(path, target)
    return base


def announce_feed(server: Any) -> None:
    """Make the newsroom's listing page name its feed in its <head>, as newsrooms do (the
    page a newcomer gives as a feed's URL)."""
    page = (server.root / "listing.html").read_text()
    (server.root / "listing.html").write_text(page.replace(
        "<title>", '<link rel="alternate" type="application/rss+xml" href="/feed.xml"><title>'))


def registry(path: Path, sources: list[dict[str, str]]) -> Path:
    """Write a registry TOML file with sensible defaults for each source."""
    lines = []
    for source in sources:
        record = {"name": f"Test source {source['id']}", "country": "DE", "language": "en",
                  "org_type": "ministry", **source}
        lines.append("[[source]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in record.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def rows(db_path: Path, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def one_page_source(server: Any, name: str, body: bytes, *, folder: str,
                    content_type: str = "text/html", **fields: str) -> dict[str, str]:
    """A registry entry (kind html) whose listing page links one article page,
    ``/<folder>/<name>.html``, served as ``body`` with ``content_type``."""
    base = server.url("").rstrip("/")
    server.routes[f"/{folder}/{name}.html"] = (
        lambda handler: handler.send_body(200, body, content_type))
    (server.root / f"list-{name}.html").write_text(
        f"<html><body><ul class='news'><li><a href='/{folder}/{name}.html'>{name}</a></li>"
        "</ul></body></html>")
    return {"id": name, "kind": "html", "url": f"{base}/list-{name}.html",
            "links": "ul.news a", **fields}
