"""Scorers for article-body extraction, shared by the extraction benches.

Two ways to score a set of (predicted, true) bodies:

- ``token``: our own measure. Multisets of case-folded ``\\w+`` tokens; precision, recall and
  F1 per page, then the mean of each over pages (plus the same F1 over 4-token shingles).
- ``benchmark``: the way Zyte's article-extraction benchmark scores (its ``evaluate.py``,
  re-implemented from its description, not copied). Per page: the multisets of 4-token
  shingles of case-sensitive ``\\w+`` tokens (a text of fewer than 4 tokens is one shorter
  shingle; no token, no shingle); TP/FP/FN counted over them and normalised by their sum so that
  every page weighs the same. Precision is the mean over pages that predicted something (TP+FP >
  0), recall the mean over pages that have a truth (TP+FN > 0); a page with nothing wrong scores
  1 for both. F1 is the harmonic mean of those two means (not the mean of per-page F1s).
  Accuracy: the share of pages whose token sequence is exactly the truth's.

The two disagree mostly on empty predictions (the benchmark leaves them out of precision) and
on the F1 (harmonic mean of means vs mean of harmonic means), so compare like with like.
"""

from __future__ import annotations

from collections import Counter
import re
import statistics
from typing import Iterable

WORD = re.compile(r"\w+")


# -- our token scorer -----------------------------------------------------------------------

def tokens(text: str) -> list[str]:
    return WORD.findall((text or "").casefold())


def shingles(words: list[str], size: int = 4) -> list[tuple[str, ...]]:
    if len(words) < size:
        return [tuple(words)] if words else []
    return [tuple(words[i:i + size]) for i in range(len(words) - size + 1)]


def prf(predicted: list, truth: list) -> tuple[float, float, float]:
    """Precision, recall, F1 of two multisets; empty against empty is a perfect score."""
    if not predicted and not truth:
        return 1.0, 1.0, 1.0
    common = sum((Counter(predicted) & Counter(truth)).values())
    precision = common / len(predicted) if predicted else 0.0
    recall = common / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(predicted: str, truth: str) -> dict[str, float]:
    """Our per-page token scores (average them over pages)."""
    p_words, t_words = tokens(predicted), tokens(truth)
    precision, recall, f1 = prf(p_words, t_words)
    _, _, shingle_f1 = prf(shingles(p_words), shingles(t_words))
    return {"precision": precision, "recall": recall, "f1": f1, "shingle_f1": shingle_f1}


def token_scores(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    rows = [score(predicted, truth) for predicted, truth in pairs]
    return {key: statistics.fmean(row[key] for row in rows) for key in rows[0]}


# -- the benchmark's scorer -----------------------------------------------------------------

def _benchmark_shingles(text: str, size: int = 4) -> Counter:
    words = WORD.findall(text or "")  # case kept, as the benchmark does
    found = Counter()
    for i in range(max(1, len(words) - size + 1)):
        shingle = tuple(words[i:i + size])
        if shingle:
            found[shingle] += 1
    return found


def benchmark_page(predicted: str, truth: str) -> tuple[float, float, float]:
    """Normalised (TP, FP, FN) of one page."""
    true_counts, pred_counts = _benchmark_shingles(truth), _benchmark_shingles(predicted)
    tp = float(sum((true_counts & pred_counts).values()))
    fp = float(sum((pred_counts - true_counts).values()))
    fn = float(sum((true_counts - pred_counts).values()))
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (tp, fp, fn)


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fp) if tp + fp else 0.0


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return tp / (tp + fn) if tp + fn else 0.0


def benchmark_scores(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Precision, recall, F1 and accuracy over all pages, as the benchmark reports them."""
    pairs = list(pairs)
    counts = [benchmark_page(predicted, truth) for predicted, truth in pairs]
    precision = statistics.fmean(_precision(*c) for c in counts if c[0] + c[1] > 0)
    recall = statistics.fmean(_recall(*c) for c in counts if c[0] + c[2] > 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = statistics.fmean(
        float(WORD.findall(truth or "") == WORD.findall(predicted or ""))
        for predicted, truth in pairs)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}
