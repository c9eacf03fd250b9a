"""A subscriber's items for one ISO week: filters, duplicates folded, reports of one event
grouped (`digest.events`), ranking, sections, "why".

The week's stories are read from the store once (`load_week`) and shared by every subscriber;
`select` is then pure Python, so a thousand digests cost one query.

Filters: an empty list means everything. Areas, domains and places are combined with AND; within
one of them any id matches (OR); countries and regions together form the places filter, so
``countries = JP`` with ``regions = europe`` means "Japan or Europe". A reader's saved query
(words, in `stiwatch search`'s syntax) is one more filter ANDed with those: a story passes when
any of its reports has an item (the original or a copy) that matches it, as the store's
full-text index says (``Store.stories_matching``, the rule `stiwatch serve`'s page of stories
applies too), asked once per distinct query for the week's stories and shared by every reader
who follows it (``WeekData.search``); the "why" line names the words of it the story has where
the query looks for them (``WeekData.words``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
import html
from functools import lru_cache
import re
from typing import Any, Callable, Iterable, Mapping

from classifier.taxonomy import load_taxonomy
from db import FILTER_FACETS, FILTERS, OFFICIAL_ORG_TYPES, QUERY, query_words

from .errors import DigestError
from .events import LEAD_CHARS, Report, event_groups
from .weeks import Week

HEADLINES = 5  # headline stories at most (never more than the section cap)
OTHER = "other"
LATE = "late"  # the section of stories published before the week, stored since the last digest
LATE_TITLE = "Found since your last digest"
LATE_WEEKS = 4  # how far before the week a story found late may have been published
# Sources whose page is the story's own (registry org_type), rather than a report of it: one
# set with `stiwatch search`, which shows a story as the same copy the digest does.
OFFICIAL = OFFICIAL_ORG_TYPES
# Policy scores saturate near 1.0 (0.997 against 0.992 is the classifier's noise, not a
# difference a reader would see): ranked on the raw score, a week's stories came out newest
# first. Banded to tenths, the score still puts a start-up's funding round (0.7) below a
# ministry's programme (1.0), and recency orders only stories alike in coverage and relevance.
SCORE_BAND = 0.1


@lru_cache(maxsize=1)
def _names() -> dict[str, dict[str, str]]:
    taxonomy = load_taxonomy()
    return {
        "area": {label.id: label.name for label in taxonomy.areas},
        "domain": {label.id: label.name for label in taxonomy.domains},
        "region": {label.id: label.name for label in taxonomy.regions},
    }


@lru_cache(maxsize=1)
def _area_order() -> dict[str, int]:
    return {area: n for n, area in enumerate(_names()["area"])}


@lru_cache(maxsize=512)
def country_name(code: str) -> str:
    if code == "EU":
        return "European Union"
    import pycountry

    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


def label_name(facet: str, value: str) -> str:
    """Display name of a tag value (falls back to the id for anything unknown)."""
    if facet == "country":
        return country_name(value)
    if facet == "policy":
        return "STI policy"
    return _names().get(facet, {}).get(value, value)


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_SENTENCE = re.compile(r"(?<=[.!?。])\s+|(?<=。)")


def clean_text(text: str | None) -> str:
    """One line of plain text: control characters and runs of whitespace collapsed."""
    # Whitespace is the only unprintable character most texts hold: once it is collapsed, one
    # check in C replaces the per-character loop (a week's trends read thousands of stories).
    collapsed = _SPACE.sub(" ", text or "")
    if collapsed.isprintable():
        return collapsed.strip()
    return _SPACE.sub(" ", "".join(ch if ch.isprintable() else " " for ch in (text or ""))).strip()


def short_summary(summary: str | None, body: str | None, limit: int = 320) -> str:
    """One or two sentences from the summary (else the body), at most ``limit`` characters."""
    text = clean_text(html.unescape(_TAG.sub(" ", summary or ""))) or clean_text(body)
    if not text:
        return ""
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    # Japanese and Chinese sentences follow each other with no space after 。
    short = (sentences[0] + ("" if sentences[0].endswith("。") else " ") + sentences[1]
             if len(sentences) > 1 else sentences[0] if sentences else text)
    if len(short) > limit:
        cut = short[:limit]
        head = cut.rsplit(" ", 1)[0]
        # Back to a word's end, unless the text has no spaces to speak of (Japanese, Chinese):
        # there the last space may be right after a leading date, and everything else lost.
        short = (head if len(head) >= limit - 40 else cut).rstrip(",;:-、，") + "…"
    return short


def parse_time(value: str | None) -> datetime | None:
    """A stored timestamp as an aware datetime (naive ones are UTC), None when absent or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# A story's title when its item has none. Not text to group by: every untitled report would
