"""A one-line progress display for long work: counts, rate and ETA, on a terminal only."""

from __future__ import annotations

import sys
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

    Disabled (silent) when the stream is not a terminal, so cron mail and pipes stay clean.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "items",
        *,
        enabled: bool | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.counters: dict[str, int] = {}
        self.started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def set_total(self, total: int) -> None:
        self.total = total
        self._draw()

    def advance(self, n: int = 1, **counters: int) -> None:
        self.done += n
        for name, value in counters.items():
            self.counters[name] = self.counters.get(name, 0) + value
        self._draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")
                 + f" {self.unit}"]
        parts += [f"{value} {name}" for name, value in self.counters.items()]
        if self.total and self.done:
            remaining = elapsed / self.done * (self.total - self.done)
            parts.append(f"ETA {_duration(remaining)}")
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
        if self.enabled and self._width:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
