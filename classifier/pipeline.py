"""The whole classifier: trained model (when there is one) + lexicon rules + gazetteer -> tags.

- ``policy`` and ``area``: the trained model (classifier/model.py) when the model folder holds
  one; otherwise, and for areas the model has no training data for (research_security), the
  lexicon rules (classifier/rules.py). Areas are written only for items judged policy-relevant.
- ``domain``: the technology-domain lexicon (classifier/domains.py).
- ``country``: the gazetteer (classifier/places.py), falling back to the source's home country
  (method ``source``) when the text names none; with a trained country model in the model folder
  (classifier/countries.py), the model's country (method ``model``) when neither gives one,
  partners named in a policy text are narrowed to the one it is about, and an ambiguous name
  ("NRF") takes the model's reading; ``region`` is derived
  from the countries, plus ``international`` when a multilateral body acts; the store then
  keeps the regions in step with the countries analysts added or removed.
- The trained models learnt from English text only: an item in another language (as the
  crawler detected it) gets its relevance and areas from the lexicon rules, which also carry
  Chinese, Japanese, Korean, German, French, Spanish and Italian cues, and its countries from the
  gazetteer alone.
- An item in a language other than English from a source that is itself an STI ministry or
  funding agency is policy-relevant by its source (method ``source``) when nothing in it says
  so: such a body's news is its policy, and the rules' cues in other languages are few.
- Near-duplicates (``duplicate_of`` set) inherit their original's tags instead of being
  classified again, so syndicated copies never disagree with the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
import gc
import math
import os
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import pycountry

from db.codes import COUNTRY_ALIASES

from .artifacts import COUNTRY_STEM, POLICY_STEM, has_saved
from .components import Lexicons, load_lexicons
from .domains import DomainTagger
from .lexicon import share_scan
from .places import Gazetteer, derive_regions, region_map
from .report import ClassifyReport
from .rules import RULES_CERTAIN, RuleTagger

if TYPE_CHECKING:
    from .countries import CountryModel
    from .model import PolicyModel

POLICY_THRESHOLD = 0.5
POLICY_RULE_WEIGHT = 0.3  # share of the cue rules in the relevance score when a model is used
MODEL_READS = frozenset({"en"})  # the language the trained models learnt from
# ISO 639 codes that name no language: "zxx" (no linguistic content: the crawler's language
# identifier says so of emoji, base64 blobs and tables of numbers) and "und" (undetermined).
# Such an item is read as one whose language is not known, not as one in another language.
NO_LANGUAGE = frozenset({"zxx", "und"})
MODEL_READS_OR_UNKNOWN = MODEL_READS | {None}
POLICY_SOURCES = frozenset({"ministry", "funding_agency"})  # their own news is STI policy
SOURCE_POLICY_SCORE = 0.6  # relevance of an unread item from such a source: above the line
BATCH = 500
YOUNG_COLLECTION = 100_000  # allocations between collections of new objects (see classify_store)
# The classifier reads at most this many characters of an item's title, summary and body. Far
# beyond any article (2,000 words are ~12,000 characters; the model reads 3,000): it bounds the
# memory and time of the rare page that is a whole report, a data dump or a log (the crawler
# keeps up to 10 MB: read whole, a batch of them held ~16 MB each and took 0.2-0.4 s each).
MAX_TEXT_CHARS = 200_000
# What classify_store reads of each stored item: the texts cut to MAX_TEXT_CHARS by SQLite, so
# a long body never reaches Python whole.
_ITEM_COLUMNS = ", ".join(
    ["items.id AS id", "source_id", "duplicate_of", "language", "classify_marks"]
    # a text of at most MAX_TEXT_CHARS bytes is read as it is: substr() counts characters,
    # a pass over every text (+8 µs an item); the length of its bytes is known at once
    + [f"CASE WHEN length(CAST({c} AS BLOB)) <= {MAX_TEXT_CHARS} THEN {c}"
       f" ELSE substr({c}, 1, {MAX_TEXT_CHARS}) END AS {c}" for c in ("title", "summary", "body")])
_INTERNATIONAL = (("international", 1.0, "gazetteer"),)  # a multilateral body acts


def model_reads(item: "ItemText") -> bool:
    """True when the trained models can read the item: English, or a language not known.

    A language tag is read by its primary subtag in any case ("en-GB", "EN", "en_US" and "eng"
    are English): stores written by older versions, and pages' own lang attributes, hold such
    forms. A code that names no language ("zxx", "und", "xx") is a language not known."""
    language = item.language
    if not language or language in MODEL_READS:
        return True
    return _language_code(language) in MODEL_READS_OR_UNKNOWN


@lru_cache(maxsize=1024)
def _language_code(language: str) -> str | None:
    """The ISO 639-1 code of a stored language tag ("en-GB", "eng" -> "en"); None for a code
    that names no language ("zxx", "und") or none ISO 639 knows (a template's lang="xx")."""
    primary = language.replace("_", "-").split("-")[0].lower()
    if primary in NO_LANGUAGE:
        return None
    found = (pycountry.languages.get(alpha_2=primary) if len(primary) == 2
             else pycountry.languages.get(alpha_3=primary) if len(primary) == 3 else None)
    if found is None:
        return None
    # an ISO 639-3 language without a 2-letter code ("fil") is still a language, not English
    return getattr(found, "alpha_2", primary)


@dataclass
class ItemText:
    title: str
    text: str
    source_country: str | None = None
    language: str | None = None  # ISO 639-1 code, when known
    source_kind: str | None = None  # the source's org_type (ministry, news, ...), when known


def item_text(item: Mapping[str, Any], source_country: str | None = None,
              source_kind: str | None = None) -> ItemText:
    """A stored item's title and text (summary and body, without repeating a body's lead),
    language and its source's country and kind."""
    title = (item.get("title") or "")[:MAX_TEXT_CHARS]
    summary = (item.get("summary") or "")[:MAX_TEXT_CHARS].strip()
    body = (item.get("body") or "")[:MAX_TEXT_CHARS].strip()
    if summary and body and body[:200].startswith(summary[:200]):
        summary = ""
    text = "\n\n".join(part for part in (summary, body) if part)[:MAX_TEXT_CHARS]
    return ItemText(title, text, source_country, item.get("language"), source_kind)


@dataclass
class Result:
    """What the classifier says about one item; ``tags()`` turns it into store rows."""

    policy: float
    policy_method: str
    areas: list[tuple[str, float, str]] = field(default_factory=list)  # (id, score, method)
    domains: list[tuple[str, float]] = field(default_factory=list)
    countries: list[tuple[str, float, str]] = field(default_factory=list)
    regions: list[tuple[str, float, str]] = field(default_factory=list)  # (id, score, method)
    policy_threshold: float = POLICY_THRESHOLD
    # the model's genre job: reads like news (True), like a programme description (False);
    # None without a model that has one
    news_like: bool | None = None
    # countries read only from an ambiguous name's default reading, with its other readings
    # (Gazetteer.alternatives): the country model may choose among them
    alternatives: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def is_policy(self) -> bool:
        return self.policy >= self.policy_threshold

    def tags(self, model_version: str, verdict: str | None = None) -> list[dict[str, Any]]:
        """Store rows; ``verdict`` is an analyst's policy verdict ("1" or "0") on the item,
        which decides instead of the score whether its areas are written (the store keeps the
        verdict itself over this policy row)."""
        def tag(facet: str, value: str, score: float, method: str) -> dict[str, Any]:
            return {"facet": facet, "value": value, "score": round(float(score), 4),
                    "method": method, "model_version": model_version}

        rows = [tag("policy", "1" if self.is_policy else "0", self.policy, self.policy_method)]
        if self.is_policy if verdict is None else verdict == "1":
            rows += [tag("area", a, s, m) for a, s, m in self.areas]
        rows += [tag("domain", d, s, "rules") for d, s in self.domains]
        rows += [tag("country", c, s, m) for c, s, m in self.countries]
        rows += [tag("region", r, s, m) for r, s, m in self.regions]
        return rows


class Classifier:
    """Combines the components; cheap to call on thousands of items once loaded."""

    def __init__(self, model: PolicyModel | None, rules: RuleTagger, domains: DomainTagger,
                 gazetteer: Gazetteer, model_dir: str | os.PathLike[str] | None = None,
                 country_model: CountryModel | None = None,
                 rules_override: float = RULES_CERTAIN, model_set_aside: bool = False) -> None:
        self.model = model
        # a trained model is in model_dir but was not loaded (use_model=False): describe()
        # must not tell the user to train one
        self.model_set_aside = model_set_aside
        # on news-like text, a rule area scoring at least this is tagged whatever the model
        # says (above 1: never)
        self.rules_override = rules_override
        self.country_model = country_model  # classifier/countries.py: the gazetteer's 2nd signal
        self.rules = rules
        self.domains = domains
        self.gazetteer = gazetteer
        self.model_dir = Path(model_dir) if model_dir is not None else None
        # the areas the model was trained on, once rather than for every item in _one()
        self._modelled = frozenset(model.area_labels) if model is not None else frozenset()
        # the three lexicons scan each text once, together (same hits as three scans). The
        # scan copies the matchers' readings, so another classifier built on the same
        # components (the cached gazetteer) is safe: classify() points them back at its own.
        self._scan = share_scan([rules._matcher, domains._matcher, gazetteer._matcher])

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None, *,
             use_model: bool = True, lexicons: Lexicons | None = None,
             rules_override: float = RULES_CERTAIN) -> "Classifier":
        """The model from ``model_dir`` when it holds one, with ``lexicons`` (see
        classifier.components.load_lexicons, which loads the analyst's lexicon files; None:
        the shipped lexicons only). ``rules_override``: see the `area_rules_override` setting.

        Raises ModelMismatch when the saved model was made for other library/taxonomy versions,
        ModelError when it cannot be read.
        """
        model = country_model = None
        # The models' modules import scikit-learn (1.4 s of every rules-only run otherwise):
        # only when the folder holds a model.
        if use_model and model_dir is not None and has_saved(model_dir, POLICY_STEM):
            from .model import load_model
            model = load_model(model_dir)
        if use_model and model_dir is not None and has_saved(model_dir, COUNTRY_STEM):
            from .countries import load_country_model
            country_model = load_country_model(model_dir)
        set_aside = not use_model and model_dir is not None and any(
            has_saved(model_dir, stem) for stem in (POLICY_STEM, COUNTRY_STEM))
        lexicons = lexicons or load_lexicons()
        return cls(model, lexicons.rules, lexicons.domains, lexicons.gazetteer, model_dir,
                   country_model, rules_override, model_set_aside=set_aside)

    # -- identity ------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """Stored in every tag's model_version: which model and rule sets wrote it."""
        head = self.model.version if self.model is not None else "rules"
        # without a model the rules decide the areas anyway: the override changes nothing
        override = (f"+override-{self.rules_override:g}" if self.model is not None
                    and self.rules_override != RULES_CERTAIN else "")
        return (f"{head}{override}+areas-{self.rules.version}+domains-{self.domains.version}"
                f"+places-{self.gazetteer.version}")

    def describe(self) -> str:
        """One line for the user: which model (or none) is used."""
        if self.model is None and self.model_set_aside:
            return (f"the trained model in {self.model_dir} is set aside (--no-model): policy "
                    "relevance and areas come from the lexicon rules")
        if self.model is None:
            where = f" in {self.model_dir}" if self.model_dir is not None else ""
            return (f"no trained model{where}: policy relevance and areas come from the "
                    "lexicon rules (train one with `stiwatch train --stip FILE`)")
        meta = self.model.metadata
        counts = meta.get("training_counts", {})
        analyst = (f", {counts['analyst']} of them analyst-corrected items"
                   if counts.get("analyst") else "")
        return (f"model {self.model.version} (trained {meta.get('trained_at', '?')}, "
                f"{counts.get('samples', '?')} examples{analyst}) from {self.model_dir}")

    # -- classifying ---------------------------------------------------------------------------
    def classify(self, items: Sequence[ItemText]) -> list[Result]:
        """One Result per item, in order (the model runs once over the whole batch)."""
        # All lexicon taggers of an item run in turn: they share one scan of each text
        # (lexicon.share_scan), and relevance() reuses areas()'s hits.
        self._scan.activate()
        self.gazetteer.new_batch()
        lexical = [self._lexical(i) for i in items]
        predictions: list[Any] = [None] * len(items)
        read = [n for n, item in enumerate(items) if model_reads(item)]
        if self.model is not None and read:
            for n, prediction in zip(read, self.model.predict(
                    [self.model.text(items[n].title, items[n].text) for n in read],
                    [dict(lexical[n][0]) for n in read])):
                predictions[n] = prediction
        results = [self._one(item, prediction, *found)
                   for item, prediction, found in zip(items, predictions, lexical)]
        if self.country_model is not None and read:  # fills in / narrows countries, one batch
            self.country_model.apply([items[n] for n in read], [results[n] for n in read],
                                     self.gazetteer)
        return results

    def _lexical(self, item: ItemText) -> tuple:
        """(rule areas, (rule relevance, anchored?, rule relevance without the company-news
        rule), domains, countries with method,
        international?, alternatives of the countries)."""
        title, text = item.title, item.text
        # One call: the gazetteer itself decides when the source's home country applies
        # (method "source"), before a lone passing mention in a short text would count.
        countries = self.gazetteer.tag_with_method(title, text, item.source_country)
        named = [code for code, _s, method in countries if method == "gazetteer"]
        return (self.rules.areas(title, text), self.rules.relevance_scores(title, text),
                list(self.domains.tag(title, text)), countries,
                self.gazetteer.international(title, text),
                self.gazetteer.alternatives(title, text, named)
                if named and self.country_model is not None else {})

    def _one(self, item: ItemText, prediction: Any, rule_areas: list[tuple[str, float]],
             relevance: tuple[float, bool, float], domains: list[tuple[str, float]],
             countries: list[tuple[str, float, str]], international: bool,
             alternatives: dict[str, frozenset[str]]) -> Result:
        rule_relevance, anchored, blend_relevance = relevance
        if prediction is not None and self.model.policy is not None:
            # The model learnt relevance from programme descriptions vs science news; the cue
            # rules were written for news. A 70/30 blend beat either alone on the demo's
            # labelled news when chosen (precision 0.972 vs 0.964, recall 1.0) at a cost of
            # 0.004 recall on STIP programme descriptions. The blend reads the rules as they
            # were when it was chosen, without the company-news rule (rules.py), which was
            # written for the rules-only verdict: the model path keeps the results it was
            # measured with.
            rule_relevance = blend_relevance
            policy = ((1 - POLICY_RULE_WEIGHT) * prediction.policy
                      + POLICY_RULE_WEIGHT * rule_relevance)
            if prediction.news_like and not anchored:
                # News with no science or technology anchor is not STI policy (a tax reform,
                # an election), whatever the model, which never saw general news, makes of
                # it. Programme descriptions keep the model's word: 240 of the 5,339 STIP
                # initiatives name no anchor ("Development aid").
                policy = min(policy, rule_relevance)
            policy_method = "model"
        else:
            policy, policy_method = rule_relevance, "rules"
        if (policy < POLICY_THRESHOLD and item.source_kind in POLICY_SOURCES
                and not model_reads(item)):
            policy, policy_method = SOURCE_POLICY_SCORE, "source"
        if prediction is not None:
            modelled = self._modelled
            areas = [(a, s, "model") for a, s in
                     sorted(prediction.areas.items(), key=lambda pair: -pair[1])]
            chosen = {a for a, _s, _m in areas}
            # Areas the model has no data for, and areas the cue rules are all but sure of in
            # news (phrasing the STIP programme descriptions lack: "cabinet approves", ...);
            # on programme-like text the model, which learnt that genre, decides.
            override = self.rules_override if prediction.news_like is not False else math.inf
            areas += [(a, s, "rules") for a, s in rule_areas
                      if a not in chosen and (a not in modelled or s >= override)]
        else:
            areas = [(a, s, "rules") for a, s in rule_areas]
        return Result(
            policy=policy,
            policy_method=policy_method,
            areas=areas,
            domains=domains,
            countries=countries,
            regions=derive_regions(countries, _INTERNATIONAL if international else ()),
            news_like=prediction.news_like if prediction is not None else None,
            alternatives=alternatives,
        )


