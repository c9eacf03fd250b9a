"""`stiwatch digest`: preview, send and follow the weekly digest."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import click

import db
from digest.send import (SenderBusy, cancel_delivery, chart_path, render_preview,
                         resend_failed, resolve_delivery, send_week, sender_lock)
from digest.weeks import week_or_default

from .. import interrupts
from ..app import RESTORE_HOLDER, RESTORE_WAIT, App, command_path, pass_app
from ..errors import UserError
from ..files import output_file, write_output
from ..output import counted, echo_json, echo_table

WEEK_HELP = "ISO week such as 2026-W47 in the `timezone` setting [default: the last complete week]."


@click.group("digest")
def digest_group() -> None:
    """Preview, send and check the weekly per-subscriber digest e-mail."""


@digest_group.command("preview")
@click.option("--week", default=None, metavar="W", help=WEEK_HELP)
@click.option("--subscriber", default=None, metavar="EMAIL",
              help="Render this subscriber's digest [default: unfiltered].")
@click.option("--out", default=None, metavar="FILE.html", type=click.Path(path_type=Path),
              help="Where to write the HTML, in an existing folder [default: "
              "digest-WEEK.html]; the chart is written beside it as a .png.")
@pass_app
def preview_command(app: App, week: str | None, subscriber: str | None, out: Path | None) -> None:
    """Write a week's digest as an HTML file (and its chart) to open in a browser.

    Nothing is sent and no delivery is recorded.

    \b
    Example:
      stiwatch digest preview --week 2026-W47 --subscriber analyst@example.org --out w47.html
    """
    settings = app.settings
    chosen = week_or_default(week, settings["timezone"])
    # Read-only, as search: opened for writing by an analyst who may not write the file, SQLite
    # left their -wal and -shm in a shared folder, and the owner's crawls could not write.
    store = app.existing_store()
    sub = store.get_subscriber(subscriber.strip().lower()) if subscriber else None
    html_path = output_file(out or Path(f"digest-{chosen.label}.html"), "--out")
    png_path = output_file(chart_path(html_path), "--out")  # both checked before either is written
    html, png, digest = render_preview(store, settings, chosen, html_path, sub)
    write_output(png_path, png, "--out")
    write_output(html_path, html, "--out")
    who = f"for {sub['email']}" if sub else "unfiltered"
    click.echo(f"{html_path}")
    # stories, as the digest's subject counts them: the reports of one event are one
    app.echo(f"Digest {chosen.label} ({chosen.span()}) {who}: {digest.total} "
             f"{'story' if digest.total == 1 else 'stories'}, "
             f"{digest.shown} shown; chart {png_path}.")
    now = datetime.now(timezone.utc)
    if now < chosen.start:
        app.echo(f"{chosen.label} has not started yet (it starts {chosen.local(chosen.start)}).")
    elif now < chosen.end:
        app.echo(f"{chosen.label} is not over yet: this preview has its items so far.")
    if digest.empty:
        app.echo("Nothing matched: this digest would not be sent.")


@digest_group.command("send")
@click.option("--week", default=None, metavar="W", help=WEEK_HELP)
@click.option("--dry-run", is_flag=True,
              help="Record nothing; write every active subscriber's message (sent ones too) as "
              ".eml into the outbox's dry-run/WEEK folder, emptied of the last dry run first.")
@click.option("--partial-week", is_flag=True,
              help="Send a week that is not over yet: what it has so far, and the week then "
              "counts as sent (its later items never reach these subscribers).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON: policy_items, story_count, sent, failed, ... "
              "(docs/operations.md); `stories` is a deprecated alias of policy_items.")
@pass_app
def send_command(app: App, week: str | None, dry_run: bool, partial_week: bool,
                 as_json: bool) -> None:
    """Send the week's digest to every active subscriber still owed it.

    Uses SMTP when `smtp_host` is set, else writes .eml files into the `outbox` folder. Safe to
    re-run: what was sent is not sent again; temporary failures are retried after a growing
    delay. A message that went out whole but got no answer (a timeout after the data) is left
    in doubt, never sent again by itself: see `stiwatch digest resolve`. A week that is not
    over yet is refused (exit 2) unless --partial-week is given; a week that has not started,
    always. Exits 1 if any message failed, must be retried or was left in doubt; 3 if a
    `stiwatch restore` still runs after 10 s of waiting for it (nothing sent).

    \b
    Examples:
      stiwatch digest send --week 2026-W47 --dry-run
      stiwatch digest send --week 2026-W47
    """
    settings = app.settings
    chosen = week_or_default(week, settings["timezone"])
    if not dry_run:  # which records nothing
        _hold_sender_lock(app)
    store = app.store()
    # SIGTERM (`kill`, a unit stopped) ends it as Ctrl-C does, so a message in flight is
    # recorded in doubt rather than sent again by the next run.
    try:
        with interrupts.sigterm_as_interrupt(), \
                app.progress(f"digest {chosen.label}", unit="subscribers") as progress:
            report = send_week(store, settings, chosen, dry_run=dry_run,
                               partial_week=partial_week, progress=progress)
    except KeyboardInterrupt as error:
        if dry_run:
            raise
        # "interrupted by SIGTERM" alone (a unit stopped mid-send) left the operator to find
        # out whether a reader would get the digest twice, or never: say which need a look.
        name, status = interrupts.describe(error)
        raise UserError(f"interrupted by {name}: {_left_by_stop(store, chosen.label)}",
                        exit_code=status) from None
    if as_json:
        echo_json(report.as_dict())
    elif not report.aborted or report.sent or report.retry or report.failed:
        # An unreachable server with nothing else to tell is said once, in the error below.
        _print_report(app, report)
    if report.aborted:
        owed = len(report.unreachable) + len(report.waiting)
        raise UserError(f"{report.aborted}; {_still_owed(owed, report.week)}", exit_code=1)
    if not report.ok:
        raise SystemExit(1)


def left_in_doubt_by_stop(store: db.Store, week: str | None = None) -> list[str]:
    """One clause per delivery (of ``week``, or of any week) that a sender stopped by a
    signal left in doubt, saying how to settle it."""
    return _in_doubt_clauses(store.deliveries(week))


def _in_doubt_clauses(rows: list[dict]) -> list[str]:
    return [f"in doubt {row['subscriber']} (the server may have it: `stiwatch digest resolve "
            f"{row['subscriber']} --week {row['period']} --sent` once it is known to have "
            "arrived, or `--resend`)"
            for row in rows
            if row["active"] and row["status"] == "sending" and row["unanswered_at"]
            and (row["last_error"] or "").startswith("stopped after")]


def _still_owed(owed: int, week: str) -> str:
    return (f"{counted(owed, 'digest')} of {week} {'stays' if owed == 1 else 'stay'} owed for "
            "the next run (`stiwatch digest status` shows them)")


def _left_by_stop(store: db.Store, week: str) -> str:
    """What a send stopped by a signal left of ``week``: the deliveries it left in doubt, to
    settle by hand, and how many stay owed for the next run."""
    rows = store.deliveries(week)
    active = [row for row in rows if row["active"]]
    if not active:  # stopped while it read the week, before it noted who is owed
        return f"the send stopped before it recorded any delivery of {week}; nothing was sent"
    owed = sum(1 for row in active if row["status"] == "pending"
               or (row["status"] == "sending" and not row["unanswered_at"]))
    return "; ".join(["the send stopped", *_in_doubt_clauses(rows), _still_owed(owed, week)])


def _print_report(app: App, report) -> None:  # noqa: ANN001
    where = {"smtp": "via SMTP", "outbox": "to the outbox", "dry-run": "to the outbox (dry run)"}
    if report.policy_items == 0:
        click.echo(f"No STI-policy items in {report.week}: nothing sent.")
        return
    click.echo(f"Digest {report.week} ({report.counted}): {len(report.sent)} sent "
               f"{where[report.transport]}, {len(report.skipped)} with nothing matching, "
               f"{len(report.retry)} to retry, {len(report.failed)} failed, "
               f"{report.already} done earlier, {len(report.waiting)} waiting to retry"
               + (f", {doubt} in doubt" if (doubt := len(report.doubtful))
                  else "")
               + (f", {len(report.unreachable)} not sent (the run stopped: see the error "
                  "below)."
                  if report.unreachable else "."))
    if report.skipped:
        click.echo("Nothing matched, nothing sent to: " + ", ".join(report.skipped))
    for row in report.retry:
        click.echo(f"retry {row['email']} after {row['next_attempt_at']}: {row['error']}")
    for row in report.failed:
        click.echo(f"failed {row['email']}: {row['error']}")
    for row in report.waiting:
        click.echo(f"waiting {row['email']} until {row['next_attempt_at']}: {row['error']}")
    for row in report.doubtful:
        click.echo(f"in doubt {row['email']}: {row['error']} (`stiwatch digest resolve "
                   f"{row['email']} --week {report.week} --sent` once it is known to have "
                   "arrived, or `--resend`)")
    if report.files:
        folder = Path(report.files[0]).parent
        app.echo(f"{counted(len(report.files), 'message')} written to {folder}")
    if report.subscribers == 0:
        click.echo("No active subscribers: add one with `stiwatch subscribers add EMAIL`.")
    elif not (report.sent or report.skipped or report.retry or report.failed or report.waiting
              or report.unreachable or report.doubtful):
        click.echo("Nothing owed: every active subscriber already has this week's digest, "
                   "or nothing in it matches their filters yet.")


@digest_group.command("resolve")
@click.argument("email", required=False)
@click.option("--week", default=None, metavar="W", help=WEEK_HELP)
@click.option("--sent", "arrived", is_flag=True,
              help="It arrived (e.g. the mail server's log shows it): record it as sent.")
@click.option("--resend", "resend", is_flag=True,
              help="It did not arrive (or, for a failed one, its subscriber is fixed): owed "
              "again, so the next send of the week sends it (same Message-ID).")
@click.option("--cancel", is_flag=True,
              help="Do not send it (an owed or in-doubt delivery of a stale week, a reader who "
              "left): recorded failed, 'cancelled by the operator'.")
@click.option("--all-failed", is_flag=True,
              help="With --resend and no EMAIL: every failed delivery of the week owed again "
              "(not those cancelled, nor those of removed subscribers).")
@pass_app
def resolve_command(app: App, email: str | None, week: str | None, arrived: bool,
                    resend: bool, cancel: bool, all_failed: bool) -> None:
    """Say what became of a delivery in doubt, so it is neither lost nor sent twice.

    A delivery is in doubt (`sending`, "no answer after the message was sent" in `digest
    status`) when the whole message went out but the SMTP server's answer never came: the
    server may have delivered it, so no run sends it again. Check the mail server's log (or
    ask the reader), then give --sent or --resend. --resend also makes a failed delivery owed
    again, e.g. once its subscriber's name is fixed. --cancel settles an owed delivery (in
    doubt or pending, e.g. of a week older than digest_catch_up_weeks) by not sending it.

    `--resend --all-failed` (no EMAIL) makes every failed delivery of the week owed again at
    once, e.g. after a relay refused a whole run: the next send sends each, once, with the
    Message-ID it was tried with. Sent and in-doubt deliveries are never touched; cancelled
    ones, and those of removed subscribers, stay failed.

    Waits up to 10 s for a `stiwatch restore` under way, then exits 3 with nothing changed.
    """
    if all_failed and (email or not resend or arrived or cancel):
        raise UserError("--all-failed goes with --resend and no EMAIL: `stiwatch digest resolve "
                        "--week W --resend --all-failed` (a delivery in doubt is settled one by "
                        "one, after a look at the mail server's log)")
    given = [name for name, flag in (("--sent", arrived), ("--resend", resend),
                                     ("--cancel", cancel)) if flag]
    choices = "--sent if it arrived, --resend to have it sent again, --cancel to send it never"
    if not given:
        raise UserError(f"give one of --sent, --resend or --cancel: {choices}")
    if len(given) > 1:
        # As "--json and --format csv ask for two formats: give one" says elsewhere: "give
        # one of" read as if none had been given.
        raise UserError(f"{' and '.join([', '.join(given[:-1]), given[-1]])} exclude each "
                        f"other: give one ({choices})")
    if not all_failed and not email:
        raise UserError("give the EMAIL of the delivery to resolve, or `--resend --all-failed` "
                        "for every failed delivery of the week")
    chosen = week_or_default(week, app.settings["timezone"])
    _hold_sender_lock(app)
    if all_failed:
        _resend_all_failed(app, chosen)
        return
    email = email.strip().lower()
    if cancel:
        cancel_delivery(app.store(), email, chosen)
        app.echo(f"{chosen.label} {email}: cancelled; no run sends it.")
        return
    resolve_delivery(app.store(), email, chosen, arrived=arrived)
    if arrived:
        app.echo(f"{chosen.label} {email}: recorded as sent.")
    else:
        app.echo(f"{chosen.label} {email}: owed again; the next `stiwatch digest send --week "
                 f"{chosen.label}` or `stiwatch run --digest` sends it.")


def _hold_sender_lock(app: App) -> None:
    """Take the sender's lock before the store is opened, and hold it until the store is
    closed. A `stiwatch restore` holds it from before it reads what to carry over until the
    restored store has the database's name: a store opened before the restore took it would
    be the file the restore moves aside, and what this command then recorded there (a digest
    sent, a delivery resolved) would be lost, and the digest mailed again by the next run.
    Waits for a restore, as the commands that edit the store do (RESTORE_WAIT), then is
    refused, exit 3; another sender refuses it at once (SenderBusy), as before. Lock order as
    the restore's: the sender's lock first, then what the store takes."""
    app.refuse_early()  # a mistyped --db is refused before a lock file is made beside it
    stack = ExitStack()
    try:
        try:
            stack.enter_context(sender_lock(app.db_path, command_path()))
        except SenderBusy as busy:
            if busy.held.label != RESTORE_HOLDER:
                raise
            stack.enter_context(sender_lock(app.db_path, command_path(), wait=RESTORE_WAIT))
    except SenderBusy as busy:
        if busy.held.label != RESTORE_HOLDER:
            raise
        raise UserError(f"{busy.held.who('a `stiwatch restore`')} holds the lock "
                        f"{busy.held.path}; nothing was changed: run this again once it has "
                        "finished", exit_code=3) from None
    except db.LockUnusable as error:
        raise UserError(f"{error}; nothing was changed") from None
    # Registered before the store's own close, so run after it (click closes last-in,
    # first-out): what this command wrote is in the file before a restore may move it.
    click.get_current_context().call_on_close(stack.close)


def _resend_all_failed(app: App, week) -> None:  # noqa: ANN001
    report = resend_failed(app.store(), week)
    n = len(report.resent)
    if n:
        app.echo(f"{week.label}: {counted(n, 'failed delivery', 'failed deliveries')} owed again "
                 f"({', '.join(report.resent)}); the next `stiwatch digest send --week "
                 f"{week.label}` or `stiwatch run --digest` sends {'it' if n == 1 else 'them'}.")
    else:
        app.echo(f"{week.label}: no failed delivery to resend.")
    for emails, why in ((report.cancelled, "cancelled by the operator"),
                        (report.removed, "no longer subscribed")):
        if emails:
            app.echo(f"Left failed, {why}: {', '.join(emails)}")


@digest_group.command("status")
@click.option("--week", default=None, metavar="W", help=WEEK_HELP)
@click.option("--all", "all_weeks", is_flag=True, help="Show every week, not just one.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
@pass_app
def status_command(app: App, week: str | None, all_weeks: bool, as_json: bool) -> None:
    """List the deliveries of a week and their states (pending, sending, sent, failed, skipped)."""
    settings = app.settings
    period = None if all_weeks else week_or_default(week, settings["timezone"]).label
    rows = app.existing_store().deliveries(period)
    for row in rows:
        row["active"] = bool(row["active"])
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"No deliveries recorded{' for ' + period if period else ''}.")
        return
    echo_table(rows, ["period", "subscriber", "status", "item_count", "attempts", "sent_at",
                      "next_attempt_at", "last_error"])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    app.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
