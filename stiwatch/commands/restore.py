"""`stiwatch restore`: a backup in the database's place, with what only the damaged store knows
(subscribers, deliveries, analysts' corrections) carried over."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
import sys

import click

import db
from db import restore as restoring
from digest.send import sender_lock_path

from .. import interrupts
from ..app import RESTORE_HOLDER, App, pass_app
from ..errors import UserError, as_user_error
from ..output import counted, echo_json
from ..runlock import EXIT_LOCKED, take_run_lock
from ..serving import Serving, running_serves

# The restore succeeded but the moved-aside store could not be read: the operator must check
# the mail server's log before the next `run --digest` (docs/operations.md).
EXIT_ACT = 1
EDIT_WAIT = 10  # seconds: a change of the subscribers or a correction holds its lock a moment
WEEKS_SHOWN = 4  # the most recent weeks recorded as sent, in the text summary
LEFT_SHOWN = 10  # items whose analyst corrections could not be carried, in the summary


@click.command("restore")
@click.argument("backup", type=click.Path(path_type=Path))
@click.option("--keep-damaged-in", "folder", metavar="DIR", type=click.Path(path_type=Path),
              help="Move the current database and its -wal and -shm into DIR (made if "
              "missing, in a folder that exists) [default: damaged-YYYYmmddTHHMMSSZ beside "
              "the database].")
@click.option("--no-carry-over", is_flag=True,
              help="Restore the backup alone: do not carry over the subscribers, "
              "deliveries and analysts' corrections the current database has and the backup "
              "lacks.")
@click.option("--other-installation", is_flag=True,
              help="Restore a backup of another store (another installation_id) over this "
              "one; the restored store keeps this one's installation_id (a new one when the "
              "current database cannot be read).")
@click.option("--while-serving", is_flag=True,
              help="Restore even while `stiwatch serve` has the database open (refused "
              "otherwise, exit 3); it goes on serving the replaced store until restarted, which "
              "the summary and --json (serve_restart_needed) say.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as one JSON object, also when refused or stopped "
              "(restored, exit_code, serves_running: the `stiwatch serve` processes that have "
              "the database open, serve_restart_needed: those of them serving the replaced "
              "store, empty when nothing was replaced; error when it ended early).")
@pass_app
def restore_command(app: App, backup: Path, folder: Path | None, no_carry_over: bool,
                    other_installation: bool, while_serving: bool, as_json: bool) -> None:
    """Put BACKUP (a copy `stiwatch backup` made) in the database's place.

    It holds the run lock throughout (refused, exit 3, while a run or crawl holds it; a timer
    that fires meanwhile waits or skips as for a run), the lock of `stiwatch digest send`,
    and the one `stiwatch subscribers`, `tag` (a correction), `init`, `sources sync` and
    `demo` take (they wait for it up to 10 s, else are refused, exit 3: a change made then
    would land in the store moved aside). BACKUP must be a stiwatch store that passes
    PRAGMA quick_check, at a schema version known to this stiwatch,
    and a copy of this store (the same installation_id) unless --other-installation; the
    database's folder must have room for the copies made there, and DIR must take the files
    moved aside (a folder this user may write, with room when on another file system);
    otherwise it is refused (exit 2) and nothing is touched. The restored store keeps the
    installation_id of the one it replaces (part of every digest's Message-ID); when that
    one cannot be read, whose it was is not checked (the summary says so) and the restored
    store has the backup's (a new one with --other-installation). BACKUP is copied beside
    the database with SQLite's backup API, migrated if older and given the carry-over
    (below) under a temporary name; then the current database, with its -wal and -shm, is
    moved aside under the same names (into DIR, by default damaged-YYYYmmddTHHMMSSZ beside
    it) and the copy renamed into place. Stopped or failing before that rename, it leaves
    the database as it was.

    Digests sent and readers added, changed or removed after the backup was taken are
    recorded only in the store it replaces: its subscribers and deliveries are carried over
    (read from a copy, migrated if older; its own files are never written), so no week is
    mailed twice. A delivery sent in either store stays sent; otherwise the row changed
    last wins; one in doubt stays in doubt, for `stiwatch digest resolve`.

    Analysts' corrections (`stiwatch tag` --add, --remove, --undo) made after the backup
    are carried over too, on each item both stores have (matched by URL): per tag, the
    verdict made later wins (a removal stays a removal), the tags, regions and near-duplicates
    follow as `stiwatch tag` makes them, and the item is marked for `classify` where `tag`
    marks it; one taken back (--undo) since stays taken back when both stores are this
    installation's. Corrections of items the backup lacks (crawled after it) cannot be
    attached: they are counted and listed, and remain in the moved-aside store.

    Run it as the service's user with the service's settings (--config: the run lock is the
    file lock_file names), and stop `stiwatch serve` first: it goes on serving the file it
    opened (the replaced store) until restarted. A serve running on the database (each
    announces itself in a file of its own, DATABASE.serve.PID.lock, locked while it runs;
    those of serves gone are ignored and removed) refuses the restore, exit 3, naming its pid and
    address, unless --while-serving; the summary and --json then say which serves to
    restart.

    Exit status: 0 restored (and carried over); 1 restored, but the moved-aside store could
    not be read: check the mail server's log before the next `run --digest` (the message says
    how); 2 BACKUP or DIR refused, no room for the copies, or no database where a restore
    killed outright left its copy (unless --no-carry-over), nothing touched; 3 a run or
    crawl, a `digest send`, or a `subscribers` change, a `tag` correction, an `init` or a
    `sources sync` holds its lock, or a `stiwatch serve` has the database open (without
    --while-serving), nothing touched;
    130 or 143 stopped by Ctrl-C or SIGTERM (before the rename: the database as it was).

    Example: stiwatch restore /var/backups/stiwatch/stiwatch-20261122T073000Z.db
    """
    # A database that is a link is restored where it points: SQLite keeps the -wal and -shm
    # beside the file itself, and the link stays, as the setup made it.
    database = app.db_path.resolve()
    done = {"restored": False}  # True once the copy has the database's name
    try:
        outcome = _checked_restore(app, database, backup, folder, not no_carry_over,
                                   other_installation, while_serving, done)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - re-raised
        # Still one object on stdout, so a script reading it always has the outcome.
        stop = as_user_error(error) if as_json else None
        if stop is not None:
            serves = _serves_json(database)
            echo_json({**done, "database": str(database), "backup": str(backup.absolute()),
                       # the keys of every outcome: a script reads why, and whom to stop
                       "serves_running": serves,
                       "serve_restart_needed": serves if done["restored"] else [],
                       "exit_code": stop.exit_code, "error": stop.format_message()})
        raise
    outcome = {**done, **outcome, "exit_code": EXIT_ACT if outcome["action_needed"] else 0}
    if as_json:
        echo_json(outcome)
    else:
        _summary(app, outcome)
    for serve in outcome["serve_restart_needed"]:
        # On stderr, as what must be done, even with --quiet or --json.
        click.echo(f"`stiwatch serve` ({Serving(**serve).describe()}) still serves the store this restore "
                   "replaced, the file it opened: restart it (systemctl restart "
                   "stiwatch-serve) so that analysts see the restored one.", err=True)
    if not outcome["damaged_files"] and app.settings.origin("db") == "default":
        # `sudo -u stiwatch stiwatch restore ...` drops STIWATCH_CONFIG from the environment:
        # without --config the restore lands in ./stiwatch.db of whatever folder it ran in,
        # exit 0, while the store the runs use stays as it was. On stderr, even with --quiet.
        click.echo(f"Note: no database was at {database}, the default path (no --db, "
                   "STIWATCH_DB, or db setting was given): if you meant to restore the store "
                   "the scheduled runs use, run this again with their settings (--config "
                   "FILE), and remove this one.", err=True)
    if outcome["action_needed"]:
        for line in outcome["action_needed"]:
            click.echo(line, err=True)
        sys.exit(EXIT_ACT)


def _serves_json(database: Path) -> list[dict[str, object]]:
    """The serves that have the database open now, as --json lists them; none when the
    announcements cannot be read (the error being reported matters more)."""
    try:
        return [serve.as_json() for serve in running_serves(database)]
    except OSError:
        return []


def _checked_restore(app: App, database: Path, backup: Path, folder: Path | None,
                     carry: bool, other_installation: bool, while_serving: bool,
                     done: dict) -> dict:
    """The checks that refuse with nothing touched, then the restore under the three locks;
    the outcome for the summary. ``done["restored"]`` says whether an error came after the
    rename."""
    info = restoring.check_backup(backup, database)
    try:
        installation, unread = restoring.installation_of(database), None
    except restoring.DamagedUnreadable as error:  # whose store it was cannot be told
        installation, unread = None, str(error)
    restoring.check_installation(info, installation, allowed=other_installation)
    made_up = unread is not None and other_installation and info.installation_id is not None
    if made_up:
        # This installation's id is unknown: kept, the other's would give this store's
        # digests the other installation's Message-IDs, which providers drop as copies.
        installation = restoring.new_installation_id()
    if not database.parent.is_dir():
        raise UserError(f"{database.parent}: no such folder (the database's, from the db "
                        "setting)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # A name of its own choosing is never refused (a second restore in the same second).
    folder = (folder or restoring.free_folder(database, f"damaged-{stamp}")).absolute()
    # Before anything is copied: `move_aside` checks again, but only after minutes of copying.
    restoring.check_folder(database, folder)
    serves = running_serves(database)
    if serves and not while_serving:
        named = "; ".join(serve.describe() for serve in serves)
        raise UserError(f"`stiwatch serve` has the database open ({named}): it would go on "
                        "serving the store this restore replaces until restarted; stop it "
                        "first (systemctl stop stiwatch-serve), or restore with --while-serving "
                        "and restart it after; this restore did nothing", exit_code=EXIT_LOCKED)
    with interrupts.sigterm_as_interrupt():
        lock = take_run_lock(app, 0, "restore", refuse_newer=False)
        # A `digest send` by hand holds only the sender's lock: what it records after the
        # carry-over has read the moved-aside store would be lost, and mailed again.
        sender = db.FileLock(sender_lock_path(app.db_path), RESTORE_HOLDER)  # named as every command names it
        # The commands that write what is carried over (`subscribers`, `tag`) or may make a
        # store (`init`, `sources sync`, `demo`) take this one before they open the store,
        # for the same reason (stiwatch.app.App.keep_restore_out).
        editors = db.FileLock(restoring.edit_lock_path(app.db_path), RESTORE_HOLDER)
        try:
            for other, holder in ((sender, "a `stiwatch digest send`"),
                                  (editors, "a `stiwatch subscribers`, `tag`, `init` or "
                                   "`sources sync`")):
                try:
                    other.acquire(wait=EDIT_WAIT if other is editors else 0)
                except db.LockHeld as held:
                    raise UserError(f"{held.who(holder)} holds the lock "
                                    f"{held.path}; this restore did nothing",
                                    exit_code=EXIT_LOCKED) from None
                except db.LockUnusable as error:
                    raise UserError(f"{error}; this restore did nothing") from None
            outcome = _restore(app, database, info, folder, carry, installation, done)
            outcome["installation_id_from"] = (
                "new" if made_up or not (installation or info.installation_id)
                else "replaced store" if installation else "backup")
            outcome["replaced_unreadable"] = unread
        finally:
            editors.release()
            sender.release()
            lock.release()
    return outcome


def _restore(app: App, database: Path, info: restoring.BackupInfo, folder: Path, carry: bool,
             installation: str | None, done: dict) -> dict:
    damaged = folder / database.name
    if carry:
        # Restored there, the backup would stand without what only that database knows.
        try:
            restoring.refuse_half_restored(database)
        except restoring.HalfRestored as error:
            raise UserError(f"{error}; this restore did nothing: move them back and run it "
                            "again (or, to restore the backup alone, with --no-carry-over)"
                            ) from None
    had_database = database.is_file()  # -wal or -shm alone: moved aside, nothing to read
    leftovers = restoring.remove_leftovers(database)
    restoring.check_space(info.path, database, carry=carry and had_database)
    temp = restoring.copy_in(info.path, database)
    moved: list[Path] = []
    carried: restoring.CarryOver | None = None
    error = None
    try:
        # Migrated and carried over under its temporary name: stopped anywhere before the
        # rename below (Ctrl-C, SIGTERM, a migration that fails), the database is as it was.
        staged = restoring.stage(temp, info.path)
        try:
            restoring.keep_installation(staged, installation)
            # Under way when the backup was taken: the run lock held here says none is now,
            # and `stiwatch status` would show them running until the next run.
            runs = staged.close_abandoned_runs(
                "under way when the backup was taken; this store was restored from it")
            crawls = staged.close_abandoned_crawl_runs(lambda stats: False)
            migrated = (staged.migrated_from, staged.schema_version) if staged.migrated \
                else None
            if carry and had_database:
                # the regions an analyst's countries imply, as `stiwatch tag` keeps them
                from classifier.places import region_map

                try:
                    carried = restoring.carry_over(
                        staged, database, shown_as=damaged, region_of=region_map(),
                        # a verdict of the backup's missing from the store it replaces was
                        # taken back there only if that store is a later state of the backup's
                        same_installation=info.installation_id is not None
                        and installation == info.installation_id)
                except restoring.DamagedUnreadable as unreadable:
                    error = str(unreadable)
        finally:
            restoring.seal(staged)
        if restoring.present_files(database):
            moved = restoring.move_aside(database, folder)
        restoring.install(temp, database)
        done["restored"] = True
        installed_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except BaseException:
        temp.unlink(missing_ok=True)
        restoring.move_back(moved, database)
        raise
    if migrated:
        app.report_migration(*migrated)
    store = app.store()
    weeks = restoring.sent_weeks(store)
    serves = _serves_json(database)
    outcome = {
        "database": str(database),
        "backup": str(info.path.absolute()),  # the summary is read later, in a log
        "backup_taken_at": info.taken_at,
        "backup_schema_version": info.schema_version,
        "schema_version": store.schema_version,
        "backup_installation_id": info.installation_id,
        "installation_id": store.installation_id,
        "items": store.scalar("SELECT count(*) FROM items"),
        "damaged_folder": str(folder) if moved else None,
        "damaged_files": [str(path) for path in moved],
        "carry_over": _carried(carried, error, carry),
        "weeks_sent": weeks,
        "in_doubt": restoring.in_doubt(store),
        "leftovers_removed": [str(path) for path in leftovers],
        "runs_closed": runs,  # ids marked failed (crawl runs: interrupted), as a run would
        "crawl_runs_closed": crawls,
        # Serves that opened the database before the rename serve the replaced store. The
        # start is to the second: one started in the second of the rename is listed too.
        "serves_running": serves,
        "serve_restart_needed": [
            serve for serve in serves
            if serve["started_at"] is None or serve["started_at"] <= installed_at],
        "action_needed": None,
    }
    if error is not None:
        taken = f" ({info.taken_at})" if info.taken_at else ""
        outcome["action_needed"] = [
            f"Not carried over: {error}.",
            "The restored store knows neither the digests sent since the backup was taken"
            f"{taken} nor the readers added, changed or removed since: before the next "
            "`stiwatch run --digest`, read the mail server's log. A week mailed since would "
            "be mailed again: run `stiwatch run` without --digest until a newer week is over, "
            "and cancel what a week still owes to readers the log shows served "
            "(`stiwatch digest resolve EMAIL --week W --cancel`; `stiwatch digest status "
            "--all` lists it); add readers subscribed since with `stiwatch subscribers add`, "
            "and make analysts' corrections since again with `stiwatch tag`.",
        ]
    return outcome


def _carried(carried: restoring.CarryOver | None, error: str | None, wanted: bool) -> dict:
    if carried is None:
        reason = (error if error is not None else "--no-carry-over" if not wanted
                  else "no database was there to move aside")
        return {"done": False, "reason": reason}
    return {"done": True, "subscribers_added": carried.subscribers_added,
            "subscribers_changed": carried.subscribers_changed,
            "deliveries": carried.deliveries, "deliveries_sent": carried.deliveries_sent,
            "in_doubt": carried.in_doubt, "orphans": carried.orphans,
            "damaged_integrity": carried.integrity,
            "damaged_migrated_from": carried.migrated_from,
            "analyst_labels_carried": carried.analyst_labels,
            "analyst_labels_undone": carried.analyst_undone,
            "analyst_labels_items": carried.analyst_items,
            "analyst_labels_kept": carried.analyst_kept,
            "analyst_labels_not_undone": carried.analyst_not_taken_back,
            "analyst_labels_left": len(carried.analyst_left),
            "analyst_labels_left_corrections": [
                {"url": url, "facet": facet, "value": value, "verdict": verdict}
                for url, facet, value, verdict in carried.analyst_left],
            "analyst_labels_unreadable": carried.analyst_unreadable}


def _unread_installation(app: App, outcome: dict) -> None:
    """Say what was not checked, and whose installation_id the restored store has, when the
    store it replaces could not be read."""
    if outcome["installation_id_from"] == "new":
        theirs = (f", not the backup's ({outcome['backup_installation_id']})"
                  if outcome["backup_installation_id"] else "")
        app.echo(f"The database it replaces could not be read, so this installation's "
                 f"installation_id is unknown: the restored store has a new one "
                 f"({outcome['installation_id']}){theirs}, so that its digests' Message-IDs "
                 "are never another installation's.")
        return
    app.echo(f"The database it replaces could not be read, so whether the backup is this "
             f"installation's was not checked: the restored store has the backup's "
             f"installation_id ({outcome['installation_id']}), part of every digest's "
             "Message-ID. Check that an earlier backup of this installation has the same "
             "(sqlite-utils FILE \"SELECT value FROM store_info WHERE key = "
             "'installation_id'\"); if not, move the restored database and its -wal and -shm "
             "away and restore one of this installation's backups (with no database in its "
             "place, a backup keeps its own id).")


def _analysts(app: App, outcome: dict) -> None:
    """What became of the analysts' corrections (`stiwatch tag`) of the moved-aside store."""
    carried = outcome["carry_over"]
    kept_in = Path(outcome["damaged_folder"] or ".") / Path(outcome["database"]).name
    if carried["analyst_labels_unreadable"] is not None:
        app.echo(f"Analysts' corrections not carried over from the moved-aside store: "
                 f"{carried['analyst_labels_unreadable']}; they remain in {kept_in}.")
        return
    written, undone = carried["analyst_labels_carried"], carried["analyst_labels_undone"]
    kept = (f"; {counted(carried['analyst_labels_kept'], 'later correction')} of the backup's "
            "kept" if carried["analyst_labels_kept"] else "")
    app.echo(f"Analysts' corrections (`stiwatch tag`) carried over: {written} added or "
             f"removed, {undone} taken back, on "
             f"{counted(carried['analyst_labels_items'], 'item')}{kept}.")
    if carried["analyst_labels_not_undone"]:
        app.echo(f"Kept {counted(carried['analyst_labels_not_undone'], 'correction')} of the "
                 "backup's that the moved-aside store lacks: it is not known to be the same "
                 "installation's store (another installation_id, or none), so whether they "
                 "were taken back there (`stiwatch tag --undo`) cannot be told.")
    left = carried["analyst_labels_left_corrections"]
    if not left:
        return
    by_item: dict[str, list[str]] = {}
    for row in left:
        by_item.setdefault(row["url"], []).append(
            f"--{'add' if row['verdict'] else 'remove'} {row['facet']}={row['value']}")
    app.echo(f"Not carried over: {counted(len(left), 'analyst correction')} of "
             f"{counted(len(by_item), 'item')} the backup lacks (stored after it was taken). "
             f"{'It remains' if len(left) == 1 else 'They remain'} in {kept_in}; once a "
             f"crawl stores the item again, make {'it' if len(left) == 1 else 'them'} again "
             "with `stiwatch tag ITEM_ID` and these options:")
    for url, options in list(by_item.items())[:LEFT_SHOWN]:
        app.echo(f"  {url}: {' '.join(options)}")
    if len(by_item) > LEFT_SHOWN:
        app.echo(f"  and {counted(len(by_item) - LEFT_SHOWN, 'more item')} "
                 "(--json lists every one).")


