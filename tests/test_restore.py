"""`stiwatch restore BACKUP`: the backup in the database's place, the replaced files moved aside
untouched, and the subscribers and deliveries only they record carried over."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
import sqlite3
import subprocess
import sys
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

import analysts_store
import db
from db import restore as restoring
from db.schema import LATEST_VERSION, MIGRATIONS, migrate
from digest.weeks import last_complete_week
from digeststore import build, story
from fsaccess import (
    AS_OTHER_USERS, NOBODY, as_user, late_reader_in_the_wal, made_read_only, shared_folder,
)
from mockserver import MockServer
from smtpserver import SmtpServer
from stiwatch.commands import restore as restore_command, subscribers as subscribers_command

EMPTY_RSS = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def feed():
    """An empty feed on loopback, the store's only source: `run --digest` crawls nothing new
    and goes on to its digest step."""
    with MockServer() as server:
        @server.route("/feed.xml")
        def empty(handler) -> None:  # noqa: ANN001
            handler.send_body(200, EMPTY_RSS, "application/rss+xml")

        yield server.url("/feed.xml")


def run_digest(db_path: Path, smtp: SmtpServer) -> subprocess.CompletedProcess:
    """`stiwatch --quiet run --digest` as cron runs it: a process of its own, the real clock."""
    env = {**os.environ, "STIWATCH_DB": str(db_path), "STIWATCH_DOWNLOAD_DELAY": "0",
           "STIWATCH_AUTOTHROTTLE": "false", "STIWATCH_RETRY_TIMES": "0",
           **smtp.settings_env()}
    return subprocess.run([sys.executable, "-m", "stiwatch", "--quiet", "run", "--digest"],
                          env=env, cwd=db_path.parent, capture_output=True, text=True,
                          timeout=180)


def take_backup(stiwatch, tmp_path: Path) -> Path:
    result = stiwatch("--quiet", "backup", f"{tmp_path / 'backups'}/")
    assert result.exit_code == 0, result.output
    [made] = (tmp_path / "backups").glob("stiwatch-*.db")
    return made


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def unlocked(names: list[str]) -> list[str]:
    """Names but the lock files, which a refused restore leaves as a refused run does."""
    return [name for name in names if not name.endswith(".lock")]


def test_restore_then_run_digest_mails_nothing_twice_and_a_later_reader_gets_the_week(
        stiwatch, db_path, tmp_path, smtp, feed):
    """The week mailed after the backup was taken, and the reader who subscribed after it,
    are recorded only in the store the backup replaces: carried over, the next `run
    --digest` mails the week to the new reader alone."""
    week = last_complete_week(ZoneInfo("Asia/Tokyo"), datetime.now(timezone.utc))
    published = (week.start + timedelta(days=2)).astimezone(timezone.utc).isoformat()
    store = build(db_path, [story("https://x.example/w", published, title="A story")])
    store.sync_sources([{"id": "feed", "name": "Feed", "kind": "feed", "url": feed,
                         "country": "JP", "language": "en", "org_type": "news"}])
    store.save_subscribers([{"email": "early@example.org"}])
    store.close()
    backup = take_backup(stiwatch, tmp_path)

    first = run_digest(db_path, smtp)  # Monday's digest run, after the night's backup
    assert first.returncode == 0, first.stderr
    assert [m.rcpt for m in smtp.messages] == ["early@example.org"]
    assert stiwatch("subscribers", "add", "late@example.org").exit_code == 0

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Carried over from the moved-aside store: 1 subscriber added, 0 changed or "
            "removed, 1 delivery (1 sent, 0 in doubt).") in result.stdout
    assert f"Weeks recorded as sent (deliveries): {week.label} (1)." in result.stdout

    again = run_digest(db_path, smtp)
    assert again.returncode == 0, again.stderr
    assert sorted((m.rcpt, m.message["X-Stiwatch-Week"]) for m in smtp.messages) == [
        ("early@example.org", week.label), ("late@example.org", week.label)]


def test_a_delivery_sent_stays_sent_and_one_in_doubt_stays_in_doubt(stiwatch, db_path,
                                                                   tmp_path):
    """A backup taken mid-digest shows the reader being mailed as owed: the moved-aside
    store's `sent` wins; a delivery in doubt comes across in doubt (never resent by a run); a
    reader removed since stays removed."""
    analysts_store.build(db_path)
    store = db.open_store(db_path)
    store.save_subscribers([{"email": "a@example.org"}, {"email": "b@example.org"},
                            {"email": "gone@example.org"}])
    store.ensure_deliveries("2026-W47", ["a@example.org", "b@example.org"])
    store.close()
    backup = take_backup(stiwatch, tmp_path)
    with db.open_store(db_path) as store:
        store.delivery_sending("a@example.org", "2026-W47", "<m1@x>", 3, 10)
        store.delivery_sent("a@example.org", "2026-W47")
        store.delivery_sending("b@example.org", "2026-W47", "<m2@x>", 3, 10)
        store.delivery_unanswered("b@example.org", "2026-W47", "timed out after DATA")
        store.deactivate_subscriber("gone@example.org")

    result = stiwatch("restore", "--json", str(backup))
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    stamp = datetime.strptime(backup.stem.removeprefix("stiwatch-"), "%Y%m%dT%H%M%SZ")
    assert outcome["backup_taken_at"] == stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert outcome["carry_over"]["deliveries"] == 2
    assert outcome["carry_over"]["deliveries_sent"] == 1
    assert outcome["carry_over"]["in_doubt"] == 1
    assert outcome["carry_over"]["subscribers_changed"] == ["gone@example.org"]
    assert outcome["weeks_sent"] == [{"week": "2026-W47", "sent": 1}]
    assert outcome["in_doubt"] == 1
    with db.open_store(db_path) as store:
        rows = {r["subscriber"]: r for r in store.deliveries("2026-W47")}
        assert rows["a@example.org"]["status"] == "sent"
        assert rows["b@example.org"]["status"] == "sending"
        assert rows["b@example.org"]["unanswered_at"] is not None
        assert store.owed_deliveries("2026-W47", "9999") == []
        # the store has fewer items than the digests were built from: brought down to them
        assert rows["a@example.org"]["through_item_id"] == store.max_item_id()
        assert not store.get_subscriber("gone@example.org")["active"]
    assert not list(tmp_path.glob(".stiwatch.db.*"))  # neither the copy nor its carry-over copy


@pytest.mark.parametrize("lock, holder", [
    (".lock", "another stiwatch run or crawl"),
    (".digest-send.lock", "a `stiwatch digest send`"),  # by hand: it takes only its own
    # `subscribers add`, `tag --add`, `init`, `sources sync` have it for a moment
    (".restore.lock", "a `stiwatch subscribers`, `tag`, `init` or `sources sync`"),
], ids=["run", "digest-send", "subscribers"])
def test_restore_is_refused_while_a_run_or_a_sender_holds_its_lock(stiwatch, db_path,
                                                                   tmp_path, lock, holder,
                                                                   monkeypatch):
    monkeypatch.setattr(restore_command, "EDIT_WAIT", 0)
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    before = digest_of(db_path)
    with db.FileLock(f"{db_path}{lock}"):  # a run, or a sender, under way
        listing = folder_listing(db_path.parent)
        result = stiwatch("restore", str(backup))
    assert result.exit_code == 3
    assert result.output.splitlines() == [
        f"Error: {holder} (pid {os.getpid()}) holds the lock {db_path}{lock}; this restore "
        "did nothing"]
    assert digest_of(db_path) == before

    assert unlocked(folder_listing(db_path.parent)) == unlocked(listing)  # nothing moved


@pytest.mark.parametrize("command, holder", [
    (["tag", "ITEM", "--add", "area=open_science"], "stiwatch tag"),
    (["subscribers", "add", "new@example.org"], "stiwatch subscribers add"),
    (["init"], "stiwatch init"),
])
def test_a_restore_refused_by_a_command_names_that_command(stiwatch, db_path, tmp_path,
                                                           monkeypatch, command, holder):
    """The lock says which command holds it: a restore refused while `init` held it said
    "a `stiwatch subscribers`, `tag`, `init` or `sources sync`", and a `tag` refused while
    an `init` migrated said "a `stiwatch restore`"."""
    monkeypatch.setattr(restore_command, "EDIT_WAIT", 0)
    ids = analysts_store.build(db_path)
    args = [str(ids["jp-quantum"]) if arg == "ITEM" else arg for arg in command]
    assert stiwatch(*args).exit_code == 0
    lock = restoring.edit_lock_path(db_path)
    # What the command wrote in the lock it held: its pid (gone now) and itself.
    pid, label = lock.read_text().split(" ", 1)
    assert label == f"{holder}\n" and pid.isdigit()
    backup = take_backup(stiwatch, tmp_path)
    with db.FileLock(lock, label.strip()):  # held as that command holds it
        result = stiwatch("restore", str(backup))
    assert result.exit_code == 3
    assert result.output.splitlines() == [
        f"Error: `{holder}` (pid {os.getpid()}) holds the lock {lock}; this restore did nothing"]


def _text(path: Path) -> Path:
    path.write_text("email,name\n")
    return path


def _other_sqlite(path: Path) -> Path:
    sqlite3.connect(path).execute("CREATE TABLE notes (x)").connection.commit()
    return path


def _corrupt(path: Path, backup: Path) -> Path:
    """The backup with its items table's first page garbled, as a failing disk leaves it."""
    path.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(path)
    root, size = (conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'items'")
                  .fetchone()[0], conn.execute("PRAGMA page_size").fetchone()[0])
    conn.close()
    with path.open("r+b") as handle:
        handle.seek((root - 1) * size + 8)
        handle.write(b"\xff" * 32)
    return path


