"""Every tag the classifier gives, as one SHA-256: proof that a speed change changed no output.

Classifies the demo site's articles (with and without a source country, and as evaluation
records), the 1,000 items of bench/classify_speed.py and the labelled news of
tests/fixtures/classifier (English, European and CJK, with their languages), rules only and
with the model in ``--model-dir``, and prints the digest of all tags and of every score at full
precision (``--save FILE`` also writes them as JSON, ``--check FILE`` compares with such a
file and names the first difference).

    .venv/bin/python bench/classify_tags_check.py --model-dir DIR [--save F | --check F]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import sys
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from classify_speed import items  # noqa: E402

from classifier.pipeline import Classifier, ItemText, classify_texts  # noqa: E402
from stiwatch.demo.site import english_sources  # noqa: E402


def exact(result: Any) -> dict:
    """A Result's every field, its scores as repr() (all their digits, not the stored 4)."""
    def scored(rows: list) -> list:
        return [[repr(v) if isinstance(v, float) else v for v in row] for row in rows]
    return {"policy": repr(result.policy), "policy_method": result.policy_method,
            "areas": scored(result.areas), "domains": scored(result.domains),
            "countries": scored(result.countries), "regions": scored(result.regions),
            "news_like": result.news_like,
            "alternatives": {k: sorted(v) for k, v in sorted(result.alternatives.items())}}


def fixture_items() -> list[ItemText]:
    folder = Path(__file__).parent.parent / "tests" / "fixtures" / "classifier"
    records = [json.loads(line) for path in sorted(folder.glob("*.jsonl"))
               for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [ItemText(r.get("title") or "", r.get("text") or "", r.get("source_country"),
                     r.get("language")) for r in records]


def all_tags(model_dir: str | None) -> dict:
    articles = [a for s in english_sources() for a in s.articles]
    demo = [ItemText(a.title, f"{a.summary}\n\n{a.body}", None) for a in articles]
    demo_source = [ItemText(a.title, f"{a.summary}\n\n{a.body}", "JP") for a in articles]
    bench = items(1000)
    fixtures = fixture_items()
    out = {}
    kinds = [("rules", Classifier.load(None))]
    if model_dir:
        kinds.append(("model", Classifier.load(model_dir)))
    for name, c in kinds:
        out[name] = {
            "demo": [r.tags(c.version) for r in c.classify(demo)],
            "demo_src": [r.tags(c.version) for r in c.classify(demo_source)],
            "bench": [r.tags(c.version) for r in c.classify(bench)],
            "texts": [r.tags(c.version) for r in classify_texts(
                c, [{"title": a.title, "text": a.body} for a in articles])],
        }
        # in batches of 500 as `stiwatch classify` has them
        results = [r for k in range(0, len(bench), 500) for r in c.classify(bench[k:k + 500])]
        results += c.classify(fixtures)
        out[name]["exact"] = [exact(r) for r in results]
        out[name]["fixtures"] = [r.tags(c.version) for r in results[len(bench):]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir")
    parser.add_argument("--save")
    parser.add_argument("--check")
    args = parser.parse_args()
    tags = all_tags(args.model_dir)
    text = json.dumps(tags, sort_keys=True)
    count = sum(len(row) for kind in tags.values() for part, rows in kind.items()
                if part != "exact" for row in rows)
    print(f"{count} tags, sha256 {hashlib.sha256(text.encode()).hexdigest()}")
    if args.save:
        Path(args.save).write_text(text)
    if args.check:
        before = json.loads(Path(args.check).read_text())
        for name, kind in tags.items():
            for part, rows in kind.items():
                for n, (old, new) in enumerate(zip(before[name][part], rows)):
                    if old != new:
                        sys.exit(f"different: {name} {part} item {n}:\n{old}\n{new}")
        if json.loads(text) != before:
            sys.exit("different")
        print("same tags as", args.check)


if __name__ == "__main__":
    main()
