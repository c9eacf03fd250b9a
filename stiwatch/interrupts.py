"""SIGTERM handled like Ctrl-C by the commands that crawl, so a stopped one cleans up.

systemd stops a unit (``systemctl stop``, ``TimeoutStartSec``) with SIGTERM, whose default
action ends the process at once: no ``finally`` runs, so a crawler child would crawl on without
its parent (and without the run lock) and the run would stay ``running`` in the store. Raised as
a KeyboardInterrupt instead, it takes the path Ctrl-C already takes: the crawler is stopped and
waited for, the run is recorded, and only then is the lock released. Only while such a command
runs: elsewhere (``serve``) SIGTERM keeps its default, an ordinary clean stop for systemd.
Within such a command a signal delivered twice at once counts once (REPEAT_S).
"""

from __future__ import annotations

from contextlib import contextmanager
import signal
import time
from typing import Any, Callable, Iterator

# coreutils `timeout` sends its signal to the command and then to the
# command's process group, so the command receives it twice within microseconds: that is one
# request to stop, not the second Ctrl-C that kills the crawler without waiting for it (a crawl
# run under `timeout -s INT` was killed that way mid-stop, its run left without its counts).
# A person cannot press Ctrl-C twice this fast.
REPEAT_S = 0.25


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _stop_handlers() -> dict[int, Callable[[int, Any], None]]:
    """SIGINT and SIGTERM handlers raising KeyboardInterrupt and Terminated, except for a
    signal repeated within REPEAT_S of the last one (see there), which is ignored."""
    last: list[float] = []

    def handler(raised: type[KeyboardInterrupt]) -> Callable[[int, Any], None]:
        def handle(signum: int, frame: Any) -> None:
            now = time.monotonic()
            if last and now - last[0] < REPEAT_S:
                return
            last[:] = [now]
            raise raised()
        return handle

    return {signal.SIGINT: handler(KeyboardInterrupt), signal.SIGTERM: handler(Terminated)}


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated and SIGINT KeyboardInterrupt, each once for
    a signal delivered twice at once (REPEAT_S)."""
    previous: dict[int, Any] = {}
    try:
        for signum, handle in _stop_handlers().items():
            previous[signum] = signal.signal(signum, handle)
    except ValueError:  # not the main thread: Python delivers signals to the main one only
        yield
        return
    try:
        yield
    finally:
        for signum, handle in previous.items():
            signal.signal(signum, handle)


def describe(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """The signal's name and the exit status a shell would give a process it ended (128+N)."""
    signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
    return signum.name, 128 + signum.value
