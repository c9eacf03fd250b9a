"""`stiwatch demo`, the README's first command, end to end as a user runs it."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
import json
import os
from pathlib import Path
import subprocess
import sys


def test_demo_runs_the_whole_pipeline_offline_and_says_what_to_do_next(tmp_path: Path) -> None:
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
    assert [c.split(" ", 3)[3].split()[0] for c in summary["next"]][:3] == [
        "search", "search", "trends"]

    html = Path(summary["digest_html"]).read_text(encoding="utf-8")
    assert summary["week"] in html and "<a href=\"http://127.0.0.1:" in html
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
