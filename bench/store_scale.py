"""How far one SQLite store goes: ingest rate with FTS, size per million items, search latency.

Prints each measure with a ratio against a baseline measured in the same run:

1. ingest: items/s through ``Store.save_items`` (batches of 500, FTS5 triggers on) against a
   plain ``executemany`` INSERT into a copy of the items table with no index or trigger.
2. size: bytes per item of that store, extrapolated to one million items.
3. search: p50/p95 latency of ``Store.search`` (the function `stiwatch search` calls) on a
   synthetic store of 1,000,000 items, for queries matching at most 50,000 items, against a
   ``LIKE '%word%'`` scan of the same store.

Texts are synthetic: words drawn from a Zipf distribution over a vocabulary whose head is the
words of the bundled demo articles (real STI-policy English) and whose tail is pseudo-words. The
1M-item store is built once into bench/.cache/ (gitignored) and reused.

    python bench/store_scale.py            # full: 200k ingest, 1M search (first run builds it)
    python bench/store_scale.py --quick    # small N, for a smoke test
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime, timedelta, timezone
import json
from pathlib import Path
import random
import re
import statistics
import tempfile
import time

import numpy as np

import _stores
from _stores import CACHE, ROOT, cached, percentile
import db
import db.search
VOCABULARY_SIZE = 60_000
ZIPF_EXPONENT = 1.07
COUNTRIES = ["US", "CN", "JP", "DE", "FR", "GB", "KR", "IN", "EU", "BR", "CA", "AU", "SG", "ZA"]
AREAS = ["governance", "public_research", "business_innovation", "knowledge_transfer",
         "human_resources", "society", "international", "open_science", "research_security"]
SOURCES = [f"source-{n:03d}" for n in range(200)]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


# -- synthetic text -------------------------------------------------------------------------

def vocabulary(seed: int = 7) -> list[str]:
    """Real words first (by frequency in the demo articles), then pronounceable pseudo-words."""
    counts: Counter[str] = Counter()
    for path in sorted((ROOT / "stiwatch" / "demo" / "content").glob("*.toml")):
        counts.update(w.lower() for w in re.findall(r"[A-Za-z]{2,}", path.read_text("utf-8")))
    words = [w for w, _ in counts.most_common()]
    rng = random.Random(seed)
    onsets, vowels, codas = "b c d f g h k l m n p r s t v w z br cr dr gr pl st tr".split(), \
        "a e i o u ai ea io ou".split(), ["", "n", "r", "s", "t", "l", "m", "x"]
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                       for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words[:VOCABULARY_SIZE]


class TextMaker:
    def __init__(self, seed: int = 1) -> None:
        self.words = np.array(vocabulary())
        ranks = np.arange(1, len(self.words) + 1, dtype=float)
        weights = 1.0 / ranks ** ZIPF_EXPONENT
        self.cdf = np.cumsum(weights / weights.sum())
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> np.ndarray:
        return self.words[np.searchsorted(self.cdf, self.rng.random(n))]

    def items(self, start: int, count: int) -> list[dict]:
        """``count`` items; bodies average ~220 words, summaries ~30, titles ~9."""
        lengths = self.rng.lognormal(5.3, 0.5, count).astype(int) + 40
        title_len = self.rng.integers(6, 13, count)
        summary_len = self.rng.integers(20, 41, count)
        pool = self.draw(int(lengths.sum() + title_len.sum() + summary_len.sum()))
        out, at = [], 0
        for k in range(count):
            n = start + k
            title = " ".join(pool[at:at + title_len[k]]).capitalize()
            at += title_len[k]
            summary = " ".join(pool[at:at + summary_len[k]])
            at += summary_len[k]
            body = " ".join(pool[at:at + lengths[k]])
            at += lengths[k]
            published = START + timedelta(minutes=int(n * 1.05))
            out.append({
                "url": f"https://example.org/{SOURCES[n % len(SOURCES)]}/{n}",
                "source_id": SOURCES[n % len(SOURCES)],
                "title": title,
                "summary": summary,
                "body": body,
                "language": "en",
                "published_at": published.isoformat(timespec="seconds"),
                "date_source": "feed",
                "fetched_at": published.isoformat(timespec="seconds"),
                "status": "complete",
            })
        return out


def make_store(path: Path) -> db.Store:
    return _stores.make_store(path, SOURCES, "https://example.org")


def tag_rows(first_id: int, count: int, seed: int) -> list[tuple]:
    """Tags like the classifier's: policy for every item, a country, areas for policy items."""
    rng = random.Random(seed)
    rows = []
    for item_id in range(first_id, first_id + count):
        policy = rng.random() < 0.4
        rows.append((item_id, "policy", "1" if policy else "0", 0.9, "model", "bench", "x"))
        rows.append((item_id, "country", rng.choice(COUNTRIES), 1.0, "gazetteer", "bench", "x"))
        if policy:
            for area in rng.sample(AREAS, rng.randint(1, 2)):
                rows.append((item_id, "area", area, 0.8, "model", "bench", "x"))
    return rows


