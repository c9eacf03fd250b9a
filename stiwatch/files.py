"""Files a command writes where the user asks (--out, --chart): written whole or not at all,
never over a database, only into a folder that exists, and a path that cannot take them is one
error naming it, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
from typing import IO

from db.files import database_beside, is_database

from .errors import UserError


def output_file(path: Path, option: str) -> Path:
    """``path``, checked to be writable as a file: its folder exists, it is not itself a
    folder, and it is not an SQLite database or one's -wal/-shm/-journal file (an export or a
    chart must never replace the store, as a shell's completion of ``--out stiwatch.`` would).
    UserError naming it otherwise.

    A missing folder is refused, never made: a typo in the path (``--out reprots/w47.html``)
    would otherwise put the file in a new folder tree nobody looks in, and say it succeeded.
    Every --out and --chart follows this one rule, as a shell's ``> FILE`` does."""
    path = Path(path)
    try:
        return _checked(path, option)
    except OSError as error:  # a name too long, a folder that cannot be searched...
        raise UserError(f"{option} {path}: {error.strerror or error}") from None


def _checked(path: Path, option: str) -> Path:
    if path.is_dir():
        raise UserError(f"{option} {path}: that is a folder; give a file name")
    database = path if is_database(path) else database_beside(path)
    if database is not None:
        what = "an SQLite database" if database == path else f"a file of the database {database}"
        raise UserError(f"{option} {path}: that is {what}; it is never replaced by this "
                        "output (give another file name)")
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserError(f"{option} {path}: {ancestor} is a file, not a folder")
            break
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: no such folder {path.parent} (create it first)")
    return path


@contextmanager
def replacing(path: Path, option: str, *, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text stream that replaces ``path`` (checked by ``output_file``) when the block ends
    without error: written to a temporary file beside it, then renamed, so an interrupted
    export never leaves a truncated file that looks complete. The file's mode follows the
    umask, as any file the user makes (mkstemp's 0600 would hide a shared export from the
    colleagues it is for). An error opening or writing it is a UserError naming it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        stream = open(temp, "w", encoding=encoding, newline="")  # noqa: SIM115 - closed below
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write: {error.strerror or error}") from None
    try:
        with stream:
            yield stream
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise UserError(f"{option} {path}: cannot write: {error.strerror or error}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_output(path: Path, data: bytes, option: str) -> Path:
    """Write ``data`` to ``path``, which ``output_file`` checked, whole or not at all (digest's
    atomic write: a temporary file beside it, then renamed)."""
    from digest.send import atomic_write

    try:
        atomic_write(path, data)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write: {error.strerror or error}") from None
    return path
