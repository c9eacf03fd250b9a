"""Where log lines go and how they look, in the `stiwatch` process and its crawler process alike.

One line per event (``2026-11-26 06:00:03 INFO crawler.pipelines: ...``), so a log file greps
and rotates cleanly: a message or traceback that spans lines (Scrapy pretty-prints its settings)
is folded onto one. With a log file, the file gets every line at ``log_level`` while stderr
keeps only warnings and errors: cron mails stderr, and a mail should mean something needs a look.
"""

from __future__ import annotations

from functools import partial
import logging
from pathlib import Path
import re
from typing import Callable

from .config import ConfigError, Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class LogFileError(ConfigError):
    """The log file (or its folder) cannot be created or opened."""


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
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)


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
            reason = error.strerror or str(error)
            raise LogFileError(f"{log_file}: cannot open the log file ({reason}); "
                               f"log_file is set by {settings.origin('log_file')}") from None
        log_file = str(path)
    child_setup = partial(configure, str(settings["log_level"]), log_file)
    child_setup()
    return child_setup
