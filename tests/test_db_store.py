"""The store on real SQLite files: pragmas, migrations, FTS triggers, transactions."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys

import pytest

import db
from db.schema import LATEST_VERSION, MIGRATIONS, migrate

SOURCE = {"id": "src", "name": "Source", "kind": "feed", "url": "https://example.org/feed"}


@pytest.fixture
def store(db_path: Path):
    with db.open_store(db_path) as store:
        store.sync_sources([SOURCE])
        yield store


def test_new_file_is_wal_with_foreign_keys_at_latest_version(db_path: Path):
    with db.open_store(db_path) as store:
        assert store.scalar("PRAGMA journal_mode") == "wal"
        assert store.scalar("PRAGMA foreign_keys") == 1
        assert store.schema_version == LATEST_VERSION
        assert store.migrated == [m.version for m in MIGRATIONS]
    # Opening again applies nothing.
    with db.open_store(db_path) as store:
        assert store.migrated == []


def test_older_file_is_migrated_in_place_keeping_its_data(db_path: Path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=1)
    conn.execute(
        "INSERT INTO sources (id, name, kind, url, added_at, updated_at)"
        " VALUES ('old', 'Old', 'feed', 'https://old.example/feed', '2026-01-01', '2026-01-01')"
    )
    conn.execute(
        "INSERT INTO items (url, source_id, title, fetched_at)"
        " VALUES ('https://old.example/a', 'old', 'Quantum strategy', '2026-01-01')"
    )
    conn.close()
    with db.open_store(db_path) as store:
        assert store.migrated == [m.version for m in MIGRATIONS[1:]]
        assert store.schema_version == LATEST_VERSION
        assert store.query("SELECT title, policy FROM items_tagged") == [
            {"title": "Quantum strategy", "policy": None}
        ]
        assert store.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'quantum'")


def test_timestamps_of_an_older_file_take_the_one_utc_form(db_path: Path):
    """Before migration 8 the store wrote "+00:00" and the crawler "Z": after it, every
    timestamp is the same instant ending in Z, so text order is time order."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=7)
    conn.execute(
        "INSERT INTO sources (id, name, kind, url, added_at, updated_at, failing_since)"
        " VALUES ('old', 'Old', 'feed', 'https://old.example/feed',"
        " '2026-01-01T00:00:00+00:00', '2026-01-02T09:30:00+00:00', NULL)")
    conn.execute(
        "INSERT INTO items (url, source_id, title, published_at, fetched_at)"
        " VALUES ('https://old.example/a', 'old', 'A', '2025-12-31T23:00:00Z',"
        " '2026-01-01T08:00:00+00:00')")
    conn.close()
    with db.open_store(db_path) as store:
        assert store.migrated == [m.version for m in MIGRATIONS[7:]]
        assert store.query("SELECT added_at, updated_at, failing_since FROM sources") == [
            {"added_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T09:30:00Z",
             "failing_since": None}]
        assert store.query("SELECT published_at, fetched_at FROM items") == [
            {"published_at": "2025-12-31T23:00:00Z", "fetched_at": "2026-01-01T08:00:00Z"}]
        applied = [row["applied_at"] for row in
                   store.query("SELECT applied_at FROM schema_migrations")]
        assert all(stamp.endswith("Z") for stamp in applied)
        store.save_items([{"url": "https://old.example/b", "source_id": "old", "title": "B"}])
        assert store.query("SELECT fetched_at FROM items WHERE title = 'B'")[0][
            "fetched_at"].endswith("Z")


