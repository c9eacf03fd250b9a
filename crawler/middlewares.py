"""Downloader middlewares and the throttle extension that keep stiwatch polite.

- ConditionalGetMiddleware: listing requests (feeds, listing pages, sitemaps, and the sitemaps
  of a sitemap index) carry their stored ETag/Last-Modified as If-None-Match/If-Modified-Since,
  so an unchanged feed costs one 304 and nothing more.
- BackoffRetryMiddleware: Scrapy's retries (timeouts, 5xx, 429) but waiting before each retry:
  the server's Retry-After when it sends one, else exponential backoff. A host that answered 429
  or 503 gets nothing at all for that wait, then a delay twice what it had, which its next
  answers bring back to the configured one (see ``back_off``).
  A Retry-After longer than STIWATCH_MAX_RETRY_AFTER pauses the host (HostPaused): nothing
  more is sent to it, and its pages wait for a later crawl. The pause is stored (table
  host_pauses), so the crawls that start before it ends send the host nothing either.
- SafeRobotsTxtMiddleware: Scrapy's robots.txt check, fixed so that every request that arrives
  while a host's robots.txt is still downloading waits for the real rules. Its ``allows(url)``
  (through ``robots_rules(crawler)``) answers the spiders from the same rules, read for the
  same user agent (``robots_user_agent``), so a page this crawl's robots.txt forbids is not
  even scheduled.
- PoliteThrottle: AutoThrottle that never goes below a host's robots.txt Crawl-delay; it
  applies Crawl-delay even when AutoThrottle is switched off.
- StopMiddleware: when the crawl is asked to stop (``signals.stop_requested``), the requests
  not yet sent are dropped instead of being sent one after another before the crawl ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
import ipaddress
import logging
import re
import socket
from time import monotonic, time
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.response import response_status_message
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from db.clock import iso_utc

from .signals import stop_requested

logger = logging.getLogger(__name__)


def status_message(status: int) -> str:
    """``429 Too Many Requests``: a status with its reason phrase, as `last_error` and the crawl
    summary show it. Scrapy's phrases (Twisted's table) lack 429, 451 and others: it printed
    "429 Unknown Status" for the rate limit a crawler meets most; Python's table has them, and
    a code neither knows (Cloudflare's 522) is given bare."""
    message = response_status_message(status)
    if not message.endswith("Unknown Status"):
        return message
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


# Request.meta keys shared with the spiders.
META_VALIDATORS = "stiwatch_validators"  # {"etag": ..., "last_modified": ...} of a listing


# -- per-host minimum delays ------------------------------------------------------------------

def _crawl_state(crawler: Crawler, name: str) -> dict[str, float]:
    """A dict kept on the crawler for this crawl, by ``name`` (a host's state lives as long as
    the crawl, and the middlewares sharing it are built separately)."""
    state = getattr(crawler, name, None)
    if state is None:
        state = {}
        setattr(crawler, name, state)
    return state


def _floors(crawler: Crawler) -> dict[str, float]:
    return _crawl_state(crawler, "_stiwatch_delay_floors")


def raise_delay_floor(crawler: Crawler, host: str, delay: float) -> None:
    """Never send requests to ``host`` more often than every ``delay`` seconds from now on."""
    floors = _floors(crawler)
    if delay <= floors.get(host, 0.0):
        return
    floors[host] = delay
    downloader = crawler.engine.downloader if crawler.engine else None
    if downloader is None:
        return
    # Slots are created lazily and garbage-collected when idle: set both the live slot and the
    # settings a recreated slot starts from.
    downloader.per_slot_settings.setdefault(host, {})["delay"] = delay
    slot = downloader.slots.get(host)
    if slot is not None and slot.delay < delay:
        slot.delay = delay


def _pauses(crawler: Crawler) -> dict[str, float]:
    """Download slots (hosts) backed off after a 429/503 -> when their pause ends
    (time.monotonic). Without AutoThrottle, a slot stays here until ``ease_off`` has brought
    its delay back down."""
    pauses = getattr(crawler, "_stiwatch_pauses", None)
    if pauses is None:
        pauses = {}
        crawler._stiwatch_pauses = pauses  # type: ignore[attr-defined]
    return pauses


def _slot_key(request: Request) -> str:
    return request.meta.get("download_slot") or urlparse_cached(request).hostname or ""


def _slot(crawler: Crawler, key: str) -> Any:
    downloader = crawler.engine.downloader if crawler.engine else None
    return downloader.slots.get(key) if downloader is not None else None


def back_off(crawler: Crawler, request: Request, wait: float) -> None:
    """A 429 or 503 from ``request``'s host: send it nothing for ``wait`` seconds, then go on at
    twice its delay (at least 1 s, at most AUTOTHROTTLE_MAX_DELAY), which its next answers
    bring back to the configured delay (``ease_off``; AutoThrottle's own adjustment when it is
    on). The host's Retry-After is honoured for the wait it names, and not made the delay of
    every later request: one Retry-After of 120 s held each of the next 200 requests to the
    host 120 s. Another 429 doubles the delay again.
    """
    key = _slot_key(request)
    slot = _slot(crawler, key)
    if slot is None:  # collected while idle: only the retried request waits
        return
    cap = crawler.settings.getfloat("AUTOTHROTTLE_MAX_DELAY", 60.0)
    slot.delay = max(slot.delay, min(max(2 * slot.delay, 1.0), cap))
    resume = monotonic() + wait
    pauses = _pauses(crawler)
    pauses[key] = max(pauses.get(key, 0.0), resume)
    _hold(slot, pauses[key])


MAX_HOST_PAUSE = 7 * 24 * 3600.0  # the longest pause kept for a host's Retry-After, seconds


@dataclass(frozen=True)
class Pause:
    """A host's pause: why (``reason``, "asked for a pause of 7200 s (Retry-After)"), until
    when (``until``, ISO UTC; ``ends``, the same as a time.time()), and whether an earlier
    crawl stored it (``stored``) or this one met it (to be stored)."""

    reason: str
    until: str
    ends: float
    stored: bool = False

    @property
    def note(self) -> str:
        return f"{self.reason}: paused until {self.until}"


class HostPaused(IgnoreRequest):
    """A request not sent, or whose 429/503 answer is set aside, because its host asked for a
    pause longer than STIWATCH_MAX_RETRY_AFTER (this crawl or an earlier one): nothing goes to
    that host until the pause ends, and its pages wait for a later crawl (they are no failed
    attempt of theirs)."""

    def __init__(self, host: str, pause: Pause) -> None:
        super().__init__(f"not fetched: {host} {pause.note}")
        self.host = host
        self.pause = pause

    @property
    def note(self) -> str:
        """"HOST asked for a pause of N s (Retry-After): paused until T", for reports."""
        return f"{self.host} {self.pause.note}"


def _paused_hosts(crawler: Crawler) -> dict[str, Pause]:
    """Hosts (download slots) that get nothing -> their pause."""
    return _crawl_state(crawler, "_stiwatch_paused_hosts")  # type: ignore[return-value]


def restore_pauses(crawler: Crawler, stored: dict[str, dict[str, str]]) -> None:
    """The pauses earlier crawls stored (``Store.host_pauses()``), honoured by this one."""
    paused = _paused_hosts(crawler)
    for host, row in stored.items():
        ends = datetime.fromisoformat(row["not_before"].replace("Z", "+00:00")).timestamp()
        paused[host] = Pause(row["reason"], row["not_before"], ends, stored=True)
        logger.info("%s %s: nothing is fetched from it this crawl", host, paused[host].note)


def new_pauses(crawler: Crawler) -> dict[str, Pause]:
    """The pauses this crawl met, for the store."""
    return {host: pause for host, pause in _paused_hosts(crawler).items() if not pause.stored}


def _asked_for(seconds: float, header: bytes | str | None) -> str:
    """"7200 s (Retry-After)"; a header of hundreds of digits (float inf, or a number as long)
    in words and the header's start: "over 30000 years (Retry-After: 100000000000…)"."""
    if seconds < 1e12:  # 31 700 years
        return f"{seconds:.0f} s (Retry-After)"
    text = (header.decode("latin-1") if isinstance(header, bytes) else header or "").strip()
    return f"over 30000 years (Retry-After: {text[:12]}{'…' if len(text) > 12 else ''})"


def pause_host(crawler: Crawler, request: Request, seconds: float,
               header: bytes | str | None = None) -> HostPaused:
    """Send ``request``'s host nothing more until its pause ends (this crawl, and the crawls
    that start before then); the requests already queued for it in the downloader are dropped
    unsent (HostPaused) rather than sent one after another to a host that asked us to wait.
    ``header`` is the Retry-After that asked for ``seconds``. Returns the error for
    ``request`` itself."""
    key = _slot_key(request)
    paused = _paused_hosts(crawler)
    if key not in paused:
        reason = f"asked for a pause of {_asked_for(seconds, header)}"
        # A misconfigured server's "Retry-After: 999999999" (or a date years ahead) would
        # silence the source for good: the pause kept is bounded, and says so.
        longest = crawler.settings.getfloat("STIWATCH_MAX_HOST_PAUSE", MAX_HOST_PAUSE)
        if seconds > longest:
            reason += f", kept to {longest:.0f} s (STIWATCH_MAX_HOST_PAUSE)"
        ends = time() + min(seconds, longest)
        paused[key] = Pause(reason, iso_utc(datetime.fromtimestamp(ends, timezone.utc)
                                            + timedelta(seconds=1)),  # whole seconds, up
                            ends)
        # One line per host, whatever number of its pages wait.
        logger.info("%s %s (more than STIWATCH_MAX_RETRY_AFTER): nothing more is fetched "
                    "from it this crawl; its pages wait for a crawl after that", key,
                    paused[key].note)
    slot = _slot(crawler, key)
    while slot is not None and slot.queue:
        queued, deferred = slot.queue.popleft()
        # Counted by DownloaderStats on the way in: taken off the requests sent.
        crawler.stats.inc_value("stiwatch/unsent")
        deferred.errback(Failure(HostPaused(key, paused[key])))
    return HostPaused(key, paused[key])


def _hold(slot: Any, resume: float) -> None:
    # Scrapy sends a slot's next request once ``delay`` has passed since ``lastseen``.
    slot.lastseen = max(slot.lastseen, resume - slot.delay)


def ease_off(crawler: Crawler, request: Request) -> None:
    """Another answer from a host that was backed off without AutoThrottle: its delay goes
    half-way back to the configured delay (or its robots.txt Crawl-delay), then to it."""
    key = _slot_key(request)
    pauses = _pauses(crawler)
    if key not in pauses or monotonic() < pauses[key]:
        return  # (answers to requests sent before the pause do not count)
    slot = _slot(crawler, key)
    host = urlparse_cached(request).hostname or ""
    base = max(crawler.settings.getfloat("DOWNLOAD_DELAY"), _floors(crawler).get(host, 0.0))
    if slot is None or slot.delay - base <= 0.05 * max(base, 1.0):
        del pauses[key]
        if slot is not None:
            slot.delay = base
        return
    slot.delay = (slot.delay + base) / 2


def robots_user_agent(settings: Any) -> str:
    """The product token robots.txt groups (and their Crawl-delay) are matched on."""
    return settings.get("ROBOTSTXT_USER_AGENT") or settings.get("USER_AGENT") or "*"


class PoliteThrottle(AutoThrottle):
    """AutoThrottle bounded below by robots.txt Crawl-delay."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.adaptive = crawler.settings.getbool("AUTOTHROTTLE_ENABLED")
        self.max_floor = crawler.settings.getfloat("AUTOTHROTTLE_MAX_DELAY", 60.0)
        self.user_agent = robots_user_agent(crawler.settings)
        if self.adaptive:
            super().__init__(crawler)  # connects spider_opened and response_downloaded
        if crawler.settings.getbool("ROBOTSTXT_OBEY"):
            crawler.signals.connect(self._robots_parsed, signal=signals.robots_parsed)
        elif not self.adaptive:
            raise NotConfigured

    def _robots_parsed(self, robotparser: Any, request: Request) -> None:
        crawl_delay = getattr(robotparser, "crawl_delay", None)
        delay = crawl_delay(self.user_agent) if callable(crawl_delay) else None
        if delay:
            host = urlparse_cached(request).hostname or ""
            # A site asking for an hour between requests would never finish; cap it.
            raise_delay_floor(self.crawler, host, min(float(delay), self.max_floor))

    def _adjust_delay(self, slot: Any, latency: float, response: Response) -> None:
        before = slot.delay
        super()._adjust_delay(slot, latency, response)
        host = urlparse_cached(response).hostname or ""
        floor = _floors(self.crawler).get(host)
        if floor is not None and slot.delay < floor:
            slot.delay = floor
        resume = _pauses(self.crawler).get(host)
        if resume is not None and monotonic() < resume:
            # Paused after a 429/503: answers to requests sent before it must not shorten the
            # pause (held as the delay since ``lastseen``) nor the delay it resumes at.
            slot.delay = max(slot.delay, before)
            _hold(slot, resume)


# -- robots.txt ---------------------------------------------------------------------------------

class _QuietRobotsErrors(logging.Filter):
    """A robots.txt that cannot be downloaded is logged by Scrapy as an ERROR with a traceback;
    the same failure reaches the source's own request and its `last_error`, so keep one line
    at INFO instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage().startswith("Error downloading"):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


class RobotsUnavailable(IgnoreRequest):
    """A request not sent because its host's robots.txt could not be had: a server error (5xx,
    or 429 after the retries) or no answer at all. RFC 9309 (2.3.1.4) asks crawlers to assume
    complete disallow then, rather than crawl a site whose rules they do not know."""

    def __init__(self, cause: str | BaseException) -> None:
        super().__init__(f"robots.txt could not be fetched ({cause})")
        self.cause = cause  # "HTTP 503 Service Unavailable", or the download's exception


class SafeRobotsTxtMiddleware(RobotsTxtMiddleware):
    """RobotsTxtMiddleware whose concurrent waiters all get the parsed rules, and which crawls
    nothing of a host whose robots.txt is unavailable (RobotsUnavailable).

    Scrapy (2.19) lets every request that arrives while robots.txt is downloading await one
    shared Deferred through ``asFuture``, which replaces the Deferred's result with None for
    the next waiter; None means "no robots.txt", so from the second waiter on, disallowed
    pages were fetched. Here each waiter gets its own Deferred, fed without consuming the
    shared result. Scrapy also reads the body of a 500 answer as the rules (none: everything
    allowed) and allows everything when robots.txt times out.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        # Scrapy's check reads the rules for this token; ``allows`` too.
        self.user_agent = self._robotstxt_useragent = robots_user_agent(crawler.settings)
        self._unavailable: dict[str, str | BaseException] = {}  # netloc -> why
        crawler._stiwatch_robots = self  # type: ignore[attr-defined] # for robots_rules()
        robots_logger = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
        if not any(isinstance(f, _QuietRobotsErrors) for f in robots_logger.filters):
            robots_logger.addFilter(_QuietRobotsErrors())

    def allows(self, url: str) -> bool:
        """Whether this crawl's robots.txt of ``url``'s host lets it be fetched. True while
        that robots.txt is not known (not asked yet, still downloading, or not to be had):
        the request for ``url`` then finds out, and is refused if it must be."""
        rules = self._parsers.get(urlsplit(url).netloc)
        if rules is None or isinstance(rules, Deferred):
            return True
        return bool(rules.allowed(url, self.user_agent))

    async def robot_parser(self, request: Request) -> Any:
        shared = self._parsers.get(urlparse_cached(request).netloc)
        if isinstance(shared, Deferred):
            mine: Deferred = Deferred()

            def relay(result: Any) -> Any:
                mine.callback(result)
                return result  # keep the shared result for the next waiter

            shared.addBoth(relay)
            return await maybe_deferred_to_future(mine)
        return await super().robot_parser(request)

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        if response.status >= 500 or response.status == 429:
            self._unavailable[netloc] = f"HTTP {status_message(response.status)}"
        await super()._parse_robots(response, netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if not isinstance(exc, IgnoreRequest):  # not a stop: the download failed
            self._unavailable[netloc] = exc
        super()._robots_error(exc, netloc)

    def process_request_2(self, rp: Any, request: Request) -> None:
        cause = self._unavailable.get(urlparse_cached(request).netloc)
        if cause is not None:
            self.crawler.stats.inc_value("stiwatch/robots_unavailable")
            raise RobotsUnavailable(cause)
        super().process_request_2(rp, request)


def robots_rules(crawler: Crawler) -> SafeRobotsTxtMiddleware | None:
    """The crawl's robots.txt middleware, whose ``allows(url)`` the spiders ask (None: the
    crawl does not obey robots.txt)."""
    return getattr(crawler, "_stiwatch_robots", None)


# -- conditional GET --------------------------------------------------------------------------

class ConditionalGetMiddleware:
    """Adds If-None-Match / If-Modified-Since from a listing request's stored validators."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "ConditionalGetMiddleware":
        if crawler.settings.getbool("STIWATCH_REFRESH"):
            raise NotConfigured  # --refresh wants full bodies
        return cls()

    def process_request(self, request: Request) -> None:
        validators = request.meta.get(META_VALIDATORS) or {}
        if validators.get("etag") and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = validators["etag"]
        if validators.get("last_modified") and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = validators["last_modified"]
        return None


