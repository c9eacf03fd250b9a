"""Countries and regions: a gazetteer tagger.

Evidence for a country comes from its names (pycountry's, plus the alias table), demonyms
("South Korean"), capitals and other places used as metonyms ("Beijing said", "Bavaria"), and
the names and acronyms of its STI agencies, ministries and councils ("NSFC", "JSPS", "UKRI").
EU institutions count for `EU`; multilateral bodies (OECD, UNESCO, G7, CERN...) make an item
`international` without naming a country.

Data: classifier/data/places.toml (hand-written: aliases, demonyms, capitals, places, agencies,
ambiguous and shared names, groups of countries, masking terms, multilateral bodies),
places_economy.toml (central banks, exchanges, currencies) and places_agencies.toml (agency
names seeded from the OECD STIP Compass responsible organisations; see its header). All use the term syntax of
classifier/lexicon.py. Regions come from classifier/data/regions.toml. docs/lexicons.md explains
the rules for analysts.

Ranking: a hit counts more in the title and the lead (the first two sentences) than deep in the
text, repeats of one term add up to a cap, and a country is tagged only when its evidence
reaches `min_evidence` and a share of the best country's evidence: a single passing mention deep
in the text is not enough. When the text names no country, the source's home country is used;
without one, the legal forms of the companies in the title and lead ("Inc", "Plc", "GmbH",
[company_forms]). classifier/countries.py adds a trained model as a second signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
import math
from pathlib import Path
import re
from typing import Any

import pycountry

from .lexicon import (LexiconError, Matcher, check_top_level, cjk_words, data_file, is_shouting,
                      length_threshold, number, read_toml, read_version, table, term_list,
                      weighted_hits)
from .taxonomy import country_codes, load_taxonomy

# What a hit of each kind of term is worth, before position weights.
KIND_WEIGHTS = {
    "name": 1.0,
    "agency": 1.0,
    "demonym": 0.8,
    "capital": 0.8,
    "place": 0.6,
    "currency": 0.5,
    "group": 0.8,  # "Nordic countries", "Five Eyes": each member, as a demonym would
}
KINDS = tuple(KIND_WEIGHTS)
RECENT_ITEMS = 512  # scans remembered: more than a batch of `stiwatch classify` (500)
# What a multilateral body's own news names of its seat or venue: cities and the local currency.
VENUE_KINDS = frozenset({"capital", "place", "currency"})
DEFAULT_SETTINGS = {
    "title_weight": 3.0,
    "lead_weight": 2.0,
    "lead_chars": 300,
    "min_evidence": 1.5,
    "relative_evidence": 0.4,    # a second country needs this share of the best one's evidence
    "eu_relative_evidence": 0.8,  # national news often names the EU as context, not as actor
    "max_term_evidence": 4.0,    # repeats of one term add up to this
    "ambiguous_weight": 0.6,     # an ambiguous name with no corroborating evidence
    "words_per_extra_evidence": 2000,
    "fallback_score": 0.5,       # score of the source's home country when the text names none
    "sole_min_evidence": 0.8,    # a short text (no source country) naming one country only...
    "sole_max_words": 250,       # ...is about it even from a single mention below the threshold
    "scan_chars": 3000,          # read the title and this many characters of the text
    "company_form_score": 0.5,   # score of a country told only by companies' legal forms
}
# The EU's institutions (as lexicon terms are counted: lower case), unlike its programmes and
# agencies: named in a title or lead, they are the EU acting.
EU_INSTITUTIONS = frozenset({
    "european commission", "commission von der leyen", "european parliament",
    "council of the eu", "council of the european union", "european council",
    "european research council", "erc", "erc executive agency", "ercea",
    "european innovation council", "eic", "eurohpc", "eurohpc joint undertaking",
    "chips joint undertaking", "chips ju", "joint research centre", "jrc",
    "research executive agency", "european institute of innovation and technology", "eit",
    "european health and digital executive agency", "hadea", "eu ai office",
    "european ai office"})
# Acronyms that are also English words: in ALL-CAPS headlines they say nothing.
_WORD_ACRONYMS = frozenset(
    "us it who most arc aim can or is as at on no me he id in am be do go if of ok so to up we my "
    "an by oh are for the and all one now new sun war law life care safe fast best star lead gain "
    "rise seed nice heart bio case ice fame dare hope cost ace base core".split())


PLACE_FILES = ("places.toml", "places_agencies.toml", "places_economy.toml", "places_cjk.toml",
               "places_europe.toml")


def _group(keys: tuple) -> bool:
    """A group's name ("Baltic states"): evidence for each member."""
    return all(key[1] == "group" for key in keys)


