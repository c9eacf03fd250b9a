"""Extraction quality: crawler.extract.extract_article against the article-extraction benchmark.

Scores the ``text`` that extract_article returns for the 181 real news pages of Zyte's
article-extraction benchmark (``../shared/data/eval/article-extraction-benchmark``, never copied
into the repo) against their ground-truth bodies, and prints the means next to a baseline
measured in the same run: plain ``trafilatura.extract()`` on the raw bytes.

Measures (re-implemented from the benchmark's description, not copied):
- token precision / recall / F1: multisets of lower-cased word tokens (``\\w+``);
- shingle F1: the same over 4-token shingles (order-aware, punishes shuffled or repeated text).

This data measures the system; do not tune on it.

    python bench/extraction_eval.py [--data DIR] [--limit N | --quick] [--json]
"""

from __future__ import annotations

import argparse
from collections import Counter
import gzip
import json
import os
from pathlib import Path
import re
import statistics
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crawler.extract import extract_article  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("STIWATCH_SHARED_DATA", ROOT.parent / "shared" / "data")) \
    / "eval" / "article-extraction-benchmark"
TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.casefold())


def shingles(words: list[str], size: int = 4) -> list[tuple[str, ...]]:
    if len(words) < size:
        return [tuple(words)] if words else []
    return [tuple(words[i:i + size]) for i in range(len(words) - size + 1)]


def prf(predicted: list, truth: list) -> tuple[float, float, float]:
    """Precision, recall, F1 of two multisets; empty against empty is a perfect score."""
    if not predicted and not truth:
        return 1.0, 1.0, 1.0
    common = sum((Counter(predicted) & Counter(truth)).values())
    precision = common / len(predicted) if predicted else 0.0
    recall = common / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(predicted: str, truth: str) -> dict[str, float]:
    p_words, t_words = tokens(predicted), tokens(truth)
    precision, recall, f1 = prf(p_words, t_words)
    _, _, shingle_f1 = prf(shingles(p_words), shingles(t_words))
    return {"precision": precision, "recall": recall, "f1": f1, "shingle_f1": shingle_f1}


def baseline(body: bytes, url: str) -> str:
    import trafilatura

    return trafilatura.extract(body, url=url) or ""


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

    ours: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    elapsed = {"ours": 0.0, "baseline": 0.0}
    for page_id in ids:
        body = gzip.decompress((args.data / "html" / f"{page_id}.html.gz").read_bytes())
        url = truth[page_id]["url"]
        expected = truth[page_id]["articleBody"]
        started = time.perf_counter()
        article = extract_article(body, url, {"Content-Type": "text/html"})
        elapsed["ours"] += time.perf_counter() - started
        ours.append(score(article.text, expected))
        started = time.perf_counter()
        plain = baseline(body, url)
        elapsed["baseline"] += time.perf_counter() - started
        base.append(score(plain, expected))

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return statistics.fmean(row[key] for row in rows)

    result = {
        "pages": len(ids),
        "extract_article": {k: round(mean(ours, k), 4) for k in ours[0]},
        "trafilatura_baseline": {k: round(mean(base, k), 4) for k in base[0]},
        "empty_texts": {"extract_article": sum(r["recall"] == 0 for r in ours),
                        "trafilatura_baseline": sum(r["recall"] == 0 for r in base)},
        "ms_per_page": {k: round(1000 * v / len(ids), 1) for k, v in elapsed.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"article extraction benchmark: {len(ids)} pages")
    print(f"{'':24}{'precision':>10}{'recall':>10}{'F1':>10}{'shingle F1':>12}{'ms/page':>10}")
    for name, key in (("extract_article", "ours"), ("trafilatura.extract", "baseline")):
        row = result["extract_article" if key == "ours" else "trafilatura_baseline"]
        print(f"{name:24}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
              f"{row['shingle_f1']:>12.4f}{result['ms_per_page'][key]:>10.1f}")
    ratio = result["extract_article"]["f1"] / max(result["trafilatura_baseline"]["f1"], 1e-9)
    print(f"F1 ratio (ours / baseline): {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
