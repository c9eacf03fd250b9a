"""The ranker of candidate countries for programme descriptions (classifier/country_ranker.py)."""

from __future__ import annotations

import numpy as np

from classifier.country_ranker import (FEATURES, KEEP_GRID, MIN_ITEMS, TAKE_GRID, Candidates,
                                       candidates, choose_cuts, pick, train_ranker)
from classifier.metrics import prf, prf_dict, set_counts
from classifier.places import Gazetteer


def found(*codes: str, tagged: tuple[str, ...] = ()) -> Candidates:
    return Candidates(list(codes), [[0.0] * len(FEATURES) for _ in codes], frozenset(tagged))


def test_pick_takes_the_best_candidate_and_any_other_sure_enough():
    item = found("DE", "FR", "IL", tagged=("FR",))
    # the best reaches `take`; another reaches `keep`; the third neither
    assert pick(item, [0.3, 0.9, 0.2], take=0.5, keep=0.8) == [("FR", 0.9, "gazetteer")]
    assert pick(item, [0.85, 0.9, 0.2], take=0.5, keep=0.8) == [
        ("FR", 0.9, "gazetteer"), ("DE", 0.85, "model")]
    # below `take` the best is not tagged: the item gets no country
    assert pick(item, [0.3, 0.4, 0.2], take=0.5, keep=0.8) == []
    assert pick(found(), [], take=0.5, keep=0.8) == []


def test_the_cuts_are_the_best_of_the_grid_as_pick_would_tag():
    rng = np.random.default_rng(7)
    codes = ["DE", "FR", "IL", "KR", "EU"]
    items, gold, probabilities = [], [], []
    for n in range(120):
        k = int(rng.integers(0, 4))
        items.append(found(*codes[:k]))
        gold.append({codes[int(rng.integers(0, 5))]} | ({"EU"} if n % 9 == 0 else set()))
        probabilities.append(rng.random(k))
    take, keep, f1 = choose_cuts(items, gold, probabilities)

    def score(take: float, keep: float) -> float:
        predicted = [{c for c, _s, _m in pick(item, p, take, keep)}
                     for item, p in zip(items, probabilities)]
        return prf_dict(*set_counts(gold, predicted))["f1"]

    assert f1 == score(take, keep)
    assert f1 == max(score(t, k) for t in TAKE_GRID for k in KEEP_GRID)


def test_candidates_are_the_named_countries_and_the_models_best():
    gazetteer = Gazetteer.load()
    classes = ["CL", "DE", "KR", "NO"]
    margins = np.array([-0.9, 0.4, -0.2, -1.1])
    scores = np.array([-1.0, 2.5, 0.5, -1.5])
    title, text = "Norway joint call", "The German agency and partners in Norway fund research."
    item = candidates(gazetteer, title, text, [("NO", 0.9, "gazetteer")], classes, margins,
                      scores, {"NO"})
    # named: Norway, Germany (a demonym); the model's three best: Germany, Korea, Chile
    assert item.codes == ["CL", "DE", "KR", "NO"]
    rows = dict(zip(item.codes, item.rows))
    column = {name: k for k, name in enumerate(FEATURES)}
    assert rows["DE"][column["rank"]] == 0 and rows["DE"][column["margin"]] == 0.4
    assert rows["DE"][column["hits_demonym"]] > 0 and not rows["DE"][column["tagged"]]
    assert rows["NO"][column["tagged"]] and rows["NO"][column["in_title"]]
    assert rows["NO"][column["hits_name"]] > rows["DE"][column["hits_name"]]
    assert rows["NO"][column["order"]] == 0 and rows["DE"][column["order"]] == 1
    assert rows["KR"][column["hits"]] == 0 and rows["KR"][column["order"]] == 9
    assert item.tagged == frozenset({"NO"})


def test_no_ranker_from_too_few_initiatives_or_where_the_thresholds_do_as_well():
    items = [found("DE", "FR") for _ in range(MIN_ITEMS - 1)]
    gold = [{"DE"} for _ in items]
    ranker, metrics = train_ranker(items, gold, gold)
    assert ranker is None and not metrics["used"] and "fewer than" in metrics["reason"]
    # the thresholds are right on every item: a ranker cannot beat them
    items = [found("DE", "FR") for _ in range(MIN_ITEMS)]
    for item in items:
        item.rows = [[1.0] + [0.0] * (len(FEATURES) - 1), [0.0] * len(FEATURES)]
    gold = [{"DE"} for _ in items]
    ranker, metrics = train_ranker(items, gold, gold)
    assert ranker is None and metrics["rules_f1"] == 1.0
    assert metrics["reason"] == "no better than the thresholds in cross-validation"


def test_training_scores_an_undefined_f1_as_0_not_1_or_null():
    """Training's metrics keep 0.0 where F1 is undefined (classifier.metrics.prf's default;
    only `stiwatch evaluate` reports null): initiatives with no country labelled and none
    tagged give the thresholds an F1 of 0, which `stiwatch train` formats as a number."""
    items = [found("DE", "FR") for _ in range(MIN_ITEMS)]
    gold: list[set[str]] = [set() for _ in items]
    ranker, metrics = train_ranker(items, gold, gold)
    assert ranker is None and "fewer than" in metrics["reason"]
    assert metrics["rules_f1"] == 0.0 and metrics["rules_f1"] is not None
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf_dict(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
