"""Items -> the store, in batches, one transaction each; source health; the crawl's report.

Articles are buffered and written ``STIWATCH_BATCH_SIZE`` at a time (or every
``STIWATCH_BATCH_SECONDS``), each batch in one transaction, with near-duplicates found inside
the same transaction so that two copies in one batch are still linked. A crawl killed half-way
loses at most the unwritten batch, whose URLs are not stored and so are fetched again next time.
"""

from __future__ import annotations

from collections import Counter
import logging
import os
import socket
import sqlite3
import time
from typing import Any, Callable

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

import db
from db.clock import utcnow

from .dedup import Deduper
from .items import (ROBOTS_FORBIDDEN, ArticleItem, CrawlReport, SourceEvent, SourceReport,
                    with_note)
from .middlewares import new_pauses
from .signals import parent_gone, stop_requested
from .text import shorten

logger = logging.getLogger(__name__)

Events = Callable[[dict[str, Any]], None]

# An article fetched again counts as updated only if one of these differs from the stored row
# (content_hash stands for the body); a new fetched_at alone is not news.
# Longest title stored. Real headlines stay far below it; a feed or page whose "title" is a
# megabyte of text would otherwise put it in every subscriber's digest, every search result and
# every table row.
TITLE_MAX_CHARS = 500
CONTENT_COLUMNS = ("title", "summary", "content_hash", "language", "published_at", "status")


