"""Files a command writes where the user asks (--out, --chart): written whole or not at all,
and a path that cannot take them is one error naming it, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def output_file(path: Path, option: str, *, make_folder: bool = True) -> Path:
    """``path``, checked to be writable as a file: its folder exists (made if missing unless
    ``make_folder`` is false) and it is not itself a folder. UserError naming it otherwise."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: that is a folder; give a file name")
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserError(f"{option} {path}: {ancestor} is a file, not a folder")
            break
    if not path.parent.is_dir():
        if not make_folder:
            raise UserError(f"{option} {path}: no such folder {path.parent}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{option} {path}: cannot create the folder {path.parent}: "
                            f"{error.strerror or error}") from None
    return path


def write_output(path: Path, data: bytes, option: str) -> Path:
    """Write ``data`` to ``path`` (see ``output_file``) through a temporary file beside it, so
    an interrupted or failed write never leaves a truncated file under the final name."""
    path = output_file(path, option)
    # Not mkstemp: its 0600 mode would make a preview unreadable to a web server or a colleague.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise UserError(f"{option} {path}: cannot write: {error.strerror or error}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
