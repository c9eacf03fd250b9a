"""Measure the rule taggers (gazetteer, domain lexicon, rule relevance/areas) on labelled JSONL.

Usage:
    .venv/bin/python bench/classifier_rules_eval.py [FILE.jsonl ...] [--errors N] [--json]

Defaults to ../shared/data/eval/reuters21578_places.jsonl and stip_2021_eval.jsonl; the name
`stip-train` measures on a development sample of the STIP training split instead, `demo` on the
demo site's hand-labelled articles (with their source's home country), and `feeds`
on the captured science-news feeds taken as non-policy (false-positive rate of relevance). Prints
countries micro precision/recall/F1 (and a pycountry-names-only baseline in the same run),
policy relevance P/R/F1 and areas/domains micro/macro F1 where the file labels them, and the
items per second of each tagger. Files under data/eval are for measuring only: never tune on
individual cases; `--errors N` lists failure examples to name *classes* of error.
"""

from __future__ import annotations

import argparse
from collections import Counter
import json
from pathlib import Path
import re
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pycountry  # noqa: E402

from classifier.domains import DomainTagger  # noqa: E402
from classifier.places import Gazetteer  # noqa: E402
from classifier.rules import RuleTagger  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"
DEFAULT_FILES = [SHARED / "reuters21578_places.jsonl", SHARED / "stip_2021_eval.jsonl"]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def multilabel(gold: list[set[str]], pred: list[set[str]]) -> dict:
    labels = sorted(set().union(*gold, *pred)) if gold else []
    tp = fp = fn = 0
    per_label = {}
    for label in labels:
        ltp = sum(1 for g, p in zip(gold, pred) if label in g and label in p)
        lfp = sum(1 for g, p in zip(gold, pred) if label not in g and label in p)
        lfn = sum(1 for g, p in zip(gold, pred) if label in g and label not in p)
        tp, fp, fn = tp + ltp, fp + lfp, fn + lfn
        per_label[label] = {**prf(ltp, lfp, lfn), "support": ltp + lfn}
    micro = prf(tp, fp, fn)
    supported = [v["f1"] for v in per_label.values() if v["support"]]
    return {"micro_precision": micro["precision"], "micro_recall": micro["recall"],
            "micro_f1": micro["f1"],
            "macro_f1": round(sum(supported) / len(supported), 4) if supported else 0.0,
            "per_label": per_label}


_BASELINE = None


def baseline_countries(title: str, text: str) -> set[str]:
    """pycountry names alone, as in the issue's baseline: any literal name occurrence."""
    global _BASELINE
    if _BASELINE is None:
        names = {}
        for c in pycountry.countries:
            for n in {c.name, getattr(c, "common_name", None), getattr(c, "official_name", None)}:
                if n:
                    names[n] = c.alpha_2
        pattern = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
        _BASELINE = (re.compile(r"\b(?:" + pattern + r")\b"), names)
    regex, names = _BASELINE
    return {names[m.group()] for m in regex.finditer(f"{title}\n{text}")}


STIP_TRAIN = SHARED.parent / "stip-compass-2021" / "stip_2021_train.csv.gz"


