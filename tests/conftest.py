"""Shared fixtures: an isolated environment, the CLI, real SQLite files, a loopback HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import sys
from typing import Callable

from click.testing import CliRunner, Result
import pytest

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


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's settings, database or model folder."""
    for name in list(os.environ):
        if name.startswith("STIWATCH_") and name != "STIWATCH_SHARED_DATA":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
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