# -- the store -----------------------------------------------------------------------------


def classify_store(
    store: Any,
    classifier: Classifier,
    *,
    everything: bool = False,
    progress: Callable[..., None] | None = None,
) -> ClassifyReport:
    """Tag the store's unclassified items (or all of them) and save the tags.

    Originals are classified first, in batches; near-duplicates then copy their original's
    tags. Analyst tags are kept by ``store.save_classifications``, which also leaves out an
    item marked for classification again after it was read (an analyst's correction made
    meanwhile: ``report.changed``), so the next run tags it. ``progress`` is called as
    ``progress(n, policy=k)`` after each batch (stiwatch.progress.Progress.advance fits).
    """
    # The classifier's tables (automata, vocabularies, models: millions of objects that live
    # as long as it does) would be walked by every full garbage collection the run's
    # allocations trigger, about 4% of the time on 2,000-word items: keep them, and whatever
    # else exists before the run, out of the collector's sight until it ends (then it is
    # collectable again: nothing leaks).
    gc.freeze()
    # The scans allocate a few thousand short-lived tuples per item, which set off a young-
    # generation collection every 700: they find nothing to free (the tuples die by reference
    # counting). Rarer ones for the run, as many as a batch's allocations.
    threshold = gc.get_threshold()
    gc.set_threshold(young_threshold(threshold[0]), *threshold[1:])
    try:
        return _classify_store(store, classifier, everything, progress)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def young_threshold(threshold: int) -> int:
    """The collector's first threshold during classify_store: at least YOUNG_COLLECTION, and
    0 (automatic collection off, as someone set it) left as it is."""
    return max(threshold, YOUNG_COLLECTION) if threshold else 0


