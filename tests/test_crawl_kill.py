"""A crawl or run killed or stopped half-way: the crawler stops with it, nothing is stored twice,
and the store says what happened."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from crawlsite import FAST, build_site, registry, rows
from db import FileLock

ARTICLE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Story {n}</title>
</head><body><nav><a href="/">Home</a></nav><article><h1>Research funding story number {n}</h1>
<p>Story {n}: the research ministry announced programme {n} today, describing how grant {n}
will support {n} laboratories, doctoral training and partnerships with companies abroad.</p>
<p>Officials said programme {n} follows review {n}, which found that project {n} met its goals
for open data, research security and cooperation with {n} partner agencies in other regions.</p>
<p>A call for proposals under scheme {n} opens next month; evaluation panel {n} will publish
its decisions before the summer, with a budget line numbered {n} in the annual plan.</p>
</article></body></html>"""
COUNT = 16


def _site(server, pace):
    """``pace["seconds"]``: how long each article takes to answer (changeable mid-test)."""
    base = build_site(server)
    entries = "".join(
        f"<item><title>Story {n}</title><link>{base}/slow/{n}.html</link>"
        f"<pubDate>Tue, 24 Nov 2026 10:{n:02d}:00 GMT</pubDate></item>"
        for n in range(COUNT))
    (server.root / "slow.xml").write_text(
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Slow</title>{entries}"
        "</channel></rss>")

    @server.route("/slow/")
    def slow(handler):
        pass

    def article(handler):
        time.sleep(pace["seconds"])
        n = int(handler.path.rsplit("/", 1)[1].split(".")[0])
        handler.send_body(200, ARTICLE.format(n=n).encode())

    for n in range(COUNT):
        server.routes[f"/slow/{n}.html"] = article
    return base


def _count(db_path):
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_killed_crawl_then_rerun_stores_every_article_once(stiwatch, http_server, tmp_path,
                                                            db_path):
    pace = {"seconds": 0.12}  # slow enough to stop the crawl mid-way
    base = _site(http_server, pace)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "slow", "kind": "feed", "url": f"{base}/slow.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    env = {**os.environ, **FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1",
           "STIWATCH_SCRAPY_SETTINGS": json.dumps({"STIWATCH_BATCH_SIZE": 3,
                                                   "STIWATCH_BATCH_SECONDS": 60})}
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), "crawl"],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _count(db_path) < 3 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        stored = _count(db_path)
        assert 0 < stored < COUNT, stored  # really half-way
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the command, its fork server and the crawl
        child.wait()

    pace["seconds"] = 0  # the rerun need not be slow
    result = stiwatch("crawl", "--json", env=FAST)

    assert result.exit_code == 0, result.output
    # The killed run is no longer shown as running; nobody saw it finish.
    killed, rerun = rows(db_path, "SELECT * FROM crawl_runs ORDER BY id")
    assert (killed["status"], killed["finished_at"]) == ("interrupted", None)
    assert rerun["status"] == "ok"
    report = json.loads(result.stdout)["sources"][0]
    assert report["unchanged"] >= stored
    assert report["new"] + report["duplicates"] == COUNT - report["unchanged"]
    urls = [r["url"] for r in rows(db_path, "SELECT url, status FROM items WHERE status = "
                                            "'complete'")]
    assert sorted(urls) == sorted(f"{base}/slow/{n}.html" for n in range(COUNT))
    assert rows(db_path, "SELECT count(*) AS n FROM items")[0]["n"] == COUNT


def test_ctrl_c_stops_cleanly_and_marks_the_run_interrupted(stiwatch, http_server, tmp_path,
                                                            db_path):
    pace = {"seconds": 0.12}  # slow enough to stop the crawl mid-way
    base = _site(http_server, pace)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "slow", "kind": "feed", "url": f"{base}/slow.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    env = {**os.environ, **FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1"}
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), "crawl"],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not http_server.requested("/slow/2.html") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    try:
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == 130 and "Traceback" not in stderr, stderr
    # says that nothing fetched was lost, not only that it was interrupted
    assert stderr.splitlines()[-1] == ("Error: interrupted by SIGINT: the crawl stopped; what "
                                       "it fetched is stored, and the next crawl fetches the rest")
    [run] = rows(db_path, "SELECT * FROM crawl_runs")
    assert run["status"] == "interrupted" and run["finished_at"]
    # A graceful stop finishes the downloads already under way and writes what it has.
    assert rows(db_path, "SELECT count(*) AS n FROM items")[0]["n"] > 0

    pace["seconds"] = 0  # the rerun need not be slow
    assert stiwatch("crawl", env=FAST).exit_code == 0
    assert rows(db_path, "SELECT count(*) AS n FROM items WHERE status = 'complete'")[0]["n"] \
        == COUNT


