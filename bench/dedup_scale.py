"""Near-duplicate lookup at scale: Deduper.find/remember against a store of N signatures.

Builds a store holding N synthetic articles' signatures (LSH bands in SQLite, as the crawl
pipeline leaves them), then times ``Deduper.find`` for fresh texts and for near-copies of
stored ones, against a baseline in the same run: comparing the query's signature with every
stored signature (a numpy scan of all of them, no index). Reports lookups/s, recall of the
near-copies, false matches, and store bytes per item spent on signatures.

Texts are synthetic: words from a Zipf distribution over a 20,000-word vocabulary, 250-600
words each; a near-copy replaces ~5% of its words and adds a boilerplate paragraph.

    python bench/dedup_scale.py            # N = 50,000
    python bench/dedup_scale.py --quick    # N = 2,000
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
import random
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import db  # noqa: E402
from crawler.dedup import DEFAULT_THRESHOLD, Deduper, buckets, signature, similarity  # noqa: E402

BOILERPLATE = ("This article was first published by another outlet and is republished here "
               "under a Creative Commons licence. Follow us for more news about research policy.")


def make_texts(count: int, rng: random.Random) -> list[str]:
    vocabulary = [f"w{i}" for i in range(20_000)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    texts = []
    for _ in range(count):
        length = rng.randint(250, 600)
        texts.append(" ".join(rng.choices(vocabulary, cum_weights=cumulative, k=length)))
    return texts


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(len(words) // 20):
        words[rng.randrange(len(words))] = f"edit{rng.randrange(1000)}"
    return BOILERPLATE + "\n\n" + " ".join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 2,000")
    parser.add_argument("-n", type=int, default=0, help="number of stored articles")
    args = parser.parse_args()
    count = args.n or (2_000 if args.quick else 50_000)
    queries = 200 if args.quick else 1_000
    rng = random.Random(7)
    texts = make_texts(count + queries, rng)
    stored, fresh = texts[:count], texts[count:]

    with tempfile.TemporaryDirectory() as tmp:
        store = db.open_store(Path(tmp) / "dedup.db")
        store.sync_sources([{"id": "bench", "name": "Bench", "kind": "feed",
                             "url": "https://bench.example/rss", "country": "EU",
                             "language": "en", "org_type": "news"}])
        started = time.perf_counter()
        ids = [item_id for item_id, _ in store.save_items(
            {"url": f"https://bench.example/{i}", "source_id": "bench"} for i in range(count))]
        deduper = Deduper(store)
        signatures = []
        with store.write():
            for item_id, text in zip(ids, stored):
                sig = signature(text)
                signatures.append(sig)
                store.save_signature(item_id, sig, buckets(sig))
        remember_s = time.perf_counter() - started
        size = (Path(tmp) / "dedup.db").stat().st_size

        copies = [(ids[i], near_copy(stored[i], rng)) for i in rng.sample(range(count), queries)]

        started = time.perf_counter()
        false_matches = sum(deduper.find(text) is not None for text in fresh)
        found = sum(deduper.find(text) == item_id for item_id, text in copies)
        indexed_s = time.perf_counter() - started

        matrix = np.stack([np.frombuffer(s, dtype="<u4", offset=5) for s in signatures])
        started = time.perf_counter()
        scan_found = 0
        for item_id, text in copies + [(None, t) for t in fresh]:
            query = signature(text)
            values = np.frombuffer(query, dtype="<u4", offset=5)
            best = int(np.argmax((matrix == values).sum(axis=1)))
            if item_id is not None and similarity(query, signatures[best]) >= DEFAULT_THRESHOLD \
                    and ids[best] == item_id:
                scan_found += 1
        scan_s = time.perf_counter() - started
        store.close()

    lookups = 2 * queries
    print(f"dedup at N = {count:,} stored articles, {lookups:,} lookups "
          f"(half fresh, half near-copies)")
    print(f"remember: {count / remember_s:,.0f} signatures/s (signature + LSH bands, one transaction)")
    print(f"find, LSH in SQLite: {lookups / indexed_s:,.0f} lookups/s; near-copies found "
          f"{found}/{queries}; false matches {false_matches}/{queries}")
    print(f"baseline full scan:  {lookups / scan_s:,.0f} lookups/s; near-copies found "
          f"{scan_found}/{queries}")
    print(f"speed ratio (LSH / scan): {scan_s / indexed_s:.1f}x")
    print(f"store size: {size / count:,.0f} bytes per article for signatures and bands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