# share it, and a week of them (a feed of bare links) came out as one event.
UNTITLED = "(untitled)"


def _parse_time(value: str | None) -> datetime:
    return parse_time(value) or datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Source:
    id: str
    name: str
    url: str
    language: str | None = None  # the registry's: a Japanese name is marked Japanese


@dataclass
class Story:
    """One event as the digest shows it: an original item and every copy of it (near-duplicates
    folded in), and the other reports of the same event (`digest.events`) with theirs."""

    id: int
    url: str
    title: str
    summary: str
    published: datetime
    policy_score: float
    source: Source
    sources: list[Source]  # distinct sources covering the story, ``source`` first
    areas: list[str]  # ids, highest score first
    domains: list[str]
    countries: list[str]
    regions: list[str]
    area_scores: dict[str, float] = field(default_factory=dict)
    # The item's language (ISO 639), marked on its title and summary: a reader's mail client
    # then draws 科技部 with Chinese glyphs, not the Japanese ones it picks in an English page.
    language: str = ""
    official: bool = False  # its link is an official source's page (``OFFICIAL``)
    # Item ids of the reports grouped into the story (its own first): one per write-up, the
    # copies of each not counted. len(ids) is what the trends count of it. A reader's query
    # is matched against each report's original and its copies (``Store.stories_matching``).
    ids: list[int] = field(default_factory=list)
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.ids:
            self.ids = [self.id]

    @property
    def reports(self) -> int:
        """Write-ups of the event grouped into this story (1: its own only)."""
        return len(self.ids)

    @property
    def also(self) -> list[Source]:
        """The other sources that reported it, each linked to its own report."""
        return self.sources[1:]

    @property
    def primary_area(self) -> str:
        """The section a story goes to when the reader has no area filter: its best area."""
        return self.text("primary_area", lambda: self.best_area(self.areas))

    def best_area(self, candidates: list[str]) -> str:
        """The highest-scoring of ``candidates`` (ties: taxonomy order), OTHER when none."""
        order = _area_order()
        return max(candidates, key=lambda a: (self.area_scores.get(a, 0.0),
                                              -order.get(a, 99))) if candidates else OTHER

    def text(self, key: str, make: Any) -> str:
        """A display string computed once per story (shared by every subscriber's digest)."""
        value = self._texts.get(key)
        if value is None:
            value = self._texts[key] = make()
        return value

    @property
    def source_count(self) -> int:
        return len(self.sources)

    def rank_key(self) -> tuple:
        """More distinct sources, then higher relevance (in bands of ``SCORE_BAND``), then
        newer, first."""
        band = round(self.policy_score / SCORE_BAND)
        return (-self.source_count, -band, -self.published.timestamp(), self.id)


@lru_cache(maxsize=4096)
def _query_words(query: str) -> tuple[tuple[str, str], ...]:
    """``query_words``, parsed once for every story of every reader who follows ``query``."""
    return tuple(query_words(query))


class QueryNotSearched(DigestError):
    """A reader's query asked of stories read without a store to search them in."""


# The store's test of a query: (query, the reports' original ids) -> the ids of those it
# matches through any of their items (Store.stories_matching).
StoriesMatching = Callable[[str, list[int]], set[int]]


