"""Weekly counts of policy stories per tag and the terms rising fastest: the one implementation
behind the digest's trends section and `stiwatch trends`.

- A story is an original item with ``policy = 1`` (near-duplicates are folded into it, so a
  syndicated article counts once). Weeks are ISO weeks in the configured time zone. The digest
  calls these reports: it shows different reports of one event as one story (digest.events),
  the trends count each, and say so.
- "This week" is compared with the mean of the 4 weeks before it: ``change = this - mean``,
  ``change_pct = 100 * change / mean`` (None when the mean is 0), ``direction`` is ``up``,
  ``down``, ``flat`` or ``new`` (nothing before, something now). Weeks before the store's first
  dated item were not watched and are left out of the mean, not counted as zeros (``history``:
  how many of the 4 are left); with none left, ``direction`` is ``unknown`` and no term rises.
  Each row also names how many sources this week's stories came from and the one that gave
  most (``top_source``): a rise that is one source's burst of releases (``one_source``) is
  marked as such in the digest.
- Rising terms: words and two- and three-word phrases of titles and summaries, counted once
  per story.
  A term qualifies only when at least ``MIN_STORIES`` stories from at least ``MIN_SOURCES``
  distinct sources use it this week, so one article (or one source repeating itself) cannot make
  a trend. Score = ``(this + k) / (expected + k)`` with the pseudo-count ``k = SMOOTHING``,
  which keeps a term going from 0 to 2 below one going from 5 to 20. ``expected`` is the mean
  of the previous 4 weeks scaled by this week's number of stories against theirs (its share
  of the stories held): in a week with twice the stories, a term used twice as often does not
  rise, and one must be used more than that.
  Words are 3+ letters or a two-letter acronym in capitals (AI, EU, G7), never a stop word
  (``STOPWORDS`` and scikit-learn's English list, see `stopwords`). Each topic is shown once
  (`distinct_topics`): "AI safety" and "safety" both rising show "AI safety" when it carries
  most of the rise of "safety", else "safety" alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
import re
from typing import Any, Iterable

from classifier.taxonomy import load_taxonomy

from .select import clean_text, label_name, parse_time
from .weeks import Week, week_of

COMPARE_WEEKS = 4
# A percentage of a smaller 4-week average is noise that reads as news: one report against an
# average of 0.25 printed "+300%", seven against 0.5 "+1300%". Below it the change is given in
# reports only (the average is in its own column): in the digest and in `stiwatch trends`.
PCT_MIN_MEAN = 2.0
MIN_STORIES = 2
MIN_SOURCES = 2
SMOOTHING = 1.0
FACETS = ("area", "domain", "region", "country")
_KEYS = {"area": "areas", "domain": "domains", "region": "regions", "country": "countries"}

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor
not now of off on once only or other our ours out over own same she should so some such than that
the their theirs them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours new news says said say
announces announced announce launches launched launch today week year years first one two three
per via amid across among within without including includes include plus mr ms dr its it's
agreed agree agrees meeting meet met held hold holds set sets make makes made take takes
should must may might also already still since next last latest
towards toward upon onto whether though although however around
""".split()) | frozenset(
    # The function words of the other languages ministries write in (German, French, Spanish,
    # Portuguese, Italian) and Korean's "announced": two ministries' stories in one language
    # share them every week ("die", "mit", "les", "para", "밝혔다" rose). "mit" is left out:
    # lower-cased, it is also MIT.
    """
der die das den dem des ein eine einen einem einer eines und oder aber für von vom zum zur auf
aus bei nach über unter vor durch gegen ohne sich sie wir ist sind war wird werden wurde wurden
hat haben sein seine ihre ihren dass auch noch nur wie als bis zwischen sowie soll sollen kann
können mehr neue neuen neuer neues insgesamt rund heute jahr jahre jahren damit dieser diese
dieses
les des une dans pour par sur avec aux est sont qui que dont ses leur leurs cette ces été être
plus pas mais ont elle ils entre nouveau nouvelle nouvelles nouveaux selon lors ainsi afin
los las del una por para con sus este esta estos estas como más entre sobre ser han nuevo nueva
nuevos nuevas también según durante
dos das uma com seu sua seus suas mais novo novos novas pelo pela pelos pelas também
della delle degli dei per che nel nella nelle sono anche
밝혔다 강조했다 계획이다 예정이다
""".split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]", re.UNICODE)