def _newer(path: Path, backup: Path) -> Path:
    path.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')",
                 [LATEST_VERSION + 1])
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("make, says", [
    (lambda tmp, backup: tmp / "missing.db", "no such file"),
    (lambda tmp, backup: _text(tmp / "readers.csv"), "not an SQLite database"),
    (lambda tmp, backup: _other_sqlite(tmp / "other.db"), "not a stiwatch database"),
    # SQLite's own verdict depends on what the garbled bytes hit, and the store's pages are
    # not laid out the same in every build: "database disk image is malformed", "NULL value
    # in items.url", ... The words around it are stiwatch's.
    (lambda tmp, backup: _corrupt(tmp / "corrupt.db", backup),
     "fails its integrity check (PRAGMA quick_check: "),
    (lambda tmp, backup: _newer(tmp / "newer.db", backup),
     f"schema version {LATEST_VERSION + 1} is newer than this stiwatch knows"),
    (lambda tmp, backup: tmp / "stiwatch.db", "that is the database itself"),
    (lambda tmp, backup: tmp / "stiwatch.db-wal", "a file SQLite keeps beside the database"),
], ids=["missing", "text", "other-sqlite", "corrupt", "newer", "itself", "wal"])
def test_a_backup_that_cannot_be_restored_is_refused_naming_it(stiwatch, db_path, tmp_path,
                                                              make, says):
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    writer = sqlite3.connect(db_path)  # a -wal beside the database, as while it is in use
    writer.execute("PRAGMA journal_mode = WAL")
    bad = make(tmp_path, backup)
    before = digest_of(db_path)
    listing = folder_listing(tmp_path)
    result = stiwatch("restore", str(bad))
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {bad}: ") and says in line, line
    if "integrity" in says:
        assert line.endswith("); restore another backup"), line
    assert folder_listing(tmp_path) == listing
    writer.close()
    assert digest_of(db_path) == before


def test_a_damaged_store_that_does_not_open_is_still_replaced_and_the_operator_told(
        stiwatch, db_path, tmp_path):
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    db_path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 32)  # a failing disk
    garbage = digest_of(db_path)

    result = stiwatch("restore", "--keep-damaged-in", str(tmp_path / "damaged"), str(backup))
    assert result.exit_code == 1
    assert f"Moved the database it replaces aside to {tmp_path / 'damaged'}: stiwatch.db" \
        in result.stdout
    first, advice = result.stderr.splitlines()
    assert first.startswith(f"Not carried over: {tmp_path / 'damaged' / 'stiwatch.db'}: ")
    assert "read the mail server's log" in advice
    assert "run `stiwatch run` without --digest until a newer week is over" in advice
    assert digest_of(tmp_path / "damaged" / "stiwatch.db") == garbage
    with db.open_store(db_path) as store:
        assert store.scalar("SELECT count(*) FROM items") == len(analysts_store.ITEMS)


def test_a_damaged_store_whose_items_fail_the_check_still_gives_its_readers(
        stiwatch, db_path, tmp_path):
    """What fails is most often the large part, the items: the readers and their deliveries
    pass a check of their own and come across."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": "new@example.org"}])
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = DELETE")  # everything in the file, for _corrupt
    conn.close()
    _corrupt(tmp_path / "broken.db", db_path)
    os.replace(tmp_path / "broken.db", db_path)

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    assert "1 subscriber added" in result.stdout
    [check] = [line for line in result.stdout.splitlines() if "integrity" in line]
    assert check.startswith("The moved-aside store fails its integrity check (")
    assert check.endswith("); its subscribers and deliveries pass theirs.")
    # the items' URLs match corrections to items: read from a failing table, not carried
    assert re.search(r"^Analysts' corrections not carried over from the moved-aside store: "
                     r"the items table fails PRAGMA quick_check \(.+\); they remain in "
                     r".+/damaged-\d{8}T\d{6}Z/stiwatch\.db\.$", result.stdout, re.M)
    with db.open_store(db_path) as store:
        assert store.get_subscriber("new@example.org")["active"]


def older_store(path: Path, emails: list[str], version: int = LATEST_VERSION - 2) -> None:
    """A store of an older schema ``version`` (two versions old unless said), as the stiwatch
    before an upgrade left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=version)
    for email in emails:
        conn.execute("INSERT INTO subscribers (email, created_at, updated_at) "
                     "VALUES (?, '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z')", [email])
    conn.close()


def test_a_backup_from_an_older_schema_is_migrated_and_an_older_damaged_store_is_read_from_a_copy(
        stiwatch, db_path, tmp_path):
    """Restored right after an upgrade: the backup is migrated on open, as any command does,
    and the store it replaces is read from a migrated copy: its own files stay at the old
    version, the way back to the old stiwatch."""
    backup = tmp_path / "before-upgrade.db"
    older_store(backup, ["a@example.org"])
    db_path.write_bytes(backup.read_bytes())  # the same store (one installation_id), later
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO subscribers (email, created_at, updated_at) "
                 "VALUES ('b@example.org', '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z')")
    conn.execute("INSERT INTO deliveries (subscriber, period, status, sent_at, updated_at) "
                 "VALUES ('b@example.org', '2026-W47', 'sent', 'x', '2026-11-24T00:00:00Z')")
    conn.commit()
    conn.close()
    damaged = digest_of(db_path)

    result = stiwatch("restore", "--keep-damaged-in", str(tmp_path / "old"), str(backup))
    assert result.exit_code == 0, result.output
    assert (f"Migrated {db_path} from schema version {LATEST_VERSION - 2} to "
            f"{LATEST_VERSION}.") in result.stderr
    assert "1 subscriber added" in result.stdout and "1 delivery (1 sent" in result.stdout
    assert (f"(Read from a copy of it migrated from schema version {LATEST_VERSION - 2}; "
            "the moved-aside files are unchanged.)") in result.stdout
    assert digest_of(tmp_path / "old" / "stiwatch.db") == damaged
    assert folder_listing(tmp_path / "old") == ["stiwatch.db"]
    with db.open_store(db_path) as store:
        assert store.schema_version == LATEST_VERSION
        assert [r["status"] for r in store.deliveries("2026-W47")] == ["sent"]


def test_no_carry_over_and_no_database_to_replace(stiwatch, db_path, tmp_path):
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": "new@example.org"}])
    tag(stiwatch, db_path, "us-security", "--add", "area=open_science")
    result = stiwatch("restore", "--no-carry-over", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Nothing carried over (--no-carry-over): digests sent, readers changed and "
            "analysts' corrections made since the backup are not in the restored store."
            ) in result.stdout
    assert stiwatch("subscribers", "list").stdout.count("@example.org") == 0
    assert url_of("us-security") not in searched(stiwatch, "--area", "open_science")

    for path in restoring.present_files(db_path):
        path.unlink()
    result = stiwatch("--quiet", "restore", str(backup))
    assert result.exit_code == 0 and result.output == ""
    assert db_path.exists() and not list(tmp_path.glob(".stiwatch.db.*"))


