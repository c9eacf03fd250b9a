"""`stiwatch search`: full-text search of the store, ranked, filtered by tags and dates."""

from __future__ import annotations

from datetime import tzinfo
import re
import sys

import click

from classifier.taxonomy import UnknownLabel, load_taxonomy, spelt
import db
from digest.select import parse_time
from digest.weeks import zone

from ..app import App, pass_app
from ..errors import UserError
from ..output import (
    bom_option, counted, echo_csv, echo_json, json_option, output_format, printable, table,
    wants_bom,
)
from ..params import RELATIVE_HELP, Moment

COLUMNS = ["id", "url", "title", "source_id", "source_name", "published_at", "score", "copies",
           "duplicate_of",
           "policy", "areas", "domains", "countries", "regions", "snippet"]


def _checked(facet: str, values: tuple[str, ...]) -> tuple[str, ...]:
    taxonomy = load_taxonomy()
    try:
        return tuple(taxonomy.check(facet, spelt(facet, v)) for v in values)
    except UnknownLabel as error:
        raise UserError(f"--{facet}: {error}") from None


def _apart_hint(query: str, rows: list[dict]) -> str | None:
    """A tip for a query of two or more bare words (`research security`) when a row shown has
    them apart: a word matches anywhere in an item and bm25 ranks short texts holding each
    word high ("secure GPUs for researchers"), where the quoted phrase finds them side by
    side. The snippets tell: words found together are highlighted one after the other."""
    try:
        tree = db.search.parse_query(query)
    except db.BadQuery:
        return None
    words = getattr(tree, "positives", ())
    if getattr(tree, "negatives", ()) or len(words) < 2 or not all(
            isinstance(word, db.search.Term) and not word.prefix and " " not in word.text
            for word in words):
        return None
    together = re.compile(r"\*\*[^*]+\*\*" + r"\W+\*\*[^*]+\*\*" * (len(words) - 1))
    if all(together.search(row["snippet"] or "") for row in rows):
        return None
    phrase = " ".join(word.text for word in words)
    return (f"Tip: the words may stand apart in an item; search '\"{phrase}\"' (in quotes) "
            "for items with them side by side.")


def _bold(text: str, tty: bool) -> str:
    """Turn the snippet's **highlight** marks into bold on a terminal."""
    if not tty:
        return text
    return re.sub(r"\*\*(.+?)\*\*", lambda m: click.style(m.group(1), bold=True), text)


# Where the help of `search` and `export` says how a DATE is read.
DATE_HELP = "a day in the `timezone` setting, Asia/Tokyo by default"


def local_date(published_at: str | None, tz: tzinfo) -> str:
    """The day in ``tz`` of a stored UTC time (``2026-11-17T16:00:00Z`` is 2026-11-18 in
    Tokyo), as the digest and `trends` count it; a value that is not a time, as stored."""
    moment = parse_time(published_at)
    if moment is None:
        return (published_at or "")[:10]
    return moment.astimezone(tz).date().isoformat()


def echo_results(rows: list[dict], *, tty: bool, tz: tzinfo) -> None:
    """One aligned line per item (its date a day in ``tz``), then its snippet and tags,
    indented."""
    shown = [
        {
            "id": row["id"],
            "date": local_date(row["published_at"], tz),
            "source": row["source_id"],
            "title": row["title"] or "(no title)",
            # 0, not blank: a blank last cell looked like a missing value, and a script
            # reading the last word of the line got the title's. Not trends' "-", which
            # stands where a 0 would mislead (a week not watched); this 0 is a count.
            "copies": f"+{row['copies']}" if row["copies"] else "0",
        }
        for row in rows
    ]
    lines = table(shown, ["id", "date", "source", "title", "copies"], max_width=90).splitlines()
    click.echo(lines[0])
    for line, row in zip(lines[1:], rows):
        click.echo(line)
        # one indented line: a snippet across paragraphs keeps its words, not its line breaks
        click.echo("    " + _bold(printable(" ".join((row["snippet"] or "").split())), tty))
        tags = [f"{key}: {','.join(row[key])}" for key in ("areas", "domains", "countries")
                if row[key]]
        click.echo(f"    {row['url']}" + (f"  [{'; '.join(tags)}]" if tags else ""))