# scikit-learn's English stop words (a dependency already) add the generic words no hand list
# kept up with ("ten", "five", "several", "whole", "amongst"...). Its four that are subjects of
# STI policy stay terms: a bill is legislation, an innovation system, interest rates, fire
# safety.
_CONTENT_WORDS = frozenset({"bill", "system", "interest", "fire"})


def _english_stop_words() -> frozenset[str]:
    """scikit-learn's ``ENGLISH_STOP_WORDS``, read from the one small module that holds them.

    Its public import (``sklearn.feature_extraction.text``) loads scikit-learn, SciPy and NumPy:
    over a second of every `digest send`, `digest preview` and `run --digest` process, for a
    list of 318 words. The module is loaded on its own from scikit-learn's folder (located, not
    imported); should a scikit-learn release move it, the public import still answers."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")  # finds the package without running it
        folder = Path(spec.origin).parent if spec and spec.origin else None
        words_spec = folder and importlib.util.spec_from_file_location(
            "_stiwatch_sklearn_stop_words", folder / "feature_extraction" / "_stop_words.py")
        if words_spec and words_spec.loader:
            module = importlib.util.module_from_spec(words_spec)
            words_spec.loader.exec_module(module)
            words = module.ENGLISH_STOP_WORDS
            if isinstance(words, frozenset) and words:
                return words
    except (OSError, ImportError, AttributeError, SyntaxError):
        pass
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    return ENGLISH_STOP_WORDS


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The words that are never a term, nor part of one: ``STOPWORDS`` and scikit-learn's
    English stop words but ``_CONTENT_WORDS``."""
    return STOPWORDS | (_english_stop_words() - _CONTENT_WORDS)


def _term_word(word: str, stop: frozenset[str]) -> str | None:
    """``word`` lower-cased when it can be (part of) a term, else None: 3+ letters, or a
    two-letter acronym written in capitals (AI, EU, G7: "advanced AI" is a topic, "advanced"
    alone is not), and not a stop word."""
    lowered = word.lower().replace("’", "'")
    if (len(word) >= 3 or (len(word) == 2 and word.isupper())) and lowered not in stop:
        return lowered
    return None


def terms_of(text: str) -> set[str]:
    """Lower-cased words (see `_term_word`) and adjacent two-word phrases of ``text``."""
    stop = stopwords()
    keep = [_term_word(w, stop) for w in _WORD.findall(text)]
    terms = {w for w in keep if w}
    terms |= {f"{a} {b}" for a, b in zip(keep, keep[1:]) if a and b and a != b}
    # Three-word phrases let "G7 science ministers" stand for both its pairs (distinct_topics).
    terms |= {f"{a} {b} {c}" for a, b, c in zip(keep, keep[1:], keep[2:]) if a and b and c}
    return terms


_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+)\W*")  # ends where a sentence's first word may


def _note_forms(written: dict[str, Counter[str]], terms: set[str], title: str,
                summary: str) -> None:
    """Count in ``written`` how a report writes each of ``terms`` (keyed as `terms_of` keys
    them) where the case says something: an acronym (G7, OSIC) anywhere, another word unless
    it begins a sentence or is in a headline that capitalises its words ("Seoul Hosts AI
    Safety Talks")."""
    stop = stopwords()
    for text, headline in ((title, True), (summary, False)):
        matches = list(_WORD.finditer(text))
        words = [m.group().replace("’", "'") for m in matches]
        title_case = headline and sum(w[0].isupper() for w in words if len(w) > 3) * 2 > sum(
            len(w) > 3 for w in words)
        starts = {m.end() for m in _SENTENCE_START.finditer(text)}
        telling = [sum(c.isupper() or c.isdigit() for c in w) > 1  # an acronym, anywhere
                   or not (title_case or m.start() in starts)
                   for m, w in zip(matches, words)]
        keep = [w if _term_word(w, stop) else None for w in words]
        for n, word in enumerate(keep):
            if not (word and telling[n]):
                continue
            for end in range(n + 1, min(n + 3, len(keep)) + 1):  # the word, 2 and 3 words
                if not (keep[end - 1] and telling[end - 1]):
                    break
                phrase = " ".join(keep[n:end])
                if phrase.lower() in terms:
                    written[phrase.lower()][phrase] += 1


