"""Rule-based policy relevance and policy areas: the fallback when no model is trained.

The cue lexicon is classifier/data/areas.toml (same term syntax as the domain lexicon, see
classifier/lexicon.py). Relevance weighs STI-policy cues (ministry, funding programme, call for
proposals, strategy, budget, regulation, agency names) against research-result cues ("scientists
discover", "study finds") and product/business cues, and turns the balance into a 0..1 score;
company news (a funding round, earnings, a product launch) that names no public actor is held
below the line, as is news with no science/technology anchor.
Areas use the same evidence rule as domains: a title or lead hit or several body hits are needed.
An area whose table sets `min_strong_evidence` is also tagged when its strong terms alone give that
much, whatever the item's main area has ("research security" in the lead of a grant story).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .domains import (DEFAULT_SETTINGS, TERM_KINDS, _settings, above_threshold, load_layers,
                      parse_entries, parse_own_evidence)
from .lexicon import (LexiconError, Matcher, layer_evidence, length_threshold, number, table,
                      term_id, term_list, weighted_hits)
from .taxonomy import load_taxonomy

# The default of the `area_rules_override` setting (stiwatch/config.py): on news-like text (the
# genre model of classifier/model.py), a rule area scoring at least this is tagged whatever the model says
# (classifier/pipeline.py). On news we wrote (the demo articles, the test briefs) it gains ~0.05
# areas micro-F1; on STIP programme descriptions it would cost 0.005-0.01. Above 1 it is off.
RULES_CERTAIN = 0.99
STRONG_WEIGHT = TERM_KINDS["strong"]
AREA_THRESHOLDS = ("min_evidence", "min_strong_evidence")  # per-area keys of [area.X]

RELEVANCE_KINDS = {
    # kind -> (sign, weight)
    "policy_strong": (1, 2.0),
    "policy": (1, 0.5),
    "research": (-1, 1.5),
    "other": (-1, 1.0),
    "sti": (0, 0.0),    # science/technology anchors: weigh nothing, but policy needs one
    # A company acting (a funding round, earnings, a product launch) and a public actor
    # (ministry, government, agency, parliament, EU): weigh nothing, but company news with no
    # public actor is business news however much it speaks of funding and research.
    "corporate": (0, 0.0),
    "public_actor": (0, 0.0),
}
ACTOR_KINDS = frozenset({"corporate", "public_actor"})
RELEVANCE_SETTINGS = {
    "bias": -1.5,       # log-odds with no cue at all: most news is not STI policy
    "scale": 0.9,       # log-odds gained per unit of net evidence
    "max_evidence": 8.0,  # cap per side, so a long text does not saturate on repetition
    "no_sti_penalty": 2.0,  # log-odds lost when nothing anchors the item in science/technology
    "no_sti_max_evidence": 2.0,  # ...and its policy evidence counts up to this much only
    "corporate_penalty": 2.0,  # log-odds lost by company news that names no public actor
    "corporate_max_evidence": 2.0,  # ...and its policy evidence counts up to this much only
}


class RuleTagger:
    """Policy relevance (0..1) and policy areas from cue terms."""

    def __init__(self, entries: dict[str, dict[str, list[str]]], relevance: dict[str, list[str]],
                 settings: dict[str, float], relevance_settings: dict[str, float],
                 version: str, own_evidence: dict[str, float] | None = None,
                 strong_evidence: dict[str, float] | None = None) -> None:
        self.entries = entries
        self.own_evidence = own_evidence or {}  # areas judged on their own evidence
        # areas tagged when their strong terms alone give this much evidence
        self.strong_evidence = strong_evidence or {}
        self.relevance_terms = relevance
        self.settings = settings
        self.relevance_settings = relevance_settings
        self.version = version
        # One matcher for both jobs: relevance() and areas() of the same item share one scan.
        pairs: list[tuple[str, Any]] = []
        for label, entry in entries.items():
            for kind, weight in TERM_KINDS.items():
                pairs += [(term, ("area", label, term_id(term), weight)) for term in entry[kind]]
            pairs += [(term, ("area", None)) for term in entry["negative"]]
        for kind, terms in relevance.items():
            if kind == "negative":
                pairs += [(term, ("cue", None)) for term in terms]
            else:
                # Who acts is read on a layer of its own: "Ministry of Science" is a strong
                # policy cue and names a public actor, and a longer cue must not hide either.
                layer = "actor" if kind in ACTOR_KINDS else "cue"
                sign, weight = RELEVANCE_KINDS[kind]
                pairs += [(term, (layer, kind, term_id(term), weight)) for term in terms]
        self._matcher = Matcher(pairs, layered=True)
        self._last: tuple[str, str, dict, str] | None = None

    def _layers(self, title: str, text: str) -> tuple[dict[str, dict[str, float]], str]:
        """({"cue": evidence per relevance kind, "actor": per actor kind, "area": per area},
        the scanned text), remembered for the item asked last: relevance and areas read the same
        scan."""
        last = self._last
        if last is not None and last[0] is title and last[1] is text:
            return last[2], last[3]
        layers, body = layer_evidence(self._matcher, title, text, self.settings)
        self._last = (title, text, layers, body)
        return layers, body

    @classmethod
    def load(cls, path: str | Path | None = None) -> "RuleTagger":
        """The shipped cue lexicon, extended by the analyst's file at ``path`` (same layout)."""
        valid = load_taxonomy().ids("area")

        def parse(data: dict[str, Any], source: Path, before: tuple | None) -> tuple:
            settings, entries, relevance, rel_settings, own, strong = (
                before or (DEFAULT_SETTINGS, None, {}, RELEVANCE_SETTINGS, None, None))
            return (_settings(data, source, settings),
                    parse_entries(data, source, "area", valid, entries, AREA_THRESHOLDS),
                    *_relevance(data, source, relevance, rel_settings),
                    parse_own_evidence(data, source, "area", own),
                    parse_own_evidence(data, source, "area", strong, "min_strong_evidence"))

        (settings, entries, relevance, rel_settings, own, strong), version = load_layers(
            "areas.toml", path, parse)
        return cls(entries, relevance, settings, rel_settings, version, own, strong)

    def explain(self, title: str, text: str) -> list[tuple[str, str, str, str, float]]:
        """Every hit as ("cue", "actor" or "area", kind or area id, lexicon term, matched text,
        weighted evidence): why an item scored as it did."""
        hits, _body = weighted_hits(self._matcher, title, text, self.settings)
        return [(layer, label, term, part[hit.start:hit.end], mult * weight)
                for mult, hit, part in hits for layer, label, term, weight in hit.keys]

    # -- relevance -----------------------------------------------------------------------------
    def relevance_evidence(self, title: str, text: str) -> tuple[float, float, bool]:
        """(policy evidence, non-policy evidence, anchored in science/technology?)."""
        layers, _body = self._layers(title, text)
        by_kind = layers.get("cue", {})
        # every kind hit has an entry in by_kind (zero or more evidence)
        anchored = "sti" in by_kind or "policy_strong" in by_kind
        positive = sum(v for k, v in by_kind.items() if RELEVANCE_KINDS[k][0] > 0)
        negative = sum(v for k, v in by_kind.items() if RELEVANCE_KINDS[k][0] < 0)
        cap = self.relevance_settings["max_evidence"]
        return min(positive, cap), min(negative, cap), anchored

    def business_only(self, title: str, text: str) -> bool:
        """True when a company acts (a `corporate` cue: a funding round, earnings, a product
        launch) and no public actor (a `public_actor` cue: ministry, government, agency,
        parliament, EU...) is named: business news, whatever it says of funding and research."""
        by_kind = self._layers(title, text)[0].get("actor", {})
        return "corporate" in by_kind and "public_actor" not in by_kind

    def relevance(self, title: str, text: str) -> float:
        """Probability-like score that the item is about STI policy: policy cues against
        research-result and market cues, nothing without a science/technology anchor (a tax
        bill or an election is policy, but not STI policy) and nothing for company news that
        names no public actor (a start-up's funding round speaks of funding and research)."""
        return self.relevance_anchored(title, text)[0]

    def relevance_anchored(self, title: str, text: str) -> tuple[float, bool]:
        """(:meth:`relevance`, whether any science/technology anchor was found)."""
        return self.relevance_scores(title, text)[:2]

    def relevance_scores(self, title: str, text: str) -> tuple[float, bool, float]:
        """(:meth:`relevance`, anchored?, the score without the company-news rule): one read of
        the evidence for both scores. The trained model's 70/30 blend reads the last, the score
        it was chosen with (classifier/pipeline.py)."""
        pos, neg, anchored = self.relevance_evidence(title, text)
        rs = self.relevance_settings
        if not anchored:
            pos = min(pos, rs["no_sti_max_evidence"])

        def probability(policy: float, penalty: float = 0.0) -> float:
            z = (rs["bias"] + rs["scale"] * (policy - neg)
                 - (0.0 if anchored else rs["no_sti_penalty"]) - penalty)
            return round(1.0 / (1.0 + math.exp(-z)), 3)

        without = probability(pos)
        if not self.business_only(title, text):
            return without, anchored, without
        return (probability(min(pos, rs["corporate_max_evidence"]), rs["corporate_penalty"]),
                anchored, without)

    # -- areas ---------------------------------------------------------------------------------
    def area_evidence(self, title: str, text: str) -> dict[str, float]:
        return self._area_evidence(title, text)[0]

    def _area_evidence(self, title: str, text: str) -> tuple[dict[str, float], str]:
        layers, body = self._layers(title, text)
        return layers.get("area", {}), body

    def areas(self, title: str, text: str) -> list[tuple[str, float]]:
        """Policy areas with enough evidence, best first, each with a score in 0..1."""
        evidence, body = self._area_evidence(title, text)
        need = length_threshold(self.settings, body)
        relative = self.settings["relative_evidence"]
        tagged = above_threshold(evidence, need, relative, self.own_evidence)
        # A second look (a second scan) at the strong terms alone only for an area left out
        # whose whole evidence could hold enough of them: 11 of the 920 items of our news sets.
        found = {label for label, _score in tagged}
        maybe = [label for label, least in self.strong_evidence.items()
                 if label not in found and evidence.get(label, 0.0) >= max(need, least)]
        if not maybe:
            return tagged
        sure = {label for label, value in self.strong_evidence_of(title, text, maybe).items()
                if value >= self.strong_evidence[label]}
        return above_threshold(evidence, need, relative, self.own_evidence, sure) if sure \
            else tagged

    def strong_evidence_of(self, title: str, text: str,
                           labels: list[str]) -> dict[str, float]:
        """The evidence of ``labels``' strong terms alone (weighed as in area_evidence): a
        strong term in the title gives 6, in the lead 3, elsewhere 2."""
        wanted = set(labels)
        layers, _body = layer_evidence(
            self._matcher, title, text, self.settings,
            lambda key: key[-1] == STRONG_WEIGHT and key[-3] in wanted)
        found = layers.get("area", {})
        return {label: found.get(label, 0.0) for label in labels}


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
