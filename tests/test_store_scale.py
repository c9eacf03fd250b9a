"""What keeps a store of a million items answering: the plans of the queries that read it whole.

Timings live in docs/benchmarks.md ("An operator's store after three years"); these tests assert
the query plans (which index a query reads) and the behaviour, never a duration.
"""

from __future__ import annotations

import db
from stiwatch.datasette_plugin import tag_facet_sql, tags_filtered

ITEM_COLUMNS = ("id, url, source_id, title, summary, body, language, published_at, date_source, "
                "fetched_at, content_hash, duplicate_of, status, fetch_error, fetch_attempts")


def plan(store: db.Store, sql: str) -> str:
    return " | ".join(row["detail"] for row in store.query(f"EXPLAIN QUERY PLAN {sql}"))


def computes_tags(found: str) -> bool:
    """Whether a plan reads tags in a subquery per row (the views' tag columns). Since schema
    version 24 items_tagged_json's rows look up each item's copies in a subquery per row (by
    items_duplicate_of): those are no tag columns."""
    return "SEARCH t USING" in found  # the tag columns' alias of tags


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


def test_story_text_is_cleaned_as_before_with_or_without_control_characters():
    """clean_text (every story of a trends window and a digest goes through it) checks a text
    at once after collapsing its whitespace; what it returns is what its per-character loop
    returned, control and format characters included."""
    from digest.select import clean_text

    def reference(text):
        import re
        kept = "".join(ch if ch.isprintable() else " " for ch in (text or ""))
        return re.sub(r"\s+", " ", kept).strip()

    samples = [None, "", "  Plain\ttext\n\nacross  lines ", "a\x00b\x07c",
               "ZWJ\u200dand\u00adsoft",
               "nbsp\u00a0and\u2028line\u2029sep", "研究開発。\n次の文", "tab\x0b\x0cend\x1f",
               "\x85next line\ufeffbom", "emoji 🚀 ok"]
    for text in samples:
        assert clean_text(text) == reference(text), repr(text)


def test_serve_counts_the_views_tag_facets_from_tags_without_computing_the_tag_columns(tmp_path):
    """Datasette's facets of the views' tag columns computed every item's tags with a
    subquery (4.6-6.0 s a page at 500,000 items, every facet timed out); the tag facet reads
    the facet's rows of tags by its index and the view's ids alone."""
    store = small_store(tmp_path / "s.db")
    columns = ("id, title, url, source_id, published_at, policy, areas, domains, countries, "
               "regions")
    facets = ["area", "country", "policy"]
    for view in ("items_tagged_json", "items_tagged"):
        found = plan(store, tag_facet_sql(f"select {columns} from {view} ", view, facets))
        assert "COVERING INDEX tags_facet_value (facet=?)" in found, found
        assert not computes_tags(found), found
    # Filtered by tag columns, as Datasette writes the filters: tags again, by the index.
    rows = (f"select {columns} from items_tagged_json where :p0 in (select value from "
            'json_each("items_tagged_json"."countries")) and "policy" = :p1')
    found = " | ".join(row["detail"] for row in store.query(
        f"EXPLAIN QUERY PLAN {tags_filtered(tag_facet_sql(rows, 'items_tagged_json', facets))}",
        {"p0": "JP", "p1": "1"}))
    assert "COVERING INDEX tags_facet_value (facet=? AND value=?)" in found, found
    assert not computes_tags(found) and "json_each" not in found, found
    # Datasette's own array facet of the view, for comparison: a subquery per item.
    assert computes_tags(plan(store, f"with inner as (select {columns} from "
                                "items_tagged_json) select j.value from json_each(inner.areas) j"
                                " join inner"))


