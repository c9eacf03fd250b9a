"""Small named exceptions raised by the store; only the CLI turns them into user messages."""


class StoreError(Exception):
    """Base class for every error the store raises on purpose."""


class SchemaTooNew(StoreError):
    """The file was written by a newer stiwatch whose schema this version does not know."""


class StoreLocked(StoreError):
    """Another process held the write lock for longer than the store waits for it."""


class StoreReadOnly(StoreError):
    """The file (or its folder, where SQLite writes the -wal and -shm files) cannot be
    written, and the command needs to write."""


class MigrationFailed(StoreError):
    """A migration step failed; it was rolled back, leaving the file at its older version."""


class SQLiteTooOld(StoreError):
    """Python's sqlite3 module is linked against an SQLite older than the migrations need."""


class MigrationInterrupted(StoreError):
    """Ctrl-C or SIGTERM (``interrupt``) arrived while the store at ``path`` was being
    migrated: the step under way was rolled back, leaving the file intact at ``version``."""

    def __init__(self, path: str, version: int, target: int,
                 interrupt: KeyboardInterrupt) -> None:
        self.path, self.version, self.target, self.interrupt = path, version, target, interrupt
        super().__init__(
            f"{path}: migrating to schema version {target} was interrupted and rolled back; "
            f"the file is intact, at schema version {version}: run the command again to "
            "finish migrating")


class NotAStore(StoreError):
    """The path exists but is not an SQLite database (or is corrupt), or, when opened without
    ``create``, an SQLite database without stiwatch's tables."""


class NoSuchStore(StoreError):
    """Opened without ``create`` (or read-only), and no file is at the path."""


class NoSuchFolder(NoSuchStore):
    """Asked to create a database in a folder that does not exist: never made on the way,
    since a mistyped folder would otherwise get a new, empty store."""


class NoSuchSource(StoreError):
    """A source id that the store does not hold."""


class NoSuchItem(StoreError):
    """An item id that the store does not hold."""


class NoSuchSubscriber(StoreError):
    """An e-mail address that is not a subscriber."""


class InvalidTag(StoreError):
    """A tag whose facet, value or method breaks the schema's contract."""


class NoSuchDelivery(StoreError):
    """No delivery row for that (subscriber, week)."""


class NotInDoubt(StoreError):
    """A delivery an operator tried to resolve that is not in doubt (nor, to resend, failed)."""


class NotOwed(StoreError):
    """A delivery an operator tried to cancel that is no longer owed (sent, failed, skipped)."""
