"""Run a crawl from Python: ``crawl(store_path, settings, ...) -> CrawlReport``.

Scrapy runs on Twisted, whose reactor cannot be started twice in one process; the tests, the
benchmarks and any long-lived caller crawl many times per process. So every crawl runs Scrapy in
a fresh child process (see ``_context``): the parent passes the job and receives events
(progress, then the final report) over a pipe. The child's stderr is Scrapy's log.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
import multiprocessing
import select
import signal
import sys
import time
import types
from typing import Any, Callable, Iterable, Mapping

import db

from . import settings as crawler_settings
from .items import CrawlReport

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

# stiwatch setting name -> Scrapy setting name.
SETTING_NAMES = {
    "concurrent_requests_per_domain": "CONCURRENT_REQUESTS_PER_DOMAIN",
    "download_delay": "DOWNLOAD_DELAY",
    "autothrottle": "AUTOTHROTTLE_ENABLED",
    "download_timeout": "DOWNLOAD_TIMEOUT",
    "max_response_size": "DOWNLOAD_MAXSIZE",
    "max_redirects": "REDIRECT_MAX_TIMES",
    "retry_times": "RETRY_TIMES",
    "sitemap_max_age_days": "STIWATCH_SITEMAP_MAX_AGE_DAYS",
    "max_new_articles_per_source": "STIWATCH_MAX_NEW_ARTICLES",
    "obey_robots_txt": "ROBOTSTXT_OBEY",
    "verify_tls_certificates": "DOWNLOAD_VERIFY_CERTIFICATES",
    "log_level": "LOG_LEVEL",
}
# A stopped crawler gets its downloads' timeout and this much more to close before it is killed.
STOP_MARGIN_S = 15.0
# Scrapy extensions stiwatch turns off (crawler.settings), with the setting that turns each on.
_NOT_LOADED_EXTENSIONS = {"scrapy.extensions.telnet.TelnetConsole": "TELNETCONSOLE_ENABLED",
                          "scrapy.extensions.remote_control.RemoteControl":
                          "REMOTE_CONTROL_ENABLED"}
# How often a crawler looks whether the process that started it is still there.
PARENT_CHECK_S = 1.0
# Extra Scrapy settings as a JSON object, for operators (and tests) who need a knob stiwatch
# does not expose, e.g. {"STIWATCH_RETRY_BACKOFF_BASE": 0.1}.
EXTRA_SETTINGS_ENV = "STIWATCH_SCRAPY_SETTINGS"


class CrawlError(Exception):
    """The crawl could not run at all (its process died, or there was nothing to crawl)."""


class CrawlInputError(CrawlError):
    """The crawl cannot start because of its input or settings (the user's to fix)."""


class NothingToCrawl(CrawlInputError):
    """No source to crawl: bad input rather than a failure."""


def scrapy_settings(settings: Mapping[str, Any] | None = None,
                    user_agent: str | None = None) -> dict[str, Any]:
    """Scrapy settings for stiwatch's settings (names as in stiwatch/config.py)."""
    settings = settings or {}
    out: dict[str, Any] = {}
    for name, scrapy_name in SETTING_NAMES.items():
        if name in settings and settings[name] is not None:
            out[scrapy_name] = settings[name]
    if "DOWNLOAD_DELAY" in out:
        # AutoThrottle starts from this and never goes below DOWNLOAD_DELAY.
        out["AUTOTHROTTLE_START_DELAY"] = out["DOWNLOAD_DELAY"]
    if "LOG_LEVEL" in out:
        out["LOG_LEVEL"] = str(out["LOG_LEVEL"]).upper()
    if user_agent:
        out["USER_AGENT"] = user_agent
    extra = os.environ.get(EXTRA_SETTINGS_ENV)
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as error:
            raise CrawlInputError(f"{EXTRA_SETTINGS_ENV} is not valid JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise CrawlInputError(f"{EXTRA_SETTINGS_ENV} must be a JSON object")
        _check_extra(parsed)
        out.update(parsed)
    return out


# Scrapy settings outside the settings table whose bad values stall a crawl rather than fail.
_POSITIVE_INTEGERS = ("CONCURRENT_REQUESTS", "CONCURRENT_ITEMS", "CONCURRENT_REQUESTS_PER_IP")
# Ours that docs/operations.md tells operators to set here: read only once a host asks for a
# pause, a bad one failed each of that host's pages (a fetch attempt lost) or kept a negative
# pause.
_SECONDS = ("STIWATCH_MAX_RETRY_AFTER", "STIWATCH_MAX_HOST_PAUSE")


def _check_extra(extra: Mapping[str, Any]) -> None:
    """The escape hatch must not go round the checks of the settings table: a Scrapy setting
    that stiwatch has a setting for is refused, naming that setting (whose limits are checked
    when settings are read), and a concurrency must be a positive integer (0 hangs a crawl)."""
    settings_for = {scrapy: name for name, scrapy in SETTING_NAMES.items()}
    for key, value in extra.items():
        if key in settings_for:
            name = settings_for[key]
            raise CrawlInputError(
                f"{EXTRA_SETTINGS_ENV} sets {key}, which is the setting {name}: set it as "
                f"STIWATCH_{name.upper()} or `{name}` in the config file, where it is checked")
        if key in _POSITIVE_INTEGERS and (isinstance(value, bool) or not isinstance(value, int)
                                          or value < 1):
            raise CrawlInputError(f"{EXTRA_SETTINGS_ENV}: {key} must be an integer of at "
                                  f"least 1, not {value!r}")
        if key in _SECONDS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not 0 <= value < math.inf):
            raise CrawlInputError(f"{EXTRA_SETTINGS_ENV}: {key} must be a number of seconds "
                                  f"of at least 0, not {value!r}")


def select_sources(store_path: str | os.PathLike[str], source_ids: Iterable[str] = ()
                   ) -> list[dict[str, Any]]:
    """The sources a crawl will visit; unknown ids raise db.NoSuchSource (bad input)."""
    with db.open_store(store_path) as store:
        ids = list(dict.fromkeys(source_ids))
        if ids:
            return [store.get_source(source_id) for source_id in ids]
        sources = store.list_sources(enabled_only=True)
    if not sources:
        raise NothingToCrawl(
            f"{store_path}: no enabled sources to crawl "
            "(run `stiwatch init`, or `stiwatch sources sync FILE`)")
    return sources


def crawl(
    store_path: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    source_ids: Iterable[str] = (),
    refresh: bool = False,
    progress: Progress | None = None,
    *,
    user_agent: str | None = None,
    scrapy_overrides: Mapping[str, Any] | None = None,
    log_setup: Callable[[], None] | None = None,
) -> CrawlReport:
    """Crawl the store's enabled sources (or ``source_ids``) in a child process.

    ``settings`` uses stiwatch's setting names; ``progress`` receives each event dict as it
    happens (``{"event": "start", "sources": [...]}``, ``source``, ``queued``, ``item``,
    ``report``). Raises db.NoSuchSource / NothingToCrawl for bad input and CrawlError when the
    crawler process dies without a report (stored items stay stored). ``log_setup`` (picklable)
    configures logging in the crawler process instead of Scrapy's own handler, so its lines
    look and go where the caller's do.
    """
    store_path = str(Path(store_path).resolve())
    sources = select_sources(store_path, source_ids)
    job = {
        "store": store_path,
        "settings": {**scrapy_settings(settings, user_agent), **(scrapy_overrides or {}),
                     "STIWATCH_REFRESH": bool(refresh), "STIWATCH_PID": os.getpid()},
        "sources": [s["id"] for s in sources],
        "log_setup": log_setup,
    }
    if progress:
        progress({"event": "start", "sources": [s["id"] for s in sources]})
    context = _context()
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_run_job, args=(job, writer), name="stiwatch-crawl")
    _start(child)
    writer.close()  # the child holds the only write end: EOF on our side means it is done
    report: CrawlReport | None = None
    failure = None
    try:
        while True:
            try:
                event = reader.recv()
            except EOFError:
                break
            if event.get("event") == "report":
                report = CrawlReport.from_dict(event["report"])
            elif event.get("event") == "failed":
                failure = event["error"]
            if progress:
                progress(event)
        child.join()
    except KeyboardInterrupt:
        # Ctrl-C: let the crawl close cleanly (write its batch, mark the run interrupted). It
        # sends nothing new, but a download under way may take its full timeout to end.
        timeout = job["settings"].get("DOWNLOAD_TIMEOUT") or crawler_settings.DOWNLOAD_TIMEOUT
        try:
            _stop_gracefully(child, reader, timeout=float(timeout) + STOP_MARGIN_S)
        finally:
            _record_if_killed(store_path, child)
        raise
    except BaseException:
        if child.is_alive():
            child.kill()
            child.join()
        raise
    finally:
        reader.close()
    if report is None and failure:
        if os.environ.get(EXTRA_SETTINGS_ENV):
            raise CrawlInputError(f"the crawler could not start: {failure} (check the Scrapy "
                                  f"settings of {EXTRA_SETTINGS_ENV})")
        raise CrawlError(f"the crawler could not start: {failure}")
    if report is None:
        raise CrawlError(f"the crawler process ended with status {child.exitcode} "
                         "before reporting; see the log above")
    return report


