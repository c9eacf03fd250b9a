"""The pipeline's steps as functions, shared by `stiwatch run` and `stiwatch demo`.

Each step returns a small JSON-able dict (``step``, ``summary`` and its counts) and raises
StepFailed (carrying that dict) when it ran but failed, so a scheduled run can go on with the
next step and still exit non-zero. Bad input raises the library's own exceptions (exit 2).
"""

from __future__ import annotations

from typing import Any, Callable

import click
from crawler.runner import CrawlError
from digest.send import send_week
from digest.weeks import last_complete_week

from .app import App


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
    totals = report.totals()
    result = {
        "step": "crawl", "run_id": report.run_id, "status": report.status,
        "sources": len(report.sources), "ok_sources": report.ok_sources, **totals,
        "failing": [s.id for s in report.sources if s.errors and s.status != "ok"],
        "summary": (f"{report.ok_sources} of {len(report.sources)} sources, {totals['new']} new, "
                    f"{totals['duplicates']} duplicates, {totals['partial']} partial, "
                    f"{totals['errors']} errors"),
    }
    failure = every_source_failed(report)
    if failure:
        raise StepFailed({**result, "summary": failure})
    return result


def classify_step(app: App) -> dict[str, Any]:
    """Tag every item not yet classified."""
    from .commands.classify import run_classification

    report = run_classification(app, everything=False)
    return {"step": "classify", **report}


def digest_step(app: App, *, dry_run: bool = False) -> dict[str, Any]:
    """Send the last complete week's digest to every subscriber still owed it."""
    settings = app.settings
    week = last_complete_week(settings["timezone"])
    store = app.store()
    with app.progress(f"digest {week.label}", "subscribers") as progress:
        report = send_week(store, settings, week, dry_run=dry_run, progress=progress)
    result = {
        "step": "digest", "week": week.label, "transport": report.transport,
        "stories": report.stories, "sent": len(report.sent), "skipped": len(report.skipped),
        "retry": len(report.retry), "failed": len(report.failed), "already": report.already,
        "files": report.files, "aborted": report.aborted, "unreachable": len(report.unreachable),
        "in_doubt": len(report.unanswered) + len(report.in_doubt),
        "summary": (f"{week.label}: {report.stories} policy items, {len(report.sent)} sent "
                    f"({report.transport}), {len(report.retry)} to retry, "
                    f"{len(report.failed)} failed, {report.already} done earlier"
                    + (f", {doubt} in doubt (see `stiwatch digest status`)"
                       if (doubt := len(report.unanswered) + len(report.in_doubt)) else "")
                    + (f"; {len(report.unreachable)} not sent: {report.aborted}"
                       if report.aborted else "")),
    }
    if not report.ok:
        raise StepFailed(result)
    return result
