"""SIGTERM handled like Ctrl-C by the commands that crawl, so a stopped one cleans up.

systemd stops a unit (``systemctl stop``, ``TimeoutStartSec``) with SIGTERM, whose default
action ends the process at once: no ``finally`` runs, so a crawler child would crawl on without
its parent (and without the run lock) and the run would stay ``running`` in the store. Raised as
a KeyboardInterrupt instead, it takes the path Ctrl-C already takes: the crawler is stopped and
waited for, the run is recorded, and only then is the lock released. Only while such a command
runs: elsewhere (``serve``) SIGTERM keeps its default, an ordinary clean stop for systemd.
"""

from __future__ import annotations

from contextlib import contextmanager
import signal
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: Python delivers signals to the main one only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """The signal's name and the exit status a shell would give a process it ended (128+N)."""
    signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
    return signum.name, 128 + signum.value
