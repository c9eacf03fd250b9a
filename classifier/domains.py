"""Technology domains from a curated, versioned lexicon (classifier/data/domains.toml).

Each domain lists `terms` (weight 1), `strong` terms (weight 2: unambiguous on their own) and
`negative` terms that mask a match inside them ("chocolate chip" hides "chip"). A hit in the title
counts `title_weight` times; repeats of one term add less and less; a domain is tagged only when
its evidence reaches `min_evidence` (which grows slowly with the length of the text), so a passing
mention is not enough; a brief of a few sentences (`brief_words`) needs `brief_min_evidence`, one
strong term in it. An analyst extends or overrides the shipped lexicon with their own file:
see `DomainTagger.load`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, TypeVar

from .lexicon import (LexiconError, Matcher, check_top_level, data_file, length_threshold,
                      layer_evidence, number, read_toml, read_version, table, term_id, term_list,
                      weighted_hits)
from .taxonomy import load_taxonomy

T = TypeVar("T")

DEFAULT_SETTINGS = {
    "title_weight": 3.0,   # a title hit counts this many body hits
    "lead_weight": 1.5,    # a hit in the first `lead_chars` characters of the text
    "lead_chars": 400,
    "min_evidence": 2.0,   # evidence a domain needs to be tagged
    "words_per_extra_evidence": 1500,  # long texts need one more unit of evidence per this many words
    "max_repeats": 3,      # hits of one term beyond this add nothing
    "scan_chars": 3000,    # read the title and this many characters of the text
    "relative_evidence": 0.0,  # a label also needs this share of the best label's evidence
    "brief_words": 0,      # texts of at most this many words (0: none) are briefs and need ...
    "brief_min_evidence": 2.0,  # ... only this much evidence
}
TERM_KINDS = {"terms": 1.0, "strong": 2.0}


def _settings(data: dict[str, Any], path: Path, base: dict[str, float]) -> dict[str, float]:
    settings = dict(base)
    raw = table(data.get("settings", {}), f"{path}: [settings]")
    for key, value in raw.items():
        if key not in DEFAULT_SETTINGS:
            raise LexiconError(
                f"{path}: [settings] has unknown key {key!r} "
                f"(expected one of: {', '.join(DEFAULT_SETTINGS)}).")
        settings[key] = number(value, f"{path}: settings.{key}", 0, 1e6)
    return settings


def parse_entries(data: dict[str, Any], path: Path, section: str, valid: tuple[str, ...],
                  entries: dict[str, dict[str, list[str]]] | None = None,
                  thresholds: tuple[str, ...] = ("min_evidence",),
                  ) -> dict[str, dict[str, list[str]]]:
    """Read ``[section.ID]`` tables (terms, strong, negative, replace) into ``entries``.

    An existing entry is extended, or replaced when the table says ``replace = true``.
    ``thresholds``: the per-label threshold keys the tagger reads (parse_own_evidence).
    """
    entries = {key: {k: list(v) for k, v in value.items()} for key, value in (entries or {}).items()}
    raw = table(data.get(section, {}), f"{path}: [{section}]")
    for label, spec in raw.items():
        where = f"{path}: [{section}.{label}]"
        if label not in valid:
            raise LexiconError(f"{where}: unknown {section} id {label!r} (expected one of: {', '.join(valid)}).")
        spec = table(spec, where)
        unknown = set(spec) - {*TERM_KINDS, "negative", "replace", *thresholds}
        if unknown:
            raise LexiconError(
                f"{where}: unknown key {sorted(unknown)[0]!r} "
                f"(expected terms, strong, negative, replace or {' or '.join(thresholds)}).")
        replace = spec.get("replace", False)
        if not isinstance(replace, bool):
            raise LexiconError(f"{where}: replace must be true or false.")
        entry = {"terms": [], "strong": [], "negative": []} if replace or label not in entries else entries[label]
        for kind in (*TERM_KINDS, "negative"):
            if kind in spec:
                entry[kind] = entry[kind] + term_list(spec[kind], f"{where} {kind}")
        # a term listed both ways counts as strong (a user file may promote a shipped term)
        strong = {term_id(term) for term in entry["strong"]}
        entry["terms"] = [term for term in entry["terms"] if term_id(term) not in strong]
        entries[label] = entry
    return entries


def parse_own_evidence(data: dict[str, Any], path: Path, section: str,
                       before: dict[str, float] | None = None,
                       key: str = "min_evidence") -> dict[str, float]:
    """``min_evidence`` (or another per-label threshold ``key``) of ``[section.ID]`` tables:
    labels judged on their own evidence against it, not against a share of the item's main
    label (see ``above_threshold``). parse_entries has checked the tables' ids and keys."""
    own = dict(before or {})
    for label, spec in table(data.get(section, {}), f"{path}: [{section}]").items():
        if isinstance(spec, dict) and key in spec:
            own[label] = number(spec[key], f"{path}: [{section}.{label}] {key}", 0, 1e6)
    return own


