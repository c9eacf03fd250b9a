"""`stiwatch run`: the scheduled job. Crawl, classify and (with --digest) send what is owed."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
import logging
import sys

import click

import db
from digest.send import check_unsubscribe

from .. import interrupts
from ..app import App, pass_app
from ..errors import UserError, as_user_error
from ..output import echo_json
from ..steps import classify_step, crawl_step, digest_step, run_step
from .classify import check_classifier, model_folder
from ..runlock import EXIT_LOCKED, take_run_lock
from .crawl import open_synced_store
from .digest import left_in_doubt_by_stop

log = logging.getLogger("stiwatch.run")

# Exit statuses cron (or systemd) sees; documented in docs/operations.md. A run stopped by
# SIGINT or SIGTERM exits 130 or 143 (128 + the signal, as a shell reports it).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2  # and EXIT_LOCKED, 3


@click.command("run")
@click.option("--digest", "with_digest", is_flag=True,
              help="Also send the digest of the last complete week if it is still owed, and "
              "first what earlier weeks still owe (e.g. after the SMTP server was down).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the run as one JSON object (run, status, exit_code, steps; and error "
              "when it ended early).")
@click.option("--wait-lock", metavar="SECONDS", type=click.IntRange(min=0), default=0,
              help="If another run holds the lock, wait up to SECONDS for it (default: exit 3 "
              "at once).")
@pass_app
def run_command(app: App, with_digest: bool, as_json: bool, wait_lock: int) -> None:
    """Crawl every enabled source, classify new items and, with --digest, send the digest.

    This is the command for cron or a systemd timer (see docs/operations.md). When the
    `sources` setting names a registry file, it is synced first, as `stiwatch crawl` does. A
    lock file (setting `lock_file`, default: beside the database) stops two runs from
    overlapping: the second exits at once with status 3, or with --wait-lock waits for the first
    to end. Each run is recorded in the `runs` table. Before crawling it loads the analyst
    lexicon files and checks the saved model's metadata, so bad input stops it at once; the
    model itself is loaded after the crawl, only when there are new items to classify.

    Exit status: 0 all steps succeeded; 1 a step failed (every source failed, or a digest could
    not be delivered) while the other steps still ran; 2 bad input or configuration; 3 another
    run holds the lock; 130 or 143 stopped by SIGINT (Ctrl-C) or SIGTERM (systemctl stop): the
    crawler is stopped and the run recorded as failed before the lock is released.
    """
    # What --json prints when the run ends early (the lock held, bad input, a signal): still
    # one object, so a monitoring script reading stdout always has the run's outcome.
    outcome: dict = {"run": None, "status": "failed", "steps": []}
    try:
        with interrupts.sigterm_as_interrupt():
            exit_code = _locked_run(app, with_digest, as_json, wait_lock, outcome)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - re-raised
        stop = as_user_error(error) if as_json else None
        if stop is not None:
            echo_json({**outcome, "exit_code": stop.exit_code, "error": stop.format_message()})
        raise
    if exit_code:
        sys.exit(exit_code)


def _locked_run(app: App, with_digest: bool, as_json: bool, wait_lock: int,
                outcome: dict) -> int:
    try:
        lock = take_run_lock(app, wait_lock, "run")
    except UserError as error:
        if error.exit_code == EXIT_LOCKED:
            outcome["status"] = "locked"
        raise
    try:
        return _run(app, with_digest, as_json, outcome)
    finally:
        lock.release()


def _run(app: App, with_digest: bool, as_json: bool, outcome: dict) -> int:
    command = "run --digest" if with_digest else "run"
    try:
        if with_digest:
            # A {token} whose secret is missing from the job's environment: said before the
            # crawl, not after minutes of it.
            check_unsubscribe(app.settings)
        # A model folder that is named but not there is a typo: said before the registry is
        # synced (check_classifier says it again, as it refuses the rest, after the sync).
        model_folder(app)
        store = open_synced_store(app)
        # Checked before the crawl, so a bad lexicon file or a model this code would refuse
        # (made for another scikit-learn or taxonomy version) stops the run before it spends
        # minutes crawling. The model itself is loaded by the classify step, and only when
        # there is something to classify: this process does not hold its hundreds of MB
        # through the crawl (which runs in a child process), and a run with nothing new
        # does not pay its seconds. The lexicons loaded here are the classifier's.
        lexicons = check_classifier(app)
    except BaseException as error:
        outcome["run"] = _record_stop_before_start(app, command, error)
        raise
    # We hold the lock, so a run still `running` is one whose process was killed outright.
    store.close_abandoned_runs()
    run_id = store.start_run(command)
    log.info("run %s started: %s", run_id, command)
    steps: list[dict] = []
    outcome.update(run=run_id, steps=steps)
    failed = False
    plan: list[tuple[str, Callable[[App], dict]]] = [
        ("crawl", crawl_step), ("classify", partial(classify_step, lexicons=lexicons))]
    if with_digest:
        plan.append(("digest", digest_step))
    try:
        for _name, step in plan:
            result = run_step(app, step)
            failed = failed or not result["ok"]
            steps.append(result)
            log.info("run %s: %s %s", run_id, result["step"], result)
    except BaseException as error:
        # Recorded before the lock is released (the crawler child is gone by now), so
        # `stiwatch status` says why the run stopped instead of showing it `running` for good.
        name = plan[len(steps)][0]
        reason, exit_code = _stopped_by(error)
        steps.append({"step": name, "ok": False, "summary": reason,
                      "status": "interrupted" if isinstance(error, KeyboardInterrupt) else "error"})
        app.store().finish_run(run_id, "failed", exit_code, steps)
        log.info("run %s stopped in the %s step: %s", run_id, name, reason)
        if isinstance(error, KeyboardInterrupt):
            # A digest stopped mid-message leaves that reader in doubt, which no later run
            # settles: the one line the journal or cron's mail shows must name it.
            doubt = (left_in_doubt_by_stop(app.store()) if name == "digest" else [])
            raise UserError("; ".join([f"{reason} during the {name} step; run {run_id} "
                                       "recorded as failed", *doubt]),
                            exit_code=exit_code) from None
        raise
    status = "partial" if failed else "ok"
    exit_code = EXIT_FAILED if failed else EXIT_OK
    app.store().finish_run(run_id, status, exit_code, steps)
    # The line that closes "run N started" in the log: grep shows how each run ended.
    log.info("run %s finished: %s, exit %d", run_id, status, exit_code)
    if as_json:
        echo_json({"run": run_id, "status": status, "exit_code": exit_code, "steps": steps})
    else:
        app.echo(f"Run {run_id} {status}.")
    return exit_code


def _record_stop_before_start(app: App, command: str, error: BaseException) -> int | None:
    """Record a run that bad input stopped before its first step (a registry or lexicon file
    that cannot be read, a saved model made for other versions), so `stiwatch status` and the
    `runs` table show that the scheduled job stopped working rather than its last good run.
    Only in a store that exists: a deployment's first run with a bad registry creates
    nothing."""
    if isinstance(error, db.MigrationInterrupted):
        return None  # recording it would run the very migration the operator just stopped
    reason, exit_code = _stopped_by(error)
    try:
        store = app.store()
    except (db.StoreError, UserError):
        return None
    run_id = store.start_run(command)
    store.finish_run(run_id, "failed", exit_code,
                     [{"step": "start", "ok": False, "status": "error", "summary": reason}])
    log.info("run %s stopped before its first step: %s", run_id, reason)
    return run_id


def _stopped_by(error: BaseException) -> tuple[str, int]:
    """Why a step ended the run early, and the exit status the command will give."""
    user_error = as_user_error(error)
    if user_error is not None:
        return user_error.format_message(), user_error.exit_code
    return f"{type(error).__name__}: {error}", EXIT_FAILED