class SearchCommand(click.Command):
    """`stiwatch search` with `-word` (exclusion) read as part of the query, not an option.

    Every argument that is not one of the command's options (or an option's value) is a word of
    the query, so `stiwatch search quantum -computing` and `stiwatch search -china research`
    work unquoted, as `--` before the query always does. Unknown `--long` options stay errors.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for name in param.opts + param.secondary_opts:
                    takes_value[name] = not (param.is_flag or param.count)
        options: list[str] = []
        words: list[str] = []
        rest = iter(args)
        for arg in rest:
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg
            if arg == "--":
                words.extend(rest)
            elif name in takes_value:
                options.append(arg)
                if takes_value[name] and "=" not in arg:
                    following = next(rest, None)
                    if following is not None:
                        options.append(following)
            elif arg.startswith("--"):
                options.append(arg)  # an unknown --option: click names it
            else:
                words.append(arg)
        return super().parse_args(ctx, options + ["--"] + words)


@click.command("search", cls=SearchCommand)
@click.argument("words", nargs=-1, metavar="[QUERY]...")
@click.option("--area", "areas", multiple=True, metavar="A",
              help="Only items tagged with this policy area id, in any case (repeat for any "
              "of several).")
@click.option("--domain", "domains", multiple=True, metavar="D",
              help="Only items tagged with this technology domain id (repeatable).")
@click.option("--country", "countries", multiple=True, metavar="CC",
              help="Only items about this country: ISO 3166-1 alpha-2 code or EU (repeatable).")
@click.option("--region", "regions", multiple=True, metavar="R",
              help="Only items about this region id, e.g. east_asia (repeatable).")
@click.option("--source", "sources", multiple=True, metavar="ID",
              help="Only items from this source id (repeatable).")
@click.option("--policy", "policy_only", is_flag=True,
              help="Only items classified as STI-policy relevant.")
@click.option("--since", metavar="DATE", type=Moment(),
              help=f"Published on or after DATE: YYYY-MM-DD, {DATE_HELP}; or a date-time "
              "such as 2026-11-23T09:00 (in that setting too, unless it has an offset such as "
              f"+09:00 or Z); or {RELATIVE_HELP}.")
@click.option("--until", metavar="DATE", type=Moment(),
              help="Published on or before DATE (the whole of that day), or up to and "
              "including a date-time; read as --since is.")
@click.option("--after-id", "after_id", type=click.IntRange(0), metavar="ID",
              help="Only stories first stored after item ID (ids grow as items are stored): "
              "an original stored after it, with its copies; a copy stored after it of a story "
              "stored before is left out. The digest's \"Found since your last digest\" "
              "commands list with it the stories stored since the reader's last digest was "
              "built, as the section and its serve page take them.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000), metavar="N",
              help="Show at most this many items.")
@click.option("--exact", is_flag=True,
              help="Rank every match by bm25 (slower when a query matches over 5,000 items; "
              "by default those are ranked among the 5,000 most recently stored).")
@click.option("--sort", type=click.Choice(db.SORTS), default=None,
              help="Order of the stories: relevance (best match first, the default with a "
              "QUERY) or newest (latest published first, then highest id, among every "
              "match). Without a QUERY stories are always listed newest first: --sort "
              "newest changes nothing there and --sort relevance is an error.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@json_option
@bom_option
@pass_app
def search_command(app: App, words: tuple[str, ...], areas, domains, countries, regions, sources,
                   policy_only: bool, since, until, after_id: int | None, limit: int, exact: bool, sort: str | None,
                   fmt: str, as_json: bool, bom: bool | None) -> None:
    """Full-text search of stored items, best match first (--sort newest: latest first).

    QUERY (one argument or several, joined by spaces) uses SQLite FTS5 syntax: words
    (stemmed, so `fund` finds `funding`), "quoted phrases", AND, OR, NOT in capitals,
    parentheses, prefix* and title:word (or summary:, body:). `-word` excludes a word from
    the whole query, as in web search (`a OR b -c` is `(a OR b) NOT c`; inside parentheses,
    from the whole of them), also unquoted (`stiwatch search quantum -computing`);
    `-title:word` or `title:-word` excludes items with the word in their title. NOT binds
    as in FTS5, to the word after it alone (`a OR b NOT c` is `a OR (b NOT c)`).
    Punctuation separates words, as in the items: research-security or U.S. are searched as
    phrases, `#quantum` as quantum.
    Chinese, Japanese and Korean words of two or more characters match wherever they occur
    in the text (`stiwatch search 研究`), alone or with other words and filters. Ranking is
    bm25, with title words weighted above summary words above body words; matches are
    **highlighted** in the snippet. Words typed without quotes match wherever they stand in
    an item (and a short item holding each ranks high): the table says so when a row has them
    apart; quote them ('"research security"') to find them side by side.
    Every item is matched and filtered, near-duplicates (the same story under other URLs)
    included, and each story is shown once, as the same item in every order: among its
    items that match the query and the filters, the first from an official source (a
    ministry, funding agency, research organisation, academy or intergovernmental body),
    else the first, the original (the first URL stored) before its copies as they were
    stored. That is the page the digest links: a news report's story is shown as the
    ministry's own copy. `duplicate_of` in JSON and CSV names the original of a copy shown;
    `copies` says how many other URLs of the story are folded into the row (in the table
    +2, or 0 for a story with one URL). A query matching more than 5,000 items is ranked
    among the 5,000 most recently stored matches (fast on millions of items); --exact ranks
    them all. --sort newest shows each story as above, with its score and snippet, latest
    published first instead: by the date of the item shown, then id, among every match
    (--exact changes nothing then; it is as fast).
    Without a QUERY, one filter or more lists the stories that meet the filters, newest
    first (by date, then id), each once as above (among its items that meet them), with
    the start of its summary as snippet and no score (--exact does nothing then). Dates are days in the `timezone` setting (Asia/Tokyo by default), as in the
    digest and `trends`: --since/--until DATE and the table's DATE column; JSON and CSV give
    `published_at` as stored, in UTC. --after-id ID keeps the stories first stored after
    item ID (whose original has a higher `id`), whenever they were published: a copy stored
    since of a story already stored by then (a newspaper syndicating a release days later)
    is not new, as in the digest's "Found since your last digest".

    \b
    Examples:
      stiwatch search '"research security" AND china' --since 2026-10-01
      stiwatch search '"research security"' --sort newest --since 30d
      stiwatch search 'quantum NOT computing' --country JP --format json
      stiwatch search 'semicond*' --area business_innovation --limit 5
      stiwatch search 量子技術 --country JP --since 2026-01-01
      stiwatch search --policy --area governance --since 2026-11-16 --until 2026-11-22
      stiwatch search --policy --country JP --since 7d
      stiwatch search --policy --since 2026-10-19 --until 2026-11-15 --after-id 5120
    """
    query = " ".join(words)
    filtered = any((areas, domains, countries, regions, sources, since, until, policy_only,
                    after_id is not None))
    if not query.strip() and not filtered:
        raise UserError(
            "search needs a query, or a filter (--area, --domain, --country, --region, "
            "--source, --policy, --since, --until or --after-id) to list its stories newest "
            "first")
    if sort == "relevance" and not query.strip():
        raise UserError(
            "--sort relevance needs a QUERY to rank by: without one, stories are listed "
            "newest first (drop --sort, or give a query)")
    fmt = output_format(fmt, as_json)
    bom = wants_bom(bom, app.settings["csv_bom"], fmt)
    tz = zone(app.settings["timezone"])
    if since and until:
        _, start = db.time_bound(since, "--since", tz)
        op, end = db.time_bound(until, "--until", tz, end=True)
        if start > end or (start == end and op == "<"):
            # swapped dates answered "no items match", as if nothing had been published
            raise UserError(f"--since {since} is after --until {until}: no item can be in "
                            "between")
    store = app.existing_store()
    for source in sources:
        store.get_source(source)  # NoSuchSource: a clear error rather than silently nothing
    filters = dict(
        areas=_checked("area", areas),
        domains=_checked("domain", domains),
        countries=_checked("country", countries),
        regions=_checked("region", regions),
        sources=sources,
        since=since,
        until=until,
        policy_only=policy_only,
        after_id=after_id,
        limit=limit + 1,  # one more than shown: whether more match than --limit
        tz=tz,
    )
    if query.strip():
        rows = store.search(query, exact=exact, sort=sort or "relevance", **filters)
    else:
        rows = store.list_stories(**filters)
    more = len(rows) > limit
    rows = rows[:limit]
    if fmt == "json":
        echo_json([{c: row[c] for c in COLUMNS} for row in rows])
    elif fmt == "csv":
        echo_csv(rows, COLUMNS, bom=bom)
    elif not rows:
        app.echo(f"No items match {query!r}" + (" with these filters." if filtered else ".")
                 if query.strip() else "No items match these filters.")
    else:
        echo_results(rows, tty=sys.stdout.isatty(), tz=tz)
        hint = f" (the first {limit}: raise --limit for more)" if more else ""
        app.echo(f"{counted(len(rows), 'item')}{hint}.")
        tip = _apart_hint(query, rows) if query.strip() else None
        if tip:
            app.echo(tip)