def _summary(app: App, outcome: dict) -> None:
    taken = f"taken {outcome['backup_taken_at']}, " if outcome["backup_taken_at"] else ""
    app.echo(f"Restored {outcome['backup']} ({taken}schema version "
             f"{outcome['backup_schema_version']}) as {outcome['database']}: "
             f"{counted(outcome['items'], 'item')}.")
    if outcome["replaced_unreadable"] is not None:
        _unread_installation(app, outcome)
    elif outcome["backup_installation_id"] not in (None, outcome["installation_id"]):
        app.echo(f"The backup is another installation's ({outcome['backup_installation_id']}): "
                 f"the restored store keeps this one's installation_id "
                 f"({outcome['installation_id']}), part of every digest's Message-ID.")
    if outcome["damaged_files"]:
        names = ", ".join(sorted(Path(path).name for path in outcome["damaged_files"]))
        app.echo(f"Moved the database it replaces aside to {outcome['damaged_folder']}: {names}.")
    else:
        app.echo("There was no database to move aside.")
    if outcome["leftovers_removed"]:
        names = ", ".join(Path(path).name for path in outcome["leftovers_removed"])
        app.echo(f"Removed what a restore killed outright had left beside the database: "
                 f"{names}.")
    carried = outcome["carry_over"]
    if carried["done"]:
        changed = len(carried["subscribers_changed"])
        app.echo(f"Carried over from the moved-aside store: "
                 f"{counted(len(carried['subscribers_added']), 'subscriber')} added, "
                 f"{changed} changed or removed, "
                 f"{counted(carried['deliveries'], 'delivery', 'deliveries')} "
                 f"({carried['deliveries_sent']} sent, {carried['in_doubt']} in doubt).")
        if carried["damaged_migrated_from"] is not None:
            app.echo(f"(Read from a copy of it migrated from schema version "
                     f"{carried['damaged_migrated_from']}; the moved-aside files are "
                     "unchanged.)")
        if carried["damaged_integrity"] != "ok":
            app.echo(f"The moved-aside store fails its integrity check "
                     f"({carried['damaged_integrity']}); its subscribers and deliveries "
                     "pass theirs.")
        if carried["orphans"]:
            app.echo(f"Left out {counted(carried['orphans'], 'delivery', 'deliveries')} "
                     "to readers neither store has.")
        _analysts(app, outcome)
    elif carried["reason"] == "--no-carry-over":
        app.echo("Nothing carried over (--no-carry-over): digests sent, readers changed and "
                 "analysts' corrections made since the backup are not in the restored store.")
    closed = [f"{counted(len(outcome[key]), kind)} as {status}" for key, kind, status in (
        ("runs_closed", "scheduled run", "failed"),
        ("crawl_runs_closed", "crawl run", "interrupted")) if outcome[key]]
    if closed:
        app.echo(f"Under way when the backup was taken, now recorded as the next run would: "
                 f"{' and '.join(closed)} (what they stored after it is fetched again).")
    weeks = outcome["weeks_sent"]
    if weeks:
        shown = ", ".join(f"{w['week']} ({w['sent']})" for w in weeks[-WEEKS_SHOWN:])
        earlier = (f" and {counted(len(weeks) - WEEKS_SHOWN, 'earlier week')}"
                   if len(weeks) > WEEKS_SHOWN else "")
        app.echo(f"Weeks recorded as sent (deliveries): {shown}{earlier}.")
    else:
        app.echo("No week is recorded as sent.")
    if outcome["in_doubt"]:
        one = outcome["in_doubt"] == 1
        app.echo(f"{counted(outcome['in_doubt'], 'delivery', 'deliveries')} in doubt: "
                 f"settle {'it' if one else 'them'} with `stiwatch digest resolve` (`stiwatch "
                 f"digest status --all` lists {'it' if one else 'them'}).")