def test_a_sent_delivery_of_either_store_is_never_undone(stiwatch, db_path, tmp_path):
    """Whichever store changed a row last (clocks step back, a backup restored over a store
    older than it), a digest recorded as sent is never owed again."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": "x@example.org"}, {"email": "y@example.org"}])
    backup = take_backup(stiwatch, tmp_path)

    def rows(path: Path, states: dict[str, tuple[str, str]]) -> None:
        conn = sqlite3.connect(path)
        for email, (status, updated) in states.items():
            conn.execute("INSERT OR REPLACE INTO deliveries (subscriber, period, status, "
                         "updated_at) VALUES (?, '2026-W47', ?, ?)", [email, status, updated])
        conn.commit()
        conn.close()

    rows(backup, {"x@example.org": ("sent", "2026-11-24T00:00:00Z"),
                  "y@example.org": ("pending", "2026-11-25T00:00:00Z")})
    rows(db_path, {"x@example.org": ("pending", "2026-11-25T00:00:00Z"),
                   "y@example.org": ("sent", "2026-11-24T00:00:00Z")})
    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    with db.open_store(db_path) as store:
        assert {r["subscriber"]: r["status"] for r in store.deliveries("2026-W47")} == {
            "x@example.org": "sent", "y@example.org": "sent"}


def test_a_folder_already_holding_damaged_files_is_refused_before_anything_moves(
        stiwatch, db_path, tmp_path):
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    folder = tmp_path / "damaged"
    assert stiwatch("restore", "--keep-damaged-in", str(folder), str(backup)).exit_code == 0
    kept, before = digest_of(folder / "stiwatch.db"), digest_of(db_path)
    result = stiwatch("restore", "--keep-damaged-in", str(folder), str(backup))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {folder / 'stiwatch.db'}: already exists; name another folder for the "
        "damaged files (nothing was moved)"]
    assert digest_of(folder / "stiwatch.db") == kept and digest_of(db_path) == before


def test_a_backup_whose_migration_fails_leaves_the_database_as_it_was(stiwatch, db_path,
                                                                      tmp_path):
    """The copy is migrated and given the carry-over under its temporary name: a failure
    there (or Ctrl-C) comes before anything is moved."""
    analysts_store.build(db_path)
    backup = tmp_path / "before-upgrade.db"
    [creates] = [m.version for m in MIGRATIONS if "CREATE TABLE item_classification" in m.sql]
    older_store(backup, ["a@example.org"], version=creates - 1)
    conn = sqlite3.connect(backup)
    conn.execute("CREATE TABLE item_classification (x)")  # what the next migration creates
    conn.execute("UPDATE store_info SET value = ?", [installation_id(db_path)])  # one store
    conn.commit()
    conn.close()
    before = digest_of(db_path)
    listing = folder_listing(tmp_path)
    result = stiwatch("restore", str(backup))
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {backup} (its copy): migration {creates} (")
    assert "table item_classification already exists" in line
    assert digest_of(db_path) == before
    assert unlocked(folder_listing(tmp_path)) == unlocked(listing)  # no copy left, none moved


def installation_id(path: Path) -> str:
    with db.open_store(path) as store:
        return store.installation_id


def test_a_backup_of_another_installation_is_refused_unless_asked_and_keeps_this_ones_id(
        stiwatch, db_path, tmp_path):
    """A pilot's backup restored over production by mistake is refused; asked for, the
    restored store keeps production's installation_id, which its digests' Message-IDs
    include: with the pilot's, the two would send the same Message-IDs to a reader both
    mail, and providers drop the second as a copy."""
    analysts_store.build(db_path)
    production = installation_id(db_path)
    pilot = tmp_path / "pilot" / "stiwatch.db"
    pilot.parent.mkdir()
    analysts_store.build(pilot)
    assert installation_id(pilot) != production
    before, listing = digest_of(db_path), folder_listing(tmp_path)

    result = stiwatch("restore", str(pilot))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {pilot}: a backup of another installation (its installation_id is "
        f"{installation_id(pilot)}, the database's {production}): restore it over this one "
        "only with --other-installation; nothing was touched"]
    assert digest_of(db_path) == before and folder_listing(tmp_path) == listing

    result = stiwatch("restore", "--other-installation", str(pilot))
    assert result.exit_code == 0, result.output
    assert (f"The backup is another installation's ({installation_id(pilot)}): the restored "
            f"store keeps this one's installation_id ({production}), part of every digest's "
            "Message-ID.") in result.stdout
    assert installation_id(db_path) == production


def test_a_backup_older_than_the_installation_id_gets_the_replaced_stores(stiwatch, db_path,
                                                                         tmp_path):
    """A backup from before migration 16 is given a random id when migrated: the store it
    replaces tells this installation's, kept so a week mailed again keeps its Message-ID."""
    analysts_store.build(db_path)
    production = installation_id(db_path)
    backup = tmp_path / "from-2025.db"
    conn = sqlite3.connect(backup, isolation_level=None)
    migrate(conn, target=15)
    conn.close()
    result = stiwatch("restore", "--json", str(backup))
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["backup_installation_id"] is None
    assert outcome["installation_id"] == production == installation_id(db_path)


@pytest.mark.parametrize("change", [
    ["subscribers", "add", "new@example.org"],
    ["subscribers", "remove", "a@example.org"],
    ["subscribers", "import", "readers.csv"],
], ids=["add", "remove", "import"])
def test_a_change_of_the_subscribers_during_a_restore_is_refused_not_lost(
        stiwatch, db_path, tmp_path, monkeypatch, change):
    """A reader added by hand while a restore runs would be written into the store it moves
    aside, after the carry-over read it, and be lost: refused (exit 3), nothing written."""
    monkeypatch.setattr(subscribers_command, "EDIT_WAIT", 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "readers.csv").write_text("email\nnew@example.org\n")
    analysts_store.build(db_path)
    assert stiwatch("subscribers", "add", "a@example.org").exit_code == 0
    before = stiwatch("subscribers", "list", "--json", "--all").stdout
    with db.FileLock(restoring.edit_lock_path(db_path)):  # as `stiwatch restore` holds it
        result = stiwatch(*change)
    assert result.exit_code == 3
    assert result.output.splitlines() == [
        f"Error: a `stiwatch restore` (pid {os.getpid()}) holds the lock {db_path}.restore.lock; "
        "nothing was changed: run this again once it has finished"]
    assert stiwatch("subscribers", "list", "--json", "--all").stdout == before
    assert stiwatch(*change).exit_code == 0  # once it has finished