def _process_alive(stats: dict[str, Any]) -> bool:
    """Whether the crawl process a running crawl_runs row names still exists (if we can tell)."""
    # The crawler itself, which writes the row: its `stiwatch` may be gone (SIGKILL) while it
    # stops. Rows from before crawler_pid have the crawler's pid as `pid`.
    pid, host = stats.get("crawler_pid", stats.get("pid")), stats.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another machine's crawl, or no record: not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody has reaped yet is a zombie: dead all the same
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class StorePipeline:
    def __init__(self, crawler: Crawler, store_path: str, batch_size: int,
                 batch_seconds: float, events: Events | None) -> None:
        self.crawler = crawler
        self.store_path = store_path
        self.batch_size = max(1, batch_size)
        self.batch_seconds = batch_seconds
        self.events = events
        self.pending: list[ArticleItem] = []
        self.last_flush = time.monotonic()
        self.report = CrawlReport()
        self.by_source: dict[str, SourceReport] = {}
        self.store: db.Store | None = None
        # New ETag/Last-Modified per source, stored only once the crawl has finished: a crawl
        # killed half-way must not leave a validator that makes the next crawl see a 304 and
        # skip the articles it never stored.
        self.validators: dict[str, tuple[str | None, str | None, str | None]] = {}
        # Sources one of whose further listings (a sitemap of an index) failed: their root's
        # validators are not kept, or the next crawl would get a 304 for an unchanged index
        # and never go back to the listing that failed.
        self.incomplete: set[str] = set()
        # The validators of each source's further listings (sitemaps of an index) this crawl,
        # kept on the same terms as its root's.
        self.listings: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        # Why each source's article pages failed this crawl (fetch_error of its partial rows).
        self.page_errors: dict[str, list[str]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "StorePipeline":
        settings = crawler.settings
        path = settings.get("STIWATCH_DB")
        if not path:
            raise NotConfigured("STIWATCH_DB is not set")
        pipeline = cls(crawler, path, settings.getint("STIWATCH_BATCH_SIZE", 50),
                       settings.getfloat("STIWATCH_BATCH_SECONDS", 2.0),
                       settings.get("STIWATCH_EVENTS"))
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        # Asked to stop: what was fetched is written now, not after the downloads under way
        # end (the crawler may yet be killed if one of them hangs).
        crawler.signals.connect(pipeline.flush, signal=stop_requested)
        crawler.signals.connect(pipeline.abandon, signal=parent_gone)
        return pipeline

    # -- lifecycle ---------------------------------------------------------------------------

    def open_spider(self, spider: Any = None) -> None:
        self.store = db.open_store(self.store_path)
        self.deduper = Deduper(self.store)
        # A crawl killed earlier left its run `running`: say what became of it.
        self.store.close_abandoned_crawl_runs(_process_alive)
        # `pid` is the process a user stops (`kill PID`), the one the run lock's error and
        # the lock file name; the crawler is a child of it (`scrapy crawl` alone: itself).
        stiwatch_pid = self.crawler.settings.get("STIWATCH_PID") or os.getpid()
        self.report.run_id = self.store.start_crawl_run(
            {"pid": stiwatch_pid, "crawler_pid": os.getpid(), "host": socket.gethostname()})
        self.report.started_at = utcnow()

    def close_spider(self, spider: Any = None) -> None:
        self.flush()

    def abandon(self) -> None:
        """The crawler is about to exit without waiting for its downloads under way (see
        signals.parent_gone): Scrapy will not get to close the spider, so the run is closed
        here, as interrupted, with what was fetched written."""
        self.spider_closed(self.crawler.spider, "parent_gone")

    def spider_closed(self, spider: Any, reason: str) -> None:
        """Finish the crawl_runs row and hand the report over (the reason is known only here)."""
        store = self.store
        if store is None:
            return
        self.flush()
        pauses = new_pauses(self.crawler)
        if self.report.store_error is None:
            # Whatever became of the crawl: the next ones must leave these hosts alone too
            # (and forget the pauses that are over).
            self._record(store.record_host_pauses,
                         {host: (p.until, p.reason) for host, p in pauses.items()})
        unreadable = self._unreadable_pages()
        if reason == "finished" and self.report.store_error is None:
            for source_id, (etag, last_modified, flag) in self.validators.items():
                if source_id in self.incomplete:
                    etag = last_modified = None
                else:
                    # Its sitemaps' too. An incomplete source's stay as they were: they come
                    # from a crawl that stored all those sitemaps listed, and one changed
                    # since no longer matches them, so it is read in full.
                    store.replace_listing_validators(source_id, self.listings.get(source_id, {}))
                flag = self._with_deferred(source_id, unreadable.get(source_id, flag))
                self._record(store.record_source_result, source_id, ok=True, flag=flag,
                             etag=etag, last_modified=last_modified)
            for report in self.report.sources:
                if report.id in self.validators:
                    continue  # recorded just above, with both notes
                waiting = report.paused and report.status == "not_modified"
                if report.id in unreadable or waiting:
                    # A 304: its partial rows were retried. None could be read, or their host
                    # asked for a pause, or both: one record says all of it (the record
                    # written last is the one kept, so two would lose a note).
                    flag = self._with_deferred(report.id, unreadable.get(report.id, report.flag))
                    self._record(store.record_source_result, report.id, ok=True, flag=flag,
                                 keep_validators=True)
        listed = self.crawler.stats.get_value("stiwatch/sources") or []
        for source_id in listed:
            self._source(source_id)
        for source in self.report.sources:
            if source.status == "pending":
                source.errors.append("not crawled: the crawl stopped first"
                                     if reason != "finished" else "no answer from the crawl")
        if self.report.store_error is not None:
            status = "failed"
        elif reason != "finished":
            status = "interrupted"
        elif not self.report.sources or self.report.failed_sources == 0:
            status = "ok"
        elif self.report.ok_sources == 0:
            status = "failed"
        else:
            status = "partial"
        self.report.status = status
        self.report.finished_at = utcnow()
        self.report.cost = self._cost()
        stats = self.report.totals()
        stats["reason"] = reason
        stats["cost"] = self.report.cost
        stats["failed"] = [s.id for s in self.report.sources if not s.ok]
        stats["by_source"] = {
            s.id: {"status": s.status, "new": s.new, "duplicates": s.duplicates,
                   "updated": s.updated, "partial": s.partial, "unchanged": s.unchanged,
                   "robots_forbidden": s.robots_forbidden, "errors": s.errors[:5]}
            for s in self.report.sources
        }
        self._record(store.finish_crawl_run, self.report.run_id, status, stats)
        store.close()
        self.store = None
        self._emit({"event": "report", "report": self.report.to_dict()})
        logger.info("crawl %s: %s", status, stats)

    def _unreadable_pages(self) -> dict[str, str]:
        """A note for each source that worked but none of whose article pages could be read
        this crawl (a firewall refusing them, a site redesign): it would otherwise say "ok",
        with its articles kept only as their listing described them. The note goes on the
        source's flag, and on its report."""
        notes = {}
        for report in self.report.sources:
            errors = self.page_errors.get(report.id)
            if not report.ok or not errors or report.new + report.updated + report.duplicates:
                continue
            top = Counter(errors).most_common(1)[0][0]
            pages = f"any of {len(errors)} article pages" if len(errors) > 1 else "its article page"
            note = f"could not read {pages} ({top})"
            report.flag = with_note(report.flag, note)
            notes[report.id] = report.flag
        return notes

    def _cost(self) -> dict[str, Any]:
        import resource

        get = self.crawler.stats.get_value
        started = get("start_time")
        elapsed = None
        if started is not None:
            from datetime import datetime, timezone

            now = datetime.now(started.tzinfo or timezone.utc)
            elapsed = round((now - started).total_seconds(), 2)
        peak = get("memusage/max") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            # Requests dropped unsent by a stop went through DownloaderStats' count first.
            "requests": get("downloader/request_count", 0) - get("stiwatch/unsent", 0),
            "responses": get("downloader/response_count", 0),
            "bytes": get("downloader/response_bytes", 0),
            "not_modified": get("downloader/response_status_count/304", 0),
            "robots_forbidden": get("robotstxt/forbidden", 0),
            "retries": get("retry/count", 0),
            "seconds": elapsed,
            "peak_memory_mb": round(peak / 1024 / 1024, 1),
        }

    # -- items -------------------------------------------------------------------------------

    def process_item(self, item: Any, spider: Any = None) -> Any:
        if isinstance(item, SourceEvent):
            self._source_event(item)
        elif isinstance(item, ArticleItem):
            title = item.row.get("title")
            if title and len(title) > TITLE_MAX_CHARS:
                item.row["title"] = shorten(title, TITLE_MAX_CHARS)
            self.pending.append(item)
            if (len(self.pending) >= self.batch_size
                    or time.monotonic() - self.last_flush >= self.batch_seconds):
                self.flush()
        return item

    def _source(self, source_id: str) -> SourceReport:
        report = self.by_source.get(source_id)
        if report is None:
            kind = ""
            if self.store is not None:
                try:
                    kind = self.store.get_source(source_id)["kind"]
                except db.NoSuchSource:
                    pass
            report = SourceReport(id=source_id, kind=kind)
            self.by_source[source_id] = report
            self.report.sources.append(report)
        return report

    def _with_deferred(self, source_id: str, flag: str | None) -> str | None:
        """The source's note, saying how many new articles wait for the next crawl."""
        report = self._source(source_id)
        over_limit = report.deferred - report.paused
        if over_limit:
            flag = with_note(flag, f"{over_limit} more new article"
                             f"{'s' if over_limit != 1 else ''} left for the next crawl "
                             "(max_new_articles_per_source)")
        if report.paused:
            flag = with_note(flag, f"{report.paused} article page"
                             f"{'s' if report.paused != 1 else ''} left for the next crawl: "
                             f"{report.pause_note}")
        if report.deferred:
            report.flag = flag
        return flag

    def _source_event(self, event: SourceEvent) -> None:
        assert self.store is not None
        report = self._source(event.source_id)
        report.unchanged += event.unchanged
        report.queued += event.queued
        report.errors.extend(event.errors)
        if event.errors or event.deferred:
            # the next crawl must read the listing again, not get a 304, for what is left
            self.incomplete.add(event.source_id)
        if event.deferred:
            report.deferred += event.deferred
        report.robots_forbidden += event.robots_forbidden
        if event.paused:
            report.paused += event.deferred
            report.pause_note = event.paused
        if event.flag:
            report.flag = event.flag
        if event.listing is not None:
            self.listings.setdefault(event.source_id, {})[event.listing] = (
                event.etag, event.last_modified)
        if event.status is None:
            self._emit({"event": "queued", "source": event.source_id, "queued": event.queued})
            return
        report.status = event.status
        record = self.store.record_source_result
        if event.status == "paused":
            pass  # not crawled, by the host's wish: its health stays as its last crawl left it
        elif event.status == "failed":
            report.errors.insert(0, event.error or "unknown error")
            # One line per failing source, for grep; INFO, not WARNING: a source down for a day
            # is routine (the crawl goes on; `stiwatch status` lists it), not for cron's mail.
            logger.info("source %s failed: %s", event.source_id, report.errors[0])
            self._record(record, event.source_id, ok=False, error=event.error)
        elif event.status == "not_modified":
            self._record(record, event.source_id, ok=True, flag=event.flag,
                         keep_validators=True)
        else:
            self._record(record, event.source_id, ok=True, flag=event.flag,
                         keep_validators=True)
            self.validators[event.source_id] = (event.etag, event.last_modified, event.flag)
        self._emit({"event": "source", "source": event.source_id, "status": event.status,
                    "queued": event.queued, "error": event.error})

    def flush(self) -> None:
        """Write the pending articles in one transaction, linking near-duplicates."""
        self.last_flush = time.monotonic()
        if not self.pending or self.store is None:
            return
        batch, self.pending = self.pending, []
        try:
            outcomes = self._write(batch)
        except Exception as error:  # noqa: BLE001 - a failed write must not lose the articles
            self._unwritten(batch, error)
            return
        for source_id, outcome, forbidden in outcomes:
            report = self._source(source_id)
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.robots_forbidden += forbidden
            self._emit({"event": "item", "source": source_id, "outcome": outcome})

    def _unwritten(self, batch: list[ArticleItem], error: Exception) -> None:
        """A batch the store refused (disk full, a lock held past the busy timeout): its
        sources keep no ETag/Last-Modified, so the next crawl reads their listings again and
        fetches the articles, which it finds not stored."""
        if self._store_failed(error):
            logger.error("storing %d articles failed: %s; the crawl stops (the next crawl "
                         "fetches what was not stored)", len(batch), error)
        elif self.report.store_error is None:
            logger.error("storing %d articles failed: %s: %s", len(batch),
                         type(error).__name__, error,
                         exc_info=not isinstance(error, (sqlite3.Error, db.StoreError)))
        counts = Counter(item.row["source_id"] for item in batch)
        for source_id, count in counts.items():
            self.incomplete.add(source_id)
            articles, them = ("1 article", "it") if count == 1 else (f"{count} articles", "them")
            self._source(source_id).errors.append(
                f"{articles} could not be stored ({type(error).__name__}: {error}); the next "
                f"crawl fetches {them} again")

    def _store_failed(self, error: Exception) -> bool:
        """Whether ``error`` says the store cannot be written at all (a full disk, a
        read-only file or folder, an I/O error): then every later batch would fail too, so
        the crawl stops at once instead of fetching for hours what it cannot keep (a lock
        held past the busy timeout passes, and is not such an error). True only the first
        time; the reason goes on the report for the command to say."""
        if not isinstance(error, db.StoreError) or isinstance(error, db.StoreLocked):
            return False
        if self.report.store_error is not None:
            return False
        self.report.store_error = str(error)
        engine = self.crawler.engine
        if engine is not None and self.crawler.spider is not None:
            from twisted.internet.defer import Deferred

            closing = Deferred.fromCoroutine(engine.close_spider_async(reason="store unwritable"))
            closing.addErrback(lambda failure: None)  # closed already (the last batch's write)
        return True

    def _record(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A write of the crawl's bookkeeping (source health, the crawl_runs row) that a
        store refusing writes must not turn into a traceback per source."""
        try:
            write(*args, **kwargs)
        except db.StoreError as error:
            if self._store_failed(error):
                logger.error("%s; the crawl stops", error)
            elif self.report.store_error is None:
                raise

    def _write(self, batch: list[ArticleItem]) -> list[tuple[str, str, bool]]:
        """Save ``batch`` in one transaction; the (source, outcome, whether robots.txt forbids
        the page) of each article."""
        assert self.store is not None
        outcomes: list[tuple[str, str, bool]] = []
        aliases: list[tuple[str, int]] = []
        with self.store.write():
            for item in batch:
                row = dict(item.row)
                listing_url = item.listing_url
                existing = self.store.item_id_for_url(row["url"])
                if listing_url and existing is not None and self._not_this_article(
                        existing, listing_url, row):
                    # The page calls itself (rel=canonical, a redirect) by the URL of a stored
                    # page with other text: a CMS that gives every article its section's URL.
                    # Saved there it would overwrite that article; it keeps its listing's URL.
                    row["url"], listing_url = listing_url, None
                    existing = self.store.item_id_for_url(row["url"])
                # what it held before, to tell an update from a re-fetch (a partial row is
                # counted as partial whatever it held)
                stored = (self._content(existing)
                          if existing is not None and row.get("status") != "partial" else None)
                text = row.get("body") if row.get("status") == "complete" else None
                if text:
                    earlier = self.deduper.find(text)
                    if earlier is not None and earlier != existing:
                        row["duplicate_of"] = earlier
                    else:
                        row["duplicate_of"] = None
                # robots.txt refused the page before anything was sent: no attempt of it
                forbidden = row.get("fetch_error") == ROBOTS_FORBIDDEN
                [(item_id, created)] = self.store.save_items([row], attempted=not forbidden)
                if listing_url:
                    # Next time the listing names this URL, the article is known already.
                    aliases.append((listing_url, item_id))
                if text:
                    self.deduper.remember(item_id, text)
                if row.get("status") == "partial":
                    outcome = "partial"
                elif created:
                    outcome = "duplicates" if row.get("duplicate_of") else "new"
                elif stored and stored == self._content(item_id):
                    outcome = "unchanged"  # fetched again (--refresh), same text as stored
                else:
                    outcome = "updated"
                forbidden = forbidden and outcome == "partial"
                outcomes.append((row["source_id"], outcome, forbidden))
                if outcome == "partial" and not forbidden:
                    # (a page robots.txt forbids is the site's wish, not a problem to report)
                    self.page_errors.setdefault(row["source_id"], []).append(
                        row.get("fetch_error") or "no reason given")
            if aliases:
                self.store.add_url_aliases(aliases)
        return outcomes

    def _not_this_article(self, item_id: int, listing_url: str, row: dict[str, Any]) -> bool:
        """Whether stored item ``item_id``, at the URL the page gives for itself, is another
        article than the one ``listing_url`` names: the listing URL is stored as an article
        of its own, or (never seen) the stored item holds another text."""
        assert self.store is not None
        own = self.store.item_id_for_url(listing_url)
        if own is not None:
            return own != item_id
        if self.store.scalar("SELECT item_id FROM item_urls WHERE url = ?",
                             [listing_url]) == item_id:
            return False  # this listing URL led to this page before: the same article
        stored = self._content(item_id)["content_hash"]
        return bool(stored and row.get("content_hash") and stored != row["content_hash"])

    def _content(self, item_id: int) -> dict[str, Any]:
        """The CONTENT_COLUMNS of a stored item. Compared before and after saving rather than
        against the row sent, because the store may keep some of its values (the first-seen
        date of an undated article)."""
        assert self.store is not None
        [row] = self.store.query(
            f"SELECT {', '.join(CONTENT_COLUMNS)} FROM items WHERE id = ?", [item_id])
        return row

    def _emit(self, event: dict[str, Any]) -> None:
        if self.events is not None:
            try:
                self.events(event)
            except Exception:  # noqa: BLE001 - a broken progress display must not stop a crawl
                logger.exception("progress callback failed")
