"""What the store benchmarks share: the cache of built stores, a store with synthetic sources,
building a cached store under a temporary name, and percentiles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import db  # noqa: E402

CACHE = ROOT / "bench" / ".cache"  # stores built once and reused by later runs (gitignored)


def prepare_cache() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")


def make_store(path: Path, sources: list[str], site: str) -> db.Store:
    """A new store at ``path`` with feed sources of these ids at ``site``."""
    store = db.open_store(path)
    store.sync_sources([{"id": s, "name": s, "kind": "feed", "url": f"{site}/{s}"}
                        for s in sources])
    return store


@contextmanager
def building(path: Path) -> Iterator[Path]:
    """Build a cached store under a temporary name (what a killed build left is removed
    first); the body closes it; it becomes ``path``, WAL folded in, only when the body ends
    well, so a half-built store is never taken for a cached one."""
    temp = path.with_suffix(".building")
    for leftover in CACHE.glob(temp.name + "*"):
        leftover.unlink()
    yield temp
    with db.open_store(temp) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{temp}{suffix}").unlink(missing_ok=True)
    os.replace(temp, path)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]
