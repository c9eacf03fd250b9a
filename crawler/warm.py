"""Imported once by the crawl worker server (see crawler.runner) so each crawl starts warm.

Importing Scrapy, trafilatura and friends, and running one extraction (which loads lazily built
tables and the language model), takes seconds; doing it once per process instead of once per
crawl matters to `stiwatch run`, the demo and the tests. Nothing here installs a Twisted reactor.
"""

from __future__ import annotations

import scrapy.crawler  # noqa: F401
import scrapy.utils.project  # noqa: F401

from . import dedup, pipelines, middlewares  # noqa: F401
from .extract import extract_article
from .spiders import base, listings, sources  # noqa: F401

_SAMPLE = (
    b"<html lang='en'><head><title>Warm-up</title></head><body><article><h1>Warm-up</h1>"
    + b"<p>This paragraph exists only to load the extraction machinery once, so that later"
    b" crawls in this process start without paying for it again.</p>" * 4
    + b"</article></body></html>"
)

try:
    extract_article(_SAMPLE, "http://localhost/warm-up.html")
except Exception:  # noqa: BLE001 - a failed warm-up must never stop the crawl server starting
    pass
