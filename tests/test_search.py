"""`stiwatch search`: FTS5 ranking, snippets, filters, folded duplicates, clear errors."""

from __future__ import annotations

import csv
from datetime import timezone
import io
import json

import pytest

import analysts_store
import db


@pytest.fixture
def ids(db_path):
    return analysts_store.build(db_path)


def search_json(stiwatch, *args):
    result = stiwatch("search", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ranks_title_matches_first_with_highlighted_snippets(stiwatch, ids):
    rows = search_json(stiwatch, "quantum")
    assert [r["id"] for r in rows][0] == ids["jp-quantum"]  # "quantum" in title and summary
    assert {r["id"] for r in rows} == {ids["jp-quantum"], ids["jp-semis"], ids["us-discovery"]}
    top = rows[0]
    assert "**quantum**" in top["snippet"].lower()
    for key in ("id", "url", "title", "source_id", "published_at", "snippet", "areas",
                "domains", "countries"):
        assert key in top
    assert top["areas"] == ["governance"] and top["domains"] == ["quantum"]
    assert top["countries"] == ["JP"] and top["source_id"] == "mext-news"
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]


def test_words_found_apart_get_a_tip_to_quote_them(stiwatch, db_path):
    """bm25 ranks short texts holding each word high, wherever they stand: the demo's
    `research security` showed "National AI computing centre to secure 10,000 GPUs for
    researchers" second. Ranking the phrase first costs too much (docs/benchmarks.md), so the
    table says how to ask for it when a row shown has the words apart."""
    titles = {
        "apart": "Centre to secure GPUs for researchers",
        "together": "Ministry publishes research security guidelines for funded projects",
    }
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES)
        store.save_items([
            {"url": f"https://mext.example/{key}", "source_id": "mext-news", "title": title,
             "summary": "", "body": "", "published_at": analysts_store.ago(1),
             "language": "en"} for key, title in titles.items()])
    tip = ("Tip: the words may stand apart in an item; search '\"research security\"' (in "
           "quotes) for items with them side by side.")
    result = stiwatch("search", "research", "security")
    assert result.exit_code == 0 and result.output.splitlines()[-2:] == ["2 items.", tip]
    for query in ('"research security"', "research", "ministry publishes",  # found together
                  "research OR security", "research* security"):
        result = stiwatch("search", query)
        assert result.exit_code == 0 and "Tip:" not in result.output, query
    assert "Tip:" not in stiwatch("search", "research", "security", "--format", "json").output
    assert "Tip:" not in stiwatch("--quiet", "search", "research", "security").output


def test_fts_syntax_phrases_boolean_prefix_and_stemming(stiwatch, ids):
    assert [r["id"] for r in search_json(stiwatch, '"research security" AND china')] == [
        ids["us-security"]]
    assert {r["id"] for r in search_json(stiwatch, "quantum NOT semiconductor")} == {
        ids["jp-quantum"], ids["us-discovery"]}
    assert {r["id"] for r in search_json(stiwatch, "semicond*")} == {ids["jp-semis"]}
    # Porter stemming: "funds" finds "funding" and "funded".
    assert ids["eu-open"] in {r["id"] for r in search_json(stiwatch, "funds")}
    # Web-search habits: -word excludes, a hyphenated word is a phrase (not an FTS5 error).
    assert {r["id"] for r in search_json(stiwatch, "quantum -semiconductor")} == {
        ids["jp-quantum"], ids["us-discovery"]}
    assert [r["id"] for r in search_json(stiwatch, "research-security")] == [
        ids["us-security"], ids["jp-quantum"]]


def test_duplicates_are_folded_into_their_original(stiwatch, ids):
    rows = search_json(stiwatch, '"open science"')
    assert [r["id"] for r in rows] == [ids["eu-open"]]
    assert rows[0]["copies"] == 1


# Near-duplicates (STORIES in tests/analysts_store.py: an original, two copies with words of
# their own, another story; every source official): every item is matched and filtered on its
# own; each story is shown once, as its original when the original matches and meets the
# filters itself, otherwise as its first-stored copy that does (as the digest takes them: the
# original, then the copies as stored); `copies` is the story's copies either way, and
# count_matches counts what is shown.
@pytest.mark.parametrize("query, filters, expected", [
    ("quantum", {}, {("original", 2)}),
    ("windfall", {}, {("copy-nsf", 2)}),  # a word only a copy has
    ("sharply", {}, {("copy-nsf", 2)}),
    ("parliament OR windfall", {}, {("copy-nsf", 2)}),  # two copies match: the first stored
    ("quantum -windfall", {}, {("original", 2)}),
    ("quantum", {"sources": ["nsf-news"]}, {("copy-nsf", 2)}),  # a filter only a copy meets
    ("quantum", {"sources": ["mext-news", "nsf-news"]}, {("original", 2)}),
    ("quantum", {"until": "2026-11-09"}, {("copy-ec", 2)}),
    ("quantum", {"since": "2026-11-11"}, {("copy-nsf", 2)}),
    ("quantum", {"since": "2026-11-13"}, set()),
    ("budget", {}, {("original", 2), ("fusion", 0)}),
    ("fusion OR windfall", {}, {("fusion", 0), ("copy-nsf", 2)}),
    ("budget", {"sources": ["nsf-news", "mext-news"]}, {("original", 2), ("fusion", 0)}),
])
def test_near_duplicates_show_each_story_once(db_path, query, filters, expected):
    import db

    ids = analysts_store.build_stories(db_path)
    keys = {item_id: key for key, item_id in ids.items()}
    with db.open_store(db_path, readonly=True) as store:
        rows = store.search(query, limit=50, **filters)
        assert {(keys[row["id"]], row["copies"]) for row in rows} == expected
        for row in rows:
            assert row["duplicate_of"] == (None if keys[row["id"]] in ("original", "fusion")
                                           else ids["original"])
        assert store.count_matches(query, **filters) == len(rows)


def test_a_story_found_by_its_copy_shows_the_copy(stiwatch, db_path):
    ids = analysts_store.build_stories(db_path)
    result = stiwatch("search", "windfall")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:3] == [str(ids["copy-nsf"]), "2026-11-12", "nsf-news"]
    assert lines[1].split()[-1] == "+2"
    assert "**windfall**" in lines[2] and lines[-1] == "1 item."
    # a story with one URL says 0, not a blank cell
    lines = stiwatch("search", "fusion").output.splitlines()
    assert lines[0].split()[-1] == "COPIES" and lines[1].split()[:1] == [str(ids["fusion"])]
    assert lines[1].split()[-1] == "0", lines
    [row] = search_json(stiwatch, "quantum", "--source", "nsf-news")
    assert (row["id"], row["duplicate_of"], row["copies"]) == (ids["copy-nsf"], ids["original"], 2)