def test_an_older_store_learns_to_classify_changed_text_again(db_path: Path):
    """Stores made before migration 9 keep their tags and gain the re-classification rule."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=8)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES"
                 " ('src', 'S', 'feed', 'https://e.org/f', '2026-01-01Z', '2026-01-01Z')")
    conn.execute("INSERT INTO items (url, source_id, title, body, fetched_at, classified_at)"
                 " VALUES ('https://e.org/a', 'src', 'T', 'Old text', '2026-01-01Z',"
                 " '2026-01-02Z')")
    conn.close()
    with db.open_store(db_path) as store:
        assert store.migrated == [m.version for m in MIGRATIONS[8:]]
        assert store.unclassified_ids() == []
        store.save_items([{"url": "https://e.org/a", "source_id": "src", "title": "T",
                           "body": "New text"}])
        assert store.unclassified_ids() == [1]


def test_an_older_store_keeps_each_items_classification_in_its_new_table(db_path: Path):
    """Migration 22 moves classified_at and classify_marks out of items: each item keeps
    whether and when it was classified and its count of marks, and what marks it stays the
    same (a new text marks it and its classified copies, a correction marks it)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=21)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES"
                 " ('src', 'S', 'feed', 'https://e.org/f', '2026-01-01Z', '2026-01-01Z')")
    conn.executemany(
        "INSERT INTO items (url, source_id, title, fetched_at, duplicate_of, classified_at,"
        " classify_marks) VALUES (?, 'src', ?, '2026-01-01T00:00:00Z', ?, ?, ?)",
        [("https://e.org/1", "Classified", None, "2026-01-02T00:00:00Z", 2),
         ("https://e.org/2", "Waiting", None, None, 1),
         ("https://e.org/3", "Its copy", 1, "2026-01-03T00:00:00Z", 0),
         ("https://e.org/4", "Classified too", None, "2026-01-04T00:00:00Z", 0)])
    conn.close()
    with db.open_store(db_path) as store:
        assert store.migrated == list(range(22, LATEST_VERSION + 1))
        assert store.query("SELECT item_id, classified_at, classify_marks"
                           " FROM item_classification ORDER BY item_id") == [
            {"item_id": 1, "classified_at": "2026-01-02T00:00:00Z", "classify_marks": 2},
            {"item_id": 2, "classified_at": None, "classify_marks": 1},
            {"item_id": 3, "classified_at": "2026-01-03T00:00:00Z", "classify_marks": 0},
            {"item_id": 4, "classified_at": "2026-01-04T00:00:00Z", "classify_marks": 0}]
        columns = {row["name"] for row in store.query("PRAGMA table_info(items)")}
        assert not columns & {"classified_at", "classify_marks"}
        assert store.unclassified_ids() == [2]
        assert [item["id"] for item in store.iter_to_classify(columns="items.id AS id")] == [2]
        assert [row["classified_at"] for row in store.iter_export()] == [
            "2026-01-02T00:00:00Z", None, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]

        store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "Edited"}])
        store.analyst_label(4, add=[("policy", "1")])
        [(new, _)] = store.save_items([{"url": "https://e.org/5", "source_id": "src",
                                        "title": "New"}])
        assert store.unclassified_ids() == [1, 2, 4, new, 3]
        assert dict(store.conn.execute(
            "SELECT item_id, classify_marks FROM item_classification")) == {
            1: 3, 2: 1, 3: 1, 4: 1, new: 0}


@pytest.mark.parametrize("foreign_keys", [0, 1])
def test_an_item_another_tool_replaces_waits_for_classification(store, db_path, foreign_keys):
    """`sqlite-utils insert --replace` (INSERT OR REPLACE) writes a new row for the item: its
    tags were made for the old one, so it is classified again, foreign keys on or off."""
    [(item_id, _)] = store.save_items([{"url": "https://e.org/a", "source_id": "src",
                                        "title": "Old title"}])
    store.save_classifications([(item_id, [{"facet": "policy", "value": "0", "score": 0.1,
                                            "method": "rules"}])], "m1")
    assert store.unclassified_ids() == []
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA foreign_keys = {foreign_keys}")
    conn.execute("INSERT OR REPLACE INTO items (id, url, source_id, title, fetched_at) "
                 "VALUES (?, 'https://e.org/a', 'src', 'New title', '2026-01-01T00:00:00Z')",
                 [item_id])
    conn.commit()
    conn.close()
    assert store.unclassified_ids() == [item_id]
    assert store.scalar("SELECT count(*) FROM item_classification") == 1


def test_newer_file_is_refused_with_a_clear_message(db_path: Path):
    with db.open_store(db_path) as store:
        store.conn.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01')",
            [LATEST_VERSION + 1],
        )
    with pytest.raises(db.SchemaTooNew, match=f"schema version {LATEST_VERSION + 1}.*upgrade"):
        db.open_store(db_path)


