"""What keeps a store of a million items answering: the plans of the queries that read it whole.

Timings live in docs/benchmarks.md ("An operator's store after three years"); these tests assert
the query plans (which index a query reads) and the behaviour, never a duration.
"""

from __future__ import annotations

import db

ITEM_COLUMNS = ("id, url, source_id, title, summary, body, language, published_at, date_source, "
                "fetched_at, content_hash, duplicate_of, status, fetch_error, fetch_attempts, "
                "classified_at")


def plan(store: db.Store, sql: str) -> str:
    return " | ".join(row["detail"] for row in store.query(f"EXPLAIN QUERY PLAN {sql}"))


def small_store(path) -> db.Store:
    store = db.open_store(path)
    store.sync_sources([{"id": "src", "name": "Source", "kind": "feed",
                         "url": "https://e.org/feed"}])
    store.save_items([{"url": f"https://e.org/{n}", "source_id": "src", "title": f"Item {n}",
                       "body": "A long body. " * 200, "language": "ja" if n % 3 else "en"}
                      for n in range(30)])
    return store


def test_serve_counts_items_by_language_and_status_without_reading_the_items(tmp_path):
    """`stiwatch serve`'s first page of items counts its language and status facets, and the
    first page of items_tagged_json counts the originals: each read the whole items table,
    bodies and all (0.7-0.9 s each at 200,000 items; at a million the facets timed out)."""
    store = small_store(tmp_path / "s.db")
    # The facet SQL Datasette 0.65 runs for the items page, and its count of the view.
    for column in ("language", "status"):
        sql = (f"select {column} as value, count(*) as count from (select {ITEM_COLUMNS} "
               f"from items) where {column} is not null group by {column} "
               f"order by count desc, value limit 31")
        assert "COVERING INDEX items_language_status" in plan(store, sql), column
    assert "COVERING INDEX items_language_status" in plan(
        store, "select count(*) from items_tagged_json")
    counts = {row["value"]: row["count"] for row in store.query(
        "select language as value, count(*) as count from items group by language")}
    assert counts == {"en": 10, "ja": 20}
    assert store.scalar("select count(*) from items_tagged_json") == 30
