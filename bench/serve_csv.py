"""Streamed CSV downloads from `stiwatch serve` (Datasette) against `stiwatch export`.

An analyst's "download all" of `items` or `items_tagged` is a streamed CSV
(`?_stream=on`). Baselines measured in the same run on the same store: reading the same rows
as JSON pages of 1,000 (what the stream should cost) and `stiwatch export --format csv`.

    .venv/bin/python bench/serve_csv.py [--items N] [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from _stores import ROOT, make_store

BODY = ("The council reviewed grants, fellowships and research infrastructure, and "
        "published its annual report on international collaboration. ") * 5


def build(path: Path, n: int) -> None:
    with make_store(path, ["council"], "https://council.invalid") as store:
        for start in range(0, n, 5_000):
            store.save_items([{"url": f"https://council.invalid/n-{k}", "source_id": "council",
                               "title": f"Notice {k}", "body": BODY, "language": "en",
                               "date_source": "page",
                               "published_at": f"2026-11-{1 + k % 28:02d}T00:00:00Z"}
                              for k in range(start, min(n, start + 5_000))])


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as response:
        return response.read()


def serving(path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(path), "serve",
                                "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            fetch(base + "/-/versions.json")
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("stiwatch serve did not start")
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="2,000 items")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.items
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stiwatch.db"  # served as /stiwatch
        build(path, n)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(path), "-q", "export",
                        "--format", "csv", "--out", str(Path(folder) / "export.csv")],
                       cwd=ROOT, check=True)
        export_s = time.monotonic() - started
        print(f"{n:,} items; stiwatch export --format csv: {export_s:.2f} s "
              f"({n / export_s:,.0f} rows/s)")
        process, base = serving(path)
        try:
            for table in ("items", "items_tagged"):
                started = time.monotonic()
                url, rows = f"{base}/stiwatch/{table}.json?_size=max&_nocount=1&_nofacet=1", 0
                while url:
                    page = json.loads(fetch(url))
                    rows += len(page["rows"])
                    url = page.get("next_url")
                pages_s = time.monotonic() - started
                started = time.monotonic()
                lines = fetch(f"{base}/stiwatch/{table}.csv?_stream=on").count(b"\n")
                stream_s = time.monotonic() - started
                print(f"{table}: stream {stream_s:.2f} s ({lines - 1:,} rows, "
                      f"{n / stream_s:,.0f} rows/s); JSON pages of 1,000 {pages_s:.2f} s "
                      f"({rows:,} rows); ratio stream / pages {stream_s / pages_s:.2f}, "
                      f"stream / export {stream_s / export_s:.2f}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
