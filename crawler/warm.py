"""Imported once by the crawl fork server (see crawler.runner._context) so each crawl starts warm.

Importing Scrapy, trafilatura and friends, and running one extraction (which loads lazily built
tables and the language model), takes seconds; doing it once per process instead of once per
crawl matters to processes that crawl many times (the tests, the benchmarks). A process's first
crawl runs without it: a one-shot `stiwatch run` whose sources have nothing new would pay for
the extraction libraries without extracting anything. Nothing here installs a Twisted reactor.
"""

from __future__ import annotations

import scrapy.crawler  # noqa: F401
import scrapy.utils.project  # noqa: F401

from . import dedup, pipelines, middlewares  # noqa: F401
from .extract import warm_up
from .spiders import base, listings, sources  # noqa: F401

warm_up()
