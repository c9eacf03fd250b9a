"""`stiwatch run`: the scheduled job, run as cron runs it (a subprocess) against real servers."""

from __future__ import annotations

from datetime import datetime
import gzip
import json
import os
from pathlib import Path
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from zoneinfo import ZoneInfo

from click.testing import CliRunner
import pytest

from conftest import made_once
from crawler.registry import dump_registry
from mockserver import MockServer
from stiwatch.demo import build_site, load_content, serve
from db import FileLock, LockHeld
from stiwatch.cli import cli

FAST = {"STIWATCH_DOWNLOAD_DELAY": "0", "STIWATCH_AUTOTHROTTLE": "false",
        "STIWATCH_RETRY_TIMES": "0", "STIWATCH_DOWNLOAD_TIMEOUT": "10"}


def stiwatch(db: Path, *args: str, env: dict[str, str] | None = None,
             wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    full_env = {**os.environ, **FAST, **(env or {})}
    command = [sys.executable, "-m", "stiwatch", "--db", str(db), *args]
    if not wait:
        return subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=180)


def write_registry(path: Path, records: list[dict]) -> Path:
    path.write_text(dump_registry(records), encoding="utf-8")
    return path


def set_up(db: Path, *args: str) -> None:
    """`stiwatch --db DB ARGS` in this process, for a test's setup (`sources sync`,
    `subscribers add`): the runs under test stay processes, the setup need not pay for one."""
    result = CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def one_feed(db: Path, folder: Path, source_id: str, url: str) -> None:
    """Sync a registry of one Japanese news feed into the store at ``db``."""
    registry = write_registry(folder / "sources.toml", [{
        "id": source_id, "name": source_id.title(), "kind": "feed", "url": url,
        "country": "JP", "language": "en", "org_type": "news"}])
    set_up(db, "sources", "sync", str(registry))


