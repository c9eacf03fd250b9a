"""Selecting a subscriber's week: time zone boundaries, filters and "why", folded duplicates,
ranking and the section cap. Stores are real SQLite files written through db.Store."""

from __future__ import annotations

from datetime import datetime, timezone
import time
from zoneinfo import ZoneInfo

import pytest

from digeststore import G7_MEETING, JAPAN_SECURITY, add, build, story
from digest import events
from digest.errors import DigestError
from digest.select import load_week, select
from digest.weeks import last_complete_week, parse_week, week_or_default

W47 = "2026-W47"  # Mon 16 - Sun 22 Nov 2026; in Asia/Tokyo: 2026-11-15T15:00Z to 2026-11-22T15:00Z


def titles(digest):
    return [e.story.title for e in digest.headlines.entries] + [
        e.story.title for s in digest.sections for e in s.entries]


def test_week_bounds_follow_the_configured_timezone(tmp_path):
    store = build(tmp_path / "s.db", [
        story("https://x.example/a", "2026-11-15T14:59:59Z", title="before Tokyo Monday"),
        story("https://x.example/b", "2026-11-15T15:00:00+00:00", title="Tokyo Monday 00:00"),
        story("https://x.example/c", "2026-11-16T00:00:00+09:00", title="same instant, +09:00"),
        story("https://x.example/d", "2026-11-22T14:59:59+00:00", title="Tokyo Sunday 23:59:59"),
        story("https://x.example/e", "2026-11-22T15:00:00+00:00", title="next Tokyo Monday"),
        story("https://x.example/f", "2026-11-18T10:00:00+00:00", title="not policy", policy=0),
    ])
    tokyo = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    assert sorted(titles(tokyo)) == ["Tokyo Monday 00:00", "Tokyo Sunday 23:59:59",
                                     "same instant, +09:00"]
    utc = select(load_week(store, parse_week(W47, "UTC")), None, 10)
    assert sorted(titles(utc)) == ["Tokyo Sunday 23:59:59", "next Tokyo Monday"]


def test_last_complete_week_and_bad_weeks():
    # Monday 01:00 in Tokyo is still Sunday in UTC: Tokyo's last complete week is already W47.
    now = datetime(2026, 11, 22, 16, 0, tzinfo=timezone.utc)
    assert last_complete_week("Asia/Tokyo", now).label == "2026-W47"
    assert last_complete_week("UTC", now).label == "2026-W46"
    assert parse_week("2026-w1", "UTC").label == "2026-W01"
    # the subject's span of days: the month (and year) written where the week crosses one
    assert parse_week("2020-W53", "UTC").span() == "28 Dec 2020–3 Jan 2021"
    assert parse_week("2026-W49", "UTC").span() == "30 Nov–6 Dec 2026"
    assert parse_week(W47, "UTC").span() == "16–22 Nov 2026"
    for bad in ("2026-W54", "2026-47", "last week"):
        with pytest.raises(DigestError, match="not an ISO week"):
            parse_week(bad, "UTC")
    with pytest.raises(DigestError, match="timezone: unknown time zone 'Mars/Olympus'"):
        parse_week(W47, "Mars/Olympus")