# More articles than Scrapy hands its downloader at once (CONCURRENT_REQUESTS, 16): a crawl
# that really stopped leaves some of these never requested.
HELD = 40


def _slow_feed(server, name: str, count: int, wait) -> str:
    """A feed of ``count`` articles under /``name``/, each answered after ``wait()`` returns;
    the site's base URL."""
    base = build_site(server)
    entries = "".join(
        f"<item><title>Story {n}</title><link>{base}/{name}/{n}.html</link>"
        f"<pubDate>Tue, 24 Nov 2026 10:{n:02d}:00 GMT</pubDate></item>" for n in range(count))
    (server.root / f"{name}.xml").write_text(
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>{name.title()}</title>"
        f"{entries}</channel></rss>")

    def article(handler):
        wait()
        n = int(handler.path.rsplit("/", 1)[1].split(".")[0])
        handler.send_body(200, ARTICLE.format(n=n).encode())

    for n in range(count):
        server.routes[f"/{name}/{n}.html"] = article
    return base


def _blocked_site(server, release):
    """A feed whose articles are held until ``release`` is set: the crawl is mid-way."""
    return _slow_feed(server, "held", HELD, lambda: release.wait(30))


def _articles_requested(server):
    return sum(len(server.requested(f"/held/{n}.html")) for n in range(HELD))


def _start_run(stiwatch, server, tmp_path, db_path, release, command="run"):
    base = _blocked_site(server, release)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "held", "kind": "feed", "url": f"{base}/held.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    env = {**os.environ, **FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1"}
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), command],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _articles_requested(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _articles_requested(server), "the crawl never reached an article"
    return child


def test_status_and_the_lock_error_name_the_same_pid_the_one_to_stop(
        stiwatch, http_server, tmp_path, db_path):
    """`stiwatch status` showed a running crawl's pid=N where a second crawl's lock error said
    (pid M): N was the crawler child, M the `stiwatch crawl` a user stops. Both say M now, the
    crawler's own pid labelled beside it."""
    release = threading.Event()
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release, command="crawl")
    try:
        second = stiwatch("crawl")
        table = stiwatch("status").output
        report = json.loads(stiwatch("status", "--json").output)
    finally:
        os.kill(child.pid, signal.SIGTERM)  # `kill PID` with the pid both name
        release.set()
        try:
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)

    assert second.exit_code == 3
    assert f"`stiwatch crawl` (pid {child.pid}) holds the lock" in second.output
    [run] = report["runs"]
    crawler_pid = run["stats"]["crawler_pid"]
    assert run["stats"]["pid"] == child.pid != crawler_pid
    [line] = [line for line in table.splitlines() if " running " in line]
    assert line.endswith(f"pid={child.pid} crawler_pid={crawler_pid}")
    assert child.returncode == 143, stderr  # that pid stopped the crawl
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted"


def test_sigterm_stops_the_crawler_records_the_run_then_frees_the_lock(
        stiwatch, http_server, tmp_path, db_path):
    """What systemd does on `systemctl stop` or TimeoutStartSec (with KillMode=mixed, as
    documented: the signal reaches the command, not its crawler)."""
    release = threading.Event()
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release)
    os.kill(child.pid, signal.SIGTERM)
    release.set()  # the downloads under way finish; a graceful stop starts no new ones
    try:
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr, stderr
    [run] = rows(db_path, "SELECT * FROM runs")
    assert (run["status"], run["exit_code"]) == ("failed", 143)
    assert json.loads(run["steps"])[-1]["summary"] == "interrupted by SIGTERM"
    # The crawler had stopped (and said so) before the command exited.
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"]
    requested = _articles_requested(http_server)
    time.sleep(1)
    assert _articles_requested(http_server) == requested < HELD
    with FileLock(f"{db_path}.lock"):  # free, and nothing crawls behind its back
        pass


