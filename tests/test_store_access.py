"""A store the CLI cannot use as it is (locked by another writer, read-only, from a newer
stiwatch, a migration step that fails): one error line naming the file, the data untouched."""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import re
import sqlite3
import subprocess
from typing import Iterator

import pytest

import analysts_store
import db
import db.store
from db.schema import LATEST_VERSION, migrate
from fsaccess import (AS_OTHER_USERS, NOBODY, as_user, late_reader_in_the_wal, made_read_only,
                      owners_store, shared_folder, stiwatch_as)


def error_line(result) -> str:
    """The one line a failed command printed (its output, which must be just that line)."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another process's write transaction on the store, held while the block runs."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_a_store_locked_by_another_writer_is_one_line_naming_it(stiwatch, db_path, monkeypatch):
    analysts_store.build(db_path)
    monkeypatch.setattr(db.store, "BUSY_TIMEOUT", 0.2)
    with write_lock(db_path):
        result = stiwatch("tag", "1", "--add", "area=society")
        # reading needs no lock: search and status still work meanwhile
        assert stiwatch("search", "quantum").exit_code == 0
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(f"Error: {db_path}: the database is locked by another process")
    with db.open_store(db_path) as store:
        assert store.tags_of(1) and not store.query(
            "SELECT 1 FROM tags WHERE item_id = 1 AND value = 'society'")


def test_an_older_store_locked_while_it_would_migrate_is_one_line(stiwatch, db_path,
                                                                  monkeypatch):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 1)
    conn.close()
    monkeypatch.setattr(db.store, "BUSY_TIMEOUT", 0.2)
    with write_lock(db_path):
        result = stiwatch("status")
    assert result.exit_code == 2
    assert error_line(result).startswith(
        f"Error: {db_path}: the database is locked by another process")
    assert stiwatch("status").exit_code == 0  # once free, it migrates


def read_only(path: Path):  # noqa: ANN201 - a context manager
    """The store file and its folder made read-only."""
    return made_read_only(path, path.parent)


def _store_in_one_file(db_path: Path) -> bytes:
    """The analysts' store at ``db_path``, checkpointed into its one file (no -wal or -shm
    beside it, as a copy made read-only would be); its bytes, to show nothing wrote to it."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_path.with_name(db_path.name + "-wal").unlink(missing_ok=True)
    db_path.with_name(db_path.name + "-shm").unlink(missing_ok=True)
    return db_path.read_bytes()


def test_a_read_only_store_reads_and_refuses_writes_in_one_line(stiwatch, db_path):
    before = _store_in_one_file(db_path)
    with read_only(db_path.parent / "stiwatch.db"):
        searched = stiwatch("search", "quantum")
        assert searched.exit_code == 0, searched.output
        result = stiwatch("tag", "1", "--add", "area=society")
    assert result.exit_code == 2
    assert error_line(result).startswith(f"Error: {db_path}: cannot write to the database")
    assert db_path.read_bytes() == before


def test_a_read_only_store_answers_every_command_that_only_reads(stiwatch, db_path):
    """An analyst with a shared copy they cannot write (docs/operations.md) reads its trends,
    an item's tags and the registry and readers as they search it; these commands write
    nothing, so they must not ask for the write access a correction needs."""
    before = _store_in_one_file(db_path)
    reads = (["trends"], ["tag", "1"], ["tag", "1", "--json"], ["sources", "list"],
             ["subscribers", "list"], ["digest", "status"])
    with read_only(db_path):
        results = {" ".join(command): stiwatch(*command) for command in reads}
    for command, result in results.items():
        assert result.exit_code == 0, (command, result.output)
    assert "governance" in results["tag 1"].output
    assert "mext-news" in results["sources list"].output
    assert db_path.read_bytes() == before