# -- the child process ----------------------------------------------------------------------

_CRAWLS_STARTED = 0
_WARM_CONTEXT: Any = None


def _context() -> Any:
    """Where this crawl's process comes from.

    The first crawl of a process runs in a plain spawned child, which imports what that crawl
    uses and no more: a one-shot `stiwatch crawl` or `stiwatch run` whose sources have nothing
    new loads neither the extraction libraries nor their language model (crawler.extract loads
    them on the first article). A process that crawls a second time will likely crawl again:
    from then on its crawls fork from a server process that has imported and warmed up the
    whole crawler once (crawler.warm), so each starts without seconds of imports. "forkserver"
    keeps each crawl a fresh process (a new Twisted reactor every time); where there is none,
    every crawl is spawned.
    """
    global _CRAWLS_STARTED, _WARM_CONTEXT
    _CRAWLS_STARTED += 1
    if _CRAWLS_STARTED == 1 or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    if _WARM_CONTEXT is None:
        _WARM_CONTEXT = multiprocessing.get_context("forkserver")
        _WARM_CONTEXT.set_forkserver_preload(["crawler.warm"])
    return _WARM_CONTEXT


def _stop_gracefully(child: Any, reader: Any, timeout: float = 30.0) -> None:
    """SIGTERM (the crawl stops: see _run_job), wait for the child to finish; kill it if it
    will not, or if Ctrl-C comes again."""
    try:
        if child.is_alive():
            child.terminate()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reader.poll(0.2):
                try:
                    reader.recv()
                except EOFError:
                    break
            elif not child.is_alive():
                break
        child.join(1)
    finally:
        if child.is_alive():
            child.kill()
            child.join()


