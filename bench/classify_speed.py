"""Classifier throughput on 2,000-word items (issue 4 target: >= 1,000 items/s on one core,
model loading excluded).

Builds N items of 2,000 words from the demo site's articles (shipped with stiwatch), then times
each component and the whole `Classifier.classify` on them, and last what `stiwatch classify`
does with them in a SQLite store (read the items, classify, write the tags and
`classified_at`: `classifier.pipeline.classify_store`, the command's own function), and last
the command itself in a new process (the figure the target is about: its own report's time,
which leaves out model loading). Baseline in the same run: the lexicon rules alone (no model).

    taskset -c 1 .venv/bin/python bench/classify_speed.py [--model-dir DIR] [--items N]
        [--stip ../shared/data/stip-compass-2021/stip_2021_train.csv.gz]

With ``--stip`` and a model with a country ranker, it also times programme descriptions (the
export's initiatives, which the ranker decides for) with and without the ranker.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

import db
from classifier.pipeline import Classifier, ItemText, classify_store
from stiwatch.demo.site import english_sources


def items(n: int, words_per_item: int = 2000, seed: int = 0) -> list[ItemText]:
    """``n`` items of ``words_per_item`` words cut from the demo articles; another ``seed``
    gives other items (the taggers remember their last scans: a timed run must not reuse
    them)."""
    articles = [a for s in english_sources() for a in s.articles]
    words = " ".join(f"{a.summary} {a.body}" for a in articles).split()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = rng.randrange(len(words) - words_per_item)
        out.append(ItemText(articles[i % len(articles)].title,
                            " ".join(words[start:start + words_per_item]), "JP"))
    return out


def store_of(batch: list[ItemText], folder: Path) -> Path:
    """A store file holding ``batch`` as one source's unclassified items."""
    path = folder / "items.db"
    with db.open_store(path) as store:
        store.sync_sources([{"id": "bench", "name": "Bench", "kind": "feed",
                             "url": "https://bench.invalid/feed"}])
        store.save_items([{"url": f"https://bench.invalid/{n}", "source_id": "bench",
                           "title": item.title, "body": item.text}
                          for n, item in enumerate(batch)])
    return path


def store_rate(label: str, batch: list[ItemText], classifier: Classifier, folder: Path) -> float:
    """Items/s of `stiwatch classify` on a new store of ``batch`` (building it is not timed)."""
    with db.open_store(store_of(batch, folder)) as store:
        started = time.perf_counter()
        report = classify_store(store, classifier)
        seconds = time.perf_counter() - started
    n = report.classified + report.inherited
    print(f"{label:<34} {n / seconds:8.0f} items/s  ({seconds / n * 1000:.2f} ms/item)")
    return n / seconds


def command_rate(label: str, batch: list[ItemText], model_dir: str | None, folder: Path) -> float:
    """Items/s of the `stiwatch classify` command itself in a new process (the CPU affinity
    of this one), on a new store of ``batch``: the command's own report, which times the
    classification and leaves out starting Python and loading the model (as the target does),
    with the first batch's cold caches in it as a user's run has them."""
    model = ["--model-dir", model_dir] if model_dir else ["--no-model"]
    done = subprocess.run(
        [sys.executable, "-m", "stiwatch", "--db", str(store_of(batch, folder)), "--quiet",
         "classify", "--json", *model],
        check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    n, seconds = report["classified"] + report["inherited"], report["seconds"]
    print(f"{label:<34} {n / seconds:8.0f} items/s  ({seconds / n * 1000:.2f} ms/item)")
    return n / seconds


_seeds = iter(range(1, 1_000_000))


def news(n: int) -> tuple[list[ItemText], list[ItemText]]:
    """A few items to warm up on and ``n`` others to time: the taggers remember a batch's
    scans, and timing a batch a second time would time those memories."""
    return items(min(n, 50), seed=next(_seeds)), items(n, seed=next(_seeds))


def rate(label: str, batches: tuple[list[ItemText], list[ItemText]],
         work: Callable[[list[ItemText]], Any]) -> float:
    """Items/s of ``work`` on the second of ``batches``, after a warm-up on the first (code
    paths warm, result memories cold)."""
    warm, timed = batches
    work(warm)
    started = time.perf_counter()
    work(timed)
    seconds = time.perf_counter() - started
    n = len(timed)
    print(f"{label:<34} {n / seconds:8.0f} items/s  ({seconds / n * 1000:.2f} ms/item)")
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="folder of a trained model (default: rules only)")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--stip", help="a STIP Compass export: time its initiatives too")
    args = parser.parse_args()
    n = args.items
    rules_only = Classifier.load(None)
    c = Classifier.load(args.model_dir) if args.model_dir else rules_only
    print(f"{n} items of 2,000 words; classifier: {c.describe()}")
    rate("rules relevance+areas", news(n),
         lambda batch: [(c.rules.relevance(i.title, i.text), c.rules.areas(i.title, i.text))
                        for i in batch])
    rate("domains", news(n), lambda batch: [c.domains.tag(i.title, i.text) for i in batch])
    rate("gazetteer", news(n),
         lambda batch: [(c.gazetteer.tag(i.title, i.text),
                         c.gazetteer.international(i.title, i.text)) for i in batch])
    if c.model is not None:
        rate("model (tf-idf + linear)", news(n),
             lambda batch: c.model.predict([c.model.text(i.title, i.text) for i in batch]))
    base = rate("baseline: whole, rules only", news(n), rules_only.classify)
    if c is not rules_only:
        whole = rate("whole classifier with model", news(n), c.classify)
        print(f"with model / rules only: {whole / base:.2f}")
    ranker = c.country_model.ranker if c.country_model is not None else None
    if args.stip and ranker is not None:
        from classifier.stip import read_stip

        # batches of 500 like `stiwatch classify`'s (the gazetteer remembers a batch's scans)
        initiatives = [ItemText(e.title, e.text) for e in read_stip(args.stip)]
        chunks = [initiatives[k:k + 500] for k in range(0, 2000, 500)]
        c.country_model.ranker = None
        without = rate("programmes, thresholds (baseline)", (chunks[0], chunks[1]), c.classify)
        c.country_model.ranker = ranker
        ranked = rate("programmes, country ranker", (chunks[2], chunks[3]), c.classify)
        print(f"ranker / thresholds: {ranked / without:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        c.classify(items(50, seed=next(_seeds)))
        stored = store_rate("`stiwatch classify` (store, model)" if c is not rules_only
                            else "`stiwatch classify` (store, rules)",
                            items(n, seed=next(_seeds)), c, Path(folder))
        print(f"`stiwatch classify` / rules only in memory: {stored / base:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        command = command_rate("`stiwatch classify` command", items(n, seed=next(_seeds)),
                               args.model_dir, Path(folder))
        print(f"the command / rules only in memory: {command / base:.2f}")


if __name__ == "__main__":
    main()
