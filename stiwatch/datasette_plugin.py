"""stiwatch's Datasette plugin (`stiwatch serve` registers it): a size limit on SQL values,
the personal tables kept out of every query, and the items search box reading what an
analyst types.

Datasette runs any SELECT a visitor types, and `randomblob(999000000)` or
`hex(randomblob(499000000))` made the server allocate a gigabyte per request (SQLite's own
limit): a few at once exhaust the machine. Item bodies are text extracted from pages of at most
`max_response_size` bytes, so they stay well under the limit.

Datasette's permissions hide a table's pages, but anyone allowed to run SQL can still
`select * from subscribers`: only SQLite's authorizer refuses a read whatever the query
(a view, a subquery, count(*)), so `stiwatch serve` installs one for the personal tables.
Datasette's index pages count every table, and their refused counts are left out of the log.

The search box passes what was typed to FTS5, whose syntax errors (a lone `"`, `AND`, `R&D`,
`co-operation`) were a 400 page. In Datasette's "escaped" search mode the box calls the SQL
function escape_fts(), which this plugin replaces: the query as `stiwatch search` reads it
(quotes, AND, OR, NOT, parentheses, prefix*, title:word, -word), or, when that is malformed,
its words searched as plain words, the page saying why. An item with Chinese, Japanese or
Korean letters is searched in items_fts_cjk (escape_fts_cjk()), where those words are
character pairs, as `stiwatch search` does: items_fts holds a run of them as one word, so 研究
found nothing in 量子技術の研究開発を推進.
On items_tagged_json, a row per story, the box lists the stories
any of whose items match, the original or a copy (db's stories_sql, the digest's rule for a
reader's query): it matched the story's original alone, and left out of the page a digest links
to a story the digest had sent for words in one of its copies.

Datasette's CSV (the "CSV" links, `.csv` URLs) is rewritten for spreadsheets as stiwatch's own
CSV is: a cell starting with = + - @ (a crawled title such as `=HYPERLINK(...)`) gets a leading
', so Excel shows it instead of running it; with the csv_bom setting (or `serve --bom`) it
starts with a UTF-8 byte order mark, so that Excel on Windows reads its Japanese text. A
streamed download (`?_stream=on`) reads the table a thousand rows a query: Datasette 0.65 sets
`_size=max` for it but never passes it on, and read 50 rows a query, each one a new search of
the table for where the last page ended.

Datasette pages a table sorted by a column (`?_sort=`, `?_sort_desc=`) by the column and the
primary key, yet orders the first page by the column alone: where the column repeats (a
source, a language, a day), the next pages repeated some of its rows and skipped others, in the
browser and in streamed CSV. The plugin adds the primary key to the first page's order. A view
pages by offset, so a streamed download of a view of items reads the items stored when it
began, and the pages an analyst turns with "Next" the items stored when the first was shown:
those a crawl stores meanwhile would push rows already shown into the next page.

The views compute each tag column with a subquery per item, so Datasette's facets of those
columns timed out on a large store; the "tag" facet type counts them from the tags table.
A `_facet_tag=` naming no tag column of the page (items_tagged's comma-joined countries) is a
400 page naming the views' tag columns, where it showed nothing.

`_tags_any=countries:JP,regions:east_asia` on items_tagged_json keeps the items with any of
those tags (each `_tags_any` one such condition, all of them met), and the page's title says
so (`where (countries contains "JP" or regions contains "east_asia")`): the digest's links
need "any of" and "either column", which Datasette's own filters lack, and a `_where` doing it
was left out of the title, so a page of one country's stories read as every story of the area.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sqlite3
from contextvars import ContextVar
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.filters import FilterArguments
from datasette.utils import escape_sqlite, path_with_added_args, path_with_removed_args
from datasette.views.base import DatasetteError
from markupsafe import Markup, escape

from db.search import (CJK_TABLE, BadQuery, box_query, cjk_query, plain_query,
                       story_search_sql)
from db.tags import FACETS

from .datasette_meta import ITEM_VIEWS
from .output import spreadsheet_text

log = logging.getLogger("stiwatch.serve")

MAX_VALUE_BYTES = 64 * 1024 * 1024
limit = MAX_VALUE_BYTES  # set by `stiwatch serve` before Datasette opens a connection
# Tables no query may read, lower-cased; set by `stiwatch serve` (empty: every table readable).
private: frozenset[str] = frozenset()
csv_bom = False  # set by `stiwatch serve`: a BOM before every CSV response
UTF8_BOM = "\ufeff".encode()


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None,
               source: str | None) -> int:
    # SQLITE_READ comes once per column read, and once with an empty column for count(*).
    if action == sqlite3.SQLITE_READ and arg1 and arg1.lower() in private:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def search_box(text: str) -> str:
    """What the items search box gives FTS5 for ``text``: always a valid FTS5 query."""
    try:
        return box_query(text)
    except BadQuery:
        return plain_query(text)


def search_box_cjk(text: str) -> str:
    """What the items search box gives items_fts_cjk for ``text`` (its CJK words as character
    pairs): always a valid FTS5 query."""
    for query in (text, plain_query(text)):
        try:
            return cjk_query(query)
        except BadQuery:
            pass
    return '""'  # no word at all: matches nothing


# trylast: Datasette's own prepare_connection defines escape_fts; this one must come after it.
@hookimpl(trylast=True)
def prepare_connection(conn: sqlite3.Connection) -> None:
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
    conn.create_function("escape_fts", 1, search_box, deterministic=True)
    conn.create_function("escape_fts_cjk", 1, search_box_cjk, deterministic=True)
    if private:
        conn.set_authorizer(_authorize)


@hookimpl(trylast=True)  # after Datasette's "search matches ..."
def filters_from_request(request: Any, database: str, table: str,
                         datasette: Any) -> Callable[[], Any] | None:
    """Say on the page when the search was read as plain words, and why; apply and describe
    ``_tags_any``."""
    wheres, params, notes = tags_any(table, request.args.getlist("_tags_any"))
    typed = request.args.get("_search")
    if (typed and request.args.get("_searchmode") != "raw"
            and datasette.table_metadata(database, table).get("fts_table")):
        try:
            box_query(typed)
        except BadQuery as error:
            notes.append(f"its words were searched as plain words, since {error.reason} (see "
                         "`stiwatch search --help` for the syntax)")
    if not (wheres or notes):
        return None

    async def inner() -> FilterArguments:
        return FilterArguments(wheres, params, human_descriptions=notes)
    return inner


TAGS_ANY_COLUMNS = ("areas", "domains", "countries", "regions")


def tags_any(table: str, conditions: list[str]
             ) -> tuple[list[str], dict[str, str], list[str]]:
    """(SQL, parameters, descriptions) of the ``_tags_any`` values on ``table``: each
    ``column:value,column:value`` keeps the rows with any of those tags. A column that is no
    tag column of the table keeps no row, and says so."""
    columns = TAG_COLUMNS.get(table, {})
    wheres: list[str] = []
    params: dict[str, str] = {}
    notes: list[str] = []
    for n, condition in enumerate(conditions):
        wanted: dict[str, list[str]] = {}
        for pair in filter(None, (part.strip() for part in condition.split(","))):
            column, _, value = pair.partition(":")
            wanted.setdefault(column.strip(), []).append(value.strip())
        unknown = [c for c in wanted if c not in TAGS_ANY_COLUMNS or c not in columns]
        if unknown or not wanted:
            wheres.append("0")
            notes.append(f"_tags_any={condition!r} names no tag column of {table} "
                         f"({', '.join(c for c in TAGS_ANY_COLUMNS if c in columns) or 'none'})")
            continue
        ors, said = [], []
        for m, (column, values) in enumerate(wanted.items()):
            names = []
            for k, value in enumerate(values):
                names.append(f":stiwatch_any_{n}_{m}_{k}")
                params[names[-1][1:]] = value
            params[f"stiwatch_any_{n}_{m}"] = columns[column]
            ors.append(f'+{escape_sqlite(table)}.id in (select item_id from tags where facet = '
                       f':stiwatch_any_{n}_{m} and value in ({", ".join(names)}))')
            quoted = [f'"{value}"' for value in values]
            said.append(f"{column} contains " + (quoted[0] if len(quoted) == 1 else
                                                 "any of " + ", ".join(quoted)))
        wheres.append("(" + " or ".join(ors) + ")")
        notes.append(said[0] if len(said) == 1 else "(" + " or ".join(said) + ")")
    return wheres, params, notes


@hookimpl
def render_cell(value: Any, column: str, table: str | None, database: str,
                datasette: Any) -> Markup | None:
    """In the views of items, an item's id, duplicate_of and item_id (items_tagged_json's item
    shown for a story) link to its row in items: its text and its tags ("Links from other
    tables") are there, not in the view. Datasette links a table's own rows, never a view's."""
    if (table in ITEM_VIEWS and column in ("id", "duplicate_of", "item_id")
            and isinstance(value, int)):
        href = datasette.urls.row(database, "items", str(value))
        return Markup(f'<a href="{escape(href)}">{value}</a>')
    return None


# The views' tag columns, each the values of one facet of tags. items_tagged's areas,
# domains, countries and regions are comma-joined combinations: no filter picks one label.
TAG_COLUMNS: dict[str, dict[str, str]] = {
    "items_tagged": {"policy": "policy"},
    "items_tagged_json": {"policy": "policy", "areas": "area", "domains": "domain",
                          "countries": "country", "regions": "region"},
}


def tags_filtered(sql: str) -> str:
    """``sql`` with Datasette's filters on the views' tag columns (``policy=1``,
    ``countries__arraycontains=JP``, ``areas__arraynotcontains=...``) reading tags by their
    index instead of computing the column for every item. The same rows: an item has at most
    one policy tag, and a JSON array holds one label per tag.

    Computed per item, a filter cost its page's count and each facet a subquery per item
    (2.0 s to count items_tagged?policy=1 at 500,000 items, 3.7 s for the first page of a
    country no item names); as a list of ids, 0.1-0.5 s. The + keeps the first page reading
    items_published_at, newest first, rather than sorting every matching item."""
    for view, columns in TAG_COLUMNS.items():
        for column, facet in columns.items():
            if column != "policy":  # Datasette names the view in these
                sql = re.sub(rf':(p\d+) (not )?in \(select value from json_each\("{view}"\.'
                             rf'"{column}"\)\)', rf'+"{view}".id \2in (select item_id from tags '
                             rf"where facet = '{facet}' and value = :\1)", sql)
    # "policy" = :p0 names no view: only in a table page's SQL, of one view, unaliased.
    views = [view for view in TAG_COLUMNS if f" from {view} where " in sql]
    if len(views) == 1:
        sql = re.sub(r'"policy" = :(p\d+)\b', rf'+"{views[0]}".id in (select item_id from tags '
                     r"where facet = 'policy' and value = :\1)", sql)
    return sql


def tag_facet_sql(rows_sql: str, view: str, facets: list[str]) -> str:
    """SQL counting each value of ``facets`` in tags over the items ``rows_sql`` selects (a
    SELECT from ``view``, a view of items, its id among the columns): facet, value, count."""
    if not facets or not set(facets) <= set(FACETS):  # names in the SQL: only the tags' own
        raise ValueError(f"no such facets of tags: {facets!r}")
    named = ", ".join(f"'{facet}'" for facet in facets)
    if view == "items_tagged" and re.fullmatch(r"select .* from items_tagged ?", rows_sql,
                                               re.DOTALL):
        # Every item, so every tag (tags.item_id references items, foreign keys on): no
        # list of 500,000 ids to build and look each tag up in (1.0 s a facet).
        last = _stream_last_item.get()
        return (f"select facet, value, count(*) as count from tags where facet in ({named})"
                + (f" and item_id <= {int(last)}" if last is not None else "")
                + " group by facet, value")
    found = re.fullmatch(r"select .+? from items_tagged_json ?(?P<where>where .*)?", rows_sql,
                         re.DOTALL)
    if view == "items_tagged_json" and found:
        ids = story_ids(tags_filtered(f"select id from items_tagged_json {found['where'] or ''}"),
                        _stream_last_item.get())
        if ids:  # the originals that meet the page's filters (story_ids)
            return (f"select facet, value, count(*) as count from tags where facet in ({named})"
                    f" and +item_id in ({ids}) group by facet, value")
    # +item_id: the facets' rows of tags by tags_facet_value, each looked up in the ids. With
    # the store ANALYZEd, SQLite took each id and looked up its tags instead: 1.2-1.8 s a facet
    # at 500,000 items, where this reads five facets in 0.7 s.
    return (f"select facet, value, count(*) as count from tags where facet in ({named}) and "
            f"+item_id in (select id from ({rows_sql})) group by facet, value")


class NoTagColumn(DatasetteError):
    """A ``?_facet_tag=`` naming no tag column of the page's table or view: a 400 page (JSON:
    its error), as Datasette answers ``?_facet=`` naming no column."""

    def __init__(self, column: Any, table: str | None, hint: str | None) -> None:
        where = "; ".join(f"{', '.join(columns)} on {view}"
                          for view, columns in TAG_COLUMNS.items())
        message = (f"_facet_tag={column or ''}: {table or 'this page'} has no tag facet "
                   f"{column or ''} (tag facets: {where})")
        if hint:
            message += f"; it works at {hint}"
        super().__init__(message, title="Invalid facet", status=400)


class TagFacet(Facet):
    """A facet of a view's tag column (``{"tag": "areas"}`` in the metadata, or
    ``?_facet_tag=areas``) counted from the tags table.

    The views compute each tag column with a subquery per item, so Datasette's own facets
    (column, array) ran those subqueries for every item of the view: at 500,000 items each
    took several seconds and the page showed "These facets timed out". Here one query counts
    the page's tag facets from tags (by its tags_facet_value index) for the ids of the rows
    the page's filters select. Counts, order and links are those of Datasette's column facet
    (policy) or array facet (the JSON arrays): an item has at most one policy tag and one
    tag per label.
    """

    type = "tag"

    async def suggest(self) -> list:
        return []

    async def facet_results(self) -> tuple[list[dict[str, Any]], list[str]]:
        columns = TAG_COLUMNS.get(self.table or "", {})
        configs = []
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            column = config.get("column") or config.get("simple")
            if isinstance(column, str) and column in columns:  # JSON config: any type
                configs.append((source_and_config["source"], column, columns[column]))
            elif source_and_config["source"] == "request":
                # Counted nowhere, it was no facet and no error: the analyst saw nothing.
                # items_tagged's areas etc. are comma-joined: no filter link picks one label.
                raise NoTagColumn(column, self.table, self._elsewhere(column))
        if not configs:
            return [], []
        counts: dict[str, list[tuple[str, int]]] = {}
        fixed = self._fixed_policy()
        if fixed is not None:
            counts["policy"] = fixed
        facets = sorted({facet for _, _, facet in configs} - set(counts))
        timed_out: list[str] = []
        if facets:
            try:
                # Datasette gives each facet its own query and time limit: these share one.
                rows = await self.ds.execute(
                    self.database, tag_facet_sql(self.sql, self.table or "", facets),
                    self.params, truncate=False,
                    custom_time_limit=self.ds.setting("facet_time_limit_ms") * len(facets))
            except QueryInterrupted:
                timed_out = [column for _, column, facet in configs if facet in facets]
            else:
                counts.update({facet: [] for facet in facets})
                for row in rows.rows:
                    counts[row["facet"]].append((str(row["value"]), row["count"]))
        facet_size = self.get_facet_size()
        pairs = self.get_querystring_pairs()
        results: list[dict[str, Any]] = []
        for source, column, facet in configs:
            if facet not in counts:  # timed out
                continue
            # Datasette's order: count desc, value (text compared as SQLite's BINARY does).
            ranked = sorted(counts[facet], key=lambda pair: (-pair[1], pair[0]))
            array = column != "policy"
            # The links Datasette's column or array facet gives: the same filters.
            arg = f"{column}__arraycontains" if array else column
            values = []
            for value, count in ranked[:facet_size]:
                selected = (arg, value) in pairs
                toggle = (path_with_removed_args if selected else path_with_added_args)(
                    self.request, {arg: value})
                values.append({
                    "value": value, "label": value, "count": count,
                    "toggle_url": self.ds.absolute_url(
                        self.request, toggle if array else self.ds.urls.path(toggle)),
                    "selected": selected,
                })
            results.append({
                "name": column,
                "type": "array" if array else "column",
                "hideable": source != "metadata",
                "toggle_url": self.ds.urls.path(
                    path_with_removed_args(self.request, {"_facet_tag": column})),
                "results": values,
                "truncated": len(ranked) > facet_size,
            })
        return results, timed_out

    def _elsewhere(self, column: Any) -> str | None:
        """The URL of the view where ``column`` is a tag column, if one is."""
        for view, columns in TAG_COLUMNS.items():
            if isinstance(column, str) and column in columns and view != self.table:
                return self.ds.absolute_url(self.request, self.ds.urls.table(
                    self.database, view) + "?" + urlencode({"_facet_tag": column}))
        return None

    def _fixed_policy(self) -> list[tuple[str, int]] | None:
        """The policy facet's (value, count) of a page whose filters hold policy to one value
        (``policy=1``): every row has it, so it is that value with the page's count; nothing
        when they ask for two. Counted from tags instead, it was the slowest query of
        ``items_tagged?policy=1`` (the ids of 80,000 rows at 200,000 items), and the one that
        timed out on a loaded machine. None: the facet must be counted (no such filter, or
        the page's count timed out or was not asked for)."""
        values = {value for key in ("policy", "policy__exact")
                  for value in self.request.args.getlist(key)}
        if not values or self.row_count is None:
            return None
        if len(values) > 1 or not self.row_count:
            return []
        return [(values.pop(), self.row_count)]


@hookimpl
def register_facet_classes() -> list[type]:
    return [TagFacet]


# A record that may hold a cell starting like a formula; only those are parsed and rewritten.
# A cell holding a line break is quoted, so an unquoted \r is the record's end (after an empty
# last cell, most rows), not a cell's start. The search for a comma first is what keeps a
# 100 MB download from paying a regular-expression step per byte.
_FORMULA_START = rb'(?:[=+\-@\t]|"[=+\-@\t\r])'
_FORMULA_FIRST = re.compile(_FORMULA_START)
_FORMULA_AFTER_COMMA = re.compile(rb"," + _FORMULA_START)


def _may_hold_formula(raw: bytes) -> bool:
    return bool(_FORMULA_FIRST.match(raw) or _FORMULA_AFTER_COMMA.search(raw))


class FormulaQuoter:
    """Rewrites a CSV byte stream record by record so that a cell a spreadsheet would run as
    a formula starts with ' (output.spreadsheet_text), as stiwatch's own CSV does. Records
    end at a line break outside quotes: a body's line breaks stay inside their record."""

    def __init__(self) -> None:
        self.pending = b""
        self.quotes = 0  # quotes seen in the pending record (odd: inside a quoted cell)
        self.scanned = 0  # where in ``pending`` the search for a line break resumes

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self.pending + chunk
        out = bytearray()
        start = 0
        while (end := data.find(b"\n", self.scanned)) >= 0:
            self.quotes += data.count(b'"', self.scanned, end)
            self.scanned = end + 1
            if self.quotes % 2 == 0:
                out += _quoted_record(data[start:end + 1])
                start, self.quotes = end + 1, 0
        # Quotes after the last line break are counted when the next one arrives.
        self.pending, self.scanned = data[start:], self.scanned - start
        if final and self.pending:
            out += _quoted_record(self.pending)
            self.pending, self.scanned = b"", 0
        return bytes(out)


def _quoted_record(raw: bytes) -> bytes:
    if not _may_hold_formula(raw):
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    # The csv module refuses a cell over 128 Ki characters (a long report's body), which
    # ended the download at its first such record; no cell is longer than its record.
    if csv.field_size_limit() < len(text):
        csv.field_size_limit(len(text))
    cells = next(csv.reader(io.StringIO(text, newline="")), [])
    quoted = [spreadsheet_text(cell) for cell in cells]
    if quoted == cells:
        return raw
    ending = text[len(text.rstrip("\r\n")):]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=ending).writerow(quoted)
    return buffer.getvalue().encode()


