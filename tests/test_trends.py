"""Trends on a hand-made store whose answers are known: weekly counts per tag, this week against
the mean of the 4 before, rising terms with smoothing, and `stiwatch trends` in every format."""

from __future__ import annotations

import csv
from datetime import date
import io
import json
from pathlib import Path

import pytest

from digeststore import build, story
from digest.send import prepare_week
from digest.trends import trends
from digest.weeks import parse_week

N = iter(range(10_000))


def on(week: int, **kw):
    """A story published on the Wednesday of 2026-W<week> (03:00 UTC, noon in Tokyo)."""
    day = date.fromisocalendar(2026, week, 3)
    n = next(N)
    kw.setdefault("title", f"filler{n} story")
    return story(f"https://x.example/{n}", f"{day}T03:00:00Z", **kw)


def many(week, count, **kw):
    return [on(week, **kw) for _ in range(count)]


@pytest.fixture
def trend_store(db_path):
    stories = [
        *many(40, 1, areas=["governance"]),  # in the 12-week series, not in the comparison
        *many(43, 1, areas=["governance"]), *many(44, 2, areas=["governance"]),
        *many(45, 3, areas=["governance"]), *many(46, 2, areas=["governance"]),
        *many(47, 5, areas=["governance"], domains=["ai"], countries=["JP"],
              regions=["east_asia"]),
        *[s for w in (43, 44, 45, 46) for s in many(w, 4, areas=["public_research"])],
        *many(47, 2, areas=["public_research"]),
        *many(47, 1, areas=["open_science"]),
        *many(44, 2, areas=["international"]),
        on(47, areas=["governance"], policy=0),  # not policy: never counted
    ]
    store = build(db_path, stories)
    original = stories[-2]["url"]  # a syndicated copy of the open-science story: counted once
    from digeststore import add
    add(store, [story("https://copy.example/1", "2026-11-18T05:00:00Z", source="news-a",
                      areas=["open_science"], duplicate_of=original)])
    return store


def test_counts_and_change_against_the_previous_four_weeks(trend_store):
    report = trends(trend_store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12,
                    facets=("area", "domain", "country"))
    assert report.weeks[0] == "2026-W36" and report.weeks[-1] == "2026-W47"
    rows = {r.value: r for r in report.rows("area")}
    gov = rows["governance"]
    assert gov.series == [0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 2, 5]
    assert (gov.this_week, gov.previous_mean, gov.change, gov.change_pct, gov.direction) == (
        5, 2.0, 3.0, 150, "up")
    pub = rows["public_research"]
    assert (pub.this_week, pub.previous_mean, pub.change, pub.change_pct, pub.direction) == (
        2, 4.0, -2.0, -50, "down")
    osc = rows["open_science"]
    assert (osc.this_week, osc.previous_mean, osc.change_pct, osc.direction) == (1, 0.0, None, "new")
    intl = rows["international"]
    assert (intl.this_week, intl.previous_mean, intl.change, intl.direction) == (
        0, 0.5, -0.5, "down")
    assert rows["society"].direction == "flat" and rows["society"].series == [0] * 12
    assert report.totals[-5:] == [5, 8, 7, 6, 8]
    assert [(r.value, r.this_week) for r in report.rows("country")] == [("JP", 5)]
    assert {r.value: r.this_week for r in report.rows("domain")}["ai"] == 5


