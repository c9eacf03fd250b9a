"""Rule-based policy relevance and policy areas: the fallback when no model is trained.

The cue lexicon is classifier/data/areas.toml (same term syntax as the domain lexicon, see
classifier/lexicon.py). Relevance weighs STI-policy cues (ministry, funding programme, call for
proposals, strategy, budget, regulation, agency names) against research-result cues ("scientists
discover", "study finds") and product/business cues, and turns the balance into a 0..1 score.
Areas use the same evidence rule as domains: a title or lead hit or several body hits are needed.
"""

from __future__ import annotations

from importlib import resources
import math
from pathlib import Path
from typing import Any

from .domains import TERM_KINDS, _settings, parse_entries, read_version
from .lexicon import LexiconError, Matcher, number, read_toml, table, term_list
from .taxonomy import load_taxonomy

RELEVANCE_KINDS = {
    # kind -> (sign, weight)
    "policy_strong": (1, 2.0),
    "policy": (1, 1.0),
    "research": (-1, 1.5),
    "other": (-1, 1.0),
}
RELEVANCE_SETTINGS = {
    "bias": -1.5,       # log-odds with no cue at all: most news is not STI policy
    "scale": 0.9,       # log-odds gained per unit of net evidence
    "max_evidence": 8.0,  # cap per side, so a long text does not saturate on repetition
}


def _default_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("data", "areas.toml")))


class RuleTagger:
    """Policy relevance (0..1) and policy areas from cue terms."""

    def __init__(self, entries: dict[str, dict[str, list[str]]], relevance: dict[str, list[str]],
                 settings: dict[str, float], relevance_settings: dict[str, float],
                 version: str) -> None:
        self.entries = entries
        self.relevance_terms = relevance
        self.settings = settings
        self.relevance_settings = relevance_settings
        self.version = version
        pairs: list[tuple[str, Any]] = []
        for label, entry in entries.items():
            for kind, weight in TERM_KINDS.items():
                pairs += [(term, ("area", label, term.lower(), weight)) for term in entry[kind]]
            pairs += [(term, None) for term in entry["negative"]]
        self._areas = Matcher(pairs)
        cue_pairs: list[tuple[str, Any]] = []
        for kind, terms in relevance.items():
            if kind == "negative":
                cue_pairs += [(term, None) for term in terms]
            else:
                cue_pairs += [(term, (kind, term.lower())) for term in terms]
        self._cues = Matcher(cue_pairs)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "RuleTagger":
        """The shipped cue lexicon, extended by the analyst's file at ``path`` (same layout)."""
        from .domains import DEFAULT_SETTINGS

        valid = load_taxonomy().ids("area")
        default = _default_path()
        data = read_toml(default)
        version = read_version(data, default, required=True)
        settings = _settings(data, default, DEFAULT_SETTINGS)
        entries = parse_entries(data, default, "area", valid)
        relevance, rel_settings = _relevance(data, default, {}, RELEVANCE_SETTINGS)
        if path is not None:
            path = Path(path)
            user = read_toml(path)
            user_version = read_version(user, path, required=False)
            settings = _settings(user, path, settings)
            entries = parse_entries(user, path, "area", valid, entries)
            relevance, rel_settings = _relevance(user, path, relevance, rel_settings)
            version = f"{version}+{path.stem}" + (f"-{user_version}" if user_version else "")
        return cls(entries, relevance, settings, rel_settings, version)

    # -- relevance -----------------------------------------------------------------------------
    def relevance_evidence(self, title: str, text: str) -> tuple[float, float]:
        """(policy evidence, non-policy evidence) before squashing."""
        s = self.settings
        counts: dict[tuple[str, str], float] = {}
        for part, factor in ((title or "", s["title_weight"]), (text or "", None)):
            for hit in self._cues.find(part):
                mult = factor if factor is not None else (
                    s["lead_weight"] if hit.start < s["lead_chars"] else 1.0)
                for key in hit.keys:
                    counts[key] = counts.get(key, 0.0) + mult
        sides = [0.0, 0.0]
        for (kind, _term), count in counts.items():
            sign, weight = RELEVANCE_KINDS[kind]
            sides[0 if sign > 0 else 1] += weight * min(count, s["max_repeats"])
        cap = self.relevance_settings["max_evidence"]
        return min(sides[0], cap), min(sides[1], cap)

    def relevance(self, title: str, text: str) -> float:
        """Probability-like score that the item is about STI policy."""
        pos, neg = self.relevance_evidence(title, text)
        rs = self.relevance_settings
        z = rs["bias"] + rs["scale"] * (pos - neg)
        return round(1.0 / (1.0 + math.exp(-z)), 3)

    # -- areas ---------------------------------------------------------------------------------
    def area_evidence(self, title: str, text: str) -> dict[str, float]:
        s = self.settings
        counts: dict[tuple[str, str], float] = {}
        weights: dict[tuple[str, str], float] = {}
        for part, factor in ((title or "", s["title_weight"]), (text or "", None)):
            for hit in self._areas.find(part):
                mult = factor if factor is not None else (
                    s["lead_weight"] if hit.start < s["lead_chars"] else 1.0)
                for _facet, label, term, weight in hit.keys:
                    counts[(label, term)] = counts.get((label, term), 0.0) + mult
                    weights[(label, term)] = weight
        evidence: dict[str, float] = {}
        for (label, term), count in counts.items():
            evidence[label] = evidence.get(label, 0.0) + weights[(label, term)] * min(count, s["max_repeats"])
        return evidence

    def areas(self, title: str, text: str) -> list[tuple[str, float]]:
        """Policy areas with enough evidence, best first, each with a score in 0..1."""
        per = self.settings["words_per_extra_evidence"] or math.inf
        need = self.settings["min_evidence"] + max(0, len((text or "").split()) - 500) / per
        tagged = [
            (label, round(1.0 - math.exp(-value / need), 3))
            for label, value in self.area_evidence(title, text).items() if value >= need
        ]
        return sorted(tagged, key=lambda pair: (-pair[1], pair[0]))


def _relevance(data: dict[str, Any], path: Path, base: dict[str, list[str]],
               settings: dict[str, float]) -> tuple[dict[str, list[str]], dict[str, float]]:
    terms = {kind: list(base.get(kind, [])) for kind in (*RELEVANCE_KINDS, "negative")}
    settings = dict(settings)
    raw = table(data.get("relevance", {}), f"{path}: [relevance]")
    for key, value in raw.items():
        where = f"{path}: relevance.{key}"
        if key in terms:
            terms[key] += term_list(value, where)
        elif key in RELEVANCE_SETTINGS:
            settings[key] = number(value, where, -20, 20)
        else:
            raise LexiconError(
                f"{path}: [relevance] has unknown key {key!r} (expected one of: "
                f"{', '.join([*terms, *RELEVANCE_SETTINGS])}).")
    return terms, settings
