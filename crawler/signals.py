"""Scrapy signals of stiwatch's own (connect with ``crawler.signals.connect(f, signal=...)``)."""

# Sent by crawler.runner to every crawler when the crawl is asked to stop (SIGTERM, or Ctrl-C
# through the parent), just before Scrapy's graceful stop begins: the middlewares drop what is
# not yet sent and the pipeline writes what it holds.
stop_requested = object()