# The last item stored when a streamed download of a view of items began, or when the
# first of the pages an analyst turns with "Next" was shown (None: the view as it is now). A
# view pages by offset: items a crawl stored meanwhile (the newest: on top) pushed rows already
# shown or written into the next page, where they came again.
_stream_last_item: ContextVar[int | None] = ContextVar("stiwatch_stream_last_item",
                                                       default=None)
# The argument that carries it from a view's page to its "Next" link (Datasette keeps every
# argument of a page in that link); read only beside _next.
SNAPSHOT_ARG = "_snapshot"


async def _view_snapshot(datasette: Any, scope: dict) -> tuple[dict, int | None]:
    """``scope`` and the last item of the view of items it reads, if it reads one: the one
    its _snapshot names on a page after the first, the last item stored on a first page (which
    passes it on as _snapshot) or in a streamed CSV download."""
    database, _, name = scope.get("path", "").strip("/").rpartition("/")
    view, _, extension = name.partition(".")
    if view not in ITEM_VIEWS or "/" in database or extension not in ("", "json", "csv"):
        return scope, None
    args = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if args.get("_next") and not _is_number(args["_next"][-1]):
        # Datasette 0.65 reads a view's _next as an offset with int(): "abc" answered 500. A
        # link so mangled shows the first page.
        scope = {**scope, "query_string": _query_without(scope, "_next").encode("latin-1")}
        del args["_next"]
    streamed = _streamed(args)
    if args.get("_next") and not streamed:
        given = args.get(SNAPSHOT_ARG, [""])[-1]
        # A link from before (no _snapshot) pages the view as it is, as it did.
        return scope, int(given) if _is_number(given) else None
    try:
        db = datasette.get_database(database)
    except KeyError:
        return scope, None
    last = (await db.execute("SELECT max(id) FROM items")).single_value()
    if last is None or streamed:
        return scope, last
    query = _query_without(scope, SNAPSHOT_ARG)
    query += ("&" if query else "") + f"{SNAPSHOT_ARG}={int(last)}"
    return {**scope, "query_string": query.encode("latin-1")}, last