def test_an_sqlite_too_old_for_the_migrations_is_said_before_any_is_run(
        db_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Migration 22 drops columns (SQLite 3.35): on an older library (Ubuntu 20.04's 3.31, say)
    # a new store failed halfway with 'near "DROP": syntax error'. The library's version is
    # the one thing no loopback server can play, so only its reported number is changed.
    old = db_path.with_name("old.db")
    conn = sqlite3.connect(old)
    migrate(conn, target=21)
    conn.close()
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    for path, version in ((db_path, 0), (old, 21)):
        with pytest.raises(db.SQLiteTooOld, match=(
                r"^SQLite 3\.31\.1 is too old: stiwatch needs SQLite 3\.35\.0 or later .*"
                f"the file is left at schema version {version}$")):
            db.open_store(path)
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (21,)
    assert "classified_at" in {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    conn.close()
    monkeypatch.undo()
    with db.open_store(old) as store:
        assert store.migrated == list(range(22, LATEST_VERSION + 1))


def test_without_create_a_missing_or_foreign_file_is_refused_and_left_alone(tmp_path: Path):
    missing = tmp_path / "missing.db"
    with pytest.raises(db.NoSuchStore, match="missing.db: no such database"):
        db.open_store(missing, create=False)
    assert not missing.exists()
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    for readonly in (False, True):
        with pytest.raises(db.NotAStore, match="foreign.db: not a stiwatch database"):
            db.open_store(foreign, readonly=readonly, create=False)
    assert foreign.read_bytes() == before  # not even switched to WAL
    # a command that creates stores (init, crawl) does not move into someone else's file either
    with pytest.raises(db.NotAStore, match="foreign.db: not a stiwatch database"):
        db.open_store(foreign)
    assert foreign.read_bytes() == before
    db.open_store(missing).close()  # the default creates, as init and crawl need
    with db.open_store(missing, create=False) as store:
        assert store.schema_version == LATEST_VERSION


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(db.NotAStore, match="notes.db: not a stiwatch database"):
        db.open_store(path)
    assert path.read_text().startswith("these are my notes")


def test_fts_index_follows_inserts_updates_and_deletes(store):
    [(item_id, created)] = store.save_items(
        [{"url": "https://e.org/1", "source_id": "src", "title": "Open access mandate",
          "body": "The ministry requires open access to publicly funded research."}]
    )
    assert created

    def hits(query: str) -> list[int]:
        return [r["rowid"] for r in store.query(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [query])]

    assert hits("mandate") == [item_id]
    assert hits("funding") == [item_id]  # porter stemming: funded ~ funding
    store.save_items([{"url": "https://e.org/1", "source_id": "src",
                       "title": "Semiconductor subsidies", "body": "Chips."}])
    assert hits("mandate") == [] and hits("semiconductor") == [item_id]
    with store.write():
        store.conn.execute("DELETE FROM items WHERE id = ?", [item_id])
    assert hits("semiconductor") == []


def test_same_url_is_one_row_and_a_complete_item_is_never_downgraded(store):
    [(first, created)] = store.save_items(
        [{"url": "https://e.org/a", "source_id": "src", "title": "T", "status": "partial",
          "fetch_error": "HTTP 503"}])
    assert created
    [(again, created)] = store.save_items(
        [{"url": "https://e.org/a", "source_id": "src", "title": "T", "status": "partial"}])
    assert (again, created) == (first, False)
    assert store.get_item(first)["fetch_attempts"] == 2
    store.save_items([{"url": "https://e.org/a", "source_id": "src", "title": "T",
                       "body": "Full text", "status": "complete"}])
    store.save_items([{"url": "https://e.org/a", "source_id": "src", "title": "T",
                       "status": "partial"}])
    item = store.get_item(first)
    assert (item["status"], item["body"]) == ("complete", "Full text")
    assert store.scalar("SELECT count(*) FROM items") == 1
    assert store.known_urls(["https://e.org/a", "https://e.org/b"]) == {"https://e.org/a"}


def test_saving_a_fetched_page_again_does_not_read_its_stored_row_back(store):
    """A page fetched again (a partial retry, --refresh) was read back whole, body and all,
    by sqlite-utils' update() checking that the row it had just found exists."""
    row = {"url": "https://e.org/a", "source_id": "src", "title": "T", "status": "complete",
           "body": "Full text " * 5000}
    [(item_id, _)] = store.save_items([row])
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        store.save_items([{**row, "body": "Changed text " * 5000}])
    finally:
        store.conn.set_trace_callback(None)
    assert not [s for s in statements if s.lower().startswith("select *")], statements
    assert store.get_item(item_id)["body"].startswith("Changed text")
    # ...and the attempts of a partial row are still counted.
    store.save_items([{"url": "https://e.org/b", "source_id": "src", "status": "partial"}] * 2)
    assert store.scalar("SELECT fetch_attempts FROM items WHERE url = 'https://e.org/b'") == 2


def test_an_item_keeps_the_source_that_first_stored_it(store):
    """docs/schema.md: items.source_id is the source that first stored the item."""
    store.sync_sources([SOURCE, {**SOURCE, "id": "aggregator", "url": "https://agg.example/f"}])
    [(item_id, _)] = store.save_items([{"url": "https://e.org/a", "source_id": "src",
                                        "title": "T", "status": "partial"}])
    store.save_items([{"url": "https://e.org/a", "source_id": "aggregator", "title": "T",
                       "body": "Full text"}])
    item = store.get_item(item_id)
    assert (item["source_id"], item["status"], item["body"]) == ("src", "complete", "Full text")


def test_a_fetch_time_never_replaces_a_stored_date(store):
    def save(published_at: str, date_source: str, status: str = "complete") -> tuple:
        [(item_id, _)] = store.save_items([{
            "url": "https://e.org/a", "source_id": "src", "title": "T", "status": status,
            "published_at": published_at, "date_source": date_source}])
        item = store.get_item(item_id)
        return (item["published_at"], item["date_source"])

    first_seen = ("2026-11-06T07:00:00Z", "fetched")
    assert save(*first_seen, status="partial") == first_seen
    # No date found again (partial or complete): the article stays where it was first seen.
    assert save("2026-11-27T05:00:00Z", "fetched", status="partial") == first_seen
    assert save("2026-11-27T05:00:00Z", "fetched") == first_seen
    # A real date replaces it, and is not replaced by a fetch time in turn.
    assert save("2026-11-05T10:00:00Z", "page") == ("2026-11-05T10:00:00Z", "page")
    assert save("2026-11-28T05:00:00Z", "fetched") == ("2026-11-05T10:00:00Z", "page")
    assert save("2026-11-04T09:00:00Z", "feed") == ("2026-11-04T09:00:00Z", "feed")


def test_a_failing_batch_writes_nothing(store):
    with pytest.raises(db.StoreError):
        store.save_items([
            {"url": "https://e.org/ok", "source_id": "src", "title": "fine"},
            {"url": "https://e.org/bad", "source_id": "src", "colour": "blue"},
        ])
    assert store.scalar("SELECT count(*) FROM items") == 0
    with pytest.raises(sqlite3.IntegrityError):  # foreign key: unknown source
        store.save_items([{"url": "https://e.org/x", "source_id": "nope", "title": "x"}])
    assert store.scalar("SELECT count(*) FROM items") == 0


def test_ctrl_c_inside_a_write_rolls_it_back_and_the_next_write_commits_alone(store, db_path):
    """Ctrl-C (or SIGTERM, raised as KeyboardInterrupt) half-way through a batch: the batch is
    rolled back at once, so what the interrupted command records next (the run's status) is
    committed on its own and the half-written items never are."""
    with pytest.raises(KeyboardInterrupt):
        with store.write():
            store.save_items([{"url": "https://e.org/half", "source_id": "src", "title": "half"}])
            raise KeyboardInterrupt
    assert store.scalar("SELECT count(*) FROM items") == 0
    store.save_items([{"url": "https://e.org/after", "source_id": "src", "title": "after"}])
    store.close()
    with db.open_store(db_path) as again:
        assert [r["url"] for r in again.query("SELECT url FROM items")] == ["https://e.org/after"]


KILLED_WRITER = """
import sys, time
import db
store = db.open_store(sys.argv[1])
rows = [{"url": f"https://e.org/{i}", "source_id": "src", "title": f"item {i}",
         "body": "text " * 2000} for i in range(100000)]
with store.write():
    for start in range(0, len(rows), 50):
        store.save_items(rows[start:start + 50])
        print(start, flush=True)
print("committed", flush=True)
"""


def test_a_writer_killed_mid_transaction_leaves_no_half_written_items(store, db_path: Path):
    store.save_items([{"url": "https://e.org/keep", "source_id": "src", "title": "kept"}])
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db_path)],
                            stdout=subprocess.PIPE, text=True)
    for _ in range(20):  # wait until it has written a good part of its transaction
        line = proc.stdout.readline()
        assert line and "committed" not in line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with db.open_store(db_path) as again:
        assert again.scalar("PRAGMA integrity_check") == "ok"
        assert [r["url"] for r in again.query("SELECT url FROM items")] == ["https://e.org/keep"]
        assert again.query("SELECT rowid FROM items_fts WHERE items_fts MATCH 'text'") == []


