"""A store like an operator's after three years: N items from 300 sources over 150 weeks, with
tags, 200 subscribers, a delivery row per subscriber and week, and daily crawl and scheduled runs.

Built once into bench/.cache/operator-N.db (gitignored) from bench/store_scale.py's synthetic
text and tags; the commands an operator and an analyst run are then timed on it by hand, each
in a new process (see docs/benchmarks.md, "An operator's store after three years").

    python bench/operator_store.py 200000     # prints the path of the built (or cached) store
    python bench/operator_store.py --quick    # 2,000 items
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
import json
from pathlib import Path
import random
import sys
import time

import _stores
from _stores import cached
import store_scale
from store_scale import AREAS, COUNTRIES, TextMaker, insert_items, save_tags, tag_rows

SOURCES = [f"source-{n:03d}" for n in range(300)]
END = datetime(2026, 11, 23, tzinfo=timezone.utc)   # a Monday: the last delivered week ends
WEEKS = 150
START = END - timedelta(weeks=WEEKS)
DOMAINS = ["ai", "quantum", "semiconductors", "biotech", "space", "energy", "climate"]


def fill(temp: Path, n: int, log) -> None:
    store = _stores.make_store(temp, SOURCES, "http://127.0.0.1:9")
    maker = TextMaker(seed=5)
    span = (END - START).total_seconds()
    started, chunk = time.perf_counter(), 5000
    for start in range(0, n, chunk):
        rows = maker.items(start, min(chunk, n - start))
        for k, row in enumerate(rows):
            at = (START + timedelta(seconds=span * (start + k) / n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            source = SOURCES[(start + k) % len(SOURCES)]
            row.update(source_id=source, url=f"https://example.org/{source}/{start + k}",
                       published_at=at, fetched_at=at)
        with store.write():
            first = insert_items(store, rows)
            store.conn.execute("UPDATE item_classification SET classified_at = (SELECT"
                               " fetched_at FROM items WHERE id = item_id) WHERE item_id >= ?",
                               [first])
            # as before: a copy's trigger marks it, so the copies wait for classify
            store.conn.execute("UPDATE items SET duplicate_of = id - 1"
                               " WHERE id >= ? AND id % 50 = 0", [first])
        tags = tag_rows(first, len(rows), seed=start)
        rng = random.Random(start)
        tags += [(i, "domain", rng.choice(DOMAINS), 0.7, "rules", "bench", "x")
                 for i in range(first, first + len(rows)) if rng.random() < 0.3]
        save_tags(store, tags)
        if start and start % 100_000 == 0:
            log(f"  built {start:,}/{n:,} items ({start / (time.perf_counter() - started):,.0f}/s)")
    rng = random.Random(1)
    with store.write():
        store.conn.executemany(
            "INSERT INTO subscribers (email, name, areas, domains, countries, regions, active,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, '[]', 1, ?, ?)",
            [(f"reader{k:03d}@agency.example", f"Reader {k}",
              json.dumps(rng.sample(AREAS, rng.randint(0, 2))),
              json.dumps(rng.sample(DOMAINS, rng.randint(0, 1))),
              json.dumps(rng.sample(COUNTRIES, rng.randint(0, 3))),
              "2023-11-01T00:00:00Z", "2023-11-01T00:00:00Z") for k in range(200)])
        deliveries, runs, crawls = [], [], []
        for week in range(WEEKS):
            monday = START + timedelta(weeks=week)
            year, number, _ = monday.isocalendar()
            sent = (monday + timedelta(weeks=1, hours=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
            through = int(n * (week + 1) / WEEKS)
            deliveries += [(f"reader{k:03d}@agency.example", f"{year}-W{number:02d}", "sent",
                            f"<{year}{number}.{k}@stiwatch>", rng.randint(5, 60), 1, sent, sent,
                            through) for k in range(200)]
            for day in range(7):
                at = (monday + timedelta(days=day, hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
                end = (monday + timedelta(days=day, hours=6, minutes=20)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")
                stats = json.dumps({"items_saved": n // (WEEKS * 7), "sources": 300})
                crawls.append((at, end, "ok", stats))
                runs.append(("run", at, end, "ok", 0, json.dumps(
                    [{"step": "crawl", "ok": True, "status": "ok", "summary": "ok"}])))
        store.conn.executemany(
            "INSERT INTO deliveries (subscriber, period, status, message_id, item_count, attempts,"
            " sent_at, updated_at, through_item_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            deliveries)
        store.conn.executemany("INSERT INTO crawl_runs (started_at, finished_at, status, stats)"
                               " VALUES (?, ?, ?, ?)", crawls)
        store.conn.executemany("INSERT INTO runs (command, started_at, finished_at, status,"
                               " exit_code, steps) VALUES (?, ?, ?, ?, ?, ?)", runs)
        store.conn.execute("UPDATE sources SET last_crawled_at = ?, last_ok_at = ?",
                           [crawls[-1][0], crawls[-1][0]])
    store.conn.execute("ANALYZE")
    store.close()


def build(n: int, log=print) -> Path:
    _stores.prepare_cache()
    return cached(f"operator-{n}.db", lambda temp: fill(temp, n, log))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", nargs="?", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 items (bench/run.py --quick: a check that it still builds)")
    args = parser.parse_args()
    assert store_scale  # its module-level names are what the text and tags are made of
    print(build(2_000 if args.quick else args.items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