def _is_number(given: str) -> bool:
    # isascii: "²" and other Unicode digits pass isdigit() but not int(), which answered 500
    return given.isascii() and given.isdigit()


def _query_without(scope: dict, name: str) -> str:
    """The request's query string without the argument ``name``."""
    return "&".join(part for part in scope.get("query_string", b"").decode("latin-1").split("&")
                    if part and part.split("=", 1)[0] != name)


def snapshotted(sql: str) -> str:
    """``sql`` reading a view of items as it was when the current streamed download began, or
    when the first of the pages the current one follows was shown."""
    last = _stream_last_item.get()
    if last is None:
        return sql
    # +id: not by the items' primary key, which reads each row, bodies and all, to count
    # them; the view's count and facets read the index items_language_status, which holds id.
    for view in ITEM_VIEWS:
        sql = sql.replace(f" from {view} ",
                          f" from (select * from {view} where +id <= {int(last)}) as {view} ", 1)
    return sql


# items_tagged_json has a row per story, the item the digest shows, found by a lookup per item
# (1.4 us): counting every story of 500,000 items took 0.6 s where the originals took 0.04 s.
# Its id and tag columns are the story's original's, so a query reading only ids, whose
# conditions read only the id and the tags, finds the originals that meet them: it reads them.
_STORY_IDS = re.compile(r"select (?P<what>count\(\*\)|id) from items_tagged_json ?"
                        r"(?P<where>where .*?)?\s*", re.DOTALL)
