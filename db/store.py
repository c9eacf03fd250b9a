"""Opening the store: one SQLite file, WAL, foreign keys, migrated on open."""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import sqlite3
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote

import sqlite_utils

from .digests import DigestsMixin
from .files import database_beside
from .errors import (MigrationFailed, MigrationInterrupted, NoSuchFolder, NoSuchStore,
                     NotAStore, SchemaTooNew, StoreError, StoreLocked, StoreReadOnly)
from .items import ItemsMixin
from .runs import RunsMixin
from .schema import LATEST_VERSION, current_version, environmental, migrate, too_new

# Seconds a writer waits for another's write lock (a crawl saving a batch) before giving up.
BUSY_TIMEOUT = 30.0
from .search import SearchMixin
from .sources import SourcesMixin
from .status import StatusMixin
from .subscribers import SubscribersMixin
from .tags import TagsMixin

_T = TypeVar("_T")


class Store(SourcesMixin, ItemsMixin, TagsMixin, SubscribersMixin, RunsMixin, DigestsMixin,
            SearchMixin, StatusMixin):
    """The stiwatch database. All SQL of the project lives in this package."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 create: bool = True, as_is: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._release_on_close = False
        self._read_as: tuple[int, int, int] | None = None  # see _connect_unchanging
        self.migrated: list[int] = []  # the migrations this open applied
        self.migrated_from = 0  # the schema version the file had before them (0: a new file)
        version: int | None = None
        create = create and not readonly
        if not create and not self.path.exists():
            raise NoSuchStore(f"{self.path}: no such database (run `stiwatch init` first)")
        beside = database_beside(self.path) if create else None
        if beside is not None:
            raise NotAStore(f"{self.path}: that is a file SQLite keeps beside the database "
                            f"{beside}, not a database: name the database itself, {beside}")
        if self.path.is_dir():
            # SQLite would only say "disk I/O error" or "unable to open database file".
            raise NotAStore(f"{self.path}: is a folder, not a database file (give the file, "
                            f"e.g. {self.path / 'stiwatch.db'})")
        if self.path.is_file() and not os.access(self.path, os.R_OK):
            # SQLite says only "unable to open database file", which the write open after it
            # turned into advice about writing.
            raise StoreReadOnly(f"{self.path}: cannot read the database: this user may not "
                                "read the file (check its owner and mode)")
        self._release_on_close = readonly and may_release_side_files(self.path)
        if readonly:
            refuse_newer(self.path)
        try:
            if readonly:
                conn = self._connect_readonly()
            else:
                if create:
                    check_folder(self.path)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = current_version(conn)
            # Checked before the WAL pragma below, which would already rewrite the header of
            # someone else's database; a store is created only in a new or empty file.
            # An empty schema_migrations alone is what a first open stopped before migration
            # 1 committed leaves (a crash, Ctrl-C, SIGTERM): still a new store.
            if version == 0 and (not create or _other_tables(conn)):
                conn.close()
                raise NotAStore(f"{self.path}: not a stiwatch database (it has none of "
                                "stiwatch's tables)")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL survives a killed process; only power loss can drop the last commit.
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as error:
            if version is None and not readonly and environmental(error):
                version = self._version_read_only()
            problem = self._environment_error(error, version)
            if problem is not None:
                raise problem from error
            raise NotAStore(f"{self.path}: not a stiwatch database ({error})") from error
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        if readonly:
            if version != LATEST_VERSION and not (as_is and version < LATEST_VERSION):
                conn.close()
                if version > LATEST_VERSION:
                    raise SchemaTooNew(f"{self.path}: {too_new(version)}")
                raise StoreError(
                    f"{self.path}: schema version {version}, expected {LATEST_VERSION}; "
                    "open it once with `stiwatch init` to migrate"
                )
        else:
            try:
                self.migrated_from = version
                self.migrated = migrate(conn)
                # Items a migration or another tool queued for the CJK index (a no-op otherwise).
                self.index_cjk()
            except (SchemaTooNew, MigrationFailed) as error:
                conn.close()
                raise type(error)(f"{self.path}: {error}") from error
            except KeyboardInterrupt as interrupt:
                # migrate() rolled back the step under way; only a migration is reported as
                # such (interrupted CJK indexing after it keeps its queue for the next open).
                if conn.in_transaction:  # interrupted between BEGIN and migrate's try
                    conn.execute("ROLLBACK")
                reached = current_version(conn)
                conn.close()
                if reached < LATEST_VERSION:
                    raise MigrationInterrupted(str(self.path), reached, LATEST_VERSION,
                                               interrupt) from None
                raise
            except sqlite3.OperationalError as error:
                conn.close()
                raise (self._environment_error(error, version) or error) from error

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection (mode=ro), also to a store in a folder this user cannot
        write to, such as a shared copy."""
        uri = f"file:{quote(str(self.path))}?mode=ro"
        if readable_only_unchanging(self.path):
            # A file this user cannot write (a copy made read-only, a read-only mount), and no
            # connection has it open in WAL mode (it would have made a -shm): read as an
            # unchanging file. Read mode=ro, it got a -wal and -shm beside it that only a
            # connection able to write could remove.
            return self._connect_unchanging(uri)
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.OperationalError as error:
            # Root (a chattr +i folder) is told "unable to open", any other user "attempt to
            # write a readonly database".
            if not any(text in str(error) for text in ("unable to open database file",
                                                        "attempt to write a readonly database")
                       ) or os.path.exists(f"{self.path}-shm"):
                raise  # a -shm there: a writer may be at work, so never read it as unchanging
            conn.close()
            # Reading a WAL file needs its -shm file, which SQLite could not create beside
            # it: no process has the store open for writing (a writer would have made it), so
            # it is read as an unchanging file.
            conn = self._connect_unchanging(uri)
        return conn

    def _connect_unchanging(self, uri: str) -> sqlite3.Connection:
        """``uri`` read as a file nobody changes (SQLite ``immutable``: no lock, no -shm). Its
        owner may still write it meanwhile: `changed_while_read` then tells."""
        self._read_as = _file_state(self.path)
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=BUSY_TIMEOUT,
                               isolation_level=None)

    @property
    def changed_while_read(self) -> bool:
        """Whether the file, read as unchanging (`_connect_unchanging`), was written meanwhile
        (a crawl of the store's owner, folding its -wal into the file): what was read may mix
        pages from before and after, or miss rows. A writer's -wal alone leaves the file as it
        was, and what was read is then only older."""
        return self._read_as is not None and _file_state(self.path) != self._read_as

    def _version_read_only(self) -> int | None:
        """The file's schema version read without writing, None if even that fails. A WAL
        store (every store stiwatch made) in a folder this user cannot write fails before its
        version is read, since no -shm can be made beside it."""
        try:
            conn = self._connect_readonly()
        except sqlite3.Error:
            return None
        try:
            return current_version(conn)
        except sqlite3.Error:
            return None
        finally:
            conn.close()

    def _environment_error(self, error: sqlite3.Error,
                           version: int | None = None) -> StoreError | None:
        """The named error for an SQLite error that comes from the file's surroundings (a
        lock another process keeps, a file this user cannot write, a full disk), naming the
        file; None for any other. ``version``: the file's, when it is being opened."""
        if not environmental(error):
            return None
        text = str(error)
        read_only = "readonly database" in text or "unable to open database file" in text
        if read_only and version is not None and 0 < version < LATEST_VERSION:
            # Even a search writes to an older file once: say why.
            return StoreReadOnly(
                f"{self.path}: cannot write to the database ({error}): it is at schema version "
                f"{version} and must be migrated to {LATEST_VERSION} once, by a user who can "
                "write it and its folder")
        if "database is locked" in text:
            return StoreLocked(
                f"{self.path}: the database is locked by another process (a crawl, a run or "
                f"another tool writing to it) and stayed so for {BUSY_TIMEOUT:g} s; try again "
                "when it has finished")
        if read_only:
            return StoreReadOnly(
                f"{self.path}: cannot write to the database ({error}): check the permissions "
                "of the file and of its folder, where SQLite writes its -wal and -shm files")
        if "disk is full" in text:
            return StoreError(f"{self.path}: cannot write to the database: the disk is full")
        if "disk I/O error" in text:
            # What SQLite says when a write fails other than for want of space: a file over
            # the process's size limit (`ulimit -f`, systemd's LimitFSIZE=) or a failing disk.
            return StoreError(f"{self.path}: cannot write to the database: disk I/O error (a "
                              "file size limit such as `ulimit -f`, or a failing disk)")
        return None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return current_version(self.conn)

    @property
    def installation_id(self) -> str:
        """A random id made with the store (migration 16): the same in every backup of it and
        different for every other store, so it tells installations apart."""
        return self.scalar("SELECT value FROM store_info WHERE key = 'installation_id'") or ""

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction: all or nothing, even if the process is killed half-way.

        The outermost block takes the write lock up front (BEGIN IMMEDIATE) so that a concurrent
        writer waits on busy_timeout instead of failing mid-transaction; nested blocks become
        savepoints.
        """
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            problem = self._environment_error(error)
            if problem is None:
                raise
            raise problem from error

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Run a read query and return rows as dicts."""
        return list(self.db.query(sql, params))

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def backup(self, destination: str | os.PathLike[str]) -> None:
        """Copy the database consistently while others may be writing (SQLite online backup)."""
        target = sqlite3.connect(destination)
        try:
            self.conn.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        self.conn.close()
        if self._release_on_close:
            release_side_files(self.path)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is written or replaced: its inode, size and modification time."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def has_side_files(path: str | os.PathLike[str]) -> bool:
    """Whether a -wal or -shm file is beside the database at ``path``: another process has it
    open, or one that had it open was killed (or read it mode=ro)."""
    return any(os.path.exists(f"{path}{side}") for side in ("-wal", "-shm"))


