"""`stiwatch crawl`: fetch the sources' new articles into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crawler.items import CrawlReport
from crawler.registry import load_registry
from crawler.runner import CrawlError, CrawlInputError, crawl
import db

from .. import interrupts
from ..app import App, pass_app
from ..errors import UserError
from ..output import counted, echo_json, echo_table
from ..progress import Progress
from ..runlock import take_run_lock

SUMMARY_COLUMNS = ["source", "status", "new", "duplicates", "updated", "partial", "unchanged",
                   "errors", "error"]


class CrawlProgress:
    """Turns the crawler's events into one progress line (articles saved / queued)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.sources_total = 0
        self.sources_done = 0
        self.queued = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self.sources_total = len(event.get("sources", []))
            self.progress.set_label(f"crawl: 0/{self.sources_total} sources")
        elif kind in ("source", "queued"):
            self.queued += event.get("queued", 0)
            if kind == "source":
                self.sources_done += 1
                self.progress.set_label(
                    f"crawl: {self.sources_done}/{self.sources_total} sources")
            self.progress.set_total(max(self.queued, self.progress.done))
        elif kind == "item":
            self.progress.advance(1, **{event["outcome"]: 1})


def _rows(report: CrawlReport) -> list[dict[str, Any]]:
    rows = []
    for source in report.sources:
        rows.append({
            "source": source.id, "status": source.status.replace("_", " "),
            "new": source.new, "duplicates": source.duplicates, "updated": source.updated,
            "partial": source.partial, "unchanged": source.unchanged,
            "errors": len(source.errors),
            "error": source.errors[0] if source.errors else (source.flag or ""),
        })
    return rows


def every_source_failed(report: CrawlReport, limit: int = 10) -> str | None:
    """The error to print when no source could be crawled, naming each source with its error:
    sources that failed alike (the network down, robots.txt unreachable everywhere) share one
    mention of the error, which would otherwise fill the cron mail once per source."""
    if not report.sources or report.ok_sources:
        return None
    alike: dict[str, list[str]] = {}
    for source in sorted(report.sources, key=lambda source: source.id)[:limit]:
        alike.setdefault(source.errors[0] if source.errors else "", []).append(source.id)
    more = f"; and {len(report.sources) - limit} more" if len(report.sources) > limit else ""
    return "every source failed: " + "; ".join(
        ", ".join(ids) + (f" ({error})" if error else "") for error, ids in alike.items()) + more


def sources_setting(app: App) -> str | None:
    """The registry file the `sources` setting names (None: unset). A missing one is refused
    naming where it was set: a scheduled run names no file on its command line."""
    path = app.settings["sources"] or None
    if path and not Path(path).exists():
        raise UserError(f"{path}: no such file (sources is set by "
                        f"{app.settings.origin('sources')})")
    return path


def open_synced_store(app: App, sources_file: str | None = None) -> db.Store:
    """The store (created if missing), after syncing ``sources_file`` or the `sources` setting.

    Shared by `stiwatch crawl` and `stiwatch run`, so the scheduled job crawls the registry the
    settings name, as a crawl by hand does. A bad registry fails before the store is touched.
    """
    sources_file = sources_file or sources_setting(app)
    registry = load_registry(sources_file) if sources_file else None
    store = app.store(create=True)
    if registry is not None:
        sync = store.sync_sources(registry.sources)
        app.echo(f"{sources_file}: {len(sync.added)} added, {len(sync.updated)} updated, "
                 f"{len(sync.disabled)} disabled.", err=True)
    return store


def crawl_with_progress(app: App, source_ids: tuple[str, ...] = (),
                        refresh: bool = False) -> CrawlReport:
    """Crawl with a progress line (shared by `stiwatch crawl` and `stiwatch run`).

    Bad input (no sources, bad Scrapy settings) is a UserError with exit status 2; a crawler
    process that died raises CrawlError for the caller to report.
    """
    app.close()  # the crawler writes through its own connection, in its own process
    try:
        with app.progress("crawl", unit="articles") as progress:
            return crawl(app.db_path, app.settings, source_ids, refresh,
                         progress=CrawlProgress(progress), user_agent=app.user_agent(),
                         log_setup=app.log_setup)
    except CrawlInputError as error:
        raise UserError(str(error), exit_code=2) from None


@click.command("crawl")
@click.option("--sources", "sources_file", metavar="FILE",
              help="Sync this registry TOML file into the store first (as `sources sync`).")
@click.option("--source", "source_ids", multiple=True, metavar="ID",
              help="Crawl only this source (repeatable); default: every enabled source.")
@click.option("--refresh", is_flag=True,
              help="Fetch listings and articles again even when unchanged or already stored.")
@click.option("--json", "as_json", is_flag=True, help="Print the crawl report as JSON.")
@pass_app
def crawl_command(app: App, sources_file: str | None, source_ids: tuple[str, ...],
                  refresh: bool, as_json: bool) -> None:
    """Fetch new articles from the sources into the store, politely.

    Feeds, listing pages and sitemaps are fetched with conditional GET; only articles not yet
    stored are fetched (all of them with --refresh). An article whose page fails is stored from
    its listing entry and retried next time. On a terminal, a progress line (sources done,
    articles, elapsed time) shows from the start and moves every second, even while slow
    sources are still answering (none with --quiet); then a summary per source: new,
    duplicates, updated, unchanged, errors.

    Exits 0 when at least one source was crawled, 1 when every source failed, 2 on bad input,
    3 when a `stiwatch run` or another crawl holds the run lock (it crawls already).
    """
    lock = take_run_lock(app, 0, "crawl")
    try:
        open_synced_store(app, sources_file)
        try:
            with interrupts.sigterm_as_interrupt():
                report = crawl_with_progress(app, source_ids, refresh)
        except CrawlError as error:  # the crawler process died: what it stored stays stored
            raise UserError(str(error), exit_code=1) from None
        except KeyboardInterrupt as error:
            # "interrupted by SIGINT" alone left the user wondering whether the minutes
            # crawled so far were lost: they are not (docs/crawler.md, Stopping).
            name, status = interrupts.describe(error)
            raise UserError(f"interrupted by {name}: the crawl stopped; what it fetched is "
                            "stored, and the next crawl fetches the rest",
                            exit_code=status) from None
    finally:
        lock.release()

    if as_json:
        echo_json(report.to_dict())
    else:
        # The error is the last column, printed whole: cut, it loses the end, which says what
        # to fix ("... which names its feed: URL").
        echo_table(_rows(report), SUMMARY_COLUMNS, max_width=400)
        totals = report.totals()
        # Pages robots.txt forbids are kept partial from their listing, never requested.
        forbidden = totals.get("robots_forbidden", 0)
        robots = f", {forbidden} forbidden by robots.txt" if forbidden else ""
        app.echo(
            f"{report.ok_sources} of {counted(len(report.sources), 'source')} crawled: "
            f"{totals['new']} new, {counted(totals['duplicates'], 'duplicate')}, "
            f"{totals['updated']} updated, {totals['partial']} partial{robots}, "
            f"{totals['unchanged']} unchanged, {counted(totals['errors'], 'error')} "
            f"(run {report.run_id}, {report.status})."
        )
    if report.store_error:
        raise UserError(f"the crawl stopped: {report.store_error}")
    failure = every_source_failed(report)
    if failure:
        # On stderr even with --quiet (or --json): cron mails only when there is output.
        raise UserError(failure, exit_code=1)
