"""`stiwatch status`: is everything running? Last runs, weekly volume, failures, owed mail."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

import click

from digest.weeks import zone

from ..app import App, pass_app
from ..output import counted, echo_json, echo_table


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def duration(seconds: float) -> str:
    """A short human duration: 45s, 12m, 5h 10m, 3d 4h."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


# Said even when 0: whether a crawl brought anything, and how many sources it visited.
ALWAYS_SHOWN = ("sources", "new")
# A running crawl's process to stop, the pid its lock error names, before its crawler's.
LEADING = (*ALWAYS_SHOWN, "pid", "crawler_pid")


def _stats_summary(stats: Any) -> str:
    """The run's top-level counters that are not 0, e.g. `sources=9 new=12 errors=1` (all
    counters, which run to more than the column's width, are in --json)."""
    if not isinstance(stats, dict):
        return ""
    counters = {k: v for k, v in stats.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                and (v or k in ALWAYS_SHOWN)}
    first = {k: counters.pop(k) for k in LEADING if k in counters}
    return " ".join(f"{k}={v}" for k, v in {**first, **counters}.items())


def _steps_summary(steps: Any) -> str:
    """`crawl:ok classify:ok digest:failed` from a run's steps, whatever else they hold."""
    if not isinstance(steps, list):
        return ""
    parts = []
    for step in steps:
        if isinstance(step, dict):
            name = step.get("step") or step.get("name") or "?"
            # Steps of `stiwatch run` say whether they succeeded in `ok`; older rows may not.
            state = {True: "ok", False: "failed"}.get(step.get("ok")) or step.get("status")
            # A run stopped by a signal or by bad input (exit 2) says so, as operations.md
            # shows (`crawl:interrupted`, `start:error`), not as a step that failed.
            if step.get("status") in ("interrupted", "error"):
                state = step["status"]
            parts.append(f"{name}:{state}" if state else str(name))
    return " ".join(parts)


def _timed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        started, finished = _parse(row["started_at"]), _parse(row["finished_at"])
        out.append({**row, "duration_s": (finished - started).total_seconds()
                    if started and finished else None})
    return out