def stip_train_rows(path: Path = STIP_TRAIN, limit: int = 1500) -> list[dict]:
    """A development set from the STIP *training* split, in the eval files' format: the one
    place where the rules' thresholds may be compared and chosen (never on data/eval)."""
    import csv
    import gzip

    from classifier.taxonomy import load_taxonomy

    themes = load_taxonomy().stip_themes
    csv.field_size_limit(10**8)
    rows: dict[str, dict] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = row.get("InitiativeID") or row.get("NameEnglish")
            if key in rows:
                continue
            code = row.get("CountryCode", "")
            if code == "EU":
                country = "EU"
            elif code.startswith("BE") and len(code) > 3:
                country = "BE"
            else:
                found = pycountry.countries.get(alpha_3=code)
                if not found:
                    continue
                country = found.alpha_2
            parts = [row.get(k, "") for k in ("ShortDescription", "Objectives1", "Objectives2",
                                               "Objectives3", "Background")]
            areas = sorted({area for code, area in themes.items()
                            if str(row.get(code, "0")).strip() in ("1", "1.0")})
            rows[key] = {"id": f"stip-train-{key}", "title": row.get("NameEnglish", ""),
                         "text": "\n".join(p for p in parts if p and p.strip()),
                         "policy": 1, "areas": areas, "countries": [country]}
    values = list(rows.values())
    return values[::max(1, len(values) // limit)][:limit]  # spread over all countries


# STIP "Tags" keywords that imply a technology domain: a rough proxy (tags are incomplete, so
# precision is understated), measured on the training split only.
DOMAIN_TAGS = {
    "ai": {"artificial intelligence"},
    "energy_climate": {"energy", "climate change", "emissions", "renewable energy", "clean energy",
                       "energy efficiency"},
    "biotech_health": {"pandemic", "biotechnology", "health care", "life sciences"},
    "materials_manufacturing": {"nanotechnology", "robotics", "manufacturing sector"},
    "digital_infrastructure": {"cybersecurity", "telecommunication"},
}


def domains_proxy(path: Path = STIP_TRAIN) -> dict[str, dict[str, float]]:
    """Domain lexicon against STIP training-split Tags (a proxy: no domain labels exist)."""
    import csv
    import gzip

    csv.field_size_limit(10**8)
    tagger = DomainTagger.load()
    counts = {label: [0, 0, 0] for label in DOMAIN_TAGS}
    seen: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["InitiativeID"] in seen:
                continue
            seen.add(row["InitiativeID"])
            tags = {t.strip().lower() for t in (row.get("Tags") or "").split("¬")}
            text = "\n".join(row.get(k, "") for k in ("ShortDescription", "Objectives1",
                                                     "Objectives2", "Background"))
            pred = {label for label, _ in tagger.tag(row.get("NameEnglish", ""), text)}
            for label, keywords in DOMAIN_TAGS.items():
                gold, hit = bool(tags & keywords), label in pred
                counts[label][0] += gold and hit
                counts[label][1] += hit and not gold
                counts[label][2] += gold and not hit
    return {label: prf(*c) for label, c in counts.items()}


FEEDS = SHARED.parent / "feeds"


def feed_rows(folder: Path = FEEDS) -> list[dict]:
    """Entries of the captured science/general news feeds, taken as policy = 0 (they are
    research results, product and general news; a few may be policy: the rate is an upper
    bound on false positives)."""
    import html
    import re

    import feedparser

    rows = []
    for path in sorted(folder.glob("*.xml")):
        for number, entry in enumerate(feedparser.parse(str(path)).entries):
            text = re.sub(r"<[^>]+>", " ", html.unescape(entry.get("summary", "")))
            rows.append({"id": f"{path.stem}-{number}", "title": entry.get("title", ""),
                         "text": text, "policy": 0})
    return rows


def demo_rows() -> list[dict]:
    """The bundled demo site's hand-labelled articles of its English sources (fictional
    STI-policy news written for the project), with their source's home country."""
    from stiwatch.demo.site import english_sources

    rows = []
    for source in english_sources():
        home = (source.country or "").upper()
        for article in source.articles:
            if not article.own_labels or article.syndicated_from:
                continue
            rows.append({"id": article.key, "title": article.title, "text": article.body,
                         "source_country": home if len(home) == 2 else None,
                         **article.expected.as_dict()})
    return rows


def evaluate(path: Path, errors: int = 0) -> dict:
    if str(path) == "demo":
        rows = demo_rows()
    elif str(path) == "stip-train":
        rows = stip_train_rows()
    elif str(path) == "feeds":
        rows = feed_rows()
    else:
        rows = read_jsonl(path)
    gaz, dom, rules = Gazetteer.load(), DomainTagger.load(), RuleTagger.load()
    out: dict = {"file": path.name, "n": len(rows)}
    timings = {}
    if any("countries" in r for r in rows):
        labelled = [r for r in rows if "countries" in r]
        gold = [set(r["countries"]) for r in labelled]
        start = time.perf_counter()
        pred = [{c for c, _ in gaz.tag(r["title"], r["text"], r.get("source_country"))}
                for r in labelled]
        timings["gazetteer_items_per_s"] = round(len(labelled) / (time.perf_counter() - start))
        out["countries"] = {k: v for k, v in multilabel(gold, pred).items() if k != "per_label"}
        base = [baseline_countries(r["title"], r["text"]) for r in labelled]
        out["countries_pycountry_baseline"] = {
            k: v for k, v in multilabel(gold, base).items() if k != "per_label"}
        out["countries_exact_match"] = round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4)
        if not any("EU" in g for g in gold):
            # The file's label set has no EU (Reuters 1987): EU predictions cannot be scored.
            out["countries_without_eu"] = {
                k: v for k, v in multilabel(gold, [p - {"EU"} for p in pred]).items()
                if k != "per_label"}
        if errors:
            fn = Counter(c for g, p in zip(gold, pred) for c in g - p)
            fp = Counter(c for g, p in zip(gold, pred) for c in p - g)
            out["countries_top_missed"] = fn.most_common(15)
            out["countries_top_spurious"] = fp.most_common(15)
            shown = 0
            for r, g, p in zip(labelled, gold, pred):
                if g != p and shown < errors:
                    shown += 1
                    print(f"--- {r['id']} gold={sorted(g)} pred={sorted(p)} | {r['title'][:90]}",
                          file=sys.stderr)
    if any("policy" in r for r in rows):
        labelled = [r for r in rows if "policy" in r]
        start = time.perf_counter()
        scores = [rules.relevance(r["title"], r["text"]) for r in labelled]
        timings["relevance_items_per_s"] = round(len(labelled) / (time.perf_counter() - start))
        gold = [r["policy"] for r in labelled]
        pred = [int(s >= 0.5) for s in scores]
        tp = sum(1 for g, p in zip(gold, pred) if g and p)
        fp = sum(1 for g, p in zip(gold, pred) if not g and p)
        fn = sum(1 for g, p in zip(gold, pred) if g and not p)
        out["policy"] = prf(tp, fp, fn)
        out["policy_positive_share"] = round(sum(gold) / len(gold), 4)
        out["policy_predicted_share"] = round(sum(pred) / len(pred), 4)
    if any("areas" in r for r in rows):
        labelled = [r for r in rows if "areas" in r and r.get("policy", 1) == 1]
        gold = [set(r["areas"]) for r in labelled]
        pred = [{a for a, _ in rules.areas(r["title"], r["text"])} for r in labelled]
        result = multilabel(gold, pred)
        out["areas"] = {"micro_f1": result["micro_f1"], "macro_f1": result["macro_f1"],
                        "per_label": {k: v["f1"] for k, v in result["per_label"].items()}}
    if any("domains" in r for r in rows):
        labelled = [r for r in rows if "domains" in r]
        gold = [set(r["domains"]) for r in labelled]
        start = time.perf_counter()
        pred = [{d for d, _ in dom.tag(r["title"], r["text"])} for r in labelled]
        timings["domains_items_per_s"] = round(len(labelled) / (time.perf_counter() - start))
        result = multilabel(gold, pred)
        out["domains"] = {"micro_f1": result["micro_f1"], "macro_f1": result["macro_f1"],
                          "per_label": {k: v["f1"] for k, v in result["per_label"].items()}}
    else:
        start = time.perf_counter()
        for r in rows:
            dom.tag(r["title"], r["text"])
        timings["domains_items_per_s"] = round(len(rows) / (time.perf_counter() - start))
    out["speed"] = timings
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--errors", type=int, default=0, help="print N failure examples to stderr")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--domains-proxy", action="store_true",
                        help="also score domains against STIP training-split Tags (a proxy)")
    args = parser.parse_args(argv)
    files = args.files or [f for f in DEFAULT_FILES if f.exists()]
    if not files:
        print("no evaluation file found (pass one)", file=sys.stderr)
        return 2
    results = [evaluate(f, args.errors) for f in files]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for res in results:
        print(f"== {res['file']} (n={res['n']})")
        for facet in ("countries", "countries_without_eu", "countries_pycountry_baseline"):
            if facet in res:
                m = res[facet]
                print(f"  {facet:30s} P={m['micro_precision']:.3f} R={m['micro_recall']:.3f} "
                      f"F1={m['micro_f1']:.3f}")
        if "countries_exact_match" in res:
            print(f"  {'countries exact-set match':30s} {res['countries_exact_match']:.3f}")
        if "policy" in res:
            m = res["policy"]
            print(f"  {'policy (rules)':30s} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f}"
                  f"  (gold positives {res['policy_positive_share']:.0%}, "
                  f"predicted {res['policy_predicted_share']:.1%})")
        for facet in ("areas", "domains"):
            if facet in res:
                m = res[facet]
                print(f"  {facet + ' (rules)':30s} micro-F1={m['micro_f1']:.3f} macro-F1={m['macro_f1']:.3f}")
                print("    " + " ".join(f"{k}={v:.2f}" for k, v in m["per_label"].items()))
        for key in ("countries_top_missed", "countries_top_spurious"):
            if key in res:
                print(f"  {key}: {res[key]}")
        print("  speed: " + ", ".join(f"{k}={v}" for k, v in res["speed"].items()))
    if args.domains_proxy and STIP_TRAIN.exists():
        print("== domains vs STIP training Tags (proxy; tags are incomplete, precision understated)")
        for label, m in domains_proxy().items():
            print(f"  {label:30s} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