def _pycountry_names() -> dict[str, list[str]]:
    """Official and common English names of every ISO country, without the inverted forms
    ("Korea, Republic of") that never occur in running text."""
    names: dict[str, list[str]] = {}
    for country in pycountry.countries:
        forms = {country.name, getattr(country, "official_name", None), getattr(country, "common_name", None)}
        names[country.alpha_2] = sorted(f for f in forms if f and "," not in f and "(" not in f)
    return names


@lru_cache(maxsize=1)
def _regions() -> tuple[dict[str, str], int]:
    path = data_file("regions.toml")
    data = read_toml(path)
    valid = set(load_taxonomy().ids("region"))
    codes = set(country_codes())
    mapping: dict[str, str] = {}
    for region, members in table(data.get("region", {}), f"{path}: [region]").items():
        if region not in valid:
            raise LexiconError(f"{path}: [region] has unknown region id {region!r}.")
        for code in term_list(members, f"{path}: region.{region}"):
            if code not in codes:
                raise LexiconError(f"{path}: region.{region} lists unknown country code {code!r}.")
            if code in mapping:
                raise LexiconError(f"{path}: country {code} is in both {mapping[code]} and {region}.")
            mapping[code] = region
    return mapping, data.get("version", 0)


def region_of(code: str) -> str | None:
    """The taxonomy region of an ISO alpha-2 code (or EU), or None for places outside every region."""
    return _regions()[0].get(code)


def region_map() -> dict[str, str]:
    """Every country code (and EU) -> its taxonomy region: what the store needs to keep an
    item's regions in step with countries an analyst changed (db/tags.py)."""
    return dict(_regions()[0])


def regions_for(codes: Iterable[str], international: bool = False) -> list[str]:
    """Region ids for countries (EU -> europe), plus `international` when a multilateral body acts."""
    regions: list[str] = []
    for code in codes:
        region = region_of(code)
        if region and region not in regions:
            regions.append(region)
    if international:
        regions.append("international")
    return regions


def derive_regions(countries: Iterable[tuple[str, float, str]], previous: Iterable[tuple[str, float, str]] = ()
                   ) -> list[tuple[str, float, str]]:
    """Regions of the countries (best score, its method), plus ``international`` when
    ``previous`` had it from a multilateral body."""
    regions: dict[str, tuple[float, str]] = {}
    for code, score, method in countries:
        for region in regions_for([code]):
            if score > regions.get(region, (-1.0, ""))[0]:
                regions[region] = (score, method)
    for region, score, method in previous:
        if region == "international":
            regions[region] = (score, method)
    return sorted(((r, s, m) for r, (s, m) in regions.items()), key=lambda row: (-row[1], row[0]))



@dataclass
class CountryHits:
    """How an item names one country (Gazetteer.profile)."""

    kinds: dict[str, float]  # position-weighted hits per kind of term (KINDS)
    best_weight: float       # the best position weight: title, lead or body
    hits: int
    order: int               # 0 for the first country named, 1 for the next...