def gather(store, now: datetime, tz: tzinfo = timezone.utc) -> dict[str, Any]:
    runs = _timed(store.crawl_runs(limit=5))
    scheduled = _timed(store.runs(limit=5))
    failing = []
    for source in store.failing_sources():
        since = _parse(source["failing_since"])
        failing.append({**source, "failing_for_s": (now - since).total_seconds()
                        if since else None})
    return {
        "database": str(store.path),
        "size_bytes": store.file_size(),
        "schema_version": store.schema_version,
        "items": store.scalar("SELECT count(*) FROM items"),
        # Crawled but untagged: search shows them without tags, digests and trends leave them
        # out until `stiwatch classify` (or the classify step of `stiwatch run`) tags them.
        "unclassified_items": store.count_unclassified(),
        "scheduled_runs": scheduled,
        "runs": runs,
        "weeks": store.items_per_week(8, now.astimezone(tz).date(), tz),
        "failing_sources": failing,
        "noted_sources": store.noted_sources(),
        # Hosts a crawl leaves alone until then (a long Retry-After): their sources say
        # "paused" rather than fail, so they are named here.
        "paused_hosts": [{"host": host, **pause}
                         for host, pause in sorted(store.host_pauses().items())],
        "deliveries_owed": store.deliveries_owed(),
    }


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@pass_app
def status_command(app: App, as_json: bool) -> None:
    """Show the health of this installation at a glance.

    Lists the last scheduled runs and crawl runs (a running crawl with `pid`, its `stiwatch`
    process, the one a second crawl's lock error names and the one to stop, and
    `crawler_pid`, its crawler child), items published per week over the last 8 weeks (with policy
    items and folded duplicates; ISO weeks in the `timezone` setting), sources that are failing (last error, since when and for how
    long), sources that work but whose last crawl left a note (a moved feed, unreadable article
    pages, articles left for the next crawl), hosts paused until a time they asked for
    (Retry-After), digest deliveries still owed (pending, failed, or sending without an answer; not
    those cancelled with `digest resolve --cancel`), the schema version and the database size,
    and how many stored items wait for `stiwatch classify` (`unclassified_items` in --json):
    crawled but not yet tagged. It also shows the User-Agent the crawler sends (`user_agent`;
    `contact_set` false: the `contact` setting is unset, so it names no one a site's owner
    can reach).
    """
    store = app.existing_store()
    now = datetime.now(timezone.utc)
    report = gather(store, now, zone(app.settings["timezone"]))
    report["user_agent"] = app.user_agent()
    report["contact_set"] = bool(app.settings["contact"])
    if as_json:
        echo_json(report)
        return
    click.echo(f"Database: {report['database']} ({_size(report['size_bytes'])}, schema version "
               f"{report['schema_version']}, {counted(report['items'], 'item')})")
    click.echo(f"Crawler's User-Agent: {report['user_agent']}")
    hint = app.contact_hint()
    if hint:
        click.echo(f"  {hint}")
    waiting = report["unclassified_items"]
    click.echo(f"Items waiting for `stiwatch classify`: {waiting or 'none'}")
    if waiting:
        click.echo("  not yet tagged: search shows them without tags, and digests and trends "
                   "leave them out; run `stiwatch classify` (`stiwatch run` does it after "
                   "each crawl)")
    click.echo("\nLast scheduled runs (`stiwatch run`):")
    if report["scheduled_runs"]:
        echo_table([{**run, "took": duration(run["duration_s"]) if run["duration_s"] is not None
                     else "", "exit": run["exit_code"], "steps": _steps_summary(run["steps"])}
                    for run in report["scheduled_runs"]],
                   ["id", "command", "started_at", "status", "exit", "took", "steps"],
                   max_width=60)
    else:
        click.echo("  none yet (schedule `stiwatch run`: see docs/operations.md)")
    click.echo("\nLast crawl runs:")
    if report["runs"]:
        echo_table([{**run, "took": duration(run["duration_s"]) if run["duration_s"] is not None
                     else "", "stats": _stats_summary(run["stats"])} for run in report["runs"]],
                   ["id", "started_at", "status", "took", "stats"], max_width=120)
    else:
        click.echo("  none yet (run `stiwatch crawl` or `stiwatch run`)")
    click.echo(f"\nItems per week (by publication date, weeks in {app.settings['timezone']}):")
    echo_table(report["weeks"], ["week", "starts", "items", "policy", "duplicates"])
    failing = report["failing_sources"]
    click.echo(f"\nFailing sources: {len(failing) or 'none'}")
    if failing:
        echo_table([{**s, "failures": s["consecutive_failures"],
                     "for": duration(s["failing_for_s"]) if s["failing_for_s"] is not None
                     else ""} for s in failing],
                   # The error, last, whole: its end says what to fix.
                   ["id", "failures", "failing_since", "for", "last_error"], max_width=400)
    noted = report["noted_sources"]
    if noted:
        click.echo(f"\nSources that work, with a note from their last crawl: {len(noted)}")
        echo_table([{**s, "note": s["last_flag"]} for s in noted], ["id", "note"], max_width=400)
    paused = report["paused_hosts"]
    if paused:
        click.echo(f"\nHosts paused at their request (Retry-After), not asked until then: "
                   f"{len(paused)}")
        echo_table([{**p, "until": p["not_before"]} for p in paused],
                   ["host", "until", "reason"], max_width=200)
    owed = report["deliveries_owed"]
    click.echo(f"\nDeliveries owed: {len(owed) or 'none'}")
    if owed:
        echo_table(owed, ["period", "subscriber", "status", "attempts", "last_error"],
                   max_width=60)