def test_restored_twice_in_one_second_and_from_relative_paths_the_summary_names_whole_paths(
        stiwatch, db_path, tmp_path, monkeypatch):
    """A second restore in the same second is not refused for a folder name it chose itself,
    and the summary, read later in a log, names every file by its whole path."""
    analysts_store.build(db_path)
    take_backup(stiwatch, tmp_path)
    now = datetime.now(timezone.utc)
    stamps = [(now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%SZ") for s in range(5)]
    for stamp in stamps:  # an earlier restore's damaged files, in each of the next seconds
        (tmp_path / f"damaged-{stamp}").mkdir()
        (tmp_path / f"damaged-{stamp}" / "stiwatch.db").write_bytes(b"kept")
    monkeypatch.chdir(tmp_path / "backups")
    [name] = os.listdir(".")

    result = stiwatch("restore", name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Restored {tmp_path / 'backups' / name} (taken ")
    moved = lines[1].removeprefix("Moved the database it replaces aside to ").split(":")[0]
    assert moved in {f"{tmp_path}/damaged-{stamp}-2" for stamp in stamps}, lines[1]
    for stamp in stamps:
        assert (tmp_path / f"damaged-{stamp}" / "stiwatch.db").read_bytes() == b"kept"


def test_a_database_that_is_a_link_is_restored_where_it_points_with_its_wal(
        stiwatch, db_path, tmp_path):
    """SQLite keeps the -wal beside the file a link points to: the store it replaces is read
    with its last transactions (a reader added there), and the link stays a link."""
    real = tmp_path / "data" / "stiwatch.db"
    real.parent.mkdir()
    analysts_store.build(real)
    db_path.symlink_to(real)
    backup = take_backup(stiwatch, tmp_path)
    writer = sqlite3.connect(db_path, isolation_level=None)  # in use: its -wal not yet folded
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO subscribers (email, created_at, updated_at) "
                   "VALUES ('late@example.org', '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')")
    assert Path(f"{real}-wal").stat().st_size > 0

    result = stiwatch("restore", str(backup))
    writer.close()
    assert result.exit_code == 0, result.output
    assert f"as {real}: " in result.stdout
    assert "1 subscriber added" in result.stdout
    assert db_path.is_symlink() and db_path.resolve() == real
    [folder] = real.parent.glob("damaged-*")
    assert "stiwatch.db-wal" in folder_listing(folder)
    with db.open_store(db_path) as store:
        assert store.get_subscriber("late@example.org")["active"]


def test_a_folder_without_room_for_the_copies_is_refused_before_anything_is_written(
        stiwatch, db_path, tmp_path):
    """The restore copies the backup, and the database it replaces (to carry its readers
    over), beside the database: a disk too full for them is named with the sizes, not met
    half-way as a traceback."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    free = shutil.disk_usage(tmp_path).free
    size = db_path.stat().st_size
    os.truncate(db_path, size + free + 10**9)  # sparse: a store larger than the space left
    listing = folder_listing(tmp_path)

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {tmp_path}: ") and " MB free, and the restore needs about " \
        in line, line
    assert line.endswith(", to carry its readers and deliveries over); free some space; "
                         "nothing was touched"), line
    assert unlocked(folder_listing(tmp_path)) == unlocked(listing)
    assert db_path.stat().st_size == size + free + 10**9


def test_a_run_under_way_when_the_backup_was_taken_is_not_shown_running_after_the_restore(
        stiwatch, db_path, tmp_path):
    """The 07:30 backup caught the daily run mid-crawl: restored, `stiwatch status` showed it
    `running` (with a pid that may well be alive, another process's) while the timers were
    stopped. The restore holds the run lock, so it knows none is: recorded as a run would."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.start_run("run --digest")
        store.start_crawl_run({"pid": 1, "host": "here"})  # pid 1 is always alive
    backup = take_backup(stiwatch, tmp_path)

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Under way when the backup was taken, now recorded as the next run would: 1 "
            "scheduled run as failed and 1 crawl run as interrupted (what they stored after it "
            "is fetched again).") in result.stdout
    status = stiwatch("status").stdout
    assert " running " not in status, status
    with db.open_store(db_path) as store:
        [run] = store.runs()
        assert run["status"] == "failed"
        assert run["steps"][0]["summary"] == ("under way when the backup was taken; this store "
                                              "was restored from it")
        assert store.crawl_runs()[0]["status"] == "interrupted"  # the newest


def test_a_folder_of_backups_given_as_backup_names_the_newest_in_it(stiwatch, db_path,
                                                                   tmp_path):
    """`stiwatch backup /var/backups/stiwatch/` writes dated copies there; given that folder
    to restore, the refusal names the newest copy, for the operator to check and pass."""
    analysts_store.build(db_path)
    older = tmp_path / "backups" / "stiwatch-20261115T073000Z.db"
    older.parent.mkdir()
    older.write_bytes(b"")
    result = stiwatch("--quiet", "backup", f"{tmp_path / 'backups'}/")
    assert result.exit_code == 0, result.output
    [newest] = [p for p in (tmp_path / "backups").glob("stiwatch-*.db") if p != older]
    result = stiwatch("restore", str(tmp_path / "backups"))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {tmp_path / 'backups'}: is a folder; name the backup file in it to restore "
        f"(the newest `stiwatch backup` made there: {newest.name})"]


def test_the_copies_a_restore_killed_outright_left_are_removed_by_the_next(stiwatch, db_path,
                                                                          tmp_path):
    """SIGKILL (or a crash) mid-restore leaves its hidden copy of the backup, and of the
    store it was replacing, each as large as a store: the next restore, holding the run lock
    every restore takes, removes them, and says so."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    staged = tmp_path / ".stiwatch.db.restore.k1ll3d.tmp"
    staged.write_bytes(backup.read_bytes())
    carrying = tmp_path / ".stiwatch.db.restore.k1ll3d.tmp.carry-over.x9"
    carrying.mkdir()
    (carrying / "stiwatch.db").write_bytes(db_path.read_bytes())
    (tmp_path / ".stiwatch.db.unrelated").write_text("kept")

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Removed what a restore killed outright had left beside the database: "
            f"{staged.name}, {carrying.name}.") in result.stdout
    assert not staged.exists() and not carrying.exists()
    assert (tmp_path / ".stiwatch.db.unrelated").read_text() == "kept"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stiwatch.db.restore.")]


@pytest.mark.parametrize("where, says", [
    (lambda tmp: tmp / "typo" / "damaged", "{tmp}/typo does not exist (make it, or name "
     "another folder)"),
    (lambda tmp: tmp / "readers.csv" / "damaged", "{tmp}/readers.csv is a file, not a folder"),
    (lambda tmp: tmp / "locked", "this user may not write in {tmp}/locked (check its owner "
     "and mode)"),
], ids=["missing-parent", "parent-is-a-file", "not-writable"])
def test_a_folder_for_the_damaged_files_that_cannot_take_them_is_refused_before_any_copy(
        stiwatch, db_path, tmp_path, where, says):
    """Found only when moving the database aside, after the copy of the backup and the
    carry-over (minutes on a large store); a missing parent was made, a typo and all."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    (tmp_path / "readers.csv").write_text("email\n")
    (tmp_path / "locked").mkdir()
    folder = where(tmp_path)
    before, listing = digest_of(db_path), folder_listing(tmp_path)
    with made_read_only(tmp_path / "locked"):
        result = stiwatch("restore", "--keep-damaged-in", str(folder), str(backup))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {folder}: cannot keep the damaged files there: "
        f"{says.format(tmp=tmp_path)}; nothing was touched"]
    assert folder_listing(tmp_path) == listing  # not even the lock files: refused up front
    assert digest_of(db_path) == before


def test_a_folder_for_the_damaged_files_on_a_full_file_system_is_refused_before_any_copy(
        stiwatch, db_path, tmp_path, other_file_system):
    """On another file system, moving the database aside copies it: without room there the
    move failed after the copy of the backup and the carry-over."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    folder = other_file_system
    size = db_path.stat().st_size
    free = shutil.disk_usage(folder.parent).free
    os.truncate(db_path, size + free + 10**9)  # sparse: larger than /dev/shm has room for
    listing = folder_listing(tmp_path)
    # --no-carry-over: the database's own folder needs no room for a copy of it
    result = stiwatch("restore", "--no-carry-over", "--keep-damaged-in", str(folder),
                      str(backup))
    made = folder.exists()
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {folder}: cannot keep the damaged files there: on another "
                           "file system than the database, where moving them copies them, it "
                           "has "), line
    assert line.endswith("; free some space or name another folder; nothing was touched")
    assert not made
    assert folder_listing(tmp_path) == listing
    assert db_path.stat().st_size == size + free + 10**9


def test_moving_aside_to_another_file_system_never_shows_readers_an_older_store(
        stiwatch, db_path, tmp_path, monkeypatch, other_file_system):
    """On another file system moving the database aside copies it, minutes for a large store:
    its -wal went first, and for those minutes the database's name held the database without
    its last transactions, which a reader taking no lock (status, search, serve) read as the
    store. A reader started while the database is copied sees it whole."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    late_reader_in_the_wal(db_path)
    folder = other_file_system
    seen = []
    copyfile = shutil.copyfile

    def copying(source, destination, **kw):  # noqa: ANN001, ANN003
        if Path(source) == db_path and Path(destination).parent == folder:
            seen.append(subprocess.run(
                [sys.executable, "-m", "stiwatch", "--db", str(db_path), "subscribers",
                 "list"], capture_output=True, text=True, stdin=subprocess.DEVNULL))
        return copyfile(source, destination, **kw)

    monkeypatch.setattr(shutil, "copyfile", copying)
    result = stiwatch("restore", "--keep-damaged-in", str(folder), str(backup))
    moved = folder_listing(folder)
    kept = sqlite3.connect(folder / "stiwatch.db")  # the moved-aside store, its -wal read
    emails = kept.execute("SELECT email FROM subscribers").fetchall()
    kept.close()
    assert result.exit_code == 0, result.output
    assert "1 subscriber added" in result.stdout  # carried over from the -wal
    [reader] = seen
    assert reader.returncode == 0, reader.stderr
    assert "late@example.org" in reader.stdout
    assert moved == ["stiwatch.db", "stiwatch.db-shm", "stiwatch.db-wal"]
    assert emails == [("late@example.org",)]
    assert folder_listing(tmp_path).count("stiwatch.db") == 1
    assert not [name for name in folder_listing(tmp_path) if name.startswith("stiwatch.db-")]


def test_a_write_while_the_database_is_copied_to_another_file_system_is_in_the_copy(
        stiwatch, db_path, tmp_path, monkeypatch, other_file_system):
    """A writer that takes none of a restore's locks (`stiwatch classify`, `digest resolve`,
    a script; `stiwatch tag` did not either, and now waits for the restore): a correction
    written while the files are copied aside (its close folds the -wal into the file) made a
    torn copy, or one without it. The files are copied again until they stayed the same
    throughout."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    late_reader_in_the_wal(db_path)
    folder = other_file_system
    writes = []
    copyfile = shutil.copyfile

    def copying(source, destination, **kw):  # noqa: ANN001, ANN003
        copied = copyfile(source, destination, **kw)
        if Path(destination).parent == folder and not writes:
            writes.append(subprocess.run([sys.executable, "-c", (
                "import db\n"
                f"with db.open_store({str(db_path)!r}) as store:\n"
                "    store.analyst_label(1, add=[('area', 'society')])\n")],
                capture_output=True, text=True, stdin=subprocess.DEVNULL))
        return copied

    monkeypatch.setattr(shutil, "copyfile", copying)
    result = stiwatch("restore", "--keep-damaged-in", str(folder), str(backup))
    assert result.exit_code == 0, result.output
    kept = sqlite3.connect(folder / "stiwatch.db")
    check = kept.execute("PRAGMA quick_check").fetchone()[0]
    emails = kept.execute("SELECT email FROM subscribers").fetchall()
    labels = kept.execute("SELECT item_id, facet, value FROM analyst_labels").fetchall()
    kept.close()
    [write] = writes
    assert write.returncode == 0, write.stderr
    assert check == "ok"
    assert emails == [("late@example.org",)]
    assert labels == [(1, "area", "society")]


def test_between_moving_the_database_and_its_wal_aside_a_reader_is_told_to_wait(
        stiwatch, db_path, tmp_path, monkeypatch):
    """On one file system the files move aside one rename at a time: the -wal went first, and
    a reader in between read the database without its last transactions (and gave it a new
    -wal). The database goes first: a reader then finds none, and is told a restore is under
    way (exit 3), not that one was stopped."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    late_reader_in_the_wal(db_path)
    seen = []
    rename = os.rename

    def renaming(source, destination, *args, **kw):  # noqa: ANN001, ANN002, ANN003
        if Path(destination).parent.name.startswith("damaged-") and len(seen) < 1 and any(
                Path(destination).parent.iterdir()):  # one file moved aside, not the others
            seen.append(subprocess.run(
                [sys.executable, "-m", "stiwatch", "--db", str(db_path), "subscribers",
                 "list"], capture_output=True, text=True, stdin=subprocess.DEVNULL))
        return rename(source, destination, *args, **kw)

    monkeypatch.setattr(os, "rename", renaming)
    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    [reader] = seen
    assert (reader.returncode, reader.stdout) == (3, ""), reader.stdout
    assert reader.stderr == (
        f"Error: {db_path}: a `stiwatch restore` (pid {os.getpid()}) is putting a backup in "
        "the database's place at this moment; try again when it has finished\n")
    [folder] = tmp_path.glob("damaged-*")
    assert folder_listing(folder) == ["stiwatch.db", "stiwatch.db-shm", "stiwatch.db-wal"]
    assert not [name for name in folder_listing(tmp_path) if name.startswith("stiwatch.db-")]


def _waiting_on(process: subprocess.Popen, lock: Path, timeout: float = 60) -> None:
    """Return once ``process`` has the file ``lock`` open (it is waiting for the lock)."""
    deadline = datetime.now() + timedelta(seconds=timeout)
    while datetime.now() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if any(os.readlink(fd) == str(lock)
                   for fd in Path(f"/proc/{process.pid}/fd").iterdir()):
                return
        except OSError:  # a descriptor closed while listed
            pass
    raise AssertionError(f"{process.args} never opened {lock}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("change, says", [
    (["add", "new@example.org"], "added new@example.org."),
    (["import", "readers.csv"], "1 subscriber imported from readers.csv: 1 added, 0 updated."),
    (["remove", "a@example.org"], "removed a@example.org: no more digests will be sent "
     "(history kept)."),
], ids=["add", "import", "remove"])
def test_a_change_of_the_subscribers_between_moving_aside_and_renaming_in_waits_for_the_restore(
        stiwatch, db_path, tmp_path, change, says):
    """The moment a restore has moved the database aside and not yet renamed its copy in:
    a `subscribers add` then made a new empty store at the database's path before it waited
    for the restore's lock (and `remove` said there was no database). It waits, makes
    nothing, and changes the restored store."""
    analysts_store.build(db_path)
    assert stiwatch("subscribers", "add", "a@example.org").exit_code == 0
    backup = take_backup(stiwatch, tmp_path)
    (tmp_path / "readers.csv").write_text("email\nnew@example.org\n")
    staged = tmp_path / ".stiwatch.db.restore.w1nd0w.tmp"  # the restore's copy, as it names it
    shutil.copyfile(backup, staged)
    lock = restoring.edit_lock_path(db_path)
    with db.FileLock(lock):  # held by the restore throughout
        restoring.move_aside(db_path, tmp_path / "damaged")
        process = subprocess.Popen(
            [sys.executable, "-m", "stiwatch", "--db", str(db_path), "subscribers", *change],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _waiting_on(process, lock)
        made = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stiwatch.db"))
        restoring.install(staged, db_path)
    out, err = process.communicate(timeout=60)
    assert made == ["stiwatch.db.restore.lock"]  # no store made in the database's place
    assert (process.returncode, err, out.strip()) == (0, "", says)
    with db.open_store(db_path) as store:
        assert store.scalar("SELECT count(*) FROM items") == len(analysts_store.ITEMS)
        emails = {s["email"]: s["active"] for s in store.list_subscribers(active_only=False)}
    assert emails == ({"a@example.org": 0} if change[0] == "remove"
                      else {"a@example.org": 1, "new@example.org": 1})


def killed_mid_rename(db_path: Path, backup: Path) -> tuple[Path, Path, list]:
    """What a restore killed between moving the database aside and renaming its copy in
    leaves: its copy of ``backup`` beside the database's path, the database in its damaged
    folder. (the copy, the folder, the listing of the database's folder then)."""
    staged = db_path.parent / f".{db_path.name}.restore.k1ll3d.tmp"
    shutil.copyfile(backup, staged)
    folder = db_path.parent / "damaged-20261128T050000Z"
    restoring.move_aside(db_path, folder)
    return staged, folder, folder_listing(db_path.parent)


@pytest.mark.parametrize("change", [
    ["subscribers", "add", "new@example.org"],
    ["subscribers", "import", "readers.csv"],
    ["subscribers", "remove", "a@example.org"],
    ["init"], ["crawl"], ["run"], ["status"],
], ids=["add", "import", "remove", "init", "crawl", "run", "status"])
def test_no_command_makes_or_misses_a_store_where_a_restore_killed_mid_rename_left_none(
        stiwatch, db_path, tmp_path, monkeypatch, change):
    """Killed outright (SIGKILL, power lost) in that moment, a restore leaves no database, its
    copy beside it and the database in its damaged folder: a new empty store made there, with
    one reader in it, would be the store every run then used (the timer's `run` after a
    reboot made one, and the database stayed in its damaged folder unnoticed); the commands
    that only read said "no such database". Refused, naming where the database went."""
    monkeypatch.chdir(tmp_path)
    analysts_store.build(db_path)
    assert stiwatch("subscribers", "add", "a@example.org").exit_code == 0
    backup = take_backup(stiwatch, tmp_path)
    (tmp_path / "readers.csv").write_text("email\nnew@example.org\n")
    staged, folder, listing = killed_mid_rename(db_path, backup)

    result = stiwatch(*change)
    assert result.exit_code == 2
    assert not db_path.exists()
    assert result.output.splitlines() == [
        f"Error: {db_path}: no database, and a restore's copy beside it ({staged.name}): a "
        "`stiwatch restore` was stopped between moving the database aside and renaming its "
        f"copy in; its files are in {folder}; nothing was changed: move them back and run "
        "the restore again"]
    assert unlocked(folder_listing(tmp_path)) == unlocked(listing)


def test_over_a_database_that_cannot_be_read_whose_installation_it_was_is_said_unchecked(
        stiwatch, db_path, tmp_path):
    """A damaged database cannot say whose it was: the restore still goes ahead (that is
    what it is for), says that the backup's installation was not checked and how to check
    it; with --other-installation, which promises this installation's id, the restored store
    gets a new one rather than the other installation's (it had kept the pilot's, silently:
    its digests' Message-IDs would have been the pilot's)."""
    pilot = tmp_path / "pilot" / "stiwatch.db"
    pilot.parent.mkdir()
    analysts_store.build(pilot)
    garbage = b"SQLite format 3\x00" + bytes(range(256)) * 32  # a failing disk

    db_path.write_bytes(garbage)
    result = stiwatch("restore", "--json", "--keep-damaged-in", str(tmp_path / "d1"),
                      str(pilot))
    assert result.exit_code == 1  # its readers could not be carried over either
    outcome = json.loads(result.stdout)
    assert outcome["replaced_unreadable"] == (f"{db_path}: cannot be read (file is not a "
                                              "database)")
    assert outcome["installation_id_from"] == "backup"
    assert outcome["installation_id"] == installation_id(pilot) == installation_id(db_path)

    db_path.write_bytes(garbage)
    result = stiwatch("restore", "--keep-damaged-in", str(tmp_path / "d2"), str(pilot))
    assert result.exit_code == 1
    assert ("The database it replaces could not be read, so whether the backup is this "
            "installation's was not checked: the restored store has the backup's "
            f"installation_id ({installation_id(pilot)}), part of every digest's Message-ID. "
            "Check that an earlier backup of this installation has the same (sqlite-utils "
            "FILE \"SELECT value FROM store_info WHERE key = 'installation_id'\"); if not, "
            "move the restored database and its -wal and -shm away and restore one of this "
            "installation's backups (with no database in its place, a backup keeps its own "
            "id).") in result.stdout.splitlines()

    db_path.write_bytes(garbage)
    result = stiwatch("restore", "--other-installation", "--keep-damaged-in",
                      str(tmp_path / "d3"), str(pilot))
    assert result.exit_code == 1
    new = installation_id(db_path)
    assert new != installation_id(pilot) and re.fullmatch(r"[0-9a-f]{32}", new)
    assert ("The database it replaces could not be read, so this installation's "
            f"installation_id is unknown: the restored store has a new one ({new}), not the "
            f"backup's ({installation_id(pilot)}), so that its digests' Message-IDs are never "
            "another installation's.") in result.stdout.splitlines()
    assert "The backup is another installation's" not in result.stdout


def _garbled(db_path: Path, backup: Path) -> None:
    db_path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 32)


