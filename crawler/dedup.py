"""Near-duplicate articles: MinHash over word shingles, LSH bands in the store.

The same press release syndicated by three sites is one story: the copies differ in boilerplate
(a "first published by" line, a contact paragraph, a different headline) and in small edits, but
share most of their word sequences. Articles on the same topic written separately share words,
not sequences. So an article's text becomes its set of 3-word shingles, summarised by 128
MinHash values; copies are found through LSH buckets (42 bands of 3 values) stored with each
item, and confirmed by estimated containment (the share of the shorter text's shingles that the
other has), which added boilerplate or a truncated copy does not dilute the way Jaccard is.

The threshold (0.7) and shingle size were chosen on tests/fixtures/dedup/: true copies (copy
edits with US spelling and a cut sentence, syndication chrome, new headline, truncated copy)
score >= 0.82 with 3-word shingles, separately written stories <= 0.57 (two press releases
sharing the agency's "About us" paragraph are the closest). 5-word shingles scored the copy edit
at 0.74, too close to any threshold. 0.7 sits in the middle of the gap.

Everything is deterministic (blake2b, fixed permutations): signatures stored today still match
the ones computed next year.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Protocol
import unicodedata

import numpy as np

SHINGLE_WORDS = 3
PERMUTATIONS = 128
ROWS = 3
# 42 bands of 3: two texts at the threshold (containment 0.7, Jaccard ~0.54) share a bucket
# with probability 0.999; unrelated texts (Jaccard < 0.05) almost never.
BANDS = PERMUTATIONS // ROWS
# Texts with fewer shingles than this are too short to call duplicates (a headline, a teaser).
MIN_SHINGLES = 30
DEFAULT_THRESHOLD = 0.7

_VERSION = 2
_HEADER = struct.Struct("<BI")  # format version, shingle count
_EMPTY = 0xFFFFFFFF
# CJK characters are words of their own (no spaces between them); other scripts split on \W.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+")


def _coefficients() -> tuple[np.ndarray, np.ndarray]:
    """Multiply-add-shift hashing ((a*x + b) mod 2^64) >> 32, a odd: strongly universal from
    32-bit shingle hashes to 32-bit values, and cheap in numpy (no modulo)."""
    a, b = [], []
    for index in range(PERMUTATIONS):
        digest = hashlib.blake2b(f"stiwatch-minhash-{index}".encode(), digest_size=16).digest()
        a.append(int.from_bytes(digest[:8], "little") | 1)
        b.append(int.from_bytes(digest[8:], "little"))
    return np.array(a, dtype=np.uint64)[:, None], np.array(b, dtype=np.uint64)[:, None]


_A, _B = _coefficients()
_SHIFT = np.uint64(32)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    words = tokens(text)
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def signature(text: str) -> bytes:
    """The MinHash signature of ``text`` (bytes: header + 128 little-endian uint32)."""
    grams = shingles(text)
    if not grams:
        values = np.full(PERMUTATIONS, _EMPTY, dtype=np.uint32)
    else:
        hashed = np.frombuffer(
            b"".join(hashlib.blake2b(g.encode(), digest_size=4).digest() for g in grams),
            dtype="<u4",
        ).astype(np.uint64)
        # uint64 products wrap around: that is the "mod 2^64" of the hash family.
        values = ((_A * hashed[None, :] + _B) >> _SHIFT).min(axis=1).astype(np.uint32)
    return _HEADER.pack(_VERSION, len(grams)) + values.astype("<u4").tobytes()


class IncompatibleSignature(ValueError):
    """A stored signature from another format version (never compared, only replaced)."""


def _unpack(sig: bytes) -> tuple[int, np.ndarray]:
    version, count = _HEADER.unpack_from(sig)
    if version != _VERSION:
        raise IncompatibleSignature(f"signature format version {version}, expected {_VERSION}")
    return count, np.frombuffer(sig, dtype="<u4", offset=_HEADER.size)


def jaccard(sig_a: bytes, sig_b: bytes) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    count_a, a = _unpack(sig_a)
    count_b, b = _unpack(sig_b)
    if not count_a or not count_b:
        return 0.0
    return float(np.count_nonzero(a == b)) / PERMUTATIONS


def similarity(sig_a: bytes, sig_b: bytes) -> float:
    """Estimated share of the smaller text's shingles found in the other (0..1).

    From Jaccard J and the set sizes: |A∩B| = J(|A|+|B|)/(1+J); divided by min(|A|,|B|).
    """
    count_a, _ = _unpack(sig_a)
    count_b, _ = _unpack(sig_b)
    j = jaccard(sig_a, sig_b)
    if j == 0.0:
        return 0.0
    overlap = j * (count_a + count_b) / (1.0 + j)
    return min(1.0, overlap / min(count_a, count_b))


def buckets(sig: bytes) -> list[int]:
    """One LSH bucket per band: a signed 63-bit hash of the band's values (SQLite INTEGER)."""
    _, values = _unpack(sig)
    result = []
    for band in range(BANDS):
        chunk = values[band * ROWS:(band + 1) * ROWS].astype("<u4").tobytes()
        digest = hashlib.blake2b(chunk, digest_size=8, person=b"stiwatch-lsh").digest()
        result.append(int.from_bytes(digest, "little", signed=True))
    return result


class SignatureStore(Protocol):
    def save_signature(self, item_id: int, signature: bytes, buckets: list[int]) -> None: ...

    def signature_candidates(self, buckets: list[int]) -> dict[int, bytes]: ...


class Deduper:
    """Finds an earlier near-duplicate of a text among the items remembered in ``store``."""

    def __init__(self, store: SignatureStore, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"a duplicate threshold must be in (0, 1], not {threshold}")
        self.store = store
        self.threshold = threshold
        self._last: tuple[str, bytes, list[int] | None] | None = None

    def _signed(self, text: str) -> tuple[bytes, list[int] | None]:
        """The text's signature and LSH buckets (None when too short to compare).

        find() then remember() of the same text is the pipeline's pattern: sign and bucket once.
        """
        if self._last is None or self._last[0] != text:
            sig = signature(text)
            self._last = (text, sig, buckets(sig) if _unpack(sig)[0] >= MIN_SHINGLES else None)
        return self._last[1], self._last[2]

    def find(self, text: str) -> int | None:
        """The id of the earliest stored item this text nearly duplicates, or None."""
        sig, bands = self._signed(text)
        if bands is None:
            return None
        matches = []
        for item_id, other in self.store.signature_candidates(bands).items():
            try:
                if _unpack(other)[0] >= MIN_SHINGLES and similarity(sig, other) >= self.threshold:
                    matches.append(item_id)
            except IncompatibleSignature:
                continue  # written by another version; replaced when that item is remembered
        return min(matches) if matches else None

    def remember(self, item_id: int, text: str) -> None:
        """Store the text's signature for item ``item_id`` (short texts are not remembered)."""
        sig, bands = self._signed(text)
        if bands is None:
            return
        self.store.save_signature(item_id, sig, bands)
