"""`stiwatch trends`: weekly counts of policy items per tag, the numbers the digest uses."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from digest.chart import area_chart
from digest.render import no_rising_terms
from digest.trends import trends
from digest.weeks import week_or_default

from ..app import App, pass_app
from ..errors import UserError
from ..files import output_file, write_output
from ..output import (
    bom_option, echo_csv, echo_json, echo_table, json_option, output_format, wants_bom,
)


@click.command("trends")
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(1, 260), metavar="N",
              help="Number of weeks shown, ending with --week.")
@click.option("--week", default=None, metavar="W",
              help="Last week shown, e.g. 2026-W47 [default: the last complete week]; the "
              "week under way counts its days so far (stderr says so), a week not begun is "
              "refused.")
@click.option("--by", "facet", default="area", show_default=True,
              type=click.Choice(["area", "domain", "region", "country"]),
              help="Which tag to count.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "json", "csv"]), help="Output format.")
@json_option
@click.option("--chart", default=None, metavar="FILE.png", type=click.Path(path_type=Path),
              help="Also write the weekly-volume-per-area chart of the digest as a PNG (a name "
              "ending in .png), in an existing folder.")
@bom_option
@pass_app
def trends_command(app: App, weeks: int, week: str | None, facet: str, fmt: str,
                   as_json: bool, chart: Path | None, bom: bool | None) -> None:
    """Weekly counts of STI-policy items per area, domain, region or country.

    Each row has one count per week (ISO weeks in the `timezone` setting; near-duplicates
    counted once), this week against the mean of the 4 weeks before it (change, change %,
    direction: up, down, flat or new), and the terms rising fastest. The table gives a change
    in per cent only where that mean is at least 2 items a week, as the digest does; JSON
    and CSV carry every change_pct. Weeks before the store's
    first dated item were not watched: they are left out of the mean, not counted as zeros
    (with none left, direction is unknown, no term rises and the table's AVG4 and CHANGE
    are "-"), and the table shows them as "-" (in its rows and Totals); JSON and CSV keep numbers there (0), and JSON's first_week
    names the store's first watched week (null: none yet). These are the same numbers as the
    digest's trends section.

    \b
    Examples:
      stiwatch trends --by region --weeks 26
      stiwatch trends --by domain --week 2026-W47 --format csv --bom > domains.csv
      stiwatch trends --chart trends.png
    """
    fmt = output_format(fmt, as_json)
    bom = wants_bom(bom, app.settings["csv_bom"], fmt)
    chosen = week_or_default(week, app.settings["timezone"])
    now = datetime.now(timezone.utc)
    if now < chosen.start:
        raise UserError(f"--week {chosen.label} has not started yet (it starts "
                        f"{chosen.local(chosen.start)}): there is nothing to count")
    if chart:
        output_file(chart, "--chart")  # before the work, not after it
        if chart.suffix.lower() != ".png":
            # It is always a PNG: under chart.svg or chart.jpg a viewer refuses it, or shows
            # garbage, after "Chart written" said all went well.
            raise UserError(f"--chart {chart}: the chart is a PNG image: give a file name "
                            f"ending in .png (e.g. {chart.with_suffix('.png')})")
    facets = (facet,) if facet == "area" or not chart else (facet, "area")
    report = trends(app.existing_store(), chosen, weeks=weeks, facets=facets)
    if chart:
        # A file of its own is opened in viewers that show transparency as black or as a
        # checkerboard: white, where the digest's is transparent for dark mode.
        write_output(chart, area_chart(report, background="white"), "--chart")
    rows = report.rows(facet)
    if now < chosen.end:
        # its few days read as a fall against whole weeks: the digest says so too
        app.echo(f"{chosen.label} is not over yet (until {chosen.local(chosen.end)}): its "
                 "counts are the week so far.", err=True)
    if fmt == "json":
        echo_json({
            # first_week: weeks before it were not watched (their counts stay numbers, 0)
            "by": facet, "week": report.week, "weeks": report.weeks, "totals": report.totals,
            "first_week": report.first_week,
            "rows": [row.__dict__ for row in rows],
            "rising_terms": [term.__dict__ for term in report.rising],
        })
    elif fmt == "csv":
        columns = ["value", "name", *report.weeks, "previous_mean", "change", "change_pct",
                   "direction"]
        flat = [{**{k: v for k, v in row.__dict__.items() if k != "series"},
                 **dict(zip(report.weeks, row.series))} for row in rows]
        echo_csv(flat, columns, bom=bom)
    else:
        shown = report.weeks[-min(len(report.weeks), 8):]
        # A week before the store's first story shows "-": a 0 there reads as a quiet week.
        watched = dict(zip(report.weeks, report.watched()))
        columns = ["name", *[w.split("-")[1] for w in shown], "avg4", "change", "direction"]
        table = []
        for row in rows:
            line = {"name": row.name, "avg4": row.previous_mean,
                    "change": f"{row.change:+g}" + ("" if row.telling_pct is None
                                                    else f" ({row.telling_pct:+d}%)"),
                    "direction": row.direction}
            if not report.history:
                # No watched week before it: "0" and "+0" read as a quiet store, not as
                # nothing to compare with (the header says so; JSON and CSV keep numbers).
                line.update(avg4="-", change="-")
            line.update({w.split("-")[1]: n if watched[w] else "-"
                         for w, n in zip(report.weeks, row.series) if w in shown})
            table.append(line)
        if report.history == 4:
            mean = f"mean of the 4 weeks before {report.week}"
        elif report.history:
            mean = (f"mean of the {report.history} week(s) before {report.week} since the "
                    f"store's first story ({report.first_week}; earlier weeks were not watched)")
        elif report.first_week:
            mean = f"none: the store holds nothing before {report.week}"
        else:
            mean = "none: the store holds no story yet"
        click.echo(f"Policy items per week by {facet}, {report.weeks[0]} to {report.week} "
                   f"({app.settings['timezone']}). AVG4: {mean}; "
                   f"CHANGE: {report.week} against it.")
        echo_table(table, columns)
        if len(shown) < len(report.weeks):
            click.echo(f"(the last {len(shown)} of {len(report.weeks)} weeks shown; "
                       "--format csv or json gives every week)")
        click.echo("Totals: " + ", ".join(f"{w}={n if watched[w] else '-'}"
                                          for w, n in zip(report.weeks, report.totals))
                   + ("" if all(watched.values()) else
                      " (-: before the store's first story, not watched)"))
        if report.rising:
            click.echo("Rising terms: " + ", ".join(
                f"{t.written} ({t.this_week}, was {t.previous_mean:g}/week)" for t in report.rising))
        else:
            click.echo(f"Rising terms: {no_rising_terms(report)}")
    if chart:
        app.echo(f"Chart written to {chart}", err=True)