_TAG_CONDITION = re.compile(
    r'\+(?:"items_tagged_json"|items_tagged_json)\.id (?:not )?in \(select item_id from tags '
    r"where facet = (?:'\w+'|:\w+) and value (?:= :\w+|in \(:\w+(?:, :\w+)*\))\)")
_ID_CONDITION = re.compile(r'"id" (?:=|!=|<>|>|>=|<|<=) :\w+')


def story_ids(sql: str, last: int | None) -> str | None:
    """``sql`` (a SELECT of items_tagged_json's ids or count, its tag filters already read
    from tags: tags_filtered) reading the originals, up to the item ``last`` (a snapshot);
    None when it reads more than ids or a condition on another column (the item shown)."""
    match = _STORY_IDS.fullmatch(sql)
    if not match:
        return None
    where = match["where"] or ""
    rest = _ID_CONDITION.sub("", _TAG_CONDITION.sub("", where[len("where"):]))
    if re.sub(r"\b(?:and|or)\b|[()\s]", "", rest):
        return None
    snapshot = f" and +id <= {int(last)}" if last is not None else ""
    return (f"select {match['what']} from (select id from items where +duplicate_of is null"
            f"{snapshot}) as items_tagged_json {where}")


@hookimpl
def asgi_wrapper(datasette: Any) -> Callable[[Any], Any]:
    """Middleware for the answers to `.csv` URLs: formulas quoted, and a BOM first when
    csv_bom is set; and for the pages of the views of items: each reads the view as it was
    when its first page was shown (_view_snapshot). Other answers pass untouched."""
    def wrap(app: Any) -> Any:
        async def csv_for_spreadsheets(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            scope, snapshot = await _view_snapshot(datasette, scope)
            last = _stream_last_item.set(snapshot)
            try:
                if scope.get("path", "").endswith(".csv"):
                    await _spreadsheet_csv(app, scope, receive, send)
                else:
                    await app(scope, receive, send)
            finally:
                _stream_last_item.reset(last)

        async def _spreadsheet_csv(app: Any, scope: dict, receive: Any, send: Any) -> None:
            scope = streamed_by_thousands(scope)
            rewrite = False
            first = True
            quoter = FormulaQuoter()

            async def rewriting_send(event: dict) -> None:
                nonlocal rewrite, first
                if event["type"] == "http.response.start":
                    # A CSV error answer (a bad query) is not CSV: left as it is.
                    rewrite = event["status"] == 200
                    if rewrite:  # the length changes: sent chunked instead
                        event = {**event, "headers": [
                            (name, value) for name, value in event.get("headers", [])
                            if name.lower() != b"content-length"]}
                elif event["type"] == "http.response.body" and rewrite:
                    body = quoter.feed(event.get("body", b""),
                                       final=not event.get("more_body", False))
                    if first and csv_bom:
                        body = UTF8_BOM + body
                    first = False
                    event = {**event, "body": body}
                await send(event)

            await app(scope, receive, rewriting_send)
        return csv_for_spreadsheets
    return wrap


def _streamed(args: dict[str, list[str]]) -> bool:
    """Whether a request's arguments (``parse_qs``) ask for a streamed download (Datasette:
    any non-empty _stream)."""
    return any(args.get("_stream", []))


def streamed_by_thousands(scope: dict) -> dict:
    """``scope`` of a streamed CSV download (``_stream``) with ``_size=max`` added when it
    gives no ``_size``: Datasette's stream then reads max_returned_rows rows a query, as its
    own "stream all rows" form asks, where it read default_page_size (50)."""
    query = scope.get("query_string", b"")
    args = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    if not _streamed(args) or "_size" in args:
        return scope
    return {**scope, "query_string": query + (b"&" if query else b"") + b"_size=max"}


# Datasette 0.65's table page: SELECT ... FROM table [WHERE ...] ORDER BY <column> [desc]
# LIMIT n, with one sort term when no _next is given (the pages after it add the keys).
_SORTED_FIRST_PAGE = re.compile(
    r"select .+? from (?P<table>\[[^\]]+\]|\"[^\"]+\"|\w+) (?:where .* )?"
    r"order by (?P<sort>\[[^\]]+\]|\"[^\"]+\"|\w+)(?P<desc> desc)? limit \d+", re.DOTALL)


# Datasette's condition for the search box (?_search=) of items, in escaped search mode.
_ITEMS_SEARCH = "id in (select rowid from items_fts where items_fts match escape_fts(:search))"
# As `stiwatch search` reads the store: an item with CJK letters in items_fts_cjk, where its
# CJK words are character pairs (items_fts holds a run of them as one word: 研究 alone was
# found only between spaces), any other in items_fts.
_ITEMS_SEARCH_BOTH = (
    "id in (select rowid from items_fts where items_fts match escape_fts(:search) and not "
    f"exists (select 1 from {CJK_TABLE} c where c.rowid = items_fts.rowid) union all select "
    f"rowid from {CJK_TABLE} where {CJK_TABLE} match escape_fts_cjk(:search))")
# items_tagged_json has a row per story, its id the original's: the stories any of whose
# items match, the original or a copy, as the digest selects a reader's stories (db's
# stories_sql). Read by id alone, a story whose words were in a copy only (the item shown,
# or a newspaper's copy) was in the reader's digest and not on the page it links to.
_STORIES_SEARCH = f"id in ({story_search_sql('escape_fts(:search)', 'escape_fts_cjk(:search)')})"
_READS_STORIES = re.compile(r'\bfrom (?:items_tagged_json|\[items_tagged_json\]|'
                            r'"items_tagged_json")(?:\s|\)|$)')


def searched(sql: str) -> str:
    """``sql`` with the items search box's condition reading CJK items in items_fts_cjk, and,
    on the page of stories (items_tagged_json), matching a story by any of its items."""
    if _ITEMS_SEARCH not in sql:
        return sql
    return sql.replace(_ITEMS_SEARCH, _STORIES_SEARCH if _READS_STORIES.search(sql)
                       else _ITEMS_SEARCH_BOTH)


def tie_broken(sql: str, keys: dict[str, str]) -> str:
    """``sql`` with the primary key after the sort column when it is the first page of a
    table sorted by a column (``keys``: each table's escaped name -> its keys as Datasette
    orders by them); any other SQL unchanged."""
    match = _SORTED_FIRST_PAGE.fullmatch(sql)
    if not match or match["table"] not in keys or match["sort"] == keys[match["table"]]:
        return sql
    end = match.end("desc") if match["desc"] else match.end("sort")
    return f"{sql[:end]}, {keys[match['table']]}{sql[end:]}"


_TABLE_COUNT = re.compile(r"select count\(\*\) from \[([^\]]+)\]")


QUERY_IN_LOG = 200  # characters of a query the log line keeps: a visitor may type pages


def query_error_note(sql: str, error: Exception) -> str:
    """The log line for SQL that SQLite refused or could not run, in place of Datasette's
    "ERROR: conn=<sqlite3.Connection object at 0x...>, sql = ..., params = ...": one line, the
    SQL shortened, no connection address."""
    text = " ".join(sql.split())
    if len(text) > QUERY_IN_LOG:
        text = text[:QUERY_IN_LOG - 3] + "..."
    reason = str(error)
    if reason == "not authorized" or reason.endswith(" is prohibited"):
        return f"refused a query that reads a table not served ({reason}): {text}"
    return f"a query failed ({reason}): {text}"


def counts_private_table(sql: str) -> bool:
    """Whether ``sql`` is Datasette's count of a private table's rows, which its index pages
    run for every table. The authorizer refuses it (the page shows no count), and Datasette
    logged each refusal as "ERROR: conn=..., sql = 'select count(*) from [subscribers]'
    ...: not authorized": two such lines in the journal at each visit, for a refusal that is
    meant. Only that log line is left out; SQL a visitor types is logged as ever."""
    counted = _TABLE_COUNT.fullmatch(sql)
    return bool(counted and counted.group(1).lower() in private)


async def _key_orders(database: Any) -> dict[str, str]:
    keys = {}
    for table in await database.table_names():
        pks = await database.primary_keys(table)
        keys[escape_sqlite(table)] = ", ".join(escape_sqlite(pk) for pk in pks) or "rowid"
    return keys


@hookimpl
def startup(datasette: Any) -> Callable[[], Any]:
    """Give every table's first sorted page the order of the pages after it (tie_broken), the
    items search box the CJK index and, on the page of stories, every item of a story
    (searched), filters on the views' tag columns the tags table (tags_filtered), and the
    refused counts of private tables no error line in the log (counts_private_table), and any
    other refused or failed query one line of ours at INFO (query_error_note)."""
    async def inner() -> None:
        for name, database in datasette.databases.items():
            if name == "_internal":
                continue
            keys = await _key_orders(database)
            execute = database.execute

            async def tie_breaking_execute(sql: str, *args: Any, _execute: Any = execute,
                                           _keys: dict[str, str] = keys, **kwargs: Any) -> Any:
                # Datasette writes a failed query's error to stderr itself, with the
                # connection's repr; ours is one INFO line (the page already says why).
                logged = kwargs.pop("log_sql_errors", True) and not counts_private_table(sql)
                typed = sql
                sql = tags_filtered(searched(tie_broken(sql, _keys)))
                try:
                    return await _execute(
                        story_ids(sql, _stream_last_item.get()) or snapshotted(sql),
                        *args, log_sql_errors=False, **kwargs)
                except sqlite3.DatabaseError as error:
                    if logged:
                        log.info(query_error_note(typed, error))
                    raise
            database.execute = tie_breaking_execute
    return inner
