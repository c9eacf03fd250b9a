"""Deterministic byte mangling for fuzz tests of the parsers (a seeded ``random.Random``)."""

from __future__ import annotations

import random


def mangle(rng: random.Random, original: bytes, splices: list[bytes], max_cut: int) -> bytes:
    """1-12 random edits: flipped bytes, cut runs (up to ``max_cut``), spliced markup, truncation."""
    body = bytearray(original)
    for _ in range(rng.randint(1, 12)):
        at = rng.randrange(len(body)) if body else 0
        roll = rng.random()
        if roll < 0.4 and body:
            body[at] = rng.randrange(256)
        elif roll < 0.6:
            del body[at:at + rng.randint(1, max_cut)]
        elif roll < 0.9:
            body[at:at] = rng.choice(splices)
        else:
            del body[at:]
    return bytes(body)
