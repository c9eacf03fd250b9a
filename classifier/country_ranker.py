"""Which of its candidate countries a programme description is about, learnt from STIP.

Where a text reads like a programme description (the relevance model's genre job), the
reporting country is often not the one it names most: a member state's programme "supports
participation in Horizon Europe", a bilateral fund's title names the partner first ("German-
Israel Foundation", reported by Israel), and a quarter of the texts name no country at all. The
country model's three thresholds (classifier/countries.py: fill, prune, replace) each read one
number, the model's margin for its best country. The ranker reads every candidate country (the
countries the gazetteer reads in the text, and the country model's TOP_MODEL best) with what
tells it apart:

- how the text names it: position-weighted hits per kind of term (name, agency, demonym,
  capital, place, currency, group), the best position (title, lead, body), the number of hits,
  the order of first mention, the gazetteer's evidence and its share of the best country's, and
  whether the gazetteer tagged it;
- the country model's SVM margin, its combined score, rank and distance from the best;
- the item: whether the title names the country, whether it is the EU, whether a multilateral
  body acts, how many countries are named, the text's length.

A gradient-boosted classifier (scikit-learn's HistGradientBoostingClassifier) turns these into a
probability that the candidate is one of the item's countries. It is trained on the training
export's initiatives with the country model's out-of-fold scores (the scores it will see on
texts it never learnt from). An item gets its best candidate when that reaches ``take``, and any
other candidate reaching ``keep`` (a joint programme reported by two countries). ``take`` and
``keep`` are chosen by cross-validation on the same initiatives, and the ranker is kept only
when its cross-validated micro-F1 beats the thresholds' on them; a tag keeps the method
``gazetteer`` when the gazetteer tagged that country, ``model`` otherwise, and the ranker's
probability as its score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from .metrics import prf_dict, set_counts
from .places import KINDS, Gazetteer

Tags = list[tuple[str, float, str]]

TOP_MODEL = 3  # the country model's best countries are candidates too
MIN_ITEMS = 200  # fewer training initiatives: no ranker, the thresholds alone
FOLDS = 3
# Chosen by the ranker's own cross-validation inside training, on five 80% parts of the
# training split (mean micro-F1 0.8905; 200 rounds at 0.1: 0.8872, 200 at 0.05: 0.8898, 400 at
# 0.05: 0.8879; 15 leaves of at least 50 candidates: 0.8911): the held-out fifths agreed
# within 0.001. Less capacity generalises better here, and predicts faster.
MAX_ITER = 100
LEARNING_RATE = 0.05
TAKE_GRID = [round(float(t), 2) for t in np.arange(0.10, 0.61, 0.05)]
KEEP_GRID = [round(float(t), 2) for t in np.arange(0.40, 0.96, 0.05)]
NOT_RANKED = 5  # the rank given to a candidate beyond the model's first few
NOT_NAMED = 9  # the order of mention of a candidate named late or not at all
MISSING_MARGIN = -3.0  # the margin of a country the model does not know

FEATURES: tuple[str, ...] = (
    "margin", "score", "behind_best", "best_margin", "rank", "evidence", "evidence_share",
    "tagged", "tagged_count", "in_title", "is_eu", "top_evidence", "named_count",
    "international", "log_length", *(f"hits_{kind}" for kind in KINDS), "best_position_weight",
    "hits", "order",
)


@dataclass
class Candidates:
    """One item's candidate countries and their feature rows (FEATURES, in that order)."""

    codes: list[str]
    rows: list[list[float]]
    tagged: frozenset[str]  # the countries the gazetteer tagged


def candidates(gazetteer: Gazetteer, title: str, text: str, tags: Tags, classes: Sequence[str],
               margins: np.ndarray, scores: np.ndarray, title_codes: set[str]) -> Candidates:
    """The item's candidates: ``tags`` are the gazetteer's, ``margins`` and ``scores`` the
    country model's SVM margins and combined scores in the order of ``classes``."""
    evidence = gazetteer.evidence(title, text)
    international = gazetteer.international(title, text)
    evidence.pop("@international", None)
    named = gazetteer.profile(title, text)
    tagged = frozenset(code for code, _s, _m in tags)
    order = np.argsort(-scores, kind="stable")
    rank = {str(classes[k]): r for r, k in enumerate(order[:NOT_RANKED])}
    column = {str(code): k for k, code in enumerate(classes)}
    best_score, best_margin = float(scores[order[0]]), float(margins[order[0]])
    top_evidence = max(evidence.values(), default=0.0)
    codes = sorted(set(evidence) | set(named) | tagged
                   | {str(classes[k]) for k in order[:TOP_MODEL]})
    log_length = math.log1p(len(text or ""))
    rows = []
    for code in codes:
        k = column.get(code)
        margin = float(margins[k]) if k is not None else MISSING_MARGIN
        score = float(scores[k]) if k is not None else best_score - 10.0
        hits = named.get(code)
        own = evidence.get(code, 0.0)
        rows.append([
            margin, score, best_score - score, best_margin, rank.get(code, NOT_RANKED),
            own, own / top_evidence if top_evidence else 0.0,
            code in tagged, len(tagged), code in title_codes, code == "EU", top_evidence,
            len(evidence), international, log_length,
            *((hits.kinds.get(kind, 0.0) for kind in KINDS) if hits else (0.0 for _ in KINDS)),
            hits.best_weight if hits else 0.0, hits.hits if hits else 0,
            min(hits.order, NOT_NAMED) if hits else NOT_NAMED,
        ])
    return Candidates(codes, rows, tagged)