@dataclass
class WeekData:
    week: Week
    stories: list[Story]  # ranked
    # (facet key, value) -> positions in ``stories`` carrying it: a subscriber's filters become
    # a few set operations instead of a pass over every story.
    index: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    # How readers' queries are matched (``load_week`` gives the store's); None: no store.
    stories_matching: StoriesMatching | None = field(default=None, repr=False, compare=False)
    # query -> positions of the stories it matches, each query asked of the store once
    found: dict[str, set[int]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.index:
            for position, story in enumerate(self.stories):
                for key in FILTERS:  # a Story has one list per filter, of the same ids
                    for value in getattr(story, key):
                        self.index.setdefault((key, value), set()).add(position)

    def search(self, query: str) -> set[int]:
        """Positions of the stories any of whose items ``query`` matches (any report's
        original or copy): the store is asked once per query for all the week's stories,
        whichever readers follow it (a thousand readers share a few queries). BadQuery from
        the store for a query it cannot read."""
        found = self.found.get(query)
        if found is None:
            if self.stories_matching is None:
                raise QueryNotSearched(f"the query {query!r} cannot be matched: these stories "
                                       "were read without a store")
            hits = self.stories_matching(query, [report for story in self.stories
                                                 for report in story.ids])
            found = self.found[query] = {position for position, story
                                         in enumerate(self.stories)
                                         if not hits.isdisjoint(story.ids)}
        return found

    def words(self, query: str, position: int) -> list[str]:
        """The words and phrases of ``query`` (``query_words``) that the story at
        ``position``, which ``query`` matches, has where ``query`` looks for them (in their
        columns, near the other words of their NEAR group): each looked up in the index as a
        query of its own, once a week like any query, and only for a query of several (one
        alone is what matched)."""
        words = _query_words(query)
        if len(words) > 1:
            found = [shown for shown, scoped in words if position in self.search(scoped)]
            # a story ``query`` matches has one of its words where it looks for it
            return found or [query]
        return [shown for shown, _ in words] or [query]

    def matching(self, filters: Mapping[str, list[str]], query: str = "") -> list[int]:
        """Positions (in rank order) of the stories that pass ``filters`` (what `match` says of
        one story, for all of them at once through the index) and ``query`` ("": none)."""
        chosen: set[int] | None = None
        for group in filter_groups(filters):
            found: set[int] = set()
            for key in group:
                found |= self.index.get(key, set())
            chosen = found if chosen is None else chosen & found
        if query:
            found = self.search(query)
            chosen = found if chosen is None else chosen & found
        if chosen is None:
            return list(range(len(self.stories)))
        return sorted(chosen)


def filter_groups(filters: Mapping[str, list[str]]) -> list[list[tuple[str, str]]]:
    """The filter rule, in one place: groups of ``(filter, id)`` that must all match (AND), each
    matched by any of its pairs (OR). Areas, domains, then places (countries and regions together);
    a filter with no ids is no group."""
    groups = [[("areas", v) for v in filters.get("areas") or []],
              [("domains", v) for v in filters.get("domains") or []],
              [("countries", v) for v in filters.get("countries") or []]
              + [("regions", v) for v in filters.get("regions") or []]]
    return [group for group in groups if group]


def _ids(pairs: list[tuple[str, float | None]]) -> list[str]:
    return [value for value, _ in sorted(pairs, key=lambda p: (-(p[1] or 0.0), p[0]))]


def _language_tag(code: str | None) -> str:
    """A stored language code usable as an HTML ``lang`` value, else ''."""
    code = (code or "").strip().lower()
    return code if re.fullmatch(r"[a-z]{2,3}", code) else ""


def load_week(store: Any, week: Week, rows: list[dict[str, Any]] | None = None) -> WeekData:
    """Every policy story of ``week`` with its coverage, ranked. One pass over the store;
    ``rows``: the week's ``policy_items`` (with text), when the caller has read them already."""
    if rows is None:
        rows = store.policy_items(week.start_utc, week.end_utc)
    copies = store.duplicates_of([row["id"] for row in rows])
    stories = []
    for row in rows:
        coverage = [row, *copies.get(row["id"], [])]
        if row.get("source_org_type") not in OFFICIAL:
            # A wire story stored before the ministry's own page: the story is the page of
            # the body that acts (its first copy from an official source), its link and what
            # the digest says of it (its title, summary and date), whichever was crawled first.
            coverage.sort(key=lambda c: c.get("source_org_type") not in OFFICIAL)
        sources = _distinct(Source(copy["source_id"], copy["source_name"] or copy["source_id"],
                                   copy["url"], copy.get("source_language"))
                            for copy in coverage)
        source = sources[0]
        page = coverage[0]
        title = clean_text(page.get("title")) or clean_text(row["title"]) or UNTITLED
        summary = (short_summary(page.get("summary"), page.get("body"))
                   or short_summary(row.get("summary"), row.get("body")))
        if summary.rstrip(".。 ").casefold() == title.rstrip(".。 ").casefold():
            summary = ""  # many feeds repeat the title as the description: say it once
        stories.append(Story(
            id=row["id"],
            url=source.url,
            title=title,
            summary=summary,
            published=parse_time(page.get("published_at")) or _parse_time(row["published_at"]),
            policy_score=float(row["policy_score"] if row["policy_score"] is not None else 1.0),
            source=source,
            sources=sources,
            areas=_ids(row["areas"]),
            domains=_ids(row["domains"]),
            countries=_ids(row["countries"]),
            regions=_ids(row["regions"]),
            area_scores={v: (s if s is not None else 1.0) for v, s in row["areas"]},
            language=_language_tag(page.get("language") or row.get("language")),
            official=page.get("source_org_type") in OFFICIAL,
        ))
    stories = group_events(stories, store.leads([story.id for story in stories], LEAD_CHARS))
    stories.sort(key=Story.rank_key)
    return WeekData(week, stories, stories_matching=store.stories_matching)


def group_events(stories: list[Story], leads: Mapping[int, str]) -> list[Story]:
    """``stories`` with the reports of one event (`digest.events`; ``leads``: each item's body
    start) made one story: the earliest official source's report (else the earliest) gives its
    title, link and date; the other reports' sources follow its own as they came out; it has
    every tag of any of them (a reader filtering by the UK still gets the G7 story that the
    UK's report is part of)."""
    reports = [Report(text=f"{'' if s.title == UNTITLED else s.title}. {s.summary} "
                           f"{clean_text(leads.get(s.id))}",
                      published=s.published, places=frozenset(s.countries + s.regions),
                      source=s.source.id)
               for s in stories]
    grouped = []
    for group in event_groups(reports):
        members = sorted((stories[n] for n in group), key=lambda s: (s.published, s.id))
        # The page of the body that acts leads, as for copies; the rest as they came out.
        lead = next((s for s in members if s.official), members[0])
        members.remove(lead)
        grouped.append(_merge([lead, *members]) if members else lead)
    return grouped


def _distinct(sources: Iterable[Source]) -> list[Source]:
    """``sources`` in their order, each source once (its first page)."""
    first: dict[str, Source] = {}
    for source in sources:
        first.setdefault(source.id, source)
    return list(first.values())


def _merge(members: list[Story]) -> Story:
    lead = members[0]
    sources = _distinct(source for member in members for source in member.sources)
    area_scores: dict[str, float] = {}
    for member in members:
        for area, score in member.area_scores.items():
            area_scores[area] = max(score, area_scores.get(area, 0.0))

    def union(key: str) -> list[str]:
        return list(dict.fromkeys(v for member in members for v in getattr(member, key)))

    return replace(
        lead, sources=sources, policy_score=max(m.policy_score for m in members),
        areas=sorted(area_scores, key=lambda a: (-area_scores[a], a)),
        domains=union("domains"), countries=union("countries"), regions=union("regions"),
        area_scores=area_scores, ids=[m.id for m in members], _texts={})


# -- one subscriber ------------------------------------------------------------------------------

@dataclass
class Entry:
    story: Story
    why: list[str]  # which of the subscriber's filters it matched, as display text


@dataclass
class Section:
    id: str
    title: str
    entries: list[Entry]
    more: int = 0  # matched but left out by the cap


@dataclass
class Digest:
    week: Week
    email: str | None
    name: str | None
    filters: dict[str, list[str]]
    headlines: Section
    sections: list[Section]
    total: int  # stories matched (shown or not), found-late ones included
    reports: int = 0  # the reports grouped into those ``total`` stories (>= total)
    trends: Any = None  # digest.trends.TrendReport, shared by every subscriber of the week
    late_total: int = 0  # of ``total``: published earlier, stored since the last digest
    # the highest item id of the reader's last digest: the late section has the items above it
    late_after: int | None = None
    late_reports: int = 0  # the reports grouped into the ``late_total`` stories
    query: str = ""  # the words the reader follows (`stiwatch search`'s syntax), "" for none

    @property
    def empty(self) -> bool:
        return self.total == 0

    @property
    def filtered(self) -> bool:
        """Whether the reader chose filters (an unfiltered reader's stories "matched" nothing)."""
        return bool(filter_groups(self.filters) or self.query)

    @property
    def shown(self) -> int:
        return len(self.headlines.entries) + sum(len(s.entries) for s in self.sections)

    def filter_text(self) -> str:
        """The subscriber's filters in words, as `filter_groups` applies them ("areas: Research
        security; and places: Japan or North America"; "none" when there are none)."""
        titles = {"areas": "areas", "domains": "domains", "countries": "places",
                  "regions": "places"}
        parts = [f"{titles[group[0][0]]}: "
                 + " or ".join(label_name(FILTER_FACETS[key], v) for key, v in group)
                 for group in filter_groups(self.filters)]
        if self.query:
            parts.append(words_why(self.query))
        return "; and ".join(parts) if parts else "none (you get everything)"


def words_why(words: str) -> str:
    """A reader's query as their filters name it, or the words of it a story has as its "why"
    line names them."""
    return f"words: {words}"


def _filters(subscriber: Mapping[str, Any] | None) -> dict[str, list[str]]:
    subscriber = subscriber or {}
    return {key: list(subscriber.get(key) or []) for key in FILTERS}


def _query(subscriber: Mapping[str, Any] | None) -> str:
    return " ".join(str((subscriber or {}).get(QUERY) or "").split())


def match(story: Story, filters: Mapping[str, list[str]]) -> list[str] | None:
    """Why ``story`` matches ``filters`` (display strings; none without filters), or None when
    it does not."""
    return _why(story, filter_groups(filters))


def _why(story: Story, groups: list[list[tuple[str, str]]]) -> list[str] | None:
    why: list[str] = []
    for group in groups:
        hits = [f"{FILTER_FACETS[key]}: {label_name(FILTER_FACETS[key], v)}"
                for key, v in group if v in getattr(story, key)]
        if not hits:
            return None
        why += hits
    # A reader without filters gets every story for the one reason the digest's top line gives
    # ("Filters: none"): repeating it under each story said nothing new, fifteen times.
    return why


def select(
    data: WeekData,
    subscriber: Mapping[str, Any] | None,
    cap: int,
    trends: Any = None,
    late: WeekData | None = None,
    late_after: int | None = None,
) -> Digest:
    """The digest of ``data.week`` for one subscriber (None: unfiltered).

    ``late``: stories published in the weeks before, stored after some digest was built;
    those above ``late_after`` (the highest item id of the subscriber's last digest) reached
    none of theirs and end the digest in a section of their own. None: no such section.

    The subscriber's query (``query``) is matched in the store, once for all readers who
    follow it (``WeekData.search``); QueryNotSearched when ``data`` has no store."""
    filters = _filters(subscriber)
    query = _query(subscriber)
    cap = max(1, int(cap))
    stories = data.stories
    matched = data.matching(filters, query)  # rank order
    groups = filter_groups(filters)

    def entry(week: WeekData, position: int) -> Entry:
        story = week.stories[position]
        why = _why(story, groups) or []
        if query:  # every story shown matched it: which of its words, after the tags
            why.append(words_why(", ".join(week.words(query, position))))
        return Entry(story, why)

    headline_count = min(HEADLINES, cap)
    headlines = Section("headlines", "Headlines",
                        [entry(data, p) for p in matched[:headline_count]])
    wanted = set(filters["areas"])
    order = _area_order()
    shown: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for position in matched[headline_count:]:
        story = stories[position]
        if not wanted:
            area = story.primary_area
        else:
            area = story.best_area([a for a in story.areas if a in wanted])
        counts[area] = counts.get(area, 0) + 1
        if counts[area] <= cap:
            shown.setdefault(area, []).append(position)
    sections = []
    for area in [*order, *sorted(a for a in counts if a not in order and a != OTHER), OTHER]:
        if area not in counts:
            continue
        title = "Other STI policy" if area == OTHER else label_name("area", area)
        sections.append(Section(area, title, [entry(data, p) for p in shown[area]],
                                max(0, counts[area] - cap)))
    late_total = late_reports = 0
    reports = sum(stories[p].reports for p in matched)
    if late is not None and late_after is not None:
        # A story any of whose reports the reader's last digest was built without.
        found = [p for p in late.matching(filters, query)
                 if max(late.stories[p].ids) > late_after]
        late_total = len(found)
        late_reports = sum(late.stories[p].reports for p in found)
        reports += late_reports
        if found:
            sections.append(Section(LATE, LATE_TITLE,
                                    [entry(late, p) for p in found[:cap]],
                                    max(0, len(found) - cap)))
    subscriber = subscriber or {}
    return Digest(
        week=data.week,
        email=subscriber.get("email"),
        name=subscriber.get("name"),
        filters=filters,
        headlines=headlines,
        sections=sections,
        total=len(matched) + late_total,
        reports=reports,
        trends=trends,
        late_total=late_total,
        late_after=late_after if late is not None else None,
        late_reports=late_reports,
        query=query,
    )
