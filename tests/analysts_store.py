"""A small real store for the analyst and operations tests (search, export, serve, status).

Built through the store's own API (sync_sources, save_items, save_classifications,
record_source_result), with dates relative to today so "this week" queries have rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import db

def ago(days: float) -> str:
    """An ISO timestamp ``days`` before now (computed at each call: test runs are long)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return (now - timedelta(days=days)).isoformat(timespec="seconds")


SOURCES = [
    {"id": "mext-news", "name": "MEXT News", "kind": "feed", "url": "https://mext.example/rss",
     "country": "JP", "language": "en", "org_type": "ministry"},
    {"id": "nsf-news", "name": "NSF News", "kind": "feed", "url": "https://nsf.example/rss",
     "country": "US", "language": "en", "org_type": "funding_agency"},
    {"id": "ec-rtd", "name": "EC Research and Innovation", "kind": "html",
     "url": "https://ec.example/news", "links": "h2 a", "country": "EU", "language": "en",
     "org_type": "ministry"},
]

# (key, source, days ago, title, summary, body, tags)
ITEMS = [
    ("jp-quantum", "mext-news", 1, "Japan launches national quantum strategy",
     "MEXT sets out a ten-year quantum technology strategy with new funding.",
     "The Ministry of Education, Culture, Sports, Science and Technology announced a national "
     "quantum strategy. The plan funds quantum computing centres and research security rules "
     "for international collaboration.",
     {"policy": ["1"], "area": ["governance"], "domain": ["quantum"], "country": ["JP"],
      "region": ["east_asia"]}),
    ("us-security", "nsf-news", 2, "NSF issues research security guidance for grantees",
     "New research-security requirements for universities receiving federal grants.",
     "The National Science Foundation published guidance on research security, foreign "
     "interference and disclosure. Collaboration with China is addressed in detail.",
     {"policy": ["1"], "area": ["research_security"], "domain": [], "country": ["US", "CN"],
      "region": ["north_america", "east_asia"]}),
    ("eu-open", "ec-rtd", 3, "Commission adopts open science mandate for Horizon Europe",
     "Open access to publications and FAIR data become conditions of funding.",
     "The European Commission adopted an open science policy. Researchers funded by Horizon "
     "Europe must deposit publications in open repositories.",
     {"policy": ["1"], "area": ["open_science"], "domain": [], "country": ["EU"],
      "region": ["europe"]}),
    ("eu-open-copy", "nsf-news", 3, "Commission adopts open science mandate for Horizon Europe",
     "Open access to publications and FAIR data become conditions of funding.",
     "The European Commission adopted an open science policy. Researchers funded by Horizon "
     "Europe must deposit publications in open repositories.",
     {"policy": ["1"], "area": ["open_science"], "domain": [], "country": ["EU"],
      "region": ["europe"]}),
    ("jp-semis", "mext-news", 20, "Japan funds semiconductor research consortium",
     "A new consortium for next-generation chips receives government support.",
     "Japan will fund a semiconductor research consortium with industry partners to develop "
     "2 nm chips; quantum devices are out of scope.",
     {"policy": ["1"], "area": ["business_innovation"], "domain": ["semiconductors"],
      "country": ["JP"], "region": ["east_asia"]}),
    ("us-discovery", "nsf-news", 10, "Astronomers discover a distant galaxy",
     "A research result, not policy.",
     "Scientists report a discovery about galaxies observed with a new telescope built "
     "with quantum sensors.",
     {"policy": ["0"], "area": [], "domain": ["space"], "country": ["US"],
      "region": ["north_america"]}),
    ("eu-ai", "ec-rtd", 40, "EU AI research strategy adds computing for start-ups",
     "The Commission opens supercomputers to AI start-ups.",
     "Artificial intelligence start-ups get access to European supercomputers under the AI "
     "research strategy.",
     {"policy": ["1"], "area": ["business_innovation", "governance"], "domain": ["ai"],
      "country": ["EU"], "region": ["europe"]}),
]


def build(path: Path) -> dict[str, int]:
    """Create the store at ``path``; returns {key: item id}."""
    with db.open_store(path) as store:
        store.sync_sources(SOURCES)
        rows = [
            {"url": f"https://{source}.example/{key}", "source_id": source, "title": title,
             "summary": summary, "body": body, "published_at": ago(days), "date_source": "feed",
             "language": "en"}
            for key, source, days, title, summary, body, _ in ITEMS
        ]
        ids = {item[0]: item_id for item, (item_id, _) in zip(ITEMS, store.save_items(rows))}
        with store.write():
            store.conn.execute("UPDATE items SET duplicate_of = ? WHERE id = ?",
                               [ids["eu-open"], ids["eu-open-copy"]])
        store.save_classifications(
            [(ids[key], [{"facet": facet, "value": value, "score": 0.9, "method": "model"}
                         for facet, values in tags.items() for value in values])
             for key, *_, tags in ITEMS],
            "test-1",
        )
        store.record_source_result("mext-news", ok=True)
        store.record_source_result("nsf-news", ok=True)
        store.record_source_result("ec-rtd", ok=False, error="HTTP 503 Service Unavailable",
                                   at=ago(3))
        store.record_source_result("ec-rtd", ok=False, error="HTTP 503 Service Unavailable")
        run = store.start_crawl_run()
        store.finish_crawl_run(run, "partial", {"new": 7, "errors": 1})
    return ids


