"""The state one `stiwatch` invocation shares between its commands: settings and the store."""

from __future__ import annotations

from functools import cached_property
import logging
from pathlib import Path
from typing import Callable

import click

from classifier.taxonomy import load_taxonomy
import db
from db.restore import HalfRestored, RestoreUnderWay, refuse_half_restored

from . import __version__, interrupts, logs
from .config import Settings, load_settings
from .errors import UserError
from .progress import Progress

log = logging.getLogger("stiwatch.store")


class App:
    def __init__(self, db_path: str | None, config_file: str | None, quiet: bool) -> None:
        self._db_flag = db_path
        self._config_flag = config_file
        self.quiet = quiet
        self._store: db.Store | None = None
        self._log_setup: Callable[[], None] | None = None

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
        (or stiwatch's tables in someone else's SQLite file).
        """
        if self._store is None:
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

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

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
