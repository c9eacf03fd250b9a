"""Putting a backup in the database's place, and carrying over what only the store it replaces
knows: the readers (``subscribers``), what each was sent (``deliveries``), and the analysts'
corrections of items (``analyst_labels``, with the tags they keep).

A backup is older than the store it replaces. Digests sent after it was taken are recorded only
in the replaced (moved-aside) store: restored alone, the backup would owe those weeks again and
the next ``run --digest`` would mail them a second time; readers added since would be lost. The
moved-aside files are never written: carrying over reads a copy of them, migrated when older.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from glob import escape as glob_escape
import math
import os
from pathlib import Path
import re
import secrets
import shutil
import sqlite3
import stat
import tempfile
from typing import Mapping
from urllib.parse import quote

from .errors import InvalidTag, MigrationInterrupted, SchemaTooNew, StoreError
from .files import SIDE_FILES, is_database
from .lock import holder_of, parse_holder
from .schema import LATEST_VERSION, current_version, too_new
from .store import Store, open_store

# The name `stiwatch backup DEST/` gives its copies: stiwatch-20261122T073000Z.db.
_STAMP = re.compile(r"stiwatch-(\d{8}T\d{6}Z)")
# The folder a restore moves the database aside to when no --keep-damaged-in names one.
_STAMPED = re.compile(r"damaged-\d{8}T\d{6}Z(-\d+)?")


class UnusableBackup(StoreError):
    """The file to restore is missing, not a stiwatch store, fails its integrity check, or is
    the database itself (or a file SQLite keeps beside it)."""


class OtherInstallation(UnusableBackup):
    """The backup is a copy of another store (its ``installation_id`` differs from the
    database's): a pilot's, or another site's, restored by mistake."""


class NotEnoughSpace(StoreError):
    """The database's folder has less free space than the copies a restore makes there."""


class CannotMoveAside(StoreError):
    """The current database could not be moved into the folder for the damaged files (the
    folder holds files of the same names, or a rename failed); nothing was moved."""


class DamagedUnreadable(StoreError):
    """The moved-aside store cannot be read for carrying over (it does not open, it is not a
    stiwatch store, its subscribers or deliveries fail their integrity check, or it is newer
    than this stiwatch)."""


class HalfRestored(StoreError):
    """No database, and beside its path the copy of a backup a restore makes: a restore
    killed between moving the database aside and renaming its copy in."""


class RestoreUnderWay(StoreError):
    """No database, as a restore running now has moved it aside and is about to rename its
    copy in (a moment, or the minutes of copying it back when it fails)."""


@dataclass
class BackupInfo:
    path: Path
    schema_version: int
    taken_at: str | None  # from the name `stiwatch backup` gives, None when it has another
    installation_id: str | None = None  # None in a store older than schema version 16


@dataclass
class CarryOver:
    """What the moved-aside store added to the restored one."""

    subscribers_added: list[str] = field(default_factory=list)
    subscribers_changed: list[str] = field(default_factory=list)  # removed ones included
    deliveries: int = 0  # rows written (new, or newer than the backup's)
    deliveries_sent: int = 0  # of those, recorded as sent
    in_doubt: int = 0  # of those, `sending` with no answer: still for `digest resolve`
    orphans: int = 0  # delivery rows naming a reader neither store has: left out
    integrity: str = "ok"  # the moved-aside store's whole-file quick_check
    migrated_from: int | None = None  # its schema version when its copy had to be migrated
    # Analysts' corrections (`stiwatch tag`), one per item, facet and value: a verdict.
    analyst_labels: int = 0  # verdicts written (new, or made later than the backup's)
    analyst_undone: int = 0  # of the backup's, taken back (`tag --undo`) in the moved-aside store
    analyst_kept: int = 0  # of the backup's, kept over an earlier verdict of the moved-aside one
    # of the backup's, kept though the moved-aside store lacks them: it may never have had them
    analyst_not_taken_back: int = 0
    analyst_items: int = 0  # items whose corrections changed
    # verdicts on items the backup lacks (stored after it was taken): they stay in the
    # moved-aside store only; (url, facet, value, verdict) of each
    analyst_left: list[tuple[str, str, str, int]] = field(default_factory=list)
    analyst_unreadable: str | None = None  # why none were carried, when they could not be read


def edit_lock_path(database: str | os.PathLike[str]) -> Path:
    """The lock a restore holds, and `stiwatch subscribers` takes before it opens the store:
    a reader added while a restore runs would be written into the store it moves aside, after
    the carry-over has read it, and lost."""
    return Path(f"{database}.restore.lock")


def _connect_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)


