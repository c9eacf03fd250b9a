"""The spiders `scrapy list` shows: every source at once, or the sources of one kind.

`stiwatch crawl` runs ``sources`` so that all sources share one downloader: per-host politeness
(concurrency, delay, robots.txt) then holds across sources that live on the same host.
From the repository root: ``scrapy crawl feed -a source=nsf-news`` (store: $STIWATCH_DB).
"""

from __future__ import annotations

from .base import SourceSpider  # noqa: F401 - `sources`: every kind at once


class FeedSpider(SourceSpider):
    """RSS/Atom feed sources: feedparser on the fetched bytes, then each entry's page."""

    name = "feed"
    kinds = ("feed",)


class HtmlListingSpider(SourceSpider):
    """HTML listing pages: the source's `links` CSS selector picks the article links."""

    name = "html"
    kinds = ("html",)


class SitemapSpider(SourceSpider):
    """XML sitemaps, sitemap indexes and news sitemaps: recent entries only."""

    name = "sitemap"
    kinds = ("sitemap",)