def test_a_second_ctrl_c_kills_the_crawler_and_still_records_the_run(
        stiwatch, http_server, tmp_path, db_path):
    """Impatient, the user presses Ctrl-C again while the downloads under way finish: the
    crawler is killed (as the docs say), and the run must not stay `running` in `stiwatch
    status`, with a pid that is gone, until some later crawl notices."""
    release = threading.Event()
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release, command="crawl")
    try:
        os.kill(child.pid, signal.SIGINT)
        time.sleep(1.5)  # the graceful stop waits for the held downloads
        os.kill(child.pid, signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        release.set()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted"


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["INT", "TERM"])
def test_a_stop_signal_delivered_twice_at_once_is_one_stop(
        stiwatch, http_server, tmp_path, db_path, signum, status):
    """coreutils `timeout` sends its signal to the command, then to its process group: the
    command got it twice within microseconds, took the second for an impatient second Ctrl-C
    and killed the crawler mid-stop (its run left without counts, what it had not yet written
    lost). A cron job bounded by `timeout` stops like any other."""
    release = threading.Event()
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release, command="crawl")
    try:
        os.kill(child.pid, signum)
        # as `timeout` does next (the command leads its group here): a few ms later, once the
        # first is being handled (sent at once, the kernel would merge the two)
        time.sleep(0.02)
        os.killpg(child.pid, signum)
        time.sleep(1.0)  # a second stop request would have killed the crawler by now
        release.set()  # the downloads under way finish, as in any graceful stop
        _, stderr = child.communicate(timeout=60)
    finally:
        release.set()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == status and "Traceback" not in stderr, stderr
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"], (crawl, stderr)
    assert json.loads(crawl["stats"])["reason"] == "shutdown"


def test_a_crawler_whose_parent_was_killed_stops_quietly(stiwatch, http_server, tmp_path,
                                                         db_path):
    """SIGKILL cannot be handled: the orphaned crawler notices its parent is gone and stops."""
    release = threading.Event()
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    release.set()
    try:
        _, stderr = child.communicate(timeout=60)  # EOF once the orphaned crawler has exited
    finally:
        os.killpg(child.pid, signal.SIGKILL)

    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"]
    assert _articles_requested(http_server) < HELD  # it stopped instead of crawling on

    # The next run (holding the lock) closes the row its killed predecessor left `running`.
    assert stiwatch("run", env=FAST).exit_code == 0
    killed, rerun = rows(db_path, "SELECT * FROM runs ORDER BY id")
    assert killed["status"] == "failed" and killed["finished_at"] is None
    assert "killed" in json.loads(killed["steps"])[0]["summary"]
    assert rerun["status"] == "ok"


def _gone(pid):
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _kill_and_see_the_crawler_stop(child, crawler, server):
    """SIGKILL the crawl's parent ``child``: the orphaned ``crawler`` exits within 5 s and
    sends nothing after its parent died."""
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    requested = len(server.requests)
    deadline = time.monotonic() + 5
    while not _gone(crawler) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(crawler), "the orphaned crawler is still running"
    time.sleep(0.5)
    assert len(server.requests) == requested