# -- retries with backoff ---------------------------------------------------------------------

def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    # isascii: "²" (a Latin-1 byte) passes isdigit() but not float(), and the ValueError
    # failed the page (or its host's robots.txt) where a garbled header is only no header.
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, but each retry waits: Retry-After, else exponential backoff.

    A stop ends the waits at once and gives up the retries: they would not be sent any more,
    and a wait of up to STIWATCH_MAX_RETRY_AFTER would hold the stop that long."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("STIWATCH_RETRY_BACKOFF_BASE", 1.0)
        self.cap = settings.getfloat("STIWATCH_RETRY_BACKOFF_MAX", 30.0)
        self.max_retry_after = settings.getfloat("STIWATCH_MAX_RETRY_AFTER", 120.0)
        self.adaptive = settings.getbool("AUTOTHROTTLE_ENABLED")  # it eases backoffs itself
        self.stopping = False
        self.waits: set[Deferred] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "BackoffRetryMiddleware":
        middleware = super().from_crawler(crawler)
        crawler.signals.connect(middleware.stop, signal=stop_requested)
        crawler.signals.connect(middleware._downloaded, signal=signals.response_downloaded)
        return middleware

    def _downloaded(self, response: Response, request: Request) -> None:
        # Scrapy frees the download slot, and sends the host's next queued request at once when
        # there is no download delay, before process_response sees this answer: one more page
        # went to a host that had just asked for two hours. response_downloaded is sent while
        # the slot is still taken, so the pause (and the queue's drop) come first.
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return
        header = response.headers.get(b"Retry-After")
        asked = retry_after_seconds(header)
        if asked is not None and asked > self.max_retry_after:
            pause_host(self.crawler, request, asked, header)

    def stop(self) -> None:
        self.stopping = True
        for wait in list(self.waits):
            wait.cancel()

    async def _sleep(self, seconds: float) -> None:
        from twisted.internet import reactor

        if self.stopping:
            return
        wait = deferLater(reactor, seconds, lambda: None)
        self.waits.add(wait)
        try:
            await maybe_deferred_to_future(wait)
        except CancelledError:
            pass  # cut short by stop()
        finally:
            self.waits.discard(wait)

    def _backoff(self, request: Request) -> float:
        tries = request.meta.get("retry_times", 0)
        return min(self.cap, self.base * (2 ** tries))

    def process_request(self, request: Request) -> None:
        key = _slot_key(request)
        pause = _paused_hosts(self.crawler).get(key)
        if pause is None:
            return
        if pause.stored and time() >= pause.ends:
            del _paused_hosts(self.crawler)[key]  # an earlier crawl's pause, over by now
            return
        raise HostPaused(key, pause)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if response.status not in (429, 503) and not self.adaptive:
            ease_off(self.crawler, request)
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        header = response.headers.get(b"Retry-After")
        asked = retry_after_seconds(header)
        if asked is not None and asked > self.max_retry_after:
            # The host asks for longer than a crawl waits: it gets nothing more this crawl (it
            # used to be asked for every other page of it, each answered 429 in turn). Already
            # paused on response_downloaded (``_downloaded``); this is the error for ``request``.
            raise pause_host(self.crawler, request, asked, header)
        retry = self._retry(request, status_message(response.status))
        if retry is None:
            return response
        wait = asked if asked is not None else self._backoff(request)
        if response.status in (429, 503):
            # The host says it is overloaded: every request to it waits, not just this one.
            back_off(self.crawler, request, wait)
        if wait > 0:
            await self._sleep(wait)
        # Stopped meanwhile: the retry would never be sent; the spider gets this answer instead.
        return response if self.stopping else retry

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get(
            "dont_retry", False
        ):
            return None
        retry = self._retry(request, exception)
        if retry is None:
            return None
        wait = self._backoff(request)
        if wait > 0:
            await self._sleep(wait)
        return None if self.stopping else retry