def test_sync_disables_missing_sources_and_keeps_their_items(store):
    store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "kept"}])
    other = {**SOURCE, "id": "other", "url": "https://other.example/feed"}
    report = store.sync_sources([other])
    assert (report.added, report.disabled) == (["other"], ["src"])
    assert store.get_source("src")["enabled"] == 0
    assert store.scalar("SELECT count(*) FROM items WHERE source_id = 'src'") == 1
    report = store.sync_sources([SOURCE, other])
    assert report.updated == ["src"] and store.get_source("src")["enabled"] == 1


def test_changing_a_source_url_forgets_its_conditional_get_validators(store):
    store.record_source_result("src", ok=True, etag='"abc"', last_modified="Mon, 01 Jan 2026")
    store.sync_sources([{**SOURCE, "name": "Renamed"}])
    assert store.get_source("src")["etag"] == '"abc"'
    store.sync_sources([{**SOURCE, "url": "https://example.org/new-feed"}])
    assert store.get_source("src")["etag"] is None


def test_changing_a_source_url_forgets_the_validators_of_its_further_listings(store):
    store.replace_listing_validators("src", {"https://example.org/s1.xml": ('"a"', None),
                                             "https://example.org/s2.xml": (None, None)})
    assert store.listing_validators() == {
        "src": {"https://example.org/s1.xml": {"etag": '"a"', "last_modified": None}}}
    store.sync_sources([{**SOURCE, "name": "Renamed"}])
    assert store.listing_validators()["src"]
    store.sync_sources([{**SOURCE, "url": "https://example.org/new-index.xml"}])
    assert store.listing_validators() == {}


