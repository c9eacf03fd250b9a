"""Scrapy signals of stiwatch's own (connect with ``crawler.signals.connect(f, signal=...)``)."""

# Sent by crawler.runner to every crawler when the crawl is asked to stop (SIGTERM, or Ctrl-C
# through the parent), just before Scrapy's graceful stop begins: the middlewares drop what is
# not yet sent and the pipeline writes what it holds.
stop_requested = object()

# Sent by crawler.runner when the stiwatch process that started the crawl is gone (SIGKILL):
# nobody waits for the crawl any more, and that process's run lock is free, so the next run may
# begin beside it. The crawler ends at once, not after the downloads under way: the pipeline
# writes what it holds and closes the crawl's run as interrupted, then the process exits.
parent_gone = object()
