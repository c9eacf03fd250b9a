"""What a path is to SQLite: a database file, or one of the files SQLite keeps beside one.

A checkpointed write-ahead log is an empty file, which would pass for a new store, and its
database's next changes are written to it: nothing stiwatch writes may replace either.
"""

from __future__ import annotations

from pathlib import Path

_HEADER = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")


def is_database(path: Path) -> bool:
    """Whether ``path`` is a file that starts as an SQLite database does."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(len(_HEADER)) == _HEADER
    except OSError:
        return False


def database_beside(path: Path) -> Path | None:
    """The database whose -wal, -shm or -journal file ``path`` is named as (None when it is
    named as none, or no database is there)."""
    path = Path(path)
    for side in SIDE_FILES:
        if path.name.endswith(side):
            database = path.with_name(path.name[:-len(side)])
            if is_database(database):
                return database
    return None
