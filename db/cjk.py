"""Chinese, Japanese and Korean text for full-text search: runs of CJK characters as bigrams.

FTS5's unicode61 tokenizer splits words at spaces and punctuation only, so a Japanese sentence
is one "word" and `研究` never matches inside `量子技術の研究開発`. Items containing CJK
characters are therefore indexed a second time, in ``items_fts_cjk``, from a text where each
run of CJK characters is written as its overlapping character pairs followed by its last
character (``研究開発`` -> ``研究 究開 開発 発``); other text is kept as it is. A word of two or
more CJK characters is then the phrase of its pairs (``研究開`` -> ``"研究 究開"``), which
matches exactly where the characters occur in that order; one character is a prefix query
(``研*``: every pair starting with it, or the run's last character).

The last character closes each run, so a phrase cannot match across two runs separated by
punctuation or Latin text. Bigrams are what Lucene's CJK analyzer indexes; see
docs/benchmarks.md for the comparison with a trigram index, unigrams and substring scans.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# Letters of CJK scripts that FTS5's unicode61 tokenizer keeps as token characters: kana
# (with the prolonged sound mark and iteration marks), Hangul syllables and compatibility jamo,
# CJK ideographs (unified, extensions, compatibility), 々〆〇 and the half-width forms. Not CJK
# punctuation, the middle dot ・ or radicals: unicode61 separates words at those, as it does
# at spaces. (Conjoining jamo, U+1100-11FF, are left out: Korean text is written with the
# precomposed syllables, and every letter here is at least U+3005, which has_cjk relies on.)
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3005, 0x3007), (0x3021, 0x3029), (0x3031, 0x3035), (0x3038, 0x303C), (0x3041, 0x3096),
    (0x309D, 0x309F), (0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x3131, 0x318E), (0x31F0, 0x31FF),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F),
    (0xFFA0, 0xFFDC), (0x20000, 0x323AF),
)
_FIRST = chr(CJK_RANGES[0][0])
CJK_CLASS = "".join(f"{chr(a)}-{chr(b)}" for a, b in CJK_RANGES)
CJK_RUN = re.compile(f"[{CJK_CLASS}]+")


def has_cjk(text: str | None) -> bool:
    # max() is a fast C loop: English text, even with ’ or —, never reaches U+3005, and the
    # regular expression (about 25 ns a character) runs only on text that does.
    return bool(text) and not text.isascii() and max(text) >= _FIRST \
        and CJK_RUN.search(text) is not None


_SPACE_IN_RUN = re.compile(f"(?<=[{CJK_CLASS}])\\s+(?=[{CJK_CLASS}])")


def squeeze(text: str) -> str:
    """``text`` without the spaces between two CJK letters."""
    return _SPACE_IN_RUN.sub("", text)


@functools.cache
def _bmp_table() -> Any:
    """For each code point below U+10000, whether it is a CJK letter (a numpy lookup table)."""
    import numpy as np  # only when CJK text is indexed: numpy takes a while to import

    table = np.zeros(0x10000, dtype=bool)
    for first, last in CJK_RANGES:
        if first < 0x10000:
            table[first:min(last, 0xFFFF) + 1] = True
    return table


def index_text(text: str | None) -> str | None:
    """``text`` as indexed in items_fts_cjk: each CJK run as its pairs and last character,
    separated from the text around it by spaces (研究開発 -> ` 研究 究開 開発 発 `).

    Done on the code points as a numpy array (53 µs for 1,600 characters, against 280 µs for
    the same with Python strings): every character in turn becomes a space if it starts a run,
    itself, the next character if that is in the same run, and a space after a CJK token.
    """
    if not text or text.isascii():
        return text
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    first, last = CJK_RANGES[-1]  # the one range beyond U+FFFF: the ideograph extensions
    cjk = (_bmp_table()[np.minimum(codes, 0xFFFF)] & (codes < 0x10000)) | (
        (codes >= first) & (codes <= last))
    if not cjk.any():
        return text
    before = np.zeros_like(cjk)
    before[1:] = cjk[:-1]
    after = np.zeros_like(cjk)
    after[:-1] = cjk[1:]
    out = np.full((len(codes), 4), ord(" "), dtype=np.uint32)
    keep = np.empty((len(codes), 4), dtype=bool)
    keep[:, 0] = cjk & ~before  # a space before each run
    out[:, 1] = codes
    keep[:, 1] = True
    out[:-1, 2] = codes[1:]
    keep[:, 2] = cjk & after  # the pair's second character, within the run
    keep[:, 3] = cjk  # a space after each pair, and after the run's last character
    return out[keep].tobytes().decode("utf-32-le", "surrogatepass")


def query_phrase(text: str) -> tuple[str, bool]:
    """A query word or phrase containing CJK characters as the items_fts_cjk phrase to match.

    Returns the phrase's text (to be quoted) and whether it ends in a prefix (a phrase ending
    in a single CJK character matches any pair starting with it). Spaces between two CJK
    characters are dropped: CJK text is written without them, so "研究 開発" means 研究開発.
    """
    text = squeeze(text)
    tokens = (index_text(text) or "").split()
    last = list(CJK_RUN.finditer(text))[-1]
    if any(char.isalnum() for char in text[last.end():]):
        return " ".join(tokens), False  # Latin text follows: the run's last character stays
    run = last.group()
    if len(run) == 1:
        return " ".join(tokens), True  # `研` is followed by more characters in most texts
    return " ".join(tokens[:-1]), False  # the text may go on: drop the closing character
