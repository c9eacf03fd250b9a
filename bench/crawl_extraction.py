"""Extraction quality through the real crawl: serve the 181 benchmark pages, crawl, score the
stored bodies.

``bench/extraction_eval.py`` scores ``extract_article`` called directly; this one checks that
nothing between the web server and the store loses quality: the pages of Zyte's
article-extraction benchmark (``../shared/data/eval/article-extraction-benchmark``, never copied
into the repo) are served on loopback as ``text/html`` (no charset: the crawler must find it),
listed in a sitemap, crawled with ``crawler.runner.crawl`` into a fresh store, and each stored
``items.body`` is scored against the ground truth with the same two scorers as extraction_eval
(the benchmark's own: shingle precision/recall/F1 with per-page normalisation; ours: token
precision/recall/F1 means, 4-token shingle F1; see ``bench/_extraction_scoring.py``).
Baseline in the same run: ``extract_article`` on the same bytes without the crawl. A page the crawl did not store scores 0.

This data measures the system; do not tune on it.

    python bench/crawl_extraction.py [--data DIR] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from extraction_eval import DEFAULT_DATA  # noqa: E402
from _extraction_scoring import benchmark_scores, token_scores  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="the first 20 pages only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    truth_path = args.data / "ground-truth.json"
    if not truth_path.exists():
        print(f"skipped: needs {truth_path} (third-party data beside the checkout)")
        return 0
    truth = json.loads(truth_path.read_text("utf-8"))
    ids = sorted(truth)[: 20 if args.quick else None]

    import db
    from crawler.extract import extract_article
    from crawler.runner import crawl
    from mockserver import MockServer

    tmp = Path(tempfile.mkdtemp(prefix="stiwatch-bench-"))
    (tmp / "site").mkdir()
    bodies = {page_id: gzip.decompress((args.data / "html" / f"{page_id}.html.gz").read_bytes())
              for page_id in ids}
    with MockServer(tmp / "site") as server:
        base = server.url("").rstrip("/")
        for page_id, body in bodies.items():
            def serve(handler, body=body):
                handler.send_body(200, body, "text/html")

            server.routes[f"/p/{page_id}.html"] = serve
        (tmp / "site" / "sitemap.xml").write_text(
            "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
            + "".join(f"<url><loc>{base}/p/{i}.html</loc></url>" for i in ids) + "</urlset>")
        store_path = tmp / "bench.db"
        with db.open_store(store_path) as store:
            store.sync_sources([{"id": "bench", "name": "Bench", "kind": "sitemap",
                                 "url": f"{base}/sitemap.xml", "country": "US",
                                 "language": "en", "org_type": "news"}])
        started = time.monotonic()
        report = crawl(store_path, {"download_delay": 0.0, "autothrottle": False,
                                    "concurrent_requests_per_domain": 8, "log_level": "ERROR"})
        seconds = time.monotonic() - started
        with db.open_store(store_path) as store:
            stored = {row["url"].rsplit("/", 1)[1][:-5]: row
                      for row in store.query("SELECT url, body, status FROM items")}

    crawled, direct = [], []
    for page_id in ids:
        expected = truth[page_id]["articleBody"]
        row = stored.get(page_id)
        crawled.append(((row or {}).get("body") or "", expected))
        article = extract_article(bodies[page_id], truth[page_id]["url"],
                                  {"Content-Type": "text/html"})
        direct.append((article.text, expected))

    def both(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
        return {"benchmark": {k: round(v, 4) for k, v in benchmark_scores(pairs).items()},
                "token": {k: round(v, 4) for k, v in token_scores(pairs).items()}}

    result = {
        "pages": len(ids),
        "stored_complete": sum(1 for r in stored.values() if r["status"] == "complete"),
        "crawl": both(crawled),
        "direct_extract_article": both(direct),
        "crawl_seconds": round(seconds, 1),
        "sources": [s.status for s in report.sources],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(ids)} benchmark pages crawled on loopback in {seconds:.1f} s; "
          f"{result['stored_complete']} stored complete")
    print(f"{'':28}{'benchmark scorer':^29}|{'token scorer (ours)':^38}")
    print(f"{'':28}{'P':>7}{'R':>7}{'F1':>8}{'acc':>7} |{'P':>8}{'R':>8}{'F1':>8}"
          f"{'shingle F1':>12}")
    for name, key in (("crawl -> items.body", "crawl"),
                      ("extract_article (baseline)", "direct_extract_article")):
        b, t = result[key]["benchmark"], result[key]["token"]
        print(f"{name:28}{b['precision']:>7.3f}{b['recall']:>7.3f}{b['f1']:>8.4f}"
              f"{b['accuracy']:>7.3f} |{t['precision']:>8.4f}{t['recall']:>8.4f}{t['f1']:>8.4f}"
              f"{t['shingle_f1']:>12.4f}")
    ratio = result["crawl"]["token"]["f1"] / max(result["direct_extract_article"]["token"]["f1"],
                                                 1e-9)
    print(f"token F1 ratio (crawl / direct): {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