def test_the_original_is_shown_even_when_older_than_the_ranking_window(db_path, monkeypatch):
    import db
    import db.search

    ids = analysts_store.build_stories(db_path)
    monkeypatch.setattr(db.search, "RANK_WINDOW", 1)  # only the newest match is ranked
    with db.open_store(db_path, readonly=True) as store:
        [row] = store.search("quantum", limit=1)
    assert (row["id"], row["copies"]) == (ids["original"], 2)


def test_filters_by_tags_source_and_dates(stiwatch, ids):
    assert {r["id"] for r in search_json(stiwatch, "quantum", "--country", "jp")} == {
        ids["jp-quantum"], ids["jp-semis"]}
    assert [r["id"] for r in search_json(stiwatch, "quantum", "--area", "governance")] == [
        ids["jp-quantum"]]
    assert [r["id"] for r in search_json(stiwatch, "quantum", "--domain", "semiconductors")] == [
        ids["jp-semis"]]
    # ids in any case, as country codes are (`--domain AI` was refused: "did you mean 'ai'?")
    assert [r["id"] for r in search_json(stiwatch, "quantum", "--domain", "Semiconductors",
                                         "--area", "BUSINESS_innovation")] == [
        r["id"] for r in search_json(stiwatch, "quantum", "--domain", "semiconductors",
                                     "--area", "business_innovation")]
    assert {r["id"] for r in search_json(stiwatch, "research OR quantum", "--region",
                                         "north_america")} == {ids["us-security"],
                                                               ids["us-discovery"]}
    assert [r["id"] for r in search_json(stiwatch, "quantum", "--source", "nsf-news")] == [
        ids["us-discovery"]]
    since = analysts_store.ago(15)[:10]
    until = analysts_store.ago(5)[:10]
    assert {r["id"] for r in search_json(stiwatch, "quantum", "--since", since)} == {
        ids["jp-quantum"], ids["us-discovery"]}
    assert {r["id"] for r in search_json(stiwatch, "quantum", "--until", until)} == {
        ids["jp-semis"], ids["us-discovery"]}
    assert [r["id"] for r in search_json(stiwatch, "quantum", "--policy", "--since", since)] == [
        ids["jp-quantum"]]
    assert len(search_json(stiwatch, "quantum OR research OR open", "--limit", "2")) == 2


def test_table_and_csv_output(stiwatch, ids):
    result = stiwatch("search", "quantum strategy")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "DATE", "SOURCE", "TITLE", "COPIES"]
    assert "Japan launches national quantum strategy" in lines[1]
    assert "**quantum**" in result.output.lower() and "https://mext-news.example/jp-quantum" in \
        result.output
    assert "1 item." in result.output
    result = stiwatch("search", "quantum", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0]["title"] == "Japan launches national quantum strategy"
    assert rows[0]["countries"] == "JP"


@pytest.mark.parametrize("limit, footer", [
    ("2", "2 items (the first 2: raise --limit for more)."),
    ("3", "3 items."),  # exactly as many as match: no more to raise the limit for
    ("4", "3 items."),
])
def test_footer_hints_at_more_only_when_more_match(stiwatch, ids, limit, footer):
    result = stiwatch("search", "quantum", "--limit", limit)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == footer


def test_no_match_says_so(stiwatch, ids):
    result = stiwatch("search", "fusion", "--country", "JP")
    assert result.exit_code == 0
    assert "No items match 'fusion' with these filters." in result.output
    assert search_json(stiwatch, "fusion") == []


# One query per row, through the query translation (db.search.fts_query) and the store:
# punctuation separates words as in the items, the documented syntax keeps its meaning.
QUANTUM = {"jp-quantum", "jp-semis", "us-discovery"}
RESEARCH_SECURITY = {"us-security", "jp-quantum"}  # the phrase, in either of them


@pytest.mark.parametrize("query, expected", [
    ("research,security", RESEARCH_SECURITY),
    ("research;security", RESEARCH_SECURITY),
    ("research_security", RESEARCH_SECURITY),
    ("research-security", RESEARCH_SECURITY),
    ("#quantum", QUANTUM),
    ("quantum;", QUANTUM),
    ("[semiconductor]", {"jp-semis"}),
    ("{galaxy}", {"us-discovery"}),
    ("(quantum)", QUANTUM),
    ("'quantum'", QUANTUM),
    ("quantum, strategy", {"jp-quantum"}),
    ("Horizon Europe: funding", {"eu-open"}),
    ("open-science", {"eu-open"}),
    ("quantum AND -computing", {"jp-semis", "us-discovery"}),
    ("quantum -computing", {"jp-semis", "us-discovery"}),
    ("-computing quantum", {"jp-semis", "us-discovery"}),
    ("quantum -computing -telescope", {"jp-semis"}),
    ("quantum NOT computing", {"jp-semis", "us-discovery"}),
    ('quantum -"quantum computing"', {"jp-semis", "us-discovery"}),
    ("(quantum OR galaxy) -telescope", {"jp-quantum", "jp-semis"}),
    ('"research security" AND china', {"us-security"}),
    ('"research, security"', RESEARCH_SECURITY),
    ("semicond*", {"jp-semis"}),
    ("#semicond*", {"jp-semis"}),
    ("title:quantum", {"jp-quantum"}),
    # `column:-word` excludes, like `-column:word` (the `-` is not punctuation to drop).
    ("quantum title:-quantum", {"jp-semis", "us-discovery"}),
    ("quantum -title:quantum", {"jp-semis", "us-discovery"}),
    ("research body:-quantum", {"us-security", "eu-open", "eu-ai"}),
    ('quantum title:-"quantum strategy"', {"jp-semis", "us-discovery"}),
    # A -word excludes from the whole query (web-search style), not only from its neighbour;
    # inside parentheses, from the whole of them. An explicit NOT keeps FTS5's meaning.
    ("security OR galaxy -china", {"jp-quantum", "us-discovery"}),
    ("galaxy -china OR security", {"jp-quantum", "us-discovery"}),
    ("security OR galaxy NOT china", {"us-security", "jp-quantum", "us-discovery"}),
    ("(galaxy -telescope) OR quantum", QUANTUM),
    ("galaxy -telescope OR quantum", {"jp-quantum", "jp-semis"}),
    # A -word beside an explicit NOT: both exclude (the -word is not dropped from the And).
    ("quantum NOT semiconductor -telescope", {"jp-quantum"}),
    ("summary:(quantum OR galaxies)", {"jp-quantum"}),
    ("quantum OR galaxy", QUANTUM),
    ("quantum and", {"jp-quantum"}),  # lower-case "and" is a word, as in FTS5
    ("NEAR(quantum strategy, 3)", {"jp-quantum"}),
])
def test_query_translation(db_path, ids, query, expected):
    import db

    with db.open_store(db_path) as store:
        found = {key for key, item_id in ids.items()
                 for row in store.search(query, limit=50) if row["id"] == item_id}
    assert found == expected, db.search.fts_query(query)


