"""`stiwatch demo`, the README's first command, end to end as a user runs it."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
import json
import os
from pathlib import Path
import subprocess
import sys


def test_demo_runs_the_whole_pipeline_offline_says_what_to_do_next_and_reruns(
        tmp_path: Path) -> None:
    # One test, so the rerun starts from this demo's folder rather than build it again
    # (each demo is a whole crawl, classify and digest: the suite's costliest step).
    directory = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "stiwatch", "--quiet", "demo", "--dir", str(directory), "--json"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["items"] >= 100
    assert summary["duplicates"] >= 2  # syndicated copies folded, not shown twice
    assert summary["policy_items"] >= 60
    assert summary["seconds"] < 120
    # The suggested commands run as printed, from a shell without the virtualenv on PATH.
    assert [c.split(summary["db"] + " ")[1].split()[0] for c in summary["next"]][:4] == [
        "search", "search", "search", "trends"]
    shell_env = {**env, "PATH": "/usr/bin:/bin"}
    suggested = subprocess.run(summary["next"][0], shell=True, capture_output=True, text=True,
                               timeout=60, env=shell_env, cwd=tmp_path)
    assert suggested.returncode == 0, suggested.stderr
    assert "research" in suggested.stdout.lower()

    html = Path(summary["digest_html"]).read_text(encoding="utf-8")
    assert summary["week"] in html and "<a href=\"http://127.0.0.1:" in html
    # A start-up's funding round (labelled not policy) speaks of funding and research, but no
    # public actor does anything: the rules keep it out of the digest.
    assert "Gene-editing start-up raises" not in html
    assert summary["digest_eml"], "the digest went to the outbox"
    message = BytesParser(policy=policy.default).parse(open(summary["digest_eml"][0], "rb"))
    assert summary["week"] in message["Subject"]
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None

    # The store is a normal one: the next commands it suggests work on it.
    search = subprocess.run(
        [sys.executable, "-m", "stiwatch", "--db", summary["db"], "search", "quantum",
         "--format", "json"], capture_output=True, text=True, timeout=60, env=env)
    assert search.returncode == 0, search.stderr
    assert any("quantum" in (hit["title"] + hit["snippet"]).lower()
               for hit in json.loads(search.stdout))

    # The Japanese source shows what stiwatch does with text that has no spaces: the suggested
    # search finds its ministry's press release by a word inside a run of characters, and the
    # crawler stored it as Japanese (so the rules' Japanese cues, not the English model, read it).
    japanese = next(c for c in summary["next"] if "量子技術" in c)
    suggested = subprocess.run(japanese + " --format json", shell=True, capture_output=True,
                               text=True, timeout=60, env=shell_env, cwd=tmp_path)
    assert suggested.returncode == 0, suggested.stderr
    hits = json.loads(suggested.stdout)
    assert [(h["source_id"], h["title"]) for h in hits] == [
        ("jp-msti", "「量子技術イノベーション戦略」を改定 量子コンピュータの実用化へ工程表")]
    assert "JP" in hits[0]["countries"] and "quantum" in hits[0]["domains"]
    exported = subprocess.run(
        [sys.executable, "-m", "stiwatch", "--db", summary["db"], "export", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=env)
    assert exported.returncode == 0, exported.stderr
    languages = {row["id"]: row["language"] for row in json.loads(exported.stdout)}
    assert languages[hits[0]["id"]] == "ja"
    # ... and its story is in last week's digest, as the English ones are
    assert "量子技術イノベーション戦略" in html

    # It reruns in its own folder, as the quick start does.
    again = _demo(directory, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["items"] == summary["items"]

    # A demo folder made before the demo marked its folders is still its own to rebuild.
    (directory / ".stiwatch-demo").unlink()
    older = _demo(directory, cwd=tmp_path)
    assert older.returncode == 0, older.stderr
    assert (directory / ".stiwatch-demo").exists()


def _demo(directory: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "stiwatch", "--quiet", "demo", "--dir", str(directory), *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_demo_never_replaces_a_store_or_registry_it_did_not_make(stiwatch, tmp_path: Path):
    precious = tmp_path / "precious"
    precious.mkdir()
    db = str(precious / "stiwatch.db")
    assert stiwatch("--db", db, "init").exit_code == 0  # the last --db wins
    (precious / "sources.toml").write_text("# our production registry\n", encoding="utf-8")
    for n in range(3):
        assert stiwatch("--db", db, "subscribers", "add", f"reader{n}@example.org").exit_code == 0
    before = _snapshot(precious)
    assert "stiwatch.db" in before

    for directory, cwd in ((precious, tmp_path), (Path("."), precious)):
        result = _demo(directory, cwd=cwd)
        assert result.returncode == 2
        assert result.stderr.startswith(f"Error: {precious}: not empty and not made by "
                                        "`stiwatch demo`")
        assert result.stderr.count("\n") == 1
        assert _snapshot(precious) == before
    # --db names a real store: the demo says it makes its own rather than ignore it
    result = stiwatch("--db", db, "demo", "--dir", str(tmp_path / "fresh"))
    assert result.exit_code == 2 and "--db is not used: give --dir DIR instead" in result.output
    assert not (tmp_path / "fresh").exists() and _snapshot(precious) == before


def test_demo_refuses_any_folder_with_files_it_did_not_make(stiwatch, tmp_path: Path):
    folder = tmp_path / "notes"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("<p>my own site</p>", encoding="utf-8")
    result = stiwatch("demo", "--dir", str(folder))
    assert result.exit_code == 2 and "give it a new or empty folder" in result.stderr
    assert (folder / "site" / "index.html").read_text(encoding="utf-8") == "<p>my own site</p>"
    assert sorted(p.name for p in folder.iterdir()) == ["site"]


def test_demo_takes_an_empty_folder_the_user_made_and_serve_keeps_the_site_up_to_crawl(
        tmp_path: Path) -> None:
    # The README offers the demo's sources.toml to build one's own registry on, but the site
    # lived only while the demo ran: every URL in it then answered "connection refused".
    import queue
    import signal
    import threading
    import time
    import tomllib

    # Its refusal says "give it a new or empty folder": an empty one must then be taken. (One
    # test with --serve, so that the suite builds one demo fewer.)
    directory = tmp_path / "demo"
    directory.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIWATCH_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "stiwatch", "--quiet", "demo", "--dir", str(directory), "--serve",
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        # Lines come through a thread: a readline would block for good on a demo that serves
        # without a word.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in demo.stderr],
                         daemon=True).start()
        deadline = time.monotonic() + 240
        announced = ""
        while "Serving the demo site at" not in announced:
            assert demo.poll() is None and time.monotonic() < deadline, announced
            try:
                announced = lines.get(timeout=1)
            except queue.Empty:
                pass
        site = announced.split(" at ")[1].split()[0]
        assert site.startswith("http://127.0.0.1:") and "Ctrl-C" in announced
        assert f"--db {directory / 'stiwatch.db'} crawl" in announced
        assert (directory / "stiwatch.db").exists() and (directory / ".stiwatch-demo").exists()

        # An analyst's own registry, with one of the demo's feeds, crawled from another shell.
        demo_sources = tomllib.loads((directory / "sources.toml").read_text(encoding="utf-8"))
        feed = next(s for s in demo_sources["source"] if s["kind"] == "feed")
        assert feed["url"].startswith(site)
        mine = tmp_path / "mine.toml"
        mine.write_text(f'[[source]]\nid = "mine"\nname = "Mine"\nkind = "feed"\n'
                        f'url = "{feed["url"]}"\ncountry = "JP"\nlanguage = "en"\n'
                        f'org_type = "news"\n', encoding="utf-8")
        own = {**env, "STIWATCH_DB": str(tmp_path / "own.db"), "STIWATCH_DOWNLOAD_DELAY": "0",
               "STIWATCH_AUTOTHROTTLE": "false"}
        init = subprocess.run([sys.executable, "-m", "stiwatch", "init", "--sources", str(mine)],
                              capture_output=True, text=True, timeout=60, env=own, cwd=tmp_path)
        assert init.returncode == 0, init.stderr
        crawl = subprocess.run([sys.executable, "-m", "stiwatch", "crawl", "--json"],
                               capture_output=True, text=True, timeout=120, env=own, cwd=tmp_path)
        assert crawl.returncode == 0, crawl.stderr
        assert json.loads(crawl.stdout)["totals"]["new"] >= 5, crawl.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        out = demo.stdout.read()
        demo.wait(timeout=30)
    assert demo.returncode == 0  # Ctrl-C is how it is meant to stop
    assert json.loads(out)["site"] == site