def _pilot(db_path: Path, backup: Path) -> None:
    backup.unlink()
    analysts_store.build(backup)  # another store, under the backup's name


@pytest.mark.parametrize("setup, args, code, restored", [
    (None, [], 0, True),
    (_garbled, [], 1, True),  # restored, the moved-aside store unreadable
    (lambda db_path, backup: backup.write_bytes(b"not a store"), [], 2, False),
    (_pilot, [], 2, False),
    (None, ["--keep-damaged-in", "/nonexistent/damaged"], 2, False),
    (lambda db_path, backup: None, ["lock"], 3, False),
], ids=["restored", "not-carried-over", "bad-backup", "other-installation", "bad-folder",
        "locked"])
def test_json_prints_one_object_whatever_the_outcome(stiwatch, db_path, tmp_path,
                                                     monkeypatch, setup, args, code, restored):
    """A script reading `restore --json` had nothing on stdout when the restore was refused:
    one object always, with `restored`, `exit_code`, and the `error` when refused."""
    monkeypatch.setattr(restore_command, "EDIT_WAIT", 0)
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    if setup is not None:
        setup(db_path, backup)
    held = db.FileLock(f"{db_path}.lock")
    if args == ["lock"]:
        args = []
        held.acquire()  # a run under way
    try:
        result = stiwatch("restore", "--json", *args, str(backup))
    finally:
        held.release()
    assert result.exit_code == code, result.output
    outcome = json.loads(result.stdout)  # one object, nothing else
    assert isinstance(outcome, dict)
    assert (outcome["restored"], outcome["exit_code"]) == (restored, code)
    assert outcome["database"] == str(db_path) and outcome["backup"] == str(backup)
    if code >= 2:
        [line] = result.stderr.splitlines()
        assert outcome["error"] == line.removeprefix("Error: ")
    else:
        assert "error" not in outcome and outcome["items"] == len(analysts_store.ITEMS)


