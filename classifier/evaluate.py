"""Score the classifier on a JSON Lines file in taxonomy.md's format; one metrics object.

Each line: ``{"id", "title", "text", "policy": 0|1, "areas": [...], "domains": [...],
"countries": [...]}``, with a title or a text or both. A line may leave out a key it does not
label; a facet is scored only over the lines that carry its key, and left out of the result when
no line does. Areas are scored only on lines whose ``policy`` is 1 or not given (they are only
meaningful on policy items; a file that labels areas alone is scored on all its lines), using the
area predictions whatever the predicted relevance, so the two errors are not counted twice.
Macro-F1 averages the labels that occur in the file (support > 0); ``per_label`` also lists
labels that were only predicted, which count in micro-F1.

A value that is undefined is None (``null``), never 0: precision when nothing was predicted,
recall when nothing is labelled, F1 (and micro-F1) when neither; macro-F1 when no label occurs
in the file (see classifier.metrics.prf).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import EvalFileError
from .metrics import prf, prf_dict, set_counts
from .pipeline import Classifier, Result, classify_texts
from .taxonomy import Taxonomy, UnknownLabel, load_taxonomy

LIST_KEYS = {"areas": "area", "domains": "domain", "countries": "country"}
KEYS = ("id", "title", "text", "policy", *LIST_KEYS, "language")
# The problems an error lists, at most: the rest are counted ("and 37 more problems").
MAX_PROBLEMS = 20


def read_eval_file(path: str | os.PathLike[str],
                   taxonomy: Taxonomy | None = None) -> list[dict[str, Any]]:
    """Validated records; blank lines are skipped. A file with bad lines raises
    EvalFileError listing each problem by line (the first ``MAX_PROBLEMS``, then a count)."""
    taxonomy = taxonomy or load_taxonomy()
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EvalFileError(f"{path}: no such file") from None
    except OSError as error:
        raise EvalFileError(f"{path}: cannot read: {error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise EvalFileError(f"{path}: line {line}: not UTF-8 (byte 0x{data[error.start]:02x}): "
                            "save the file as UTF-8") from None
    # Lines end at "\n" only, as JSON Lines says: str.splitlines() also breaks at U+2028,
    # U+0085 and other characters that JSON strings may hold unescaped (crawled text has them).
    lines = text.split("\n")
    records = []
    # Every bad line is reported at once, as the sources and subscribers files are: a file
    # fixed one line per run costs a run per typo.
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record, line_problems = _read_line(line, taxonomy)
        if line_problems:
            problems += [f"{path}: line {number}: {problem}" for problem in line_problems]
            continue
        record.setdefault("id", f"line-{number}")
        records.append(record)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"{path}: and {len(problems) - MAX_PROBLEMS} more problems "
                         f"({len(problems)} in all)")
        raise EvalFileError("\n".join(shown))
    if not records:
        raise EvalFileError(f"{path}: no records (expected one JSON object per line)")
    return records


def _read_line(line: str, taxonomy: Taxonomy) -> tuple[dict[str, Any], list[str]]:
    """A line's record and its problems (none if it is valid)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return {}, [f"not valid JSON ({error.msg})"]
    except RecursionError:
        return {}, ["cannot be read (JSON nested too deeply)"]
    except ValueError as error:  # a number of thousands of digits
        return {}, [f"cannot be read ({str(error).split(':')[0]})"]
    if not isinstance(record, dict):
        return {}, ["expected a JSON object"]
    problems = []
    for key in record:
        # Other keys are ignored (notes, a source), but one a letter off a known key
        # ("area", "Countries") would leave that facet unscored, or unlearnt, on the line
        # without a word.
        meant = difflib.get_close_matches(str(key).lower(), KEYS, n=1, cutoff=0.75)
        if key not in KEYS and meant:
            problems.append(f"unknown key {key!r} (did you mean {meant[0]!r}?)")
    if "id" in record and not isinstance(record["id"], str):
        problems.append(f"id must be a string, not {record['id']!r}")
    for key in ("title", "text"):
        if not isinstance(record.get(key, ""), str):
            problems.append(f"{key} must be a string")
    language = record.get("language")
    if language is not None and not (isinstance(language, str)
                                     and re.fullmatch("[a-z]{2,3}", language)):
        problems.append(f"language must be an ISO 639 code such as \"ja\", not {language!r}")
    # A line with neither is another format's (or a misspelt key's): scoring or training
    # on empty texts would say nothing. Empty strings are accepted: the STIP export has
    # initiatives without name or description, and the shared STIP eval file keeps one.
    if "title" not in record and "text" not in record:
        problems.append("needs a title or a text (or both)")
    if "policy" in record and record["policy"] not in (0, 1) or isinstance(
            record.get("policy"), bool):
        problems.append(f"policy must be 0 or 1, not {record['policy']!r}")
    for key, facet in LIST_KEYS.items():
        if key not in record:
            continue
        values = record[key]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{key} must be a list of {facet} ids")
            continue
        for value in values:
            try:
                taxonomy.check(facet, value)
            except UnknownLabel as error:
                problems.append(str(error))
    return record, problems


