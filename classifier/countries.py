"""The country model: a second signal for the gazetteer, learnt from STIP Compass initiatives.

The gazetteer (classifier/places.py) tags the countries a text names. Many programme
descriptions name none ("Supports research institutions by awarding a block of PhD grants..."),
and some name several (partners, models followed) while being about one. A text model learns
the rest of the vocabulary that tells a country (funders' and programmes' names the tables lack,
local terms, currencies, institutions) from the STIP Compass training export, where every
initiative has its reporting country.

- Model: TF-IDF over word 1-2-grams of the title and the first MAX_CHARS characters
  (NAMED_CHARS where the gazetteer named countries and the model only arbitrates), one linear
  SVM per country (one-vs-rest, classes balanced) and complement naive Bayes over the same
  features; the best country is the best of their scores, each standardised per text, naive
  Bayes at NB_WEIGHT. Its confidence is the SVM margin of that country.
- Combination (``combine``), gazetteer first:
  * the gazetteer or the source's home country found something: that stands, except that
  * when an STI-policy text names several countries and the model's best country is one of
    them with a margin of at least ``prune``, the others are dropped unless the title names
    them (a programme's partners are context; "Germany and France agree..." stays two). On the
    demo's labelled news this rule costs 0.004 F1 without the title exception 0.05 (bilateral
    news), and it is off for non-policy items (on them, Reuters 1987 news, it cost 0.06);
  * when nothing names a country and no source country is known, the model's best country is
    tagged (method ``model``) when its margin is at least ``fill``, in an STI-policy item or a
    programme description: what the model learnt from and ``fill`` was chosen on. Elsewhere
    ("Cloud cover could spoil festival weekend") its best country is a guess on words it never
    learnt a country from. On held-out fifths of the STIP training split this changed
    nothing on average (-0.0006 to +0.0009); on our labelled news it drops one wrong country.
  * on programme-like text (the relevance model's genre job says it does not read like news:
    a programme or strategy described by whoever runs it) partners are context, not actors,
    even in the title ("Korean-Swiss joint call" reported by Korea), and so is the EU: a
    member state's programme "supports participation in Horizon Europe" or "complements ERC
    grants". There the title is no exception, the EU is pruned like any other country, and a
    text naming only the EU takes the model's best country instead when its margin is at
    least ``replace``. News keeps the title's countries and the EU beside a country ("UK
    researchers win ERC grants"). On held-out fifths of the STIP training split, dropping the
    title exception in programme text gained 0.005-0.006 F1 (0.872/0.887/0.874 ->
    0.878/0.893/0.879).
  * a country the gazetteer read only from an ambiguous name's default reading ("NRF" is
    Korea's, "DST" India's, "Brussels" the EU's) gives way to the model's best country when
    that is another reading of the name (South Africa's NRF) and its margin reaches ``fill``,
    in any item. On held-out fifths of the STIP training split this changed 1-2 of 1,068
    items, all for the better (+0.001 to +0.002 F1).
  ``fill``, ``prune`` and ``replace`` are chosen together by k-fold cross-validation on the
  training data (the micro-F1 of the whole combination on out-of-fold margins), never on an
  evaluation file.
- In an STI-policy programme description (unless the source's home country stands for a text
  naming none) a ranker learnt from the same initiatives decides instead of the thresholds:
  classifier/country_ranker.py. It is trained on the model's out-of-fold scores and kept only
  where its cross-validated micro-F1 beats the thresholds'; news keeps the thresholds.
- Items an analyst gave a country (`stiwatch tag ID --add country=XX`) are added to the
  training examples (``analyst_examples``), and a country an analyst removed (`--remove
  country=XX`) is a negative for that country alone: an item with no country left is no
  example of any country, but its text says what does not tell XX (``fit_models``).
- Saved beside the relevance/areas model in the model folder as ``countries.joblib`` and
  ``countries.json`` (same metadata and the same version checks: a model made for another
  scikit-learn or taxonomy version is refused with a message to retrain).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
import datetime as dt
import hashlib
import math
import os
from pathlib import Path
import time
from typing import Any
import unicodedata

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

from .artifacts import COUNTRY_STEM, SAVED_MODELS, load_artifact, save_artifact
from .country_ranker import FEATURES as RANKER_FEATURES, MISSING_MARGIN, CountryRanker, \
    candidates, train_ranker
from .lexicon import non_ascii_chars
from .metrics import prf_dict, set_counts
from .model import _COMBINING, Features, model_text as _model_text
from .places import Gazetteer, derive_regions
from .stip import Example
from .taxonomy import Taxonomy, load_taxonomy

MODEL_STEM = COUNTRY_STEM  # countries.joblib + countries.json beside the main model
FORMAT = SAVED_MODELS[MODEL_STEM][0]
META_FILE = f"{MODEL_STEM}.json"
# 3-fold CV on the STIP training split (accuracy overall / on the texts the gazetteer finds no
# country in), title and first 1,500 characters: LinearSVC C 0.1 0.766 / 0.472, 0.5 0.813 /
# 0.522, 1.0 0.822 / 0.541, 4.0 0.824 / 0.545 (plateau); unigrams only 0.812 / 0.492; all 66k
# bigrams as 60k; a logistic regression 0.76 at 10x the time.
# How much text: the model learns from, and reads when the gazetteer named no country, the
# first MAX_CHARS characters (all of 99% of the initiatives, a quarter of which run past
# 1,500). Where the gazetteer named countries the model only arbitrates between them (prune,
# resolve) and reads NAMED_CHARS: on 2,000-word news, where that is most items, reading 6,000
# costs 0.2 ms more per item, a fifth of `stiwatch classify`'s time. The whole combination on
# five held-out fifths of the STIP training split: all 1,500 0.8847 / 0.8984 / 0.8810 / 0.8677 /
# 0.8841; all 6,000 0.8894 / 0.9108 / 0.8837 / 0.8732 / 0.8820; 6,000 with 1,500 where
# countries are named 0.8890 / 0.9108 / 0.8837 / 0.8732 / 0.8820 (+0.005 on average); trained
# on 1,500 and reading 6,000 where none is named 0.8852 / 0.9012 / 0.8820 / 0.8677 / 0.8846.
# A saved model reads the lengths it was trained with (metadata features.max_chars and
# features.named_chars; a model saved before these were recorded read 1,500 throughout).
MAX_CHARS = 6000
NAMED_CHARS = 1500
C = 1.0
MAX_FEATURES = 60_000
# Which country is best: the SVM with balanced class weights, plus complement naive Bayes at a
# quarter of its weight. 3-fold CV accuracy on the STIP training split (overall / on the texts
# naming no country): SVM 0.822 / 0.540, balanced 0.831 / 0.552, + naive Bayes 0.842 / 0.569
# (weight 0.5 0.839, 1.0 0.824; alpha 0.1 0.839, 0.3 0.838). The whole combination on five
# held-out fifths of the split: +0.000 to +0.006 F1 (0.8810 / 0.8951 / 0.8805 / 0.8694 /
# 0.8757 -> 0.8821 / 0.8977 / 0.8839 / 0.8755 / 0.8757); balanced weights alone were -0.004
# to +0.007. Not kept: a second SVM and naive Bayes over character 3-5-grams voting at half
# weight (3-fold CV accuracy 0.845 / 0.573 -> 0.856 / 0.589, but the whole combination on the
# five fifths -0.004 to +0.006, +0.003 on average, for a 20 MB larger file and 0.4 s more
# loading); all 75k word features instead of 60k (+0.002 / +0.004); C 0.5 or 2 at 6,000
# characters (within 0.003).
CLASS_WEIGHT = "balanced"
NB_ALPHA = 0.03
NB_WEIGHT = 0.25
MIN_EXAMPLES = 2  # a country needs this many initiatives to be learnt
GRID = [round(float(t), 2) for t in np.arange(-1.2, 1.01, 0.05)]
OFF = math.inf  # a threshold no margin reaches: the rule is off

Progress = Callable[[str], None]
Tags = list[tuple[str, float, str]]
Alternatives = Mapping[str, Collection[str]]  # see Gazetteer.alternatives


def model_text(title: str | None, text: str | None, max_chars: int = MAX_CHARS) -> str:
    """The country model's input: the areas model's text, cut at ``max_chars``."""
    return _model_text(title, text, max_chars)


def model_input(item: Any, tags: Tags, max_chars: int = MAX_CHARS,
                named_chars: int = NAMED_CHARS) -> str:
    """The model's input for an item (``title``, ``text``) the gazetteer gave ``tags``: the
    long text where it named no country, the short one where the model only arbitrates."""
    return model_text(item.title, item.text, named_chars if _named(tags) else max_chars)


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, max_df=0.5,
                           sublinear_tf=True, strip_accents="unicode",
                           max_features=MAX_FEATURES, dtype=np.float32)


def _score(margin: float, threshold: float) -> float:
    """A 0..1 score: 0.5 at the threshold, rising with the margin above it."""
    limit = threshold if math.isfinite(threshold) else 0.0
    return round(1.0 / (1.0 + math.exp(-4.0 * (margin - limit))), 3)


def combine(tags: Tags, best: str | None, margin: float, fill: float, prune: float,
            title_codes: Iterable[str] = (), policy: bool = True, *,
            replace: float = OFF, programme: bool = False,
            alternatives: Alternatives | None = None,
            lists: Iterable[set[str]] = ()) -> Tags:
    """The gazetteer's tags ((code, score, method), method "gazetteer" or "source") with the
    model's best country and its margin: see the module docstring. ``title_codes``: countries
    the title names (never pruned in news); ``policy``: the item is STI-policy (pruning
    applies only then); ``programme``: the text reads like a programme description, not news;
    ``alternatives``: Gazetteer.alternatives of the tagged countries; ``lists``: countries
    named in one list in the news's title or lead (Gazetteer.lists), kept with the best one
    when it is among them."""
    if not tags:
        if (policy or programme) and best is not None and margin >= fill:
            return [(best, _score(margin, fill), "model")]
        return tags
    if alternatives and margin >= fill:
        tags = resolve(tags, best, _score(margin, fill), alternatives)
    # In a programme description even the title's countries are partners ("Korean-Swiss
    # joint call" reported by one of the two); in news they are subjects.
    title_codes = set() if programme else set(title_codes)
    if policy and programme and _eu_only(tags) and best not in (None, "EU") \
            and margin >= replace:
        return [(best, _score(margin, replace), "model")]
    named = [t for t in tags if t[2] == "gazetteer"]
    if policy and len(named) > 1 and margin >= prune and any(c == best for c, _s, _m in named):
        # In news the EU is another level, not a partner: "UK researchers win ERC grants" is
        # both; in a programme description it is context like any partner.
        keep = title_codes | {best} | (set() if programme else {"EU"})
        if not programme:
            # "the research councils of Denmark, Finland, Iceland, Norway and Sweden launch a
            # joint call": the best country's list acts with it; a list it is not in
            # ("JST funds projects with France, Germany and Italy") stays partners
            keep |= {code for named_together in lists if best in named_together
                     for code in named_together}
        kept = [t for t in named if t[0] in keep]
        if len(kept) < len(named):
            return kept
    return tags


def resolve(tags: Tags, best: str | None, score: float, alternatives: Alternatives) -> Tags:
    """``tags`` with the first country read only from an ambiguous name's default reading
    replaced by ``best`` when that is another reading of the name (and not tagged already)."""
    if best is None or any(code == best for code, _s, _m in tags):
        return tags
    for i, (code, _s, method) in enumerate(tags):
        if method == "gazetteer" and best in alternatives.get(code, ()):
            return tags[:i] + [(best, score, "model")] + tags[i + 1:]
    return tags


def _eu_only(tags: Tags) -> bool:
    return len(tags) == 1 and tags[0][0] == "EU" and tags[0][2] == "gazetteer"


def _named(tags: Tags) -> bool:
    """The gazetteer named a country of its own: the model only arbitrates (see NAMED_CHARS)."""
    return bool(tags) and not _eu_only(tags)


def _margins(svm: LinearSVC, x: Any) -> np.ndarray:
    """One column per country (a two-country SVM gives one margin, positive for classes_[1])."""
    margins = svm.decision_function(x)
    if margins.ndim == 1:
        margins = np.column_stack([-margins, margins])
    return margins


def _standardised(scores: np.ndarray) -> np.ndarray:
    """Each row's scores as z-scores: two models' scores on one scale."""
    scores = scores - scores.mean(axis=1, keepdims=True)
    return scores / (scores.std(axis=1, keepdims=True) + 1e-9)


def fit_models(x: Any, y: np.ndarray, negatives: tuple[Any, Sequence[Collection[str]]] | None
               = None) -> tuple[LinearSVC, np.ndarray]:
    """The SVM, and naive Bayes' log feature weights per country (rows in the SVM's class
    order, float32: all prediction needs). ``negatives``: (matrix, the countries each row is
    known not to be about), texts that are a negative for those countries only."""
    # random_state: liblinear's dual solver visits the examples in a random order, and without
    # a seed two trainings on the same data gave different models (STIP eval countries
    # 0.9015-0.9029 from run to run).
    svm = LinearSVC(C=C, class_weight=CLASS_WEIGHT, random_state=0).fit(x, y)
    bayes = ComplementNB(alpha=NB_ALPHA).fit(x, y)
    assert list(bayes.classes_) == list(svm.classes_)
    log_prob = bayes.feature_log_prob_
    if negatives is not None:
        log_prob = _learn_negatives(svm, bayes, x, y, *negatives)
    return svm, log_prob.astype(np.float32)


def _learn_negatives(svm: LinearSVC, bayes: ComplementNB, x: Any, y: np.ndarray,
                     x_neg: Any, not_about: Sequence[Collection[str]]) -> np.ndarray:
    """Refit, for each country some rows of ``x_neg`` are not about, its one-vs-rest SVM with
    those rows as further negatives, and its naive Bayes weights with them in its complement;
    naive Bayes' log feature weights are returned. The multi-class fit cannot take a row that
    is a negative for one country and says nothing of the others (an item whose country an
    analyst removed may be about any other), so each such country's problem is solved again
    as liblinear's one-vs-rest poses it: its examples positive at C times its balanced weight,
    all the others negative at C. Countries no row mentions keep their fit."""
    classes = list(svm.classes_)
    weights = dict(zip(classes, compute_class_weight(CLASS_WEIGHT, classes=svm.classes_, y=y)))
    rows_of = {code: [i for i, codes in enumerate(not_about) if code in codes]
               for code in classes}
    rows_of = {code: rows for code, rows in rows_of.items() if rows}
    log_prob = bayes.feature_log_prob_.copy()
    if not rows_of:
        return log_prob
    if len(classes) == 2:
        # one hyperplane between the two: a text not about one of them is, to it, the other's
        extra = [(i, classes[1 - classes.index(code)]) for code, rows in rows_of.items()
                 for i in rows]
        refit = LinearSVC(C=C, class_weight=weights, random_state=0).fit(
            sp.vstack([x, x_neg[[i for i, _other in extra]]]),
            np.concatenate([y, np.array([other for _i, other in extra])]))
        svm.coef_, svm.intercept_ = refit.coef_, refit.intercept_
    for code, rows in rows_of.items():
        k = classes.index(code)
        if len(classes) > 2:
            binary = LinearSVC(C=C, class_weight={1: weights[code], 0: 1.0},
                               random_state=0).fit(
                sp.vstack([x, x_neg[rows]]),
                np.concatenate([(y == code).astype(int), np.zeros(len(rows), dtype=int)]))
            svm.coef_[k], svm.intercept_[k] = binary.coef_[0], binary.intercept_[0]
        # ComplementNB (norm off) weighs a country's features by minus the log share of each
        # in the texts of every other country: these texts join that complement
        complement = (bayes.feature_all_ + NB_ALPHA - bayes.feature_count_[k]
                      + np.asarray(x_neg[rows].sum(axis=0)).ravel())
        log_prob[k] = -np.log(complement / complement.sum())
    return log_prob


def by_feature(bayes: np.ndarray | None) -> np.ndarray | None:
    """Naive Bayes' weights (one row per country) as :func:`scores` reads them: one row per
    feature, C-contiguous. scipy's sparse x dense product copies a dense operand laid out
    any other way on every call: ``bayes.T`` (58 countries x 60,000 features, 14 MB) was
    copied up to twice a batch of `stiwatch classify`, 45 ms the first time in a run (new
    memory) and 2-3 ms after."""
    return None if bayes is None else np.ascontiguousarray(bayes.T)


def scores(svm: LinearSVC, bayes_by_feature: np.ndarray | None, x: Any,
           weight: float = NB_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """(SVM margins, combined scores) per row of ``x`` and country (``svm.classes_``): the
    combined score is the SVM's standardised, plus naive Bayes' at ``weight``;
    ``bayes_by_feature``: see :func:`by_feature`."""
    margins = _margins(svm, x)
    if bayes_by_feature is None:
        return margins, margins
    return margins, _standardised(margins) + weight * _standardised(
        np.asarray(x @ bayes_by_feature, dtype=np.float64))


def choose(svm: LinearSVC, bayes_by_feature: np.ndarray | None, x: Any,
           weight: float = NB_WEIGHT) -> list[tuple[str, float]]:
    """(best country, its SVM margin) per row of ``x``; naive Bayes votes at ``weight``
    (``bayes_by_feature``: see :func:`by_feature`)."""
    margins, combined = scores(svm, bayes_by_feature, x, weight)
    top = combined.argmax(axis=1)
    return [(str(svm.classes_[k]), float(margins[row, k])) for row, k in enumerate(top)]


class CountryModel:
    """Vectoriser + one-vs-rest linear SVM (+ naive Bayes weights) + the three thresholds,
    with saved metadata."""

    def __init__(self, vectorizer: TfidfVectorizer, svm: LinearSVC, fill: float, prune: float,
                 metadata: dict[str, Any], replace: float = OFF,
                 bayes: np.ndarray | None = None, ranker: CountryRanker | None = None) -> None:
        self.vectorizer = vectorizer
        self.svm = svm
        self.bayes = bayes  # None in a model saved before naive Bayes joined: the SVM alone
        self._bayes_by_feature = by_feature(bayes)  # laid out once, not copied every batch
        # None in a model saved before the ranker existed, or where it did not beat the
        # thresholds: they decide for programme descriptions too
        self.ranker = ranker
        self.fill = fill
        self.prune = prune
        self.replace = replace
        self.metadata = metadata
        # the fast transform's tables are part of the model: built with it, not in the first
        # batch a run classifies (a tenth of a second)
        self._features = Features.of(vectorizer).build_lookups()

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def max_chars(self) -> int:
        """The length of text it was trained on and reads where the gazetteer named no country
        (models saved before it was recorded: 1,500)."""
        return int(self.metadata.get("features", {}).get("max_chars", 1500))

    @property
    def named_chars(self) -> int:
        """The length of text it reads where the gazetteer named countries."""
        return min(int(self.metadata.get("features", {}).get("named_chars", NAMED_CHARS)),
                   self.max_chars)

    @property
    def nb_weight(self) -> float:
        """Naive Bayes' weight in the choice of country, as trained."""
        return float(self.metadata.get("features", {}).get("naive_bayes", {}).get(
            "weight", NB_WEIGHT))

    def transform(self, texts: Sequence[str]) -> Any:
        """The vectorizer's matrix for ``texts``, by classifier.model.Features' fast transform
        (the same matrix: tests/test_classifier_countries.py checks). The texts get the
        vectorizer's own lower-casing and accent stripping first; a text whose characters
        those steps and Features' tokenizer would treat differently (a capital left by accent
        stripping, a combining mark that strips to nothing) goes to the vectorizer itself."""
        prepared, fast, odd = [], [], []
        for i, text in enumerate(texts):
            text = text.lower()
            if not text.isascii():
                text = strip_accents(text)
                if text != text.lower() or _COMBINING.search(text):
                    odd.append(i)
                    continue
            prepared.append(text)
            fast.append(i)
        if not odd:
            return self._features.transform(prepared)
        # one odd text must not send the whole batch down the slow path
        parts = [self.vectorizer.transform([texts[i] for i in odd])]
        if prepared:
            parts.insert(0, self._features.transform(prepared))
        position = np.empty(len(texts), dtype=np.int64)
        position[fast + odd] = np.arange(len(texts))
        return sp.vstack(parts, format="csr")[position]

    def best(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(best country, its margin) for texts made with :func:`model_text`."""
        if not texts:
            return []
        return choose(self.svm, self._bayes_by_feature, self.transform(texts),
                      self.nb_weight)

    def text_for(self, item: Any, tags: Tags) -> str:
        """The model's input for an item the gazetteer gave ``tags``."""
        return model_input(item, tags, self.max_chars, self.named_chars)

    def needs(self, tags: Tags, source_country: str | None = None, policy: bool = True,
              programme: bool = False, contested: bool = False) -> bool:
        """True when the model could change these tags (it is run only for such items).
        ``contested``: a tagged country was read only from an ambiguous name."""
        if not tags:
            return (policy or programme) and not source_country and math.isfinite(self.fill)
        if contested and math.isfinite(self.fill):
            return True
        if not policy:
            return False
        if programme and _eu_only(tags):
            return math.isfinite(self.replace)
        return math.isfinite(self.prune) and sum(m == "gazetteer" for _c, _s, m in tags) > 1

    def apply(self, items: Sequence[Any], results: Sequence[Any], gazetteer: Gazetteer) -> None:
        """Revise classifier/pipeline.py Results in place: their countries, and the regions
        derived from them (``international`` from multilateral bodies is kept). ``items`` have
        ``title``, ``text`` and ``source_country``; ``gazetteer`` is the one that tagged them.
        A result whose ``news_like`` is False is treated as a programme description; its
        ``alternatives`` are Gazetteer.alternatives of its countries."""
        rows, titled, listed, ranked = [], {}, {}, []
        for i, (item, result) in enumerate(zip(items, results)):
            programme = result.news_like is False
            if self.ranker is not None and programme and result.is_policy \
                    and not any(m == "source" for _c, _s, m in result.countries):
                ranked.append(i)
                continue
            if not self.needs(result.countries, item.source_country, result.is_policy,
                              programme, bool(result.alternatives)):
                continue
            if not result.countries and not programme \
                    and any(r == "international" for r, _s, _m in result.regions):
                continue  # a multilateral body's news (OECD, CERN) naming no country is no one's
            if result.countries and not programme:
                # in news the title's countries are never dropped: is there anything to drop?
                titled[i] = title_codes(gazetteer, item.title, NEWS_TITLE_KINDS, item.text)
                if result.is_policy and len(result.countries) > 1:  # what combine may narrow
                    listed[i] = gazetteer.lists(item.title, item.text, NAMING_KINDS)
                if not result.alternatives and all(
                        c in titled[i] or c == "EU"
                        for c, _s, m in result.countries if m == "gazetteer"):
                    continue
            rows.append(i)
        if ranked:
            self._rank([items[i] for i in ranked], [results[i] for i in ranked], gazetteer)
        if not rows:
            return
        best = self.best([self.text_for(items[i], results[i].countries) for i in rows])
        for i, (code, margin) in zip(rows, best):
            result = results[i]
            _revise(result, combine(result.countries, code, margin, self.fill, self.prune,
                                    titled.get(i, ()), result.is_policy, replace=self.replace,
                                    programme=result.news_like is False,
                                    alternatives=result.alternatives,
                                    lists=listed.get(i, ())))

    def _rank(self, items: Sequence[Any], results: Sequence[Any], gazetteer: Gazetteer) -> None:
        """The ranker's countries for STI-policy programme descriptions."""
        margins, combined = scores(
            self.svm, self._bayes_by_feature,
            self.transform([self.text_for(item, r.countries) for item, r in zip(items, results)]),
            self.nb_weight)
        found = [candidates(gazetteer, item.title, item.text, result.countries,
                            self.svm.classes_, margins[k], combined[k],
                            title_codes(gazetteer, item.title, text=item.text))
                 for k, (item, result) in enumerate(zip(items, results))]
        known = set(self.svm.classes_)
        for result, countries in zip(results, self.ranker.decide(found)):
            if not countries:
                # The ranker learnt from the countries of its training export (STIP's 58): it
                # never saw another country be an item's subject, and so never takes one. An
                # item that names only such countries keeps the gazetteer's rather than none
                # (the model never empties the countries a text names).
                countries = [tag for tag in result.countries
                             if tag[2] == "gazetteer" and tag[0] not in known]
            _revise(result, countries)


def _revise(result: Any, countries: Tags) -> None:
    """Give a pipeline Result new countries, and the regions derived from them."""
    if countries != result.countries:
        result.countries = countries
        result.regions = derive_regions(countries, result.regions)


ANALYST_PREFIX = "analyst-"  # ids of training examples made from analysts' items
def strip_accents(text: str) -> str:
    """scikit-learn's ``strip_accents_unicode`` (NFKD, then no combining characters), by
    replacing the few distinct combining characters rather than testing every character."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text)
    for ch in non_ascii_chars(text):  # combining characters are never ASCII
        if unicodedata.combining(ch):
            text = text.replace(ch, "")
    return text


NAMING_KINDS = frozenset({"name", "demonym", "capital", "group"})
# In news an agency in the title acts, and an actor is what taxonomy.md tags: "JST and UKRI
# open joint call" is about Japan and the UK whichever the model prefers.
NEWS_TITLE_KINDS = NAMING_KINDS | {"agency"}


def title_codes(gazetteer: Gazetteer, title: str, kinds: frozenset[str] = NAMING_KINDS,
                text: str | None = None) -> set[str]:
    """Countries the title names by name, demonym or capital ("Germany and France agree",
    "Korean-Swiss call"), and by ``kinds`` of name more. The ranker's feature: there an
    agency's name in a title says whose programme it is, not that a second country is a
    subject. With the item's ``text``, read from its scan, which the gazetteer remembers
    for the batch being classified; without, from a scan of the title alone (the same
    hits)."""
    if text is None:
        keys_found = [keys for _weight, keys in gazetteer._hits(title or "", "")[0]]
    else:
        keys_found = [keys for _p, _s, _e, keys, in_title in gazetteer._scanned(title, text)[3]
                      if in_title]
    return {key[0] for keys in keys_found for key in keys
            if key[1] in kinds and not key[0].startswith("@")}


# -- training ------------------------------------------------------------------------------


def choose_thresholds(gold: list[set[str]], tags: list[Tags], best: list[tuple[str, float]],
                      titled: list[set[str]] | None = None,
                      programme: list[bool] | None = None,
                      alternatives: list[Alternatives] | None = None,
                      ) -> tuple[float, float, float, dict[str, Any]]:
    """(fill, prune, replace, metrics): the thresholds with the best micro-F1 of the
    combination over the grid (ties: the higher, more cautious thresholds), from out-of-fold
    margins. ``programme`` flags the items that read as programme descriptions (the STIP
    initiatives; None: all of them); ``alternatives`` are Gazetteer.alternatives per item."""
    base = set_counts(gold, [{c for c, _s, _m in t} for t in tags])
    titled = titled if titled is not None else [set() for _ in gold]
    programme = programme if programme is not None else [True] * len(gold)
    alternatives = alternatives if alternatives is not None else [{} for _ in gold]
    # Three disjoint kinds of item change with the thresholds: those the gazetteer leaves
    # empty or read from an ambiguous name the model reads otherwise (fill), programme
    # descriptions naming only the EU (replace), and those naming several countries, one of
    # them the model's best (prune). Each item's change in (tp, fp, fn) when its rule fires,
    # with the margin it fires from:
    changes: dict[str, list[tuple[float, int, int, int]]] = {"fill": [], "prune": [],
                                                             "replace": []}
    for g, t, (code, margin), in_title, prog, alt in zip(gold, tags, best, titled, programme,
                                                         alternatives):
        before = {c for c, _s, _m in t}
        resolved = resolve(t, code, 0.0, alt) if alt else t
        if resolved is not t:
            # (an item also naming partners is counted here only: pruning it as well is rare)
            changes["fill"].append(_change(g, before, {c for c, _s, _m in resolved}, margin))
            continue
        if not t:
            kind = "fill"
        elif prog and _eu_only(t):
            kind = "replace"
        elif len(before) > 1:
            kind = "prune"
        else:
            continue
        after = {c for c, _s, _m in combine(t, code, 0.0, -math.inf, -math.inf, in_title,
                                            replace=-math.inf, programme=prog)}
        if after != before:
            changes[kind].append(_change(g, before, after, margin))
    grid = np.array(GRID + [OFF])
    # gained[kind][i]: the summed change of the items whose margin reaches grid[i]
    gained = {}
    for kind, rows in changes.items():
        table = np.array(rows, dtype=float).reshape(-1, 4)
        gained[kind] = np.array([table[table[:, 0] >= cut, 1:].sum(axis=0) for cut in grid])
    total = (np.array(base, dtype=float)
             + gained["fill"][:, None, None, :] + gained["prune"][None, :, None, :]
             + gained["replace"][None, None, :, :])
    tp, fp, fn = total[..., 0], total[..., 1], total[..., 2]
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    # ties: the highest thresholds (fill first, then prune, then replace)
    ties = np.argwhere(f1 >= f1.max() - 1e-9)
    i, j, k = max(map(tuple, ties))
    fill, prune, replace = float(grid[i]), float(grid[j]), float(grid[k])
    combined = combine_all(tags, best, titled, programme, alternatives, fill, prune, replace)
    metrics = {
        "gazetteer": prf_dict(*base),
        "combined": prf_dict(*set_counts(gold, [{c for c, _s, _m in t} for t in combined])),
        "model_accuracy": round(float(np.mean([code in g for g, (code, _m) in zip(gold, best)])),
                                4) if best else 0.0,
        "filled": int(sum(1 for t, c in zip(tags, combined) if not t and c)),
        "resolved": int(sum(1 for t, (code, margin), alt in zip(tags, best, alternatives)
                            if alt and margin >= fill and resolve(t, code, 0.0, alt) is not t)),
        "pruned": int(sum(1 for t, c in zip(tags, combined) if t and len(c) < len(t))),
        "replaced": int(sum(1 for t, c in zip(tags, combined) if _eu_only(t) and c != t)),
    }
    return fill, prune, replace, metrics


def combine_all(tags: list[Tags], best: list[tuple[str, float]], titled: list[set[str]],
                programme: list[bool], alternatives: list[Alternatives], fill: float,
                prune: float, replace: float) -> list[Tags]:
    """``combine`` over items, as the thresholds tag them (STI-policy items all)."""
    return [combine(t, code, margin, fill, prune, in_title, replace=replace, programme=prog,
                    alternatives=alt)
            for t, (code, margin), in_title, prog, alt in zip(tags, best, titled, programme,
                                                              alternatives)]


def _change(gold: set[str], before: set[str], after: set[str], margin: float
            ) -> tuple[float, int, int, int]:
    """(margin, change in tp, in fp, in fn) when an item's countries go from before to after."""
    return (margin, len(gold & after) - len(gold & before), len(after - gold) - len(before - gold),
            len(gold - after) - len(gold - before))


def analyst_examples(items: Iterable[dict[str, Any]]) -> list[Example]:
    """Store items an analyst gave or took a country (``store.analyst_labelled_items()``):
    in-domain news for the model. An item's countries are those added or confirmed (verdict
    1), its ``not_countries`` those removed (verdict 0)."""
    examples = []
    for item in items:
        codes = sorted({value for facet, value, verdict in item["labels"]
                        if facet == "country" and verdict})
        removed = sorted({value for facet, value, verdict in item["labels"]
                          if facet == "country" and not verdict})
        if not codes and not removed:
            continue
        text = "\n".join(part for part in (item.get("summary"), item.get("body")) if part)
        examples.append(Example(id=f"{ANALYST_PREFIX}{item['id']}", title=item.get("title") or "",
                                text=text, countries=tuple(codes), not_countries=tuple(removed)))
    return examples


def train_countries(
    examples: Sequence[Example],
    gazetteer: Gazetteer,
    *,
    taxonomy: Taxonomy | None = None,
    data_sha256: str = "",
    folds: int = 3,
    seed: int = 0,
    version: str | None = None,
    progress: Progress | None = None,
) -> CountryModel | None:
    """Fit the country model on examples with a country (STIP initiatives); thresholds come
    from k-fold CV on them. None when they name fewer than two countries with enough examples."""
    taxonomy = taxonomy or load_taxonomy()
    say = progress or (lambda message: None)
    started = time.monotonic()
    labelled = [e for e in examples if e.countries]
    counts: dict[str, int] = {}
    for e in labelled:
        counts[e.countries[0]] = counts.get(e.countries[0], 0) + 1
    kept = [e for e in labelled if counts[e.countries[0]] >= MIN_EXAMPLES]
    if len({e.countries[0] for e in kept}) < 2:
        return None
    # A kept example is already a negative for every country but its first, a removed one
    # included; an item left with no (learnt) country is a negative for its removed ones only.
    removals = [e for e in examples if e.not_countries and not (
        e.countries and counts[e.countries[0]] >= MIN_EXAMPLES)]
    texts = [model_text(e.title, e.text, MAX_CHARS) for e in kept]
    y = np.array([e.countries[0] for e in kept])
    gold = [set(e.countries) for e in kept]
    say(f"countries: cross-validating a model of {len(set(y.tolist()))} countries "
        f"on {len(kept)} initiatives")
    tags, alternatives = [], []
    for e in kept:  # alternatives() reads the scan tag_with_method() just made
        tags.append(gazetteer.tag_with_method(e.title, e.text, None))
        alternatives.append(gazetteer.alternatives(
            e.title, e.text, [c for c, _s, m in tags[-1] if m == "gazetteer"]))
    # STIP initiatives are programme descriptions; analysts' items are news
    programme = [not e.id.startswith(ANALYST_PREFIX) for e in kept]
    ranked = [i for i, prog in enumerate(programme) if prog]
    oof: list[tuple[str, float]] = [("", 0.0)] * len(kept)
    splits = min(folds, min(counts[c] for c in set(y.tolist())))
    splits = max(splits, 2)
    splitter = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    # The vocabulary and IDF are fitted once on all texts (no labels involved): half the time.
    vectorizer = _vectorizer()
    matrix = vectorizer.fit_transform(
        texts + [model_text(e.title, e.text, MAX_CHARS) for e in removals])
    x = matrix[:len(kept)]
    negatives = (matrix[len(kept):], [set(e.not_countries) for e in removals]) \
        if removals else None
    # The ranker sees the scores of the texts the model reads in use (the short text where
    # countries are named), out of fold: as on texts it never learnt from.
    x_ranked = vectorizer.transform([model_input(kept[i], tags[i]) for i in ranked])
    row_of = {i: r for r, i in enumerate(ranked)}
    classes = np.unique(y)
    ranked_margins = np.full((len(ranked), len(classes)), MISSING_MARGIN)
    ranked_scores = np.full((len(ranked), len(classes)), MISSING_MARGIN)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        if len(set(y[train_idx].tolist())) < 2:
            continue
        svm, bayes = fit_models(x[train_idx], y[train_idx], negatives)
        bayes_by_feature = by_feature(bayes)
        for i, pair in zip(test_idx, choose(svm, bayes_by_feature, x[test_idx])):
            oof[i] = pair
        rows = [row_of[i] for i in test_idx if i in row_of]
        if rows:
            columns = np.searchsorted(classes, svm.classes_)
            margins, combined = scores(svm, bayes_by_feature, x_ranked[rows])
            ranked_margins[np.ix_(rows, columns)] = margins
            ranked_scores[np.ix_(rows, columns)] = combined
    say("countries: choosing thresholds with the gazetteer")
    # only news keeps its title's countries, and only when pruning could drop one
    titled = [title_codes(gazetteer, e.title, NEWS_TITLE_KINDS) if not prog and len(t) > 1
              else set()
              for e, t, prog in zip(kept, tags, programme)]
    fill, prune, replace, metrics = choose_thresholds(gold, tags, oof, titled, programme,
                                                      alternatives)
    metrics["folds"] = splits
    say("countries: training the ranker of candidate countries for programme descriptions")
    thresholds = combine_all(tags, oof, titled, programme, alternatives, fill, prune, replace)
    found = [candidates(gazetteer, kept[i].title, kept[i].text, tags[i], classes,
                        ranked_margins[r], ranked_scores[r], title_codes(gazetteer, kept[i].title))
             for r, i in enumerate(ranked)]
    ranker, metrics["ranker"] = train_ranker(
        found, [gold[i] for i in ranked], [{c for c, _s, _m in thresholds[i]} for i in ranked],
        seed=seed)
    svm, bayes = fit_models(x, y, negatives)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if version is None:
        digest = hashlib.sha256(f"{data_sha256}{len(kept)}{now.isoformat()}".encode()).hexdigest()
        version = f"countries-{now:%Y%m%d}-{digest[:8]}"
    metadata = {
        "format": FORMAT,
        "version": version,
        "trained_at": now.isoformat().replace("+00:00", "Z"),
        "sklearn_version": sklearn.__version__,
        "taxonomy_version": taxonomy.version,
        "training_data_sha256": data_sha256,
        "gazetteer_version": gazetteer.version,
        "training_counts": {"samples": len(kept), "countries": len(set(y.tolist())),
                            "analyst": sum(e.id.startswith(ANALYST_PREFIX) for e in kept),
                            # items learnt only as negatives of the countries removed from them
                            "analyst_removals": len(removals),
                            "left_out_rare": len(labelled) - len(kept)},
        "countries": [str(c) for c in svm.classes_],
        "thresholds": {"fill": _json_threshold(fill), "prune": _json_threshold(prune),
                       "replace": _json_threshold(replace)},
        "features": {"word_ngrams": [1, 2], "max_chars": MAX_CHARS,
                     "named_chars": NAMED_CHARS,
                     "max_features": MAX_FEATURES, "c": C, "class_weight": CLASS_WEIGHT,
                     "naive_bayes": {"alpha": NB_ALPHA, "weight": NB_WEIGHT},
                     "ranker": list(RANKER_FEATURES) if ranker is not None else None},
        "cv_metrics": metrics,
        "train_seconds": round(time.monotonic() - started, 1),
    }
    return CountryModel(vectorizer, svm, fill, prune, metadata, replace, bayes, ranker)


def _json_threshold(value: float) -> float | None:
    return value if math.isfinite(value) else None  # None: the rule is off


# -- saving and loading --------------------------------------------------------------------


def save_country_model(model: CountryModel, model_dir: str | os.PathLike[str]) -> Path:
    """Write countries.joblib and countries.json atomically (the metadata last)."""
    payload = {"format": FORMAT, "vectorizer": model.vectorizer, "svm": model.svm,
               "bayes": model.bayes, "fill": model.fill, "prune": model.prune,
               "replace": model.replace, "ranker": model.ranker, "version": model.version}
    return save_artifact(model_dir, MODEL_STEM, payload, model.metadata)


def load_country_model(model_dir: str | os.PathLike[str] | None,
                       taxonomy: Taxonomy | None = None) -> CountryModel | None:
    """The saved country model; None when the folder holds none (the gazetteer works alone);
    ModelMismatch when it was made for other library or taxonomy versions."""
    if model_dir is None:
        return None
    loaded = load_artifact(model_dir, MODEL_STEM, FORMAT, taxonomy, what="country model")
    if loaded is None:
        return None
    payload, metadata = loaded
    # a model saved before the replace rule existed has it off; one saved before naive
    # Bayes joined uses the SVM alone, one saved before the ranker the thresholds alone
    return CountryModel(payload["vectorizer"], payload["svm"], payload["fill"],
                        payload["prune"], metadata, payload.get("replace", OFF),
                        payload.get("bayes"), payload.get("ranker"))