def test_a_restore_over_what_a_restore_killed_mid_rename_left_is_refused(
        stiwatch, db_path, tmp_path):
    """Killed between moving the database aside and renaming its copy in, a restore leaves
    no database: the next one restored there as over a new disk ("There was no database to
    move aside"), without the readers and deliveries of the one moved aside. Refused, naming
    where it is; --no-carry-over restores the backup alone, as asked."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    staged, folder, listing = killed_mid_rename(db_path, backup)

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {db_path}: no database, and a restore's copy beside it ({staged.name}): a "
        "`stiwatch restore` was stopped between moving the database aside and renaming its "
        f"copy in; its files are in {folder}; this restore did nothing: move them back and "
        "run it again (or, to restore the backup alone, with --no-carry-over)"]
    assert unlocked(folder_listing(tmp_path)) == unlocked(listing)

    result = stiwatch("restore", "--no-carry-over", str(backup))
    assert result.exit_code == 0, result.output
    assert not staged.exists()


def url_of(key: str) -> str:
    """The URL analysts_store gives the item ``key``: what both stores share."""
    [source] = [item[1] for item in analysts_store.ITEMS if item[0] == key]
    return f"https://{source}.example/{key}"


def searched(stiwatch, *filters: str) -> dict[str, dict]:
    """`stiwatch search FILTERS --format json`, by URL."""
    result = stiwatch("search", *filters, "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["url"]: row for row in json.loads(result.stdout)}


def shown_tags(stiwatch, db_path: Path, key: str) -> tuple[dict, list]:
    """`stiwatch tag ID --json` of the item ``key`` (found by its URL): its tags as
    {(facet, value): method}, and what an analyst removed."""
    with db.open_store(db_path) as store:
        item_id = store.item_id_for_url(url_of(key))
    result = stiwatch("tag", str(item_id), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    return ({(t["facet"], t["value"]): t["method"] for t in shown["tags"]},
            [(r["facet"], r["value"]) for r in shown["removed"]])


def tag(stiwatch, db_path: Path, key: str, *options: str) -> None:
    with db.open_store(db_path) as store:
        item_id = store.item_id_for_url(url_of(key))
    result = stiwatch("tag", str(item_id), *options)
    assert result.exit_code == 0, result.output


def test_analysts_corrections_made_after_the_backup_survive_the_restore(stiwatch, db_path,
                                                                        tmp_path):
    """Corrections made with `stiwatch tag` after the night's backup are in the moved-aside
    store only: they come across, matched by URL (the two stores number the items
    differently), with the tags, regions and classify marks `tag` gives them."""
    backup = tmp_path / "backups" / "stiwatch-20261127T000000Z.db"
    backup.parent.mkdir()
    analysts_store.build(backup)
    with db.open_store(db_path) as store:  # the same store, its items under other ids
        store.sync_sources(analysts_store.SOURCES)
        store.save_items([{"url": "https://mext.example/earlier", "source_id": "mext-news",
                           "title": "An item the backup never had", "language": "en"}])
    analysts_store.build(db_path)
    with db.open_store(db_path) as store, db.open_store(backup) as theirs:
        with store.write():
            store.conn.execute("UPDATE store_info SET value = ? WHERE key = 'installation_id'",
                               [theirs.installation_id])
        assert store.item_id_for_url(url_of("us-security")) != theirs.item_id_for_url(
            url_of("us-security"))
    tag(stiwatch, db_path, "us-security", "--add", "area=open_science", "--remove", "country=CN")
    tag(stiwatch, db_path, "jp-semis", "--add", "country=DE")
    tag(stiwatch, db_path, "us-discovery", "--add", "policy=1")

    result = stiwatch("restore", "--json", str(backup))
    assert result.exit_code == 0, result.output
    carried = json.loads(result.stdout)["carry_over"]
    assert {key: value for key, value in carried.items() if key.startswith("analyst")} == {
        "analyst_labels_carried": 4, "analyst_labels_undone": 0, "analyst_labels_items": 3,
        "analyst_labels_kept": 0, "analyst_labels_not_undone": 0, "analyst_labels_left": 0,
        "analyst_labels_left_corrections": [], "analyst_labels_unreadable": None}

    assert url_of("us-security") in searched(stiwatch, "--area", "open_science")
    assert url_of("us-security") not in searched(stiwatch, "--country", "CN")
    tags, removed = shown_tags(stiwatch, db_path, "us-security")
    assert removed == [("country", "CN")]
    assert tags[("area", "open_science")] == "analyst"
    assert ("region", "east_asia") not in tags  # CN was its only east Asian country
    tags, _ = shown_tags(stiwatch, db_path, "jp-semis")
    assert tags[("country", "DE")] == "analyst" and tags[("region", "europe")] == "analyst"
    assert url_of("us-discovery") in searched(stiwatch, "--policy")
    with db.open_store(db_path) as store:
        # policy=1 asks `classify` for the item's areas, as `stiwatch tag` does
        assert store.scalar("SELECT c.classified_at FROM item_classification c JOIN items i"
                            " ON i.id = c.item_id WHERE i.url = ?",
                            [url_of("us-discovery")]) is None
        # `stiwatch train` reads them
        trained = {item["title"]: item["labels"] for item in store.analyst_labelled_items()}
    assert sorted(trained) == ["Astronomers discover a distant galaxy",
                               "Japan funds semiconductor research consortium",
                               "NSF issues research security guidance for grantees"]


def test_a_carried_correction_keeps_its_date_on_the_items_copies_too(stiwatch, db_path,
                                                                    tmp_path):
    """A carried correction is dated as the analyst made it, so that a later restore compares
    it rightly; the copies of the corrected item, which take its tags, were dated at the
    restore instead."""
    backup = tmp_path / "stiwatch-20261127T000000Z.db"
    analysts_store.build(backup)
    analysts_store.build(db_path)
    with db.open_store(db_path) as store, db.open_store(backup) as theirs:
        with store.write():
            store.conn.execute("UPDATE store_info SET value = ? WHERE key = 'installation_id'",
                               [theirs.installation_id])
    tag(stiwatch, db_path, "eu-open", "--add", "country=JP")
    made = "2026-11-27T10:00:00Z"  # the correction, made the day before the restore
    with db.open_store(db_path) as store, store.write():
        store.conn.execute("UPDATE analyst_labels SET labelled_at = ?", [made])
        store.conn.execute("UPDATE tags SET tagged_at = ? WHERE method = 'analyst'", [made])

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    with db.open_store(db_path) as store:
        dates = {url: tagged for url, tagged in store.conn.execute(
            "SELECT i.url, t.tagged_at FROM tags t JOIN items i ON i.id = t.item_id"
            " WHERE t.facet = 'country' AND t.value = 'JP' AND t.method = 'analyst'")}
    assert dates == {url_of("eu-open"): made, url_of("eu-open-copy"): made}


def test_a_correction_taken_back_stays_taken_back_and_a_later_one_of_the_backup_is_kept(
        stiwatch, db_path, tmp_path):
    """Per item and tag, the verdict made later wins: a removal made after the backup
    replaces the backup's addition, a correction taken back (`tag --undo`, which leaves no
    row) stays taken back, and the backup's own correction made later than the moved-aside
    store's (a clock stepped back) is kept."""
    analysts_store.build(db_path)
    tag(stiwatch, db_path, "jp-quantum", "--add", "area=open_science")
    tag(stiwatch, db_path, "jp-semis", "--add", "country=KR")
    tag(stiwatch, db_path, "eu-ai", "--add", "domain=quantum")
    backup = take_backup(stiwatch, tmp_path)
    tag(stiwatch, db_path, "jp-quantum", "--undo", "area=open_science")
    tag(stiwatch, db_path, "jp-semis", "--remove", "country=KR")
    tag(stiwatch, db_path, "eu-ai", "--remove", "domain=quantum")
    with db.open_store(db_path) as store, store.write():
        store.conn.execute("UPDATE analyst_labels SET labelled_at = '2026-01-01T00:00:00Z'"
                           " WHERE facet = 'domain'")

    result = stiwatch("restore", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Analysts' corrections (`stiwatch tag`) carried over: 1 added or removed, 1 taken "
            "back, on 2 items; 1 later correction of the backup's kept.") in result.stdout
    tags, removed = shown_tags(stiwatch, db_path, "jp-quantum")
    assert ("area", "open_science") not in tags and removed == []
    with db.open_store(db_path) as store:
        item_id = store.item_id_for_url(url_of("jp-quantum"))
        assert store.analyst_verdicts(item_id) == []
    tags, removed = shown_tags(stiwatch, db_path, "jp-semis")
    assert ("country", "KR") not in tags and removed == [("country", "KR")]
    tags, removed = shown_tags(stiwatch, db_path, "eu-ai")
    assert tags[("domain", "quantum")] == "analyst" and removed == []


