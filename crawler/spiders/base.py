"""The spider machinery every source kind shares: sources from the store, listings, articles.

A crawl of one source is: fetch its listing (feed, listing page or sitemap, and the sitemaps a
sitemap index names) conditionally; turn it into Candidates (what the listing says about each
article); skip those already stored unless refreshing; fetch each remaining article page and
extract it. An article whose page fails or yields no text is still stored, from the Candidate,
as a partial item that later crawls retry: nothing seen is lost. Each source's outcome goes to
the pipeline as a SourceEvent.
"""

from __future__ import annotations

import logging
import re
from typing import Any, AsyncIterator, Iterable, Iterator
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure

import db
from db.clock import utcnow

from ..extract import extract_article, warm_up
from ..text import looks_like_html
from ..items import ROBOTS_FORBIDDEN, ArticleItem, Candidate, SourceEvent, with_note
from ..middlewares import (META_VALIDATORS, CrawlStopped, HostPaused, RobotsUnavailable,
                           restore_pauses, robots_rules, status_message)
from .listings import (ListingError, feed_listing, html_listing, response_headers,
                       sitemap_listing)

logger = logging.getLogger(__name__)


def too_large_error(max_size: int | None) -> str:
    """The `fetch_error` of a page over the size limit (the limit is in it: see
    SourceSpider.partial_candidates)."""
    return "response too large" + (f" (over the {max_size:,} byte limit)" if max_size else "")


def describe_failure(failure: Failure, timeout: float | None = None,
                     max_size: int | None = None) -> str:
    """One short sentence for a failed download, as a user would want it in `last_error`."""
    error = failure.value
    too_large = too_large_error(max_size)
    if isinstance(error, HttpError):
        response = error.response
        return f"HTTP {status_message(response.status)}"
    text = str(error).strip()
    if isinstance(error, RobotsUnavailable):
        cause = error.cause
        why = cause if isinstance(cause, str) else describe_failure(Failure(cause), timeout,
                                                                     max_size)
        return f"robots.txt could not be fetched ({why}): the site is not crawled until it can be"
    if isinstance(error, IgnoreRequest):
        if "robots.txt" in text:
            return ROBOTS_FORBIDDEN
        if "redirections" in text:
            return "too many redirects"
        if "larger than" in text or "DOWNLOAD_MAXSIZE" in text:
            return too_large
        return text or "request ignored"
    if "larger than download max size" in text:
        return too_large
    if type(error).__name__ == "DownloadCancelledError" and not text:
        # Scrapy's HTTP/1.1 handler cancels a body of unknown length (chunked, or read until
        # the connection closes) once it passes DOWNLOAD_MAXSIZE, with no message; timeouts
        # and stops are errors of their own. Named like any page over the limit, so it is
        # not downloaded up to the limit again while the limit stays the same.
        return too_large
    if type(error).__module__.split(".")[0].lstrip("_") in _DECOMPRESSORS:
        # Raised by Scrapy's decompression: the body is not what its Content-Encoding says.
        return ("the response is not encoded as its Content-Encoding says "
                f"({type(error).__name__}: {text})")
    if isinstance(error, TxTimeoutError) or "timed out" in text.lower() or "took longer" in text:
        return f"no response within {timeout:g} s" if timeout else "timed out"
    name = type(error).__name__
    if "certificate verify failed" in text:
        # Only with verify_tls_certificates on (Scrapy does not check certificates otherwise).
        return ("the site's TLS certificate could not be verified (certificate verify failed; "
                "verify_tls_certificates is on)")
    if name in ("DownloadFailedError", "ResponseFailed", "ResponseNeverReceived"):
        # These wrap Twisted failures: name the innermost cause.
        for cause in ("ConnectionDone", "ConnectionLost", "ConnectionAborted"):
            if cause in text:
                return _FRIENDLY["ResponseNeverReceived"]
        inner = re.search(r"Failure ([\w.]+): ([^>]*)>", text)
        if inner:
            return f"download failed ({inner.group(1).rsplit('.', 1)[-1]}: {inner.group(2)})"
    if name in _FRIENDLY:
        return _FRIENDLY[name] + (f" ({text})" if text and name in _WITH_DETAIL else "")
    return f"{name}: {text}" if text else name