def load_layers(name: str, path: str | Path | None,
                parse: Callable[[dict[str, Any], Path, T | None], T]) -> tuple[T, str]:
    """The shipped lexicon ``name``, then the analyst's file at ``path`` parsed on top of it.

    ``parse(data, file, before)`` turns one file into the lexicon's state (``before`` is None for
    the shipped file). Returns the state and the version, e.g. ``2026.11.4+ours-3``.
    """
    default = data_file(name)
    data = read_toml(default)
    version = read_version(data, default, required=True)
    state = parse(data, default, None)
    if path is not None:
        path = Path(path)
        user = read_toml(path)
        check_top_level(user, path, data)
        user_version = read_version(user, path, required=False)
        state = parse(user, path, state)
        version = f"{version}+{path.stem}" + (f"-{user_version}" if user_version else "")
    return state, version


class DomainTagger:
    """Tags technology domains (taxonomy ids) with a score in 0..1."""

    def __init__(self, entries: dict[str, dict[str, list[str]]], settings: dict[str, float],
                 version: str, own_evidence: dict[str, float] | None = None) -> None:
        self.entries = entries
        self.settings = settings
        self.version = version
        self.own_evidence = own_evidence or {}  # domains judged on their own evidence
        pairs: list[tuple[str, Any]] = []
        for label, entry in entries.items():
            for kind, weight in TERM_KINDS.items():
                pairs += [(term, (label, term_id(term), weight)) for term in entry[kind]]
            pairs += [(term, None) for term in entry["negative"]]
        self._matcher = Matcher(pairs)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "DomainTagger":
        """The shipped lexicon, extended (or, per domain with `replace = true`, overridden) by
        the analyst's file at ``path``. Raises LexiconError naming the file and key."""
        valid = load_taxonomy().ids("domain")

        def parse(data: dict[str, Any], source: Path, before: tuple | None) -> tuple:
            settings, entries, own = before or (DEFAULT_SETTINGS, None, None)
            return (_settings(data, source, settings),
                    parse_entries(data, source, "domain", valid, entries),
                    parse_own_evidence(data, source, "domain", own))

        (settings, entries, own), version = load_layers("domains.toml", path, parse)
        return cls(entries, settings, version, own)

    def evidence(self, title: str, text: str) -> dict[str, float]:
        """Evidence per domain (before the threshold)."""
        return self._evidence(title, text)[0]

    def _evidence(self, title: str, text: str) -> tuple[dict[str, float], str]:
        layers, body = layer_evidence(self._matcher, title, text, self.settings)
        return layers[None], body

    def explain(self, title: str, text: str) -> list[tuple[str, str, str, float]]:
        """Every hit as (domain, lexicon term, matched text, weighted evidence): why a domain
        was (or was not) tagged."""
        hits, _body = weighted_hits(self._matcher, title, text, self.settings)
        return [(label, term, part[hit.start:hit.end], mult * weight)
                for mult, hit, part in hits for label, term, weight in hit.keys]

    def tag(self, title: str, text: str) -> list[tuple[str, float]]:
        """Domains with enough evidence, best first, each with a score in 0..1."""
        evidence, body = self._evidence(title, text)
        return above_threshold(evidence, length_threshold(self.settings, body),
                               self.settings["relative_evidence"], self.own_evidence)


def above_threshold(evidence: dict[str, float], need: float, relative: float = 0.0,
                    own: dict[str, float] | None = None,
                    sure: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, float]]:
    """Labels with at least ``need`` evidence and ``relative`` times the best label's, best
    first; score 1 - exp(-evidence / need). A label in ``own`` (its ``min_evidence``) needs
    that much (and ``need``) instead, whatever the best label has, and does not count as the
    best label for the others: a cross-cutting area is judged on its own evidence ("a grant
    rule that is about research security"). A label in ``sure`` (its strong terms alone gave
    the evidence its lexicon asks of them: RuleTagger.areas) needs only ``need``."""
    own = own or {}
    # labels judged on their own neither need nor set the main label's share
    floor = max(need, relative * max((v for label, v in evidence.items() if label not in own),
                                     default=0.0))
    tagged = [(label, round(1.0 - math.exp(-value / need), 3))
              for label, value in evidence.items()
              if value >= (need if label in sure else max(need, own[label]) if label in own
                           else floor)]
    return sorted(tagged, key=lambda pair: (-pair[1], pair[0]))