def test_corrections_of_items_the_backup_lacks_are_counted_and_listed(stiwatch, db_path,
                                                                      tmp_path):
    """An item crawled after the backup is not in the restored store: its corrections cannot
    be attached, so the summary counts them, says where they remain and how to make them
    again."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with db.open_store(db_path) as store:
        [(late, _)] = store.save_items([{
            "url": "https://mext.example/late", "source_id": "mext-news",
            "title": "Crawled after the backup", "language": "en"}])
    assert stiwatch("tag", str(late), "--add", "area=open_science", "--remove",
                    "country=JP").exit_code == 0
    tag(stiwatch, db_path, "us-security", "--add", "area=open_science")

    result = stiwatch("restore", "--keep-damaged-in", str(tmp_path / "old"), str(backup))
    assert result.exit_code == 0, result.output
    assert ("Analysts' corrections (`stiwatch tag`) carried over: 1 added or removed, 0 taken "
            "back, on 1 item.") in result.stdout
    assert (f"Not carried over: 2 analyst corrections of 1 item the backup lacks (stored "
            f"after it was taken). They remain in {tmp_path / 'old' / 'stiwatch.db'}; once a "
            "crawl stores the item again, make them again with `stiwatch tag ITEM_ID` and "
            "these options:\n"
            "  https://mext.example/late: --add area=open_science --remove country=JP\n"
            ) in result.stdout
    with db.open_store(tmp_path / "old" / "stiwatch.db") as old:
        assert [v for v in old.analyst_verdicts(late)] == [("area", "open_science", 1),
                                                           ("country", "JP", 0)]


def test_json_lists_the_corrections_left_in_the_moved_aside_store(stiwatch, db_path, tmp_path):
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with db.open_store(db_path) as store:
        [(late, _)] = store.save_items([{
            "url": "https://mext.example/late", "source_id": "mext-news",
            "title": "Crawled after the backup", "language": "en"}])
    assert stiwatch("tag", str(late), "--add", "policy=0").exit_code == 0

    result = stiwatch("restore", "--json", str(backup))
    assert result.exit_code == 0, result.output
    carried = json.loads(result.stdout)["carry_over"]
    assert carried["analyst_labels_carried"] == 0 and carried["analyst_labels_left"] == 1
    assert carried["analyst_labels_left_corrections"] == [
        {"url": "https://mext.example/late", "facet": "policy", "value": "0", "verdict": 1}]


def test_over_another_installations_store_the_backups_corrections_it_lacks_are_kept(
        stiwatch, db_path, tmp_path):
    """A store made anew at the database's path (a disk lost, `init`, a crawl) has the items
    again and none of the corrections: they were never taken back there, so restoring the
    backup over it (--other-installation) keeps them, and says so."""
    backup = tmp_path / "backups" / "stiwatch-20261127T000000Z.db"
    backup.parent.mkdir()
    analysts_store.build(backup)
    with db.open_store(backup) as store:
        store.analyst_label(store.item_id_for_url(url_of("jp-quantum")),
                            add=[("area", "open_science")])
    analysts_store.build(db_path)  # its own installation_id

    result = stiwatch("restore", "--other-installation", str(backup))
    assert result.exit_code == 0, result.output
    assert ("Kept 1 correction of the backup's that the moved-aside store lacks: it is not "
            "known to be the same installation's store") in result.stdout
    tags, _ = shown_tags(stiwatch, db_path, "jp-quantum")
    assert tags[("area", "open_science")] == "analyst"


def serve_records(db_path: Path) -> list[Path]:
    """The files serves announce themselves in, beside the store."""
    return sorted(db_path.parent.glob(f"{db_path.name}.serve.*"))


# `python -m stiwatch` in a process whose os.link fails as on a file system that makes no hard
# links (vfat answers EPERM; some FUSE and network mounts EPERM, EOPNOTSUPP or ENOSYS). None
# can be mounted here without root and mkfs.vfat or libfuse, so the call into the OS is
# replaced, nothing of stiwatch's.
WITHOUT_HARD_LINKS = """\
import errno, os, runpy, sys
def link(*args, **kwargs):
    raise OSError(errno.EPERM, os.strerror(errno.EPERM), args[1])
os.link = link
sys.argv[0] = "stiwatch"
runpy.run_module("stiwatch", run_name="__main__", alter_sys=True)
"""


@contextmanager
def serve_running(db_path: Path, user: int | None = None, *, hard_links: bool = True
                  ) -> Iterator[tuple[subprocess.Popen, str]]:
    """`stiwatch serve` on the store, a process of its own (as ``user``, else this one),
    answering; (it, its address). ``hard_links``: False for one whose os.link fails, as on
    vfat. Once stopped, ``process.output`` is its (stdout, stderr)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefix = as_user(user) if user is not None else []
    env = {**os.environ, "HOME": str(db_path.parent)} if user is not None else None
    module = ["-m", "stiwatch"] if hard_links else ["-c", WITHOUT_HARD_LINKS]
    process = subprocess.Popen(
        [*prefix, sys.executable, *module, "--db", str(db_path), "serve", "--port",
         str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=db_path.parent if user is not None else None)
    url = f"http://127.0.0.1:{port}/{db_path.stem}"
    try:
        deadline = datetime.now() + timedelta(seconds=60)
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"{url}.json", timeout=5):
                    break
            except OSError:
                assert datetime.now() < deadline, "stiwatch serve did not start"
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        process.output = process.communicate(timeout=30)


def test_a_restore_is_refused_while_serve_has_the_database_open_unless_told_to_go_on(
        stiwatch, db_path, tmp_path):
    """`stiwatch serve` goes on serving the file it opened: after a restore analysts browsed
    the replaced store until someone restarted it, and nothing said so. A serve announces
    itself (DATABASE.serve.PID.lock); the restore refuses, touching nothing, or with
    --while-serving says in its summary and --json which serve to restart."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with serve_running(db_path) as (process, url):
        before, listing = digest_of(db_path), folder_listing(tmp_path)
        refused = stiwatch("restore", str(backup))
        assert refused.exit_code == 3
        assert refused.output.splitlines() == [
            f"Error: `stiwatch serve` has the database open (pid {process.pid}, {url}): it "
            "would go on serving the store this restore replaces until restarted; stop it "
            "first (systemctl stop stiwatch-serve), or restore with --while-serving and "
            "restart it after; this restore did nothing"]
        assert digest_of(db_path) == before
        assert unlocked(folder_listing(tmp_path)) == unlocked(listing)

        result = stiwatch("restore", "--while-serving", "--json", str(backup))
        assert result.exit_code == 0, result.output
        outcome = json.loads(result.stdout)
        [serve] = outcome["serve_restart_needed"]
        assert (serve["pid"], serve["url"]) == (process.pid, url)
        assert result.stderr == (
            f"`stiwatch serve` (pid {process.pid}, {url}) still serves the store this restore "
            "replaced, the file it opened: restart it (systemctl restart stiwatch-serve) so "
            "that analysts see the restored one.\n")
        text = stiwatch("restore", "--while-serving", str(backup))
        assert text.exit_code == 0, text.output
        assert f"`stiwatch serve` (pid {process.pid}, {url}) still serves" in text.stderr
    assert process.returncode == -15
    assert not serve_records(db_path)  # a serve removes its own when it stops
    after = stiwatch("restore", "--json", str(backup))
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout)["serve_restart_needed"] == []


def test_a_serve_on_a_file_system_without_hard_links_announces_itself(stiwatch, db_path,
                                                                      tmp_path):
    """A serve made its file under another name and linked it into place: where os.link fails
    (vfat, some network and FUSE mounts) it warned "cannot write ... (Operation not
    permitted)" and ran unannounced, so a restore replaced the store it served without a word.
    It makes the file in place instead (O_EXCL), and the restore refuses, naming it."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    before = digest_of(db_path)
    with serve_running(db_path, hard_links=False) as (process, url):
        assert [p.name for p in serve_records(db_path)] == [
            f"{db_path.name}.serve.{process.pid}.lock"]
        refused = stiwatch("restore", "--json", str(backup))
        assert refused.exit_code == 3, refused.output
        [serve] = json.loads(refused.stdout)["serves_running"]
        assert (serve["pid"], serve["url"]) == (process.pid, url)
        assert serve["started_at"] is not None  # the whole line was read
        assert f"(pid {process.pid}, {url})" in refused.stderr
        assert digest_of(db_path) == before
    assert process.returncode == -15
    assert "Warning" not in process.output[1]
    assert not serve_records(db_path)  # removed when it stopped, as a linked one


def test_a_serve_killed_outright_does_not_refuse_a_restore(stiwatch, db_path, tmp_path):
    """Its file stays, but the kernel released its lock: no serve runs, and the restore
    removes the file."""
    import signal

    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with serve_running(db_path) as (process, _):
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert [p.name for p in serve_records(db_path)] == [f"{db_path.name}.serve.{process.pid}.lock"]
    assert serve_records(db_path)[0].read_text().startswith(f"{process.pid} ")
    result = stiwatch("restore", "--json", str(backup))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["serve_restart_needed"] == []
    assert result.stderr == ""
    assert not serve_records(db_path)


def test_json_of_a_restore_refused_for_a_serve_names_the_serve(stiwatch, db_path, tmp_path):
    """Refused because a serve runs (exit 3), `restore --json` printed an object without
    `serve_restart_needed` nor any word of the serve: a script had to parse the error text.
    Every outcome has both keys: the serves running, and those to restart (none: nothing was
    replaced)."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with serve_running(db_path) as (process, url):
        refused = stiwatch("restore", "--json", str(backup))
        assert refused.exit_code == 3, refused.output
        outcome = json.loads(refused.stdout)
        assert (outcome["restored"], outcome["exit_code"]) == (False, 3)
        assert outcome["serve_restart_needed"] == []
        [serve] = outcome["serves_running"]
        assert (serve["pid"], serve["url"]) == (process.pid, url)
        went_on = json.loads(stiwatch("restore", "--json", "--while-serving", str(backup)).stdout)
        [serve] = went_on["serves_running"]
        assert (serve["pid"], serve["url"]) == (process.pid, url)
        assert went_on["serve_restart_needed"] == went_on["serves_running"]
    bad = stiwatch("restore", "--json", str(tmp_path / "no-such-backup.db"))
    assert bad.exit_code == 2
    refused_otherwise = json.loads(bad.stdout)
    assert (refused_otherwise["serves_running"], refused_otherwise["serve_restart_needed"]) == (
        [], [])
    done = json.loads(stiwatch("restore", "--json", str(backup)).stdout)
    assert (done["serves_running"], done["serve_restart_needed"]) == ([], [])


@contextmanager
def process_of_pid(pid: int) -> Iterator[subprocess.Popen]:
    """A new process (sleep) given ``pid``, as the kernel gives a freed pid again: the next
    pid it hands out is the one after /proc/sys/kernel/ns_last_pid (root only)."""
    for _ in range(50):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError as error:
            pytest.skip(f"cannot choose a pid: {error}")
        process = subprocess.Popen(["sleep", "300"])
        if process.pid == pid:
            break
        process.kill()
        process.wait()
    else:
        pytest.skip(f"pid {pid} kept going to other processes")
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_restore_names_only_the_serves_running_not_a_killed_serves_reused_pid(
        stiwatch, db_path, tmp_path):
    """Every serve wrote a line into one DATABASE.serve.lock: one killed outright while another
    ran left its line, and once its pid was another process's the restore named that process
    as a serve to stop. Each serve's record is its own file now, locked while it runs."""
    import signal

    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    with serve_running(db_path) as (kept, url):
        with serve_running(db_path) as (killed, _):
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
        with process_of_pid(killed.pid):
            refused = stiwatch("restore", "--json", str(backup))
            assert refused.exit_code == 3, refused.output
            assert [serve["pid"] for serve in json.loads(refused.stdout)["serves_running"]] == [
                kept.pid]
            assert refused.stderr == (
                f"Error: `stiwatch serve` has the database open (pid {kept.pid}, {url}): it "
                "would go on serving the store this restore replaces until restarted; stop it "
                "first (systemctl stop stiwatch-serve), or restore with --while-serving and "
                "restart it after; this restore did nothing\n")
        assert [p.name for p in serve_records(db_path)] == [
            f"{db_path.name}.serve.{kept.pid}.lock"]  # the killed one's, removed
    assert not serve_records(db_path)


