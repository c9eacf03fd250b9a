"""The trained part of the classifier: STI-policy relevance and policy areas.

Both read the same features: TF-IDF over word 1-2-grams and character 2-5-grams (within word
boundaries, which copes with inflection, compounds and spelling variants). Relevance is one
logistic regression (``policy``); areas are one logistic regression per area. Classes are
weighted by inverse frequency, and each area has its own decision threshold, chosen by
cross-validation on the training data only (never on an evaluation file).

Training data: every STIP Compass initiative is a policy positive with its mapped areas; science
and general news from feed captures are policy negatives; analyst corrections from the store are
folded in with a higher weight (they are in-domain news). A saved model is two files in the model
folder: ``model.joblib`` and ``model.json`` (metadata: library and taxonomy versions, training
data hash, date, labels, thresholds, metrics). Loading refuses a model made for another
scikit-learn or taxonomy version, with a message that says to retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import datetime as dt
import hashlib
import html
import json
import os
from pathlib import Path
import re
import tempfile
import time
from typing import Any, Callable, Iterable, Sequence

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .errors import ModelError, ModelMismatch, TrainingError
from .stip import Example
from .taxonomy import Taxonomy, load_taxonomy

FORMAT = 1  # bump when the saved object's shape changes
MODEL_FILE = "model.joblib"
META_FILE = "model.json"
# The model reads the title and the start of the text only: a news item's lead says what it is
# about, and it keeps classification fast on long pages (1,500 characters scored as well as
# 3,000 in CV on the STIP training split, 0.674 / 0.682 vs 0.673 / 0.681, at half the time).
MAX_CHARS = 1500
ANALYST_WEIGHT = 3.0
# Weight of the lexicon rules' area scores in the blend with the model's probabilities. Chosen
# by 3-fold CV on the STIP training split (0.9 scored best, 0.8 within 0.01 micro-F1) leaning to
# the rules a little more because they read news-style text better (measured on the demo's
# labelled news articles, never on data/eval).
RULE_WEIGHT = 0.2
# A rule area scoring at least this is tagged whatever the blend says (classifier/pipeline.py);
# thresholds are chosen knowing it. On the demo's news it raised areas micro-F1 0.673 -> 0.716,
# at a cost of 0.007 in CV on the STIP training split.
RULES_CERTAIN = 0.99
THRESHOLD_GRID = np.round(np.arange(0.10, 0.91, 0.025), 3)

Progress = Callable[[str], None]


def model_text(title: str | None, text: str | None, max_chars: int = MAX_CHARS) -> str:
    return f"{title or ''}\n{text or ''}"[:max_chars]


# -- training data -------------------------------------------------------------------------


@dataclass
class Sample:
    """A training text with what is known about it (``None``: unknown)."""

    text: str
    policy: int | None
    areas: dict[str, int] = field(default_factory=dict)  # area -> 1/0 for known verdicts
    all_areas_known: bool = False  # STIP: an area not listed is a negative
    weight: float = 1.0
    origin: str = "stip"


_TAG = re.compile(r"<[^>]+>")


def _plain(value: str | None) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", value or "")).split())


def feed_negatives(paths: Iterable[str | os.PathLike[str]]) -> list[Example]:
    """Entries of captured science/general news feeds as policy negatives (duplicates folded)."""
    import feedparser

    seen: set[str] = set()
    examples = []
    for path in sorted(Path(p) for p in paths):
        parsed = feedparser.parse(str(path))
        for number, entry in enumerate(parsed.entries):
            title = _plain(entry.get("title"))
            summary = _plain(entry.get("summary") or entry.get("description"))
            key = title.lower()
            if not title or key in seen:
                continue
            seen.add(key)
            examples.append(Example(id=f"{path.name}#{number}", title=title, text=summary,
                                    policy=0))
    return examples


def analyst_samples(items: Iterable[dict[str, Any]], taxonomy: Taxonomy) -> list[Sample]:
    """Store items an analyst labelled (``store.analyst_labelled_items()``) as samples."""
    area_ids = set(taxonomy.ids("area"))
    samples = []
    for item in items:
        policy: int | None = None
        areas: dict[str, int] = {}
        for facet, value, verdict in item["labels"]:
            if facet == "policy":
                # "add policy=0" and "remove policy=1" both say: not policy.
                policy = int(value) if verdict else 1 - int(value)
            elif facet == "area" and value in area_ids:
                areas[value] = int(verdict)
        if policy is None and any(areas.values()):
            policy = 1  # an area only applies to policy items
        if policy is None and not areas:
            continue
        text = "\n".join(part for part in (item.get("summary"), item.get("body")) if part)
        samples.append(Sample(model_text(item.get("title"), text), policy, areas,
                              weight=ANALYST_WEIGHT, origin="analyst"))
    return samples


def stip_samples(examples: Iterable[Example]) -> list[Sample]:
    return [
        Sample(model_text(e.title, e.text), e.policy,
               {a: 1 for a in e.areas}, all_areas_known=e.policy == 1,
               origin="stip" if e.policy else "feed")
        for e in examples
    ]


# -- the model -----------------------------------------------------------------------------


def _vectorizers() -> list[TfidfVectorizer]:
    return [
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, max_df=0.9,
                        sublinear_tf=True, strip_accents="unicode", max_features=150_000,
                        dtype=np.float32),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, max_df=0.9,
                        sublinear_tf=True, strip_accents="unicode", max_features=150_000,
                        dtype=np.float32),
    ]


class Features:
    """Word and character TF-IDF side by side, each block L2-normalised then halved in weight."""

    def __init__(self, char_ngrams: bool = True) -> None:
        self.vectorizers = _vectorizers()[: 2 if char_ngrams else 1]

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._stack([v.fit_transform(texts) for v in self.vectorizers])

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._stack([v.transform(texts) for v in self.vectorizers])

    def _stack(self, blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
        scale = 1.0 / np.sqrt(len(blocks))
        return sp.hstack([b * scale for b in blocks], format="csr")


def _classifier(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000)


def _best_threshold(y: np.ndarray, p: np.ndarray,
                    forced: np.ndarray | None = None) -> tuple[float, float]:
    """The probability cut with the best F1 (ties: the one closest to 0.5); ``forced`` marks
    rows that are positive whatever the cut (the rules are certain of them)."""
    best = (0.5, -1.0)
    for t in THRESHOLD_GRID:
        predicted = p >= t
        if forced is not None:
            predicted = predicted | forced
        tp = float(np.sum(predicted & (y == 1)))
        fp = float(np.sum(predicted & (y == 0)))
        fn = float(np.sum(~predicted & (y == 1)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best[1] + 1e-9 or (abs(f1 - best[1]) <= 1e-9 and abs(t - 0.5) < abs(best[0] - 0.5)):
            best = (float(t), f1)
    return best


@dataclass
class Prediction:
    policy: float  # probability of STI-policy relevance
    areas: dict[str, float]  # area -> probability, for areas above their threshold
    area_scores: dict[str, float]  # every modelled area -> probability


class PolicyModel:
    """Relevance + areas, with per-area thresholds and the metadata it was saved with."""

    def __init__(self, features: Features, policy: LogisticRegression | None,
                 areas: dict[str, LogisticRegression], thresholds: dict[str, float],
                 policy_threshold: float, metadata: dict[str, Any],
                 rule_weight: float = 0.0) -> None:
        self.features = features
        self.rule_weight = rule_weight
        self.policy = policy
        self.areas = areas
        self.thresholds = thresholds
        self.policy_threshold = policy_threshold
        self.metadata = metadata

    @property
    def version(self) -> str:
        return self.metadata["version"]

    def text(self, title: str | None, text: str | None) -> str:
        """The model's input for an item: as long as the texts it was trained on."""
        return model_text(title, text, self.metadata.get("features", {}).get("max_chars",
                                                                              MAX_CHARS))

    @property
    def area_labels(self) -> list[str]:
        return list(self.areas)

    def predict(self, texts: Sequence[str],
                rule_scores: Sequence[dict[str, float]] | None = None) -> list[Prediction]:
        """Predictions for texts made with :func:`model_text`.

        ``rule_scores`` (one {area: score} per text, from the lexicon rules) are blended in with
        the weight the thresholds were chosen for; without them the model's own scores count.
        """
        if not texts:
            return []
        x = self.features.transform(list(texts))
        p_policy = (self.policy.predict_proba(x)[:, 1] if self.policy is not None
                    else np.ones(x.shape[0]))
        scores = {label: clf.predict_proba(x)[:, 1] for label, clf in self.areas.items()}
        out = []
        for row in range(x.shape[0]):
            row_scores = {label: float(s[row]) for label, s in scores.items()}
            if rule_scores is not None and self.rule_weight:
                w = self.rule_weight
                row_scores = {label: (1 - w) * value + w * rule_scores[row].get(label, 0.0)
                              for label, value in row_scores.items()}
            chosen = {label: s for label, s in row_scores.items() if s >= self.thresholds[label]}
            out.append(Prediction(float(p_policy[row]), chosen, row_scores))
        return out


