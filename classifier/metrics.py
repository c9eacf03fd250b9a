"""Precision, recall and F1 from counts: one definition for `stiwatch evaluate` and for the
cross-validated metrics `stiwatch train` saves with a model (imports nothing of ours, so both
sides can use it without a cycle)."""

from __future__ import annotations

from collections.abc import Iterable


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(precision, recall, F1), rounded to 4 places; 0.0 where undefined."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return round(precision, 4), round(recall, 4), round(f1, 4)


def prf_dict(tp: int, fp: int, fn: int) -> dict[str, float]:
    """prf() as {"precision", "recall", "f1"}: how reports show it."""
    return dict(zip(("precision", "recall", "f1"), prf(tp, fp, fn)))


def set_counts(gold: Iterable[set[str]], predicted: Iterable[set[str]]) -> tuple[int, int, int]:
    """(tp, fp, fn) summed over items, each a set of gold and a set of predicted labels."""
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    return tp, fp, fn