@AS_OTHER_USERS
def test_a_restore_names_the_serve_of_a_user_who_cannot_write_the_first_serves_file(
        stiwatch, tmp_path):
    """Two analysts serve a copy nobody writes in a shared folder. The second could not write
    its line into DATABASE.serve.lock, the first's file: once the first stopped, the restore
    refused for a serve it named "pid unknown". Each serve makes a file of its own now."""
    with shared_folder(0o777) as folder:
        store = folder / "stiwatch.db"
        analysts_store.build(store)
        backup = take_backup(lambda *args: stiwatch("--db", str(store), *args), tmp_path)
        store.chmod(0o444)
        with serve_running(store, user=65532) as (first, _):
            with serve_running(store, user=NOBODY) as (second, url):
                first.terminate()
                first.wait(timeout=30)
                refused = stiwatch("--db", str(store), "restore", "--json", str(backup))
                assert refused.exit_code == 3, refused.output
                [serve] = json.loads(refused.stdout)["serves_running"]
                assert (serve["pid"], serve["url"]) == (second.pid, url)
                assert f"(pid {second.pid}, {url})" in refused.stderr
        assert not serve_records(store)


def _waiting_or_done(process: subprocess.Popen, lock: Path, timeout: float = 60) -> None:
    """Return once ``process`` has the file ``lock`` open (waiting for it) or has ended."""
    deadline = datetime.now() + timedelta(seconds=timeout)
    while datetime.now() < deadline:
        if process.poll() is not None:
            return
        try:
            if any(os.readlink(fd) == str(lock)
                   for fd in Path(f"/proc/{process.pid}/fd").iterdir()):
                return
        except OSError:  # a descriptor closed, or the process ended, while listed
            pass
    raise AssertionError(f"{process.args} neither waited for {lock} nor ended")


NEW_SOURCE = ('[[source]]\nid = "new-feed"\nname = "A new feed"\nurl = '
              '"https://new.example/rss"\nkind = "feed"\ncountry = "JP"\nlanguage = "ja"\n'
              'org_type = "ministry"\n')

# A command that writes to the store, and what the store has once it has written.
WRITERS = {
    "init": (["init", "--sources", "mine.toml"],
             lambda store: "new-feed" in {s["id"] for s in store.list_sources()}),
    "sources-sync": (["sources", "sync", "mine.toml"],
                     lambda store: "new-feed" in {s["id"] for s in store.list_sources()}),
    "tag": (["tag", "1", "--add", "area=open_science", "--remove", "country=JP"],
            lambda store: store.analyst_verdicts(1) == [("area", "open_science", 1),
                                                        ("country", "JP", 0)]),
    # every item tagged again, by the rules: none keeps a tag of the store's model "test-1"
    "classify": (["--quiet", "classify", "--all", "--no-model"],
                 lambda store: not store.scalar(
                     "SELECT count(*) FROM tags WHERE model_version = 'test-1'")),
}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("moment", ["after-carry-over", "between-renames"])
def test_a_command_writing_while_a_restore_runs_waits_and_writes_the_restored_store(
        stiwatch, db_path, tmp_path, monkeypatch, writer, moment):
    """A real restore, held at the moment it has read what to carry over and is about to move
    the database aside, or between that move and renaming its copy in. `init`, `sources
    sync`, `tag` and `classify` took none of its locks: after the carry-over, their change went
    into the store moved aside (an analyst's correction lost, a `classify --all` undone, the
    command saying it was done); between
    the renames, they could make a store where none was, for the restore to replace. They
    wait for the restore, make nothing at the database's path, and change the restored
    store."""
    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    (tmp_path / "mine.toml").write_text(NEW_SOURCE)
    args, written = WRITERS[writer]
    lock = restoring.edit_lock_path(db_path)
    started: list[subprocess.Popen] = []
    seen: list[list[str]] = []

    def run_writer() -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "stiwatch", "--db", str(db_path), *args], cwd=tmp_path,
            env={**os.environ, "STIWATCH_CONTACT": "ops@example.org"},  # no hint on stderr
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        _waiting_or_done(process, lock)
        seen.append(sorted(p.name for p in tmp_path.iterdir()
                           if p.name.startswith(db_path.name)))

    rename, replace = os.rename, os.replace

    def renaming(source, destination, *rest, **kw):  # noqa: ANN001, ANN002, ANN003
        if (moment == "after-carry-over" and not started
                and Path(destination).parent.name.startswith("damaged-")):
            run_writer()  # the carry-over has read the store; nothing has moved yet
        return rename(source, destination, *rest, **kw)

    def replacing(source, destination, *rest, **kw):  # noqa: ANN001, ANN002, ANN003
        if moment == "between-renames" and not started and Path(destination) == db_path:
            run_writer()  # the database moved aside, the copy not yet in its place
        return replace(source, destination, *rest, **kw)

    monkeypatch.setattr(os, "rename", renaming)
    monkeypatch.setattr(os, "replace", replacing)
    result = stiwatch("--quiet", "restore", str(backup))
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    assert result.exit_code == 0, result.output
    [process] = started
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (0, ""), (out, err)
    if moment == "between-renames":  # no store made where the restore puts its copy
        assert unlocked(seen[0]) == []
    with db.open_store(db_path) as store:
        assert written(store)
        assert store.scalar("SELECT count(*) FROM items") == len(analysts_store.ITEMS)
    [folder] = tmp_path.glob("damaged-*")
    with db.open_store(folder / db_path.name, readonly=True) as moved:
        assert not written(moved)  # nothing went into the store moved aside


@pytest.mark.parametrize("command", [["init"], ["sources", "sync", "mine.toml"]],
                         ids=["init", "sources-sync"])
def test_no_store_is_made_in_the_instant_a_restore_moves_the_database_aside(
        stiwatch, db_path, tmp_path, monkeypatch, command):
    """`init` and `sources sync` looked for a database (there), then opened it: a restore
    whose first rename moved it aside in between left SQLite to create a new, empty store at
    its path, which the restore's second rename replaced (what the command wrote lost, its
    -wal and -shm beside the restored store). They take the restore's lock before they look:
    while a restore holds it they never open the store, and are refused (exit 3)."""
    from stiwatch import app as app_module

    monkeypatch.setattr(app_module, "RESTORE_WAIT", 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text(NEW_SOURCE)
    analysts_store.build(db_path)
    before = digest_of(db_path)
    moved: list[list[Path]] = []
    connect = sqlite3.connect

    def connecting(database, *args, **kw):  # noqa: ANN001, ANN002, ANN003
        if database == db_path and not moved:  # the command's own open, after it looked
            moved.append(restoring.move_aside(db_path, tmp_path / "damaged"))  # a restore's
        return connect(database, *args, **kw)

    with db.FileLock(restoring.edit_lock_path(db_path)):  # as a restore holds it throughout
        monkeypatch.setattr(sqlite3, "connect", connecting)
        result = stiwatch("--quiet", *command)
        monkeypatch.setattr(sqlite3, "connect", connect)
    assert (result.exit_code, moved) == (3, []), result.output
    assert result.output.splitlines() == [
        f"Error: a `stiwatch restore` (pid {os.getpid()}) holds the lock {db_path}.restore.lock; "
        "nothing was changed: run this again once it has finished"]
    assert digest_of(db_path) == before


def test_a_restore_to_the_default_path_where_no_database_is_says_so(stiwatch, db_path,
                                                                    tmp_path, isolated_env):
    """`sudo -u stiwatch stiwatch restore BACKUP` without --config (sudo drops STIWATCH_CONFIG):
    the restore went into ./stiwatch.db of the folder it ran in, "There was no database to
    move aside", exit 0, and with --quiet nothing at all, while the store the scheduled runs
    use stayed as it was. The note, on stderr even with --quiet, says what happened."""
    from click.testing import CliRunner

    from stiwatch.cli import cli

    analysts_store.build(db_path)
    backup = take_backup(stiwatch, tmp_path)
    result = CliRunner().invoke(cli, ["--quiet", "restore", str(backup)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    made = isolated_env / "stiwatch.db"
    assert made.exists()
    assert result.stdout == ""
    assert result.stderr == (
        f"Note: no database was at {made}, the default path (no --db, STIWATCH_DB, or db "
        "setting was given): if you meant to restore the store the scheduled runs use, run "
        "this again with their settings (--config FILE), and remove this one.\n")
