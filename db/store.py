"""Opening the store: one SQLite file, WAL, foreign keys, migrated on open."""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import sqlite3
from typing import Any, Iterator

import sqlite_utils

from .digests import DigestsMixin
from .errors import NoSuchStore, NotAStore, StoreError
from .items import ItemsMixin
from .runs import RunsMixin
from .schema import LATEST_VERSION, current_version, migrate
from .search import SearchMixin
from .sources import SourcesMixin
from .status import StatusMixin
from .subscribers import SubscribersMixin
from .tags import TagsMixin


class Store(SourcesMixin, ItemsMixin, TagsMixin, SubscribersMixin, RunsMixin, DigestsMixin,
            SearchMixin, StatusMixin):
    """The stiwatch database. All SQL of the project lives in this package."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        create = create and not readonly
        if not create and not self.path.exists():
            raise NoSuchStore(f"{self.path}: no such database (run `stiwatch init` first)")
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None
                )
            else:
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            version = current_version(conn)
            # Checked before the WAL pragma below, which would already rewrite the header of
            # someone else's database; a store is created only in a new or empty file.
            if version == 0 and (not create or conn.execute(
                    "SELECT count(*) FROM sqlite_master").fetchone()[0]):
                conn.close()
                raise NotAStore(f"{self.path}: not a stiwatch database (it has none of "
                                "stiwatch's tables)")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL survives a killed process; only power loss can drop the last commit.
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as error:
            raise NotAStore(f"{self.path}: not a stiwatch database ({error})") from error
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        if readonly:
            if version != LATEST_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version}, expected {LATEST_VERSION}; "
                    "open it once with `stiwatch init` to migrate"
                )
        else:
            self.migrated = migrate(conn)
            # Items a migration or another tool queued for the CJK index (a no-op otherwise).
            self.index_cjk()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return current_version(self.conn)

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
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

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

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | os.PathLike[str], *, readonly: bool = False,
               create: bool = True) -> Store:
    """Open (creating and migrating if needed) the store at ``path``.

    Without ``create`` (always when ``readonly``), a missing file raises NoSuchStore and an
    SQLite file without stiwatch's tables raises NotAStore, leaving both as they were.
    """
    return Store(path, readonly=readonly, create=create)
