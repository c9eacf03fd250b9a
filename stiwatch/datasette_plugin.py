"""stiwatch's Datasette plugin (`stiwatch serve` registers it): a size limit on SQL values,
and the personal tables kept out of every query.

Datasette runs any SELECT a visitor types, and `randomblob(999000000)` or
`hex(randomblob(499000000))` made the server allocate a gigabyte per request (SQLite's own
limit): a few at once exhaust the machine. Item bodies are text extracted from pages of at most
`max_response_size` bytes, so they stay well under the limit.

Datasette's permissions hide a table's pages, but anyone allowed to run SQL can still
`select * from subscribers`: only SQLite's authorizer refuses a read whatever the query
(a view, a subquery, count(*)), so `stiwatch serve` installs one for the personal tables.
"""

from __future__ import annotations

import sqlite3

from datasette import hookimpl

MAX_VALUE_BYTES = 64 * 1024 * 1024
limit = MAX_VALUE_BYTES  # set by `stiwatch serve` before Datasette opens a connection
# Tables no query may read, lower-cased; set by `stiwatch serve` (empty: every table readable).
private: frozenset[str] = frozenset()


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None,
               source: str | None) -> int:
    # SQLITE_READ comes once per column read, and once with an empty column for count(*).
    if action == sqlite3.SQLITE_READ and arg1 and arg1.lower() in private:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
    if private:
        conn.set_authorizer(_authorize)
