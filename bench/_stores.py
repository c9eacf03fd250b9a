"""What the store benchmarks share: the cache of built stores, a store with synthetic sources,
building a cached store once, and percentiles."""

from __future__ import annotations

from collections.abc import Callable
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


def cached(name: str, fill: Callable[[Path], None]) -> Path:
    """``CACHE/name``, built once by ``fill(path)`` under a temporary name (what a killed build
    left is removed first; ``fill`` closes its store): it becomes ``CACHE/name``, WAL folded in,
    only when ``fill`` ends well, so a half-built store is never taken for a cached one."""
    path = CACHE / name
    if path.exists():
        return path
    temp = path.with_suffix(".building")
    for leftover in CACHE.glob(temp.name + "*"):
        leftover.unlink()
    fill(temp)
    with db.open_store(temp) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{temp}{suffix}").unlink(missing_ok=True)
    os.replace(temp, path)
    return path


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]