@pytest.mark.parametrize("query", ['quantum AND (', '"unfinished phrase', "foo:bar", "AND",
                                   "   ", "-china", "quantum OR -computing", "()", "quantum)",
                                   "#", "quantum NOT -computing", "title:",
                                   "title:-quantum", "quantum -title:-computing"])
def test_bad_queries_get_one_clear_line_and_exit_2(stiwatch, ids, query):
    result = stiwatch("search", "--", query)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "search" in lines[0] or "query" in lines[0]
    # The message quotes what the user typed, never an operator they did not type.
    if query.strip():
        assert repr(query) in lines[0]
    assert "NOT" not in lines[0].split(". Use words")[0] or "NOT" in query
    assert "fts5" not in lines[0] and "syntax error near" not in lines[0]


@pytest.mark.parametrize("args, expected", [
    (["quantum", "-computing"], {"jp-semis", "us-discovery"}),
    (["-computing", "quantum"], {"jp-semis", "us-discovery"}),
    (["quantum -computing"], {"jp-semis", "us-discovery"}),
    (["--", "-computing", "quantum"], {"jp-semis", "us-discovery"}),
    (["-semiconductor", "quantum", "--country", "JP"], {"jp-quantum"}),
    (["--country", "JP", "quantum", "-semiconductor"], {"jp-quantum"}),
    (["--country=JP", "-semiconductor", "quantum"], {"jp-quantum"}),
    (['"research security"', "china"], {"us-security"}),
])
def test_minus_word_on_the_command_line_is_part_of_the_query(stiwatch, ids, args, expected):
    result = stiwatch("search", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["id"] for r in rows} == {ids[key] for key in expected}


def test_a_lone_minus_word_says_what_to_add(stiwatch, ids):
    result = stiwatch("search", "-china")
    assert result.exit_code == 2 and "No such option" not in result.output
    assert "'-china' only excludes" in result.output
    result = stiwatch("search", "quantum", "--bogus")
    assert result.exit_code == 2 and "No such option '--bogus'" in result.output


@pytest.mark.parametrize("args, message", [
    (["--area", "astrology"], "unknown area 'astrology'"),
    (["--country", "XX"], "unknown country 'XX'"),
    # A newcomer's usual slips: the option is named, and what was meant.
    (["--country", "UK"], "Error: --country: unknown country 'UK' (United Kingdom is 'GB')\n"),
    (["--country", "Japan"], "Error: --country: unknown country 'JAPAN' (Japan is 'JP')\n"),
    (["--area", "open-science"],
     "Error: --area: unknown area 'open-science' (did you mean 'open_science'?)\n"),
    (["--source", "nope"], "no source with id 'nope'"),
    (["--since", "last week"], "is not a date"),
    # a relative form the option does not take (months): the error names those it does take
    (["--since", "3m"], "Error: Invalid value for '--since': '3m' is not a date (expected "
     "YYYY-MM-DD, or 7d, 2w: that many days or weeks before now)\n"),
    (["--until", "2026-13-01"], "Invalid value for '--until': '2026-13-01' is not a date"),
    (["--since", "2026-02-30"], "Invalid value for '--since': '2026-02-30' is not a date"),
    (["--since", "2026-01-01T25:00"], "is not a date"),
    # --help offers date-times too: a wrong one is not told to be a plain date
    (["--until", "2026-11-23T25:00"], "Error: Invalid value for '--until': '2026-11-23T25:00' "
     "is not a date-time (expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM with an optional offset "
     "such as +09:00 or Z)\n"),
    # dates swapped, an analyst's slip: no day is between them, said rather than "no items"
    (["--since", "2026-11-20", "--until", "2026-11-10"],
     "Error: --since 2026-11-20 is after --until 2026-11-10: no item can be in between\n"),
    (["--since", "2026-11-20T10:00Z", "--until", "2026-11-20T09:59Z"],
     "Error: --since 2026-11-20T10:00Z is after --until 2026-11-20T09:59Z"),
])
def test_bad_filters_are_named(stiwatch, ids, args, message):
    result = stiwatch("search", "quantum", *args)
    assert result.exit_code == 2 and message in result.output


# --since and --until against the DATED items (tests/analysts_store.py), as instants: stored
# times are UTC ("...Z"); a bound with an offset is that instant, one without is read in the
# `timezone` setting; until includes the instant it names (a date: the whole day).
BEFORE_0617 = {"late-17", "tokyo-18", "midnight-23"}
UTC = {"STIWATCH_TIMEZONE": "UTC"}


@pytest.mark.parametrize("env, args, expected", [
    ({}, ["--since", "2026-11-23T09:00+09:00"], {"midnight-23", "at-0617", "after-0617"}),
    ({}, ["--since", "2026-11-23T06:17:00.5Z"], {"after-0617"}),
    ({}, ["--until", "2026-11-23T06:17+00:00"], BEFORE_0617 | {"at-0617"}),
    ({}, ["--until", "2026-11-23T15:17:00+09:00"], BEFORE_0617 | {"at-0617"}),
    ({}, ["--until", "2026-11-23T06:16:59Z"], BEFORE_0617),
    (UTC, ["--until", "2026-11-23T06:17"], BEFORE_0617 | {"at-0617"}),
    (UTC, ["--since", "2026-11-23 06:17", "--until", "2026-11-23T06:17"], {"at-0617"}),
    (UTC, ["--since", "2026-11-17", "--until", "2026-11-17"], {"late-17", "tokyo-18"}),
    # until a DATE ends before the next day's first instant: midnight-23 is on the 23rd.
    (UTC, ["--until", "2026-11-22"], {"late-17", "tokyo-18"}),
    # A DATE, and a date-time without an offset, are read in the `timezone` setting
    # (Asia/Tokyo by default), as the digest and trends count days.
    ({}, ["--since", "2026-11-18", "--until", "2026-11-18"], {"tokyo-18"}),
    ({}, ["--since", "2026-11-17", "--until", "2026-11-17"], {"late-17"}),
    ({}, ["--until", "2026-11-23T15:17"], BEFORE_0617 | {"at-0617"}),
    ({}, ["--until", "2026-11-23T15:16:59"], BEFORE_0617),
    ({"STIWATCH_TIMEZONE": "America/New_York"}, ["--since", "2026-11-23"],
     {"at-0617", "after-0617"}),
])
def test_date_filters_compare_instants(stiwatch, db_path, env, args, expected):
    ids = analysts_store.build_dated(db_path)
    result = stiwatch("search", "budget", "--format", "json", *args, env=env)
    assert result.exit_code == 0, result.output
    assert {row["id"] for row in json.loads(result.output)} == {ids[key] for key in expected}