@pytest.mark.parametrize("command", ["crawl", "run"])
def test_an_orphaned_crawler_waiting_on_a_silent_site_stops_at_once(
        stiwatch, http_server, tmp_path, db_path, command):
    """A crawler learnt its parent was killed only when it next reported an item: one waiting
    on a site that does not answer went on crawling, the run lock free, for nobody."""
    release = threading.Event()  # set only at the end: the article downloads hang
    child = _start_run(stiwatch, http_server, tmp_path, db_path, release, command=command)
    try:
        [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
        crawler = json.loads(crawl["stats"])["crawler_pid"]
        _kill_and_see_the_crawler_stop(child, crawler, http_server)
    finally:
        release.set()
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its group
            os.killpg(child.pid, signal.SIGKILL)

    assert "Traceback" not in child.stderr.read()
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"]
    assert rows(db_path, "SELECT count(*) AS n FROM items")[0]["n"] == 0  # nothing answered


def test_an_orphaned_crawler_forked_from_the_warm_server_stops_too(http_server, tmp_path,
                                                                   db_path, stiwatch):
    """A process's later crawls fork from a server it started (crawler.runner._context): the
    crawler's parent is that server, which exits with the process."""
    release = threading.Event()
    held = _blocked_site(http_server, release)
    quick = _slow_feed(http_server, "quick", 2, lambda: None)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "quick", "kind": "feed", "url": f"{quick}/quick.xml"},
        {"id": "held", "kind": "feed", "url": f"{held}/held.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    script = (
        "import sys\n"
        "from crawler.runner import crawl\n"
        "settings = {'download_delay': 0, 'autothrottle': False,"
        " 'concurrent_requests_per_domain': 1}\n"
        "crawl(sys.argv[1], settings, ['quick'])\n"
        "crawl(sys.argv[1], settings, ['held'])\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(db_path)],
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _articles_requested(http_server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _articles_requested(http_server), "the second crawl never reached an article"
        first, second = rows(db_path, "SELECT * FROM crawl_runs ORDER BY id")
        crawler = json.loads(second["stats"])["crawler_pid"]
        with open(f"/proc/{crawler}/stat") as stat:  # forked from the warm server
            assert int(stat.read().rsplit(")", 1)[1].split()[1]) != child.pid
        _kill_and_see_the_crawler_stop(child, crawler, http_server)
    finally:
        release.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    assert "Traceback" not in child.stderr.read()
    first, second = rows(db_path, "SELECT * FROM crawl_runs ORDER BY id")
    assert first["status"] == "ok"
    assert second["status"] == "interrupted" and second["finished_at"]


# A slow site with many articles: at most CONCURRENT_REQUESTS_PER_DOMAIN are in flight while
# the downloader holds up to CONCURRENT_REQUESTS (16) more queued behind them, which a graceful
# stop used to send one after another before it stopped (16 more requests, ~15 s, in review).
MANY = 40
PER_DOMAIN = 2


def _many_site(server, pace):
    """``pace["seconds"]``: how long each article takes to answer (changeable mid-test)."""
    return _slow_feed(server, "many", MANY, lambda: time.sleep(pace["seconds"]))


def _many_requested(server):
    return [r.path for r in server.requests if r.path.startswith("/many/")]


@pytest.mark.parametrize("command, signum, status", [
    ("crawl", signal.SIGTERM, 143),  # systemctl stop, kill
    ("run", signal.SIGINT, 130),  # Ctrl-C in a terminal: the whole process group
])
def test_a_stopped_crawl_sends_no_new_requests_and_loses_nothing_fetched(
        stiwatch, http_server, tmp_path, db_path, command, signum, status):
    pace = {"seconds": 0.4}  # slow while the crawl is stopped: a full queue behind it
    base = _many_site(http_server, pace)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "many", "kind": "feed", "url": f"{base}/many.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    env = {**os.environ, **FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": str(PER_DOMAIN)}
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), command],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_many_requested(http_server)) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        before = len(_many_requested(http_server))
        assert 0 < before < MANY - 16, before  # mid-way, with a full queue behind
        if signum == signal.SIGINT:
            os.killpg(child.pid, signum)
        else:
            os.kill(child.pid, signum)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    # Only what was already on the wire when the signal came: nothing new was sent.
    fetched = _many_requested(http_server)
    assert len(fetched) - before <= PER_DOMAIN, (before, len(fetched))
    # Everything fetched is stored, complete; nothing dropped was stored (no partial rows
    # that would count a failed attempt); the run says it was interrupted.
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    stored = rows(db_path, "SELECT url, status FROM items")
    assert sorted(r["url"] for r in stored) == sorted(f"{base}{path}" for path in fetched)
    assert {r["status"] for r in stored} == {"complete"}
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"]

    # The next crawl fetches exactly the rest, once each (at once: the slowness was only
    # there to stop a crawl mid-way, and cost ~7 s of waiting here).
    pace["seconds"] = 0
    assert stiwatch("crawl", env=FAST).exit_code == 0
    again = _many_requested(http_server)[len(fetched):]
    assert sorted(again) == sorted({f"/many/{n}.html" for n in range(MANY)} - set(fetched))
    assert rows(db_path, "SELECT count(*) AS n FROM items WHERE status = 'complete'")[0]["n"] \
        == MANY