def test_the_first_page_of_items_tagged_json_reads_the_newest_items_once_analyzed(tmp_path):
    """With the statistics ANALYZE records on a store of 500,000 items, SQLite read the
    view's first page by items_language_status (taking duplicate_of IS NULL for a rare value)
    and sorted every original by date: 1.7-2.4 s, and an error page from `stiwatch serve`
    when the file was not cached. It reads items_published_at, newest first."""
    path = tmp_path / "s.db"
    small_store(path).close()
    with db.open_store(path) as store:
        store.conn.execute("ANALYZE")
        store.conn.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'items'")
        # bench/operator_store.py's store of 500,000 items, ANALYZEd.
        store.conn.executemany("INSERT INTO sqlite_stat1 VALUES ('items', ?, ?)", [
            ("items_language_status", "500000 500000 500000 50"),
            ("items_unclassified", "10000 1"), ("items_duplicate_of", "10000 1"),
            ("items_published_at", "500000 1"), ("items_source_id", "500000 1667"),
            ("sqlite_autoindex_items_1", "500000 1")])
    with db.open_store(path, readonly=True) as store:
        page = plan(store, "select id, title, url, source_id, published_at, policy, areas, "
                    "domains, countries, regions from items_tagged_json order by published_at "
                    "desc limit 51")
        assert page.startswith("SCAN i USING INDEX items_published_at"), page
        assert "TEMP B-TREE" not in page, page
        assert "COVERING INDEX items_language_status" in plan(
            store, "select count(*) from items_tagged_json")
        assert store.scalar("select count(*) from items_tagged_json") == 30


def test_serve_counts_the_languages_of_items_tagged_without_reading_the_items(tmp_path):
    """items_tagged's language facet read every item's row (its LEFT JOIN to sources needs
    the item's source_id, which the index of languages lacked): 1.0 s at 500,000 items, at
    the 1 s facet limit. The index holds source_id too."""
    store = small_store(tmp_path / "s.db")
    columns = ("id, url, title, source_id, source_name, published_at, language, status, "
               "duplicate_of, policy, policy_score, areas, domains, countries, regions")
    # The facet SQL Datasette 0.65 runs for the first page of items_tagged.
    sql = (f"select language as value, count(*) as count from (select {columns} from "
           "items_tagged ) where language is not null group by language "
           "order by count desc, value limit 31")
    assert "COVERING INDEX items_language_status" in plan(store, sql)
    assert {row["value"]: row["count"] for row in store.query(sql)} == {"en": 10, "ja": 20}


def test_serve_counts_the_stories_of_items_tagged_json_from_their_originals(tmp_path):
    """items_tagged_json checks each item for being its story's row (an index lookup per
    item): counting every story of 500,000 items took 0.6 s, its tag facets twice the
    originals' time. A count or facet whose filters read only ids and tags (the unfiltered
    page, `policy=1`, a country) reads the originals by items_language_status: the same
    stories, their original's ids. A filter on the item shown (its date) reads the view."""
    from stiwatch.datasette_plugin import story_ids

    store = small_store(tmp_path / "s.db")
    store.save_items([{"url": "https://e.org/copy", "source_id": "src", "title": "Copy",
                       "duplicate_of": 1}])
    for where in ("", ' where "policy" = :p0', ' where "id" > :p1',
                  ' where :p2 in (select value from json_each("items_tagged_json"."countries"))'):
        view = f"select count(*) from items_tagged_json{where} "
        sql = story_ids(tags_filtered(view), None)
        assert sql, where
        params = {"p0": "1", "p1": 3, "p2": "JP"}
        found = " | ".join(row["detail"] for row in store.query(f"EXPLAIN QUERY PLAN {sql}",
                                                                 params))
        # (an id range reads the items from the first id on)
        assert ("COVERING INDEX items_language_status" in found
                or "INTEGER PRIMARY KEY (rowid>?)" in found), found
        assert "items_duplicate_of" not in found, found
        assert store.scalar(sql, params) == store.scalar(tags_filtered(view), params)
    assert story_ids(tags_filtered('select count(*) from items_tagged_json where '
                                   '"published_at" >= :p0 '), None) is None
