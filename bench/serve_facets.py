"""The first pages of `stiwatch serve`'s views of items, with their facets, on an operator's store.

Each HTML page (50 rows, its count and facets) is fetched from a served store built by
bench/operator_store.py; prints its time and the facets the page says timed out
(facet_time_limit_ms, 1 s each). To compare with another checkout, run this with that
checkout first on PYTHONPATH (the server is `python -m stiwatch` in a new process, which
inherits it); the newer one migrates the store, so measure the older first, or a copy.

    .venv/bin/python bench/serve_facets.py [--items N] [--rounds R] [--quick] [--db PATH]
"""

from __future__ import annotations

import argparse
import html
import os
from pathlib import Path
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import operator_store

PAGES = [
    "items_tagged_json",
    "items_tagged",
    "items_tagged_json?countries__arraycontains=JP",
    "items_tagged_json?policy=1",
    "items_tagged?policy=1",
    # The digest's "List them in the browser" links: a section's week (the last of the store),
    # and a reader's countries or regions
    "items_tagged_json?policy=1&areas__arraycontains=research_security"
    "&published_at__gte=2026-11-16&published_at__lt=2026-11-23",
    "items_tagged_json?policy=1&_tags_any=countries:JP,regions:europe"
    "&published_at__gte=2026-11-16&published_at__lt=2026-11-23",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2,000 items, one round")
    parser.add_argument("--db", type=Path, help="this store instead (a copy without ANALYZE's "
                        "statistics, say)")
    args = parser.parse_args()
    items, rounds = (2_000, 1) if args.quick else (args.items, args.rounds)
    path = args.db or operator_store.build(items)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(path), "serve",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}/{path.stem}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/versions.json", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("stiwatch serve did not start")
                time.sleep(0.3)
        print(f"{path}")
        try:  # the file into the page cache, as a server that has run for a while has it
            urllib.request.urlopen(f"{base}/items_tagged?_size=1&_nofacet=1", timeout=120).read()
            urllib.request.urlopen(f"{base}/items_tagged_json?_size=1&_nofacet=1",
                                   timeout=120).read()
        except urllib.error.HTTPError as error:
            print(f"  warm-up: HTTP {error.code}")
        for page in PAGES:
            name, _, query = page.partition("?")
            url = f"{base}/{name}" + (f"?{query}" if query else "")
            times, timed_out = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(url, timeout=120) as response:
                        text = response.read().decode()
                except urllib.error.HTTPError as error:  # 400: the page's SQL took over 5 s
                    text = error.read().decode()
                    said = re.search(r"SQL query took too long|SQL Interrupted", text)
                    print(f"  {page}: HTTP {error.code}{': ' + said[0] if said else ''}")
                times.append(time.perf_counter() - started)
                found = re.search(r"These facets timed out: ([^<]*)<", text)
                timed_out = html.unescape(found[1]).split(", ") if found else []
            print(f"  {page[:60]:60} {' / '.join(f'{t:.2f} s' for t in times)}"
                  f"  timed out: {', '.join(timed_out) or '-'}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