class Gazetteer:
    """Tags the countries an item is about, with scores, and tells multilateral actors."""

    def __init__(self, entries: dict[str, dict[str, list[str]]], ambiguous: dict[str, list[str]],
                 bodies: list[str], negative: list[str], settings: dict[str, float],
                 version: str, shared: dict[str, list[str]] | None = None,
                 company_forms: dict[str, list[str]] | None = None,
                 groups: dict[str, list[str]] | None = None) -> None:
        self.entries = entries
        # Legal forms of companies ("Inc", "Plc", "GmbH"): a last resort when nothing names a
        # country and no source country is known ("Webcor Electronics Inc said ...").
        self.company_forms = company_forms or {}
        self._forms = Matcher([(term, code) for code, terms in self.company_forms.items()
                               for term in terms], caps=True) if self.company_forms else None
        self.ambiguous = ambiguous
        self.bodies = bodies
        self.settings = settings
        self.version = version
        # term -> {(code, kind)}; a term listed for several countries is ambiguous by construction
        owners: dict[str, dict[str, str]] = {}
        for code, kinds in entries.items():
            for kind, terms in kinds.items():
                for term in terms:
                    owners.setdefault(term, {}).setdefault(code, kind)
        pairs: list[tuple[str, Any]] = []
        body_terms = set(bodies)
        for term, codes in owners.items():
            if term in ambiguous or term in (shared or {}) or term in (groups or {}) \
                    or term in body_terms:
                continue  # those tables decide; multilateral bodies are never a country's agency
            for code, kind in codes.items():
                # keys: (code, kind, term, number of countries sharing the term, default?)
                pairs.append((term, (code, kind, term, len(codes), False)))
        for term, codes in ambiguous.items():
            for rank, code in enumerate(codes):
                kind = owners.get(term, {}).get(code, "name" if rank == 0 else "place")
                pairs.append((term, (code, kind, term, len(codes), rank == 0)))
        self.shared = shared or {}
        for term, codes in self.shared.items():
            for code in codes:
                kind = owners.get(term, {}).get(code, "agency")
                pairs.append((term, (code, kind, term, len(codes), False)))
        # a group's name ("Baltic states") names each of its members: evidence for all of them
        self.groups = groups or {}
        for term, codes in self.groups.items():
            pairs += [(term, (code, "group", term, len(codes), False)) for code in codes]
        pairs += [(term, ("@international", "body", term, 1, False)) for term in bodies]
        pairs += [(term, None) for term in negative]
        self._matcher = Matcher(pairs, caps=True)
        self._recent: dict[tuple[str, str], tuple] = {}

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "Gazetteer":
        """The shipped gazetteer (pycountry names + places*.toml), extended by an analyst's file."""
        return _load(str(path) if path is not None else None)

    # -- tagging -------------------------------------------------------------------------------
    def new_batch(self) -> None:
        """Forget the scans of earlier batches: those of the coming batch (up to RECENT_ITEMS
        items) are then all kept until the country model has read them again, where a full
        memory emptied itself in the middle of a batch and its first items were scanned
        twice."""
        self._recent.clear()

    def _hits(self, title: str, text: str
              ) -> tuple[list[tuple[float, tuple]], str, list[tuple[str, int, int, tuple, bool]]]:
        """(position weight, keys) for every hit that counts, the scanned text, and the hits
        of the title and lead with their places (normalised part, start, end, keys, in the
        title?)."""
        found: list[tuple[float, tuple]] = []
        leads: list[tuple[str, int, int, tuple, bool]] = []
        hits, body = weighted_hits(self._matcher, title, text, self.settings)
        in_lead = self.settings["lead_weight"]
        shouting: dict[int, bool] = {}
        for weight, hit, part in hits:
            if not hit.keys:
                continue
            matched = part[hit.start:hit.end]
            if matched.isupper() and "." not in matched:
                if id(part) not in shouting:
                    shouting[id(part)] = is_shouting(part[:200])
                if shouting[id(part)] and (
                        matched.lower() in _WORD_ACRONYMS or matched.lower()[:-1] in _WORD_ACRONYMS
                        or any(key[1] != "name" and len(key[2]) <= 3 for key in hit.keys)):
                    # In an ALL-CAPS headline "US", "WHO", "MOST" are words and a short
                    # capital run may abbreviate anything ("DLR" = dollar): only country-name
                    # acronyms (UK, USA, UAE) and longer acronyms (CONICET) still count there.
                    continue
            if (hit.keys[0][3] > 1 or hit.keys[0][4]) and _person_context(part, hit.start, hit.end):
                continue
            found.append((weight, hit.keys))
            if part is not body or weight == in_lead:
                leads.append((part, hit.start, hit.end, hit.keys, part is not body))
        return found, body, leads

    def evidence(self, title: str, text: str) -> dict[str, float]:
        """Evidence per country code ('@international' for multilateral bodies)."""
        return dict(self._evidence(title, text)[0])

    def _evidence(self, title: str, text: str) -> tuple[dict[str, float], float]:
        """(evidence per code, evidence needed), remembered for the last items: tag() and
        international() of one item share one scan."""
        return self._scanned(title, text)[1:3]

    def _scanned(self, title: str, text: str
                 ) -> tuple[list[tuple[float, tuple]], dict[str, float], float,
                            list[tuple[str, int, int, tuple, bool]]]:
        """(hits, evidence per code, evidence needed, the title's and lead's hits with their
        places) of an item, remembered for a batch of them: the country ranker and the
        country model read a batch's items again after the pipeline tagged them all."""
        key = (title, text)
        found = self._recent.get(key)
        if found is not None:
            return found
        hits, body, leads = self._hits(title, text)
        result = hits, self._sum(hits), length_threshold(self.settings, body), leads
        if len(self._recent) >= RECENT_ITEMS:
            self._recent.clear()
        self._recent[key] = result
        return result

    def _sum(self, hits: list[tuple[float, tuple]]) -> dict[str, float]:
        s = self.settings
        per_term: dict[tuple[str, str], float] = {}
        shared: list[tuple[float, tuple]] = []
        for weight, keys in hits:
            if _group(keys):  # each member of a group
                for code, kind, term, _n, _default in keys:
                    per_term[(code, term)] = per_term.get((code, term), 0.0) + \
                        weight * KIND_WEIGHTS[kind]
            elif self._own(keys):
                code, kind, term, _n, _default = keys[0]
                key = (code, term)
                per_term[key] = per_term.get(key, 0.0) + weight * KIND_WEIGHTS.get(kind, 1.0)
            else:
                shared.append((weight, keys))
        evidence = _cap(per_term, s["max_term_evidence"])
        # Ambiguous terms go to the candidates that have unambiguous evidence of their own;
        # without any, to the first-listed (default) reading at a reduced weight, or shared out.
        shared_terms: dict[tuple[str, str], float] = {}
        for weight, keys in shared:
            backed = [k for k in keys if evidence.get(k[0], 0.0) > 0]
            if backed:
                for code, kind, term, _n, _d in backed:
                    shared_terms[(code, term)] = shared_terms.get((code, term), 0.0) + \
                        weight * KIND_WEIGHTS.get(kind, 1.0) / len(backed)
            else:
                # a [shared] term, or one that several countries list, has no default reading:
                # it needs corroboration
                defaults = [k for k in keys if k[4]]
                for code, kind, term, _n, _d in defaults:
                    shared_terms[(code, term)] = shared_terms.get((code, term), 0.0) + \
                        weight * KIND_WEIGHTS.get(kind, 1.0) * s["ambiguous_weight"] / len(defaults)
        for code, value in _cap(shared_terms, s["max_term_evidence"]).items():
            evidence[code] = evidence.get(code, 0.0) + value
        return evidence

    def _eu_acts(self, title: str, text: str) -> bool:
        """An EU institution or body that acts (the Commission, the Parliament, the Council,
        the ERC, EuroHPC...; not a programme or a law) is named in the title or the lead, where
        an item names its actors."""
        lead = self.settings["lead_weight"]
        return any(weight >= lead and any(key[0] == "EU" and key[2].lower() in EU_INSTITUTIONS
                                          for key in keys)
                   for weight, keys in self._scanned(title, text)[0])

    def tag(self, title: str, text: str, source_country: str | None = None) -> list[tuple[str, float]]:
        """Country codes (ISO alpha-2, or EU) the item is about, best first, with scores 0..1."""
        tags = self._tag(title, text, source_country)
        if tags or source_country or self._forms is None:
            return tags
        return self.by_company_form(title, text)

    def by_company_form(self, title: str, text: str) -> list[tuple[str, float]]:
        """Countries told by the legal forms of the companies in the title and lead ("Inc" ->
        US, "Plc" -> GB): every country with at least half the top count of hits."""
        if self._forms is None:
            return []
        limit = int(self.settings["lead_chars"])
        counts: dict[str, int] = {}
        for part in (title or "", (text or "")[:limit]):
            for hit in self._forms.find(part):
                for code in hit.keys:
                    counts[code] = counts.get(code, 0) + 1
        top = max(counts.values(), default=0)
        score = self.settings["company_form_score"]
        return sorted(((code, score) for code, n in counts.items() if 2 * n >= top),
                      key=lambda pair: pair[0])

    def _tag(self, title: str, text: str, source_country: str | None = None
             ) -> list[tuple[str, float]]:
        evidence, need = self._evidence(title, text)
        # Where a multilateral body acts, a country told only by a city or its currency is
        # where the body sits or met ("Geneva - The WHO published...", "UNESCO members met in
        # Samarkand", CERN's budget in CHF), not a country the item is about.
        acting = self.international(title, text)
        venues = self._venues(title, text) if acting else set()
        evidence = {code: value for code, value in evidence.items()
                    if code != "@international" and code not in venues}
        top = max(evidence.values(), default=0.0)
        floor = max(need, top * self.settings["relative_evidence"])
        # National news names EU programmes as context, so the EU needs nearly the top
        # country's evidence; not where an EU institution acts in the title or lead ("The
        # European Commission and Japan launch a joint call"): then it is an actor, which
        # taxonomy.md tags whatever the others' weight.
        eu_floor = 0.0 if "EU" not in evidence else need if self._eu_acts(title, text) else max(
            need, max((v for c, v in evidence.items() if c != "EU"), default=0.0)
            * self.settings["eu_relative_evidence"])
        tagged = [
            (code, round(1.0 - math.exp(-value / need), 3))
            for code, value in evidence.items()
            if (value >= eu_floor if code == "EU" else value >= floor)
        ]
        if not tagged and source_country:
            code = source_country.upper()
            if code in country_codes():
                return [(code, self.settings["fallback_score"])]
        if not tagged and len(evidence) == 1 and not acting:
            # A short item that names exactly one country (a one-paragraph brief, a programme
            # description) is about it even without a title or lead mention; in a long article
            # a lone mention deep in the text stays a passing one, and so does one beside a
            # multilateral body that acts ("CERN's council ... physicists in China propose").
            (code, value), = evidence.items()
            words = len((text or "").split(None, int(self.settings["sole_max_words"]) + 1)) \
                + cjk_words(text or "")
            if value >= self.settings["sole_min_evidence"] and words <= self.settings["sole_max_words"]:
                return [(code, round(1.0 - math.exp(-value / need), 3))]
        return sorted(tagged, key=lambda pair: (-pair[1], pair[0]))

    def _own(self, keys: tuple) -> bool:
        """One country's term, however many of its spellings matched ("Timor-Leste" and
        "Timor Leste" read the same text): unambiguous, unless it is [shared] or an
        [ambiguous] name's default reading."""
        return not keys[0][4] and keys[0][2] not in self.shared \
            and all(key[0] == keys[0][0] for key in keys[1:])

    def alternatives(self, title: str, text: str, codes: Iterable[str]
                     ) -> dict[str, frozenset[str]]:
        """For each of ``codes`` that the item names only by ambiguous terms read by default
        ("NRF": Korea's), and maybe by [shared] ones beside them (which count only beside
        evidence of its own, so gave it none), the other countries those terms can mean
        (Singapore, South Africa): the country model (classifier/countries.py) may choose
        among them."""
        wanted = set(codes)
        found: dict[str, list[tuple]] = {}
        for _weight, keys in self._scanned(title, text)[0]:
            for key in keys:
                if key[0] in wanted:
                    found.setdefault(key[0], []).append(keys)
        readings = {code: frozenset(key[0] for keys in terms for key in keys) - {code}
                    for code, terms in found.items()
                    if not any(_group(keys) or self._own(keys) for keys in terms)
                    and any(key[0] == code and key[4] for keys in terms for key in keys)}
        # a name with one reading only ("Paris" = France) leaves nothing to choose
        return {code: others for code, others in readings.items() if others}

    def profile(self, title: str, text: str) -> dict[str, CountryHits]:
        """How the item names each country (every reading of an ambiguous name included): the
        position-weighted hits per kind of term, the best position weight, the number of hits
        and the order of first mention (0 = first named)."""
        out: dict[str, CountryHits] = {}
        for weight, keys in self._scanned(title, text)[0]:
            for code, kind, *_rest in keys:
                if code.startswith("@"):
                    continue
                found = out.get(code)
                if found is None:
                    found = out[code] = CountryHits(dict.fromkeys(KINDS, 0.0), 0.0, 0, len(out))
                found.kinds[kind] = found.kinds.get(kind, 0.0) + weight
                found.best_weight = max(found.best_weight, weight)
                found.hits += 1
        return out

    def lists(self, title: str, text: str, kinds: frozenset[str]) -> list[set[str]]:
        """The countries named one after another in a list in the title or the lead ("the
        research councils of Denmark, Finland, Iceland, Norway and Sweden", "日本、米国と英国"):
        one set per list of two or more, by ``kinds`` of name. A list's countries play one
        part in the sentence: they act together or are partners together. Read from the
        item's scan (remembered for the batch), not a new one."""
        out: list[set[str]] = []
        run: list[str] = []
        last: tuple[str, int] | None = None  # (part, end) of the run's last name
        for part, start, end, keys, _in_title in self._scanned(title, text)[3]:
            codes = {key[0] for key in keys if key[1] in kinds}
            if len(codes) != 1:  # a body, an ambiguous or a group name
                run, last = _flush(run, out), None
                continue
            if last is None or last[0] is not part or not _LIST_GAP.fullmatch(part[last[1]:start]):
                run = _flush(run, out)
            run.append(next(iter(codes)))
            last = (part, end)
        _flush(run, out)
        return out

    def _venues(self, title: str, text: str) -> set[str]:
        """Countries the item tells only by cities and currency (VENUE_KINDS)."""
        return {code for code, named in self.profile(title, text).items()
                if all(kind in VENUE_KINDS for kind, weight in named.kinds.items() if weight)}

    def tag_with_method(self, title: str, text: str, source_country: str | None = None
                        ) -> list[tuple[str, float, str]]:
        """Like tag(), with how each country was found: "gazetteer" (named in the item, or told
        by its companies' legal forms) or "source" (the source's home country, used because the
        item names none)."""
        tags = self.tag(title, text, source_country)
        evidence, _need = self._evidence(title, text)
        source = (source_country or "").upper()
        return [(code, score, "source" if code == source and code not in evidence
                 else "gazetteer") for code, score in tags]

    def international(self, title: str, text: str) -> bool:
        """True when a multilateral body (OECD, UN, G7, CERN...) is an actor of the item."""
        evidence, need = self._evidence(title, text)
        return evidence.get("@international", 0.0) >= need