def _area_matrix(samples: Sequence[Sample], label: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and 0/1 targets of the samples whose verdict on ``label`` is known."""
    rows, y = [], []
    for i, s in enumerate(samples):
        if s.policy != 1:
            continue
        if label in s.areas:
            rows.append(i)
            y.append(s.areas[label])
        elif s.all_areas_known:
            rows.append(i)
            y.append(0)
    return np.array(rows, dtype=int), np.array(y, dtype=int)


def train(
    samples: Sequence[Sample],
    *,
    taxonomy: Taxonomy | None = None,
    data_sha256: str = "",
    folds: int = 3,
    c_areas: float = 4.0,
    c_policy: float = 4.0,
    char_ngrams: bool = False,
    rule_areas: Callable[[str, str], list[tuple[str, float]]] | None = None,
    rule_weight: float = RULE_WEIGHT,
    progress: Progress | None = None,
    seed: int = 0,
) -> PolicyModel:
    """Fit relevance and area models; thresholds and metrics come from k-fold CV on ``samples``.

    With ``rule_areas`` (the lexicon rules' ``areas(title, text)``), an area's score is
    ``(1 - rule_weight) * model probability + rule_weight * rule score``, and the thresholds are
    chosen on that blend.
    """
    taxonomy = taxonomy or load_taxonomy()
    say = progress or (lambda message: None)
    started = time.monotonic()
    texts = [s.text for s in samples]
    weights = np.array([s.weight for s in samples], dtype=float)
    say(f"vectorising {len(texts)} texts")
    features = Features(char_ngrams=char_ngrams)
    x = features.fit_transform(texts)
    metrics: dict[str, Any] = {"folds": folds}
    counts: dict[str, Any] = {
        "samples": len(samples),
        "stip": sum(s.origin == "stip" for s in samples),
        "feed_negatives": sum(s.origin == "feed" for s in samples),
        "analyst": sum(s.origin == "analyst" for s in samples),
    }

    # -- relevance
    policy_rows = np.array([i for i, s in enumerate(samples) if s.policy is not None], dtype=int)
    y_policy = np.array([samples[i].policy for i in policy_rows], dtype=int)
    policy_clf = None
    policy_threshold = 0.5
    if len(set(y_policy.tolist())) == 2 and min(np.bincount(y_policy)) >= folds:
        say("relevance: cross-validating")
        oof = _cross_val_proba(x[policy_rows], y_policy, weights[policy_rows], c_policy,
                               folds, seed)
        metrics["policy"] = _binary_metrics(y_policy, oof >= policy_threshold)
        policy_clf = _classifier(c_policy).fit(x[policy_rows], y_policy,
                                               sample_weight=weights[policy_rows])
    else:
        # Without negatives relevance cannot be learnt; the rules decide it instead.
        metrics["policy"] = None
    counts["policy_negatives"] = int(np.sum(y_policy == 0))

    # -- areas
    if rule_areas is None:
        rule_weight = 0.0
    rule_scores: list[dict[str, float]] = []
    if rule_weight:
        say("scoring the training texts with the lexicon rules")
        for s in samples:
            title, _, text = s.text.partition("\n")
            rule_scores.append(dict(rule_areas(title, text)) if s.policy == 1 else {})
    area_models: dict[str, LogisticRegression] = {}
    thresholds: dict[str, float] = {}
    per_label: dict[str, Any] = {}
    skipped: list[str] = []
    for label in taxonomy.ids("area"):
        rows, y = _area_matrix(samples, label)
        positives = int(y.sum()) if len(y) else 0
        if positives < max(folds, 3) or positives == len(y):
            skipped.append(label)
            continue
        say(f"area {label}: cross-validating ({positives} positives)")
        oof = _cross_val_proba(x[rows], y, weights[rows], c_areas, folds, seed)
        forced = None
        if rule_weight:
            ruled = np.array([rule_scores[i].get(label, 0.0) for i in rows])
            oof = (1 - rule_weight) * oof + rule_weight * ruled
            forced = ruled >= RULES_CERTAIN
        threshold, _ = _best_threshold(y, oof, forced)
        thresholds[label] = threshold
        predicted = oof >= threshold if forced is None else (oof >= threshold) | forced
        per_label[label] = {**_binary_metrics(y, predicted), "support": positives,
                            "threshold": threshold}
        area_models[label] = _classifier(c_areas).fit(x[rows], y, sample_weight=weights[rows])
    if not area_models:
        raise TrainingError(
            f"too few examples to learn any policy area ({len(samples)} texts): each area needs "
            f"at least {max(folds, 3)} initiatives with its theme codes; use more of the export"
        )
    if per_label:
        f1s = [m["f1"] for m in per_label.values()]
        tp = sum(m["tp"] for m in per_label.values())
        fp = sum(m["fp"] for m in per_label.values())
        fn = sum(m["fn"] for m in per_label.values())
        metrics["areas"] = {
            "micro_f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0,
            "macro_f1": round(float(np.mean(f1s)), 4),
            "per_label": per_label,
        }
    seconds = round(time.monotonic() - started, 1)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    digest = hashlib.sha256(
        (data_sha256 + json.dumps(counts, sort_keys=True) + now.isoformat()).encode()
    ).hexdigest()
    metadata = {
        "format": FORMAT,
        "version": f"stip-{now:%Y%m%d}-{digest[:8]}",
        "trained_at": now.isoformat().replace("+00:00", "Z"),
        "sklearn_version": sklearn.__version__,
        "taxonomy_version": taxonomy.version,
        "training_data_sha256": data_sha256,
        "training_counts": counts,
        "labels": {"policy": policy_clf is not None, "areas": list(area_models),
                   "areas_without_data": skipped},
        "thresholds": {"policy": policy_threshold, **thresholds},
        "features": {"word_ngrams": [1, 2], "char_wb_ngrams": [2, 5] if char_ngrams else None,
                     "max_chars": MAX_CHARS, "c_areas": c_areas, "c_policy": c_policy},
        "rule_weight": rule_weight,
        "cv_metrics": metrics,
        "train_seconds": seconds,
    }
    return PolicyModel(features, policy_clf, area_models, thresholds, policy_threshold, metadata,
                       rule_weight)


def _cross_val_proba(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, c: float, folds: int,
                     seed: int) -> np.ndarray:
    oof = np.zeros(len(y), dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        clf = _classifier(c).fit(x[train_idx], y[train_idx], sample_weight=w[train_idx])
        oof[test_idx] = clf.predict_proba(x[test_idx])[:, 1]
    return oof


def _binary_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn}


# -- saving and loading --------------------------------------------------------------------


def save_model(model: PolicyModel, model_dir: str | os.PathLike[str]) -> Path:
    """Write model.joblib and model.json atomically (a crash leaves the old model in place)."""
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "features": model.features, "policy": model.policy,
               "areas": model.areas, "thresholds": model.thresholds,
               "policy_threshold": model.policy_threshold, "version": model.version,
               "rule_weight": model.rule_weight}
    fd, tmp_model = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".joblib")
    os.close(fd)
    fd, tmp_meta = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".json")
    os.close(fd)
    try:
        joblib.dump(payload, tmp_model, compress=3)
        Path(tmp_meta).write_text(json.dumps(model.metadata, indent=2) + "\n", encoding="utf-8")
        # The metadata goes last: a reader never sees new metadata beside an old model file
        # for long, and load() cross-checks the version held in both.
        os.replace(tmp_model, folder / MODEL_FILE)
        os.replace(tmp_meta, folder / META_FILE)
    finally:
        for leftover in (tmp_model, tmp_meta):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return folder


def read_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved model's metadata, or None when the folder holds no model."""
    path = Path(model_dir) / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable model metadata ({error}); retrain with "
                         "`stiwatch train --stip FILE`") from None


def check_compatible(metadata: dict[str, Any], path: Path, taxonomy: Taxonomy) -> None:
    problems = []
    if metadata.get("format") != FORMAT:
        problems.append(f"model format {metadata.get('format')} (this stiwatch reads {FORMAT})")
    if metadata.get("sklearn_version") != sklearn.__version__:
        problems.append(f"scikit-learn {metadata.get('sklearn_version')} "
                        f"(installed: {sklearn.__version__})")
    if metadata.get("taxonomy_version") != taxonomy.version:
        problems.append(f"taxonomy version {metadata.get('taxonomy_version')} "
                        f"(current: {taxonomy.version})")
    if problems:
        raise ModelMismatch(
            f"{path}: the model was made with {' and '.join(problems)}; retrain it with "
            "`stiwatch train --stip FILE` (the STIP Compass CSV export)"
        )


def load_model(model_dir: str | os.PathLike[str],
               taxonomy: Taxonomy | None = None) -> PolicyModel | None:
    """The saved model, None when there is none, ModelMismatch when it is for other versions."""
    folder = Path(model_dir)
    metadata = read_metadata(folder)
    if metadata is None:
        return None
    check_compatible(metadata, folder / META_FILE, taxonomy or load_taxonomy())
    path = folder / MODEL_FILE
    try:
        payload = joblib.load(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: missing (only {META_FILE} is there); retrain with "
                         "`stiwatch train --stip FILE`") from None
    except Exception as error:  # noqa: BLE001 - unpickling can fail in many ways
        raise ModelError(f"{path}: cannot load the model ({type(error).__name__}: {error}); "
                         "retrain with `stiwatch train --stip FILE`") from None
    if not isinstance(payload, dict) or payload.get("version") != metadata.get("version"):
        raise ModelError(f"{path}: does not match {META_FILE} (an interrupted save?); retrain "
                         "with `stiwatch train --stip FILE`")
    return PolicyModel(payload["features"], payload["policy"], payload["areas"],
                       payload["thresholds"], payload["policy_threshold"], metadata,
                       payload.get("rule_weight", 0.0))