# Download errors by class name (Scrapy's and Twisted's), as a user would say them.
_FRIENDLY = {
    "ResponseDataLossError": "connection closed before the response was complete",
    "ResponseNeverReceived": "connection closed without a response",
    "ConnectionLost": "connection closed without a response",
    "ConnectionDone": "connection closed without a response",
    "DownloadConnectionRefusedError": "connection refused",
    "ConnectionRefusedError": "connection refused",
    "CannotResolveHostError": "host name not found",
    "DNSLookupError": "host name not found",
    "DownloadTimeoutError": "timed out",
    "TCPTimedOutError": "timed out",
    "DownloadFailedError": "download failed",
}
# Modules whose errors mean a body that could not be decompressed (gzip, deflate, br, zstd).
_DECOMPRESSORS = {"gzip", "zlib", "brotli", "brotlicffi", "zstandard", "compression"}
_WITH_DETAIL = {"CannotResolveHostError", "DNSLookupError", "DownloadFailedError"}


# Crawls that try an article page whose last answer said it is not there, where other failures
# (5xx, timeouts, a refused connection) get max_partial_attempts (8). A 410 Gone is the site
# saying so on purpose: the one attempt is enough. A 404, or a redirect to the section page
# (a soft 404), is nearly always for good too, but feeds do announce articles minutes before
# their page goes live, and a site being moved 404s for a day: 3 attempts span two more
# scheduled crawls (two days at the usual daily schedule), at 2 requests per dead link, not 7.
GONE_ATTEMPTS = 1
NOT_FOUND_ATTEMPTS = 3
_GONE = re.compile(r"HTTP 410\b")
_NOT_FOUND = re.compile(r"HTTP 404\b|redirected to .*, a page above it: the article is gone")


def attempts_allowed(fetch_error: str | None, max_attempts: int) -> float:
    """How many crawls try an article page whose last attempt failed with ``fetch_error``."""
    if fetch_error == ROBOTS_FORBIDDEN:
        # Never requested, so never given up: it is read once robots.txt allows it. (Rows
        # stored before this counted attempts for it.)
        return float("inf")
    if fetch_error and _GONE.match(fetch_error):
        return min(max_attempts, GONE_ATTEMPTS)
    if fetch_error and _NOT_FOUND.match(fetch_error):
        return min(max_attempts, NOT_FOUND_ATTEMPTS)
    return max_attempts


MAX_LISTING_DEPTH = 3  # sitemap index -> sitemap -> ... at most this many levels below the root
# The sitemaps.org protocol allows a sitemap 50,000 URLs and 50 MiB uncompressed; a real one of
# 50,000 long URLs passes 10 MB, and was refused under max_response_size, which is sized for
# article pages. A sitemap gets at least this; anything else keeps max_response_size.
SITEMAP_MAX_SIZE = 50 * 1024 * 1024