def test_source_health_counts_failures_and_resets_on_success(store):
    store.record_source_result("src", ok=False, error="HTTP 500", at="2026-11-01T00:00:00+00:00")
    store.record_source_result("src", ok=False, error="timeout", at="2026-11-02T00:00:00+00:00")
    source = store.get_source("src")
    assert source["consecutive_failures"] == 2
    assert source["failing_since"] == "2026-11-01T00:00:00+00:00"
    assert source["last_error"] == "timeout"
    assert source["last_ok_at"] is None
    store.record_source_result("src", ok=True, flag="bozo: not well-formed",
                               at="2026-11-03T00:00:00+00:00")
    source = store.get_source("src")
    assert (source["consecutive_failures"], source["failing_since"], source["last_error"]) == (
        0, None, None)
    assert source["last_ok_at"] == "2026-11-03T00:00:00+00:00"
    assert source["last_flag"] == "bozo: not well-formed"
    with pytest.raises(db.NoSuchSource):
        store.record_source_result("nope", ok=True)


def test_crawl_runs_are_recorded(store):
    run = store.start_crawl_run()
    assert store.crawl_runs()[0]["status"] == "running"
    store.finish_crawl_run(run, "partial", {"new": 3, "sources": {"src": {"new": 3}}})
    [row] = store.crawl_runs()
    assert row["status"] == "partial" and row["stats"]["new"] == 3 and row["finished_at"]


def test_online_backup_is_a_consistent_copy(store, tmp_path: Path):
    store.save_items([{"url": "https://e.org/1", "source_id": "src", "title": "backed up"}])
    store.backup(tmp_path / "backup.db")
    with db.open_store(tmp_path / "backup.db") as copy:
        assert copy.scalar("SELECT title FROM items") == "backed up"


def test_readonly_open_refuses_writes(store, db_path: Path):
    with db.open_store(db_path, readonly=True) as reader:
        assert reader.scalar("SELECT count(*) FROM sources") == 1
        with pytest.raises(db.StoreReadOnly, match="cannot write to the database"):
            reader.sync_sources([])


