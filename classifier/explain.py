"""Why the lexicon rules tag an item as they do: the terms they find in its text, per label.

For analysts checking a tag before they correct it (`stiwatch tag ITEM --why`). The classify
path never comes here: it sums the same hits without keeping them. A trained model's part in
the relevance and area scores is not itemised (its features are thousands of weighted words
and character n-grams); the rules' evidence is what it is blended with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .components import Lexicons
from .pipeline import ItemText
from .places import explain as place_hits
from .rules import RELEVANCE_KINDS

# Where the rules' cue kinds point: policy relevance for (1), against it (0).
_POLICY_VALUE = {kind: "1" if sign > 0 else "0"
                 for kind, (sign, _weight) in RELEVANCE_KINDS.items() if sign}
FACET_ORDER = ("policy", "area", "domain", "country", "region")


@dataclass
class Found:
    """The evidence the lexicons found for one label: its summed weight (a title hit weighs
    more than one in the body, as when classifying) and each term as found, with the times
    it was found."""

    facet: str
    value: str
    evidence: float = 0.0
    terms: dict[str, int] = field(default_factory=dict)

    def add(self, found: str, weight: float) -> None:
        self.evidence += weight
        self.terms[found] = self.terms.get(found, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {"facet": self.facet, "value": self.value,
                "evidence": round(self.evidence, 3), "terms": dict(self.terms)}


def explain_item(lexicons: Lexicons, text: ItemText) -> list[Found]:
    """Every label the lexicons found evidence for in ``text``, by facet (policy, area,
    domain, country, region), then most evidence first. Policy: "1" gathers the policy cues,
    "0" the research-result and market cues that count against it. Region: the multilateral
    bodies named (region ``international``); the other regions follow the countries. Terms
    weighing nothing (the science/technology anchors, actors) are left out."""
    found: dict[tuple[str, str], Found] = {}

    def add(facet: str, value: str, matched: str, weight: float) -> None:
        if weight > 0:
            key = (facet, value)
            found.setdefault(key, Found(facet, value)).add(" ".join(matched.lower().split()),
                                                           weight)

    for layer, label, _term, matched, weight in lexicons.rules.explain(text.title, text.text):
        if layer == "area":
            add("area", label, matched, weight)
        elif layer == "cue" and label in _POLICY_VALUE:
            add("policy", _POLICY_VALUE[label], matched, weight)
    for label, _term, matched, weight in lexicons.domains.explain(text.title, text.text):
        add("domain", label, matched, weight)
    for code, kind, matched, weight in place_hits(lexicons.gazetteer, text.title, text.text):
        # "@international": a multilateral body (OECD, G7), which stands for no country
        facet, value = ("region", code[1:]) if code.startswith("@") else ("country", code)
        add(facet, value, matched if kind == "name" else f"{matched} ({kind})", weight)
    return sorted(found.values(),
                  key=lambda f: (FACET_ORDER.index(f.facet), -f.evidence, f.value))
