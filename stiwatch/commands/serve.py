"""`stiwatch serve`: browse and query the store in Datasette, read-only."""

from __future__ import annotations

from datetime import datetime, timezone
import errno
import os
from pathlib import Path
import signal
import socket
import time
from typing import Any

import click

import db
from db.docs import PERSONAL
from digest.weeks import zone

from .. import interrupts
from ..app import App, pass_app
from ..datasette_meta import build_metadata
from ..errors import UserError
from ..serving import Announcement


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or a UserError naming them (a busy port, a bad host).

    Bound here, before saying where we serve, and handed to uvicorn, so the address announced
    is one we already hold.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise UserError(f"--host {host}: not an address this machine can listen on "
                        f"({error.strerror})") from None
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        # create_server's own message repeats the address: the errno's text is enough.
        reason = os.strerror(error.errno) if error.errno else str(error)
        hint = {errno.EADDRINUSE: ": another server holds the port; choose another with --port",
                errno.EACCES: ": ports below 1024 need privileges; choose another with --port",
                }.get(error.errno, "")
        raise UserError(f"cannot listen on {host}:{port} ({reason}){hint}") from None


def local_time(name: str) -> None:
    """Make the `timezone` setting this process's local time, which SQLite's 'utc' and
    'localtime' modifiers use: the canned queries read days as `stiwatch search` does."""
    tz = zone(name)
    os.environ["TZ"] = name
    time.tzset()
    now = datetime.now(timezone.utc)
    if now.astimezone().utcoffset() != now.astimezone(tz).utcoffset():
        # The C library lacks the zone (no system tzdata) and fell back to UTC.
        click.echo(f"Warning: the system has no time zone data for {name!r}: the canned "
                   "queries read days in UTC", err=True)


@click.command("serve")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535),
              metavar="PORT", help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Interface to listen on (0.0.0.0 exposes it to the network: mind who can see "
              "it).")
@click.option("--show-subscribers", is_flag=True,
              help="Also serve the subscribers and deliveries tables (readers' e-mail "
              "addresses), hidden by default: only behind a proxy that authenticates.")
@click.option("--bom/--no-bom", "bom", default=None,
              help="Start every CSV download with a UTF-8 byte order mark, so that Excel on "
              "Windows opens Japanese text ungarbled [default: the csv_bom setting, off].")