def _record_if_killed(store_path: str, child: Any) -> None:
    """A crawler killed before it could record its end (a second Ctrl-C, or one that would
    not stop) leaves its run ``running``, shown so by `stiwatch status` until a later crawl
    notices: mark it ``interrupted`` now. The caller holds the run lock, so a running row
    whose process is gone can only be this crawl's."""
    if child.is_alive() or child.exitcode is None or child.exitcode >= 0:
        return  # it ended by itself, and recorded how
    from .pipelines import _process_alive

    try:
        with db.open_store(store_path) as store:
            store.close_abandoned_crawl_runs(_process_alive)
    except db.StoreError as error:  # the stop must not fail for want of this note
        logger.warning("could not mark the killed crawl interrupted: %s", error)


def _start(child: Any) -> None:
    """Start ``child`` without making it re-run the parent's main script.

    multiprocessing re-imports ``__main__`` from its file in new processes, which would run a
    caller's unguarded script (or a test runner) again. The crawl needs nothing from it, so
    the main module is hidden while the process (and the fork server) start.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        child.start()
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _pipe_closed(events: Any) -> bool:
    """Whether the read end of the pipe ``events`` writes to is closed: its reader is gone.

    Linux reports it as POLLERR on the write end. Where poll() does not say so, a crawler
    forked from the warm server notices at its next event (a broken pipe); a spawned one,
    by its parent's pid."""
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(events.fileno(), 0)  # errors and hang-ups are reported whatever the mask
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))


