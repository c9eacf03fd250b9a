"""Precision, recall and F1 from counts: one definition for `stiwatch evaluate` and for the
cross-validated metrics `stiwatch train` saves with a model (imports nothing of ours, so both
sides can use it without a cycle)."""

from __future__ import annotations

from collections.abc import Iterable


def prf(tp: int, fp: int, fn: int, undefined: float | None = 0.0
        ) -> tuple[float | None, float | None, float | None]:
    """(precision, recall, F1), rounded to 4 places; ``undefined`` where a value is undefined.

    Precision is undefined when nothing was predicted (tp + fp = 0), recall when nothing is
    labelled (tp + fn = 0), F1 when neither (tp + fp + fn = 0: it is 0 whenever tp = 0 and
    something was labelled or predicted). Training's cross-validated metrics keep 0.0 there;
    `stiwatch evaluate` passes None, so a file of negatives that were all classified right does
    not report an F1 of 0.
    """
    precision = round(tp / (tp + fp), 4) if tp + fp else undefined
    recall = round(tp / (tp + fn), 4) if tp + fn else undefined
    if tp:
        p, r = tp / (tp + fp), tp / (tp + fn)
        f1: float | None = round(2 * p * r / (p + r), 4)
    else:
        f1 = 0.0 if fp or fn else undefined
    return precision, recall, f1


def prf_dict(tp: int, fp: int, fn: int, undefined: float | None = 0.0
             ) -> dict[str, float | None]:
    """prf() as {"precision", "recall", "f1"}: how reports show it."""
    return dict(zip(("precision", "recall", "f1"), prf(tp, fp, fn, undefined)))


def set_counts(gold: Iterable[set[str]], predicted: Iterable[set[str]]) -> tuple[int, int, int]:
    """(tp, fp, fn) summed over items, each a set of gold and a set of predicted labels."""
    tp = fp = fn = 0
    for g, p in zip(gold, predicted):
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    return tp, fp, fn
