"""The crawl's progress line as a person at a terminal sees it (stderr on a real pty)."""

from __future__ import annotations

import os
from pathlib import Path
import pty
import re
import subprocess
import sys
import threading
import time

from click.testing import CliRunner
import pytest

from crawler.registry import dump_registry
from mockserver import MockServer
from stiwatch.cli import cli

FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


def sync(db: Path, registry: Path) -> None:
    """`stiwatch sources sync` in this process: setup; the crawls under test are processes."""
    result = CliRunner().invoke(cli, ["--db", str(db), "sources", "sync", str(registry)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def crawl_on_a_terminal(db: Path, registry: Path, *flags: str) -> tuple[int, str, str]:
    """Run `stiwatch crawl` with stderr on a pseudo-terminal; return its code, stdout, stderr."""
    env = {**os.environ, "STIWATCH_DOWNLOAD_DELAY": "0", "STIWATCH_RETRY_TIMES": "0"}
    sync(db, registry)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stiwatch", "--db", str(db), *flags, "crawl"],
        stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=120)
    reader.join(10)
    os.close(master)
    return process.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def slow_source(tmp_path: Path, request: pytest.FixtureRequest):
    """One feed that answers only after 3.5 s (or the test's ``indirect`` parameter), as a
    slow ministry site does."""
    seconds = getattr(request, "param", 3.5)
    with MockServer() as server:
        @server.route("/slow.xml")
        def slow(handler) -> None:  # noqa: ANN001
            time.sleep(seconds)
            handler.send_body(200, FEED, "application/rss+xml")

        registry = tmp_path / "sources.toml"
        registry.write_text(dump_registry([{
            "id": "slow", "name": "Slow feed", "kind": "feed", "url": server.url("/slow.xml"),
            "country": "JP", "language": "en", "org_type": "news"}]), encoding="utf-8")
        yield registry


def test_progress_shows_at_once_and_counts_seconds_while_a_source_is_in_flight(
        tmp_path: Path, slow_source: Path) -> None:
    code, stdout, terminal = crawl_on_a_terminal(tmp_path / "s.db", slow_source)
    assert code == 0, terminal
    redraws = [part.strip() for part in terminal.split("\r") if part.strip()]
    assert redraws[0].startswith("crawl: ")  # drawn before anything was fetched
    waiting = [r for r in redraws if r.startswith("crawl: 0/1 sources: 0 articles")]
    seconds = {int(m.group(1)) for r in waiting if (m := re.search(r"(\d+)s elapsed", r))}
    assert {0, 1, 2} <= seconds, redraws  # it ticks while the only source is still in flight
    assert any(r.startswith("crawl: 1/1 sources") for r in redraws)
    assert "slow" in stdout  # the summary table is unchanged, on stdout


# The tests that no line is drawn need only one redraw's worth of a crawl in flight (the line
# is drawn at once, then every second), not the three seconds of ticks counted above.
@pytest.mark.parametrize("slow_source", [1.5], indirect=True)
def test_quiet_crawl_draws_no_progress(tmp_path: Path, slow_source: Path) -> None:
    code, stdout, terminal = crawl_on_a_terminal(tmp_path / "s.db", slow_source, "--quiet")
    assert code == 0, terminal
    assert "crawl:" not in terminal and "elapsed" not in terminal


@pytest.mark.parametrize("slow_source", [1.5], indirect=True)
def test_a_crawl_whose_stderr_is_no_terminal_draws_no_progress(tmp_path: Path,
                                                              slow_source: Path) -> None:
    # cron mails stderr and a pipe keeps it: redrawn lines there are noise, so the line is
    # drawn only on a terminal, even without --quiet.
    env = {**os.environ, "STIWATCH_DOWNLOAD_DELAY": "0", "STIWATCH_RETRY_TIMES": "0"}
    db = tmp_path / "s.db"
    sync(db, slow_source)
    result = subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(db), "crawl"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "slow" in result.stdout
    assert "crawl:" not in result.stderr and "elapsed" not in result.stderr
    assert "\r" not in result.stderr


def test_eta_counts_from_the_first_article_not_from_the_listings(monkeypatch) -> None:
    """A crawl reads listings (and robots.txt) before its first article is stored: seconds
    that say nothing of how long the articles take. The demo showed `ETA 13m54s` after its
    first article (6 s of listings, 128 articles to go), then `ETA 13s` one redraw later."""
    from io import StringIO

    from stiwatch import progress as progress_module

    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    line = progress_module.Progress("crawl", total=129, unit="articles", enabled=False,
                                    stream=StringIO())
    clock[0] += 6.0  # the listings
    line.advance(1)
    assert "ETA" not in line.line()  # one article gives no rate yet
    assert line.line().endswith("6s elapsed")
    clock[0] += 0.1 * 43  # then an article every 0.1 s
    line.advance(43)
    assert line.line().endswith("ETA 8s"), line.line()  # 85 articles at 0.1 s
