"""The run lock: one `stiwatch run`, `crawl` or `restore` at a time on a store.

Its own module, so `restore` takes it without importing the crawler (Scrapy).
"""

from __future__ import annotations

import db

from .app import App
from .errors import UserError

EXIT_LOCKED = 3  # another run or crawl holds the run lock (docs/operations.md)


def take_run_lock(app: App, wait_lock: int, doing: str, *,
                  refuse_newer: bool = True) -> db.FileLock:
    """The run lock (setting `lock_file`, default beside the database), held by `stiwatch run`
    and `stiwatch crawl` for their whole duration: two crawls at once would each fetch every
    new article, twice the load on every site. Waits up to ``wait_lock`` seconds; UserError
    (exit 3) if it stays held, (exit 2) if the file cannot be used. ``doing``: "run",
    "crawl" or "restore", for the messages. ``refuse_newer``: False for `restore`, which
    replaces the store (a newer one too: the way back after an upgrade)."""
    # A store this stiwatch would refuse is refused before the lock file is made: the refusal
    # leaves the folder as it was.
    if refuse_newer:
        db.refuse_newer(app.db_path)
    if not app.db_path.exists():
        db.check_folder(app.db_path)  # the lock beside it would make the folder on the way
    lock = db.FileLock(app.settings["lock_file"] or f"{app.db_path}.lock", f"stiwatch {doing}")
    try:
        try:
            lock.acquire()
        except db.LockHeld as held:
            if not wait_lock:
                raise
            # Someone running it by hand would otherwise see nothing for up to an hour.
            app.echo(f"Waiting up to {wait_lock}s for the lock {held.path}, held by another "
                     f"{held.who('stiwatch run or crawl')}...", err=True)
            lock.acquire(wait=wait_lock)
    except db.LockUnusable as error:
        origin = (f"lock_file is set by {app.settings.origin('lock_file')}"
                  if app.settings["lock_file"] else "the default lock_file, beside the database")
        raise UserError(f"{error} ({origin}); this {doing} did nothing") from None
    except db.LockHeld as held:
        waited = f" (waited {wait_lock}s)" if wait_lock else ""
        raise UserError(f"{held.who('another stiwatch run or crawl')} holds the lock "
                        f"{held.path}{waited}; this {doing} did nothing",
                        exit_code=EXIT_LOCKED) from None
    app.run_lock = lock
    return lock