# what separates the items of a list of names: a comma, "and", "or", "&", a slash, a
# Japanese or Chinese list comma, Korean "와/과", Chinese "和/与", Japanese "と/や"
_LIST_GAP = re.compile(r"\s*(?:,|、|，|/|&|,?\s+(?:and|or)|와|과|和|与|與|と|や)\s*")


def _flush(run: list[str], out: list[set[str]]) -> list[str]:
    """Keep ``run`` as a list when it names two or more countries; a new, empty run."""
    if len(set(run)) >= 2:
        out.append(set(run))
    return []


def _cap(per_term: dict[tuple[str, str], float], cap: float) -> dict[str, float]:
    evidence: dict[str, float] = {}
    for (code, _term), value in per_term.items():
        evidence[code] = evidence.get(code, 0.0) + min(value, cap)
    return evidence


_NOT_NAMES = frozenset(
    "The A An And Or Of In On At To For By With From As But Its Their His Her This That These "
    "Those Said Says Says, President Minister Prime King Queen Government Republic Kingdom State "
    "Ministry University National Northern Southern Eastern Western North South East West Central "
    "Upper Lower New Valley River Basin Sea Ocean Gulf Bay Mountains".split())


def _person_context(text: str, start: int, end: int) -> bool:
    """True when an ambiguous name sits in a person's name ("Michael Jordan", "Chad Smith")."""
    after = text[end:end + 30].split(None, 1)
    before = text[max(0, start - 30):start].rsplit(None, 1)
    nxt = after[0] if after and text[end:end + 1] == " " else ""
    prev = before[-1] if before and text[start - 1:start] == " " else ""
    def name_like(word: str) -> bool:
        word = word.strip("\"'")
        return len(word) > 1 and word[0].isupper() and word[1:].islower() and word.isalpha() \
            and word not in _NOT_NAMES
    return name_like(nxt) or (name_like(prev) and not text[:start].rstrip().endswith((".", "\n")))


