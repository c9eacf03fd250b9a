"""stiwatch's store: one SQLite file behind a small API. Imports nothing else of ours."""

from .errors import (
    InvalidTag,
    MigrationFailed,
    MigrationInterrupted,
    NoSuchDelivery,
    NoSuchItem,
    NoSuchSource,
    NoSuchStore,
    NoSuchSubscriber,
    NotAStore,
    NotInDoubt,
    NotOwed,
    SchemaTooNew,
    SQLiteTooOld,
    StoreError,
    StoreLocked,
    StoreReadOnly,
)
from .lock import FileLock, LockHeld, LockUnusable
from .schema import LATEST_VERSION
from .search import OFFICIAL_ORG_TYPES, SORTS, BadQuery, time_bound
from .store import (Store, has_side_files, may_release_side_files, nobody_writes, open_store,
                    readable_only_unchanging, refuse_newer, release_side_files, unstarted)
from .subscribers import FILTER_FACETS, FILTERS

__all__ = [
    "OFFICIAL_ORG_TYPES",
    "SORTS",
    "time_bound",
    "FileLock",
    "LockHeld",
    "LockUnusable",
    "BadQuery",
    "FILTERS",
    "FILTER_FACETS",
    "InvalidTag",
    "MigrationFailed",
    "MigrationInterrupted",
    "LATEST_VERSION",
    "NoSuchDelivery",
    "NoSuchItem",
    "NoSuchSource",
    "NoSuchStore",
    "NoSuchSubscriber",
    "NotAStore",
    "NotInDoubt",
    "NotOwed",
    "SchemaTooNew",
    "SQLiteTooOld",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreReadOnly",
    "has_side_files",
    "may_release_side_files",
    "nobody_writes",
    "open_store",
    "readable_only_unchanging",
    "refuse_newer",
    "release_side_files",
    "unstarted",
]
