"""Shared fixtures: an isolated environment, the CLI, real SQLite files, a loopback HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import signal
import sys
from typing import Callable, Iterator

from click.testing import CliRunner, Result
import pytest

from db import FileLock
from mockserver import MockServer
from stiwatch.cli import cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = Path(os.environ.get("STIWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))

# Started in the background by a shell without job control (`nohup make test &`, some CI
# runners), pytest inherits SIGINT ignored, and so would every stiwatch it starts: the Ctrl-C
# tests then failed for that alone. A handler set here is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_data(relative: str) -> Path:
    """A file from ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (third-party data beside the checkout, never committed)")
    return path


def isolate(patch: pytest.MonkeyPatch, folder: Path) -> None:
    """Through ``patch``: no STIWATCH_ setting of the developer's (but the shared data's path),
    and a home of its own in ``folder``, so no default database or model folder either."""
    for name in list(os.environ):
        if name.startswith("STIWATCH_") and name != "STIWATCH_SHARED_DATA":
            patch.delenv(name)
    home = folder / "home"
    home.mkdir()
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's settings, database or model folder."""
    isolate(monkeypatch, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "stiwatch.db"


@pytest.fixture
def stiwatch(db_path: Path) -> Callable[..., Result]:
    """Run `stiwatch --db <tmp> ARGS...` in-process through click's runner."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--db", str(db_path), *args], input=input, env=env,
                             catch_exceptions=False)

    return run


@pytest.fixture
def http_server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/'site' (create files there)."""
    root = tmp_path / "site"
    root.mkdir()
    with MockServer(root) as server:
        yield server


PYTHON = sys.executable


@pytest.fixture
def chromium_page():
    """A Playwright page in Debian's headless Chromium (see tests/browser.py)."""
    from browser import chromium_page as open_page

    with open_page() as page:
        yield page


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str,
              make: Callable[[Path], None]) -> Path:
    """A folder that ``make(folder)`` fills once for the whole test session: under pytest-xdist
    the workers share it (the first makes it, the others wait for it), so a costly input such
    as a trained model is built once, not once per worker. Its users only read it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: the parent outlives the session
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    session = tmp_path_factory.getbasetemp().parent  # the workers' base folders' parent
    folder = session / name
    lock = FileLock(session / f"{name}.lock")
    lock.acquire(wait=900)
    try:
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    finally:
        lock.release()
    return folder


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder name in /dev/shm, on another file system than the tests' files (skipped where
    there is none), removed at the end: /dev/shm is memory, never left filled."""
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev \
            or not os.access(other, os.W_OK):
        pytest.skip("needs /dev/shm, writable and on another file system than the tests'")
    folder = other / f"stiwatch-test-damaged-{os.getpid()}"
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
