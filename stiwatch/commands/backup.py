"""`stiwatch backup`: a consistent copy of the database while it is in use."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
import os
from pathlib import Path
import secrets
import sqlite3
import time

import click

from db.files import SIDE_FILES

from .. import interrupts
from ..app import App, pass_app
from ..errors import UserError
from ..output import echo_json


@click.command("backup")
@click.argument("dest", type=click.Path())
@click.option("--force", is_flag=True, help="Replace DEST if it already exists.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as one JSON object, also with --quiet (backup: the copy's "
              "path, database, schema_version, bytes, seconds): how a script learns the name "
              "of a dated copy.")
@pass_app
def backup_command(app: App, dest: str, force: bool, as_json: bool) -> None:
    """Copy the database to DEST with SQLite's online backup API.

    Safe while a crawl or digest is writing: the copy is one consistent snapshot. If DEST is a
    folder, or ends with / (the folder is then created if missing), the copy is named
    stiwatch-YYYYmmddTHHMMSSZ.db inside it. The copy is checked
    (PRAGMA quick_check) before it takes its final name, so DEST is never a half-written file;
    stopped by SIGTERM or Ctrl-C, it removes its partial copy (exit 143 or 130).

    Prints one line naming the copy; --quiet prints nothing when all went well (a cron job's
    mail then means trouble), and --json prints the outcome, with the copy's path, in any case.
    """
    target = Path(dest)
    # A trailing slash says "folder" even before it exists, as the documented cron line
    # (`backup /var/backups/stiwatch/`) means on its first night.
    folder = dest.endswith(("/", os.sep)) or target.is_dir()
    if folder:
        if target.exists() and not target.is_dir():
            raise UserError(f"{target}: not a folder")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = target / f"stiwatch-{stamp}.db"
    if target.exists() and not force:
        raise UserError(f"{target}: already exists (use --force to replace it)")
    if not folder and not target.parent.is_dir():
        raise UserError(f"{target.parent}: no such folder")
    if target.resolve() == app.db_path.resolve():
        raise UserError(f"{target}: that is the database itself")
    if target.resolve() in {Path(f"{app.db_path.resolve()}{side}")
                            for side in SIDE_FILES}:
        # its -wal holds committed changes not yet in the file: replaced, they are lost
        raise UserError(f"{target}: that is a file SQLite keeps beside the database "
                        f"{app.db_path}; give the copy another name")
    store = app.store_as_is()
    if folder:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{target.parent}: cannot create the folder "
                            f"({error.strerror or error})") from None
    started = time.monotonic()
    # SIGTERM (systemctl stop, a shutdown) ends the copy as Ctrl-C does, through the cleanup
    # below: its default action left the temporary copy, as large as the store, for good.
    with interrupts.sigterm_as_interrupt():
        # Named here, not by mkstemp, and made inside the cleanup below: a signal that came
        # between mkstemp's creating the file and this code knowing its name left it behind
        # (test_a_backup_stopped_by_sigterm_leaves_no_partial_copy failed so, under load).
        temp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            try:
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as error:
                raise UserError(f"{target}: cannot write: {error.strerror or error}") from None
            try:
                store.backup(temp)
            except (OSError, sqlite3.Error) as error:  # the disk filled up, the folder went away
                raise UserError(f"{target}: cannot write: {error}") from None
            check = sqlite3.connect(temp)
            try:
                verdict = check.execute("PRAGMA quick_check").fetchone()[0]
                # One self-contained file: fold the copy's WAL back in and leave rollback mode.
                check.execute("PRAGMA journal_mode = DELETE")
            finally:
                check.close()
            if verdict != "ok":
                raise UserError(f"{target}: the copy failed its integrity check ({verdict})", 1)
            os.replace(temp, target)
        except BaseException:
            # Never in place of the error being raised: a name too long was never made.
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise
    size, seconds = target.stat().st_size, time.monotonic() - started
    if as_json:
        # The result, so not silenced by --quiet: a dated name is known only once made.
        echo_json({"backup": str(target.absolute()), "database": str(app.db_path),
                   "schema_version": store.schema_version, "bytes": size,
                   "seconds": round(seconds, 3)})
        return
    app.echo(f"Backed up {app.db_path} (schema version {store.schema_version}) to {target}: "
             f"{size / 1e6:.1f} MB in {seconds:.1f}s.")
