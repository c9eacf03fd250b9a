"""Where log lines go and how they look, in the `stiwatch` process and its crawler process alike.

One line per event (``2026-11-26 06:00:03 INFO crawler.pipelines: ...``), so a log file greps
and rotates cleanly: a message or traceback that spans lines (Scrapy pretty-prints its settings)
is folded onto one. With a log file, the file gets every line at ``log_level`` while stderr
keeps only warnings and errors: cron mails stderr, and a mail should mean something needs a look.
Records the command reports itself (``extra={"reported": True}``) stay off stderr either way.
"""

from __future__ import annotations

from functools import partial
import logging
from pathlib import Path
import re
from typing import Callable

from db import why_unopenable

from .config import ConfigError, Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class LogFileError(ConfigError):
    """The log file (or its folder) cannot be created or opened."""


# Scrapy warns when it cancels a download over DOWNLOAD_MAXSIZE, and when a response ends
# before its Content-Length ("Got data loss ... set DOWNLOAD_FAIL_ON_DATALOSS", a setting
# stiwatch users never need). For stiwatch both are expected outcomes, already recorded where
# they are looked for (the article stored partial with "response too large" or "connection
# closed before the response was complete", a listing as its source's error); as warnings they
# reached stderr, so cron mailed on every run until the page's retries ran out.
_DOWNLOAD_WARNINGS = ("larger than download max size", "Got data loss in")
EXPECTED_WARNINGS = {
    "scrapy.core.downloader.handlers.http11": _DOWNLOAD_WARNINGS,
    "scrapy.core.downloader.handlers._base_streaming": _DOWNLOAD_WARNINGS,
    "scrapy.downloadermiddlewares.httpcompression": ("exceeded DOWNLOAD_MAXSIZE",),
    # A service user whose home cannot be written (`adduser --system` gives /nonexistent):
    # matplotlib draws the digest's chart from a temporary config folder, and said so in two
    # warnings that cron mailed with every digest run. Set MPLCONFIGDIR to keep its font cache.
    "matplotlib": ("mkdir -p failed for path", "created a temporary cache directory"),
}


class ExpectedAsInfo(logging.Filter):
    """Logs a library's warning that names one of ``needles`` at INFO instead."""

    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(
                needle in record.getMessage() for needle in self.needles):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class NotReported(logging.Filter):
    """Keeps off stderr a record whose news the command prints itself, marked by its logger
    with ``extra={"reported": True}``: a digest delivery that failed, is retried or is in
    doubt, which `digest send` lists and a failed `run` step sums up in its one `Error:` line.
    Cron mails stderr, one line per failed step; the log file (if any) still gets the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "reported", False)


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return re.sub(r"\s*\n\s*", " ", super().format(record))


def configure(level_name: str, log_file: str = "") -> None:
    """Route the root logger to stderr and, if given, ``log_file`` (already openable)."""
    level = getattr(logging, level_name.upper())
    formatter = OneLineFormatter(FORMAT, DATE_FORMAT)
    stderr = logging.StreamHandler()
    handlers: list[logging.Handler] = [stderr]
    if log_file:
        file = logging.FileHandler(log_file, encoding="utf-8")
        file.setLevel(level)
        handlers.append(file)
    # Handler levels, not just the root's: Scrapy sets its own loggers to DEBUG, and their
    # records reach the root's handlers whatever the root's level.
    stderr.setLevel(max(level, logging.WARNING) if log_file else level)
    stderr.addFilter(NotReported())
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    # On the loggers themselves: handlers compare levels before their own filters run.
    for name, needles in EXPECTED_WARNINGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedAsInfo) for f in logger.filters):
            logger.addFilter(ExpectedAsInfo(needles))


def setup(settings: Settings) -> Callable[[], None]:
    """Configure logging from ``settings`` here; return the same setup for a child process.

    A missing folder for the log file is created (the usual /var/log/stiwatch/ on a new
    machine); a file that still cannot be opened is a LogFileError naming it.
    """
    log_file = str(settings["log_file"] or "")
    if log_file:
        path = Path(log_file).expanduser().resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as error:
            # "File exists" or "Not a directory" alone did not say which path was wrong, and
            # "Permission denied" not whose permission: as the lock file's error says them.
            reason = why_unopenable(path, error)
            raise LogFileError(f"{log_file}: cannot open the log file ({reason}); "
                               f"log_file is set by {settings.origin('log_file')}") from None
        log_file = str(path)
    child_setup = partial(configure, str(settings["log_level"]), log_file)
    child_setup()
    return child_setup