def _source_facts(source: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """A source's home country and kind (org_type), for item_text."""
    if not source:
        return None, None
    country = source.get("country")
    # "UK" stays in stores synced before the registry checked codes (and in the rows of
    # sources since removed from it): GB, not a code that silently matches no country.
    if country:
        country = COUNTRY_ALIASES.get(country.strip().upper(), country)
    return country, source.get("org_type")


def _classify_store(store: Any, classifier: Classifier, everything: bool,
                    progress: Callable[..., None] | None) -> ClassifyReport:
    started = time.monotonic()
    version = classifier.version
    report = ClassifyReport(model_version=version,
                            model=classifier.model.version if classifier.model else None,
                            description=classifier.describe())
    sources = {s["id"]: s for s in store.list_sources()}
    # Analysts' countries are only known to the store: it keeps the regions in step with them.
    region_of = region_map()
    report.items = len(store.unclassified_ids(everything=everything))

    def save(batch: list[dict[str, Any]]) -> None:
        texts = [item_text(item, *_source_facts(sources.get(item["source_id"])))
                 for item in batch]
        results = classifier.classify(texts)
        # An analyst's policy verdict, not the score, says whether an item gets areas: the
        # item an analyst called policy would otherwise reach no area's readers.
        verdicts = store.analyst_policy([item["id"] for item in batch])
        final = [verdicts.get(item["id"], "1" if result.is_policy else "0")
                 for item, result in zip(batch, results)]
        written = set(store.save_classifications(
            [(item["id"], result.tags(version, verdicts.get(item["id"])))
             for item, result in zip(batch, results)], version,
            region_of=region_of, marks={item["id"]: item["classify_marks"] for item in batch},
        ))
        policy = sum(verdict == "1" for item, verdict in zip(batch, final)
                     if item["id"] in written)
        report.classified += len(written)
        report.corrected += len(store.corrected_items(written))
        report.changed += len(batch) - len(written)
        report.policy += policy
        if progress is not None:
            progress(len(batch), policy=policy)

    batch: list[dict[str, Any]] = []
    for item in store.iter_to_classify("duplicate_of IS NULL", everything=everything,
                                       columns=_ITEM_COLUMNS):
        batch.append(item)
        if len(batch) >= BATCH:
            save(batch)
            batch = []
    if batch:
        save(batch)

    # Duplicates: the original's tags (all of them, analyst corrections included), or a fresh
    # classification when the original has none.
    duplicates: list[dict[str, Any]] = []

    def flush() -> None:
        copies: list[tuple[int, list[dict[str, Any]]]] = []
        orphans: list[dict[str, Any]] = []
        by_original = store.tags_of_items({item["duplicate_of"] for item in duplicates})
        # a copy whose original an analyst corrects after this read is marked again: its copy
        # of the old tags must not clear that mark
        marks = {item["id"]: item["classify_marks"] for item in duplicates}
        for item in duplicates:
            original = by_original.get(item["duplicate_of"])
            if original:
                copies.append((item["id"], [
                    {"facet": t["facet"], "value": t["value"], "score": t["score"],
                     "method": t["method"]} for t in original
                ]))
            else:
                orphans.append(item)
        duplicates.clear()
        if copies:
            # the original's regions already follow its countries: copied as they are
            written = set(store.save_classifications(copies, version, marks=marks))
            report.changed += len(copies) - len(written)
            own = store.analyst_policy(written)
            policy = sum(own.get(item_id, next((t["value"] for t in tags
                                                if t["facet"] == "policy"), "0")) == "1"
                         for item_id, tags in copies if item_id in written)
            report.inherited += len(written)
            report.corrected += len(store.corrected_items(written))
            report.policy += policy
            if progress is not None:
                progress(len(copies), policy=policy)
        if orphans:
            save(orphans)

    for item in store.iter_to_classify("duplicate_of IS NOT NULL", everything=everything,
                                       columns=_ITEM_COLUMNS):
        duplicates.append(item)
        if len(duplicates) >= BATCH:
            flush()
    if duplicates:
        flush()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def classify_texts(classifier: Classifier, records: Iterable[Mapping[str, Any]]) -> list[Result]:
    """Results for evaluation records ({"title", "text"}, optionally "language"), in batches."""
    out: list[Result] = []
    batch: list[ItemText] = []
    for record in records:
        batch.append(ItemText((record.get("title") or "")[:MAX_TEXT_CHARS],
                              (record.get("text") or "")[:MAX_TEXT_CHARS],
                              language=record.get("language")))
        if len(batch) >= BATCH:
            out += classifier.classify(batch)
            batch = []
    if batch:
        out += classifier.classify(batch)
    return out