@pytest.fixture
def small_site(tmp_path: Path):
    """Two demo sources (an RSS feed and an HTML listing) on a real loopback server."""
    sources = [s for s in load_content() if s.id in ("jp-jsa", "osic")]
    root = tmp_path / "site"
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    with serve(root) as server:
        records = build_site(root, server.url, today, sources=sources)
        yield write_registry(tmp_path / "sources.toml", records)


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_run_digest_crawls_classifies_sends_once_and_records_each_run(
        tmp_path: Path, small_site: Path) -> None:
    db, outbox = tmp_path / "s.db", tmp_path / "outbox"
    env = {"STIWATCH_OUTBOX": str(outbox)}
    set_up(db, "sources", "sync", str(small_site))
    set_up(db, "subscribers", "add", "ana@example.org")

    first = stiwatch(db, "--quiet", "run", "--digest", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert [s["step"] for s in report["steps"]] == ["crawl", "classify", "digest"]
    digest = report["steps"][2]
    # `stories` is the deprecated name of policy_items (it counted reports, not stories).
    assert digest["stories"] == digest["policy_items"] >= digest["story_count"] > 0
    items = rows(db, "SELECT count(*) FROM items")[0][0]
    assert items >= 20
    # Every item was classified, and the digest of the last complete week went to the outbox.
    assert rows(db, "SELECT count(*) FROM item_classification"
                    " WHERE classified_at IS NULL")[0][0] == 0
    emls = list(outbox.rglob("*.eml"))
    assert len(emls) == 1 and "ana@example.org" in emls[0].name
    # The sender's lock names the run, as a `digest send` refused by it says (not a `digest
    # send` the operator cannot find among the processes).
    assert Path(f"{db}.digest-send.lock").read_text().split(" ", 1)[1] == "stiwatch run\n"

    second = stiwatch(db, "--quiet", "run", "--digest", "--json", env=env)
    assert second.returncode == 0, second.stderr
    crawl = json.loads(second.stdout)["steps"][0]
    assert crawl["new"] == 0  # conditional GET and known URLs: nothing fetched twice
    assert list(outbox.rglob("*.eml")) == emls  # sent exactly once
    runs = rows(db, "SELECT command, status, exit_code FROM runs ORDER BY id")
    assert runs == [("run --digest", "ok", 0), ("run --digest", "ok", 0)]


def test_a_second_run_exits_at_once_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    """Two `stiwatch run` at once: one works, the other says why it did nothing."""
    db = tmp_path / "s.db"
    release = threading.Event()
    with MockServer() as server:
        @server.route("/slow.xml")
        def slow(handler) -> None:  # noqa: ANN001
            release.wait(60)  # the first run is mid-crawl (holding the lock) until we say so
            handler.send_body(200, b"<rss version='2.0'><channel><title>t</title></channel></rss>",
                              "application/rss+xml")

        one_feed(db, tmp_path, "slow", server.url("/slow.xml"))
        first = stiwatch(db, "run", wait=False)
        deadline = time.monotonic() + 90
        while not server.requested("/slow.xml") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.requested("/slow.xml"), "the first run never reached the feed"
        second = stiwatch(db, "run")
        release.set()
        first_out, first_err = first.communicate(timeout=120)

    assert second.returncode == 3
    # the lock says which command holds it
    assert "`stiwatch run` (pid " in second.stderr and ".lock" in second.stderr
    assert second.stderr.count("\n") == 1  # one clear line, no traceback
    assert first.returncode == 0, first_err
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 1  # the refused run did nothing


def test_a_run_told_to_wait_for_the_lock_runs_once_it_is_free(tmp_path: Path) -> None:
    """Two catch-up timers at boot (systemd's Persistent=true): the digest run waits its turn."""
    db = tmp_path / "s.db"
    with MockServer() as server:
        @server.route("/feed.xml")
        def feed(handler) -> None:  # noqa: ANN001
            handler.send_body(200, b"<rss version='2.0'><channel><title>t</title></channel></rss>",
                              "application/rss+xml")

        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        with FileLock(f"{db}.lock"):  # another run is under way
            # All three at once, so their waits overlap rather than add up (~3 s).
            gave_up = stiwatch(db, "--quiet", "run", "--wait-lock", "1", wait=False)
            said = stiwatch(db, "run", "--wait-lock", "1", wait=False)  # by hand: says why
            waiting = stiwatch(db, "--quiet", "run", "--wait-lock", "60", wait=False)
            _, gave_up_err = gave_up.communicate(timeout=120)
            _, said_err = said.communicate(timeout=120)
            time.sleep(0.5)  # the others gave up after their second: this one waits on
            assert waiting.poll() is None  # still waiting, not refused
        _, err = waiting.communicate(timeout=120)

    assert gave_up.returncode == 3 and "(waited 1s)" in gave_up_err, gave_up_err
    assert gave_up_err.count("\n") == 1  # --quiet: the error alone
    assert said.returncode == 3
    assert said_err.splitlines()[0] == (f"Waiting up to 1s for the lock {db}.lock, held by "
                                        f"another stiwatch run or crawl (pid {os.getpid()})...")
    assert waiting.returncode == 0, err
    assert rows(db, "SELECT status FROM runs") == [("ok",)]


def test_a_refused_run_names_the_lock_holders_pid_not_an_earlier_ones(tmp_path: Path) -> None:
    """The lock file keeps the last holder's pid after it ends; a shorter pid written over a
    longer one must not leave its tail ("pid 4242\n567"), or the user looks for no process."""
    db = tmp_path / "s.db"
    lock = Path(f"{db}.lock")
    lock.write_text("123456789012\n", encoding="utf-8")  # a finished run's, longer than ours
    with FileLock(lock):
        refused = stiwatch(db, "run")
    assert refused.returncode == 3
    assert f"(pid {os.getpid()})" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1


def test_a_lock_held_by_another_program_does_not_name_the_last_stiwatch(tmp_path: Path) -> None:
    """The lock file keeps the last stiwatch holder's pid; a program that is not stiwatch
    (`flock run.lock ...`, as the restore by hand in operations.md does) writes none, so the
    refusal named a `stiwatch restore` that had ended, a pid `ps` no longer shows (or that
    another process has taken by now). It names the process that holds the lock."""
    db = tmp_path / "s.db"
    lock = Path(f"{db}.lock")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = int(ended.stdout)
    lock.write_text(f"{dead} stiwatch restore\n", encoding="utf-8")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, time\n"
        "fd = os.open(%r, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
    ) % str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = stiwatch(db, "run")
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 3
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"Error: a process that is not a stiwatch (pid {holder.pid} ("), line
    assert line.endswith(f"; the lock file still names `stiwatch restore` (pid {dead}), which "
                         f"has ended) holds the lock {lock}; this run did nothing"), line


def test_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    lock_path = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from db import FileLock\n"
        "FileLock(%r).acquire(); print('held', flush=True); time.sleep(60)"
    ) % (str(Path(__file__).parents[1]), str(lock_path))], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld) as info:
        FileLock(lock_path).acquire()
    assert info.value.holder == str(holder.pid)
    holder.kill()
    holder.wait()
    with FileLock(lock_path):  # the kernel released it: no stale lock after a crash
        pass