def written_forms(reports: Iterable[tuple[str, str]], terms: Iterable[str]) -> dict[str, str]:
    """How each of ``terms`` is shown, from the (title, summary) of the week's ``reports``: as
    they write it when they give it capitals wherever its case tells (Seoul, OSIC, Horizon
    Europe: see `_note_forms`), else in lower case ("safety", "research security": a
    headline's capitals say nothing)."""
    terms = set(terms)
    firsts = {term.split()[0] for term in terms}
    written: dict[str, Counter[str]] = defaultdict(Counter)
    for title, summary in reports:
        lowered = f"{title} {summary}".lower()
        if any(first in lowered for first in firsts):  # most reports hold none of them
            _note_forms(written, terms, title, summary)
    return {term: term if not written[term] or term in written[term]
            else written[term].most_common(1)[0][0] for term in terms}


@dataclass
class TrendRow:
    value: str
    name: str
    series: list[int]  # one count per week, oldest first (the last is "this week")
    this_week: int
    previous_mean: float
    change: float
    change_pct: int | None
    direction: str
    sources: int = 0  # distinct sources of this week's stories
    top_source: str = ""  # the source of most of them (name), and how many it gave
    top_source_stories: int = 0

    @property
    def telling_pct(self) -> int | None:
        """``change_pct`` where its base is large enough to mean something (``PCT_MIN_MEAN``),
        else None: what a reader is shown. The raw ``change_pct`` stays in JSON and CSV."""
        return self.change_pct if self.previous_mean >= PCT_MIN_MEAN else None

    @property
    def one_source(self) -> bool:
        """A rise that is mostly one source's doing: over half of this week's stories (2 or
        more) from one source, which a burst of press releases or a feed re-dated can make."""
        return (self.direction in ("up", "new") and self.this_week >= 2
                and 2 * self.top_source_stories > self.this_week)


@dataclass
class RisingTerm:
    term: str  # lower case: the key scripts compare
    this_week: int  # stories using it this week
    sources: int  # distinct sources among them
    previous_mean: float
    score: float
    written: str = ""  # as shown to readers (`written_forms`); the term when not set

    def __post_init__(self) -> None:
        self.written = self.written or self.term


@dataclass
class TrendReport:
    week: str
    weeks: list[str]  # labels, oldest first
    totals: list[int]  # policy stories per week
    # All stories a week in the ``history`` weeks before this one (``compare``), as each
    # row's previous_mean is its tag's.
    previous_mean: float = 0.0
    facets: dict[str, list[TrendRow]] = field(default_factory=dict)
    rising: list[RisingTerm] = field(default_factory=list)
    # Comparison weeks the store covers (its first dated item is in or before them), and the
    # week of that item: a store started last week has 1 week to average, not 4 with 3 zeros.
    history: int = COMPARE_WEEKS
    first_week: str | None = None
    as_of: datetime | None = None  # set when the week was not over: its counts stop here

    def rows(self, facet: str) -> list[TrendRow]:
        return self.facets.get(facet, [])

    def watched(self) -> list[bool]:
        """For each of ``weeks``: whether the store watched it (the week of its first story or
        a later one). A week before holds 0 stories because nobody looked, not because it was
        quiet. ISO week labels (2026-W05) sort as the weeks do."""
        return [self.first_week is not None and label >= self.first_week
                for label in self.weeks]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(series: list[int], history: int = COMPARE_WEEKS) -> tuple[float, float, int | None,
                                                                      str]:
    """(mean of the ``history`` weeks before the last (at most 4), change, change %, direction)
    of a series; with no history the direction is ``unknown``."""
    this = series[-1]
    history = max(0, min(history, COMPARE_WEEKS))
    before = series[-1 - history:-1] if history else []
    mean = sum(before) / history if before else 0.0
    change = this - mean
    if not before:
        return 0.0, float(this), None, "unknown"
    if mean == 0:
        direction = "new" if this > 0 else "flat"
        pct = None
    else:
        direction = "up" if change > 0 else "down" if change < 0 else "flat"
        pct = round(100 * change / mean)
    return round(mean, 2), round(change, 2), pct, direction