# Items at fixed instants around day boundaries, for the date filters: (key, published_at).
# In Asia/Tokyo (UTC+9, the default `timezone`) tokyo-18 is on 18 Nov and late-17 on 17 Nov,
# though both are on 17 Nov in UTC; at-0617 is 15:17 in Tokyo.
DATED = [
    ("late-17", "2026-11-17T14:59:59Z"),
    ("tokyo-18", "2026-11-17T16:00:00Z"),
    ("midnight-23", "2026-11-23T00:00:00Z"),
    ("at-0617", "2026-11-23T06:17:00Z"),
    ("after-0617", "2026-11-23T06:17:01Z"),
]


def build_dated(path: Path) -> dict[str, int]:
    """A store of the DATED items (one source, each titled "Budget news <key>"); returns
    {key: item id}."""
    with db.open_store(path) as store:
        store.sync_sources(SOURCES[:1])
        saved = store.save_items([
            {"url": f"https://mext-news.example/{key}", "source_id": "mext-news",
             "title": f"Budget news {key}", "body": "The budget was announced.",
             "published_at": published, "date_source": "feed", "language": "en"}
            for key, published in DATED])
    return {key: item_id for (key, _), (item_id, _) in zip(DATED, saved)}


# One story under three URLs (an original and two near-duplicates, each with words of its
# own) and another story, for the folding of near-duplicates in search:
# (key, source, published_at, duplicate of, title, body).
STORIES = [
    ("original", "mext-news", "2026-11-10T03:00:00Z", None, "Quantum budget rises",
     "The ministry raised the quantum budget."),
    ("copy-nsf", "nsf-news", "2026-11-12T03:00:00Z", "original", "Quantum budget rises sharply",
     "The ministry raised the quantum budget. Analysts call it a windfall."),
    ("copy-ec", "ec-rtd", "2026-11-09T03:00:00Z", "original", "Parliament: quantum budget rises",
     "The ministry raised the quantum budget."),
    ("fusion", "mext-news", "2026-11-11T03:00:00Z", None, "Budget for fusion research",
     "Fusion research gets a budget of its own."),
]


def build_stories(path: Path) -> dict[str, int]:
    """A store of the STORIES items, near-duplicates marked as the crawler marks them;
    returns {key: item id}."""
    with db.open_store(path) as store:
        store.sync_sources(SOURCES)
        ids: dict[str, int] = {}
        for key, source, published, original, title, body in STORIES:
            [(ids[key], _)] = store.save_items([{
                "url": f"https://{source}.example/{key}", "source_id": source, "title": title,
                "body": body, "published_at": published, "date_source": "feed",
                "language": "en", "duplicate_of": ids[original] if original else None}])
    return ids


# One story reported by four sources (a wire's report stored first, a newspaper's copy, the
# ministry's and the funding agency's own pages) among other stories, for which copy search
# shows: (key, source, published_at, duplicate of, title, body), in the order stored. The
# newspaper's copy ranks best for "windfall" and was stored before the fusion stories, so the
# ranking window (the most recently stored matches) can leave it out.
NEWS_SOURCES = [
    {"id": "wire", "name": "Wire Service", "kind": "feed", "url": "https://wire.example/rss",
     "language": "en", "org_type": "news"},
    {"id": "daily", "name": "The Daily", "kind": "feed", "url": "https://daily.example/rss",
     "language": "en", "org_type": "news"},
]
SYNDICATED = [
    ("wire", "wire", "2026-11-10T03:00:00Z", None, "Quantum budget rises",
     "The ministry raised the quantum budget."),
    ("daily", "daily", "2026-11-10T04:00:00Z", "wire", "Quantum budget rises: a windfall",
     "The ministry raised the quantum budget."),
    *[(f"fusion-{n}", "ec-rtd", f"2026-11-0{n + 2}T05:00:00Z", None, f"Fusion plan {n}",
       "A windfall for fusion research, with a long body about many other things as well.")
      for n in range(4)],
    ("mext", "mext-news", "2026-11-10T05:00:00Z", "wire", "Quantum budget rises",
     "The ministry raised the quantum budget, a windfall for laboratories."),
    ("nsf", "nsf-news", "2026-11-10T06:00:00Z", "wire", "Quantum budget rises",
     "The ministry raised the quantum budget, a windfall for laboratories."),
]


def build_syndicated(path: Path, items: list[tuple] = SYNDICATED) -> dict[str, int]:
    """A store of ``items`` (SYNDICATED's shape) tagged as STI policy, near-duplicates marked
    as the crawler marks them; returns {key: item id}."""
    with db.open_store(path) as store:
        store.sync_sources(SOURCES + NEWS_SOURCES)
        return add_syndicated(store, items)


def add_syndicated(store: db.Store, items: list[tuple]) -> dict[str, int]:
    """Store ``items`` (SYNDICATED's shape; a "duplicate of" key among them or an item id)."""
    ids: dict[str, int] = {}
    for key, source, published, original, title, body in items:
        [(ids[key], _)] = store.save_items([{
            "url": f"https://{source}.example/{key}", "source_id": source, "title": title,
            "body": body, "published_at": published, "date_source": "feed", "language": "en",
            "duplicate_of": ids.get(original, original)}])
    store.save_classifications(
        [(item_id, [{"facet": "policy", "value": "1", "score": 0.9, "method": "model"}])
         for item_id in ids.values()], "test-1")
    return ids
