"""Build digest test stores through the store's own API (save_items, save_classifications).

``story(...)`` describes one item; ``build(path, stories)`` writes sources, items, duplicates and
tags into a real SQLite file, as the crawler and the classifier would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import db

SOURCES = {
    "jp-mext": ("Japan MEXT", "JP", "ministry"),
    "us-nsf": ("US NSF", "US", "funding_agency"),
    "eu-rtd": ("EU Research & Innovation", "EU", "ministry"),
    "uk-ukri": ("UKRI", "GB", "funding_agency"),
    "de-bmbf": ("Germany BMBF", "DE", "ministry"),
    "news-a": ("STI News A", None, "news"),
    "news-b": ("STI News B", None, "news"),
}


def story(url: str, published: str, *, source: str = "jp-mext", title: str | None = None,
          summary: str = "", policy: int = 1, score: float = 0.9, areas=(), domains=(),
          countries=(), regions=(), duplicate_of: str | None = None,
          area_scores: dict[str, float] | None = None,
          language: str | None = None) -> dict[str, Any]:
    return dict(url=url, published=published, source=source, title=title or url.rsplit("/", 1)[-1],
                language=language,
                summary=summary, policy=policy, score=score, areas=list(areas),
                domains=list(domains), countries=list(countries), regions=list(regions),
                duplicate_of=duplicate_of, area_scores=area_scores or {})


def build(path: Path, stories: list[dict[str, Any]]) -> db.Store:
    store = db.open_store(path)
    store.sync_sources([
        {"id": sid, "name": name, "kind": "feed", "url": f"https://{sid}.example/feed",
         "country": country, "language": "en", "org_type": org_type}
        for sid, (name, country, org_type) in SOURCES.items()
    ])
    add(store, stories)
    return store


def add(store: db.Store, stories: list[dict[str, Any]]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for s in stories:
        row = {"url": s["url"], "source_id": s["source"], "title": s["title"],
               "summary": s["summary"], "published_at": s["published"], "date_source": "feed",
               "language": s.get("language")}
        if s["duplicate_of"]:
            row["duplicate_of"] = store.item_id_for_url(s["duplicate_of"])
        [(item_id, _)] = store.save_items([row])
        ids[s["url"]] = item_id
        tags = [{"facet": "policy", "value": str(s["policy"]), "score": s["score"],
                 "method": "model"}]
        for facet, key in (("area", "areas"), ("domain", "domains"), ("country", "countries"),
                           ("region", "regions")):
            for value in s[key]:
                tags.append({"facet": facet, "value": value,
                             "score": s["area_scores"].get(value, 0.8) if facet == "area" else 0.8,
                             "method": "model" if facet == "area" else "rules"})
        store.save_classifications([(item_id, tags)], "test-1")
    return ids
