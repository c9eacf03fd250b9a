"""classifier/pairs.py: the bigram hash table gives what a binary search over the sorted keys
gives."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.pairs import PairTable


def test_lookup_matches_a_binary_search():
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 10**9, 5_000))
    values = rng.integers(0, 10**6, len(keys))
    # consecutive keys (one first word, many second words) collide in a plain modulo hash
    keys = np.concatenate([keys, np.arange(2 * 10**9, 2 * 10**9 + 3_000)])
    values = np.concatenate([values, np.arange(3_000)])
    table = PairTable(keys, values)
    queries = np.concatenate([rng.choice(keys, 20_000), rng.integers(0, 3 * 10**9, 20_000)])
    found, got = table.lookup(queries)
    order = np.argsort(keys)
    at = np.minimum(np.searchsorted(keys[order], queries), len(keys) - 1)
    hit = keys[order][at] == queries
    assert (found == hit).all() and found.sum() >= 20_000
    assert (got == values[order][at[hit]]).all()


def test_empty_table_and_empty_query():
    table = PairTable(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    found, got = table.lookup(np.array([0, 5, 10**12]))
    assert not found.any() and len(got) == 0
    found, got = PairTable(np.array([7]), np.array([70])).lookup(np.zeros(0, dtype=np.int64))
    assert len(found) == 0 and len(got) == 0


def test_keys_must_be_distinct_and_non_negative():
    with pytest.raises(ValueError, match="distinct and non-negative"):
        PairTable(np.array([1, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="distinct and non-negative"):
        PairTable(np.array([-3]), np.array([1]))