def window_of(week: Week, weeks: int) -> list[Week]:
    """The weeks a trend report of ``weeks`` weeks ending with ``week`` reads, oldest first
    (at least the comparison weeks and this one)."""
    span = max(max(1, int(weeks)), COMPARE_WEEKS + 1)
    return [*week.previous(span - 1), week]


def in_week(row: dict[str, Any], week: Week) -> bool:
    """True when a ``policy_items`` row was published in ``week`` (in its time zone)."""
    moment = parse_time(row["published_at"])
    return moment is not None and week.start <= moment < week.end


def trends(
    store: Any,
    week: Week,
    *,
    weeks: int = 12,
    facets: Iterable[str] = ("area", "domain", "region"),
    rising: int = 10,
    rows: list[dict[str, Any]] | None = None,
) -> TrendReport:
    """Weekly counts per tag for the ``weeks`` weeks ending with ``week``, and rising terms.
    ``rows``: the store's ``policy_items`` over ``window_of(week, weeks)`` (with text when
    ``rising``), when the caller has read them already."""
    weeks = max(1, int(weeks))
    window = window_of(week, weeks)
    span = len(window)
    index = {w.label: n for n, w in enumerate(window)}
    if rows is None:
        rows = store.policy_items(window[0].start_utc, week.end_utc, with_text=rising > 0)
    facets = list(facets)
    counts = {facet: defaultdict(lambda: [0] * span) for facet in facets}
    totals = [0] * span
    # This week's stories per tag value and source: a rise carried by one source says so.
    by_source = {facet: defaultdict(Counter) for facet in facets}
    story_terms: list[tuple[int, str, set[str]]] = []
    this_week: list[tuple[str, str]] = []  # (title, summary): how rising terms are written
    for row in rows:
        moment = parse_time(row["published_at"])
        if moment is None:
            continue
        n = index.get(week_of(moment, week.tz).label)
        if n is None:
            continue
        totals[n] += 1
        for facet in facets:
            for value in {v for v, _ in row[_KEYS[facet]]}:
                counts[facet][value][n] += 1
                if n == span - 1:
                    by_source[facet][value][row.get("source_name") or row["source_id"]] += 1
        if rising > 0 and n >= span - 1 - COMPARE_WEEKS:
            text = clean_text(f"{row['title'] or ''}. {row.get('summary') or ''}")
            story_terms.append((n, row["source_id"], terms_of(text)))
            if n == span - 1:
                this_week.append((clean_text(row["title"] or ""),
                                  clean_text(row.get("summary") or "")))
    first = parse_time(store.first_published_at()) if store is not None else None
    history = sum(1 for w in window[-1 - COMPARE_WEEKS:-1] if first is not None and w.end > first)
    taxonomy = load_taxonomy()
    report = TrendReport(
        week=week.label,
        weeks=[w.label for w in window[-weeks:]],
        totals=totals[-weeks:],
        previous_mean=compare(totals, history)[0],
        history=history,
        first_week=week_of(first, week.tz).label if first is not None else None,
    )
    for facet in facets:
        if facet == "country":
            values = sorted(counts[facet], key=lambda v: (-counts[facet][v][-1],
                                                          -sum(counts[facet][v]), v))
        else:
            values = list(taxonomy.ids(facet))
            values += sorted(v for v in counts[facet] if v not in values)
        table = []
        for value in values:
            series = counts[facet][value] if value in counts[facet] else [0] * span
            mean, change, pct, direction = compare(series, history)
            sources = by_source[facet].get(value) or Counter()
            top, top_count = (sources.most_common(1) or [("", 0)])[0]
            table.append(TrendRow(value, label_name(facet, value), series[-weeks:], series[-1],
                                  mean, change, pct, direction, len(sources), top, top_count))
        report.facets[facet] = table
    if rising > 0:
        report.rising = rising_terms(story_terms, this=span - 1, limit=rising, history=history)
        shown = written_forms(this_week, (term.term for term in report.rising))
        for term in report.rising:
            term.written = shown[term.term]
    return report


