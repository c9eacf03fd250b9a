"""`stiwatch backup`: a consistent, checked copy through SQLite's online backup API."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import analysts_store
import db


def test_backup_to_a_file_and_to_a_folder(stiwatch, db_path, tmp_path):
    ids = analysts_store.build(db_path)
    dest = tmp_path / "copy.db"
    result = stiwatch("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert f"to {dest}" in result.output
    with db.open_store(dest) as copy:
        assert copy.scalar("SELECT count(*) FROM items") == len(ids)
        assert copy.search("quantum")[0]["id"] == ids["jp-quantum"]
    # One self-contained file: no WAL beside it.
    assert not (tmp_path / "copy.db-wal").exists()

    again = stiwatch("backup", str(dest))
    assert again.exit_code == 2 and "already exists" in again.output
    assert stiwatch("backup", "--force", str(dest)).exit_code == 0

    folder = tmp_path / "backups"
    folder.mkdir()
    assert stiwatch("backup", str(folder)).exit_code == 0
    [made] = folder.glob("stiwatch-*.db")
    assert sqlite3.connect(made).execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_backup_to_a_folder_not_yet_made(stiwatch, db_path, tmp_path):
    """The documented cron line names a folder with a trailing slash; night one creates it."""
    analysts_store.build(db_path)
    folder = tmp_path / "backups"
    result = stiwatch("--quiet", "backup", f"{folder}/")
    assert result.exit_code == 0, result.output
    assert result.output == ""  # cron mails any output: a night that went well says nothing
    assert folder.is_dir()  # not a file named "backups", which the next night would refuse
    [made] = folder.glob("stiwatch-*.db")
    assert sqlite3.connect(made).execute("PRAGMA quick_check").fetchone()[0] == "ok"

    # A script learns the dated name it made from --json, with --quiet too.
    time.sleep(1)  # the name has the second in it
    result = stiwatch("--quiet", "backup", "--json", f"{folder}/")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    [newer] = set(folder.glob("stiwatch-*.db")) - {made}
    assert outcome["backup"] == str(newer.absolute())
    assert outcome["database"] == str(db_path)
    assert outcome["schema_version"] == db.LATEST_VERSION
    assert outcome["bytes"] == newer.stat().st_size and outcome["seconds"] >= 0

    (tmp_path / "plain").write_text("not a folder")
    result = stiwatch("backup", f"{tmp_path / 'plain'}/")
    assert result.exit_code == 2 and "not a folder" in result.output
    assert (tmp_path / "plain").read_text() == "not a folder"


def test_backup_while_another_process_writes(stiwatch, db_path, tmp_path):
    """A writer holding the store busy does not make the copy inconsistent."""
    analysts_store.build(db_path)
    stop = threading.Event()

    def writer():
        with db.open_store(db_path) as store:
            n = 0
            while not stop.is_set():
                store.save_items([{"url": f"https://w.example/{n}-{k}", "source_id": "nsf-news",
                                   "title": f"w {n}"} for k in range(50)])
                n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = stiwatch("backup", str(tmp_path / "live.db"))
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    copy = sqlite3.connect(tmp_path / "live.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Items and the full-text index agree: the snapshot is one transaction.
    items = copy.execute("SELECT count(*) FROM items").fetchone()[0]
    assert items % 50 == 7 % 50 and items >= 7
    copy.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")  # raises if not


def test_backup_errors(stiwatch, db_path, tmp_path):
    result = stiwatch("backup", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and "no such database" in result.output
    analysts_store.build(db_path)
    result = stiwatch("backup", str(tmp_path / "missing" / "x.db"))
    assert result.exit_code == 2 and "no such folder" in result.output
    result = stiwatch("backup", "--force", str(db_path))
    assert result.exit_code == 2 and "the database itself" in result.output
    # ...however it is spelt: through "..", or through a link to it
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.db").symlink_to(db_path)
    before = db_path.read_bytes()
    for other_spelling in (db_path.parent / "sub" / ".." / db_path.name, tmp_path / "link.db"):
        result = stiwatch("backup", "--force", str(other_spelling))
        assert result.exit_code == 2 and "the database itself" in result.output
    assert db_path.read_bytes() == before
    # a name the file system takes, but not with the temporary copy's prefix and suffix
    long_name = tmp_path / ("b" * 250 + ".db")
    result = stiwatch("backup", str(long_name))
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: {long_name}: cannot write: File name too long"]
    assert not long_name.exists()


def test_backup_of_an_older_store_copies_it_as_it_is(stiwatch, db_path, tmp_path):
    """After installing a new version, the operator backs up before anything else opens the
    store (or forgot step 1 of Upgrading): the backup migrated the store first, so neither it
    nor the copy was at the old schema, and the way back to the old version was gone."""
    from db.schema import LATEST_VERSION, migrate

    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 2)
    conn.execute("PRAGMA journal_mode = WAL")  # as every store stiwatch made
    conn.execute("INSERT INTO subscribers (email, created_at, updated_at) "
                 "VALUES ('a@example.org', 'x', 'x')")
    conn.close()
    dest = tmp_path / "before-upgrade.db"
    result = stiwatch("backup", str(dest))
    assert result.exit_code == 0, result.output
    assert result.output == (f"Backed up {db_path} (schema version {LATEST_VERSION - 2}) to "
                             f"{dest}: " + result.output.split(": ", 1)[1])
    assert "Migrated" not in result.output
    for path in (db_path, dest):
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            LATEST_VERSION - 2,)
        assert conn.execute("SELECT email FROM subscribers").fetchall() == [("a@example.org",)]
        conn.close()


def test_backup_never_replaces_a_file_sqlite_keeps_beside_the_database(stiwatch, db_path):
    """`backup stiwatch.db-wal --force` (a shell completion one Tab too far) replaced the live
    store's write-ahead log with a database image: the changes a crawl had committed there
    but not yet copied into the file were gone for every later reader."""
    analysts_store.build(db_path)
    writer = sqlite3.connect(db_path)  # holds the WAL open, with changes in it
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE items SET title = 'kept in the WAL' WHERE id = 1")
        writer.commit()
        wal = db_path.with_name(db_path.name + "-wal")
        before = wal.read_bytes()
        for side in ("-wal", "-shm", "-journal"):
            target = db_path.with_name(db_path.name + side)
            result = stiwatch("backup", "--force", str(target))
            assert result.exit_code == 2, result.output
            assert result.output.splitlines() == [
                f"Error: {target}: that is a file SQLite keeps beside the database {db_path}; "
                "give the copy another name"]
        assert wal.read_bytes() == before
    finally:
        writer.close()
    with db.open_store(db_path, readonly=True) as store:
        assert store.scalar("SELECT title FROM items WHERE id = 1") == "kept in the WAL"


def test_a_backup_stopped_by_sigterm_leaves_no_partial_copy(db_path, tmp_path):
    """systemd stops a unit with SIGTERM (`systemctl stop`, a shutdown, TimeoutStartSec):
    the backup died at once, leaving its `.stiwatch-...db.*.tmp`, as large as the store, in
    the backup folder for good (the pruning `find ... -name 'stiwatch-*.db'` never sees it)."""
    analysts_store.build(db_path)
    # Enough pages that copying and checking them takes a while to catch in the act.
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE ballast (b BLOB)")
    conn.executemany("INSERT INTO ballast VALUES (randomblob(1000000))", [()] * 300)
    conn.commit()
    conn.close()
    folder = tmp_path / "backups"
    folder.mkdir()
    backup = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path),
                               "--quiet", "backup", f"{folder}/"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(folder.glob(".*.tmp")) and backup.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert backup.poll() is None, "the backup ended before it could be stopped"
    backup.send_signal(signal.SIGTERM)
    _, stderr = backup.communicate(timeout=60)

    assert backup.returncode == 143, stderr
    assert stderr.splitlines() == ["Error: interrupted by SIGTERM"]
    assert list(folder.iterdir()) == []
