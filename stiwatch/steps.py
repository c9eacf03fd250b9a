"""The pipeline's steps as functions, shared by `stiwatch run` and `stiwatch demo`.

Each step returns a small JSON-able dict (``step``, ``summary`` and its counts) and raises
StepFailed (carrying that dict) when it ran but failed, so a scheduled run can go on with the
next step and still exit non-zero. Bad input raises the library's own exceptions (exit 2).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import click
from crawler.runner import CrawlError
from db.clock import iso_utc
from digest.send import SendReport, send_week
from digest.weeks import last_complete_week, parse_week

from .app import App, command_path
from .errors import UserError
from .output import counted


class StepFailed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["summary"])
        self.result = result


def run_step(app: App, step: Callable[[App], dict[str, Any]]) -> dict[str, Any]:
    """Run one step, say how it went on stderr; ``ok`` in the result tells whether it failed."""
    try:
        result = {**step(app), "ok": True}
    except StepFailed as error:
        result = {**error.result, "ok": False}
    if result["ok"]:
        app.echo(f"{result['step']}: {result['summary']}", err=True)
    else:
        # Never silenced by --quiet: cron mails a failed run only if it printed something.
        click.echo(f"Error: {result['step']}: {result['summary']}", err=True)
    return result


def crawl_step(app: App) -> dict[str, Any]:
    """Crawl every enabled source; fails only when every source failed."""
    from .commands.crawl import crawl_with_progress, every_source_failed

    try:
        report = crawl_with_progress(app)
    except CrawlError as error:  # the crawler process died: what it stored stays stored
        raise StepFailed({"step": "crawl", "status": "failed", "error": str(error),
                          "summary": str(error)}) from None
    if report.store_error:
        # Nothing more could be stored (a full disk, a read-only file): the operator must act,
        # and the steps after it could not write either.
        raise UserError(f"the crawl stopped: {report.store_error}")
    totals = report.totals()
    result = {
        "step": "crawl", "run_id": report.run_id, "status": report.status,
        "sources": len(report.sources), "ok_sources": report.ok_sources, **totals,
        "failing": [s.id for s in report.sources if s.errors and s.status != "ok"],
        "summary": (f"{report.ok_sources} of {counted(len(report.sources), 'source')}, "
                    f"{totals['new']} new, {counted(totals['duplicates'], 'duplicate')}, "
                    f"{totals['partial']} partial, {counted(totals['errors'], 'error')}"),
    }
    failure = every_source_failed(report)
    if failure:
        raise StepFailed({**result, "summary": failure})
    return result


def classify_step(app: App, lexicons: Any = None) -> dict[str, Any]:
    """Tag every item not yet classified, loading the model only when there is one (with
    ``lexicons``, loaded already by `run`'s check before the crawl, if given)."""
    from .commands.classify import run_classification

    report = run_classification(app, everything=False, lexicons=lexicons)
    return {"step": "classify", **report}


def digest_step(app: App, *, dry_run: bool = False) -> dict[str, Any]:
    """Send the last complete week's digest to every subscriber still owed it, after what
    earlier weeks still owe (a run that found the SMTP server down, oldest week first): the
    scheduled run is what "stays owed for the next run" relies on. A dry run looks at the last
    complete week only."""
    settings = app.settings
    now = datetime.now(timezone.utc)
    week = last_complete_week(settings["timezone"], now)
    store = app.store()
    owed = [] if dry_run else store.periods_owed(week.label, iso_utc(now))
    # A digest weeks late is news no more: older weeks stay owed for a send by hand, so an
    # upgrade or a long outage does not flood subscribers with stale digests.
    oldest = week.shift(-settings["digest_catch_up_weeks"]).label
    earlier = [parse_week(label, week.tz) for label in owed if label >= oldest]
    stale = [label for label in owed if label < oldest]
    reports = []
    unreachable = None  # once the server is found down, the other weeks do not wait for it again
    for each in [*earlier, week]:
        with app.progress(f"digest {each.label}", "subscribers") as progress:
            report = send_week(store, settings, each, dry_run=dry_run, progress=progress,
                               now=now, owed_only=each is not week, unreachable=unreachable,
                               holder=command_path() or "stiwatch run")
        unreachable = unreachable or report.aborted
        reports.append(report)
    *before, report = reports
    doubt = len(report.doubtful)
    summary = (f"{week.label}: {report.counted}, {len(report.sent)} sent "
               f"({report.transport}), {len(report.retry)} to retry, "
               f"{len(report.failed)} failed, {report.already} done earlier"
               + (f", {doubt} in doubt (see `stiwatch digest status`)" if doubt else ""))
    if before:
        summary += "; owed from earlier weeks: " + ", ".join(_in_brief(r) for r in before)
    if stale:
        summary += (f"; {', '.join(stale)} still owed, older than digest_catch_up_weeks "
                    f"({settings['digest_catch_up_weeks']}): send by hand with "
                    "`stiwatch digest send --week`")
    not_sent = sum(len(r.unreachable) for r in reports)
    if unreachable:
        summary += f"; {not_sent} not sent: {unreachable}"
    result = {
        "step": "digest", "week": week.label, "transport": report.transport,
        # `stories` (deprecated) is policy_items under its old, wrong name, kept for scripts.
        "policy_items": report.policy_items, "story_count": report.story_count,
        "stories": report.policy_items, "sent": len(report.sent), "skipped": len(report.skipped),
        "retry": len(report.retry), "failed": len(report.failed), "already": report.already,
        "files": report.files, "aborted": unreachable, "unreachable": len(report.unreachable),
        "in_doubt": doubt,
        "stale": stale,
        "earlier": [{"week": r.week, "sent": len(r.sent), "retry": len(r.retry),
                     "failed": len(r.failed), "in_doubt": len(r.unanswered),
                     "unreachable": len(r.unreachable), "ok": r.ok} for r in before],
        "summary": summary,
    }
    if not all(r.ok for r in reports):
        raise StepFailed(result)
    return result


def _in_brief(report: SendReport) -> str:
    """``2026-W46: 1 sent`` (and what else happened) for an earlier week a run caught up on."""
    parts = [f"{len(report.sent)} sent"]
    for count, what in ((len(report.retry), "to retry"), (len(report.failed), "failed"),
                        (len(report.unanswered), "in doubt"),
                        (len(report.unreachable), "not sent")):
        if count:
            parts.append(f"{count} {what}")
    return f"{report.week}: {', '.join(parts)}"
