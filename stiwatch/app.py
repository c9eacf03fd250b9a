"""The state one `stiwatch` invocation shares between its commands: settings and the store."""

from __future__ import annotations

from functools import cached_property
import logging
import os
from pathlib import Path
from typing import Callable

import click

from classifier.taxonomy import load_taxonomy
import db
from db.restore import (
    HalfRestored, RestoreUnderWay, edit_lock_path, refuse_half_restored, staged_copies,
)

from . import __version__, interrupts, logs
from .config import Settings, load_settings
from .errors import UserError
from .progress import Progress

log = logging.getLogger("stiwatch.store")

# Seconds a command that writes waits for the lock `stiwatch restore` holds: a restore's own
# moment of moving the database aside and renaming its copy in, or another such command.
RESTORE_WAIT = 10
# What `stiwatch restore` records as the holder of the locks it takes.
RESTORE_HOLDER = "stiwatch restore"


class App:
    def __init__(self, db_path: str | None, config_file: str | None, quiet: bool) -> None:
        self._db_flag = db_path
        self._config_flag = config_file
        self.quiet = quiet
        self._store: db.Store | None = None
        self._log_setup: Callable[[], None] | None = None
        self._restore_lock: db.FileLock | None = None
        # The run lock, once `take_run_lock` took it: a restore takes it first, so none can
        # be under way while it is held.
        self.run_lock: db.FileLock | None = None

    @cached_property
    def plain_settings(self) -> Settings:
        """The settings without setting up logging: for `stiwatch config`, which must show them
        even when the log file cannot be opened, and must not create it (as root, a log file
        the scheduled runs could then not open)."""
        settings = load_settings(self._config_flag)
        if self._db_flag:
            settings.override("db", self._db_flag, "option --db")
        return settings

    @cached_property
    def settings(self) -> Settings:
        settings = self.plain_settings
        self._log_setup = logs.setup(settings)
        return settings

    @property
    def log_setup(self) -> Callable[[], None]:
        """This invocation's logging, for a child process (the crawler) to set up the same."""
        self.settings  # noqa: B018 - loading the settings configures logging
        assert self._log_setup is not None
        return self._log_setup

    @property
    def db_path(self) -> Path:
        return Path(self.settings["db"])

    def store(self, *, create: bool = False) -> db.Store:
        """The store, opened (migrated if needed) once per invocation.

        Only a command that sets a store up on purpose (init, crawl, run, demo, sources sync,
        subscribers add and import) passes ``create``: any other refuses a path holding no
        stiwatch database, so a mistyped --db fails instead of leaving an empty store behind
        (or stiwatch's tables in someone else's SQLite file). Such a command keeps a `stiwatch
        restore` out first (``keep_restore_out``): a store it made in the moment between the
        restore's moving the database aside and renaming its copy in would be replaced, and
        what it wrote into the database about to move aside would be lost.
        """
        if self._store is None:
            if create:
                self.keep_restore_out(creates=True)
            store = self._open(create=create)
            if store.migrated and store.migrated_from:
                self.report_migration(store.migrated_from, store.schema_version)
            taxonomy = load_taxonomy()
            store.sync_labels(taxonomy.records(), taxonomy.version)
            self._store = store
            click.get_current_context().call_on_close(self.close)
        return self._store

    def report_migration(self, version_from: int, version_to: int) -> None:
        """Say that the store was migrated (`restore` migrates its copy before it takes the
        database's name)."""
        # Any command may be the first to open a store after an upgrade (the cron job,
        # often): the log keeps when it happened, whatever printed it. WARNING, so the
        # default log_level keeps it too: the change is for good (the stiwatch before the
        # upgrade can no longer open the file). Kept off stderr when the command prints it
        # itself or a log file has it; with neither (--quiet under systemd, no log_file)
        # stderr is the log: the journal keeps it.
        message = f"Migrated {self.db_path} from schema version {version_from} to {version_to}."
        reported = not self.quiet or bool(self.settings["log_file"])
        log.warning(message, extra={"reported": reported})
        self.echo(message, err=True)

    def existing_store(self) -> db.Store:
        """The store for a command that only reads: never creates one.

        Read-only (SQLite mode=ro) when the file is at the current schema, so searching,
        exporting or checking status never waits for a crawl's write lock; an older file is
        opened normally, which migrates it once (a newer one is refused).
        """
        try:
            store = self._open(readonly=True)
        except db.NotAStore:
            raise  # opening it for writing below would only refuse it again
        except db.StoreError:
            return self.store()
        click.get_current_context().call_on_close(lambda: _close_read(store))
        return store

    def store_as_is(self) -> db.Store:
        """The store read-only at the schema version it has, never migrated: a backup of an
        older store taken after an upgrade is the copy at the old schema that the way back
        needs (a migration first would leave none)."""
        store = self._open(readonly=True, as_is=True)
        click.get_current_context().call_on_close(lambda: _close_read(store))
        return store

    def _open(self, *, readonly: bool = False, create: bool = False,
              as_is: bool = False) -> db.Store:
        if not self.db_path.exists():
            # A restore killed between moving the database aside and renaming its copy in:
            # a store made here would be the one every run used from then on (without the
            # readers and what they were sent), and "no such database" would hide where the
            # database went.
            try:
                refuse_half_restored(self.db_path.resolve(), shown_as=self.db_path)
            except HalfRestored as error:
                raise UserError(f"{error}; nothing was changed: move them back and run the "
                                "restore again") from None
            except RestoreUnderWay as error:
                # exit 3, as for a lock held (stiwatch.runlock.EXIT_LOCKED, which imports this)
                raise UserError(str(error), exit_code=3) from None
        try:
            if readonly:
                return db.open_store(self.db_path, readonly=True, as_is=as_is)
            # A writable open may migrate: SIGTERM (systemctl stop) rolls the step back and
            # says so, where its default action ended the process without a word.
            with interrupts.sigterm_as_interrupt():
                return db.open_store(self.db_path, create=create)
        except db.NoSuchStore:
            raise UserError(f"{self.db_path}: no such database (run `stiwatch init` and "
                            "`stiwatch crawl`, or try `stiwatch demo`)") from None

    def keep_restore_out(self, *, creates: bool = False, wait: float | None = None) -> None:
        """Hold the lock `stiwatch restore` holds throughout (``DATABASE.restore.lock``)
        until this invocation closes the store, waiting up to ``wait`` seconds (RESTORE_WAIT)
        for it; UserError, exit 3, if a restore keeps it. For a command that writes to the
        store: what it wrote into the database a restore then moves aside (after reading what
        to carry over from it) would be lost, and a store it made at the database's path
        while none is there would be replaced. Taken before the store is opened, since a
        connection opened before the restore moves the file keeps writing to the moved
        file. Not needed under the run lock, which a restore takes first. ``creates``:
        whether the command may create the store."""
        if self._restore_lock is not None or (self.run_lock is not None and self.run_lock.held):
            return
        self.refuse_early(creates=creates)
        lock = db.FileLock(edit_lock_path(self.db_path), command_path())
        try:
            lock.acquire(wait=RESTORE_WAIT if wait is None else wait)
        except db.LockHeld as held:
            raise UserError(f"{held.who('a `stiwatch restore`')} holds the lock "
                            f"{held.path}; nothing was changed: run this again once it has "
                            "finished", exit_code=3) from None
        except db.LockUnusable as error:
            if not creates and self.db_path.exists() and not os.access(self.db_path, os.W_OK):
                # A store this user may not write (a read-only copy, another user's folder)
                # is said as such, rather than as the lock file it cannot make beside it.
                self._open().close()
            raise UserError(f"{error}; nothing was changed") from None
        self._restore_lock = lock
        click.get_current_context().call_on_close(self._release_restore_lock)

    def refuse_early(self, *, creates: bool = False) -> None:
        """Refuse a path this stiwatch refuses (no store, someone else's SQLite file, a newer
        store, a folder) before a lock file is made beside it (the restore's, the sender's),
        leaving the folder as it was. Outside the lock, so read-only: it never makes a store
        at the database's path nor writes one (a restore may be moving the database aside
        this very moment: a store made there would be replaced, or with the restore killed,
        used from then on), and a connection opened now would not follow the rename in. An
        empty -wal and -shm it may leave beside a store are removed when the open under the
        lock closes."""
        path = self.db_path
        if creates and not path.exists():
            db.check_folder(path)  # before a lock file is made beside it (and its folder)
        if path.exists() and not (creates and path.is_file() and path.stat().st_size == 0):
            try:
                db.open_store(path, readonly=True, as_is=True).close()
            except db.NoSuchStore:
                pass  # moved aside since: the open under the lock sees what is there then
            except db.NotAStore:
                # but a new store whose first open was stopped: the open under the lock, which
                # may create, finishes it
                if not (creates and db.unstarted(path)):
                    raise
        elif not creates and not staged_copies(path.resolve()):
            self.store()  # says there is no such database
            self.close()

    def _release_restore_lock(self) -> None:
        if self._restore_lock is not None:
            self._restore_lock.release()
            self._restore_lock = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        # after the store: what it wrote is in the file before a restore may move it
        self._release_restore_lock()

    def user_agent(self) -> str:
        """The User-Agent every request sends: names stiwatch and whoever runs it."""
        contact = self.settings["contact"] or "https://github.com/stiwatch/stiwatch"
        return self.settings["user_agent"].format(version=__version__, contact=contact)

    def contact_hint(self) -> str | None:
        """What to do when the `contact` setting is unset, else None: a site owner whose
        logs fill with stiwatch's requests can then only write to the project, not to
        whoever runs this crawler, and blocks it instead."""
        if self.settings["contact"]:
            return None
        return (f"The crawler identifies as {self.user_agent()!r}, which names no one to "
                "contact: set `contact` (an e-mail address or web page of whoever runs it) in "
                "the config file or STIWATCH_CONTACT, so that a site's owner can reach you "
                "rather than block it.")

    def progress(self, label: str, unit: str = "items") -> Progress:
        """A progress line on stderr when it is a terminal, never with --quiet."""
        return Progress(label, unit=unit, enabled=False if self.quiet else None)

    def echo(self, message: str = "", **kw) -> None:
        """Informational output, silenced by --quiet (results and errors are never silenced)."""
        if not self.quiet:
            click.echo(message, **kw)


# Commands receive the invocation's App (set on the click context by stiwatch.cli).
pass_app = click.make_pass_decorator(App)


def _close_read(store: db.Store) -> None:
    """Close a store opened read-only; an error (exit 1) if it was read as an unchanging file
    and its owner wrote it meanwhile, so that no one takes what was shown for the store."""
    store.close()
    if store.changed_while_read:
        raise UserError(f"{store.path}: its owner wrote the store while this command read it "
                        "(this user may not write it, so it is read without the writers' "
                        "lock): what was shown may be incomplete or wrong; run the command "
                        "again, or run it as the store's owner", exit_code=1)


def command_path() -> str | None:
    """The command running, as a user types it (`stiwatch subscribers add`), for the locks it
    holds: whoever finds one held is told which command to wait for."""
    context = click.get_current_context(silent=True)
    names = []
    while context is not None and context.parent is not None:
        names.append(context.info_name)
        context = context.parent
    return " ".join(["stiwatch", *reversed(names)]) if names else None