def test_an_older_store_scores_analysts_policy_no_as_zero(db_path: Path):
    """Before migration 11 an analyst's policy = 0 was stored with score 1.0."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=10)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES"
                 " ('src', 'S', 'feed', 'https://e.org/f', '2026-01-01Z', '2026-01-01Z')")
    for n in (1, 2):
        conn.execute("INSERT INTO items (url, source_id, title, fetched_at) VALUES"
                     f" ('https://e.org/{n}', 'src', 'T', '2026-01-01Z')")
    conn.executemany("INSERT INTO tags (item_id, facet, value, score, method, tagged_at)"
                     " VALUES (?, 'policy', ?, ?, ?, '2026-01-02Z')",
                     [(1, "0", 1.0, "analyst"), (2, "0", 0.2, "model")])
    conn.close()
    with db.open_store(db_path) as store:
        assert store.query("SELECT item_id, score FROM tags ORDER BY item_id") == [
            {"item_id": 1, "score": 0.0}, {"item_id": 2, "score": 0.2}]


def _story(store, n: int, duplicate_of: int | None = None) -> int:
    [(item_id, _)] = store.save_items([{
        "url": f"https://example.org/{n}", "source_id": "src", "title": f"Quantum story {n}",
        "body": "A quantum computing programme.", "duplicate_of": duplicate_of}])
    return item_id


def _originals(store) -> dict[int, int | None]:
    return {row["id"]: row["duplicate_of"] for row in store.query(
        "SELECT id, duplicate_of FROM items ORDER BY id")}


def test_a_copy_of_a_copy_points_at_the_original(store):
    """C nearest to B, itself a copy of A, is a copy of A: search shows the story once."""
    a = _story(store, 1)
    b = _story(store, 2, duplicate_of=a)
    c = _story(store, 3, duplicate_of=b)
    assert _originals(store) == {a: None, b: a, c: a}
    [row] = store.search("quantum")
    assert (row["id"], row["copies"]) == (a, 2)


def test_an_original_that_becomes_a_copy_takes_its_copies_along(store):
    a = _story(store, 1)
    b = _story(store, 2, duplicate_of=a)
    x = _story(store, 3)
    store.conn.execute("UPDATE item_classification SET classified_at = '2026-11-01T00:00:00Z'")
    _story(store, 1, duplicate_of=x)  # A re-fetched: now the text of X
    assert _originals(store) == {a: x, b: x, x: None}
    # both inherit X's tags at the next classify
    assert store.query("SELECT item_id AS id FROM item_classification"
                       " WHERE classified_at IS NULL ORDER BY item_id") == [{"id": a}, {"id": b}]


def test_an_original_resembling_its_own_copy_stays_the_original(store):
    a = _story(store, 1)
    b = _story(store, 2, duplicate_of=a)
    _story(store, 1, duplicate_of=b)
    assert _originals(store) == {a: None, b: a}
    assert len(store.search("quantum")) == 1


def test_an_older_store_has_its_copy_chains_flattened(db_path: Path):
    """Before migration 13 a copy could point at a copy, and two items at each other."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=12)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES"
                 " ('src', 'S', 'feed', 'https://e.org/f', '2026-01-01Z', '2026-01-01Z')")
    for n in range(1, 7):
        conn.execute("INSERT INTO items (url, source_id, title, fetched_at, classified_at)"
                     f" VALUES ('https://e.org/{n}', 'src', 'T', '2026-01-01Z', '2026-01-02Z')")
    conn.executemany("UPDATE items SET duplicate_of = ? WHERE id = ?",
                     [(1, 2), (2, 3), (3, 4), (6, 5), (5, 6)])  # 1 <- 2 <- 3 <- 4; 5 <-> 6
    conn.close()
    with db.open_store(db_path) as store:
        assert _originals(store) == {1: None, 2: 1, 3: 1, 4: 1, 5: None, 6: None}
        assert store.query("SELECT item_id AS id FROM item_classification"
                           " WHERE classified_at IS NULL ORDER BY item_id") == [
            {"id": n} for n in (3, 4, 5, 6)]