def multilabel_metrics(gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]],
                       order: Sequence[str] = ()) -> dict[str, Any]:
    counts: dict[str, list[int]] = {}  # label -> [tp, fp, fn]
    for g, p in zip(gold, predicted):
        g, p = set(g), set(p)
        for label in g | p:
            c = counts.setdefault(label, [0, 0, 0])
            c[0] += label in g and label in p
            c[1] += label in p and label not in g
            c[2] += label in g and label not in p
    rank = {label: i for i, label in enumerate(order)}
    per_label = {}
    for label in sorted(counts, key=lambda l: (rank.get(l, len(rank)), l)):
        tp, fp, fn = counts[label]
        per_label[label] = {**prf_dict(tp, fp, fn, None), "support": tp + fn}
    tp = sum(c[0] for c in counts.values())
    fp = sum(c[1] for c in counts.values())
    fn = sum(c[2] for c in counts.values())
    # the labels with support (a label with support has an F1: 0 when it was never found)
    present = [m["f1"] for m in per_label.values() if m["support"]]
    return {
        "micro_f1": prf(tp, fp, fn, None)[2],
        "macro_f1": round(sum(present) / len(present), 4) if present else None,
        "per_label": per_label,
    }


def predicted(result: Result) -> dict[str, set[str]]:
    """A result's labels per list facet, under the eval file's keys."""
    return {"areas": {a for a, _s, _m in result.areas},
            "domains": {d for d, _s in result.domains},
            "countries": {c for c, _s, _m in result.countries}}


def score(records: Sequence[dict[str, Any]], results: Sequence[Result],
          model_version: str, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """The metrics object for records and the classifier's results on them."""
    taxonomy = taxonomy or load_taxonomy()
    out: dict[str, Any] = {"n": len(records), "model_version": model_version}
    labelled = [(r, res) for r, res in zip(records, results) if "policy" in r]
    if labelled:
        tp = sum(r["policy"] == 1 and res.is_policy for r, res in labelled)
        fp = sum(r["policy"] == 0 and res.is_policy for r, res in labelled)
        fn = sum(r["policy"] == 1 and not res.is_policy for r, res in labelled)
        out["policy"] = prf_dict(tp, fp, fn, None)
    labels = [predicted(res) for res in results]
    area_pairs = [(r, p) for r, p in zip(records, labels)
                  if "areas" in r and r.get("policy", 1) == 1]
    if area_pairs:
        out["areas"] = multilabel_metrics(
            [r["areas"] for r, _ in area_pairs], [p["areas"] for _, p in area_pairs],
            taxonomy.ids("area"),
        )
    domain_pairs = [(r, p) for r, p in zip(records, labels) if "domains" in r]
    if domain_pairs:
        out["domains"] = multilabel_metrics(
            [r["domains"] for r, _ in domain_pairs], [p["domains"] for _, p in domain_pairs],
            taxonomy.ids("domain"),
        )
    country_pairs = [(r, p) for r, p in zip(records, labels) if "countries" in r]
    if country_pairs:
        precision, recall, f1 = prf(*set_counts(
            [set(r["countries"]) for r, _ in country_pairs],
            [p["countries"] for _, p in country_pairs]), None)
        out["countries"] = {"micro_precision": precision, "micro_recall": recall,
                            "micro_f1": f1}
    return out


def disagreements(records: Sequence[dict[str, Any]], results: Sequence[Result],
                  limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` records the classifier got wrong, in file order: ``{"id", "title",
    facet: {"missing": [...], "extra": [...]}}`` for each facet that differs (``policy`` as
    ``{"gold", "predicted"}``), scored as :func:`score` scores them."""
    found: list[dict[str, Any]] = []
    for record, result in zip(records, results):
        if len(found) >= limit:
            break
        row: dict[str, Any] = {}
        if "policy" in record and (record["policy"] == 1) != result.is_policy:
            row["policy"] = {"gold": record["policy"], "predicted": int(result.is_policy)}
        for key, values in predicted(result).items():
            if key not in record or (key == "areas" and record.get("policy", 1) != 1):
                continue
            gold = set(record[key])
            if gold != values:
                row[key] = {"missing": sorted(gold - values), "extra": sorted(values - gold)}
        if row:
            found.append({"id": record["id"], "title": record.get("title", ""), **row})
    return found


def evaluate(path: str | os.PathLike[str], classifier: Classifier,
             errors: int = 0, *, records: Sequence[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    """Read, classify and score an evaluation file; with ``errors``, the metrics object also
    lists the first ``errors`` items the classifier got wrong (key ``errors``) and counts
    every one (key ``wrong``). ``records``:
    the file as :func:`read_eval_file` already read it."""
    if records is None:
        records = read_eval_file(path)
    results = classify_texts(classifier, records)
    out = score(records, results, classifier.version)
    if errors > 0:
        # every wrong item is counted, so that "the first N" says how many more there are
        wrong = disagreements(records, results, len(records))
        out["wrong"] = len(wrong)
        out["errors"] = wrong[:errors]
    return out