def readable_only_unchanging(path: str | os.PathLike[str]) -> bool:
    """Whether this user can read the WAL store at ``path`` only as an unchanging file (SQLite
    ``immutable``, which takes no lock): it may not write the file and no -wal or -shm is
    beside it. A mode=ro reader needs a -shm there, which SQLite either cannot make (a folder
    this user may not write) or makes this user's with the file's mode (a shared folder),
    which the store's owner then may not write: its crawls fail until the files are gone."""
    return not os.access(path, os.W_OK) and not has_side_files(path)


def nobody_writes(path: str | os.PathLike[str]) -> bool:
    """Whether no user may write the file at ``path`` (no write bit in its mode, or a
    read-only mount): read as an unchanging file, it can never be read torn."""
    try:
        return (not os.stat(path).st_mode & 0o222
                or bool(os.statvfs(path).f_flag & os.ST_RDONLY))
    except OSError:
        return False


def may_release_side_files(path: str | os.PathLike[str]) -> bool:
    """Whether a reader about to open the store at ``path`` may remove the -wal and -shm on
    closing (``release_side_files``): there is no -wal, or an empty one (what a read-only
    reader makes, another `serve`'s). Never a -wal with transactions in it (another
    process's, or the last ones of a process killed, which a restore may be copying aside at
    that moment): a reader folds none into the file."""
    try:
        return os.path.getsize(f"{path}-wal") == 0
    except OSError:
        return True