def test_the_digest_uses_the_same_numbers(trend_store):
    bundle = prepare_week(trend_store, parse_week("2026-W47", "Asia/Tokyo"))
    again = trends(trend_store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    assert bundle.trends.rows("area") == again.rows("area")
    assert bundle.png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_digest_reads_the_window_once_and_gets_the_weeks_own_stories(trend_store):
    from digest.select import load_week
    week = parse_week("2026-W47", "Asia/Tokyo")
    from digeststore import add
    # Either side of Tokyo's week boundaries (Monday 00:00 +09:00 = Sunday 15:00 UTC).
    add(trend_store, [story("https://edge.example/in", "2026-11-15T15:00:00Z", areas=["society"]),
                      story("https://edge.example/out", "2026-11-15T14:59:59Z", areas=["society"]),
                      story("https://edge.example/last", "2026-11-22T14:59:59+00:00",
                            areas=["society"]),
                      story("https://edge.example/next", "2026-11-22T15:00:00Z",
                            areas=["society"])])
    reads = []
    policy_items = trend_store.policy_items
    trend_store.policy_items = lambda *a, **kw: reads.append(a) or policy_items(*a, **kw)
    try:
        bundle = prepare_week(trend_store, week)
    finally:
        del trend_store.policy_items
    assert len(reads) == 1
    alone = load_week(trend_store, week)
    assert [s.url for s in bundle.data.stories] == [s.url for s in alone.stories]
    urls = {s.url for s in alone.stories}
    assert {"https://edge.example/in", "https://edge.example/last"} <= urls
    assert not urls & {"https://edge.example/out", "https://edge.example/next"}
    assert bundle.data.stories == alone.stories
    assert bundle.trends.totals[-1] == len(alone.stories) == 10


def test_rising_terms_need_several_stories_and_sources(tmp_path):
    stories = [
        # 3 stories, 2 sources, never before: rising
        on(47, title="Hydrogen strategy alpha1", source="jp-mext"),
        on(47, title="Hydrogen strategy alpha2", source="us-nsf"),
        on(47, title="Hydrogen strategy alpha3", source="us-nsf"),
        # 2 stories, 2 sources: rising, less
        on(47, title="Fusion beta1", source="eu-rtd"), on(47, title="Fusion beta2", source="de-bmbf"),
        # one article shouting its word: not a trend
        on(47, title="Quantum quantum quantum quantum"),
        # two stories from one source: not a trend
        on(47, title="Semiconductor gamma1", source="uk-ukri"),
        on(47, title="Semiconductor gamma2", source="uk-ukri"),
        # as common as before: not rising
        *[on(w, title=f"Budget delta{w}{i}", source=s) for w in (43, 44, 45, 46, 47)
          for i, s in enumerate(["jp-mext", "us-nsf", "eu-rtd", "de-bmbf"])],
        # more than before, but smoothed well below a new term
        *[on(47, title=f"Talent eps{i}", source=s) for i, s in
          enumerate(["jp-mext", "us-nsf", "eu-rtd", "de-bmbf", "uk-ukri", "news-a"])],
        *[on(w, title=f"Talent zeta{w}{i}", source=s) for w in (43, 44, 45, 46)
          for i, s in enumerate(["jp-mext", "us-nsf", "eu-rtd", "de-bmbf"])],
        # as many stories in each week before as in this one (18), so the means are not scaled
        *[story for w in (43, 44, 45, 46) for story in many(w, 10)],
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = [(t.term, t.this_week, t.sources, t.previous_mean, t.score) for t in report.rising]
    assert got == [
        ("hydrogen strategy", 3, 2, 0.0, 4.0),  # (3 + 1) / (0 + 1); "hydrogen" alone folded in
        ("fusion", 2, 2, 0.0, 3.0),
        ("talent", 6, 6, 4.0, 1.4),  # (6 + 1) / (4 + 1)
    ]


def test_a_busy_week_does_not_make_every_common_word_rise(tmp_path):
    sources = ["jp-mext", "us-nsf", "eu-rtd", "de-bmbf"]
    stories = [
        # "international" is in a quarter of the stories every week; this week has three times
        # as many stories, so three times as many use it: its share has not moved
        *[on(w, title=f"International eta{w}{i}", source=sources[i]) for w in (43, 44, 45, 46)
          for i in range(2)],
        *many(43, 5), *many(44, 6), *many(45, 5), *many(46, 6),
        *[on(47, title=f"International theta{i}", source=sources[i % 4]) for i in range(6)],
        # "consortium" doubles its share: rising, against the mean scaled to this week (1.5)
        *[on(w, title=f"Consortium iota{w}", source=sources[w % 4]) for w in (43, 44, 45, 46)
          for _ in range(1) if w % 2],
        *[on(47, title=f"Consortium kappa{i}", source=sources[i % 4]) for i in range(4)],
        *many(47, 14),
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = [(t.term, t.this_week, t.previous_mean, t.score) for t in report.rising]
    # 24 stories against 8 a week before: "international" expected 2 * 3 = 6, "consortium"
    # 0.5 * 3 = 1.5, so (4 + 1) / (1.5 + 1)
    assert got == [("consortium", 4, 0.5, 2.0)]


def test_rising_terms_are_shown_as_written(tmp_path, stiwatch):
    # Proper names keep the capitals every report gives them; a word some report writes in
    # lower case is shown so, though a headline capitalises it.
    stories = [
        *[on(w) for w in (43, 44, 45, 46)],  # weeks watched before: there is a history
        on(47, title="Seoul Hosts AI Safety Talks", summary="Officials met in Seoul on safety.",
           source="jp-mext"),
        on(47, title="Safety institutes meet in Seoul", summary="OSIC partners joined.",
           source="us-nsf"),
        on(47, title="OSIC backs Seoul safety network", source="eu-rtd"),
    ]
    path = tmp_path / "s.db"
    build(path, stories).close()
    args = ["--db", str(path), "trends", "--week", "2026-W47"]
    result = stiwatch(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    shown = {t["term"]: t["written"] for t in json.loads(result.output)["rising_terms"]}
    # OSIC begins a headline and an acronym is one anywhere; a headline capitalises Safety
    assert shown == {"seoul": "Seoul", "safety": "safety", "osic": "OSIC"}
    result = stiwatch(*args)
    assert "Seoul (3, was 0/week)" in result.output
    assert "seoul (" not in result.output and "Safety (" not in result.output


def test_trends_command_formats_and_chart(trend_store, stiwatch, db_path, tmp_path):
    trend_store.close()
    args = ["trends", "--week", "2026-W47", "--weeks", "6"]
    result = stiwatch(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["weeks"] == ["2026-W42", "2026-W43", "2026-W44", "2026-W45", "2026-W46",
                             "2026-W47"]
    gov = next(r for r in data["rows"] if r["value"] == "governance")
    assert gov["series"] == [0, 1, 2, 3, 2, 5] and gov["direction"] == "up"
    assert gov["change_pct"] == 150

    # an average of 2 stories a week or more: the table gives the change in per cent too
    table = [line.split() for line in stiwatch(*args).output.splitlines()]
    assert ["Governance", "0", "1", "2", "3", "2", "5", "2", "+3", "(+150%)", "up"] in table
    # every week shown was watched (the first story is in W40): its 0 is a quiet week
    assert ("Totals: 2026-W42=0, 2026-W43=5, 2026-W44=8, 2026-W45=7, 2026-W46=6, "
            "2026-W47=8\n") in stiwatch(*args).output

    result = stiwatch(*args, "--format", "csv", "--by", "country")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows == [{"value": "JP", "name": "Japan", "2026-W42": "0", "2026-W43": "0",
                     "2026-W44": "0", "2026-W45": "0", "2026-W46": "0", "2026-W47": "5",
                     "previous_mean": "0.0", "change": "5.0", "change_pct": "",
                     "direction": "new"}]

    chart = tmp_path / "out" / "chart.png"
    chart.parent.mkdir()  # --chart never makes a folder (see the test below)
    result = stiwatch(*args, "--by", "domain", "--chart", str(chart))
    assert result.exit_code == 0
    assert "Policy items per week by domain" in result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["Artificial", "intelligence", "0", "0", "0", "0", "0", "5", "0", "+5", "new"] in lines
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A file on its own is white, not the digest's transparent chart (which viewers show on
    # black or a checkerboard).
    from PIL import Image

    assert Image.open(chart).convert("RGBA").getpixel((0, 0)) == (255, 255, 255, 255)

    result = stiwatch("trends", "--week", "2026-W99")
    assert result.exit_code == 2
    assert "--week: '2026-W99' is not an ISO week such as 2026-W47" in result.output


@pytest.mark.parametrize("chart, problem", [
    ("afile/c.png", "--chart afile/c.png: afile is a file, not a folder"),
    ("afolder", "--chart afolder: that is a folder; give a file name"),
    ("typo/c.png", "--chart typo/c.png: no such folder typo (create it first)"),
    # it is always a PNG: another name would hold a file its viewer cannot open
    ("c.svg", "--chart c.svg: the chart is a PNG image: give a file name ending in .png "
     "(e.g. c.png)"),
])
def test_a_chart_path_that_cannot_be_a_file_is_one_error(trend_store, stiwatch, isolated_env,
                                                         chart, problem):
    trend_store.close()
    (isolated_env / "afile").write_text("keep me\n")
    (isolated_env / "afolder").mkdir()
    result = stiwatch("trends", "--week", "2026-W47", "--chart", chart)
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: {problem}"]
    assert (isolated_env / "afile").read_text() == "keep me\n"
    assert list((isolated_env / "afolder").iterdir()) == []
    assert sorted(p.name for p in isolated_env.iterdir()) == ["afile", "afolder"]


def test_rising_terms_are_not_the_function_words_of_other_languages(tmp_path):
    """Stories in German, French, Spanish and Portuguese from two sources each: what rose is what
    they are about, not 'die', 'les', 'para' or 'dos', which every such story has."""
    stories = [
        on(47, title="Die Förderrichtlinie für Quantentechnologien und die Hochschulen",
           source="de-bmbf"),
        on(47, title="Neue Förderrichtlinie für Quantentechnologien in der Forschung",
           source="eu-rtd"),
        on(47, title="Les universités et la stratégie pour les hydrogènes dans les régions",
           source="jp-mext"),
        on(47, title="Une stratégie pour les hydrogènes avec des partenaires", source="us-nsf"),
        on(47, title="Los fondos para la biotecnología de las universidades", source="uk-ukri"),
        on(47, title="Los programas para la biotecnología del país", source="news-a"),
        on(47, title="Bolsas dos pesquisadores para a bioeconomia com universidades",
           source="news-a"),
        on(47, title="Programa dos institutos para a bioeconomia com parceiros", source="news-b"),
        on(42, title="An earlier week, so that the store has weeks to compare with"),
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = {t.term for t in report.rising}
    assert {"förderrichtlinie", "quantentechnologien", "hydrogènes", "biotecnología",
            "bioeconomia"} <= got | {"förderrichtlinie quantentechnologien"}, got
    words = {word for term in got for word in term.split()}
    assert not words & {"die", "für", "les", "pour", "los", "para", "dos", "com", "und", "des"}, got


def test_trends_command_of_a_young_store_averages_the_weeks_it_watched(db_path, stiwatch):
    # Crawling began in W46: W47's 5 governance stories are against W46's 1, not against a
    # "mean of 4 weeks" of 0.25 with three weeks nobody watched.
    build(db_path, [*many(46, 1, areas=["governance"]),
                    *many(47, 5, areas=["governance"])]).close()
    result = stiwatch("trends", "--week", "2026-W47", "--weeks", "3")
    assert result.exit_code == 0, result.output
    assert ("AVG4: mean of the 1 week(s) before 2026-W47 since the store's first story "
            "(2026-W46; earlier weeks were not watched)") in result.output
    # a per cent of an average of 1 is noise that reads as news: the table gives stories only
    # (as the digest does); JSON keeps the raw change_pct
    # W45, before the first story, was not watched: "-", not a 0 that reads as a quiet week
    assert ["Governance", "-", "1", "5", "1", "+4", "up"] in [
        line.split() for line in result.output.splitlines()]
    assert ("Totals: 2026-W45=-, 2026-W46=1, 2026-W47=5 (-: before the store's first story, "
            "not watched)\n") in result.output
    assert "%" not in result.output
    data = json.loads(stiwatch("trends", "--week", "2026-W47", "--format", "json").output)
    gov = next(r for r in data["rows"] if r["value"] == "governance")
    assert (gov["previous_mean"], gov["change_pct"]) == (1.0, 400)
    # numbers for scripts, with the week before which nothing was watched
    assert data["first_week"] == "2026-W46" and data["totals"][-3:] == [0, 1, 5]
    data = json.loads(stiwatch("trends", "--week", "2026-W46", "--format", "json").output)
    gov = next(r for r in data["rows"] if r["value"] == "governance")
    assert (gov["direction"], gov["previous_mean"], gov["change_pct"]) == ("unknown", 0.0, None)
    assert data["rising_terms"] == []


def test_trends_command_of_an_empty_store_says_it_holds_nothing(db_path, stiwatch):
    # It said "the store holds nothing before 2026-W47", as if earlier weeks were the gap, and
    # that no term rose "this week", where there is nothing to compare with at all.
    build(db_path, []).close()
    result = stiwatch("trends", "--week", "2026-W47")
    assert result.exit_code == 0, result.output
    assert "AVG4: none: the store holds no story yet;" in result.output
    # no mean and no change, not "0" and "+0", which read as weeks watched and quiet
    assert ["Governance", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "unknown"] in [
        line.split() for line in result.output.splitlines()]
    totals = next(line for line in result.output.splitlines() if line.startswith("Totals: "))
    assert "=0" not in totals and totals.endswith("2026-W47=- (-: before the store's first "
                                                  "story, not watched)")
    assert json.loads(stiwatch("trends", "--week", "2026-W47", "--format", "json").output
                      )["first_week"] is None
    assert result.output.splitlines()[-1] == (
        "Rising terms: none yet: nothing earlier in the store to compare with.")


def test_trends_command_says_a_week_is_not_over_and_refuses_one_not_begun(db_path, stiwatch):
    """The week under way counts only its first days: against whole weeks it reads as a fall
    (`-100%`, `down` on a Monday morning). The digest says so of a partial week; `trends` did
    not, and counted a week that had not even started as a week of zeros."""
    from digest.weeks import last_complete_week

    this_week = last_complete_week("Asia/Tokyo").shift(1)
    build(db_path, [*many(46, 2, areas=["governance"])]).close()
    result = stiwatch("trends", "--week", this_week.label)
    assert result.exit_code == 0, result.output
    assert f"{this_week.label} is not over yet" in result.output
    ahead = this_week.shift(2).label
    result = stiwatch("trends", "--week", ahead)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: --week {ahead} has not started yet (it starts Mon ")
    assert line.endswith("(Asia/Tokyo)): there is nothing to count")
    assert "not over" not in stiwatch("trends", "--week", "2026-W46").output


def test_json_flag_is_format_json_as_on_the_other_commands(trend_store, stiwatch):
    # status, crawl, classify, tag... take --json: typed here it was "No such option".
    trend_store.close()
    args = ["trends", "--week", "2026-W47", "--weeks", "6"]
    flag = stiwatch(*args, "--json")
    assert flag.exit_code == 0, flag.output
    assert json.loads(flag.output) == json.loads(stiwatch(*args, "--format", "json").output)
    assert stiwatch(*args, "--json", "--format", "json").exit_code == 0
    both = stiwatch(*args, "--json", "--format", "csv")
    assert both.exit_code == 2
    assert "--json and --format csv ask for two formats: give one" in both.output


def test_rising_terms_are_not_english_prepositions_and_conjunctions(tmp_path):
    # The demo's week rose "towards" (two stories "... towards the market", two sources): a
    # reader was told a preposition was the week's rising term.
    stories = [
        on(47, title="Start-up grants move university inventions towards the market",
           source="jp-mext"),
        on(47, title="Fusion programme moves towards pilot plants, whether or not funded",
           source="us-nsf"),
        on(47, title="Agency upon review funds fusion start-ups though budgets tighten",
           source="news-a"),
        on(47, title="Ministers turn toward fusion start-ups, although upon conditions",
           source="news-b"),
        on(42, title="An earlier week, so that the store has weeks to compare with"),
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = {t.term for t in report.rising}
    # Fusion's topic: "fusion start-ups", in 2 of its 3 stories, carries most of its rise
    # (distinct_topics), so "fusion" alone is not shown beside it.
    assert "fusion start-ups" in got and "fusion" not in got, got
    words = {word for term in got for word in term.split()}
    assert not words & {"towards", "toward", "whether", "upon", "though", "although"}, got


def test_rising_terms_show_each_topic_once_and_no_generic_words(tmp_path):
    # The demo's week showed "safety" beside "safety institutes", "ministers" beside "science
    # ministers", "advanced" (of "advanced AI": AI was under the 3 letters a word needed) and
    # "ten". A reader wants one slot per topic, and topics, not generic words.
    sources = iter(["jp-mext", "us-nsf", "eu-rtd", "de-bmbf", "uk-ukri", "news-a", "news-b"] * 3)
    stories = [
        # "safety institutes" is in 4 of safety's 5 stories: it stands for the word
        *[on(47, title=f"Safety institutes agree testing agenda {n}", source=next(sources))
          for n in ("seoul", "paris", "ottawa", "tokyo")],
        on(47, title="Road safety plan for autonomous vehicles", source=next(sources)),
        # "ministers" is in 5 stories, "digital ministers" in 2: the word is shown
        *[on(47, title=f"Ministers back {x}", source=next(sources))
          for x in ("chip subsidies", "open access", "talent visas")],
        *[on(47, title=f"Digital ministers meet on {x}", source=next(sources))
          for x in ("platforms", "data flows")],
        # generic words in stories on different matters: not a topic
        on(47, title="Ten universities join advanced AI programme", source="jp-mext"),
        on(47, title="Agency funds ten advanced AI labs", source="us-nsf"),
        on(42, title="An earlier week, so that the store has weeks to compare with"),
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = {t.term for t in report.rising}
    assert {"safety institutes", "ministers", "advanced ai"} <= got, got
    assert not got & {"safety", "institutes", "digital ministers", "advanced", "ten"}, got
    shown = {t.term: t.written for t in report.rising}
    assert shown["advanced ai"] == "advanced AI"


def test_korean_rising_terms_are_collapsed_as_english_ones(tmp_path):
    # Korean writes spaces between words: "인공지능 안전연구소" (AI safety institute) in 3 of
    # the 4 stories naming the institute stands for it; Japanese runs stay whole terms.
    stories = [
        on(47, title="인공지능 안전연구소 국제 네트워크 회의", source="de-bmbf"),
        on(47, title="인공지능 안전연구소 공동 평가", source="news-a"),
        on(47, title="인공지능 안전연구소 연구 협력", source="news-b"),
        on(47, title="안전연구소 예산 확대", source="uk-ukri"),
        on(47, title="文部科学省、量子技術を支援", source="jp-mext"),
        on(47, title="文部科学省、大学を支援", source="news-a"),
        on(42, title="An earlier week, so that the store has weeks to compare with"),
    ]
    store = build(tmp_path / "s.db", stories)
    report = trends(store, parse_week("2026-W47", "Asia/Tokyo"), weeks=12)
    got = {t.term for t in report.rising}
    assert {"인공지능 안전연구소", "文部科学省"} <= got, got
    assert not got & {"인공지능", "안전연구소"}, got


def test_the_terms_stop_words_are_scikit_learns_without_importing_it():
    """The rising terms drop scikit-learn's English stop words; importing them through
    scikit-learn cost every `digest send` and `run --digest` process over a second (SciPy and
    NumPy come with it) for a list of words."""
    import subprocess
    import sys

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from digest.trends import STOPWORDS, _CONTENT_WORDS, stopwords

    assert stopwords() == STOPWORDS | (ENGLISH_STOP_WORDS - _CONTENT_WORDS)
    probe = ("import sys; from digest.trends import terms_of; "
             "terms = terms_of('amongst several reforms'); "
             "assert terms == {'reforms'}, terms; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout == "[]\n", result.stdout
