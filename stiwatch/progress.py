"""A one-line progress display for long work: counts, rate and ETA, on a terminal only."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Redraws ``label done/total unit · counters · ETA`` in place, at most 5 times a second.

    Used as a context manager it draws at once and then every ``tick`` seconds from a thread,
    so the elapsed time moves while nothing finishes (a crawl's first source can take a
    minute). Disabled (silent) when the stream is not a terminal, so cron mail and pipes stay
    clean.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        *,
        enabled: bool | None = None,
        stream: IO[str] | None = None,
        tick: float = 1.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.counters: dict[str, int] = {}
        self.started = time.monotonic()
        # The rate is measured from the first unit done: what comes before it (a crawl's
        # listings and robots.txt, loading a model) says nothing of how long the rest takes.
        self._first: tuple[float, int] | None = None
        self._drawn = 0.0
        self._width = 0
        self.tick = tick
        # The ticker thread draws too: one lock for the counts and the stream.
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def set_label(self, label: str) -> None:
        with self._lock:
            self.label = label
            self._draw(force=True)

    def set_total(self, total: int) -> None:
        with self._lock:
            self.total = total
            self._draw()

    def advance(self, n: int = 1, **counters: int) -> None:
        with self._lock:
            self.done += n
            if self._first is None and self.done:
                self._first = (time.monotonic(), self.done)
            for name, value in counters.items():
                self.counters[name] = self.counters.get(name, 0) + value
            self._draw()

    def start(self) -> None:
        """Draw now, then keep redrawing until close()."""
        if not self.enabled or self._ticker is not None:
            return
        with self._lock:
            self._draw(force=True)
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stopped.wait(self.tick):
            with self._lock:
                self._draw(force=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")
                 + f" {self.unit}"]
        parts += [f"{value} {name}" for name, value in self.counters.items()]
        if self.total and self._first and self.done > self._first[1]:
            since, first_done = self._first
            per_unit = (time.monotonic() - since) / (self.done - first_done)
            parts.append(f"ETA {_duration(per_unit * max(self.total - self.done, 0))}")
        elif self.total and self.done >= self.total:
            parts.append("ETA 0s")
        else:
            parts.append(f"{_duration(elapsed)} elapsed")
        return " · ".join(parts)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.2:
            return
        self._drawn = now
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def close(self) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.enabled and self._width:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
                self._width = 0

    def __enter__(self) -> "Progress":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