def release_side_files(path: str | os.PathLike[str]) -> None:
    """Remove the -wal and -shm files beside the store at ``path`` when no other connection
    has it open, as closing the last connection to it does when that connection may write.

    A read-only (mode=ro) connection makes them, to read a WAL database, and cannot remove
    them on closing: every `status` or `search` left them in the data folder, where a copy or
    a listing of it found them. A connection that may write, opened and closed
    here, checkpoints the log into the file and removes both when it is the last (the
    store's content is the same); when another process has the store open, it leaves them,
    as that process uses them. Nothing to do, or no permission to, does nothing. Only when
    ``may_release_side_files`` said so before the caller opened the store."""
    if not has_side_files(path):
        return
    if not (os.access(path, os.W_OK)
            and os.access(Path(path).parent, os.W_OK | os.X_OK)):
        return
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=1.0,
                               isolation_level=None)
    except sqlite3.Error:
        return
    try:
        # Opening the log is what makes its close checkpoint it and remove the files.
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.Error:
        pass  # best effort: reading worked, and a leftover file is only untidy
    finally:
        conn.close()


def _other_tables(conn: sqlite3.Connection) -> int:
    """How many tables, indexes and views the file has besides ``schema_migrations``."""
    return conn.execute("SELECT count(*) FROM sqlite_master "
                        "WHERE name != 'schema_migrations'").fetchone()[0]