def check_backup(backup: Path, database: Path) -> BackupInfo:
    """The backup at ``backup`` if it can replace ``database``; UnusableBackup or SchemaTooNew
    naming the file otherwise. Reads it only."""
    backup = Path(backup)
    here = Path(database).resolve()
    if backup.resolve() == here:
        raise UnusableBackup(f"{backup}: that is the database itself, not a backup of it")
    if backup.resolve() in {Path(f"{here}{side}") for side in SIDE_FILES}:
        raise UnusableBackup(f"{backup}: that is a file SQLite keeps beside the database "
                             f"{database}, not a backup")
    if not backup.exists():
        raise UnusableBackup(f"{backup}: no such file")
    if backup.is_dir():
        made = sorted(path.name for path in backup.glob("stiwatch-*.db")
                      if _STAMP.fullmatch(path.stem))
        newest = f" (the newest `stiwatch backup` made there: {made[-1]})" if made else ""
        raise UnusableBackup(f"{backup}: is a folder; name the backup file in it to restore"
                             f"{newest}")
    if not is_database(backup):
        raise UnusableBackup(f"{backup}: not an SQLite database, so not a stiwatch backup")
    try:
        conn = _connect_readonly(backup)
        try:
            verdict = _quick_check(conn)
            version = current_version(conn) if verdict == "ok" else 0
            installation = _installation_id(conn) if version else None
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise UnusableBackup(f"{backup}: cannot be read as a stiwatch backup ({error})") from None
    if verdict != "ok":
        raise UnusableBackup(f"{backup}: fails its integrity check (PRAGMA quick_check: "
                             f"{verdict}); restore another backup")
    if version == 0:
        raise UnusableBackup(f"{backup}: not a stiwatch database (it has none of stiwatch's "
                             "tables)")
    if version > LATEST_VERSION:
        raise SchemaTooNew(f"{backup}: {too_new(version)}")
    stamp = _STAMP.search(backup.name)
    taken_at = None
    if stamp:
        moment = datetime.strptime(stamp[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        taken_at = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return BackupInfo(backup, version, taken_at, installation)


def _installation_id(conn: sqlite3.Connection) -> str | None:
    """The store's ``installation_id`` (migration 16), None when it has none yet."""
    try:
        row = conn.execute("SELECT value FROM store_info WHERE key = 'installation_id'"
                           ).fetchone()
    except sqlite3.OperationalError:  # no store_info: older than schema version 16
        return None
    return row[0] if row else None


def installation_of(database: Path) -> str | None:
    """The ``installation_id`` of the store at ``database``, read only; None when there is
    no file there, or it has no id (older than schema version 16, or not a stiwatch store).
    DamagedUnreadable when the file cannot be read: a damaged store cannot say whose it is."""
    database = Path(database)
    if not database.is_file():
        return None
    # Without a -wal, everything is in the file: immutable, so that reading it leaves no
    # -wal or -shm behind (read-only, SQLite would make them, and could not remove them).
    flags = "mode=ro" if Path(f"{database}-wal").exists() else "immutable=1"
    try:
        conn = sqlite3.connect(f"file:{quote(str(database))}?{flags}", uri=True,
                               isolation_level=None)
        try:
            return _installation_id(conn)
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise DamagedUnreadable(f"{database}: cannot be read ({error})") from None


def new_installation_id() -> str:
    """A random ``installation_id``, of the form migration 16 gives one."""
    return secrets.token_hex(16)


def check_installation(info: BackupInfo, current: str | None, *, allowed: bool) -> None:
    """OtherInstallation when the backup and the database it would replace are two stores
    (both ids known, and different), unless ``allowed``."""
    if allowed or current is None or info.installation_id in (None, current):
        return
    raise OtherInstallation(
        f"{info.path}: a backup of another installation (its installation_id is "
        f"{info.installation_id}, the database's {current}): restore it over this one only "
        "with --other-installation; nothing was touched")


def keep_installation(store: Store, installation: str | None) -> None:
    """Give the staged store the ``installation_id`` of the store it replaces: digests'
    Message-IDs include it, and they belong to this installation, whatever backup it was
    restored from (another installation's would share its Message-IDs with the one still
    running; a backup older than migration 16 would get a new random one, and a week mailed
    again would not carry the Message-ID it had the first time)."""
    if installation is None or installation == store.installation_id:
        return
    with store.write():
        store.conn.execute("UPDATE store_info SET value = ? WHERE key = 'installation_id'",
                           [installation])


def check_space(backup: Path, database: Path, *, carry: bool) -> None:
    """NotEnoughSpace unless the database's folder can hold the copy of ``backup`` and, when
    ``carry``, the copy of the database (and its -wal) that carrying over reads: SQLite's
    "database or disk is full" half-way says neither what nor how much."""
    copy = Path(backup).stat().st_size
    damaged = sum(path.stat().st_size for path in present_files(database)) if carry else 0
    free = shutil.disk_usage(Path(database).parent).free
    need = (copy + damaged) * 1.05 + 1_000_000  # room for journals, and a migration's growth
    if free >= need:
        return
    parts = f"a copy of the backup, {_mb(copy)}"
    if damaged:
        parts += (f", and one of the database it replaces, {_mb(damaged)}, to carry its "
                  "readers and deliveries over")
    raise NotEnoughSpace(f"{Path(database).parent}: {_mb(free, up=False)} free, and the "
                         f"restore needs about {_mb(need)} there ({parts}); free some space; "
                         "nothing was touched")


def _mb(size: float, *, up: bool = True) -> str:
    """``size`` in MB to one decimal, rounded up (what is needed) or down (what is free)."""
    tenths = math.ceil(size / 1e5) if up else math.floor(size / 1e5)
    return f"{tenths / 10:.1f} MB"


def staged_copies(database: Path) -> list[Path]:
    """The hidden copies of a backup ``copy_in`` made beside ``database`` that are still
    there: a restore under way, or one killed outright (SIGKILL, a crash)."""
    database = Path(database)
    return sorted(database.parent.glob(f".{glob_escape(database.name)}.restore.*.tmp"))


def moved_aside_to(database: Path) -> Path | None:
    """The newest ``damaged-*`` folder beside ``database`` holding a file of its name: where
    a restore that chose the folder itself moved it."""
    database = Path(database)
    folders = [folder for folder in database.parent.glob("damaged-*")
               if _STAMPED.fullmatch(folder.name) and (folder / database.name).exists()]
    # damaged-STAMP-2 is the later of two in one second
    return max(folders, key=lambda folder: (folder.name[8:24], len(folder.name), folder.name),
               default=None)


def refuse_half_restored(database: Path, *, shown_as: Path | None = None) -> None:
    """HalfRestored, naming the database as ``shown_as`` when given and where it was moved
    when it can tell, if a restore killed between moving ``database`` aside and renaming its
    copy in left none there: a store made or restored there now would stand in for it,
    without its readers and what they were sent."""
    database = Path(database)
    copies = staged_copies(database)
    if database.exists() or not copies:
        return
    holder = holder_of(edit_lock_path(shown_as or database))
    pid = parse_holder(holder)[0] if holder is not None else None
    if pid is not None and pid != str(os.getpid()):
        raise RestoreUnderWay(f"{shown_as or database}: a `stiwatch restore` (pid {pid}) is "
                              "putting a backup in the database's place at this moment; try "
                              "again when it has finished")
    folder = moved_aside_to(database)
    where = (f"its files are in {folder}" if folder is not None
             else "its files are in the folder given as its --keep-damaged-in")
    raise HalfRestored(f"{shown_as or database}: no database, and a restore's copy beside it "
                       f"({copies[-1].name}): a `stiwatch restore` was stopped between moving "
                       f"the database aside and renaming its copy in; {where}")


def remove_leftovers(database: Path) -> list[Path]:
    """Remove the copies a restore killed outright (SIGKILL, a crash) left beside
    ``database``: only for the holder of the run lock, which every restore takes, so none is
    in use. Each is as large as a store. Returns what was removed."""
    database = Path(database)
    found = sorted(database.parent.glob(f".{glob_escape(database.name)}.restore.*.tmp*"))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def copy_in(backup: Path, database: Path) -> Path:
    """A copy of ``backup`` in a hidden temporary file beside ``database`` (SQLite's backup
    API, one self-contained file), for ``install`` to rename: the database's name never holds
    a half-written store. StoreError naming ``database`` if it cannot be written."""
    try:
        handle, name = tempfile.mkstemp(dir=Path(database).parent,
                                        prefix=f".{Path(database).name}.restore.", suffix=".tmp")
    except OSError as error:
        raise StoreError(f"{database}: cannot write the restored copy beside it "
                         f"({error.strerror or error})") from None
    os.close(handle)
    temp = Path(name)
    try:
        source = _connect_readonly(backup)
        target = sqlite3.connect(temp, isolation_level=None)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
            source.close()
        _same_access(temp, Path(database))
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, sqlite3.Error):
            raise StoreError(f"{database}: cannot write the restored copy beside it "
                             f"({error})") from None
        raise
    return temp


def _same_access(temp: Path, database: Path) -> None:
    """The temporary copy takes the mode (and, for root, the owner) of the database it will
    replace: made 0600 by whoever runs the restore (root, often), the service user could not
    open it. Without a database there, the mode a new file gets."""
    try:
        current = database.stat()
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        return
    os.chmod(temp, stat.S_IMODE(current.st_mode))
    if os.geteuid() == 0:
        os.chown(temp, current.st_uid, current.st_gid)


def present_files(database: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it that exist, side files first (see
    ``move_aside``)."""
    database = Path(database)
    sides = [Path(f"{database}{side}") for side in SIDE_FILES]
    return [path for path in [*sides, database] if path.exists()]


def move_aside(database: Path, folder: Path) -> list[Path]:
    """Move ``database`` and its -wal, -shm and -journal into ``folder`` (created if missing)
    under their own names: a -wal is read only beside a file of its name. All or nothing:
    CannotMoveAside, with whatever had moved moved back. Returns the new paths.

    Readers take no lock a restore holds (`status`, `search`, `serve`): at every moment the
    database's name must hold the database with its -wal, or no database, never the database
    without its -wal, which reads as the store at its last checkpoint, older (and is given a
    new -wal and -shm that would be left beside the restored copy). So the database goes
    first and its side files after it: in between, for as long as a rename takes, a reader
    finds no database, an error. On another file system, where moving is copying, every file
    is first copied into ``folder`` while all stay in place (readers see the store whole for
    the minutes a large one takes), then removed in that order; copied again if one changed
    meanwhile (a `stiwatch tag` writing), so the copy is never torn."""
    database, folder = Path(database), Path(folder)
    files = sorted(present_files(database), key=lambda path: path != database)
    refuse_taken(database, folder)
    try:
        folder.mkdir(exist_ok=True)  # its parent: checked by `check_folder`, not made
    except OSError as error:
        raise CannotMoveAside(f"{folder}: cannot create the folder for the damaged files "
                              f"({error.strerror or error}); nothing was moved") from None
    plan = [(path, folder / path.name) for path in files]
    try:
        if folder.stat().st_dev == database.parent.stat().st_dev:
            for path, destination in plan:
                try:
                    os.rename(path, destination)
                except FileNotFoundError:
                    if path == database:
                        raise
                    # a -wal or -shm its last connection removed on closing, after folding
                    # the -wal into the database, which had moved already
        else:
            copied = _copy_into(database, folder)
            plan = [(path, destination) for path, destination in plan if path in copied]
            for path, _ in plan:
                # a -wal or -shm gone since it was copied: its last connection removed it
                path.unlink(missing_ok=path != database)
    except BaseException as error:  # Ctrl-C or SIGTERM too: never half the files moved
        # What moved is told by the files, so an interrupt between two steps misses nothing.
        moved = [destination for path, destination in plan
                 if not path.exists() and destination.exists()]
        for path, destination in plan:
            if path.exists():  # copied across file systems, its original still in place
                destination.unlink(missing_ok=True)
        move_back(moved, database)
        if not isinstance(error, OSError):
            raise
        raise CannotMoveAside(f"{database}: cannot move it into {folder} "
                              f"({error.strerror or error}); nothing was moved") from None
    return [destination for _, destination in plan if destination.exists()]


# How often moving aside across file systems copies files that change while being copied
# before it gives up: something is writing to the store all the time.
_COPY_ATTEMPTS = 3


def _copy_into(database: Path, folder: Path) -> list[Path]:
    """Copy the database's files into ``folder`` under their names, leaving them in place, as
    they are at one moment: copied again when the database or its -wal changed meanwhile (the
    -shm changes as readers read, and is rebuilt from the -wal when needed). Returns the
    files copied."""

    def state() -> list[tuple[str, int, int]]:
        return [(path.name, info.st_size, info.st_mtime_ns) for path in present_files(database)
                if not path.name.endswith("-shm") for info in [path.stat()]]

    for _ in range(_COPY_ATTEMPTS):
        files = present_files(database)
        partial = [folder / f".{path.name}.moving" for path in files]
        try:
            try:
                before = state()
                for path, temp in zip(files, partial):
                    shutil.copy2(path, temp)
                if state() != before:
                    continue
            except FileNotFoundError:  # a -wal removed meanwhile: its last writer closed it
                continue
            for path, temp in zip(files, partial):
                os.replace(temp, folder / path.name)
            return files
        finally:
            for temp in partial:
                temp.unlink(missing_ok=True)
    raise CannotMoveAside(f"{database}: it changed each of {_COPY_ATTEMPTS} times it was "
                          f"copied into {folder} (another process writing to it); nothing "
                          "was moved")


def move_back(moved: list[Path], database: Path) -> None:
    """Undo ``move_aside``: each file back beside ``database``, under its name, its side
    files first, so that a reader never finds the database there without its -wal (see
    ``move_aside``)."""
    for destination in sorted(moved, key=lambda path: path.name == Path(database).name):
        shutil.move(destination, Path(database).parent / destination.name)


def refuse_taken(database: Path, folder: Path) -> None:
    """CannotMoveAside if ``folder`` already holds a file of the name of the database or of
    one of its side files: an earlier restore's damaged files are never replaced."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CannotMoveAside(f"{folder}: not a folder (nothing was moved)")
    for path in present_files(database):
        if (folder / path.name).exists():
            raise CannotMoveAside(f"{folder / path.name}: already exists; name another folder "
                                  "for the damaged files (nothing was moved)")


def check_folder(database: Path, folder: Path) -> None:
    """CannotMoveAside, before anything is copied, naming ``folder``, unless the database's
    files can be moved into it: it is a folder, or can be made in one that exists; this user
    may write there; and on another file system than the database (where moving is copying)
    it has room for them. ``move_aside`` finds the same problems, but only after the copy and
    the carry-over, minutes on a large store."""
    folder, database = Path(folder), Path(database)
    refuse_taken(database, folder)
    problem = None
    there = folder if folder.exists() else folder.parent
    if not there.exists():
        problem = f"{there} does not exist (make it, or name another folder)"
    elif not there.is_dir():
        problem = f"{there} is a file, not a folder"
    elif not os.access(there, os.W_OK | os.X_OK):
        problem = f"this user may not write in {there} (check its owner and mode)"
    elif there.stat().st_dev != database.parent.stat().st_dev:
        need = sum(path.stat().st_size for path in present_files(database))
        free = shutil.disk_usage(there).free
        if free < need:
            problem = (f"on another file system than the database, where moving them copies "
                       f"them, it has {_mb(free, up=False)} free for {_mb(need)}; free some "
                       "space or name another folder")
    if problem is not None:
        raise CannotMoveAside(f"{folder}: cannot keep the damaged files there: {problem}; "
                              "nothing was touched")


def free_folder(database: Path, name: str) -> Path:
    """``name`` beside ``database``, or ``name-2``, ``name-3``... when a folder of that name
    already holds files of the database's names (two restores in one second)."""
    parent = Path(database).parent
    folder, number = parent / name, 1
    while True:
        try:
            refuse_taken(database, folder)
            return folder
        except CannotMoveAside:
            number += 1
            folder = parent / f"{name}-{number}"


def install(temp: Path, database: Path) -> None:
    """Give the copy ``copy_in`` made the database's name (one rename)."""
    os.replace(temp, database)


def stage(temp: Path, backup: Path) -> Store:
    """The copy ``copy_in`` made, opened as a store (migrated when older) under its temporary
    name, for ``carry_over`` and ``seal`` before it takes the database's: stopped before that
    rename, the database is as it was. Errors name ``backup``."""
    try:
        return open_store(temp, create=False)
    except StoreError as error:
        if isinstance(error, MigrationInterrupted):
            raise
        raise type(error)(str(error).replace(str(temp), f"{backup} (its copy)")) from error


def seal(store: Store) -> None:
    """Close the staged store as one self-contained file: a -wal left beside its temporary
    name would not follow it to the database's."""
    store.conn.execute("PRAGMA journal_mode = DELETE")
    store.close()


def carry_over(store: Store, damaged: Path, *, shown_as: Path | None = None,
               region_of: Mapping[str, str] | None = None,
               same_installation: bool = True) -> CarryOver:
    """Write into ``store`` (the restored backup, migrated) the subscribers, deliveries and
    analysts' corrections of the store at ``damaged`` (the one it replaces) that are newer than
    its own, reading a copy of its files (migrated there when older), in one transaction.
    DamagedUnreadable says why it could not, naming the store as ``shown_as`` (where it is
    moved to) when given. ``region_of`` (country code -> region id) keeps the regions of an
    item whose countries a carried correction changed in step, as `stiwatch tag` does.
    ``same_installation``: the two stores are known to be one installation's (see
    ``_analyst_changes``).

    A row is keyed by what both stores share, the reader's address (and the week), never by a
    row id. A delivery recorded as sent stays sent: a sent row of either store is kept over
    any other state; otherwise the row updated last wins (the moved-aside store's when both
    were updated in the same second). A delivery in doubt comes across in
    doubt (no run sends it until `digest resolve`). A delivery whose reader neither store has
    would break the foreign key: it is left out and counted.

    Analysts' corrections: see ``_analyst_changes``. Corrections whose table (or the items')
    fails its integrity check are not carried, and ``analyst_unreadable`` says why: the
    readers and deliveries still are.
    """
    # Named after the staged copy (.NAME.restore.*.tmp.carry-over.*): `remove_leftovers`
    # finds both.
    with tempfile.TemporaryDirectory(dir=store.path.parent,
                                     prefix=f"{store.path.name}.carry-over.") as work:
        copy = Path(work) / damaged.name
        try:
            for path in present_files(damaged):
                shutil.copyfile(path, copy.parent / path.name)
        except OSError as error:  # a disk filled since `check_space`
            raise StoreError(f"{damaged}: cannot copy it beside itself to carry its readers "
                             f"and deliveries over ({error.strerror or error}); nothing was "
                             "touched") from None
        shown = shown_as or damaged
        found = CarryOver()
        found.integrity, version = _readable(copy, shown)
        if version < LATEST_VERSION:
            try:
                open_store(copy, create=False).close()
            except (StoreError, sqlite3.Error) as error:
                raise DamagedUnreadable(
                    f"{shown}: its copy could not be migrated from schema version {version} "
                    f"({str(error).replace(str(copy), 'copy')})") from None
            found.migrated_from = version
        _carry(store, copy, found, region_of, same_installation)
        return found


def _readable(copy: Path, damaged: Path) -> tuple[str, int]:
    """The whole file's quick_check verdict and the schema version of the moved-aside store's
    copy, or DamagedUnreadable. Its subscribers and deliveries must pass their own check: the
    rest of the file (a crawl's items, most of its pages) may be what was damaged."""
    try:
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            version = current_version(conn)
            if version == 0:
                raise DamagedUnreadable(f"{damaged}: not a stiwatch database")
            if version > LATEST_VERSION:
                raise DamagedUnreadable(f"{damaged}: {too_new(version)}")
            verdict = _quick_check(conn)
            for table in ("subscribers", "deliveries"):
                own = _quick_check(conn, table)
                if own != "ok":
                    raise DamagedUnreadable(
                        f"{damaged}: its {table} table fails its integrity check ({own})")
        finally:
            conn.close()
    except sqlite3.Error as error:
        raise DamagedUnreadable(f"{damaged}: does not open ({error})") from None
    return verdict, version


def _quick_check(conn: sqlite3.Connection, table: str | None = None, *,
                 schema: str = "main") -> str:
    """``ok``, or the first problem PRAGMA quick_check finds (in the whole file, or in
    ``table`` and its indexes) of the database attached as ``schema``."""
    try:
        rows = conn.execute(f"PRAGMA {schema}.quick_check{f'({table})' if table else ''}"
                            ).fetchall()
    except sqlite3.DatabaseError as error:  # a page too damaged for a verdict
        return str(error)
    problems = [row[0] for row in rows if not row[0].startswith("*** in database")]
    return problems[0] if problems else "ok"


def _carry(store: Store, copy: Path, found: CarryOver, region_of: Mapping[str, str] | None,
           same_installation: bool) -> None:
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS damaged", [f"file:{quote(str(copy))}?mode=ro"])
    try:
        subscriber_columns = _columns(conn, "subscribers")
        delivery_columns = _columns(conn, "deliveries")
        try:
            subscribers = conn.execute(
                f"""SELECT {', '.join(f'd.{c}' for c in subscriber_columns)},
                           m.email IS NULL AS new
                    FROM damaged.subscribers d LEFT JOIN main.subscribers m ON m.email = d.email
                    WHERE m.email IS NULL
                       OR (d.updated_at >= m.updated_at AND {_differ(subscriber_columns)})
                    ORDER BY d.email""").fetchall()
            deliveries = conn.execute(
                f"""SELECT {', '.join(f'd.{c}' for c in delivery_columns)}
                    FROM damaged.deliveries d
                    LEFT JOIN main.deliveries m
                           ON m.subscriber = d.subscriber AND m.period = d.period
                    WHERE m.subscriber IS NULL
                       OR (d.status = 'sent' AND m.status <> 'sent')
                       OR (d.updated_at >= m.updated_at AND {_differ(delivery_columns)}
                           AND (m.status <> 'sent' OR d.status = 'sent'))
                    ORDER BY d.period, d.subscriber""").fetchall()
        except sqlite3.DatabaseError as error:
            raise DamagedUnreadable(f"{copy.name}: its subscribers or deliveries cannot be "
                                    f"read ({error})") from None
        known = {row[0] for row in conn.execute(
            "SELECT email FROM main.subscribers UNION SELECT email FROM damaged.subscribers")}
        # Items stored after the backup are gone from the restored store, and crawled again
        # get other ids: a digest's `through_item_id` above its highest id would hide the
        # stories crawled anew from the "found late" section, so it is brought down to it.
        newest_item = store.max_item_id()
        through = delivery_columns.index("through_item_id")
        corrections = _analyst_changes(conn, found, same_installation)
        with store.write():
            for row in subscribers:
                values = row[:-1]
                conn.execute(_upsert("subscribers", subscriber_columns, ["email"]), values)
                (found.subscribers_added if row[-1] else found.subscribers_changed).append(
                    values[subscriber_columns.index("email")])
            for row in deliveries:
                values = list(row)
                if values[delivery_columns.index("subscriber")] not in known:
                    found.orphans += 1
                    continue
                if values[through] is not None:
                    values[through] = min(values[through], newest_item)
                conn.execute(_upsert("deliveries", delivery_columns, ["subscriber", "period"]),
                             values)
                found.deliveries += 1
                state = dict(zip(delivery_columns, values))
                found.deliveries_sent += state["status"] == "sent"
                found.in_doubt += (state["status"] == "sending"
                                   and state["unanswered_at"] is not None)
            _apply_analyst_changes(store, corrections, region_of, found)
    finally:
        conn.execute("DETACH DATABASE damaged")


# (facet, value) -> (verdict, labelled_at): one store's analyst verdicts on one item
_Verdicts = dict[tuple[str, str], tuple[int, str]]

# The restored store's item that is the moved-aside store's item ``i``: by URL, which both
# stores make unique (row ids differ: items stored after the backup took its next ids), then
# by the other URLs a listing gave it (item_urls) in either store.
_SAME_ITEM = """coalesce(
    (SELECT m.id FROM main.items m WHERE m.url = i.url),
    (SELECT u.item_id FROM main.item_urls u WHERE u.url = i.url),
    (SELECT m.id FROM damaged.item_urls du JOIN main.items m ON m.url = du.url
     WHERE du.item_id = i.id ORDER BY du.url LIMIT 1),
    (SELECT u.item_id FROM damaged.item_urls du JOIN main.item_urls u ON u.url = du.url
     WHERE du.item_id = i.id ORDER BY du.url LIMIT 1))"""
# The same, the other way: whether the moved-aside store has the restored store's item ``i``.
_IN_DAMAGED = (_SAME_ITEM.replace("main.", "other.").replace("damaged.", "main.")
               .replace("other.", "damaged."))


@dataclass
class _Corrections:
    """What to write on one item of the restored store, as `stiwatch tag` would."""

    item_id: int
    add: list[tuple[str, str]] = field(default_factory=list)
    remove: list[tuple[str, str]] = field(default_factory=list)
    undo: list[tuple[str, str]] = field(default_factory=list)
    made_at: dict[tuple[str, str], str] = field(default_factory=dict)


def _analyst_changes(conn: sqlite3.Connection, found: CarryOver,
                     same_installation: bool) -> list[_Corrections]:
    """The analysts' corrections of the moved-aside store (attached as ``damaged``) to write
    into the restored one (``main``), per item both have; those on items it lacks go to
    ``found.analyst_left``.

    Per item, facet and value, the verdict made later wins (the moved-aside store's when both
    were made in the same second), so a correction made after the backup comes across and one
    the backup has that is later than the moved-aside store's is kept. ``policy`` holds one
    verdict per item, whatever its value: the two stores' are compared as one. A verdict the
    backup has on an item the moved-aside store has without it was taken back there
    (`stiwatch tag --undo`, which leaves no row): the moved-aside store is the later one, the
    premise of carrying anything over, and a restore carries its corrections over, so an
    earlier restore does not leave it without one the backup has. Unless
    ``same_installation``, that is not known (a store made anew at the database's path after
    a disk was lost has the items crawled again, and none of the corrections): such a verdict
    is kept, and counted in ``analyst_not_taken_back``.
    """
    if found.integrity != "ok":
        for table in ("analyst_labels", "items", "item_urls"):
            own = _quick_check(conn, table, schema="damaged")
            if own != "ok":
                found.analyst_unreadable = f"the {table} table fails PRAGMA quick_check ({own})"
                return []
    # a policy verdict of 0 ("removed") is not one `stiwatch tag` makes, nor can write
    valid = "NOT (a.facet = 'policy' AND a.verdict = 0)"
    try:
        theirs = conn.execute(
            f"""SELECT {_SAME_ITEM} AS here, i.url, a.facet, a.value, a.verdict, a.labelled_at
                FROM damaged.analyst_labels a JOIN damaged.items i ON i.id = a.item_id
                WHERE {valid} ORDER BY i.url, a.facet, a.value""").fetchall()
        ours = conn.execute(
            f"""SELECT a.item_id, {_IN_DAMAGED} IS NOT NULL AS there, a.facet, a.value,
                       a.verdict, a.labelled_at
                FROM main.analyst_labels a JOIN main.items i ON i.id = a.item_id
                WHERE {valid}""").fetchall()
    except sqlite3.DatabaseError as error:
        found.analyst_unreadable = f"they cannot be read ({error})"
        return []
    later: dict[int, _Verdicts] = {}
    for here, url, facet, value, verdict, made in theirs:
        if here is None:
            found.analyst_left.append((url, facet, value, verdict))
            continue
        known = later.setdefault(here, {})
        # two items of the moved-aside store under URLs of one: the later verdict
        if (facet, value) not in known or made > known[facet, value][1]:
            known[facet, value] = (verdict, made)
    backup: dict[int, _Verdicts] = {}
    for item_id, there, facet, value, verdict, made in ours:
        backup.setdefault(item_id, {})[facet, value] = (verdict, made)
        if there:
            later.setdefault(item_id, {})
    changes = []
    for item_id, verdicts in sorted(later.items()):
        change = _changes_of(item_id, backup.get(item_id, {}), verdicts, found,
                             same_installation)
        if change.add or change.remove or change.undo:
            changes.append(change)
    return changes


def _changes_of(item_id: int, backup: _Verdicts, later: _Verdicts, found: CarryOver,
                take_back: bool) -> _Corrections:
    change = _Corrections(item_id)

    def policy(verdicts: _Verdicts) -> tuple[tuple[str, str], tuple[int, str]] | None:
        rows = [(key, state) for key, state in verdicts.items() if key[0] == "policy"]
        return max(rows, key=lambda row: row[1][1]) if rows else None

    for key, (verdict, made) in later.items():
        if key[0] == "policy":
            if policy(later) != (key, (verdict, made)):
                continue
            rival = policy(backup)
            same = rival is not None and rival[0] == key
            rival_state = rival[1] if rival is not None else None
        else:
            rival_state = backup.get(key)
            same = rival_state is not None and rival_state[0] == verdict
        if same:
            continue
        if rival_state is not None and made < rival_state[1]:
            found.analyst_kept += 1
            continue
        (change.add if verdict else change.remove).append(key)
        change.made_at[key] = made
    for key in backup:
        if key[0] == "policy" and policy(later) is not None:
            continue  # replaced by the later verdict, or kept over it
        if key in later:
            continue
        if take_back:
            change.undo.append(key)
        else:
            found.analyst_not_taken_back += 1
    return change


def _apply_analyst_changes(store: Store, changes: list[_Corrections],
                           region_of: Mapping[str, str] | None, found: CarryOver) -> None:
    """Write each item's corrections with the functions `stiwatch tag` uses (the tags they
    keep, the regions that follow countries, the mark for `classify`, the near-duplicates),
    each verdict then dated as the analyst made it, so that a later restore compares it
    rightly."""
    conn = store.conn
    for change in changes:
        try:
            with store.write():  # a savepoint: an item's corrections all or none
                if change.undo:
                    store.analyst_undo(change.item_id, change.undo, region_of=region_of)
                if change.add or change.remove:
                    store.analyst_label(change.item_id, add=change.add, remove=change.remove,
                                        region_of=region_of)
                for (facet, value), made in change.made_at.items():
                    conn.execute("UPDATE analyst_labels SET labelled_at = ? WHERE item_id = ?"
                                 " AND facet = ? AND value = ?",
                                 [made, change.item_id, facet, value])
                    # the item's tag, and its copies' (which took it) but for a copy's own
                    # verdict on the label
                    conn.execute(
                        "UPDATE tags SET tagged_at = :made WHERE facet = :facet"
                        " AND value = :value AND method = 'analyst' AND (item_id = :item"
                        " OR item_id IN (SELECT id FROM items WHERE duplicate_of = :item)"
                        " AND NOT EXISTS (SELECT 1 FROM analyst_labels a WHERE a.item_id ="
                        " tags.item_id AND a.facet = :facet AND a.value = :value))",
                        {"made": made, "item": change.item_id, "facet": facet,
                         "value": value})
        except InvalidTag:  # a row `stiwatch tag` would not have made (an empty value)
            url = store.scalar("SELECT url FROM items WHERE id = ?", [change.item_id])
            found.analyst_left += [(url, facet, value, 1) for facet, value in change.add]
            found.analyst_left += [(url, facet, value, 0) for facet, value in change.remove]
            continue
        found.analyst_items += 1
        found.analyst_labels += len(change.add) + len(change.remove)
        found.analyst_undone += len(change.undo)


def _differ(columns: list[str]) -> str:
    """SQL: the damaged store's row ``d`` differs from the restored one's ``m``. Timestamps
    have whole seconds: a row changed in the second the backup was taken has the same
    ``updated_at`` in both, and the moved-aside store's, the later, is the one to keep."""
    return "(" + " OR ".join(f"d.{c} IS NOT m.{c}" for c in columns) + ")"


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]


def _upsert(table: str, columns: list[str], key: list[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO main.{table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


def sent_weeks(store: Store) -> list[dict[str, object]]:
    """Each week with a delivery recorded as sent, oldest first, with how many."""
    return store.query("SELECT period AS week, count(*) AS sent FROM deliveries "
                       "WHERE status = 'sent' GROUP BY period ORDER BY period")


def in_doubt(store: Store) -> int:
    """Deliveries in doubt (sent without an answer) in ``store``."""
    return store.scalar("SELECT count(*) FROM deliveries "
                        "WHERE status = 'sending' AND unanswered_at IS NOT NULL")