@pass_app
def serve_command(app: App, port: int, host: str, show_subscribers: bool,
                  bom: bool | None) -> None:
    """Serve the store in Datasette (a web UI and JSON API for SQL), read-only.

    The database is opened read-only (SQLite mode=ro), so crawls can keep writing while analysts
    browse. Run it as the store's owner: a user who may not write the store is refused (exit 2)
    unless another process has it open (its -wal and -shm are beside it) or nobody may write
    it (a copy made with chmod a-w, a read-only mount). Every table and column is documented, items, tags and sources have facets, the
    items table has full-text search, and canned queries answer the usual questions: this
    week's policy items by area, source health, the weekly trend by area, and items about one
    country. Stop it with Ctrl-C.

    The subscribers and deliveries tables (readers' e-mail addresses) are not served: their
    pages answer 403 and SQL reading them is refused, unless --show-subscribers.

    It takes the port before announcing the address; a port it cannot take (another server
    holds it) is a one-line error naming it, exit status 2.

    While it runs it holds a lock on a file of its own, DATABASE.serve.PID.lock, naming its
    start time and address (removed when it stops), so that `stiwatch restore` knows the
    store is being served: a serve goes on serving the file it opened until restarted.
    """
    local_time(app.settings["timezone"])
    store = app.existing_store()  # an old file is migrated first, so the canned queries fit
    path = store.path.resolve()
    store.close()
    app.close()
    # Datasette's mode=ro connections need a -shm beside a WAL store, which this user cannot
    # make there, or would make its own, keeping the owner's crawls from writing: only a file
    # nobody writes can be read without one, as unchanging (a reader that takes no lock would
    # read a store the crawls write torn, and never see their items).
    immutable = db.readable_only_unchanging(path)
    if immutable and not db.nobody_writes(path):
        raise UserError(
            f"{path}: this user may not write the store, and reading it while the crawls "
            "write it needs a -shm file beside it that they can write: run `stiwatch serve` "
            f"as the user who owns the store, or serve a copy nobody writes (chmod a-w {path})")
    listener = listen(host, port)
    url = f"http://{host}:{port}/{path.stem}"
    # So that `stiwatch restore` knows this process has the store open (stiwatch.serving).
    announcement = Announcement(path, url)
    problem = announcement.start()
    if problem is not None:
        click.echo(f"Warning: cannot write {announcement.path} ({problem}): a `stiwatch "
                   "restore` will not know that this serve has the store open", err=True)
    terminated = False
    try:
        _serve(app, path, url, listener, (host, port), show_subscribers=show_subscribers,
               bom=bom, immutable=immutable)
    except interrupts.Terminated:
        terminated = True
    finally:
        announcement.stop()
    if terminated:
        # SIGTERM (systemd) ends it as its default action does, for the same exit status.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _serve(app: App, path: Path, url: str, listener: socket.socket, address: tuple[str, int],
           *, show_subscribers: bool, bom: bool | None, immutable: bool = False) -> None:
    """Datasette on ``listener`` until Ctrl-C (returns) or SIGTERM (raises Terminated), its
    connections then closed and the -wal and -shm they made removed."""
    # Imported here: uvicorn takes a while to load and only this command needs it.
    import asyncio
    import uvicorn

    # Only what Datasette's connections make is theirs to remove (see db.release_side_files).
    release = db.may_release_side_files(path)
    ds = datasette_of(path, show_subscribers=show_subscribers,
                      csv_bom=app.settings["csv_bom"] if bom is None else bom,
                      max_response_size=int(app.settings["max_response_size"]),
                      immutable=immutable)
    asyncio.run(ds.invoke_startup())
    click.echo(f"Serving {path} read-only at {url} (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(ds.app(), host=address[0], port=address[1],
                                           log_level="warning", lifespan="on"))
    try:
        # uvicorn, once shut down, raises the signal that stopped it again: SIGTERM then
        # reaches the `finally` below as Ctrl-C does, where its default action ended the
        # process before it.
        with interrupts.sigterm_as_interrupt():
            server.run(sockets=[listener])
    except interrupts.Terminated:
        raise
    except KeyboardInterrupt:
        # Ctrl-C is how it is meant to stop: not an error.
        app.echo("Stopped.", err=True)
    finally:
        # Datasette reads mode=ro, and such connections leave the -wal and -shm they made
        # beside the store: closed, they are removed when no other process has it open.
        for database in ds.databases.values():
            database.close()
        if release:
            db.release_side_files(path)


# max_csv_mb 0: a "stream all rows" download is never cut (Datasette's 100 MB cut a store of
# 50,000 items short, with its error written as the file's last line).
SETTINGS = {"default_page_size": 50, "sql_time_limit_ms": 5000, "suggest_facets": False,
            "facet_time_limit_ms": 1000, "max_csv_mb": 0}


def datasette_of(path: Path, *, show_subscribers: bool = False, csv_bom: bool = False,
                 max_response_size: int = 0, settings: dict[str, Any] | None = None,
                 immutable: bool = False) -> Any:
    """The Datasette `stiwatch serve` serves for the store at ``path`` (migrated already): its
    metadata, the plugin, ``SETTINGS`` updated with ``settings``; ``immutable``: read as a
    file nobody writes (SQLite ``immutable``), which needs no -shm beside it. Its startup is
    left to the caller (``await ds.invoke_startup()``)."""
    # Imported here: Datasette takes a while to load and only this command needs it.
    from datasette.app import Datasette
    from datasette.plugins import pm

    from .. import datasette_plugin

    datasette_plugin.limit = max(datasette_plugin.MAX_VALUE_BYTES, max_response_size)
    datasette_plugin.private = frozenset() if show_subscribers else frozenset(PERSONAL)
    datasette_plugin.csv_bom = csv_bom
    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin)
    files = {"immutables": [str(path)]} if immutable else {"files": [str(path)]}
    return Datasette(**files, metadata=build_metadata(path.stem, personal=show_subscribers),
                     settings={**SETTINGS, **(settings or {})})