class SourceSpider(scrapy.Spider):
    """Crawls enabled sources of ``kinds`` from the store (``-a source=a,b`` picks some)."""

    name = "sources"
    kinds: tuple[str, ...] = ("feed", "html", "sitemap")
    custom_settings: dict[str, Any] = {}

    def __init__(self, *args: Any, source: str | Iterable[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if isinstance(source, str):
            source = [s.strip() for s in source.split(",") if s.strip()]
        self.source_ids: list[str] = list(source or [])

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "SourceSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.store_path = settings.get("STIWATCH_DB")
        spider.refresh = settings.getbool("STIWATCH_REFRESH")
        spider.max_partial_attempts = settings.getint("STIWATCH_MAX_PARTIAL_ATTEMPTS", 8)
        spider.sitemap_max_age_days = settings.getint("STIWATCH_SITEMAP_MAX_AGE_DAYS", 30)
        spider.max_new_articles = settings.getint("STIWATCH_MAX_NEW_ARTICLES", 500)
        spider.download_timeout_s = settings.getfloat("DOWNLOAD_TIMEOUT")
        spider.max_size = settings.getint("DOWNLOAD_MAXSIZE")
        spider.sitemap_max_size = (max(spider.max_size, SITEMAP_MAX_SIZE) if spider.max_size
                                   else 0)  # 0: no limit at all
        spider.forbidden_held: dict[str, list[Candidate]] = {}
        return spider

    # -- the sources ------------------------------------------------------------------------

    def load_sources(self, store: db.Store) -> list[dict[str, Any]]:
        if self.source_ids:
            sources = [store.get_source(source_id) for source_id in self.source_ids]
        else:
            sources = store.list_sources(enabled_only=True)
        return [s for s in sources if s["kind"] in self.kinds]

    async def start(self) -> AsyncIterator[Any]:
        self.listings_seen: set[tuple[str, str]] = set()
        self.articles_seen: dict[str, str] = {}  # article URL -> the source it is fetched for
        self.exhausted: set[str] = set()
        self.new_queued: dict[str, int] = {}  # source id -> new article pages requested
        self.store = db.open_store(self.store_path)
        self.sources = {s["id"]: s for s in self.load_sources(self.store)}
        self.listing_validators = {} if self.refresh else self.store.listing_validators()
        # Hosts an earlier crawl was asked to leave alone for longer than a crawl waits.
        restore_pauses(self.crawler, self.store.host_pauses())
        self.crawler.stats.set_value("stiwatch/sources", list(self.sources))
        for source in self.sources.values():
            yield self.listing_request(source)
            for request in self.partial_requests(source):
                yield request

    def closed(self, reason: str) -> None:
        pool = getattr(self, "listing_pool", None)
        if pool is not None:
            pool.stop()
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    def listing_request(self, source: dict[str, Any], url: str | None = None,
                        **meta: Any) -> Request:
        validators = None
        if not self.refresh and url is None:
            validators = {"etag": source.get("etag"), "last_modified": source.get("last_modified")}
        elif not self.refresh:
            validators = self.listing_validators.get(source["id"], {}).get(url)
        if source["kind"] == "sitemap":
            # Scrapy's download handler and decompression both read the limit from here.
            meta.setdefault("download_maxsize", self.sitemap_max_size)
        return Request(
            url or source["url"],
            callback=self.parse_listing,
            errback=self.listing_failed,
            dont_filter=True,  # two sources may share a listing; each needs its answer
            priority=10,  # listings first: they decide what else to fetch
            meta={"source_id": source["id"], "handle_httpstatus_list": [304],
                  META_VALIDATORS: validators, "root": url is None, "listing_url": url,
                  **meta},
        )

    def partial_requests(self, source: dict[str, Any]) -> Iterator[Request]:
        """Article pages stored from listing data only: try them again."""
        return self.article_requests(self.partial_candidates(source), refetch=True)

    def partial_candidates(self, source: dict[str, Any]) -> Iterator[Candidate]:
        too_large = too_large_error(self.max_size)
        for row in self.store.partial_items(source["id"]):
            # A page refused as too large would be refused again under the same limit (and
            # downloaded up to it each time): it is tried again once the limit changes.
            allowed = attempts_allowed(row["fetch_error"], self.max_partial_attempts)
            if row["fetch_attempts"] >= allowed or row["fetch_error"] == too_large:
                self.exhausted.add(row["url"])  # kept from the listing; the page never worked
                continue
            candidate = Candidate(
                url=row["url"], source_id=source["id"], title=row["title"] or "",
                summary=row["summary"] or "",
                published_at=row["published_at"] if row["date_source"] == "feed" else None,
                language=row["language"] or source.get("language"),
                stored_date=(row["published_at"], row["date_source"]),
                stored_error=row["fetch_error"],
            )
            if row["fetch_error"] == ROBOTS_FORBIDDEN and self.crawler.settings.getbool(
                    "ROBOTSTXT_OBEY"):
                # Not scheduled yet: once the source's listing has answered, its robots.txt
                # of this crawl is known, and only the pages it now allows are requested
                # (release_forbidden). Each crawl used to schedule every one of them to have
                # robots.txt refuse it again: 3,000 such pages cost a crawl with nothing new
                # 17 s.
                self.forbidden_held.setdefault(source["id"], []).append(candidate)
                continue
            yield candidate

    def release_forbidden(self, source_id: str, check: bool = True) -> Iterator[Any]:
        """The source's stored pages robots.txt forbade: a request for each that this crawl's
        robots.txt of its host allows (or whose host's robots.txt is not known yet, which the
        request fetches), and a count of the others, which stay as stored. ``check`` False:
        none is requested (their host asked for a pause), all are counted."""
        still = 0
        release = []
        robots = robots_rules(self.crawler)
        for candidate in self.forbidden_held.pop(source_id, []):
            if not check or (robots is not None and not robots.allows(candidate.url)):
                still += 1
                # Settled for this crawl: its listing naming it (--refresh) asks nothing more.
                self.articles_seen.setdefault(candidate.url, source_id)
            else:
                release.append(candidate)
        if still:
            yield SourceEvent(source_id, robots_forbidden=still)
        yield from self.article_requests(release, refetch=True)

    # -- listings ---------------------------------------------------------------------------

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        source = self.sources[response.meta["source_id"]]
        root = response.meta.get("root", True)
        if root:
            for held in self.release_forbidden(source["id"]):
                yield held
        moved = _moved_permanently(response) if root else None
        if response.status == 304:
            if root:
                yield SourceEvent(source["id"], status="not_modified", flag=moved)
            else:
                # Kept for the next crawl: the validators that earned the 304, or newer ones.
                sent = response.meta.get(META_VALIDATORS) or {}
                etag, last_modified = _validators(response)
                yield SourceEvent(source["id"], listing=response.meta["listing_url"],
                                  etag=etag or sent.get("etag"),
                                  last_modified=last_modified or sent.get("last_modified"))
            return
        try:
            # In a thread of the spider's own: a feed of 30,000 entries takes 20 s to read, and
            # read in the reactor's thread it held every other source's downloads as long.
            candidates, follow, flag = await self.aside(self.parse_kind, source, response)
        except Exception as error:  # noqa: BLE001 - one bad listing must not stop the crawl
            message = str(error) if isinstance(error, ListingError) else (
                f"The listing at {response.url} could not be read ({type(error).__name__}: "
                f"{error}).")
            if not isinstance(error, ListingError):
                logger.exception("reading the listing of %s failed", source["id"])
            if root:
                yield SourceEvent(source["id"], status="failed", error=message)
            else:
                yield SourceEvent(source["id"], errors=[message])
            return
        if moved:
            flag = with_note(moved, flag) if flag else moved
        fresh, deferred = self.within_limit(source["id"], self.fresh(candidates))
        # An article another source's listing named first is fetched (and counted) once, for
        # that source; here it is one not fetched again, or this source's report would count
        # it queued and never say what became of it.
        elsewhere = sum(self.articles_seen.get(c.url, source["id"]) != source["id"]
                        for c in fresh)
        event = SourceEvent(source["id"],
                            unchanged=len(candidates) - len(fresh) - deferred + elsewhere,
                            queued=len(fresh) - elsewhere, flag=flag, deferred=deferred)
        event.etag, event.last_modified = _validators(response)
        if root:
            event.status = "ok"
        else:
            event.listing = response.meta["listing_url"]
        yield event
        depth = response.meta.get("listing_depth", 0) + 1
        for url in follow:
            # Sitemap indexes may nest or point back at themselves: each listing once, 3 deep.
            key = (source["id"], url)
            if depth > MAX_LISTING_DEPTH or key in self.listings_seen:
                continue
            self.listings_seen.add(key)
            yield self.listing_request(source, url=url, listing_depth=depth)
        for request in self.article_requests(fresh):
            yield request

    def listing_failed(self, failure: Failure) -> Iterator[Any]:
        if failure.check(CrawlStopped):
            return  # never sent: the source is reported "not crawled", as if never reached
        request = failure.request  # type: ignore[attr-defined]
        if request.meta.get("root", True):
            yield from self.release_forbidden(request.meta["source_id"],
                                              check=not failure.check(HostPaused))
        if failure.check(HostPaused) and request.meta.get("root", True):
            # The host asked us to wait: not the source's failure (its health is left as it
            # was), nor a crawl of it; the report says until when.
            yield SourceEvent(request.meta["source_id"], status="paused",
                              flag=failure.value.note)
            return
        message = describe_failure(failure, self.download_timeout_s,
                                   request.meta.get("download_maxsize", self.max_size))
        if request.meta.get("root", True):
            yield SourceEvent(request.meta["source_id"], status="failed", error=message)
        else:
            yield SourceEvent(request.meta["source_id"], errors=[f"{request.url}: {message}"])

    async def aside(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        """``work(*args, **kwargs)`` in a thread of the spider's own, for reading listings and
        extracting articles: CPU work that held the reactor's thread, and with it every
        download of every other source, for as long as it took. The threads share the GIL,
        but the reactor gets its turns. (Not the reactor's thread pool: DNS lookups wait
        there.) ``work`` is handed nothing the reactor's thread changes meanwhile: plain data
        (bytes, str, dicts), or a listing's response, which no one else touches once it has
        arrived."""
        from twisted.internet import reactor
        from twisted.internet.threads import deferToThreadPool
        from twisted.python.threadpool import ThreadPool

        if getattr(self, "listing_pool", None) is None:
            self.listing_pool = ThreadPool(minthreads=0, maxthreads=2, name="stiwatch-parse")
            self.listing_pool.start()
        return await maybe_deferred_to_future(deferToThreadPool(
            reactor, self.listing_pool, work, *args, **kwargs))

    def parse_kind(self, source: dict[str, Any], response: Response
                   ) -> tuple[list[Candidate], list[str], str | None]:
        """(candidates, listing URLs to follow, flag) of one listing response."""
        parser = getattr(self, f"parse_{source['kind']}", None)
        if parser is None:
            raise ListingError(f"this spider cannot crawl {source['kind']} sources")
        return parser(source, response)

    def parse_feed(self, source: dict[str, Any], response: Response) -> Any:
        return feed_listing(source, response)

    def parse_html(self, source: dict[str, Any], response: Response) -> Any:
        return html_listing(source, response)

    def parse_sitemap(self, source: dict[str, Any], response: Response) -> Any:
        return sitemap_listing(source, response, max_age_days=self.sitemap_max_age_days,
                               max_size=response.meta.get("download_maxsize", self.max_size))

    def fresh(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates not stored yet (all of them with --refresh), first of each URL only."""
        unique = list({c.url: c for c in reversed(candidates)}.values())[::-1]
        if self.refresh:
            return unique
        known = self.store.known_listing_urls(c.url for c in unique) | self.exhausted
        return [c for c in unique if c.url not in known]

    def within_limit(self, source_id: str, fresh: list[Candidate]
                     ) -> tuple[list[Candidate], int]:
        """The new candidates this crawl fetches for the source (at most max_new_articles
        over all its listings, the newest first; undated ones after the dated, in listing
        order) and how many wait for the next crawl."""
        room = max(0, self.max_new_articles - self.new_queued.get(source_id, 0))
        if len(fresh) > room:
            def date(candidate: Candidate) -> str | None:
                return candidate.published_at or candidate.listed_at

            dated = sorted((c for c in fresh if date(c)), key=date, reverse=True)
            kept = set(map(id, (dated + [c for c in fresh if not date(c)])[:room]))
            fresh, deferred = [c for c in fresh if id(c) in kept], len(fresh) - room
        else:
            deferred = 0
        self.new_queued[source_id] = self.new_queued.get(source_id, 0) + len(fresh)
        return fresh, deferred

    # -- articles ---------------------------------------------------------------------------

    def article_requests(self, candidates: Iterable[Candidate], refetch: bool = False
                         ) -> Iterator[Request]:
        """One request per article URL per crawl (two sources, or a listing and a partial
        retry, may name the same page)."""
        for candidate in candidates:
            if candidate.url in self.articles_seen:
                continue
            self.articles_seen[candidate.url] = candidate.source_id
            yield self.article_request(candidate, refetch)

    def article_request(self, candidate: Candidate, refetch: bool = False) -> Request:
        return Request(
            candidate.url,
            callback=self.parse_article,
            errback=self.article_failed,
            # Scheduler deduplication would drop a redirect back to a URL already fetched
            # (loop1 -> loop2 -> loop1) without calling the errback, and the article would be
            # lost; unfiltered, a loop ends at REDIRECT_MAX_TIMES in article_failed instead.
            # The spider itself keeps article URLs unique (article_requests).
            dont_filter=True,
            meta={"candidate": candidate, "refetch": refetch or self.refresh},
        )

    async def parse_article(self, response: Response) -> AsyncIterator[ArticleItem]:
        candidate: Candidate = response.meta["candidate"]
        refetch = response.meta["refetch"]
        if _redirected_up(candidate.url, response):
            # An expired article sent to its section page (or the home page): that page's
            # text is no article, and a stored article must not take it on.
            yield self.partial(candidate, f"redirected to {response.url}, a page above it: "
                               "the article is gone", refetch)
            return
        content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
        if (content_type and "html" not in content_type and "xml" not in content_type
                and not looks_like_html(response.body)):
            yield self.partial(candidate, f"not an HTML page ({content_type.split(';')[0]})",
                               refetch)
            return
        try:
            # The source's declared language helps decode a page that names no charset.
            source = self.sources.get(candidate.source_id) or {}
            # The process's first article loads the extraction libraries (about 1 s; none for a
            # crawl with nothing new), in the reactor's thread as when it was done before the
            # crawl: downloads wait meanwhile, rather than run on unextracted, and unreported
            # to the parent, whose death the crawler notices only by reporting (runner._run_job).
            warm_up()
            # Off the reactor's thread: a pathological page (3 MB of nested blocks) took 9.5 s
            # to extract, and every other host's downloads stood still meanwhile.
            article = await self.aside(extract_article, response.body, response.url,
                                       response_headers(response),
                                       feed_date=candidate.published_at,
                                       language=source.get("language"))
        except Exception as error:  # noqa: BLE001 - keep the listing's data rather than nothing
            logger.exception("extracting %s failed", response.url)
            yield self.partial(candidate, f"extraction failed ({type(error).__name__}: {error})",
                               refetch)
            return
        if not article.text:
            yield self.partial(candidate, "no article text found on the page", refetch)
            return
        url = candidate.url
        # A partial row is completed where it is stored (its listing's URL); otherwise the
        # page's own canonical URL, also on --refresh (which would otherwise store a second row
        # under the listing's URL), unless it points at another site (syndication): then the
        # row stays with this source and dedup links it to the original.
        if candidate.stored_date is None and _same_site(article.url, candidate.url):
            url = article.url
        yield ArticleItem({
            "url": url,
            "source_id": candidate.source_id,
            "title": article.title or candidate.title or None,
            # The publisher's own teaser beats an extracted opening.
            "summary": candidate.summary or article.summary or None,
            "body": article.text,
            "language": article.language or candidate.language,
            "published_at": article.published_at,
            "date_source": article.date_source,
            "content_hash": article.content_hash,
            "status": "complete",
            "fetch_error": None,
        }, refetch=refetch, listing_url=candidate.url if candidate.url != url else None)

    def article_failed(self, failure: Failure) -> Iterator[ArticleItem]:
        if failure.check(CrawlStopped):
            # Never sent, so nothing was learnt: no partial row (it would count as a failed
            # attempt); the next crawl requests it again, as nothing was stored for it.
            return
        request = failure.request  # type: ignore[attr-defined]
        if failure.check(HostPaused):
            # Its host asked us to wait longer than a crawl waits: nothing is stored (no
            # attempt of this page failed); a new article is left for the next crawl, which
            # reads its listing in full again (a deferred article, as over the limit).
            candidate: Candidate = request.meta["candidate"]
            error = failure.value
            yield SourceEvent(candidate.source_id, deferred=1,
                              queued=-1 if candidate.stored_date is None else 0,
                              paused=error.note)
            return
        message = describe_failure(failure, self.download_timeout_s, self.max_size)
        candidate = request.meta["candidate"]
        if message == ROBOTS_FORBIDDEN == candidate.stored_error:
            # Still forbidden: stored as it was, only counted (a source's forbidden pages
            # are asked again every crawl, never given up, and would be rewritten each time).
            yield SourceEvent(candidate.source_id, robots_forbidden=1)
            return
        yield self.partial(candidate, message, request.meta["refetch"])

    def partial(self, candidate: Candidate, error: str, refetch: bool) -> ArticleItem:
        """The article as the listing described it, kept until its page can be read."""
        published, date_source = candidate.published_at, "feed"
        if candidate.stored_date:  # a retry keeps the date the first attempt stored
            published, date_source = candidate.stored_date
        if not published:
            published, date_source = utcnow(), "fetched"
        body = candidate.content or None
        return ArticleItem({
            "url": candidate.url,
            "source_id": candidate.source_id,
            "title": candidate.title or None,
            "summary": candidate.summary or None,
            "body": body,
            "language": candidate.language,
            "published_at": published,
            "date_source": date_source,
            "status": "partial",
            "fetch_error": error,
        }, refetch=refetch)


def _redirected_up(url: str, response: Response) -> bool:
    """Whether ``url`` was redirected to a page above it on the same site: its folder, a
    folder further up or the home page (/news/2026/budget.html -> /news/ or /)."""
    if not response.meta.get("redirect_urls") or not _same_site(url, response.url):
        return False
    asked, landed = urlsplit(url), urlsplit(response.url)
    if landed.query:
        return False
    path = re.sub(r"/index\.(?:html?|php|aspx?)$", "/", landed.path)  # /news/index.html: /news/
    if asked.path.rstrip("/") == path.rstrip("/"):
        return False  # the same page, with or without its trailing slash
    folder = path if path.endswith("/") else path + "/"
    return path in ("", "/") or asked.path.startswith(folder)


def _validators(response: Response) -> tuple[str | None, str | None]:
    """The (ETag, Last-Modified) a response carries, for its next conditional request."""
    return (response.headers.get(b"ETag", b"").decode("latin-1") or None,
            response.headers.get(b"Last-Modified", b"").decode("latin-1") or None)


def _moved_permanently(response: Response) -> str | None:
    """A note for the source when its URL now redirects permanently (301, 308) elsewhere: the
    registry should name the new URL before the old one stops redirecting."""
    reasons = response.meta.get("redirect_reasons") or []
    if not reasons or any(reason not in (301, 308) for reason in reasons):
        return None
    return f"moved permanently to {response.url} (update its url in the registry)"


def _site(url: str) -> str:
    name = (urlsplit(url).hostname or "").lower()
    return name[4:] if name.startswith("www.") else name


def _same_site(a: str, b: str) -> bool:
    return _site(a) == _site(b)
