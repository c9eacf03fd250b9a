"""Scrapy settings for stiwatch's crawler: polite by default, bounded in time and memory.

`scrapy list` / `scrapy crawl <spider>` read this module through scrapy.cfg; `stiwatch crawl`
starts from it too and overrides the values that stiwatch's own settings control (see
``crawler.runner.scrapy_settings``). Every limit here exists so that one misbehaving site (a
hanging server, an endless redirect, a decompression bomb) costs bounded time and memory.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version
import os
import sys

try:
    _VERSION = _version("stiwatch")
except PackageNotFoundError:  # running from a plain checkout
    _VERSION = "0"

BOT_NAME = "stiwatch"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# -- stiwatch's own settings (read by our spiders, pipelines and middlewares in from_crawler) --
STIWATCH_DB = os.environ.get("STIWATCH_DB", "stiwatch.db")  # the store the spiders crawl for
STIWATCH_REFRESH = False  # fetch articles again even when already stored
STIWATCH_SITEMAP_MAX_AGE_DAYS = 30  # sitemap entries older than this are ignored
STIWATCH_MAX_NEW_ARTICLES = 500  # article pages fetched per source per crawl at most
STIWATCH_BATCH_SIZE = 50  # items written per transaction
STIWATCH_BATCH_SECONDS = 2.0  # ...or at least this often, so a killed crawl loses little
STIWATCH_MAX_PARTIAL_ATTEMPTS = 8  # stop refetching an article page that never works
# (a 404 is given up after 3 attempts, a 410 after 1: crawler.spiders.base.attempts_allowed)
STIWATCH_MAX_RETRY_AFTER = 120  # a longer Retry-After (s) pauses the host, across crawls...
STIWATCH_MAX_HOST_PAUSE = 7 * 24 * 3600  # ...for at most this long (s), whatever it asked
STIWATCH_RETRY_BACKOFF_BASE = 1.0  # seconds before the first retry; doubles each time
STIWATCH_RETRY_BACKOFF_MAX = 30.0
STIWATCH_EVENTS = None  # callable(event: dict) fed by the pipeline (set by crawler.runner)
# The `stiwatch crawl` or `stiwatch run` process that started this crawler and holds the run
# lock (set by crawler.runner): the pid its lock error names, and the one to stop.
STIWATCH_PID = None

# -- identity ---------------------------------------------------------------------------------
# Names stiwatch and a way to reach whoever runs it; `stiwatch crawl` fills in `contact`.
USER_AGENT = f"stiwatch/{_VERSION} (+https://github.com/stiwatch/stiwatch)"
ROBOTSTXT_OBEY = True
ROBOTSTXT_USER_AGENT = "stiwatch"  # the product token robots.txt groups are matched on

# -- politeness -------------------------------------------------------------------------------
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
DOWNLOAD_DELAY_JITTER = 0.0  # the delay is a minimum, never shortened at random
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # no listening sockets on a server that runs from cron

# Twisted's own reactor, not the asyncio one: under asyncio, Scrapy 2.19 starts every queued
# request of a host at once when the delay is 0 (downloads are scheduled as tasks that have not
# yet counted themselves as transferring), so CONCURRENT_REQUESTS_PER_DOMAIN was not enforced.
TWISTED_REACTOR = (
    "twisted.internet.epollreactor.EPollReactor" if sys.platform.startswith("linux")
    else "twisted.internet.selectreactor.SelectReactor"
)

# -- limits -----------------------------------------------------------------------------------
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024  # also applied after decompression (gzip bombs)
DOWNLOAD_WARNSIZE = 0
REDIRECT_MAX_TIMES = 5
# A <meta refresh> is not a reason to wander off. Off, not just given a zero delay: the
# middleware still decoded every HTML page in full (Scrapy's own charset detection) to look
# for one, before the spider decodes it again.
METAREFRESH_ENABLED = False
METAREFRESH_MAXDELAY = 0
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
RETRY_GIVE_UP_LOG_LEVEL = "INFO"  # the crawl summary reports it as the source's error
DNS_TIMEOUT = 20

# -- components -------------------------------------------------------------------------------
DOWNLOADER_MIDDLEWARES = {
    # First: a page on this machine or its private network is refused before robots.txt.
    "crawler.middlewares.InternalAddressMiddleware": 50,
    # Ours replaces Scrapy's: the same checks, without letting concurrent waiters through.
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.SafeRobotsTxtMiddleware": 100,
    # Ours replaces Scrapy's: the same retries, but with backoff and Retry-After.
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    "crawler.middlewares.ConditionalGetMiddleware": 560,
    # Last: after every middleware that may wait (robots.txt), DownloaderStats and HttpCache.
    "crawler.middlewares.StopMiddleware": 950,
}
EXTENSIONS = {
    # Ours replaces Scrapy's: the same adaptive delay, never below robots.txt's Crawl-delay.
    "scrapy.extensions.throttle.AutoThrottle": None,
    "crawler.middlewares.PoliteThrottle": 0,
}
ITEM_PIPELINES = {
    "crawler.pipelines.StorePipeline": 300,
}

# Our spiders own error handling (they store what failed as that source's error); Scrapy's log
# is for operators, quiet by default.
LOG_LEVEL = "WARNING"
FEED_EXPORT_ENCODING = "utf-8"