def test_run_exits_1_when_every_source_fails_but_still_classifies(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with MockServer() as server:
        @server.route("/broken.xml")
        def broken(handler) -> None:  # noqa: ANN001
            handler.send_body(500, b"down for maintenance")

        registry = write_registry(tmp_path / "sources.toml", [{
            "id": "broken", "name": "Broken feed", "kind": "feed",
            "url": server.url("/broken.xml"), "country": "DE", "language": "de",
            "org_type": "ministry"}])
        set_up(db, "sources", "sync", str(registry))
        result = stiwatch(db, "run", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [s["step"] for s in report["steps"]] == ["crawl", "classify"]
    assert report["status"] == "partial"
    assert rows(db, "SELECT status, exit_code FROM runs") == [("partial", 1)]
    assert rows(db, "SELECT consecutive_failures FROM sources WHERE id = 'broken'") == [(1,)]


def test_quiet_run_still_says_what_failed(tmp_path: Path) -> None:
    """The documented crontab runs `--quiet run`; cron mails only when there is output."""
    db = tmp_path / "s.db"
    with MockServer() as server:
        @server.route("/broken.xml")
        def broken(handler) -> None:  # noqa: ANN001
            handler.send_body(500, b"down for maintenance")

        registry = write_registry(tmp_path / "sources.toml", [
            {"id": source_id, "name": source_id, "kind": "feed", "url": server.url(path),
             "country": "DE", "language": "de", "org_type": "ministry"}
            for source_id, path in (("gone", "/gone.xml"), ("broken", "/broken.xml"))])
        set_up(db, "sources", "sync", str(registry))
        run = stiwatch(db, "--quiet", "run")
        crawl = stiwatch(db, "--quiet", "crawl", "--json")

    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == ("Error: crawl: every source failed: broken (HTTP 500 Internal "
                          "Server Error); gone (HTTP 404 Not Found)\n")
    assert crawl.returncode == 1 and json.loads(crawl.stdout)["status"] == "failed"
    assert crawl.stderr == ("Error: every source failed: broken (HTTP 500 Internal Server "
                            "Error); gone (HTTP 404 Not Found)\n")


def test_run_syncs_the_registry_the_sources_setting_names(tmp_path: Path,
                                                          small_site: Path) -> None:
    """The scheduled job crawls what `sources` in stiwatch.toml names, as `crawl` does."""
    db = tmp_path / "s.db"
    missing = stiwatch(db, "--quiet", "run", env={"STIWATCH_SOURCES": str(tmp_path / "nope.toml")})
    assert missing.returncode == 2, missing.stderr
    # the run's command line names no file: the error says which setting did
    assert missing.stderr == (f"Error: {tmp_path / 'nope.toml'}: no such file (sources is set "
                              "by env STIWATCH_SOURCES)\n")
    assert not db.exists()  # refused before anything was written

    result = stiwatch(db, "--quiet", "run", "--json", env={"STIWATCH_SOURCES": str(small_site)})
    assert result.returncode == 0, result.stderr
    crawl = json.loads(result.stdout)["steps"][0]
    assert crawl["sources"] == 2 and crawl["new"] > 0
    assert rows(db, "SELECT id FROM sources ORDER BY id") == [("jp-jsa",), ("osic",)]


def test_a_run_stopped_by_bad_input_is_recorded_as_failed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    result = stiwatch(db, "--quiet", "run")  # a new store: nothing to crawl
    assert result.returncode == 2 and "no enabled sources" in result.stderr
    assert result.stderr.count("\n") == 1
    [(status, exit_code, steps)] = rows(db, "SELECT status, exit_code, steps FROM runs")
    assert (status, exit_code) == ("failed", 2)  # not `ok` for a run that did nothing
    assert "no enabled sources" in json.loads(steps)[-1]["summary"]


# What docs/operations.md promises of a log line.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                      r"[\w.]+: \S")


def test_crawl_log_lines_go_to_the_file_one_per_event_and_only_warnings_to_stderr(
        tmp_path: Path, small_site: Path) -> None:
    db, log_file = tmp_path / "s.db", tmp_path / "logs" / "stiwatch.log"
    env = {"STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"}
    set_up(db, "sources", "sync", str(small_site))
    result = stiwatch(db, "--quiet", "crawl", env=env)
    assert result.returncode == 0, result.stderr
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == []
    assert any(" INFO scrapy." in line and "Versions: {" in line for line in lines)
    assert any(" INFO crawler." in line for line in lines)
    assert " INFO " not in result.stderr  # cron mails stderr: only what needs a look


def test_an_oversized_article_is_stored_partial_without_a_warning_on_stderr(
        tmp_path: Path) -> None:
    """Expected and recorded on the item: cron must not mail it on every run, and the page
    is not downloaded again (up to the limit) until the limit changes."""
    db, log_file = tmp_path / "s.db", tmp_path / "stiwatch.log"
    page = ("<html><body><article><h1>A long report</h1>"
            + "<p>Pages and pages of annexes.</p>" * 5000 + "</article></body></html>").encode()
    with MockServer() as server:
        @server.route("/feed.xml")
        def feed(handler) -> None:  # noqa: ANN001
            items = "".join(f"<item><title>{name}</title><link>{server.url(path)}</link></item>"
                            for name, path in (("Big", "/big.html"), ("Bomb", "/bomb.html")))
            handler.send_body(200, f"<rss version='2.0'><channel><title>t</title>{items}"
                              "</channel></rss>".encode(), "application/rss+xml")

        @server.route("/big.html")
        def big(handler) -> None:  # noqa: ANN001
            handler.send_body(200, page)

        @server.route("/bomb.html")
        def bomb(handler) -> None:  # noqa: ANN001
            handler.send_body(200, gzip.compress(page), headers={"Content-Encoding": "gzip"})

        def fetched() -> list[int]:
            return [len(server.requested("/big.html")), len(server.requested("/bomb.html"))]

        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        env = {"STIWATCH_MAX_RESPONSE_SIZE": "50000"}
        logged = stiwatch(db, "--quiet", "run", env={
            **env, "STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"})
        assert fetched() == [1, 1]
        again = stiwatch(db, "--quiet", "run", env=env)
        assert fetched() == [1, 1]  # the same limit would refuse them again
        stored = rows(db, "SELECT status, fetch_error, fetch_attempts FROM items ORDER BY url")
        raised = stiwatch(db, "--quiet", "run", env={"STIWATCH_MAX_RESPONSE_SIZE": "1000000"})
        assert fetched() == [2, 2]

    assert (logged.returncode, logged.stderr) == (0, "")
    assert (again.returncode, again.stderr) == (0, "")
    assert raised.returncode == 0, raised.stderr
    # Still in the log file, as the INFO line it is.
    lines = [line for line in log_file.read_text(encoding="utf-8").splitlines()
             if "larger than download max size" in line or "exceeded DOWNLOAD_MAXSIZE" in line]
    assert len(lines) == 2 and all(" INFO scrapy." in line for line in lines), lines
    assert stored == [("partial", "response too large (over the 50,000 byte limit)", 1)] * 2
    assert rows(db, "SELECT status, fetch_error FROM items ORDER BY url") == [
        ("complete", None)] * 2


def test_bad_input_stops_a_run_before_it_crawls_and_the_stop_is_recorded(tmp_path: Path) -> None:
    """A registry or lexicon file that cannot be read stops the run at once (exit 2), before
    minutes of crawling; `runs` (and so `status`) shows that the job stopped working."""
    db = tmp_path / "s.db"
    bad_registry = tmp_path / "bad.toml"
    bad_registry.write_text("[[source]]\nid = 'x'\n", encoding="utf-8")
    bad_lexicon = tmp_path / "domains.toml"
    bad_lexicon.write_text("[domain.quantum\n", encoding="utf-8")
    with MockServer() as server:
        @server.route("/feed.xml")
        def feed(handler) -> None:  # noqa: ANN001
            handler.send_body(200, b"<rss version='2.0'><channel><title>t</title></channel>"
                              b"</rss>", "application/rss+xml")

        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        registry = stiwatch(db, "--quiet", "run", env={"STIWATCH_SOURCES": str(bad_registry)})
        lexicon = stiwatch(db, "--quiet", "run", env={"STIWATCH_DOMAINS_LEXICON": str(bad_lexicon)})
        requested = len(server.requested("/feed.xml"))
    assert registry.returncode == 2 and registry.stderr.startswith(f"Error: {bad_registry}")
    assert lexicon.returncode == 2
    assert lexicon.stderr.splitlines() == [
        f"Error: lexicon file {bad_lexicon} is not valid TOML: Expected ']' at the end of a "
        f"table declaration (at line 1, column 16). (domains_lexicon is set by env "
        "STIWATCH_DOMAINS_LEXICON)"]
    assert requested == 0
    runs = rows(db, "SELECT command, status, exit_code, steps FROM runs ORDER BY id")
    assert [run[:3] for run in runs] == [("run", "failed", 2)] * 2
    assert json.loads(runs[1][3])[0]["summary"].startswith(f"lexicon file {bad_lexicon}")
    # `status` names such a stop as operations.md does, apart from a step that failed
    status = stiwatch(db, "status")
    assert re.search(r"failed\s+2\s+\S+\s+start:error$", status.stdout, re.M), status.stdout


FIXTURES = Path(__file__).parent / "fixtures"
POLICY_ARTICLE = (
    "<html><body><article><h1>Japan approves a national quantum technology strategy</h1>"
    "<p>The Japanese government approved a national strategy for quantum technology on "
    "Tuesday. The Ministry of Education, Culture, Sports, Science and Technology (MEXT) will "
    "fund university research centres and open a competitive call for proposals, the Cabinet "
    "Office said. Open access to publications from the programme will be required.</p>"
    "</article></body></html>").encode()


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the small STIP fixture, as `train` saves it: once for the session
    (the tests copy it before breaking it)."""
    def train(folder: Path) -> None:
        done = stiwatch(folder / "train.db", "--quiet", "train",
                        "--stip", str(FIXTURES / "stip" / "stip_small.csv"),
                        "--negatives", str(FIXTURES / "stip" / "nonpolicy_news.rss"),
                        "--model-dir", str(folder / "models"))
        assert done.returncode == 0, done.stderr

    return made_once(tmp_path_factory, "test_run-trained", train) / "models"


def policy_feed(server: MockServer) -> None:
    """``/feed.xml``: one item, an English STI-policy article at ``/quantum.html``."""
    @server.route("/feed.xml")
    def feed(handler) -> None:  # noqa: ANN001
        handler.send_body(200, (
            "<rss version='2.0'><channel><title>t</title><item><title>Japan approves a "
            f"quantum strategy</title><link>{server.url('/quantum.html')}</link></item>"
            "</channel></rss>").encode(), "application/rss+xml")

    @server.route("/quantum.html")
    def article(handler) -> None:  # noqa: ANN001
        handler.send_body(200, POLICY_ARTICLE)


def copy_model(trained: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in trained.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def for_old_sklearn(models: Path, stem: str) -> str:
    """Make the saved model (or country model) one made by scikit-learn 0.24.2; the error."""
    meta = json.loads((models / f"{stem}.json").read_text())
    installed = meta["sklearn_version"]
    meta["sklearn_version"] = "0.24.2"
    (models / f"{stem}.json").write_text(json.dumps(meta))
    what = "model" if stem == "model" else "country model"
    return (f"{models / (stem + '.json')}: the {what} was made with scikit-learn 0.24.2 "
            f"(installed: {installed}); retrain it with `stiwatch train --stip FILE` (the "
            "STIP Compass CSV export)")


def without_model_file(models: Path, stem: str) -> str:
    (models / f"{stem}.joblib").unlink()
    return (f"{models / (stem + '.joblib')}: missing (only {stem}.json is there); retrain "
            "with `stiwatch train --stip FILE`")


@pytest.mark.parametrize("stem, break_it", [
    ("model", for_old_sklearn), ("countries", for_old_sklearn), ("model", without_model_file)])
def test_a_model_loading_would_refuse_stops_a_run_before_it_crawls(
        tmp_path: Path, trained_model: Path, stem: str, break_it) -> None:  # noqa: ANN001
    """Found from the saved model's metadata (and its file being there), before minutes of
    crawling, though the model itself is loaded only after the crawl; the message says to
    retrain."""
    db, models = tmp_path / "s.db", copy_model(trained_model, tmp_path / "old-model")
    message = break_it(models, stem)
    with MockServer() as server:
        policy_feed(server)
        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        result = stiwatch(db, "--quiet", "run", env={"STIWATCH_MODEL_DIR": str(models)})
        requested = len(server.requested("/feed.xml"))
    assert (result.returncode, result.stderr) == (2, f"Error: {message}\n")
    assert requested == 0
    [(status, exit_code, steps)] = rows(db, "SELECT status, exit_code, steps FROM runs")
    assert (status, exit_code) == ("failed", 2)
    assert json.loads(steps) == [{"step": "start", "ok": False, "status": "error",
                                  "summary": message}]


def test_a_missing_model_folder_the_settings_name_stops_a_run_before_it_crawls(
        tmp_path: Path) -> None:
    """A typo in model_dir made every scheduled run classify with the lexicon rules, unsaid
    under --quiet; only the default folder may be absent (no model trained yet)."""
    db, typo = tmp_path / "s.db", tmp_path / "modles"
    message = (f"{typo}: no such model folder (model_dir is set by env STIWATCH_MODEL_DIR): a "
               "mistyped path? Create the folder to classify with the lexicon rules until "
               "`stiwatch train` saves a model in it")
    with MockServer() as server:
        policy_feed(server)
        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        result = stiwatch(db, "--quiet", "run", env={"STIWATCH_MODEL_DIR": str(typo)})
        requested = len(server.requested("/feed.xml"))
        typo.mkdir()  # an existing folder without a model: the rules, as before
        fixed = stiwatch(db, "--quiet", "run", env={"STIWATCH_MODEL_DIR": str(typo)})
    assert (result.returncode, result.stderr) == (2, f"Error: {message}\n")
    assert requested == 0
    assert fixed.returncode == 0, fixed.stderr
    runs = rows(db, "SELECT status, exit_code, steps FROM runs ORDER BY id")
    assert [run[:2] for run in runs] == [("failed", 2), ("ok", 0)]
    assert json.loads(runs[0][2]) == [{"step": "start", "ok": False, "status": "error",
                                       "summary": message}]
    assert rows(db, "SELECT method, value FROM tags WHERE facet = 'policy'") == [("rules", "1")]


def test_a_damaged_model_file_stops_the_run_after_its_crawl_and_keeps_what_it_fetched(
        tmp_path: Path, trained_model: Path) -> None:
    """Only loading finds a model file damaged on disk (its metadata intact), and the model is
    loaded after the crawl: the fetched items stay, for the next run to classify."""
    db, models = tmp_path / "s.db", copy_model(trained_model, tmp_path / "damaged")
    (models / "model.joblib").write_bytes(b"not a model")
    with MockServer() as server:
        policy_feed(server)
        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        damaged = stiwatch(db, "--quiet", "run", env={"STIWATCH_MODEL_DIR": str(models)})
        fixed = stiwatch(db, "--quiet", "run", env={"STIWATCH_MODEL_DIR": str(trained_model)})
    assert damaged.returncode == 2
    [error] = damaged.stderr.splitlines()
    assert error.startswith(f"Error: {models / 'model.joblib'}: cannot load the model (")
    assert error.endswith("; retrain with `stiwatch train --stip FILE`")
    assert fixed.returncode == 0, fixed.stderr
    runs = rows(db, "SELECT status, exit_code, steps FROM runs ORDER BY id")
    assert [run[:2] for run in runs] == [("failed", 2), ("ok", 0)]
    first = json.loads(runs[0][2])
    assert [(s["step"], s["ok"]) for s in first] == [("crawl", True), ("classify", False)]
    assert first[0]["new"] == 1 and first[1]["summary"] == error.removeprefix("Error: ")
    assert json.loads(runs[1][2])[1]["summary"].startswith("1 item classified with model ")


def test_a_run_classifies_new_items_with_the_model_and_loads_none_with_nothing_new(
        tmp_path: Path, trained_model: Path) -> None:
    """The model is loaded after the crawl, when there is something to classify: a scheduled
    run that found nothing new paid seconds (and ~200 MB with a full model) for nothing."""
    db = tmp_path / "s.db"
    env = {"STIWATCH_MODEL_DIR": str(trained_model)}
    version = json.loads((trained_model / "model.json").read_text())["version"]
    with MockServer() as server:
        policy_feed(server)
        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        first = stiwatch(db, "run", "--json", env=env)
        second = stiwatch(db, "run", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert f"Classifier: model {version} (trained " in first.stderr
    classify = json.loads(first.stdout)["steps"][1]
    assert classify["model"] == version
    assert classify["summary"].startswith(f"1 item classified with model {version} ")
    assert rows(db, "SELECT method, value FROM tags WHERE facet = 'policy'") == [("model", "1")]

    assert second.returncode == 0, second.stderr
    assert "Classifier:" not in second.stderr
    nothing = ("0 items classified: none new since the last classify (the classifier was not "
               "loaded)")
    assert json.loads(second.stdout)["steps"][1]["summary"] == nothing
    assert f"classify: {nothing}" in second.stderr
    steps = rows(db, "SELECT steps FROM runs ORDER BY id")[-1][0]
    assert json.loads(steps)[1]["summary"] == nothing  # what the runs table keeps


# The article-extraction libraries, as `python -X importtime` names them when they load.
EXTRACTION_LIBRARIES = re.compile(r"\|\s+(trafilatura|htmldate|py3langid)$", re.MULTILINE)


def test_a_run_with_nothing_new_to_extract_loads_no_extraction_library(
        tmp_path: Path, small_site: Path) -> None:
    """A scheduled run whose sources answer 304 Not Modified extracts no article: its crawler
    paid about 1 s (more on a busy host) for importing and warming up trafilatura, htmldate and
    the language model all the same. Every process of the command (the crawler's too) lists
    what it imports on stderr."""
    db = tmp_path / "s.db"
    set_up(db, "sources", "sync", str(small_site))
    importtime = {"PYTHONPROFILEIMPORTTIME": "1"}
    first = stiwatch(db, "run", "--json", env=importtime)
    second = stiwatch(db, "run", "--json", env=importtime)

    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["steps"][0]["new"] > 0
    # The check sees the crawler's imports: extracting articles loads all three.
    assert set(EXTRACTION_LIBRARIES.findall(first.stderr)) == {
        "trafilatura", "htmldate", "py3langid"}
    assert second.returncode == 0, second.stderr[-2000:]
    crawl = json.loads(second.stdout)["steps"][0]
    assert crawl["new"] == crawl["updated"] == crawl["errors"] == 0
    assert EXTRACTION_LIBRARIES.findall(second.stderr) == []


@pytest.mark.parametrize("lock_file, reason", [
    ("afile/x.lock", "{tmp}/afile is a file, not a folder"),
    (".", "Is a directory"),
])
def test_a_lock_file_that_cannot_be_used_is_one_error(tmp_path: Path, lock_file: str,
                                                      reason: str) -> None:
    db = tmp_path / "s.db"
    (tmp_path / "afile").write_text("")
    path = (tmp_path / lock_file) if lock_file != "." else tmp_path
    result = stiwatch(db, "--quiet", "run", env={"STIWATCH_LOCK_FILE": str(path)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}: cannot use it as a lock file ({reason.format(tmp=tmp_path)}) "
        "(lock_file is set by env STIWATCH_LOCK_FILE); this run did nothing"]
    assert not db.exists()



def _as_unprivileged(command: list[str]) -> list[str]:
    """``command`` as it runs for a user whom file modes bind: root ignores them unless it
    gives up CAP_DAC_OVERRIDE (setpriv); skipped when neither can be had."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    caps = "-dac_override,-dac_read_search"
    if setpriv is None or subprocess.run([setpriv, f"--bounding-set={caps}", "true"],
                                         capture_output=True).returncode != 0:
        pytest.skip("needs a user whom file modes bind (setpriv, as root)")
    return [setpriv, f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
            *command]


def test_a_lock_file_in_a_folder_the_user_cannot_write_says_what_to_check(
        tmp_path: Path) -> None:
    """`install -d -o stiwatch /var/lib/stiwatch/models` leaves /var/lib/stiwatch root's: the
    run said only "(Permission denied)", not what to look at nor as whom it ran."""
    folder = tmp_path / "lib"
    folder.mkdir()
    folder.chmod(0o555)
    lock = folder / "run.lock"
    command = _as_unprivileged([sys.executable, "-m", "stiwatch", "--db",
                                str(tmp_path / "s.db"), "--quiet", "run"])
    try:
        result = subprocess.run(command, env={**os.environ, **FAST, "STIWATCH_LOCK_FILE":
                                              str(lock)}, capture_output=True, text=True,
                                timeout=60)
    finally:
        folder.chmod(0o755)
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"Error: {lock}: cannot use it as a lock file (Permission denied: user {user} may not "
        "create or open it; check the owner and mode of the file and of its folder) (lock_file "
        "is set by env STIWATCH_LOCK_FILE); this run did nothing"]
    assert not lock.exists()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real file system of its own (tmpfs) whose size the test sets with ``resize(bytes)``:
    a disk that fills up. Needs root (mount); skipped otherwise."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    def resize(size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True)

    try:
        yield mount_point, resize
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stops_the_crawl_with_one_error_and_the_next_run_stores_the_rest(
        tmp_path: Path, small_site: Path, small_disk) -> None:
    """The disk fills up during the crawl: each batch failed with its own ERROR line (a
    traceback in each for the crawl's bookkeeping) while the crawl fetched on for nothing,
    then the crawler died "before reporting". Now it stops at the first refused write and
    says why in one line; the next run, with room again, stores everything."""
    reference = tmp_path / "reference.db"
    assert stiwatch(reference, "--quiet", "crawl", "--sources", str(small_site)).returncode == 0
    articles = rows(reference, "SELECT count(*) FROM items")[0][0]
    disk, resize = small_disk
    db = disk / "s.db"
    set_up(db, "sources", "sync", str(small_site))
    used = sum(f.stat().st_size for f in disk.iterdir())
    resize(used + 96 * 1024)
    full = stiwatch(db, "--quiet", "run",
                    env={"STIWATCH_SCRAPY_SETTINGS": '{"STIWATCH_BATCH_SIZE": 2}'})

    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr and full.stdout == "", full.stderr
    lines = full.stderr.splitlines()
    assert len(lines) == 2, full.stderr  # the crawler's one ERROR line, then the command's
    assert " ERROR crawler.pipelines: storing " in lines[0] and "the crawl stops" in lines[0]
    assert lines[1] == (f"Error: the crawl stopped: {db}: cannot write to the database: the "
                        "disk is full")
    assert rows(db, "SELECT count(*) FROM items")[0][0] < articles

    resize(64 * 1024 * 1024)
    again = stiwatch(db, "--quiet", "run")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert rows(db, "SELECT count(*) FROM items")[0][0] == articles
    assert [row[0] for row in rows(db, "SELECT status FROM crawl_runs ORDER BY id")][-1] == "ok"


def test_a_lock_file_on_a_full_disk_is_one_error(tmp_path: Path, small_disk) -> None:
    """Writing the pid into the lock file failed with a traceback when its disk was full."""
    disk, resize = small_disk
    resize(64 * 1024)
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(filler, b"x" * 4096)
    os.close(filler)
    lock = disk / "run.lock"
    result = stiwatch(tmp_path / "s.db", "--quiet", "run", env={"STIWATCH_LOCK_FILE": str(lock)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {lock}: cannot use it as a lock file (No space left on device) (lock_file is "
        "set by env STIWATCH_LOCK_FILE); this run did nothing"]


def test_the_log_says_how_each_run_ended(tmp_path: Path) -> None:
    """The log had "run 1 started" and a line per step, but no line saying the run was over,
    nor with which status and exit code, unless it stopped early."""
    db, log_file = tmp_path / "s.db", tmp_path / "stiwatch.log"
    with MockServer() as server:
        one_feed(db, tmp_path, "gone", server.url("/gone.xml"))
        result = stiwatch(db, "--quiet", "run", env={"STIWATCH_LOG_FILE": str(log_file),
                                                     "STIWATCH_LOG_LEVEL": "INFO"})
    assert result.returncode == 1
    lines = [line for line in log_file.read_text().splitlines() if " stiwatch.run: " in line]
    assert lines[0].endswith(" INFO stiwatch.run: run 1 started: run")
    assert lines[-1].endswith(" INFO stiwatch.run: run 1 finished: partial, exit 1")
    assert all(LOG_LINE.match(line) for line in lines)


def test_run_json_is_one_object_even_when_the_run_ends_early(tmp_path: Path) -> None:
    """`run --json` printed nothing on stdout when the lock was held (exit 3), the input was
    bad (exit 2) or a signal stopped it: a monitoring script reading it found no JSON."""
    db = tmp_path / "s.db"
    nothing = stiwatch(db, "--quiet", "run", "--json")  # a new store: no sources to crawl
    assert nothing.returncode == 2
    report = json.loads(nothing.stdout)
    assert report["run"] == 1 and report["status"] == "failed" and report["exit_code"] == 2
    assert "no enabled sources" in report["error"]
    assert [(step["step"], step["status"]) for step in report["steps"]] == [("crawl", "error")]
    assert nothing.stderr.splitlines() == [f"Error: {report['error']}"]

    with FileLock(f"{db}.lock"):
        locked = stiwatch(db, "--quiet", "run", "--json")
    assert locked.returncode == 3
    report = json.loads(locked.stdout)
    assert (report["run"], report["status"], report["exit_code"]) == (None, "locked", 3)
    assert report["error"].startswith(f"another stiwatch run or crawl (pid {os.getpid()}) holds "
                                      "the lock")

    release = threading.Event()
    with MockServer() as server:
        @server.route("/slow.xml")
        def slow(handler) -> None:  # noqa: ANN001
            release.wait(60)
            handler.send_body(200, b"<rss version='2.0'><channel><title>t</title></channel></rss>",
                              "application/rss+xml")

        one_feed(db, tmp_path, "slow", server.url("/slow.xml"))
        # Stopped, the crawl lets the held download run out its timeout: 2 s, not FAST's 10.
        running = stiwatch(db, "--quiet", "run", "--json", wait=False,
                           env={"STIWATCH_DOWNLOAD_TIMEOUT": "2"})
        deadline = time.monotonic() + 90
        while not server.requested("/slow.xml") and time.monotonic() < deadline:
            time.sleep(0.1)
        running.terminate()  # systemctl stop
        out, err = running.communicate(timeout=120)
        release.set()
    assert running.returncode == 143, err
    report = json.loads(out)
    assert (report["run"], report["status"], report["exit_code"]) == (2, "failed", 143)
    assert report["steps"] == [{"step": "crawl", "ok": False, "summary": "interrupted by SIGTERM",
                                "status": "interrupted"}]


def test_a_crawl_by_hand_while_a_run_crawls_does_nothing_and_says_so(tmp_path: Path) -> None:
    """`stiwatch crawl` took no lock: started by hand during the scheduled run, it fetched
    every article the run was fetching (130 requests each on the operator's 9 sources), twice
    the load on every site, and found them stored ("unchanged")."""
    db = tmp_path / "s.db"
    with MockServer() as server:
        one_feed(db, tmp_path, "feed", server.url("/feed.xml"))
        with FileLock(f"{db}.lock"):  # the scheduled run, mid-crawl
            crawl = stiwatch(db, "crawl")
        requested = len(server.requested("/feed.xml"))
    assert crawl.returncode == 3
    assert crawl.stderr.splitlines() == [
        f"Error: another stiwatch run or crawl (pid {os.getpid()}) holds the lock {db}.lock; "
        "this crawl did nothing"]
    assert requested == 0


def test_each_failing_source_is_one_log_line_and_nothing_on_stderr(tmp_path: Path) -> None:
    """A source that failed while the others worked was only inside the crawl's one-line
    summary dict (its id, without the reason): no line to grep for it."""
    db, log_file = tmp_path / "s.db", tmp_path / "stiwatch.log"
    with MockServer() as server:
        @server.route("/feed.xml")
        def feed(handler) -> None:  # noqa: ANN001
            handler.send_body(200, b"<rss version='2.0'><channel><title>t</title></channel>"
                              b"</rss>", "application/rss+xml")

        registry = write_registry(tmp_path / "sources.toml", [
            {"id": source_id, "name": source_id, "kind": "feed", "url": server.url(path),
             "country": "DE", "language": "de", "org_type": "ministry"}
            for source_id, path in (("works", "/feed.xml"), ("gone", "/gone.xml"))])
        set_up(db, "sources", "sync", str(registry))
        result = stiwatch(db, "--quiet", "run", env={"STIWATCH_LOG_FILE": str(log_file),
                                                     "STIWATCH_LOG_LEVEL": "INFO"})
    assert result.returncode == 0 and result.stderr == ""  # routine: not mailed by cron
    lines = [line for line in log_file.read_text().splitlines() if "source gone" in line]
    assert len(lines) == 1 and LOG_LINE.match(lines[0])
    assert lines[0].endswith(" INFO crawler.pipelines: source gone failed: HTTP 404 Not Found")


def test_a_run_stopped_while_the_server_holds_a_digest_names_the_reader_left_in_doubt(
        tmp_path: Path, small_site: Path) -> None:
    """`systemctl stop` (or the unit's TimeoutStartSec) during Monday's digest step, while the
    server has a reader's whole message: that delivery is left in doubt, which no later run
    settles. The journal's one line said only "interrupted by SIGTERM during the digest step";
    it now names the reader and the command that settles it."""
    from smtpserver import SmtpServer

    db = tmp_path / "s.db"
    set_up(db, "sources", "sync", str(small_site))
    set_up(db, "subscribers", "add", "ana@example.org")
    with SmtpServer() as smtp:
        smtp.behaviour["ana@example.org"] = "block"
        run = stiwatch(db, "--quiet", "run", "--digest", env=smtp.settings_env(), wait=False)
        try:
            assert smtp.blocked.wait(120), run.communicate(timeout=5)
            time.sleep(0.5)  # the server has the message; the run awaits its answer
            run.terminate()
            _out, err = run.communicate(timeout=30)
        finally:
            smtp.release()
    assert run.returncode == 143
    [line] = err.splitlines()
    week = rows(db, "SELECT period FROM deliveries")[0][0]
    assert line == (
        "Error: interrupted by SIGTERM during the digest step; run 1 recorded as failed; in "
        "doubt ana@example.org (the server may have it: `stiwatch digest resolve "
        f"ana@example.org --week {week} --sent` once it is known to have arrived, or "
        "`--resend`)")