def _run_job(job: dict[str, Any], events: Any) -> None:
    """The crawl itself, in the child: Scrapy with our settings, events sent to the parent."""

    # Ctrl-C reaches the whole process group; the parent decides and sends SIGTERM, which
    # stops the crawl (a second one forces it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # The process that started us: the `stiwatch` command, or the fork server it started,
    # which does not see that command die while we live (we hold the pipe it watches for
    # that); our events pipe, whose only reader is the command, tells then (see _pipe_closed).
    parent = os.getppid()
    orphaned = False

    def emit(event: dict[str, Any]) -> None:
        if orphaned:
            return
        try:
            events.send(json.loads(json.dumps(event, default=str)))
        except (BrokenPipeError, ConnectionResetError):
            from twisted.internet import reactor

            reactor.callLater(0, abandon)  # not from inside the pipeline that is emitting

    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.setdict(job["settings"], priority="cmdline")
    # Off in crawler.settings, and then not even imported: Scrapy imports each extension of its
    # base list before the extension can decline, and the remote control's module imports
    # aiohttp (0.14 s of CPU in every crawl process). One an operator turns back on
    # ($STIWATCH_SCRAPY_SETTINGS) is kept.
    settings.set("EXTENSIONS_BASE", {
        name: order for name, order in settings["EXTENSIONS_BASE"].items()
        if name not in _NOT_LOADED_EXTENSIONS
        or settings.getbool(_NOT_LOADED_EXTENSIONS[name])}, priority="project")
    settings.set("STIWATCH_DB", job["store"], priority="cmdline")
    settings.set("STIWATCH_EVENTS", emit, priority="cmdline")
    if job.get("log_setup"):
        job["log_setup"]()
        settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    process = CrawlerProcess(settings)

    def could_not_run(failure: Any) -> None:
        # Scrapy drops this failure without a word (a component of STIWATCH_SCRAPY_SETTINGS
        # that cannot be loaded, say): the parent says it on one line, the traceback is DEBUG.
        logging.getLogger(__name__).debug("the crawl failed: %s", failure.getTraceback())
        emit({"event": "failed", "error": f"{failure.type.__name__}: {failure.getErrorMessage()}"})

    process.crawl("sources", source=job["sources"]).addErrback(could_not_run)
    from twisted.internet import reactor  # the one the crawl installed
    from twisted.internet.task import LoopingCall

    from .signals import parent_gone, stop_requested

    def drop_unsent() -> None:
        for crawler in process.crawlers:
            crawler.signals.send_catch_log(signal=stop_requested)

    def stop(signum: int, frame: Any) -> None:
        # Scrapy's graceful stop sends every request already queued in its downloader before
        # it ends; the middlewares drop those first (crawler.middlewares.StopMiddleware), so
        # only the downloads under way finish. Both run in the reactor, in this order: a signal
        # handler must not touch it directly.
        reactor.callFromThread(drop_unsent)
        process._signal_shutdown(signum, frame)
        # Scrapy would now end the crawl uncleanly at the next SIGINT or SIGTERM ("send again
        # to force"). Forcing is the parent's to decide (it kills this process), and the next
        # one may well be a copy of this stop: `timeout` also signals the whole process group.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def handle_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, stop)

    def abandon() -> None:
        # The parent died without stopping us (SIGKILL): it held the run lock, so crawling on
        # could overlap the next run, and nobody waits for what we fetch. Unlike a stop, the
        # downloads under way are not awaited (a site that never answers would hold us for
        # DOWNLOAD_TIMEOUT): nothing new is sent, what was fetched is written, the run is
        # closed as interrupted, and the process ends.
        nonlocal orphaned
        if orphaned:
            return
        orphaned = True
        logging.getLogger(__name__).warning(
            "the stiwatch process that started this crawl (pid %s) is gone: stopping now",
            job["settings"].get("STIWATCH_PID", parent))
        drop_unsent()
        for crawler in process.crawlers:
            crawler.signals.send_catch_log(signal=parent_gone)
        logging.shutdown()
        os._exit(1)

    def check_parent() -> None:
        # Reported items would also show it (a broken pipe), but a crawl waiting on slow or
        # silent sites reports none for minutes: look every second, for a syscall or two.
        if os.getppid() != parent or _pipe_closed(events):
            abandon()

    def start_watching() -> None:
        handle_signals()
        LoopingCall(check_parent).start(PARENT_CHECK_S, now=False)

    reactor.addSystemEventTrigger("after", "startup", start_watching)
    process.start(install_signal_handlers=False)
    events.close()