# -- stopping promptly ------------------------------------------------------------------------

class CrawlStopped(IgnoreRequest):
    """A request dropped unsent because the crawl was stopped; the spiders store nothing for it
    (nothing was learnt), so the next crawl finds the page in its listing again."""


class StopMiddleware:
    """Drops the requests not yet sent when the crawl is asked to stop (``stop_requested``,
    sent by crawler.runner on SIGTERM).

    Scrapy's graceful stop (2.19) takes no more requests from the scheduler, but it waits for
    every request the engine has already handed to the downloader, and the downloader holds up
    to CONCURRENT_REQUESTS of them queued behind the CONCURRENT_REQUESTS_PER_DOMAIN in flight to
    a host: on a slow host with a download delay, a stopped crawl went on sending them one after
    another for seconds to minutes. Here the queued ones fail with CrawlStopped at once, and any
    that reaches this middleware later (one that was waiting for robots.txt) is refused; the
    downloads already on the wire finish and are stored. It sits last, after every middleware
    that may wait (robots.txt); DownloaderStats has counted each request by then, so the
    dropped ones are counted apart (``stiwatch/unsent``) to be taken off the requests sent.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stopping = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "StopMiddleware":
        middleware = cls(crawler)
        crawler.signals.connect(middleware.stop, signal=stop_requested)
        return middleware

    def process_request(self, request: Request) -> None:
        if self.stopping:
            raise self._unsent(request)
        return None

    def _unsent(self, request: Request) -> CrawlStopped:
        self.crawler.stats.inc_value("stiwatch/unsent")
        return CrawlStopped(f"not sent: the crawl was stopped ({request.url})")

    def stop(self) -> None:
        self.stopping = True
        engine = self.crawler.engine
        downloader = engine.downloader if engine is not None else None
        if downloader is None:
            return
        # Each slot's queue holds (request, deferred) pairs the downloader has not sent yet;
        # failing the deferred ends that request's download with CrawlStopped (its spider
        # errback sees it), and frees the engine's graceful stop from waiting for it.
        dropped = 0
        for slot in list(downloader.slots.values()):
            while slot.queue:
                request, deferred = slot.queue.popleft()
                deferred.errback(Failure(self._unsent(request)))
                dropped += 1
        logger.info("stopping: %d queued requests dropped unsent", dropped)


_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.I)


def _internal(address: str) -> bool:
    """True for an address on this machine or a private network (loopback, RFC 1918,
    link-local such as the cloud metadata service 169.254.169.254, unique-local IPv6...)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        # The resolver also reads the old numeric spellings (2130706433, 0x7f.1, 127.1).
        if not _NUMERIC_HOST.match(address):
            return False
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(address))
        except OSError:
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


