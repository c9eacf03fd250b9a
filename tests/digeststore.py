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


# The G7 science ministers' meeting, written up by three sources in their own words, and two
# other Japanese research-security stories of the same days: same country, same area, some of
# the same words, different news.
G7_MEETING = [
    story("https://news-a.example/g7", "2026-11-17T13:00:00Z", source="news-a",
          title="G7 science ministers adopt research security principles in Canada",
          summary="Science ministers of the G7, meeting in Canada, adopted common principles on "
                  "research security and integrity and agreed to cooperate on AI safety.",
          areas=["international", "research_security"], countries=["CA", "JP"],
          regions=["north_america", "east_asia"], score=0.97),
    story("https://x.example/g7", "2026-11-16T09:00:00Z", source="jp-mext",
          title="Minister joins G7 counterparts in endorsing research security principles",
          summary="Japan's minister attended the G7 science ministers' meeting hosted by Canada, "
                  "which endorsed common principles for secure international research.",
          areas=["international", "research_security"], countries=["JP"],
          regions=["east_asia"], score=0.99),
    story("https://uk-ukri.example/g7", "2026-11-19T09:00:00Z", source="uk-ukri",
          title="UKRI to align due diligence with G7 research security principles",
          summary="Following the meeting of G7 science ministers in Canada, UKRI will align its "
                  "due-diligence requirements with the principles the ministers adopted.",
          areas=["research_security"], countries=["GB", "JP"], regions=["europe", "east_asia"],
          score=0.98),
]
JAPAN_SECURITY = [
    story("https://news-b.example/guidelines", "2026-11-17T02:00:00Z", source="news-b",
          title="Japan publishes research security guidelines for universities",
          summary="The guidelines ask universities in Japan to check the foreign funding and "
                  "affiliations of researchers in international projects.",
          areas=["research_security"], countries=["JP"], regions=["east_asia"], score=0.99),
    story("https://news-a.example/export", "2026-11-18T02:00:00Z", source="news-a",
          title="Japan tightens export controls on research equipment",
          summary="Universities in Japan will need a licence to ship research equipment abroad "
                  "under revised export control rules.",
          areas=["research_security"], countries=["JP"], regions=["east_asia"], score=0.99),
]
