"""A hash table from non-negative int64 keys to int64 values, looked up for a whole numpy array
at once.

The model finds each pair of adjacent word ids (one int64 key) among the vocabulary's bigrams
for every text of a batch: hundreds of thousands of lookups. A binary search over the sorted
keys (``np.searchsorted``) makes about 18 scattered reads per lookup; this table, half empty,
makes one or two. Open addressing with linear probing, Fibonacci hashing; built and probed in
rounds of numpy operations, never a Python loop per key.
"""

from __future__ import annotations

import numpy as np

EMPTY = -1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads consecutive keys


class PairTable:
    """``lookup(keys)`` -> (found mask, values of the found keys)."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        values = np.asarray(values, dtype=np.int64)
        if len(np.unique(keys)) != len(keys) or (len(keys) and keys.min() < 0):
            raise ValueError("PairTable keys must be distinct and non-negative")
        self.bits = max(4, int(2 * max(len(keys), 1) - 1).bit_length())  # load <= 1/2
        size = 1 << self.bits
        self.mask = size - 1
        self.keys = np.full(size, EMPTY, dtype=np.int64)
        self.values = np.zeros(size, dtype=np.int64)
        slot = self._home(keys)  # a new array: moved on in place below
        pending = np.arange(len(keys))
        while len(pending):
            # each free slot takes the first key that wants it; the others move one slot on
            wanted = slot[pending]
            free = self.keys[wanted] == EMPTY
            _slots, first = np.unique(wanted, return_index=True)
            winner = np.zeros(len(pending), dtype=bool)
            winner[first] = True
            placed = free & winner
            self.keys[wanted[placed]] = keys[pending[placed]]
            self.values[wanted[placed]] = values[pending[placed]]
            pending = pending[~placed]
            slot[pending] = (slot[pending] + 1) & self.mask

    def _home(self, keys: np.ndarray) -> np.ndarray:
        hashed = keys.view(np.uint64) * _GOLDEN  # wraps modulo 2**64, as intended
        return (hashed >> np.uint64(64 - self.bits)).view(np.int64)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found: bool per key, the values of the found keys in order)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        slot = self._home(keys)
        stored = self.keys[slot]
        found = stored == keys
        # a miss ends at an empty slot; anything else may sit one slot further on
        pending = np.flatnonzero(~found & (stored != EMPTY))
        while len(pending):
            slot[pending] = (slot[pending] + 1) & self.mask
            stored = self.keys[slot[pending]]
            hit = stored == keys[pending]
            found[pending[hit]] = True
            pending = pending[~hit & (stored != EMPTY)]
        return found, self.values[slot[found]]