def test_a_stop_does_not_wait_out_a_retry_after(stiwatch, http_server, tmp_path, db_path):
    """A retry waiting for the host's Retry-After (up to 120 s) would hold a stop past the
    30 s its parent grants the crawler, which is then killed before it records anything."""
    base = build_site(http_server)
    (http_server.root / "busy.xml").write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Busy</title>"
        f"<item><title>Busy story</title><link>{base}/busy/0.html</link>"
        "<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>")

    @http_server.route("/busy/0.html")
    def busy(handler):
        handler.send_body(503, b"busy", headers={"Retry-After": "100"})

    reg = registry(tmp_path / "sources.toml", [
        {"id": "busy", "kind": "feed", "url": f"{base}/busy.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), "crawl"],
                             env={**os.environ, **FAST}, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not http_server.requested("/busy/0.html") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # the answer is in: the crawler is waiting out its Retry-After
        os.kill(child.pid, signal.SIGTERM)
        _, stderr = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)

    assert child.returncode == 143 and "Traceback" not in stderr, stderr
    # The crawler closed its run itself (a killed one leaves it `running`, unfinished), and
    # kept what it learnt: the page answered 503, to be tried again next time.
    [crawl] = rows(db_path, "SELECT * FROM crawl_runs")
    assert crawl["status"] == "interrupted" and crawl["finished_at"]
    [item] = rows(db_path, "SELECT status, fetch_error FROM items")
    assert item["status"] == "partial" and "503" in item["fetch_error"]
    assert len(http_server.requested("/busy/0.html")) == 1  # the retry was never sent


def test_a_stop_writes_what_was_fetched_before_downloads_under_way_end(
        stiwatch, http_server, tmp_path, db_path):
    """Stopped, the crawler writes its batch at once: killed later (systemd's TimeoutStopSec,
    while a download under way hangs), it still loses nothing it had fetched."""
    base = build_site(http_server)
    entries = "".join(
        f"<item><title>Story {n}</title><link>{base}/mix/{n}.html</link>"
        f"<pubDate>Tue, 24 Nov 2026 10:{n:02d}:00 GMT</pubDate></item>" for n in range(8))
    (http_server.root / "mix.xml").write_text(
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Mix</title>{entries}"
        "</channel></rss>")
    release = threading.Event()
    answered = []

    def article(handler):
        if len(answered) >= 4:
            release.wait(30)  # the fifth request on hangs: a download under way at the stop
        answered.append(handler.path)
        n = int(handler.path.rsplit("/", 1)[1].split(".")[0])
        handler.send_body(200, ARTICLE.format(n=n).encode())

    for n in range(8):
        http_server.routes[f"/mix/{n}.html"] = article
    reg = registry(tmp_path / "sources.toml", [
        {"id": "mix", "kind": "feed", "url": f"{base}/mix.xml"}])
    assert stiwatch("sources", "sync", str(reg)).exit_code == 0
    env = {**os.environ, **FAST, "STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "1",
           "STIWATCH_SCRAPY_SETTINGS": json.dumps({"STIWATCH_BATCH_SIZE": 50,
                                                   "STIWATCH_BATCH_SECONDS": 600})}
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db_path), "crawl"],
                             env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while sum(1 for r in http_server.requests if r.path.startswith("/mix/")) < 5 \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1)  # the four answers are extracted and wait in the unwritten batch
        assert _count(db_path) == 0
        os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _count(db_path) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # before the hanging download ends
        child.wait()
        release.set()

    assert sorted(r["url"] for r in rows(db_path, "SELECT url FROM items")) == sorted(
        f"{base}{path}" for path in answered[:4])
