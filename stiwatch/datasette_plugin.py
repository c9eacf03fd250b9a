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

The search box passes what was typed to FTS5, whose syntax errors (a lone `"`, `AND`, `R&D`,
`co-operation`) were a 400 page. In Datasette's "escaped" search mode the box calls the SQL
function escape_fts(), which this plugin replaces: the query as `stiwatch search` reads it
(quotes, AND, OR, NOT, parentheses, prefix*, title:word, -word), or, when that is malformed,
its words searched as plain words, the page saying why.

With the csv_bom setting (or `serve --bom`), Datasette's CSV (the "CSV" links, `.csv` URLs)
starts with a UTF-8 byte order mark, as `stiwatch export --bom` does, so that a download
opens in Excel on Windows with its Japanese text intact.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from datasette import hookimpl
from datasette.filters import FilterArguments

from db.search import BadQuery, box_query, plain_query

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


# trylast: Datasette's own prepare_connection defines escape_fts; this one must come after it.
@hookimpl(trylast=True)
def prepare_connection(conn: sqlite3.Connection) -> None:
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
    conn.create_function("escape_fts", 1, search_box, deterministic=True)
    if private:
        conn.set_authorizer(_authorize)


@hookimpl(trylast=True)  # after Datasette's "search matches ..."
def filters_from_request(request: Any, database: str, table: str,
                         datasette: Any) -> Callable[[], Any] | None:
    """Say on the page when the search was read as plain words, and why."""
    typed = request.args.get("_search")
    if (not typed or request.args.get("_searchmode") == "raw"
            or not datasette.table_metadata(database, table).get("fts_table")):
        return None
    try:
        box_query(typed)
    except BadQuery as error:
        note = (f"its words were searched as plain words, since {error.reason} (see "
                "`stiwatch search --help` for the syntax)")

        async def inner() -> FilterArguments:
            return FilterArguments([], human_descriptions=[note])
        return inner
    return None


@hookimpl
def asgi_wrapper() -> Callable[[Any], Any]:
    """Middleware putting a BOM before the body of responses to `.csv` URLs (csv_bom)."""
    def wrap(app: Any) -> Any:
        async def with_bom(scope: dict, receive: Any, send: Any) -> None:
            if (not csv_bom or scope["type"] != "http"
                    or not scope.get("path", "").endswith(".csv")):
                await app(scope, receive, send)
                return
            first = True

            async def send_with_bom(event: dict) -> None:
                nonlocal first
                if event["type"] == "http.response.start":
                    # A CSV error answer (a bad query) is not CSV: left as it is.
                    first = event["status"] == 200
                    event = {**event, "headers": [
                        (name, str(int(value) + len(UTF8_BOM)).encode()
                         if name.lower() == b"content-length" and first else value)
                        for name, value in event.get("headers", [])]}
                elif event["type"] == "http.response.body" and first:
                    first = False
                    event = {**event, "body": UTF8_BOM + event.get("body", b"")}
                await send(event)

            await app(scope, receive, send_with_bom)
        return with_bom
    return wrap