def test_the_documented_repair_mends_the_indexes_after_an_insert_or_replace(store, db_path):
    """The repair docs/schema.md gives (for a store an INSERT OR REPLACE touched before
    migration 15) leaves both full-text indexes as the items are."""
    from db.docs import FTS
    [(item_id, _)] = store.save_items([{"url": "https://e.org/a", "source_id": "src",
                                        "title": "Quantum 量子技術", "body": "Old words"}])
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT OR REPLACE INTO items (id, url, source_id, title, fetched_at) "
                 "VALUES (?, 'https://e.org/a', 'src', 'Fusion', '2026-01-01T00:00:00Z')",
                 [item_id])
    conn.commit()
    repair = FTS["items_fts"].split("repair them with `", 1)[1].split("`", 1)[0]
    conn.executescript(repair)
    conn.close()
    with db.open_store(db_path) as reopened:
        assert [r["id"] for r in reopened.search("fusion")] == [item_id]
        for gone in ("quantum", "old", "量子技術"):
            assert reopened.search(gone) == [], gone
        assert reopened.scalar("SELECT count(*) FROM items_fts_cjk") == 0


def _indexes_match_items(path: Path) -> None:
    """Both full-text indexes hold exactly the items' current words (migration 15)."""
    from db.cjk import has_cjk, index_text
    with db.open_store(path) as store:  # indexes what other tools queued, as any open does
        texts = {row["id"]: " ".join(filter(None, (row["title"], row["summary"], row["body"])))
                 for row in store.query("SELECT id, title, summary, body FROM items")}
        for word in ("quantum", "fusion", "budget", "old", "new"):
            indexed = {row[0] for row in store.conn.execute(
                "SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [word])}
            assert indexed == {i for i, text in texts.items() if word in text.lower().split()}, word
        expected = {row["id"]: tuple(index_text(row[c]) for c in ("title", "summary", "body"))
                    for row in store.query("SELECT * FROM items")
                    if any(has_cjk(row[c]) for c in ("title", "summary", "body"))}
        assert {row[0]: tuple(row[1:]) for row in store.conn.execute(
            "SELECT rowid, title, summary, body FROM items_fts_cjk")} == expected


@pytest.mark.parametrize("write", [
    # sqlite-utils insert --replace: the same id, new text
    "INSERT OR REPLACE INTO items (id, url, source_id, title, fetched_at) "
    "VALUES (1, 'https://e.org/a', 'src', 'fusion new', '2026-01-01T00:00:00Z')",
    # the same url under a new id
    "REPLACE INTO items (url, source_id, title, body, fetched_at) "
    "VALUES ('https://e.org/a', 'src', 'fusion', 'new 核融合', '2026-01-01T00:00:00Z')",
    # two rows at once, each replacing one
    "INSERT OR REPLACE INTO items (id, url, source_id, title, fetched_at) VALUES "
    "(1, 'https://e.org/a', 'src', 'fusion', '2026-01-01Z'), "
    "(2, 'https://e.org/b', 'src', 'new', '2026-01-01Z')",
    # one new row replacing two (one by id, the other by url)
    "INSERT OR REPLACE INTO items (id, url, source_id, title, fetched_at) "
    "VALUES (1, 'https://e.org/b', 'src', 'fusion', '2026-01-01Z')",
    # an upsert, an ignored insert: no replacement, the rows keep their words
    "INSERT INTO items (id, url, source_id, title, fetched_at) VALUES "
    "(1, 'https://e.org/a', 'src', 'fusion', '2026-01-01Z') "
    "ON CONFLICT(id) DO UPDATE SET title = excluded.title",
    "INSERT OR IGNORE INTO items (id, url, source_id, title, fetched_at) "
    "VALUES (1, 'https://e.org/a', 'src', 'fusion', '2026-01-01Z')",
    # with recursive triggers the delete triggers fire too: words are not taken out twice
    "PRAGMA recursive_triggers = ON; INSERT OR REPLACE INTO items (id, url, source_id, title, "
    "fetched_at) VALUES (1, 'https://e.org/a', 'src', 'fusion new', '2026-01-01Z')",
])
def test_another_tools_insert_or_replace_keeps_the_indexes_in_step(store, db_path, write):
    store.save_items([
        {"url": "https://e.org/a", "source_id": "src", "title": "Quantum budget",
         "body": "Old words 量子技術"},
        {"url": "https://e.org/b", "source_id": "src", "title": "Old budget"}])
    conn = sqlite3.connect(db_path)
    conn.executescript(write)
    conn.commit()
    # and then a plain insert after it (a stale note must not take any words out)
    conn.execute("INSERT INTO items (url, source_id, title, fetched_at) "
                 "VALUES ('https://e.org/c', 'src', 'budget', '2026-01-01Z')")
    conn.commit()
    conn.close()
    _indexes_match_items(db_path)
