"""Files a command writes where the user asks (--out, --chart): written whole or not at all,
and a path that cannot take them is one error naming it, never a traceback."""

from __future__ import annotations

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
    """Write ``data`` to ``path``, which ``output_file`` checked, whole or not at all (digest's
    atomic write: a temporary file beside it, then renamed)."""
    from digest.send import atomic_write

    try:
        atomic_write(path, data)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot write: {error.strerror or error}") from None
    return path
