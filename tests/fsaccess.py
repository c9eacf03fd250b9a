"""Files and users as an operator's machine has them: read-only files and folders (root needs
the immutable flag too), folders both the store's owner and an analyst reach, commands run as
another Unix user (root only: setpriv), and a writer killed with its last transaction in the
-wal."""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

import pytest

import analysts_store

# For the tests that run commands as other users.
AS_OTHER_USERS = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                    reason="needs root to run commands as other users (setpriv)")
NOBODY = 65534  # the store's readers in these tests; 65532 stands for a second person


@contextmanager
def made_read_only(*paths: Path) -> Iterator[None]:
    """Each of ``paths`` read-only (files 0444, folders 0555) until the block ends; as root,
    which may write any of them, with the immutable flag as well (skipped without chattr)."""
    modes = {path: path.stat().st_mode for path in paths}
    immutable: list[Path] = []
    try:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        if os.geteuid() == 0:
            for path in paths:
                if not shutil.which("chattr") or subprocess.run(
                        ["chattr", "+i", str(path)], capture_output=True).returncode:
                    pytest.skip("root can write any file, and chattr +i is not available here")
                immutable.append(path)
        yield
    finally:
        for path in reversed(immutable):
            subprocess.run(["chattr", "-i", str(path)], check=True)
        for path, mode in modes.items():
            path.chmod(mode)


@contextmanager
def shared_folder(mode: int = 0o755, prefix: str = "stiwatch-shared-") -> Iterator[Path]:
    """A new folder of ``mode`` that other users can reach (pytest's tmp is root's alone),
    removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        folder.chmod(mode)
        yield folder
    finally:
        shutil.rmtree(folder)


def as_user(uid: int) -> list[str]:
    """The prefix that runs a command as user and group ``uid``, with no other groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def stiwatch_as(uid: int, store: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
    """`stiwatch --db STORE ARGS` as user ``uid``, in the store's folder."""
    return subprocess.run([*as_user(uid), sys.executable, "-m", "stiwatch", "--db", str(store),
                           *args], env=env, capture_output=True, text=True, cwd=store.parent,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def late_reader_in_the_wal(db_path: Path) -> None:
    """A reader added by a process killed before its -wal was folded into the file: the
    store's last transaction is in its -wal alone (and a -shm is beside it)."""
    subprocess.run([sys.executable, "-c", (
        "import os, sqlite3\n"
        f"conn = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
        "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "conn.execute(\"INSERT INTO subscribers (email, created_at, updated_at) VALUES "
        "('late@example.org', '2026-11-28T00:00:00Z', '2026-11-28T00:00:00Z')\")\n"
        "os._exit(0)\n")], check=True)
    assert Path(f"{db_path}-wal").stat().st_size > 0


def owners_store(folder: Path) -> tuple[Path, dict[str, str]]:
    """The analysts' store in ``folder``, owned by NOBODY (its owner, who runs the crawls),
    mode 0644; and an environment for the users running commands there, homes in ``folder``."""
    store = folder / "stiwatch.db"
    analysts_store.build(store)
    os.chown(store, NOBODY, NOBODY)
    store.chmod(0o644)
    return store, {**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder / "data")}