def test_table_dates_are_days_in_the_timezone_setting(stiwatch, db_path):
    """2026-11-17T16:00Z is 18 Nov in Tokyo (the default), as in the digest; JSON and CSV give
    the stored UTC time unchanged."""
    analysts_store.build_dated(db_path)
    for env, day in (({}, "2026-11-18"), (UTC, "2026-11-17")):
        result = stiwatch("search", "tokyo", env=env)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1].split()[1] == day
    [row] = search_json(stiwatch, "tokyo")
    assert row["published_at"] == "2026-11-17T16:00:00Z"
    result = stiwatch("search", "tokyo", "--format", "csv")
    assert next(csv.DictReader(io.StringIO(result.output)))["published_at"] == \
        "2026-11-17T16:00:00Z"


def test_an_unknown_timezone_setting_is_named(stiwatch, db_path):
    analysts_store.build_dated(db_path)
    result = stiwatch("search", "budget", env={"STIWATCH_TIMEZONE": "Mars/Olympus"})
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and "timezone" in line.lower() and "'Mars/Olympus'" in line


def test_missing_database_is_a_clear_error(stiwatch, db_path):
    result = stiwatch("search", "quantum")
    assert result.exit_code == 2 and "no such database" in result.output
    assert not db_path.exists()


def test_ranking_window_never_hides_filtered_matches(db_path, ids, monkeypatch):
    """With more matches than the window, filters still see every match (exact fallback)."""
    import db
    import db.search

    monkeypatch.setattr(db.search, "RANK_WINDOW", 1)
    with db.open_store(db_path) as store:
        assert {r["id"] for r in store.search("quantum", countries=["JP"])} == {
            ids["jp-quantum"], ids["jp-semis"]}
        assert len(store.search("quantum", limit=1)) == 1
        assert [r["id"] for r in store.search("quantum", exact=True)][0] == ids["jp-quantum"]


def test_search_and_status_do_not_wait_for_a_writer(stiwatch, db_path, ids):
    """A crawl holding the write lock does not block readers (read-only open, WAL)."""
    import sqlite3
    import time

    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE items SET title = 'changing' WHERE id = ?", [ids["jp-quantum"]])
    try:
        started = time.monotonic()
        rows = search_json(stiwatch, "quantum")
        assert rows[0]["title"] == "Japan launches national quantum strategy"  # last commit
        assert stiwatch("status").exit_code == 0
        assert time.monotonic() - started < 10  # the busy timeout is 30 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_snippet_across_paragraphs_stays_one_table_line(stiwatch, db_path):
    """The table's snippet line keeps the words of a body's paragraphs, not its line breaks
    (which broke the layout: a line that started unindented under the table)."""
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "s", "name": "S", "kind": "feed", "url": "https://s.org/f"}])
        store.save_items([{"url": "https://s.org/1", "source_id": "s", "title": "Budget",
                           "body": "The ministry set the budget.\n\nQuantum centres get more."}])
    result = stiwatch("search", "budget quantum")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    snippet = lines[2]
    assert snippet.startswith("    ") and "**budget**." in snippet.lower()
    assert "**quantum** centres" in snippet.lower()
    assert lines[3].strip() == "https://s.org/1"


def test_a_table_never_sends_a_stored_control_character_to_the_terminal(stiwatch, db_path):
    # Text stored before the crawler dropped C1 controls (or by another tool) went to the
    # terminal as is: ESC [ 2 J or U+009B 2 J clears the operator's screen.
    import db
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        store.save_items([{"url": "https://mext-news.example/esc", "source_id": "mext-news",
                           "title": "Budget \x1b[2J\x9b31mrises", "body": "The budget rises.",
                           "published_at": analysts_store.ago(1), "date_source": "feed"}])
    result = stiwatch("search", "budget")
    assert result.exit_code == 0, result.output
    assert "Budget [2J31mrises" in result.output
    assert "\x1b" not in result.output and "\x9b" not in result.output


# Without a query, filters alone list their stories newest first (the digest's "N more" line
# prints such a command), each story once as the ranked search shows it.
@pytest.mark.parametrize("filters, expected", [
    # newest first by the date of the item shown: the original (10 Nov) after fusion (11 Nov)
    ({"since": "2026-11-01"}, [("fusion", 0), ("original", 2)]),
    ({"sources": ["mext-news"]}, [("fusion", 0), ("original", 2)]),
    ({"sources": ["nsf-news"]}, [("copy-nsf", 2)]),  # a filter only a copy meets
    ({"sources": ["nsf-news", "ec-rtd"]}, [("copy-nsf", 2)]),  # two copies: the first stored
    ({"sources": ["ec-rtd"]}, [("copy-ec", 2)]),
    ({"until": "2026-11-09"}, [("copy-ec", 2)]),
    ({"since": "2026-11-11"}, [("copy-nsf", 2), ("fusion", 0)]),
    ({"since": "2026-11-13"}, []),
])
def test_filters_alone_list_each_story_once_newest_first(db_path, filters, expected):
    ids = analysts_store.build_stories(db_path)
    keys = {item_id: key for key, item_id in ids.items()}
    with db.open_store(db_path, readonly=True) as store:
        rows = store.list_stories(limit=50, tz=timezone.utc, **filters)
    assert [(keys[row["id"]], row["copies"]) for row in rows] == expected
    for row in rows:
        assert row["duplicate_of"] == (None if keys[row["id"]] in ("original", "fusion")
                                       else ids["original"])
        assert row["score"] is None
    if len(expected) > 1:  # read newest first and stopped at the limit: the same first story
        with db.open_store(db_path, readonly=True) as store:
            [row] = store.list_stories(limit=1, tz=timezone.utc, **filters)
        assert (keys[row["id"]], row["copies"]) == expected[0]


