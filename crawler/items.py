"""What the spiders hand the store pipeline, and the report a crawl produces.

Plain dataclasses, picklable and JSON-friendly: the report travels from the crawler's child
process back to `stiwatch crawl` as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


# The fetch_error of an article page that robots.txt forbids (the site's wish, not a fault).
ROBOTS_FORBIDDEN = "forbidden by robots.txt"


@dataclass
class Candidate:
    """An article seen in a listing (feed entry, listing link, sitemap URL) before its page is
    fetched: enough to store it as a partial item if the page never yields text."""

    url: str
    source_id: str
    title: str = ""
    summary: str = ""
    published_at: str | None = None  # from the listing (feed date, sitemap date), ISO UTC
    language: str | None = None  # the source's language, until the page tells better
    content: str = ""  # full text a feed entry carried (content:encoded), a fallback body
    stored_date: tuple[str, str] | None = None  # (published_at, date_source) of a stored row
    stored_error: str | None = None  # the fetch_error of a stored (partial) row
    listed_at: str | None = None  # a sitemap's <lastmod> (no publication date): what is newer


@dataclass
class ArticleItem:
    """One row for ``items`` (columns of db.items.ITEM_COLUMNS) plus the text to deduplicate."""

    row: dict[str, Any]
    refetch: bool = False  # the URL was already stored (partial retry or --refresh)
    listing_url: str | None = None  # the listing's URL for it, when the page's own differs


def with_note(flag: str | None, note: str) -> str:
    """A source's flag (the notes of its last crawl, "; "-separated) with ``note`` added."""
    return f"{flag}; {note}" if flag else note


@dataclass
class SourceEvent:
    """What a source's listing fetch came to, and counts the pipeline adds to its report.

    ``status`` None means "counts only" (e.g. a child sitemap); otherwise one of ``ok``,
    ``not_modified`` (a 304) or ``failed``, which the pipeline records as the source's health,
    or ``paused`` (its listing's host asked for a long pause: its health is left as it was).
    """

    source_id: str
    status: str | None = None
    error: str | None = None
    flag: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    # A further listing (a sitemap of an index) whose etag/last_modified these are; None: the
    # source's own listing. Its 304 is an event with the validators that earned it.
    listing: str | None = None
    unchanged: int = 0  # listed articles already stored (or another source's), not fetched again
    queued: int = 0  # article pages requested
    deferred: int = 0  # new articles left for the next crawl (max_new_articles_per_source)
    robots_forbidden: int = 0  # stored pages robots.txt still forbids (nothing written again)
    # Why ``deferred`` pages wait when their host asked for a pause ("HOST asked for a pause
    # of N s (Retry-After): paused until T"); None: they are over max_new_articles_per_source.
    paused: str | None = None
    errors: list[str] = field(default_factory=list)  # problems short of failing the source


@dataclass
class SourceReport:
    id: str
    kind: str = ""
    # ok | not_modified | paused (its host asked for a long pause: not asked) | failed |
    # pending (never reached)
    status: str = "pending"
    new: int = 0
    duplicates: int = 0
    updated: int = 0
    partial: int = 0
    unchanged: int = 0
    queued: int = 0
    robots_forbidden: int = 0  # pages robots.txt forbids (not requested; kept partial)
    deferred: int = 0  # new articles left for the next crawl
    paused: int = 0  # of them, those whose host asked for a pause (Retry-After) too long
    pause_note: str | None = None  # which host, and how long it asked for
    errors: list[str] = field(default_factory=list)
    flag: str | None = None

    @property
    def ok(self) -> bool:
        # A paused source is no failure: the host asked us to wait, and we do.
        return self.status in ("ok", "not_modified", "paused")


@dataclass
class CrawlReport:
    run_id: int | None = None
    status: str = "running"  # crawl_runs.status: ok | partial | failed | interrupted
    started_at: str | None = None
    finished_at: str | None = None
    sources: list[SourceReport] = field(default_factory=list)
    # What it cost: requests, responses, bytes, seconds, peak memory of the crawl process.
    cost: dict[str, Any] = field(default_factory=dict)
    # Why the store refused to be written (a full disk, a read-only file): the crawl stopped.
    store_error: str | None = None

    @property
    def ok_sources(self) -> int:
        return sum(source.ok for source in self.sources)

    @property
    def failed_sources(self) -> int:
        return len(self.sources) - self.ok_sources

    def totals(self) -> dict[str, int]:
        keys = ("new", "duplicates", "updated", "partial", "unchanged", "queued",
                "robots_forbidden")
        totals = {key: sum(getattr(s, key) for s in self.sources) for key in keys}
        totals["errors"] = sum(len(s.errors) for s in self.sources)
        totals["sources"] = len(self.sources)
        totals["sources_ok"] = self.ok_sources
        totals["sources_failed"] = self.failed_sources
        return totals

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["totals"] = self.totals()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrawlReport":
        names = {f.name for f in fields(SourceReport)}
        sources = [SourceReport(**{k: v for k, v in s.items() if k in names})
                   for s in data.get("sources", [])]
        return cls(run_id=data.get("run_id"), status=data.get("status", "failed"),
                   started_at=data.get("started_at"), finished_at=data.get("finished_at"),
                   sources=sources, cost=data.get("cost") or {},
                   store_error=data.get("store_error"))
