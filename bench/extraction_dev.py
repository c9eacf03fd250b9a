"""Extraction quality on the development set: pages whose exact body text we know ourselves.

The set extraction changes are chosen and checked on (``data/eval`` only measures them):
- every article page of the demo site (``stiwatch.demo.build_site``; the body is the article's
  paragraphs in ``stiwatch/demo/content/*.toml``);
- every page in ``tests/fixtures/extract/`` whose ``.expected.json`` carries a top-level
  ``body`` (the exact article text, paragraphs separated by blank lines). These are written to
  look like real news templates: comments, share and newsletter widgets, related links,
  repeated headlines, bylines, datelines, tables, lists, captions.

Scored with both scorers of ``bench/_extraction_scoring.py`` (the benchmark's and ours); with
``--pages`` each page's scores are listed too, worst first.

    python bench/extraction_dev.py [--pages] [--json]
"""

from __future__ import annotations

import argparse
from datetime import date
import json
from pathlib import Path
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawler.extract import extract_article  # noqa: E402
from _extraction_scoring import benchmark_scores, score, token_scores  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "extract"
BASE_URL = "https://demo.example"


def demo_pages() -> list[tuple[str, bytes, str, str]]:
    """(name, page bytes, url, true body) for every article of a freshly built demo site."""
    from stiwatch.demo.site import build_site, load_content, placed_articles

    today = date(2026, 11, 26)  # any day: the text does not depend on it
    sources = load_content()
    pages = []
    with tempfile.TemporaryDirectory(prefix="stiwatch-dev-") as tmp:
        build_site(Path(tmp), BASE_URL, today, sources)
        for placed in placed_articles(sources, BASE_URL, today):
            body = (Path(tmp) / placed.file).read_bytes()
            pages.append((f"demo:{placed.article.key}", body, placed.url,
                          "\n\n".join(placed.article.paragraphs)))
    return pages


def fixture_pages() -> list[tuple[str, bytes, str, str]]:
    pages = []
    for spec_path in sorted(FIXTURES.glob("*.expected.json")):
        spec = json.loads(spec_path.read_text("utf-8"))
        if "body" not in spec:
            continue
        name = spec_path.name.removesuffix(".expected.json")
        pages.append((f"fixture:{name}", (FIXTURES / f"{name}.html").read_bytes(), spec["url"],
                      spec["body"]))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", action="store_true", help="list every page's scores")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    groups = {"demo site": demo_pages(), "written pages": fixture_pages()}
    results: dict[str, dict] = {}
    per_page = []
    elapsed, count = 0.0, 0
    all_pairs = []
    for group, pages in groups.items():
        pairs = []
        for name, body, url, truth in pages:
            started = time.perf_counter()
            text = extract_article(body, url, {"Content-Type": "text/html"}).text
            elapsed += time.perf_counter() - started
            count += 1
            pairs.append((text, truth))
            per_page.append((name, score(text, truth), text))
        all_pairs += pairs
        if not pairs:
            continue
        results[group] = {"pages": len(pairs), "benchmark": benchmark_scores(pairs),
                          "token": token_scores(pairs)}
    results["all"] = {"pages": len(all_pairs), "benchmark": benchmark_scores(all_pairs),
                      "token": token_scores(all_pairs)}
    results["ms_per_page"] = round(1000 * elapsed / max(count, 1), 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'':16}{'pages':>6}{'bench P':>9}{'bench R':>9}{'bench F1':>10}"
          f"{'tok P':>8}{'tok R':>8}{'tok F1':>8}")
    for group in (*groups, "all"):
        if group not in results:
            continue
        row = results[group]
        b, t = row["benchmark"], row["token"]
        print(f"{group:16}{row['pages']:>6}{b['precision']:>9.4f}{b['recall']:>9.4f}"
              f"{b['f1']:>10.4f}{t['precision']:>8.4f}{t['recall']:>8.4f}{t['f1']:>8.4f}")
    print(f"extract_article: {results['ms_per_page']} ms/page")
    if args.pages:
        for name, row, _text in sorted(per_page, key=lambda p: p[1]["f1"]):
            print(f"{row['f1']:.3f}  P {row['precision']:.3f}  R {row['recall']:.3f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
