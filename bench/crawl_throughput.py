"""Crawl throughput: articles per minute end to end (fetch + extract + dedup + store).

Builds a loopback site of N article pages (default 2,000; ``--quick``: 200) listed in one
sitemap, then measures in the same run:

- baseline: a bare Scrapy spider fetching the same pages with the same concurrency, doing
  nothing with them (the cost of HTTP alone, in its own process);
- stiwatch: ``crawler.runner.crawl`` on a fresh store, the way `stiwatch crawl` runs it
  (robots.txt, sitemap, extraction, near-duplicate lookup, batched SQLite writes).

Prints articles/minute for both, the ratio, and the crawl process's peak memory. Politeness is
off (delay 0, no AutoThrottle, 16 requests in flight): this measures the machine, not a site.

    python bench/crawl_throughput.py [--articles N | --quick] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CONCURRENCY = 16
WORDS = ("research funding ministry agency programme science technology innovation policy "
         "university laboratory grant council strategy quantum semiconductor climate health "
         "data open access security talent cooperation budget national international call "
         "proposal evaluation industry startup infrastructure doctoral fellowship network "
         "energy space biotechnology artificial intelligence computing review report plan").split()


def build_site(root: Path, count: int) -> None:
    """N article pages with realistic boilerplate (about 12 KB each) under root/a/."""
    rng = random.Random(7)
    (root / "a").mkdir(parents=True)
    nav = "".join(f"<li><a href='/section/{i}'>Section {i}</a></li>" for i in range(40))
    footer = "".join(f"<p>Footer link {i}: contact, privacy, accessibility, press office</p>"
                     for i in range(12))
    for n in range(count):
        paragraphs = "".join(
            "<p>" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 90))) + ".</p>"
            for _ in range(rng.randint(5, 9)))
        (root / "a" / f"{n}.html").write_text(
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Article {n} | Bench newsroom</title>"
            f"<meta property='article:published_time' content='2026-11-2{n % 5}T10:00:00Z'>"
            f"</head><body><header><ul class='nav'>{nav}</ul></header><main><article>"
            f"<h1>Research policy article number {n}</h1>{paragraphs}</article></main>"
            f"<aside><ul>{nav}</ul></aside><footer>{footer}</footer></body></html>",
            encoding="utf-8")


def bare_fetch(url_file: str) -> None:
    """Child mode: fetch every URL with plain Scrapy, print seconds and responses as JSON."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    urls = Path(url_file).read_text().split()
    result: dict = {}

    class Bare(scrapy.Spider):
        name = "bare"

        async def start(self):
            for url in urls:
                yield scrapy.Request(url, callback=self.parse)

        def parse(self, response):
            result["responses"] = result.get("responses", 0) + 1

    process = CrawlerProcess({
        "LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False, "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS": CONCURRENCY, "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
        "TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.epollreactor.EPollReactor",
    })
    started = time.monotonic()
    process.crawl(Bare)
    process.start()
    result["seconds"] = time.monotonic() - started
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 articles")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare-fetch", metavar="URL_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_fetch:
        bare_fetch(args.bare_fetch)
        return 0
    count = 200 if args.quick else args.articles

    import db
    from crawler.runner import crawl
    from mockserver import MockServer

    tmp = Path(tempfile.mkdtemp(prefix="stiwatch-bench-"))
    root = tmp / "site"
    build_site(root, count)
    with MockServer(root) as server:
        base = server.url("").rstrip("/")
        urls = [f"{base}/a/{n}.html" for n in range(count)]
        (tmp / "urls.txt").write_text("\n".join(urls))
        (root / "sitemap.xml").write_text(
            "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
            + "".join(f"<url><loc>{u}</loc></url>" for u in urls) + "</urlset>")

        bare = json.loads(subprocess.run(
            [sys.executable, __file__, "--bare-fetch", str(tmp / "urls.txt")],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

        store_path = tmp / "bench.db"
        with db.open_store(store_path) as store:
            store.sync_sources([{"id": "bench", "name": "Bench", "kind": "sitemap",
                                 "url": f"{base}/sitemap.xml", "country": "DE",
                                 "language": "en", "org_type": "news"}])
        # The one source lists every article: a crawl's cap on new articles per source (500
        # by default, the rest left for the next crawl) would leave most of them unfetched.
        settings = {"download_delay": 0.0, "autothrottle": False,
                    "concurrent_requests_per_domain": CONCURRENCY, "log_level": "ERROR",
                    "max_new_articles_per_source": count}
        # The process's only crawl, as a one-shot `stiwatch crawl` runs it: the crawler loads
        # the extraction libraries at its first article, inside the report's seconds.
        started = time.monotonic()
        report = crawl(store_path, settings, scrapy_overrides={"CONCURRENT_REQUESTS": CONCURRENCY})
        wall = time.monotonic() - started
    totals = report.totals()
    stored = totals["new"] + totals["duplicates"]
    crawl_seconds = report.cost.get("seconds") or wall
    result = {
        "articles": count,
        "stored": stored,
        "baseline_per_min": round(bare["responses"] / bare["seconds"] * 60),
        "stiwatch_per_min": round(stored / crawl_seconds * 60),
        "stiwatch_wall_per_min": round(stored / wall * 60),
        "ratio": round((stored / crawl_seconds) / (bare["responses"] / bare["seconds"]), 3),
        "peak_memory_mb": report.cost.get("peak_memory_mb"),
        "baseline_peak_memory_mb": round(bare["peak_memory_mb"], 1),
        "crawl_seconds": round(crawl_seconds, 1),
        "wall_seconds": round(wall, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{count} articles on loopback, {CONCURRENCY} requests in flight")
        print(f"  bare Scrapy fetch (baseline): {result['baseline_per_min']:>7,} pages/min, "
              f"peak {result['baseline_peak_memory_mb']} MB")
        print(f"  stiwatch crawl, end to end:   {result['stiwatch_per_min']:>7,} articles/min "
              f"({result['ratio']}x the baseline), peak {result['peak_memory_mb']} MB; "
              f"{result['stiwatch_wall_per_min']:,}/min counting process start")
    ok = stored == count and result["stiwatch_per_min"] >= 1000 and \
        (result["peak_memory_mb"] or 0) < 300
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