def rising_terms(
    story_terms: list[tuple[int, str, set[str]]], *, this: int, limit: int = 10,
    history: int = COMPARE_WEEKS,
) -> list[RisingTerm]:
    """Terms used more this week (index ``this``) than in the ``history`` weeks before (at most
    4), best first; none without history (every term would be "rising" from nothing)."""
    history = max(0, min(history, COMPARE_WEEKS))
    if not history:
        return []
    now: Counter[str] = Counter()
    before: Counter[str] = Counter()
    sources: dict[str, set[str]] = defaultdict(set)
    stories_now = stories_before = 0
    for n, source_id, terms in story_terms:
        if n == this:
            stories_now += 1
            now.update(terms)
            for term in terms:
                sources[term].add(source_id)
        elif this - history <= n < this:
            stories_before += 1
            before.update(terms)
    # A busy week has more of every word: a term rises when it is in a larger share of the
    # stories than before, so its mean is scaled to this week's number of stories.
    volume = stories_now / (stories_before / history) if stories_before else 1.0
    candidates = []
    for term, count in now.items():
        if count < MIN_STORIES or len(sources[term]) < MIN_SOURCES:
            continue
        mean = before[term] / history
        expected = mean * volume
        if count <= expected:
            continue
        score = (count + SMOOTHING) / (expected + SMOOTHING)
        candidates.append(RisingTerm(term, count, len(sources[term]), round(mean, 2),
                                     round(score, 2)))
    candidates = distinct_topics(candidates)
    candidates.sort(key=lambda t: (-t.score, -t.this_week, -len(t.term.split()), t.term))
    return candidates[:limit]


def _rise(term: RisingTerm) -> float:
    return term.this_week - term.previous_mean


def _runs(words: list[str]) -> list[str]:
    """The shorter terms inside a term of ``words``: its runs of fewer words."""
    n = len(words)
    return [" ".join(words[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i < n]


def distinct_topics(candidates: list[RisingTerm]) -> list[RisingTerm]:
    """One term per topic among rising ``candidates``. Where a term ("safety") and a longer one
    holding it ("safety institutes") both rise, the longer one is shown when it carries most
    of the shorter one's rise (over half of its this-week-minus-mean), and the shorter one is
    then left out; else the shorter one is shown and the longer one, a minority case of it,
    left out. Longer terms are decided first: of several shown ones carrying most of a term,
    that term is left out for them all."""
    by_term = {t.term: t for t in candidates}
    shown: list[RisingTerm] = []
    holders: dict[str, list[RisingTerm]] = defaultdict(list)  # term -> shown terms holding it
    for term in sorted(candidates, key=lambda t: -len(t.term.split())):
        runs = _runs(term.term.split())
        parts = [by_term[run] for run in runs if run in by_term]
        if all(2 * _rise(term) > _rise(part) for part in parts) and not any(
                2 * _rise(holder) > _rise(term) for holder in holders[term.term]):
            shown.append(term)
            for run in runs:
                holders[run].append(term)
    kept = {t.term for t in shown}
    return [t for t in candidates if t.term in kept]