def test_filters_alone_through_the_cli(stiwatch, ids):
    listed = search_json(stiwatch, "--policy")
    # every policy story once (eu-open-copy folded into eu-open), newest first
    assert [r["id"] for r in listed] == [ids[k] for k in ("jp-quantum", "us-security",
                                                          "eu-open", "jp-semis", "eu-ai")]
    assert [r["copies"] for r in listed] == [0, 0, 1, 0, 0]
    # the JSON shape is the ranked search's, the snippet the summary's start
    assert list(listed[0]) == list(search_json(stiwatch, "quantum")[0])
    assert listed[0]["snippet"] == ("MEXT sets out a ten-year quantum technology strategy "
                                    "with new funding.")
    assert listed[0]["score"] is None
    # the copy alone meets --source nsf-news: it stands for its story
    listed = search_json(stiwatch, "--source", "nsf-news")
    assert [(r["id"], r["copies"]) for r in listed] == [
        (ids["us-security"], 0), (ids["eu-open-copy"], 1), (ids["us-discovery"], 0)]
    assert listed[1]["duplicate_of"] == ids["eu-open"]
    for args, expected in [
        (["--country", "JP"], ["jp-quantum", "jp-semis"]),
        (["--area", "governance"], ["jp-quantum", "eu-ai"]),
        (["--domain", "quantum"], ["jp-quantum"]),
        (["--region", "north_america"], ["us-security", "us-discovery"]),
        (["--since", analysts_store.ago(15)[:10]], ["jp-quantum", "us-security", "eu-open",
                                                   "us-discovery"]),
        (["--until", analysts_store.ago(15)[:10]], ["jp-semis", "eu-ai"]),
        (["--policy", "--country", "US"], ["us-security"]),
        (["--policy", "--limit", "2"], ["jp-quantum", "us-security"]),
    ]:
        assert [r["id"] for r in search_json(stiwatch, *args)] == [ids[k] for k in expected], \
            args
    result = stiwatch("search", "--policy", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["id"]) for r in rows] == [ids[k] for k in ("jp-quantum", "us-security",
                                                             "eu-open", "jp-semis", "eu-ai")]
    assert rows[0]["score"] == "" and rows[0]["countries"] == "JP"
    assert list(rows[0]) == list(csv.DictReader(io.StringIO(
        stiwatch("search", "quantum", "--format", "csv").output)).fieldnames)


def test_filters_alone_as_a_table_with_the_limit_hint(stiwatch, ids):
    result = stiwatch("search", "--policy", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "DATE", "SOURCE", "TITLE", "COPIES"]
    assert "Japan launches national quantum strategy" in lines[1]
    assert lines[2] == "    MEXT sets out a ten-year quantum technology strategy with new funding."
    assert lines[-1] == "2 items (the first 2: raise --limit for more)."
    assert stiwatch("search", "--policy", "--limit", "5").output.splitlines()[-1] == \
        "5 items."
    result = stiwatch("search", "--country", "CN", "--area", "open_science")
    assert result.exit_code == 0 and result.output == "No items match these filters.\n"


@pytest.mark.parametrize("args", [[], ["--limit", "5"], ["--format", "json"], ["--", ""],
                                  ["--exact"]])
def test_neither_query_nor_filter_is_one_clear_line(stiwatch, ids, args):
    result = stiwatch("search", *args)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: search needs a query, or a filter (--area, --domain, --country, --region, "
        "--source, --policy, --since, --until or --after-id) to list its stories newest "
        "first"]


def test_a_listed_snippet_is_the_start_of_the_summary_on_one_line(db_path):
    with db.open_store(db_path) as store:
        store.sync_sources(analysts_store.SOURCES[:1])
        store.save_items([
            {"url": f"https://mext-news.example/{n}", "source_id": "mext-news", "title": "t",
             "summary": summary, "body": "The body.", "published_at": f"2026-11-1{n}T00:00:00Z",
             "date_source": "feed", "language": "en"}
            for n, summary in enumerate(["word " * 60, "研究" * 100 + " end",
                                         "", "Two\nlines"])])
    with db.open_store(db_path, readonly=True) as store:
        rows = store.list_stories(sources=["mext-news"])
    snippets = [row["snippet"] for row in reversed(rows)]
    assert snippets[0] == ("word " * 32).strip() + "…"  # cut at a space near the end
    assert snippets[1] == "研究" * 80 + "…"  # no space near the end: cut mid-run
    assert snippets[2:] == ["The body.", "Two lines"]  # no summary: the body's start


def test_a_title_cut_to_the_table_width_ends_with_an_ellipsis(stiwatch, db_path):
    # A title cut at 90 columns read as whole: "... JSA welcomes outcome" became "... JSA
    # welcomes out", a different (and wrong) sentence, with nothing saying it was cut.
    title = ("G7 science ministers agree principles on research security and AI safety; "
             "JSA welcomes outcome")
    with db.open_store(db_path) as store:
        store.sync_sources([{"id": "s", "name": "S", "kind": "feed", "url": "https://s.org/f"}])
        store.save_items([{"url": "https://s.org/1", "source_id": "s", "title": title,
                           "body": "The ministers met.", "published_at": analysts_store.ago(1)},
                          {"url": "https://s.org/2", "source_id": "s", "title": "Short title",
                           "body": "The ministers met.", "published_at": analysts_store.ago(2)}])
    result = stiwatch("search", "ministers")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    long_row = next(line for line in lines if "G7 science ministers" in line)
    assert "welcomes out" not in long_row.replace("welcomes outcome", "")
    row = long_row[long_row.index("G7"):].rstrip()
    assert row.endswith("  0"), row  # the copies cell after it: none
    cell = row[:-1].rstrip()
    assert cell.endswith("…") and len(cell) == 90, cell
    assert title.startswith(cell[:-1])
    short_row = next(line for line in lines if "Short title" in line)
    assert "…" not in short_row


def test_json_flag_is_format_json_as_on_the_other_commands(stiwatch, ids):
    # status, crawl, classify, tag... take --json: typed here, click answered "No such option
    # '--json'. Did you mean '--since'?"
    flag = stiwatch("search", "quantum", "--json")
    assert flag.exit_code == 0, flag.output
    assert json.loads(flag.output) == search_json(stiwatch, "quantum")
    listed = stiwatch("search", "--country", "JP", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output)
    both = stiwatch("search", "quantum", "--json", "--format", "table")
    assert both.exit_code == 2
    assert "--json and --format table ask for two formats: give one" in both.output