@lru_cache(maxsize=4)
def _load(path: str | None) -> Gazetteer:
    codes = set(country_codes())
    entries: dict[str, dict[str, list[str]]] = {}
    for code, names in _pycountry_names().items():
        entries.setdefault(code, {}).setdefault("name", []).extend(names)
    ambiguous: dict[str, list[str]] = {}
    shared: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}
    forms: dict[str, list[str]] = {}
    bodies: list[str] = []
    negative: list[str] = []
    settings = dict(DEFAULT_SETTINGS)
    versions = []
    files = [data_file(name) for name in PLACE_FILES] + ([Path(path)] if path else [])
    for number_, file in enumerate(files):
        data = read_toml(file)
        if number_ == 0:
            shipped = data
        edition = read_version(data, file, required=number_ == 0)
        if path and number_ == len(files) - 1:
            check_top_level(data, file, shipped)  # places.toml has every table
            # the analyst's file shows in the version (as the other lexicons' do): a model
            # trained with other tables is told apart
            versions.append(file.stem + (f"-{edition}" if edition else ""))
        elif edition:
            versions.append(edition)
        for key, value in table(data.get("settings", {}), f"{file}: [settings]").items():
            if key not in DEFAULT_SETTINGS:
                raise LexiconError(f"{file}: [settings] has unknown key {key!r} "
                                   f"(expected one of: {', '.join(DEFAULT_SETTINGS)}).")
            settings[key] = number(value, f"{file}: settings.{key}", 0, 1e6)
        for code, spec in table(data.get("country", {}), f"{file}: [country]").items():
            where = f"{file}: [country.{code}]"
            if code not in codes:
                raise LexiconError(f"{where}: {code!r} is not an ISO 3166-1 alpha-2 code or EU.")
            spec = table(spec, where)
            entry = entries.setdefault(code, {})
            for kind, value in spec.items():
                plural = kind.rstrip("s")
                kind_id = {"name": "name", "alias": "name", "agencie": "agency", "agency": "agency",
                           "demonym": "demonym", "capital": "capital", "place": "place",
                           "currencie": "currency", "currency": "currency"}.get(plural)
                if kind_id is None:
                    raise LexiconError(f"{where}: unknown key {kind!r} (expected names, "
                                       "demonyms, capitals, places, agencies or currencies).")
                entry.setdefault(kind_id, []).extend(term_list(value, f"{where} {kind}"))
        for section, target in (("ambiguous", ambiguous), ("shared", shared),
                                ("groups", groups)):
            for term, value in table(data.get(section, {}), f"{file}: [{section}]").items():
                listed = term_list(value, f"{file}: {section}.{term!r}")
                for code in listed:
                    if code not in codes:
                        raise LexiconError(
                            f"{file}: {section}.{term!r} lists unknown country code {code!r}.")
                target[" ".join(term.split())] = listed
        for code, value in table(data.get("company_forms", {}), f"{file}: [company_forms]").items():
            if code not in codes:
                raise LexiconError(f"{file}: [company_forms] has unknown country code {code!r}.")
            forms.setdefault(code, []).extend(term_list(value, f"{file}: company_forms.{code}"))
        for key, value in table(data.get("international", {}), f"{file}: [international]").items():
            if key != "bodies":
                raise LexiconError(f"{file}: [international] has unknown key {key!r} (expected bodies).")
            bodies += term_list(value, f"{file}: international.bodies")
        for key, value in table(data.get("negative", {}), f"{file}: [negative]").items():
            if key != "terms":
                raise LexiconError(f"{file}: [negative] has unknown key {key!r} (expected terms).")
            negative += term_list(value, f"{file}: negative.terms")
    version = "+".join(versions) + f"+pycountry-{metadata.version('pycountry')}"
    return Gazetteer(entries, ambiguous, bodies, negative, settings, version, shared, forms,
                     groups)


def explain(gazetteer: Gazetteer, title: str, text: str) -> list[tuple[str, str, str, float]]:
    """Every hit as (code, kind, matched text, position weight): why a country was tagged."""
    rows = []
    for part, is_title in ((title or "", True), (text or "", False)):
        part, hits = gazetteer._matcher.scan(part)
        for hit in hits:
            for code, kind, _term, _n, _d in hit.keys:
                rows.append((code, kind, part[hit.start:hit.end], 3.0 if is_title else 1.0))
    return rows
