"""SIGTERM handled like Ctrl-C, so a stopped command cleans up instead of vanishing.

systemd stops a unit (``systemctl stop``, ``TimeoutStartSec``) with SIGTERM, whose default
action ends the process at once: no ``finally`` runs, so a crawler child would crawl on without
its parent (and without the run lock) and the run would stay ``running`` in the store. Raised as
a KeyboardInterrupt instead, it takes the path Ctrl-C already takes: the crawler is stopped and
waited for, the run is recorded, and only then is the lock released.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def install() -> None:
    """Raise Terminated on SIGTERM (main thread only, as Python's signal handlers are)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def describe(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """The signal's name and the exit status a shell would give a process it ended (128+N)."""
    signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
    return signum.name, 128 + signum.value
