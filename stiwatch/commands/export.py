"""`stiwatch export`: every item with its tags, as CSV, JSON Lines or JSON, streamed."""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import IO, Iterable

import click

from digest.weeks import zone

from ..app import App, pass_app
from ..files import output_file, replacing
from ..output import (
    bom_option, counted, json_option, output_format, utf8_stdout, wants_bom, write_csv,
    writing_stdout,
)
from ..params import RELATIVE_HELP, Moment
from .search import DATE_HELP

COLUMNS = ["id", "url", "source_id", "source_name", "title", "summary", "body", "language",
           "published_at", "date_source", "fetched_at", "status", "fetch_error",
           "fetch_attempts", "duplicate_of", "classified_at", "policy", "policy_score", "areas",
           "domains", "countries", "regions", "analyst_tags"]


def write_items(rows: Iterable[dict], stream: IO[str], fmt: str, bom: bool = False) -> int:
    """Write rows one at a time; returns how many were written."""
    if fmt == "csv":
        return write_csv(stream, rows, COLUMNS, bom=bom)
    array = fmt == "json"  # one document, still written an item at a time
    count = 0
    if array:
        stream.write("[")
    for row in rows:
        line = json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False)
        stream.write((",\n" if count else "\n") + line if array else line + "\n")
        count += 1
    if array:
        stream.write("\n]\n" if count else "]\n")
    return count


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "json"]),
              help="csv (tags comma-separated in one cell), jsonl (one JSON object a line, "
              "tags as lists) or json (those objects in one array); required unless --json.")
@json_option
@click.option("--since", metavar="DATE", type=Moment(), help="Only items published on or after DATE "
              f"(YYYY-MM-DD, {DATE_HELP}; or {RELATIVE_HELP}).")
@click.option("--out", "out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write to FILE in an existing folder (replaced only when the export is "
              "complete; never an SQLite database) instead of stdout.")
@bom_option
@pass_app
def export_command(app: App, fmt: str | None, since: str | None, out: str | None,
                   as_json: bool, bom: bool | None) -> None:
    """Export items with their tags (policy, areas, domains, countries, regions).

    Items are read and written a batch at a time, so a store of millions of items exports in
    constant memory. Columns: id, url, source, title, summary, body, language, dates, status
    with fetch_error and fetch_attempts (why and how often a partial item's page failed),
    duplicate_of (near-duplicates are included and point at their original), classified_at,
    then the tags: policy (1 or 0) with policy_score (the probability of policy relevance),
    areas, domains, countries, regions, and analyst_tags (the tags an analyst added with
    `stiwatch tag`, and the regions their countries imply, as facet=value, e.g.
    area=open_science; what an analyst removed is not a tag: see the analyst_labels table,
    verdict 0).
    In CSV, a text cell starting with = + - or @ gets a leading ' so a spreadsheet shows it
    as text instead of running it as a formula (JSON Lines and JSON keep the text as
    crawled).
    Times are as stored, in UTC (`2026-11-17T16:00:00Z`); --since reads DATE in the
    `timezone` setting. The file is UTF-8; for Excel on Windows, add --bom (or set csv_bom).

    \b
    Examples:
      stiwatch export --format csv --since 2026-11-01 --bom --out items.csv
      stiwatch export --format jsonl --out items.jsonl
    """
    if fmt is None and not as_json:
        # click said this while --format was required, over four lines, without --json
        raise click.UsageError("Missing option '--format': csv, jsonl or json (or --json)")
    fmt = output_format(fmt, as_json)
    bom = wants_bom(bom, app.settings["csv_bom"], fmt)
    store = app.existing_store()
    rows = store.iter_export(since=since, tz=zone(app.settings["timezone"]))
    if out is None:
        utf8_stdout()
        with writing_stdout():
            count = write_items(rows, sys.stdout, fmt, bom)
    else:
        target = output_file(Path(out), "--out")
        with replacing(target, "--out") as stream:
            count = write_items(rows, stream, fmt, bom)
        app.echo(f"Exported {counted(count, 'item')} to {target}.", err=True)
    if out is None and count == 0:
        app.echo("No items to export.", err=True)