def test_since_and_until_take_a_number_of_days_or_weeks_back(stiwatch, ids):
    # "What came in this past week" is the question of every morning: a date to work out and
    # type each time (and the mistake 2026-11-31 on the way) where journalctl or git log take
    # "7 days ago". 7d is 7 x 24 hours before now; 2w, 14 days.
    everything = "quantum OR research OR open OR galaxy OR strategy"
    assert {r["id"] for r in search_json(stiwatch, everything, "--since", "5d")} == {
        ids["jp-quantum"], ids["us-security"], ids["eu-open"]}
    assert {r["id"] for r in search_json(stiwatch, everything, "--since", "2w")} == {
        ids["jp-quantum"], ids["us-security"], ids["eu-open"], ids["us-discovery"]}
    assert {r["id"] for r in search_json(stiwatch, everything, "--since", "3W",
                                         "--until", "5d")} == {
        ids["us-discovery"], ids["jp-semis"]}
    listed = stiwatch("search", "--policy", "--since", "7d", "--json")
    assert listed.exit_code == 0, listed.output
    assert {r["id"] for r in json.loads(listed.output)} == {
        ids["jp-quantum"], ids["us-security"], ids["eu-open"]}
    for bad in ("0d", "7 days", "-7d", "7m"):
        result = stiwatch("search", "quantum", "--since", bad)
        assert result.exit_code == 2 and "Invalid value for '--since'" in result.output, bad


# --sort newest: the rows of the ranked search (each story once, as its original or its best
# matching copy, with its score and snippet), latest published first.
def test_sort_newest_orders_matches_by_date_with_scores_and_snippets(stiwatch, ids):
    ranked = search_json(stiwatch, "research")
    assert [r["id"] for r in ranked][:2] == [ids["us-security"], ids["eu-ai"]]  # by bm25
    newest = search_json(stiwatch, "research", "--sort", "newest")
    assert [r["id"] for r in newest] == [ids[k] for k in (
        "jp-quantum", "us-security", "eu-open", "us-discovery", "jp-semis", "eu-ai")]
    # the same rows, only reordered: scores, snippets and copies as the ranked search has them
    by_id = {r["id"]: r for r in ranked}
    assert all(r == by_id[r["id"]] for r in newest)
    assert newest[2]["copies"] == 1 and "**research**" in newest[1]["snippet"].lower()
    # --limit keeps the latest; --json and CSV in the same order
    assert [r["id"] for r in search_json(stiwatch, "research", "--sort", "newest",
                                         "--limit", "2")] == [ids["jp-quantum"],
                                                              ids["us-security"]]
    result = stiwatch("search", "research", "--sort", "newest", "--json")
    assert [r["id"] for r in json.loads(result.output)] == [r["id"] for r in newest]
    result = stiwatch("search", "research", "--sort", "newest", "--format", "csv")
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(result.output))] == [
        r["id"] for r in newest]
    table = stiwatch("search", "research", "--sort", "newest", "--limit", "3").output
    lines = table.splitlines()
    assert lines[1].split()[0] == str(ids["jp-quantum"])
    assert lines[-1] == "3 items (the first 3: raise --limit for more)."


def test_sort_newest_with_filters(stiwatch, ids):
    for args, expected in [
        (["--policy"], ["jp-quantum", "us-security", "eu-open", "jp-semis", "eu-ai"]),
        (["--country", "JP"], ["jp-quantum", "jp-semis"]),
        (["--source", "nsf-news"], ["us-security", "eu-open-copy", "us-discovery"]),
        (["--since", analysts_store.ago(15)[:10]], ["jp-quantum", "us-security", "eu-open",
                                                   "us-discovery"]),
        (["--policy", "--limit", "1", "--until", analysts_store.ago(15)[:10]], ["jp-semis"]),
    ]:
        rows = search_json(stiwatch, "research", "--sort", "newest", *args)
        assert [r["id"] for r in rows] == [ids[k] for k in expected], args


@pytest.mark.parametrize("query, expected", [
    ("quantum", [("original", 2)]),  # the newer copy-nsf matches, the original stands
    ("budget", [("fusion", 0), ("original", 2)]),  # not placed at copy-nsf's later date
    ("fusion OR windfall", [("copy-nsf", 2), ("fusion", 0)]),
    # two copies match: the first stored, placed at its own date (12 Nov, after fusion's)
    ("parliament OR windfall OR fusion", [("copy-nsf", 2), ("fusion", 0)]),
    ("sharply", [("copy-nsf", 2)]),
])
def test_sort_newest_folds_near_duplicates_as_the_ranked_search(db_path, query, expected):
    ids = analysts_store.build_stories(db_path)
    keys = {item_id: key for key, item_id in ids.items()}
    with db.open_store(db_path, readonly=True) as store:
        newest = store.search(query, limit=50, sort="newest")
        ranked = store.search(query, limit=50)
        assert [(keys[r["id"]], r["copies"]) for r in newest] == expected
        assert sorted(newest, key=lambda r: r["id"]) == sorted(ranked, key=lambda r: r["id"])
        # stopped at the limit, the same first story
        assert store.search(query, limit=1, sort="newest") == newest[:1]


def test_sort_newest_is_by_date_not_by_the_order_items_were_stored(db_path, ids, monkeypatch):
    import db.search

    # jp-quantum was stored first and published last: the ranking window (the most recently
    # stored matches) would miss it; sorting by date must not.
    monkeypatch.setattr(db.search, "RANK_WINDOW", 1)
    with db.open_store(db_path, readonly=True) as store:
        assert [r["id"] for r in store.search("research", limit=1, sort="newest")] == [
            ids["jp-quantum"]]
        # whatever the window, the order is every match's (as with --exact)
        for window in (1, 2, 3, 5_000):
            monkeypatch.setattr(db.search, "RANK_WINDOW", window)
            for query in ("research", "quantum OR open", "strategy OR science"):
                for limit in (1, 2, 3, 50):
                    assert store.search(query, limit=limit, sort="newest") == store.search(
                        query, limit=limit, sort="newest", exact=True), (window, query, limit)
        with pytest.raises(db.BadQuery, match="sort must be one of relevance, newest"):
            store.search("research", sort="oldest")


def test_sort_without_a_query(stiwatch, ids):
    assert search_json(stiwatch, "--policy", "--sort", "newest") == search_json(
        stiwatch, "--policy")
    result = stiwatch("search", "--policy", "--sort", "relevance")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: --sort relevance needs a QUERY to rank by: without one, stories are listed "
        "newest first (drop --sort, or give a query)"]
    result = stiwatch("search", "research", "--sort", "oldest")
    assert result.exit_code == 2 and "'oldest' is not one of 'relevance', 'newest'" in \
        result.output