def test_a_store_from_a_newer_stiwatch_is_one_line_naming_it(stiwatch, db_path):
    with db.open_store(db_path) as store:
        store.conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', '2030-01-01')",
                           [LATEST_VERSION + 1])
    for command in (["status"], ["search", "quantum"], ["init"], ["export", "--format", "csv"]):
        result = stiwatch(*command)
        assert result.exit_code == 2, command
        assert error_line(result) == (
            f"Error: {db_path}: schema version {LATEST_VERSION + 1} is newer than this stiwatch "
            f"knows (up to {LATEST_VERSION}): upgrade stiwatch to open it"), command
    with pytest.raises(db.SchemaTooNew, match="upgrade stiwatch"):
        db.open_store(db_path, readonly=True)


def test_refusing_a_newer_store_leaves_its_folder_as_it_was(stiwatch, db_path, tmp_path):
    """`crawl` and `run` left the run lock's file (stiwatch.db.lock) behind the refusal, and
    `backup` the -wal and -shm files its read-only connection made."""
    with db.open_store(db_path) as store:
        store.conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', '2030-01-01')",
                           [LATEST_VERSION + 1])
    (tmp_path / "backups").mkdir()
    before = sorted(p.name for p in db_path.parent.iterdir())
    commands = (["init"], ["crawl"], ["run"], ["run", "--json"], ["status"],
                ["search", "quantum"], ["backup", str(tmp_path / "backups" / "copy.db")],
                ["digest", "send"], ["subscribers", "add", "a@example.org"], ["trends"])
    for command in commands:
        result = stiwatch(*command)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().splitlines()[-1] == (
            f"Error: {db_path}: schema version {LATEST_VERSION + 1} is newer than this stiwatch "
            f"knows (up to {LATEST_VERSION}): upgrade stiwatch to open it"), command
        assert sorted(p.name for p in db_path.parent.iterdir()) == before, command
    assert list((tmp_path / "backups").iterdir()) == []


def test_a_failing_migration_step_is_one_line_and_leaves_the_older_store_usable(stiwatch,
                                                                               db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=11)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES "
                 "('s', 'S', 'feed', 'https://s.example/feed', '2026-01-01', '2026-01-01')")
    conn.execute("INSERT INTO items (url, source_id, title, fetched_at) VALUES "
                 "('https://s.example/a', 's', 'Quantum strategy', '2026-01-01T00:00:00Z')")
    # Someone added by hand the column migration 12 adds: its ALTER TABLE fails.
    conn.execute("ALTER TABLE deliveries ADD COLUMN unanswered_at TEXT")
    conn.close()
    result = stiwatch("status")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(f"Error: {db_path}: migration 12 (")
    assert "duplicate column name: unanswered_at" in line
    assert line.endswith("the file is left at schema version 11")
    conn = sqlite3.connect(db_path, isolation_level=None)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 11
    assert conn.execute("SELECT title FROM items").fetchall() == [("Quantum strategy",)]
    conn.execute("ALTER TABLE deliveries DROP COLUMN unanswered_at")
    conn.close()
    assert stiwatch("init").exit_code == 0
    with db.open_store(db_path) as store:
        assert store.schema_version == LATEST_VERSION
        assert store.search("quantum")[0]["title"] == "Quantum strategy"


def test_a_store_whose_path_has_uri_characters_is_read_read_only(stiwatch, tmp_path):
    """The read-only open goes through an SQLite URI, where # ? and % have meanings."""
    path = tmp_path / "shared #1 ?50% off" / "stiwatch.db"
    path.parent.mkdir()
    analysts_store.build(path)
    with db.open_store(path, readonly=True) as store:
        assert store.schema_version == LATEST_VERSION
        assert store.search("quantum")


