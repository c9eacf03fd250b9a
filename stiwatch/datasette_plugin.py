"""stiwatch's Datasette plugin (`stiwatch serve` registers it): a size limit on SQL values.

Datasette runs any SELECT a visitor types, and `randomblob(999000000)` or
`hex(randomblob(499000000))` made the server allocate a gigabyte per request (SQLite's own
limit): a few at once exhaust the machine. Item bodies are text extracted from pages of at most
`max_response_size` bytes, so they stay well under the limit.
"""

from __future__ import annotations

import sqlite3

from datasette import hookimpl

MAX_VALUE_BYTES = 64 * 1024 * 1024
limit = MAX_VALUE_BYTES  # set by `stiwatch serve` before Datasette opens a connection


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