class InternalAddressMiddleware:
    """Refuses pages on this machine or its private network that no source lives on.

    The registry decides which sites are crawled, but a feed or sitemap names its own article
    links, and any page may redirect: a hostile or compromised site could send the crawler to
    http://127.0.0.1:8001/ (``stiwatch serve``), an intranet wiki or the cloud metadata service
    and have the answer stored, searched and mailed to staff. An internal address is allowed
    only on the host of the request's own source (the operator registered it: an intranet
    source, or the test fixtures on 127.0.0.1). IP literals are refused before anything is
    sent; a name that resolves to an internal address is caught on the response's peer
    address (except through a proxy, whose own address says nothing about the site's).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "InternalAddressMiddleware":
        return cls(crawler)

    def _source_hosts(self, request: Request) -> set[str]:
        sources = getattr(self.crawler.spider, "sources", None) or {}
        candidate = request.meta.get("candidate")
        source_id = request.meta.get("source_id") or getattr(candidate, "source_id", None)
        chosen = [sources[source_id]] if source_id in sources else list(sources.values())
        return {urlsplit(s["url"]).hostname or "" for s in chosen if s.get("url")}

    @staticmethod
    def _refuse(why: str) -> IgnoreRequest:
        return IgnoreRequest(f"refused: {why} (not the host of a registered source)")

    def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        if _internal(host) and host not in self._source_hosts(request):
            raise self._refuse(f"{host} is an address on this machine or its "
                               "private network")

    def process_response(self, request: Request, response: Response) -> Response:
        peer = getattr(response, "ip_address", None)
        if peer is None or request.meta.get("proxy"):
            return response
        host = urlparse_cached(request).hostname or ""
        if _internal(str(peer)) and host not in self._source_hosts(request):
            raise self._refuse(f"{host} resolves to {peer}, an address on this "
                               "machine or its private network")
        return response