@pytest.mark.parametrize("journal", ["DELETE", "WAL"])
def test_an_older_read_only_store_says_it_needs_migrating(stiwatch, db_path, journal):
    """Every store stiwatch made is in WAL mode: reading one in a folder this user cannot
    write fails before its version is read (no -shm can be made), and the error only said to
    check the permissions, which had served well until the upgrade: a `stiwatch serve` or an
    analyst with read access only, the day the new version is installed."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 1)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.close()
    with read_only(db_path):
        result = stiwatch("search", "quantum")
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith(f"Error: {db_path}: cannot write to the database")
    assert line.endswith(f"it is at schema version {LATEST_VERSION - 1} and must be migrated to "
                         f"{LATEST_VERSION} once, by a user who can write it and its folder")


def test_a_write_the_disk_refuses_is_one_line_naming_the_store(tmp_path):
    """SQLite reports a write refused other than for want of space (a file over `ulimit -f`,
    systemd's LimitFSIZE=, a failing disk) as "disk I/O error": it was a traceback."""
    import resource
    import sys

    store = tmp_path / "s.db"
    command = [sys.executable, "-m", "stiwatch", "--db", str(store), "subscribers", "add"]
    assert subprocess.run([*command, "a@example.org"], capture_output=True).returncode == 0

    def small_files() -> None:  # not even one page more in the -wal
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run([*command, "b@example.org", "--name", "B" * 200],
                            capture_output=True, text=True, preexec_fn=small_files)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {store}: cannot write to the database: disk I/O error (a file size limit such "
        "as `ulimit -f`, or a failing disk)"]
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT email FROM subscribers").fetchall() == [("a@example.org",)]
    conn.close()


def test_an_older_store_says_once_that_it_was_migrated_whichever_command_opens_it(tmp_path):
    """After an upgrade the cron job is often the first to open the store: the migration
    (seconds to minutes on a large store) ran without a word, on screen or in the log; only
    `init` said so."""
    import sys

    store = tmp_path / "s.db"
    conn = sqlite3.connect(store, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 2)
    conn.close()
    log_file = tmp_path / "stiwatch.log"
    env = {**os.environ, "STIWATCH_DB": str(store), "STIWATCH_LOG_FILE": str(log_file),
           "STIWATCH_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "stiwatch"]
    quiet = subprocess.run([*command, "--quiet", "status"], env=env, capture_output=True,
                           text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""  # cron mails nothing for it ...
    message = (f"Migrated {store} from schema version {LATEST_VERSION - 2} to {LATEST_VERSION}.")
    [line] = [line for line in log_file.read_text().splitlines() if "Migrated" in line]
    assert line.endswith(f" WARNING stiwatch.store: {message}")  # ... and the log keeps it

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 1)
    conn.close()
    env["STIWATCH_DB"] = str(other)
    by_hand = subprocess.run([*command, "status"], env=env, capture_output=True, text=True)
    assert by_hand.returncode == 0
    assert by_hand.stderr == (f"Migrated {other} from schema version {LATEST_VERSION - 1} to "
                              f"{LATEST_VERSION}.\n")
    again = subprocess.run([*command, "status"], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr == ""  # once


def test_a_migration_by_the_cron_job_at_the_default_log_level_is_in_the_log_file(tmp_path):
    """The operator's settings name a log_file and keep the default log_level (WARNING); the
    cron job (`--quiet`) is the first to open the store after an upgrade. The migration (for
    good: the stiwatch before the upgrade can no longer open the file) left no line in the log,
    so nothing said when the store stopped being readable by the old version."""
    import sys

    store = tmp_path / "s.db"
    conn = sqlite3.connect(store, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 3)
    conn.close()
    log_file = tmp_path / "log" / "stiwatch.log"
    env = {key: value for key, value in os.environ.items() if key != "STIWATCH_LOG_LEVEL"}
    env.update(STIWATCH_DB=str(store), STIWATCH_LOG_FILE=str(log_file))
    quiet = subprocess.run([sys.executable, "-m", "stiwatch", "--quiet", "status"], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert quiet.returncode == 0 and quiet.stderr == ""  # nothing for cron to mail ...
    [line] = [line for line in log_file.read_text().splitlines() if "Migrated" in line]
    assert line.endswith(f" WARNING stiwatch.store: Migrated {store} from schema version "
                         f"{LATEST_VERSION - 3} to {LATEST_VERSION}.")  # ... the log keeps it

    # Without a log file (systemd's journal is the log), --quiet still leaves the one line.
    store = tmp_path / "journal.db"
    conn = sqlite3.connect(store, isolation_level=None)
    migrate(conn, target=LATEST_VERSION - 1)
    conn.close()
    env.update(STIWATCH_DB=str(store))
    del env["STIWATCH_LOG_FILE"]
    quiet = subprocess.run([sys.executable, "-m", "stiwatch", "--quiet", "status"], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert quiet.returncode == 0
    assert quiet.stderr.endswith(f" WARNING stiwatch.store: Migrated {store} from schema "
                                 f"version {LATEST_VERSION - 1} to {LATEST_VERSION}.\n")
    assert quiet.stderr.count("\n") == 1


@AS_OTHER_USERS
def test_another_user_reads_a_store_in_a_folder_it_cannot_write(tmp_path):
    """`stiwatch serve` or an analyst as a user with read access only (docs: a read-only store
    can still be searched, exported and served). For such a user SQLite reports a WAL store
    whose -shm it cannot create as "attempt to write a readonly database", not as "unable to
    open" (what root sees under chattr): search failed with 'check the permissions', and after
    an upgrade said nothing of the migration the store was waiting for."""
    import sys

    with shared_folder(0o755) as folder:
        current, older = folder / "current.db", folder / "older.db"
        analysts_store.build(current)
        conn = sqlite3.connect(older, isolation_level=None)
        migrate(conn, target=LATEST_VERSION - 1)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        for path in (current, older):
            path.chmod(0o644)
        nobody = as_user(NOBODY)
        env = {**os.environ, "HOME": str(folder)}

        def search(path: Path) -> subprocess.CompletedProcess:
            return subprocess.run([*nobody, sys.executable, "-m", "stiwatch", "--db", str(path),
                                   "search", "quantum"], env=env, capture_output=True,
                                  text=True, cwd=folder, stdin=subprocess.DEVNULL)

        result = search(current)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"\d+ items?\.", result.stdout.splitlines()[-1])
        result = search(older)
        assert result.returncode == 2
        assert result.stderr.endswith(
            f"it is at schema version {LATEST_VERSION - 1} and must be migrated to "
            f"{LATEST_VERSION} once, by a user who can write it and its folder\n")
        assert sorted(p.name for p in folder.iterdir()) == ["current.db", "older.db"]


@pytest.mark.parametrize("side", ["-wal", "-shm", "-journal"])
def test_no_store_is_made_in_a_file_sqlite_keeps_beside_a_database(stiwatch, db_path, side):
    """`stiwatch --db stiwatch.db-wal init` (completion one Tab too far): a checkpointed WAL is
    an empty file, which init took for a new store and filled, in the file where SQLite keeps
    the real store's next changes."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    target = db_path.with_name(db_path.name + side)
    target.touch()
    for command in (["init"], ["subscribers", "add", "a@example.org"]):
        result = stiwatch("--db", str(target), *command)
        assert result.exit_code == 2, result.output
        assert error_line(result) == (
            f"Error: {target}: that is a file SQLite keeps beside the database {db_path}, not "
            f"a database: name the database itself, {db_path}")
        assert target.read_bytes() == b""


def store_files(db_path: Path) -> list[str]:
    """The names of the store's file and of those beside it named after it."""
    return sorted(p.name for p in db_path.parent.iterdir() if p.name.startswith(db_path.name))


def _stiwatch_process(db_path: Path, *args: str, user: list[str] | None = None
                      ) -> subprocess.CompletedProcess:
    """`stiwatch --db DB ARGS` in a process of its own (as ``user``, a setpriv prefix)."""
    import sys

    return subprocess.run([*(user or []), sys.executable, "-m", "stiwatch", "--db",
                           str(db_path), *args], capture_output=True, text=True,
                          cwd=db_path.parent, stdin=subprocess.DEVNULL)


# Every command that only reads the store (`serve`: tests/test_serve.py).
READS = (["status"], ["status", "--json"], ["search", "quantum"],
         ["export", "--format", "csv"], ["export", "--format", "json"], ["trends"],
         ["tag", "1"], ["sources", "list"], ["subscribers", "list"], ["digest", "status"])


def test_commands_leave_no_wal_or_shm_file_beside_the_store(db_path, tmp_path):
    """Read mode=ro, every command that only reads left stiwatch.db-wal and stiwatch.db-shm
    in the data folder when it exited (a read-only connection cannot remove them): an
    operator copying or listing the folder found files they did not expect."""
    _store_in_one_file(db_path)
    (tmp_path / "backups").mkdir()
    writes = [["tag", "1", "--add", "area=society"], ["init"]]
    lock: list[str] = []
    for command in [*READS, ["backup", str(tmp_path / "backups" / "copy.db")], *writes]:
        result = _stiwatch_process(db_path, *command)
        assert result.returncode == 0, (command, result.stderr)
        if command in writes:
            # A command that writes takes the lock `stiwatch restore` holds (App.
            # keep_restore_out): its file stays, as a lock file does, never a -wal or -shm.
            lock = ["stiwatch.db.restore.lock"]
        assert store_files(db_path) == ["stiwatch.db", *lock], command


def test_a_command_leaves_the_wal_of_another_process_that_has_the_store_open(db_path):
    """The -wal of a store another process has open holds its last transactions: a command
    reads them and leaves the files to it; once it closes, they are gone."""
    _store_in_one_file(db_path)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("PRAGMA wal_autocheckpoint = 0")
    other.execute("INSERT INTO subscribers (email, created_at, updated_at) VALUES "
                  "('late@example.org', '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')")
    try:
        result = _stiwatch_process(db_path, "subscribers", "list")
        assert result.returncode == 0, result.stderr
        assert "late@example.org" in result.stdout
        assert Path(f"{db_path}-wal").stat().st_size > 0
    finally:
        other.close()
    assert store_files(db_path) == ["stiwatch.db"]


@pytest.mark.parametrize("locked", [made_read_only, read_only], ids=["file", "file-and-folder"])
def test_a_read_only_store_is_read_and_left_as_it_was(db_path, locked):
    """A copy of the store made read-only (a file of mode 0444, a read-only mount): read
    mode=ro in a folder it may write, it got a -wal and -shm beside it for good."""
    before = _store_in_one_file(db_path)
    with locked(db_path):
        for command in READS:
            result = _stiwatch_process(db_path, *command)
            assert result.returncode == 0, (command, result.stderr)
            assert store_files(db_path) == ["stiwatch.db"], command
    assert db_path.read_bytes() == before


def test_a_copy_with_the_wal_of_a_writer_killed_mid_work_is_read_on_a_read_only_mount(db_path):
    """A copy of the data folder taken while a writer had the store open holds its -wal and
    -shm: on a read-only mount, the committed changes in the -wal are read all the same."""
    _store_in_one_file(db_path)
    late_reader_in_the_wal(db_path)
    listing = store_files(db_path)
    assert listing == ["stiwatch.db", "stiwatch.db-shm", "stiwatch.db-wal"]
    with read_only(db_path):
        result = _stiwatch_process(db_path, "subscribers", "list")
    assert result.returncode == 0, result.stderr
    assert "late@example.org" in result.stdout
    assert store_files(db_path) == listing


@AS_OTHER_USERS
def test_a_store_this_user_may_not_read_is_one_line_saying_so(tmp_path):
    """SQLite says only "unable to open database file", and the open for writing that follows
    a failed read-only one turned that into "cannot write to the database": the user only
    wanted to read it."""
    with shared_folder(0o755, prefix="stiwatch-private-") as folder:
        store = folder / "stiwatch.db"
        analysts_store.build(store)
        store.chmod(0o600)
        nobody = as_user(NOBODY)
        result = _stiwatch_process(store, "status", user=nobody)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"Error: {store}: cannot read the database: this user may not read the file "
            "(check its owner and mode)"]
        assert store_files(store) == ["stiwatch.db"]


@AS_OTHER_USERS
def test_a_reader_leaves_no_files_that_stop_the_stores_owner_from_writing(tmp_path):
    """An analyst (another user) previews a digest from the store in a folder both may write:
    `digest preview` opened the store for writing, which SQLite turned into read-only for a
    file the analyst may not write, and left the analyst's -wal and -shm (mode 0644) beside it;
    every crawl and classify of the store's owner then failed, exit 2, "attempt to write a
    readonly database", until someone removed them. (On a store whose labels the owner had
    not yet synced, the preview itself failed, exit 2.)"""
    with shared_folder(0o777) as folder:
        store, env = owners_store(folder)

        def run_as(uid: int, *args: str) -> subprocess.CompletedProcess:
            return stiwatch_as(uid, store, *args, env=env)

        analyst, owner = 65532, 65534
        result = run_as(owner, "classify")  # the scheduled run
        assert result.returncode == 0, result.stderr
        result = run_as(analyst, "digest", "preview", "--week", "2026-W47",
                         "--out", str(folder / "w47.html"))
        assert result.returncode == 0, result.stderr
        assert not db.has_side_files(store)
        result = run_as(owner, "classify")
        assert result.returncode == 0, result.stderr


@AS_OTHER_USERS
def test_a_read_the_stores_owner_wrote_into_is_an_error_not_an_answer(tmp_path):
    """A user who may not write the store reads it as an unchanging file, without the writers'
    lock. When the owner's crawl wrote it meanwhile (folding its -wal into the file), what was
    read could mix pages from before and after (`quick_check`: "malformed") or miss rows, and
    the command said nothing. Here an export stalls on its full pipe while the owner writes."""
    import sys

    with shared_folder(0o755) as folder:
        store = folder / "stiwatch.db"
        analysts_store.build(store)
        with db.open_store(store) as owner:  # enough rows to fill the pipe (64 KB) many times
            owner.save_items([{"url": f"https://mext-news.example/n{n}", "source_id": "mext-news",
                               "title": f"Budget note {n}", "body": "The budget rose. " * 60,
                               "language": "en"} for n in range(400)])
        store.chmod(0o644)
        nobody = as_user(NOBODY)
        export = [*nobody, sys.executable, "-m", "stiwatch", "--db", str(store), "export",
                  "--format", "jsonl"]

        quiet = subprocess.run(export, capture_output=True, text=True, cwd=folder,
                               stdin=subprocess.DEVNULL)
        assert quiet.returncode == 0, quiet.stderr  # nobody wrote: the export as ever
        assert len(quiet.stdout.splitlines()) == 407

        process = subprocess.Popen(export, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=folder, stdin=subprocess.DEVNULL)
        try:
            first = process.stdout.read(1000)  # the export has the store open, and writes on
            with db.open_store(store) as owner:
                owner.save_items([{"url": "https://mext-news.example/late", "title": "Late",
                                   "source_id": "mext-news", "body": "Late news.",
                                   "language": "en"}])
            rest, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert first and rest
        assert process.returncode == 1
        assert stderr.decode().splitlines() == [
            f"Error: {store}: its owner wrote the store while this command read it (this user "
            "may not write it, so it is read without the writers' lock): what was shown may "
            "be incomplete or wrong; run the command again, or run it as the store's owner"]
        assert store_files(store) == ["stiwatch.db"]