def check_folder(path: str | os.PathLike[str]) -> None:
    """NoSuchFolder unless the folder a new database at ``path`` would go in exists."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise NoSuchFolder(f"{path}: no such folder {folder} (create it first; a database is "
                           "never made in a folder made on the way, which a typo would name)")


def unstarted(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` is a store whose first open stopped before migration 1
    committed (an empty ``schema_migrations`` alone): a new store, which an open that may
    create one finishes, though a read-only open refuses it as no stiwatch database. Read as
    ``refuse_newer`` reads, leaving nothing beside it; False when it cannot be read."""
    return _peek(path, lambda conn: current_version(conn) == 0 and not _other_tables(conn),
                 False)


def refuse_newer(path: str | os.PathLike[str]) -> None:
    """SchemaTooNew if the file at ``path`` was written by a newer stiwatch, found without
    leaving anything beside it: called before a lock file is made or a read-only connection
    opened, each of which would stay behind the refusal (a read-only connection cannot remove
    the -wal and -shm files it made). A missing file, or one this cannot read, passes: the
    open that follows says what is wrong with it."""
    version = _peek(path, current_version, 0)
    if version > LATEST_VERSION:
        raise SchemaTooNew(f"{path}: {too_new(version)}")


def _peek(path: str | os.PathLike[str], read: Callable[[sqlite3.Connection], _T],
          otherwise: _T) -> _T:
    """``read`` of a connection to the file at ``path`` that leaves nothing beside it;
    ``otherwise`` when there is no such file or it cannot be read."""
    if not os.path.isfile(path):
        return otherwise
    # Without a -wal or -shm beside it, read-write, never create: the last connection to close
    # removes the -wal and -shm it made, which mode=ro cannot do; a file this user cannot
    # write would be opened read-only all the same, so it is read as an unchanging file (no
    # connection has it open), which makes neither. With them, mode=ro: they are another
    # process's, or a killed one's last transactions, never checkpointed by a mere check.
    flags = ("mode=ro" if has_side_files(path) else "mode=rw" if os.access(path, os.W_OK)
             else "immutable=1")
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?{flags}", uri=True,
                               timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error:
        return otherwise
    try:
        return read(conn)
    except sqlite3.Error:
        return otherwise
    finally:
        conn.close()


def open_store(path: str | os.PathLike[str], *, readonly: bool = False,
               create: bool = True, as_is: bool = False) -> Store:
    """Open (creating and migrating if needed) the store at ``path``.

    Without ``create`` (always when ``readonly``), a missing file raises NoSuchStore and an
    SQLite file without stiwatch's tables raises NotAStore, leaving both as they were.
    ``as_is`` (with ``readonly``) also opens a file at an older schema version, unmigrated:
    only for copying it whole, since the queries of this package expect the latest schema.
    """
    return Store(path, readonly=readonly, create=create, as_is=as_is)