@pytest.fixture
def machine_in_los_angeles(monkeypatch):
    """The process's own time zone (TZ) set to one that is neither UTC nor the setting's."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_week_bounds_ignore_the_machines_own_time_zone(tmp_path, machine_in_los_angeles):
    # A server left in its own zone must select the same week as one in UTC: the bounds are
    # the setting's Monday 00:00 written in UTC, whatever the machine's clock says.
    week = parse_week(W47, "Asia/Tokyo")
    assert (week.start_utc, week.end_utc) == ("2026-11-15 15:00:00", "2026-11-22 15:00:00")
    store = build(tmp_path / "s.db", [
        story("https://x.example/a", "2026-11-15T14:59:59Z", title="before Tokyo Monday"),
        story("https://x.example/b", "2026-11-15T15:00:00Z", title="Tokyo Monday 00:00"),
        story("https://x.example/e", "2026-11-22T15:00:00Z", title="next Tokyo Monday"),
    ])
    assert titles(select(load_week(store, week), None, 10)) == ["Tokyo Monday 00:00"]


def test_the_default_week_is_the_last_complete_one_in_the_setting_zone():
    # what `stiwatch digest ...` and `trends` use without --week: Monday 01:00 in Tokyo
    # (Sunday 16:00 UTC) has just closed Tokyo's 2025-W22, while UTC is still in it
    now = datetime(2025, 6, 1, 16, 0, tzinfo=timezone.utc)
    tokyo = week_or_default(None, "Asia/Tokyo", now)
    assert (tokyo.label, tokyo.tz.key) == ("2025-W22", "Asia/Tokyo")
    assert week_or_default(None, "UTC", now).label == "2025-W21"
    assert week_or_default("2026-W47", "UTC", now).label == "2026-W47"
    # a zone given as a ZoneInfo (as `stiwatch demo` passes it) reads as its name does
    assert last_complete_week(ZoneInfo("Asia/Tokyo"), now).label == "2025-W22"

@pytest.fixture
def filtered_store(tmp_path):
    return build(tmp_path / "s.db", [
        story("https://x.example/jp-sec", "2026-11-17T01:00:00Z", title="Japan research security",
              areas=["research_security"], domains=["semiconductors"], countries=["JP"],
              regions=["east_asia"]),
        story("https://x.example/de-ai", "2026-11-17T02:00:00Z", title="German AI funding",
              areas=["public_research"], domains=["ai"], countries=["DE"], regions=["europe"]),
        story("https://x.example/us-ai", "2026-11-17T03:00:00Z", title="US AI security",
              areas=["research_security"], domains=["ai"], countries=["US"],
              regions=["north_america"]),
        story("https://x.example/none", "2026-11-17T04:00:00Z", title="Untagged policy"),
    ])


@pytest.mark.parametrize("filters, expected", [
    ({}, {"Japan research security", "German AI funding", "US AI security", "Untagged policy"}),
    ({"areas": ["research_security"]}, {"Japan research security", "US AI security"}),
    ({"areas": ["research_security"], "domains": ["ai"]}, {"US AI security"}),
    ({"countries": ["JP"], "regions": ["europe"]}, {"Japan research security", "German AI funding"}),
    ({"domains": ["ai"], "regions": ["north_america"]}, {"US AI security"}),
    ({"areas": ["open_science"]}, set()),
])
def test_filters_combine_facets_with_and(filtered_store, filters, expected):
    data = load_week(filtered_store, parse_week(W47, "Asia/Tokyo"))
    digest = select(data, {"email": "a@b.org", **filters}, 10)
    assert set(titles(digest)) == expected
    assert digest.total == len(expected)
    assert digest.empty == (not expected)


def test_why_names_the_matched_filters(filtered_store):
    data = load_week(filtered_store, parse_week(W47, "Asia/Tokyo"))
    digest = select(data, {"email": "a@b.org", "areas": ["research_security", "governance"],
                           "countries": ["JP", "US"], "regions": ["east_asia"]}, 10)
    why = {e.story.title: e.why for e in digest.headlines.entries}
    assert why["Japan research security"] == [
        "area: Research security", "country: Japan", "region: East Asia"]
    assert why["US AI security"] == ["area: Research security", "country: United States"]
    everything = select(data, None, 10)
    assert everything.filter_text() == "none (you get everything)"
    assert all(e.why == [] for e in everything.headlines.entries)  # said once, not per story


def test_duplicates_fold_into_the_original_and_rank_it_first(tmp_path):
    store = build(tmp_path / "s.db", [
        story("https://x.example/solo", "2026-11-20T01:00:00Z", title="Newest, one source",
              score=0.99),
        story("https://x.example/orig", "2026-11-16T01:00:00Z", title="Big story",
              source="jp-mext", score=0.6),
        story("https://news-a.example/copy", "2026-11-16T05:00:00Z", title="Big story (copy)",
              source="news-a", duplicate_of="https://x.example/orig"),
        story("https://news-b.example/copy", "2026-11-17T05:00:00Z", title="Big story (copy 2)",
              source="news-b", duplicate_of="https://x.example/orig"),
        story("https://news-b.example/copy2", "2026-11-17T06:00:00Z", title="Big story (copy 3)",
              source="news-b", duplicate_of="https://x.example/orig"),
        story("https://x.example/older", "2026-11-19T01:00:00Z", title="Older, one source",
              score=0.99),
        story("https://x.example/low", "2026-11-21T01:00:00Z", title="Low score", score=0.55),
    ])
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    assert titles(digest) == ["Big story", "Newest, one source", "Older, one source",
                              "Low score"]
    big = digest.headlines.entries[0].story
    assert big.source_count == 3  # jp-mext, news-a, news-b: news-b's second copy adds nothing
    assert [s.name for s in big.sources] == ["Japan MEXT", "STI News A", "STI News B"]
    assert digest.total == 4


def test_section_cap_counts_what_was_left_out(tmp_path):
    stories = [story(f"https://x.example/{n}", f"2026-11-18T{n:02d}:00:00Z", title=f"item {n:02d}",
                     areas=["public_research"], score=0.9) for n in range(12)]
    stories += [story("https://x.example/gov", "2026-11-18T13:00:00Z", title="gov item",
                      areas=["governance", "public_research"],
                      area_scores={"governance": 0.9, "public_research": 0.7}, score=0.5)]
    store = build(tmp_path / "s.db", stories)
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), {"email": "a@b.org"}, 3)
    assert [e.story.title for e in digest.headlines.entries] == ["item 11", "item 10", "item 09"]
    sections = {s.id: s for s in digest.sections}
    assert list(sections) == ["governance", "public_research"]
    assert [e.story.title for e in sections["public_research"].entries] == [
        "item 08", "item 07", "item 06"]
    assert sections["public_research"].more == 6
    assert [e.story.title for e in sections["governance"].entries] == ["gov item"]
    assert sections["governance"].more == 0
    assert digest.total == 13 and digest.shown == 7


def test_a_story_a_news_source_stored_first_is_the_official_page(tmp_path):
    """The wire's copy was crawled before the ministry's own page: the story's link, first
    source, title, summary and date are the ministry's page's (the digest showed the wire's
    title, summary and date over the ministry's link); a story an official source stored
    first keeps its own."""
    store = build(tmp_path / "s.db", [
        story("https://news-a.example/wire", "2026-11-16T01:00:00Z", source="news-a",
              title="Japan sets quantum budget", summary="A wire's lead, written its way."),
        story("https://x.example/mext", "2026-11-16T00:30:00Z", source="jp-mext",
              title="Quantum budget announced", summary="The ministry's own words.",
              duplicate_of="https://news-a.example/wire"),
        story("https://news-b.example/copy", "2026-11-16T05:00:00Z", source="news-b",
              title="Quantum budget (copy)", duplicate_of="https://news-a.example/wire"),
        story("https://x.example/nsf", "2026-11-17T01:00:00Z", source="us-nsf",
              title="NSF opens AI call"),
        story("https://news-b.example/nsf", "2026-11-17T02:00:00Z", source="news-b",
              title="NSF opens AI call (copy)", duplicate_of="https://x.example/nsf"),
    ])
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    by_title = {e.story.title: e.story for e in digest.headlines.entries}
    quantum = by_title["Quantum budget announced"]
    assert quantum.url == "https://x.example/mext" and quantum.source.name == "Japan MEXT"
    assert quantum.summary == "The ministry's own words."
    assert quantum.published.isoformat() == "2026-11-16T00:30:00+00:00"  # not the wire's 01:00
    assert [s.name for s in quantum.sources] == ["Japan MEXT", "STI News A", "STI News B"]
    nsf = by_title["NSF opens AI call"]
    assert nsf.url == "https://x.example/nsf"
    assert [s.name for s in nsf.sources] == ["US NSF", "STI News B"]


def test_reports_of_one_event_are_one_story_and_other_news_of_its_country_is_not(tmp_path):
    store = build(tmp_path / "s.db", G7_MEETING + JAPAN_SECURITY)
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    assert titles(digest) == [
        # the official source's report leads, the others follow in the order they came out
        "Minister joins G7 counterparts in endorsing research security principles",
        "Japan tightens export controls on research equipment",
        "Japan publishes research security guidelines for universities"]
    g7 = digest.headlines.entries[0].story
    assert g7.url == "https://x.example/g7"
    assert [(s.name, s.url) for s in g7.also] == [
        ("STI News A", "https://news-a.example/g7"), ("UKRI", "https://uk-ukri.example/g7")]
    assert g7.reports == 3 and g7.source_count == 3
    # every report's places and areas: a reader filtering by the UK gets the story
    assert set(g7.countries) == {"JP", "CA", "GB"} and g7.areas[0] == "international"
    uk = select(load_week(store, parse_week(W47, "Asia/Tokyo")), {"countries": ["GB"]}, 10)
    assert titles(uk) == [g7.title] and uk.headlines.entries[0].why == [
        "country: United Kingdom"]
    assert (digest.total, digest.reports) == (3, 5)


def test_it_is_the_similarity_threshold_that_keeps_two_stories_of_one_country_apart(
        tmp_path, monkeypatch):
    """The other side of ``EVENT_SIMILARITY``: the two Japanese stories pass every other test
    (different sources, a day apart, the same country and area) and share words (Japan,
    universities, research), so only the threshold keeps them apart: their similarity is about
    0.18, and with a threshold below it they would be taken for one event."""
    store = build(tmp_path / "s.db", JAPAN_SECURITY)
    week = parse_week(W47, "Asia/Tokyo")
    assert len(load_week(store, week).stories) == 2
    monkeypatch.setattr(events, "EVENT_SIMILARITY", 0.15)
    [one] = load_week(store, week).stories
    assert one.reports == 2


def test_reports_of_one_event_too_far_apart_or_from_one_source_stay_apart(tmp_path):
    week = parse_week(W47, "Asia/Tokyo")
    text = dict(title="G7 science ministers adopt research security principles in Canada",
                areas=["research_security"], countries=["CA"])
    store = build(tmp_path / "a.db", [
        story("https://x.example/a", "2026-11-16T01:00:00Z", **text),
        story("https://x.example/b", "2026-11-17T01:00:00Z", **text),  # jp-mext again
        story("https://news-a.example/c", "2026-11-21T02:00:00Z", source="news-a", **text),
    ])
    assert [s.reports for s in load_week(store, week).stories] == [1, 1, 1]


def test_alike_reports_of_two_countries_stay_apart_and_one_without_a_place_joins(tmp_path):
    """Two countries' ministries announcing "a national AI strategy" the same week are two
    stories however alike the words; a report that names no country is not kept apart by
    that: it joins the report it is like."""
    week = parse_week(W47, "Asia/Tokyo")
    text = dict(title="Ministry launches national artificial intelligence strategy for "
                      "research and universities", areas=["governance"])
    store = build(tmp_path / "a.db", [
        story("https://de-bmbf.example/ai", "2026-11-17T01:00:00Z", source="de-bmbf",
              countries=["DE"], **text),
        story("https://us-nsf.example/ai", "2026-11-17T02:00:00Z", source="us-nsf",
              countries=["US"], **text),
    ])
    assert [s.reports for s in load_week(store, week).stories] == [1, 1]

    store = build(tmp_path / "b.db", [
        story("https://de-bmbf.example/ai", "2026-11-17T01:00:00Z", source="de-bmbf",
              countries=["DE"], **text),
        story("https://news-a.example/ai", "2026-11-17T02:00:00Z", source="news-a", **text),
    ])
    assert [s.reports for s in load_week(store, week).stories] == [2]


def test_headlines_rank_by_sources_then_relevance_then_recency(tmp_path):
    """Policy scores saturate near 1.0: 0.999 is no more relevant than 0.991, so a Friday story
    at 0.991 comes before a Monday one at 0.999; a start-up's funding round at 0.72 still comes
    after both, however new; a story two sources reported before all."""
    store = build(tmp_path / "s.db", [
        story("https://x.example/mon", "2026-11-16T01:00:00Z", title="Monday, 0.999",
              score=0.999),
        story("https://x.example/fri", "2026-11-20T01:00:00Z", title="Friday, 0.991",
              score=0.991),
        story("https://x.example/sat", "2026-11-21T01:00:00Z", title="Saturday, 0.72",
              score=0.72),
        story("https://x.example/two", "2026-11-16T00:00:00Z", title="Tuesday, two sources",
              score=0.9),
        story("https://news-a.example/two", "2026-11-16T01:00:00Z", source="news-a",
              title="Tuesday, two sources (wire)", duplicate_of="https://x.example/two"),
    ])
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    assert titles(digest) == ["Tuesday, two sources", "Friday, 0.991", "Monday, 0.999",
                              "Saturday, 0.72"]


def test_untitled_reports_without_text_are_not_taken_for_one_event(tmp_path):
    """A feed of bare links gives items with no title and no text: each is its own story.
    They shared only the placeholder "(untitled)", and 14 such reports from 7 sources came out
    as one story with 13 "Also reported by"."""
    sources = ["jp-mext", "us-nsf", "eu-rtd", "uk-ukri", "de-bmbf", "news-a", "news-b"]
    store = build(tmp_path / "s.db", [
        story(f"https://{s}.example/{k}", f"2026-11-1{6 + k}T01:00:00Z", source=s, title=" ")
        for k in range(2) for s in sources])
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 20)
    assert (digest.total, digest.reports) == (14, 14)
    assert set(titles(digest)) == {"(untitled)"}


def test_an_event_hundreds_of_sources_reported_is_one_story(tmp_path):
    """Over 500 reports in one connected group were left ungrouped: an event 600 sources
    reported in their own words came out as 600 stories with one headline."""
    count = 600
    store = build(tmp_path / "s.db", [])
    store.sync_sources([{"id": f"wire-{k}", "name": f"Wire {k}", "kind": "feed",
                         "url": f"https://wire-{k}.example/feed", "country": None,
                         "language": "en", "org_type": "news"} for k in range(count)])
    words = ["ministers", "agreed", "funding", "quantum", "universities", "partnership",
             "statement", "leaders", "welcomed", "billion"]
    add(store, [story(f"https://wire-{k}.example/g7", f"2026-11-{16 + k % 3}T0{k % 9}:00:00Z",
                      source=f"wire-{k}", countries=["CA"],
                      title="G7 science ministers adopt research security principles in "
                            f"Canada, {words[k % 10]} {words[(k // 10) % 10]}")
                for k in range(count)])
    digest = select(load_week(store, parse_week(W47, "Asia/Tokyo")), None, 10)
    assert (digest.total, digest.reports) == (1, count)


@pytest.fixture
def horizon_store(tmp_path):
    """The week's news of Horizon Europe: in a title, in a copy's words alone, in another
    source's report of one event, in the weeks before, and stories that do not name it."""
    return build(tmp_path / "s.db", [
        story("https://eu-rtd.example/call", "2026-11-17T01:00:00Z", source="eu-rtd",
              title="Horizon Europe opens its 2027 calls",
              summary="The Commission opened the first calls of the programme's 2027 work plan.",
              areas=["public_research"], countries=["EU"], regions=["europe"]),
        story("https://uk-ukri.example/assoc", "2026-11-18T01:00:00Z", source="uk-ukri",
              title="UK researchers eligible for the 2027 calls",
              summary="British researchers may apply under the association agreement.",
              areas=["international"], countries=["GB"], regions=["europe"]),
        # the copy names the programme, its original does not
        story("https://news-a.example/assoc", "2026-11-18T05:00:00Z", source="news-a",
              title="UK researchers eligible for the 2027 calls",
              summary="Association to Horizon Europe lets British researchers apply.",
              duplicate_of="https://uk-ukri.example/assoc"),
        story("https://de-bmbf.example/horizon-budget", "2026-11-19T01:00:00Z", source="de-bmbf",
              title="Germany asks for a larger research budget",
              summary="The ministry wants Horizon's successor to grow; Europe must invest.",
              areas=["public_research"], countries=["DE"], regions=["europe"]),
        story("https://jp-mext.example/quantum", "2026-11-19T02:00:00Z", source="jp-mext",
              title="Japan funds quantum research", summary="A new quantum programme.",
              areas=["public_research"], countries=["JP"], regions=["east_asia"]),
        story("https://jp-mext.example/horizon-jp", "2026-11-20T02:00:00Z", source="jp-mext",
              title="Japan to associate to Horizon Europe",
              summary="Japan begins talks on association to Horizon Europe, the EU programme.",
              areas=["international"], countries=["JP"], regions=["east_asia"]),
    ])


HORIZON = '"Horizon Europe"'


def test_a_query_keeps_the_stories_any_of_whose_items_name_it_and_says_so(horizon_store):
    data = load_week(horizon_store, parse_week(W47, "Asia/Tokyo"))
    digest = select(data, {"email": "a@b.org", "query": HORIZON}, 10)
    # not "Horizon's successor ... Europe": the phrase, as `stiwatch search` reads it
    assert set(titles(digest)) == {"Horizon Europe opens its 2027 calls",
                                   "UK researchers eligible for the 2027 calls",
                                   "Japan to associate to Horizon Europe"}
    assert digest.total == 3
    assert {tuple(e.why) for e in digest.headlines.entries} == {('words: "Horizon Europe"',)}
    assert digest.filtered and digest.filter_text() == 'words: "Horizon Europe"'
    # ANDed with the other filters, the "why" line naming both
    europe = select(data, {"email": "a@b.org", "query": HORIZON, "regions": ["europe"]}, 10)
    assert titles(europe) == ["UK researchers eligible for the 2027 calls",
                              "Horizon Europe opens its 2027 calls"]
    assert [e.why for e in europe.headlines.entries] == [
        ["region: Europe", 'words: "Horizon Europe"']] * 2
    assert europe.filter_text() == 'places: Europe; and words: "Horizon Europe"'
    assert select(data, {"query": HORIZON, "countries": ["DE"]}, 10).empty
    # of a query of several words or phrases, the why line names those the story has
    either = select(data, {"query": f"{HORIZON} OR quantum* -Germany"}, 10)
    assert {e.story.title: e.why for e in either.headlines.entries} == {
        "Horizon Europe opens its 2027 calls": ['words: "Horizon Europe"'],
        "UK researchers eligible for the 2027 calls": ['words: "Horizon Europe"'],
        "Japan funds quantum research": ["words: quantum*"],
        "Japan to associate to Horizon Europe": ['words: "Horizon Europe"']}
    assert either.filter_text() == 'words: "Horizon Europe" OR quantum* -Germany'
    both = select(data, {"query": "Japan programme"}, 10)
    assert {e.story.title: e.why for e in both.headlines.entries} == {
        "Japan funds quantum research": ["words: Japan, programme"],
        "Japan to associate to Horizon Europe": ["words: Japan, programme"]}
    # the same store as search's: search finds the same three stories
    found = {row["title"] for row in horizon_store.search(HORIZON)}
    assert found == set(titles(digest))


def test_the_why_line_names_a_word_only_where_the_query_looks_for_it(tmp_path):
    """The "why" line looked for each word of a reader's query anywhere in the items: for
    `title:quantum OR fusion` a story picked for fusion "had quantum" because its summary
    named it, and for `NEAR(research security, 3) OR visas` a story picked for visas "had
    research, security" written far apart. A word is named where the query looks for it: in
    its column, and with the words of its NEAR group near it."""
    store = build(tmp_path / "s.db", [
        story("https://jp-mext.example/q", "2026-11-17T01:00:00Z",
              title="Japan funds quantum centres", summary="Ten new centres.", areas=["public_research"], countries=["JP"]),
        story("https://de-bmbf.example/f", "2026-11-17T02:00:00Z", source="de-bmbf",
              title="Germany funds fusion research",
              summary="The programme also names quantum sensors.", areas=["public_research"],
              countries=["DE"]),
        story("https://us-nsf.example/v", "2026-11-17T03:00:00Z", source="us-nsf",
              title="Student visas eased", summary="Research funders welcomed the change, "
              "which the ministry said raised no concern for national security.",
              areas=["research_security"], countries=["US"]),
        story("https://us-nsf.example/rs", "2026-11-17T04:00:00Z", source="us-nsf",
              title="NSF research security rules", summary="New rules for grantees.",
              areas=["research_security"], countries=["US"]),
        # its copy has the word in its title, the original in its summary only
        story("https://uk-ukri.example/c", "2026-11-18T01:00:00Z", source="uk-ukri",
              title="UKRI opens a new call", summary="A call on quantum networks.",
              areas=["public_research"], countries=["GB"]),
        story("https://news-a.example/c", "2026-11-18T02:00:00Z", source="news-a",
              title="UKRI quantum call opens", summary="A new call.",
              duplicate_of="https://uk-ukri.example/c"),
    ])
    data = load_week(store, parse_week(W47, "Asia/Tokyo"))

    def why(query):
        digest = select(data, {"query": query}, 10)
        return {e.story.title: e.why for e in digest.headlines.entries}

    assert why("title:quantum OR fusion") == {
        "Japan funds quantum centres": ["words: quantum"],
        "Germany funds fusion research": ["words: fusion"],
        "UKRI opens a new call": ["words: quantum"]}
    assert why("NEAR(research security, 3) OR visas") == {
        "Student visas eased": ["words: visas"],
        "NSF research security rules": ["words: research, security"]}
    # a word in its column, or in any of the places the query looks for it
    assert why("title:(quantum OR visas) OR summary:quantum OR NEAR(fusion quantum)") == {
        "Japan funds quantum centres": ["words: quantum"],
        "Germany funds fusion research": ["words: quantum"],
        "Student visas eased": ["words: visas"],
        "UKRI opens a new call": ["words: quantum"]}
    assert why("title:research fusion OR title:security") == {
        "Germany funds fusion research": ["words: research, fusion"],
        "NSF research security rules": ["words: research, security"]}


def test_readers_who_share_a_query_have_it_searched_once_for_the_week(horizon_store):
    data = load_week(horizon_store, parse_week(W47, "Asia/Tokyo"))
    searched = []
    horizon_store.conn.set_trace_callback(
        lambda sql: searched.append(sql) if "MATCH" in sql else None)
    try:
        readers = [select(data, {"email": f"r{n}@b.org", "query": HORIZON,
                                 "countries": countries}, 10)
                   for n, countries in enumerate([[], ["JP"], ["GB", "EU"], []])]
        other = select(data, {"email": "q@b.org", "query": "quantum"}, 10)
    finally:
        horizon_store.conn.set_trace_callback(None)
    assert [len(titles(d)) for d in readers] == [3, 1, 2, 3]
    assert titles(readers[1]) == ["Japan to associate to Horizon Europe"]
    assert titles(other) == ["Japan funds quantum research"]
    assert len(searched) == 2  # one statement per distinct query (items_fts; no CJK items)


def test_a_cjk_query_matches_as_search_does(tmp_path):
    store = build(tmp_path / "s.db", [
        story("https://jp-mext.example/q", "2026-11-17T01:00:00Z", title="量子技術イノベーション戦略を改定",
              summary="文部科学省は量子技術の研究開発を強化する。", language="ja",
              areas=["public_research"], countries=["JP"]),
        story("https://jp-mext.example/ai", "2026-11-17T02:00:00Z", title="AI戦略会議を開催",
              summary="生成AIの研究開発について議論した。", language="ja",
              areas=["public_research"], countries=["JP"]),
        story("https://us-nsf.example/q", "2026-11-17T03:00:00Z", source="us-nsf",
              title="NSF funds quantum technology", areas=["public_research"], countries=["US"]),
    ])
    data = load_week(store, parse_week(W47, "Asia/Tokyo"))
    assert titles(select(data, {"query": "量子技術"}, 10)) == ["量子技術イノベーション戦略を改定"]
    # 研究 sits inside 研究開発 in both Japanese stories: found where it stands, as search does
    assert set(titles(select(data, {"query": "研究"}, 10))) == {"量子技術イノベーション戦略を改定",
                                                              "AI戦略会議を開催"}
    assert set(titles(select(data, {"query": "quantum OR 量子技術"}, 10))) == {
        "量子技術イノベーション戦略を改定", "NSF funds quantum technology"}