def test_after_id_keeps_the_items_stored_after_that_item(stiwatch, ids):
    """The digest's "Found since your last digest" lists the items stored after the reader's
    last digest: search had no filter to list them by, only dates, which list every story."""
    everything = "quantum OR research OR open OR galaxy OR strategy"
    matched = {r["id"] for r in search_json(stiwatch, everything, "--limit", "100")}
    after = sorted(matched)[len(matched) // 2]
    later = {i for i in matched if i > after}
    assert later and later != matched
    assert {r["id"] for r in search_json(stiwatch, everything, "--limit", "100",
                                         "--after-id", str(after))} == later
    # Without a query, a filter of its own.
    listed = {r["id"] for r in search_json(stiwatch, "--after-id", str(after), "--limit", "100")}
    assert listed and min(listed) > after
    result = stiwatch("search", everything, "--after-id", str(after), "--format", "csv")
    assert result.exit_code == 0
    assert {int(line.split(",")[0]) for line in result.output.splitlines()[1:]} == later


def shown_as(rows, ids):
    keys = {item_id: key for key, item_id in ids.items()}
    return {row["duplicate_of"] or row["id"]: keys[row["id"]] for row in rows}


def test_both_orders_show_a_story_as_the_copy_the_digest_shows(db_path, monkeypatch):
    """Relevance and --sort newest each chose the item shown for a story: relevance the best
    match among the ranking window's, newest among every match, so the wire's story came out
    as The Daily's copy in one order and the NSF's in the other; and neither was the page the
    digest links, the ministry's. One rule now: among the items that match, the first official
    source's in the digest's order (the original, then the copies as stored), else the first."""
    from digest.select import load_week
    from digest.weeks import parse_week

    ids = analysts_store.build_syndicated(db_path)
    story = ids["wire"]
    with db.open_store(db_path, readonly=True) as store:
        [digested] = [s for s in load_week(store, parse_week("2026-W46", "UTC")).stories
                      if s.id == story]
        assert digested.url == "https://mext-news.example/mext"
        for window in (2, 3, 5_000):
            monkeypatch.setattr(db.search, "RANK_WINDOW", window)
            for query, filters, expected in [
                ("windfall", {"sources": ["wire", "daily", "nsf-news"]}, "nsf"),
                ("windfall", {}, "mext"),  # the original does not match
                ("windfall", {"sources": ["wire", "daily"]}, "daily"),  # no official copy
                ("quantum", {}, "mext"),  # the wire's original matches: the ministry's page
                ("quantum", {"sources": ["wire", "daily"]}, "wire"),
            ]:
                for limit in (1, 2, 3, 50):
                    ranked, newest = (
                        shown_as(store.search(query, limit=limit, sort=sort, **filters), ids)
                        for sort in ("relevance", "newest"))
                    case = (window, query, filters, limit)
                    # a story on both pages is shown as the same item
                    assert ranked.get(story, "-") == newest.get(story, ranked.get(story, "-")), case
                    assert ranked.get(story, expected) == expected, case
                    assert newest.get(story, expected) == expected, case
                assert shown_as(store.search(query, limit=50, **filters), ids)[story] == expected


def test_filters_alone_show_a_story_as_the_digest_does(stiwatch, db_path):
    """The digest's "more" commands list stories without a query: the wire's original was
    listed where the digest links the ministry's page."""
    ids = analysts_store.build_syndicated(db_path)
    listed = search_json(stiwatch, "--policy", "--since", "2026-11-10", "--until", "2026-11-10")
    assert [(r["url"], r["duplicate_of"], r["copies"]) for r in listed] == [
        ("https://mext-news.example/mext", ids["wire"], 3)]
    # an official copy the filters leave out is not shown; among the rest, the first stored
    listed = search_json(stiwatch, "--source", "daily", "--source", "wire")
    assert [r["id"] for r in listed if r["id"] in ids.values()] == [ids["wire"]]
    for args in (["--source", "daily", "--source", "nsf-news"], ["quantum", "--sort", "newest"]):
        assert {r["id"] for r in search_json(stiwatch, *args)} & {
            ids["wire"], ids["daily"], ids["mext"], ids["nsf"]} == {
            ids["nsf"] if "daily" in args else ids["mext"]}, args


def test_after_id_leaves_out_a_late_copy_of_a_story_stored_before(stiwatch, db_path):
    """The digest's "Found since your last digest" and its serve page take the stories first
    stored since the reader's last digest; their `--after-id` commands also listed a copy
    stored since of a story the reader already had (a newspaper syndicating it days later)."""
    ids = analysts_store.build_syndicated(db_path, analysts_store.SYNDICATED[:2])
    with db.open_store(db_path) as store:
        after = store.max_item_id()  # the reader's last digest was built up to here
        late = analysts_store.add_syndicated(store, [
            ("nsf", "nsf-news", "2026-11-10T06:00:00Z", ids["wire"], "Quantum budget rises",
             "The ministry raised the quantum budget, a windfall for laboratories."),
            ("new", "mext-news", "2026-11-11T03:00:00Z", None, "Quantum network opens",
             "A quantum network links two laboratories."),
            ("new-copy", "daily", "2026-11-11T04:00:00Z", "new", "Quantum network opens",
             "A quantum network links two laboratories."),
        ])
    args = ["--after-id", str(after), "--since", "2026-11-02", "--until", "2026-11-15"]
    for query in ([], ["--policy"], ["quantum"], ["quantum", "--sort", "newest"],
                  ["windfall"]):
        rows = search_json(stiwatch, *query, *args)
        assert [(r["id"], r["copies"]) for r in rows] == (
            [] if query == ["windfall"] else [(late["new"], 1)]), query
    result = stiwatch("search", "quantum", *args)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "1 item.", result.output
    with db.open_store(db_path, readonly=True) as store:
        assert store.count_matches("quantum", after_id=after) == 1
        # the story itself, stored before, still lists with its copy stored since
        [row] = store.search("windfall", limit=5)
        assert (row["id"], row["copies"]) == (late["nsf"], 2)


def test_stories_matching_finds_a_story_through_any_of_its_items(db_path, ids):
    """The digest's test of a reader's saved query (`subscribers add --query`), the rule of
    `stiwatch serve`'s page of stories too: a story, named by its original's id, that the query
    matches in any of its items, the original or a copy, among the stories it is given; a
    copy stored after every item asked about included."""
    with db.open_store(db_path) as store:
        stories = [ids[key] for key in ("jp-quantum", "us-security", "eu-open", "jp-semis",
                                        "us-discovery", "eu-ai")]
        analysts_store.add_syndicated(store, [
            ("semis-copy", "nsf-news", "2026-11-20T04:00:00Z", ids["jp-semis"],
             "Japan funds a chip consortium", "Japan also signs the Artemis Accords.")])
        assert store.stories_matching("artemis", stories) == {ids["jp-semis"]}
        assert store.stories_matching('"Horizon Europe"', stories) == {ids["eu-open"]}
        assert store.stories_matching("artemis OR galaxy", stories[:4]) == {ids["jp-semis"]}
        assert store.stories_matching("title:artemis", stories) == set()
        assert store.stories_matching("quantum", []) == set()
        for bad in ('"unfinished phrase', "   ", "-china"):
            with pytest.raises(db.BadQuery):
                store.stories_matching(bad, stories)


def test_stories_matching_reads_each_item_with_search_syntax(db_path, ids):
    """A saved query's test of stories: each item (original or copy) on its own text, among
    the stories it is given; search's syntax (OR, exclusions) and errors."""
    with db.open_store(db_path) as store:
        stories = [item_id for key, item_id in ids.items() if key != "eu-open-copy"]

        def keys(found):
            return {key for key, item_id in ids.items() if item_id in found}

        assert keys(store.stories_matching("quantum", stories)) == {
            "jp-quantum", "jp-semis", "us-discovery"}
        # each story once, by its original's id, and only among those asked about
        assert keys(store.stories_matching('"Horizon Europe"', stories)) == {"eu-open"}
        assert store.stories_matching('"Horizon Europe"', [ids["jp-quantum"]]) == set()
        assert keys(store.stories_matching("security OR galaxy -china", stories)) == {
            "jp-quantum", "us-discovery"}
        assert store.stories_matching("quantum", []) == set()
        for bad in ('"unfinished phrase', "   ", "-china"):
            with pytest.raises(db.BadQuery):
                store.stories_matching(bad, stories)


@pytest.mark.parametrize("query, terms", [
    ('"Horizon Europe" OR "CHIPS and Science Act"',
     ['"Horizon Europe"', '"CHIPS and Science Act"']),
    ("export control* -china", ["export", "control*"]),
    ("quantum OR 量子技術 NOT semiconductor", ["quantum", "量子技術"]),
    ('title:(grant OR "OR") NEAR(research security, 3)',
     ["grant", '"OR"', "research", "security"]),
])
def test_query_terms_are_each_a_query_search_reads(db_path, ids, query, terms):
    """The words a digest reader's query looks for, each looked up on its own for the "why"
    line: each must read as a query (a quoted "OR" stays quoted, not the operator)."""
    assert [word for word, _ in db.query_words(query)] == terms
    with db.open_store(db_path) as store:
        for term in terms:
            store.stories_matching(term, list(ids.values()))


@pytest.mark.parametrize("query, words", [
    ('title:(grant OR "OR") NEAR(research security, 3)',
     [("grant", "title:(grant)"), ('"OR"', 'title:("OR")'),
      ("research", "NEAR(research security, 3)"), ("security", "NEAR(research security, 3)")]),
    ("title:(quantum OR galaxy) OR summary:quantum OR NEAR(discover galaxy)",
     [("quantum", "title:(quantum) OR summary:(quantum)"),
      ("galaxy", "title:(galaxy) OR NEAR(discover galaxy)"),
      ("discover", "NEAR(discover galaxy)")]),
    ('NEAR("AND" semicond*, 2) -title:china', [('"AND"', 'NEAR("AND" semicond*, 2)'),
                                               ("semicond*", 'NEAR("AND" semicond*, 2)')]),
    ("量子技術 OR title:量子 NOT body:量子",
     [("量子技術", "量子技術"), ("量子", "title:(量子)")]),
])
def test_query_words_find_each_word_where_the_query_looks_for_it(db_path, ids, query, words):
    """The digest's "why" line looks each word of a reader's query up where the query looks
    for it (its columns, its NEAR group): each such query must read as one."""
    assert db.query_words(query) == words
    with db.open_store(db_path) as store:
        for _, scoped in words:
            store.stories_matching(scoped, list(ids.values()))
        # quantum is in jp-quantum's title, in the bodies of jp-semis and us-discovery
        [(_, scoped), *_] = db.query_words("title:quantum OR galaxy")
        assert store.stories_matching(scoped, list(ids.values())) == {ids["jp-quantum"]}


ORG_TYPES = ("ministry", "funding_agency", "research_org", "intergovernmental", "academy",
             "news", "other", None)


def test_the_serve_listing_shows_each_story_as_search_does_for_every_org_type(db_path):
    """items_tagged_json (the `stiwatch serve` page the digest links to) writes the official
    org types in SQL, search takes them from db.OFFICIAL_ORG_TYPES: for a copy from every org
    type the registry knows, and for an original from each, both show the same item."""
    sources = [{"id": f"src-{kind}", "name": f"Source {kind}", "kind": "feed",
                "url": f"https://{kind}.example/rss", "org_type": kind} for kind in ORG_TYPES]
    sources.append({"id": "wire", "name": "Wire", "kind": "feed",
                    "url": "https://wire.example/rss", "org_type": "news"})
    expected = {}
    with db.open_store(db_path) as store:
        store.sync_sources(sources)
        day = iter(range(1, 60))

        def save(url, source, original=None):
            [(item, _)] = store.save_items([{
                "url": url, "source_id": source, "title": url, "date_source": "feed",
                "published_at": f"2026-10-{next(day) % 28 + 1:02d}T03:00:00Z",
                "duplicate_of": original}])
            return item

        for kind in ORG_TYPES:
            # A wire's report, then copies: one from the org type, then a ministry's.
            wire = save(f"https://wire.example/{kind}", "wire")
            copy = save(f"https://{kind}.example/copy", f"src-{kind}", wire)
            save(f"https://ministry.example/{kind}", "src-ministry", wire)
            expected[wire] = (f"https://{kind}.example/copy" if kind in db.OFFICIAL_ORG_TYPES
                              else f"https://ministry.example/{kind}")
            assert copy
            # An original from the org type with a ministry's copy.
            own = save(f"https://{kind}.example/own", f"src-{kind}")
            save(f"https://ministry.example/of-{kind}", "src-ministry", own)
            expected[own] = (f"https://{kind}.example/own" if kind in db.OFFICIAL_ORG_TYPES
                             else f"https://ministry.example/of-{kind}")
        listed = {row["id"]: row["url"] for row in store.query(
            "SELECT id, url FROM items_tagged_json")}
        searched = {row["duplicate_of"] or row["id"]: row["url"] for row in store.list_stories(
            since="2026-01-01", limit=100, tz=timezone.utc)}
    assert listed == searched == expected
    assert set(db.OFFICIAL_ORG_TYPES) < set(ORG_TYPES)