def pick(found: Candidates, probabilities: Sequence[float], take: float, keep: float) -> Tags:
    """The candidates an item is tagged with, best first."""
    if not found.codes:
        return []
    best = int(np.argmax(probabilities))
    chosen = [k for k, p in enumerate(probabilities)
              if p >= keep or (k == best and p >= take)]
    chosen.sort(key=lambda k: -probabilities[k])
    return [(found.codes[k], round(float(probabilities[k]), 3),
             "gazetteer" if found.codes[k] in found.tagged else "model") for k in chosen]


class CountryRanker:
    """The trained classifier and its two cuts."""

    def __init__(self, model: HistGradientBoostingClassifier, take: float, keep: float) -> None:
        self.model = model
        self.take = take
        self.keep = keep

    def probabilities(self, items: Sequence[Candidates]) -> list[np.ndarray]:
        rows = [row for found in items for row in found.rows]
        if not rows:
            return [np.zeros(0) for _ in items]
        flat = self.model.predict_proba(np.array(rows, dtype=float))[:, 1]
        out, start = [], 0
        for found in items:
            out.append(flat[start:start + len(found.codes)])
            start += len(found.codes)
        return out

    def decide(self, items: Sequence[Candidates]) -> list[Tags]:
        """Each item's countries."""
        return [pick(found, p, self.take, self.keep)
                for found, p in zip(items, self.probabilities(items))]


def _classifier(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=MAX_ITER, learning_rate=LEARNING_RATE,
                                          random_state=seed)


def _fit(items: Sequence[Candidates], gold: Sequence[set[str]], seed: int
         ) -> HistGradientBoostingClassifier:
    x = np.array([row for found in items for row in found.rows], dtype=float)
    y = np.array([code in g for found, g in zip(items, gold) for code in found.codes])
    return _classifier(seed).fit(x, y)


def choose_cuts(items: Sequence[Candidates], gold: Sequence[set[str]],
                probabilities: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """(take, keep, micro-F1) with the best micro-F1 over the grid (ties: higher cuts), as
    pick() would tag: every candidate at once, one grid point at a time."""
    p = np.concatenate([np.asarray(q, dtype=float) for q in probabilities] + [np.zeros(0)])
    right = np.array([code in g for found, g in zip(items, gold) for code in found.codes],
                     dtype=bool)
    best_of_item = np.zeros(len(p), dtype=bool)
    start = 0
    for found, q in zip(items, probabilities):
        if len(found.codes):
            best_of_item[start + int(np.argmax(q))] = True
        start += len(found.codes)
    gold_total = sum(len(g) for g in gold)
    best = (-1.0, 0.0, 0.0)
    for take in TAKE_GRID:
        for keep in KEEP_GRID:
            chosen = (p >= keep) | (best_of_item & (p >= take))
            tp = int((chosen & right).sum())
            f1 = prf_dict(tp, int((chosen & ~right).sum()), gold_total - tp)["f1"]
            if f1 >= best[0]:
                best = (f1, take, keep)
    return best[1], best[2], best[0]


def train_ranker(items: Sequence[Candidates], gold: Sequence[set[str]],
                 rules: Sequence[set[str]], *, folds: int = FOLDS, seed: int = 0
                 ) -> tuple[CountryRanker | None, dict[str, Any]]:
    """The ranker for these initiatives (their candidates, countries and what the thresholds
    tag), or None with the reason in the metrics when it would not beat the thresholds."""
    rules_f1 = prf_dict(*set_counts(list(gold), list(rules)))["f1"]
    metrics: dict[str, Any] = {"items": len(items), "rules_f1": rules_f1, "used": False}
    labels = {code in g for found, g in zip(items, gold) for code in found.codes}
    if len(items) < MIN_ITEMS or labels != {True, False}:
        metrics["reason"] = f"fewer than {MIN_ITEMS} initiatives with candidates of both kinds"
        return None, metrics
    # out-of-fold probabilities, folds of whole items (an item's candidates stay together)
    order = np.random.default_rng(seed).permutation(len(items))
    fold_of = np.empty(len(items), dtype=int)
    fold_of[order] = np.arange(len(items)) % folds
    probabilities: list[np.ndarray] = [np.zeros(0)] * len(items)
    for fold in range(folds):
        inside = [i for i in range(len(items)) if fold_of[i] != fold]
        outside = [i for i in range(len(items)) if fold_of[i] == fold]
        ranker = CountryRanker(_fit([items[i] for i in inside], [gold[i] for i in inside],
                                    seed), 0.0, 0.0)
        for i, p in zip(outside, ranker.probabilities([items[i] for i in outside])):
            probabilities[i] = p
    take, keep, f1 = choose_cuts(items, gold, probabilities)
    metrics.update({"f1": f1, "take": take, "keep": keep,
                    "candidates": sum(len(found.codes) for found in items)})
    if f1 <= rules_f1:
        metrics["reason"] = "no better than the thresholds in cross-validation"
        return None, metrics
    metrics["used"] = True
    return CountryRanker(_fit(items, gold, seed), take, keep), metrics