def save_tags(store: db.Store, rows: list[tuple]) -> None:
    with store.write():
        store.conn.executemany(
            "INSERT OR IGNORE INTO tags (item_id, facet, value, score, method, model_version,"
            " tagged_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


# -- 1 and 2: ingest and size ---------------------------------------------------------------

def bench_ingest(n: int, batch: int = 500) -> dict:
    maker = TextMaker(seed=11)
    batches = [maker.items(start, min(batch, n - start)) for start in range(0, n, batch)]
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        # Baseline: the same rows into a bare copy of the items table (no FTS, no index).
        base = make_store(Path(tmp) / "baseline.db")
        base.conn.execute("CREATE TABLE plain AS SELECT * FROM items WHERE 0")
        columns = list(batches[0][0])
        sql = f"INSERT INTO plain ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        started = time.perf_counter()
        for rows in batches:
            with base.write():
                base.conn.executemany(sql, [[r[c] for c in columns] for r in rows])
        baseline_s = time.perf_counter() - started
        base.close()

        store = make_store(Path(tmp) / "ingest.db")
        started = time.perf_counter()
        for rows in batches:
            store.save_items(rows)
        fts_s = time.perf_counter() - started
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = store.file_size()
        text_bytes = store.scalar("SELECT sum(length(title) + length(summary) + length(body))"
                                  " FROM items")
        store.close()
    return {
        "n": n,
        "fts_items_per_s": n / fts_s,
        "baseline_items_per_s": n / baseline_s,
        "ratio": (n / fts_s) / (n / baseline_s),
        "bytes_per_item": size / n,
        "gb_per_million": size / n * 1e6 / 1e9,
        "text_bytes_per_item": text_bytes / n,
    }


# -- 3: search at scale ---------------------------------------------------------------------

def insert_items(store: db.Store, rows: list[dict]) -> int:
    """Insert synthetic item rows straight into ``items`` (faster than ``save_items``, which
    the ingest benchmark times) inside the caller's write; the first new id."""
    columns = list(rows[0])
    store.conn.executemany(
        f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [[r[c] for c in columns] for r in rows])
    return store.scalar("SELECT max(id) FROM items") - len(rows) + 1


def build_search_store(n: int, log) -> Path:
    """Build (once) a store of ``n`` synthetic items with tags, cached under bench/.cache/."""
    return cached(f"search-{n}.db", lambda temp: fill_search_store(temp, n, log))


def fill_search_store(temp: Path, n: int, log) -> None:
    store = make_store(temp)
    maker = TextMaker(seed=5)
    started = time.perf_counter()
    chunk = 5000
    for start in range(0, n, chunk):
        rows = maker.items(start, min(chunk, n - start))
        with store.write():
            first = insert_items(store, rows)
            # 1 item in 50 is a near-duplicate of the previous one (folded by search).
            store.conn.execute("UPDATE items SET duplicate_of = id - 1 WHERE id >= ? AND id % 50 = 0",
                               [first])
        save_tags(store, tag_rows(first, len(rows), seed=start))
        if start and start % 100_000 == 0:
            rate = start / (time.perf_counter() - started)
            log(f"  built {start:,}/{n:,} items ({rate:,.0f}/s)")
    store.conn.execute("ANALYZE")
    store.close()


def add_cjk_items(path: Path, count: int, log) -> Path:
    """A copy of the search store with ``count`` Japanese items added (once, cached): English
    queries in a store where items_fts_cjk takes part (bench/cjk_search.py's text)."""
    return cached(f"{path.stem}-cjk{count}.db", lambda temp: add_japanese(path, temp, count, log))


def add_japanese(path: Path, temp: Path, count: int, log) -> None:
    import shutil

    from cjk_search import JapaneseMaker

    shutil.copyfile(path, temp)
    store = db.open_store(temp)
    first = store.scalar("SELECT max(id) FROM items") + 1
    maker = JapaneseMaker(seed=5)
    for start in range(0, count, 1000):
        rows = maker.items(start, min(1000, count - start))
        for n, row in enumerate(rows):
            row["source_id"] = SOURCES[(start + n) % len(SOURCES)]
            row["published_at"] = row["fetched_at"] = (
                START + timedelta(minutes=int((start + n) * 1.05 * 10))).isoformat(
                    timespec="seconds")
        store.save_items(rows)
    last = store.scalar("SELECT max(id) FROM items")
    save_tags(store, tag_rows(first, last - first + 1, seed=99))
    log(f"  added {count:,} Japanese items to a copy of the store")
    store.close()


def candidate_queries(store: db.Store, words: list[str]) -> list[tuple[str, dict]]:
    """Queries of several shapes and frequencies, as (query, filters)."""
    head = [w for w in words[:3000] if len(w) > 3]
    rng = random.Random(3)
    singles = head[40:3000:60]                               # mid- to low-frequency words
    queries: list[tuple[str, dict]] = [(w, {}) for w in singles]
    for _ in range(25):
        a, b = rng.sample(head[:400], 2)
        queries.append((f"{a} AND {b}", {}))
        queries.append((f'"{a} {b}"', {}))
        queries.append((f"{a} OR {rng.choice(head[1000:3000])}", {}))
    queries += [(f"{w[:4]}*", {}) for w in rng.sample(head[600:3000], 15)]
    # The same words with the filters analysts use.
    queries += [(w, {"countries": ("JP",)}) for w in rng.sample(singles, 10)]
    queries += [(w, {"areas": ("research_security",), "since": "2024-06-01"})
                for w in rng.sample(singles, 10)]
    return queries


def bench_search(n: int, log, cjk_items: int = 0) -> dict:
    path = build_search_store(n, log)
    if cjk_items:
        path = add_cjk_items(path, cjk_items, log)
    db.open_store(path).close()  # a cache built by an older stiwatch: migrate it first
    store = db.open_store(path, readonly=True)
    words = vocabulary()
    kept = []
    for query, filters in candidate_queries(store, words):
        matches = store.count_matches(query)
        if 0 < matches <= 50_000:
            kept.append((query, filters, matches))
    for query, filters, _ in kept[:10]:  # warm the page cache once
        store.search(query, limit=20, **filters)
    times, exact_times, alone_times = [], [], []
    for _ in range(3):
        for query, filters, _ in kept:
            started = time.perf_counter()
            store.search(query, limit=20, **filters)
            times.append((time.perf_counter() - started) * 1000)
        if cjk_items:  # in turn, the same queries in items_fts alone (as before items_fts_cjk)
            store._uses_cjk = lambda terms: False
            for query, filters, _ in kept:
                started = time.perf_counter()
                store.search(query, limit=20, **filters)
                alone_times.append((time.perf_counter() - started) * 1000)
            del store._uses_cjk
    for query, filters, _ in kept:  # every match ranked by bm25 (`stiwatch search --exact`)
        started = time.perf_counter()
        store.search(query, limit=20, exact=True, **filters)
        exact_times.append((time.perf_counter() - started) * 1000)
    # Baseline: finding every match without the index, a LIKE scan (a few queries: it is slow).
    like_times = []
    for query, _, _ in [k for k in kept if " " not in k[0] and "*" not in k[0]][:3]:
        started = time.perf_counter()
        store.conn.execute(
            "SELECT count(*) FROM items WHERE duplicate_of IS NULL AND (title LIKE ?1 OR "
            "summary LIKE ?1 OR body LIKE ?1)", [f"%{query}%"]).fetchall()
        like_times.append((time.perf_counter() - started) * 1000)
    store.close()
    p95 = percentile(times, 95)
    like = statistics.median(like_times)
    return {
        "rank_window": db.search.RANK_WINDOW,
        "exact_p50_ms": percentile(exact_times, 50),
        "exact_p95_ms": percentile(exact_times, 95),
        "n": n,
        "store_gb": path.stat().st_size / 1e9,
        "queries": len(kept),
        "max_matches": max(m for *_, m in kept),
        "median_matches": int(statistics.median(m for *_, m in kept)),
        "p50_ms": percentile(times, 50),
        "p95_ms": p95,
        "max_ms": max(times),
        "like_scan_ms": like,
        "ratio": like / p95,
        **({"items_fts_alone_p50_ms": percentile(alone_times, 50),
            "items_fts_alone_p95_ms": percentile(alone_times, 95),
            "cjk_items": cjk_items} if cjk_items else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N (smoke test)")
    parser.add_argument("--ingest-n", type=int, help="items for the ingest benchmark")
    parser.add_argument("--search-n", type=int, help="items in the search store")
    parser.add_argument("--cjk-items", type=int, default=0, metavar="N",
                        help="search a copy of the store with N Japanese items added")
    parser.add_argument("--skip-ingest", action="store_true", help="only the search measures")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    ingest_n = args.ingest_n or (10_000 if args.quick else 200_000)
    search_n = args.search_n or (50_000 if args.quick else 1_000_000)
    _stores.prepare_cache()

    def log(message: str) -> None:
        print(message, flush=True)

    log(f"store_scale: ingest N={ingest_n:,}, search N={search_n:,}"
        + (f" + {args.cjk_items:,} Japanese items" if args.cjk_items else ""))
    ingest = {} if args.skip_ingest else bench_ingest(ingest_n)
    if ingest:
        log_ingest(ingest, ingest_n, log)
    search = bench_search(search_n, log, args.cjk_items)
    log_search(search, search_n, log)
    if args.json:
        Path(args.json).write_text(json.dumps({"ingest": ingest, "search": search}, indent=2))


def log_ingest(ingest: dict, ingest_n: int, log) -> None:
    log(f"ingest with FTS (Store.save_items, batches of 500): {ingest['fts_items_per_s']:,.0f} "
        f"items/s; baseline plain executemany, no FTS: {ingest['baseline_items_per_s']:,.0f} "
        f"items/s; ratio {ingest['ratio']:.2f} (target >= 1,000 items/s: "
        f"{'met' if ingest['fts_items_per_s'] >= 1000 else 'MISSED'})")
    log(f"size: {ingest['bytes_per_item']:,.0f} bytes/item measured at N={ingest_n:,} "
        f"({ingest['text_bytes_per_item']:,.0f} bytes of text/item) -> "
        f"{ingest['gb_per_million']:.2f} GB per million items (extrapolated)")


def log_search(search: dict, search_n: int, log) -> None:
    log(f"search at N={search_n:,} ({search['store_gb']:.2f} GB): {search['queries']} queries "
        f"matching <= {search['max_matches']:,} items (median {search['median_matches']:,}): "
        f"p50 {search['p50_ms']:.1f} ms, p95 {search['p95_ms']:.1f} ms, max "
        f"{search['max_ms']:.1f} ms (bm25 within the {search['rank_window']:,} most recent matches; "
        f"exact bm25 over all matches: p50 {search['exact_p50_ms']:.1f} ms, p95 "
        f"{search['exact_p95_ms']:.1f} ms); baseline LIKE scan {search['like_scan_ms']:,.0f} ms; "
        f"ratio {search['ratio']:,.0f}x (target p95 <= 100 ms: "
        f"{'met' if search['p95_ms'] <= 100 else 'MISSED'})")
    if "cjk_items" in search:
        log(f"same queries with {search['cjk_items']:,} Japanese items in the store, searched in "
            f"items_fts alone (before items_fts_cjk): p50 {search['items_fts_alone_p50_ms']:.1f}"
            f" ms, p95 {search['items_fts_alone_p95_ms']:.1f} ms")


if __name__ == "__main__":
    main()
