"""A crawl killed with SIGKILL half-way, then run again, stores every article exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from crawlsite import FAST, build_site, registry, rows

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


def _site(server):
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
        time.sleep(0.12)
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
    base = _site(http_server)
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
    base = _site(http_server)
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

    assert child.returncode != 0 and "Traceback" not in stderr, stderr
    [run] = rows(db_path, "SELECT * FROM crawl_runs")
    assert run["status"] == "interrupted" and run["finished_at"]
    # A graceful stop finishes the downloads already under way and writes what it has.
    assert rows(db_path, "SELECT count(*) AS n FROM items")[0]["n"] > 0

    assert stiwatch("crawl", env=FAST).exit_code == 0
    assert rows(db_path, "SELECT count(*) AS n FROM items WHERE status = 'complete'")[0]["n"] \
        == COUNT
