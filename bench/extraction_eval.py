"""Extraction quality: crawler.extract.extract_article against the article-extraction benchmark.

Scores the ``text`` that extract_article returns for the 181 real news pages of Zyte's
article-extraction benchmark (``../shared/data/eval/article-extraction-benchmark``, never copied
into the repo) against their ground-truth bodies.

Two scorers (``bench/_extraction_scoring.py``): the benchmark's own (4-token shingles of
case-sensitive words, per-page normalised TP/FP/FN, F1 = harmonic mean of the mean precision and
the mean recall; re-implemented from its ``evaluate.py``, not copied) and ours (case-folded token
precision/recall/F1 averaged over pages, plus shingle F1). Two baselines in the same run: plain
``trafilatura.extract()`` on the raw bytes, and trafilatura as the benchmark's own
``extractors/run_trafilatura.py`` runs it (the page decoded as UTF-8, ``include_comments=False``).

This data measures the system; do not tune on it.

    python bench/extraction_eval.py [--data DIR] [--limit N | --quick] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawler.extract import extract_article  # noqa: E402
from _extraction_scoring import benchmark_scores, score, token_scores  # noqa: E402,F401

DEFAULT_DATA = Path(os.environ.get("STIWATCH_SHARED_DATA", ROOT.parent / "shared" / "data")) \
    / "eval" / "article-extraction-benchmark"


def plain_trafilatura(body: bytes, url: str) -> str:
    import trafilatura

    return trafilatura.extract(body, url=url) or ""


def benchmark_trafilatura(body: bytes, url: str) -> str:
    """trafilatura exactly as the benchmark's run_trafilatura.py calls it."""
    import trafilatura

    return trafilatura.extract(body.decode("utf-8"), include_comments=False) or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N pages")
    parser.add_argument("--quick", action="store_true", help="score the first 20 pages only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.quick and not args.limit:
        args.limit = 20

    truth_path = args.data / "ground-truth.json"
    if not truth_path.exists():
        print(f"skipped: needs {truth_path} (third-party data beside the checkout)")
        return 0
    truth = json.loads(truth_path.read_text("utf-8"))
    ids = sorted(truth)[: args.limit or None]

    systems = {
        "extract_article": lambda body, url: extract_article(
            body, url, {"Content-Type": "text/html"}).text,
        "trafilatura.extract": plain_trafilatura,
        "trafilatura (benchmark's run)": benchmark_trafilatura,
    }
    pairs: dict[str, list[tuple[str, str]]] = {name: [] for name in systems}
    elapsed = dict.fromkeys(systems, 0.0)
    for page_id in ids:
        body = gzip.decompress((args.data / "html" / f"{page_id}.html.gz").read_bytes())
        url = truth[page_id]["url"]
        expected = truth[page_id]["articleBody"]
        for name, system in systems.items():
            started = time.perf_counter()
            predicted = system(body, url)
            elapsed[name] += time.perf_counter() - started
            pairs[name].append((predicted, expected))

    result = {
        "pages": len(ids),
        "systems": {
            name: {
                "benchmark": {k: round(v, 4) for k, v in benchmark_scores(rows).items()},
                "token": {k: round(v, 4) for k, v in token_scores(rows).items()},
                "empty_texts": sum(1 for predicted, _ in rows if not predicted.strip()),
                "ms_per_page": round(1000 * elapsed[name] / len(ids), 1),
            }
            for name, rows in pairs.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"article extraction benchmark: {len(ids)} pages")
    print(f"{'':31}{'benchmark scorer':^30}|{'token scorer (ours)':^40}|")
    print(f"{'':31}{'P':>7}{'R':>7}{'F1':>8}{'acc':>7} |{'P':>8}{'R':>8}{'F1':>8}"
          f"{'shingle F1':>12}   |{'ms/page':>8}")
    for name, row in result["systems"].items():
        b, t = row["benchmark"], row["token"]
        print(f"{name:31}{b['precision']:>7.3f}{b['recall']:>7.3f}{b['f1']:>8.4f}"
              f"{b['accuracy']:>7.3f} |{t['precision']:>8.4f}{t['recall']:>8.4f}{t['f1']:>8.4f}"
              f"{t['shingle_f1']:>12.4f}   |{row['ms_per_page']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
