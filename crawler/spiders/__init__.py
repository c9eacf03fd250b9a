"""The Scrapy spiders, one per source kind (found by `scrapy list` through crawler.settings)."""
