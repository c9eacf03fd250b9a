"""A section cut short ("… and N more in SECTION not shown") links, in the HTML part, to the
listing of its stories in `stiwatch serve` when `serve_url` is set: checked against a real
`stiwatch serve` and against the `stiwatch search` commands the text part keeps."""

from __future__ import annotations

import email
from html import unescape
from email import policy
import json
import re
import shlex
import urllib.parse

import pytest

from digeststore import add, build, story
from digest.render import more_commands, more_link
from digest.select import LATE, Section
from digest.send import compose, message_bytes, message_for, prepare_week
from digest.weeks import parse_week
from stiwatch.config import ConfigError, load_settings
from test_serve import get, serving

WEEK = parse_week("2026-W47", "Asia/Tokyo")
READERS = [
    {"email": "all@example.org"},
    # Two areas, and countries and regions: search needs one command for each of the places.
    {"email": "ben@example.org", "areas": ["research_security", "governance"],
     "countries": ["US"], "regions": ["east_asia"]},
    # Two domains: any of them.
    {"email": "cleo@example.org", "domains": ["quantum", "ai"]},
]


@pytest.fixture
def store(db_path):
    def week(n: int, day: int = 0) -> str:
        return f"2026-11-{16 + day:02d}T0{n % 10}:00:00Z"

    s = build(db_path, [
        *[story(f"https://nsf.example/{n}", week(n, 2), source="us-nsf", title=f"NSF rule {n}",
                areas=["research_security"], domains=["ai"] if n % 2 else [],
                countries=["US"], regions=["north_america"], score=0.7) for n in range(6)],
        *[story(f"https://mext.example/{n}", week(n, 3), title=f"MEXT security {n}",
                areas=["research_security"], domains=["quantum"], countries=["JP"],
                regions=["east_asia"]) for n in range(4)],
        story("https://bmbf.example/1", week(1, 1), source="de-bmbf", title="BMBF security",
              areas=["research_security"], domains=["quantum"], countries=["DE"],
              regions=["europe"]),
        *[story(f"https://mext.example/gov{n}", week(n, 4), title=f"MEXT governance {n}",
                areas=["governance"], domains=["ai"], countries=["JP"], regions=["east_asia"])
          for n in range(4)],
        # Not listed: a copy (its original is), last week's story, a story not about policy.
        story("https://news-a.example/copy", week(5, 3), source="news-a", title="MEXT copy",
              duplicate_of="https://mext.example/1"),
        story("https://nsf.example/old", "2026-11-10T03:00:00Z", source="us-nsf",
              areas=["research_security"], countries=["US"], regions=["north_america"]),
        story("https://nsf.example/not-policy", week(2, 2), source="us-nsf", policy=0,
              areas=["research_security"], countries=["US"], regions=["north_america"]),
    ])
    s.save_subscribers(READERS)
    return s


def parts(store, settings, reader, late_after=None):
    bundle = prepare_week(store, WEEK, late_after)
    digest = compose(bundle, store.get_subscriber(reader), settings, late_after)
    msg = email.message_from_bytes(message_bytes(message_for(bundle, digest, settings)),
                                   policy=policy.default)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    return digest, text, html


def settings_with(**values):
    return load_settings(environ={"STIWATCH_DIGEST_SECTION_CAP": "2",
                                  **{f"STIWATCH_{k.upper()}": v for k, v in values.items()}})


def listed(stiwatch, commands):
    """The URLs the `stiwatch search` command lines list, together."""
    urls = set()
    for command in commands:
        # JSON asked for before a reader's query, which follows `--`
        search, *args = shlex.split(command)[1:]
        result = stiwatch(search, "--format", "json", *args)
        assert result.exit_code == 0, result.output
        urls |= {row["url"] for row in json.loads(result.output)}
    return urls


def test_the_more_lines_link_to_their_stories_in_stiwatch_serve(store, db_path, tmp_path,
                                                                 stiwatch):
    with serving(db_path, tmp_path) as base:
        serve_url = f"{base}/{db_path.stem}"  # as `stiwatch serve` announces the store
        settings = settings_with(serve_url=serve_url)
        checked = 0
        for reader in READERS:
            digest, text, html = parts(store, settings, reader["email"])
            cut = [section for section in digest.sections if section.more]
            links = re.findall(r'not shown\. <a href="([^"]+)" class="l">List them in the '
                               r'browser</a>\.', html)
            assert len(links) == len(cut) > 0, reader
            assert "stiwatch search" not in html
            for section, link in zip(cut, links):
                link = link.replace("&amp;", "&")
                assert link.startswith(f"{serve_url}/items_tagged_json?")
                commands = more_commands(digest, section)
                # The text part keeps the commands.
                for command in commands:
                    assert f"    {command}" in text.replace("\r\n", "\n")
                status, page = get(link)
                assert status == 200, page
                path, _, query = link.partition("?")
                status, body = get(f"{path}.json?{query}&_shape=array&_size=max")
                assert status == 200, body
                shown = {row["url"] for row in json.loads(body)}
                # The page lists what the commands list: the section's stories, shown or not.
                assert shown == listed(stiwatch, commands), (reader, section.title, link)
                assert len(shown) >= len(section.entries) + section.more
                assert not shown & {"https://news-a.example/copy", "https://nsf.example/old",
                                    "https://nsf.example/not-policy"}
                checked += 1
        assert checked >= 4
    # Ben's places are one page, where search takes a command for each.
    digest, _, html = parts(store, settings, "ben@example.org")
    [section] = [s for s in digest.sections if s.title == "Research security"]
    assert len(more_commands(digest, section)) == 2
    [link] = [unquoted for unquoted in map(urllib.parse.unquote_plus, re.findall(
        r'href="([^"]*items_tagged_json[^"]*)"', html)) if "research_security" in unquoted]
    assert "_tags_any=countries:US,regions:east_asia" in link


def test_a_readers_query_is_searched_by_the_more_lines_commands_and_page(store, db_path,
                                                                         tmp_path, stiwatch):
    """A reader who follows words (`subscribers add --query`): the commands give search the
    query and the page its search box (`_search`), so both list the section's stories, the
    ones naming the words, not every story of its area."""
    # a query may start with a minus sign: search reads it after `--`
    store.save_subscribers([{"email": "dana@example.org", "query": "-BMBF security OR rule"}])
    with serving(db_path, tmp_path) as base:
        settings = settings_with(serve_url=f"{base}/{db_path.stem}")
        digest, text, html = parts(store, settings, "dana@example.org")
        assert digest.total == 10  # NSF rules 0-5, MEXT security 0-3: not BMBF's, not MEXT's
        # governance stories
        [section] = [s for s in digest.sections if s.more]
        commands = more_commands(digest, section)
        assert [command.endswith(" --sort newest -- '-BMBF security OR rule'")
                for command in commands] == [True]
        for command in commands:
            assert f"    {command}" in text.replace("\r\n", "\n")
        [link] = [link.replace("&amp;", "&") for link in re.findall(
            r'not shown\. <a href="([^"]+)" class="l">List them in the browser', html)]
        assert "_search=-BMBF+security+OR+rule" in link
        path, _, query = link.partition("?")
        status, body = get(f"{path}.json?{query}&_shape=array&_size=max")
        assert status == 200, body
        shown = {row["url"] for row in json.loads(body)}
    assert shown == listed(stiwatch, commands) == {
        *(f"https://mext.example/{n}" for n in range(4)),
        *(f"https://nsf.example/{n}" for n in range(6))}


def test_the_listing_pages_title_states_every_condition_of_the_link(store, db_path, tmp_path):
    """The page's title omitted the countries and regions the link's `_where` added ("5 rows
    where areas contains research_security ..."): a reader took one country's stories for every
    story of the area. The title says them, as it says Datasette's own filters."""
    with serving(db_path, tmp_path) as base:
        settings = settings_with(serve_url=f"{base}/{db_path.stem}")
        titles = {}
        for reader in ("ben@example.org", "cleo@example.org"):
            _, _, html = parts(store, settings, reader)
            for link in re.findall(r'href="([^"]*items_tagged_json[^"]*)"', html):
                status, page = get(link.replace("&amp;", "&"))
                assert status == 200, page
                [title] = re.findall(r"<h3>\s*([\d,]+ rows?[^<]*)</h3>", page)
                titles.setdefault(reader, []).append(" ".join(unescape(title).split()))
    for title in titles["ben@example.org"]:
        assert re.match(r'\d+ rows where \(countries contains "US" or regions contains '
                        r'"east_asia"\), ', title), title
    assert any('areas contains "research_security"' in title
               for title in titles["ben@example.org"])
    for title in titles["cleo@example.org"]:
        assert 'domains contains any of "quantum", "ai"' in title, title


def test_without_serve_url_the_html_gives_the_commands(store):
    digest, text, html = parts(store, settings_with(), "all@example.org")
    assert "items_tagged_json" not in html and "List them in the browser" not in html
    for section in digest.sections:
        for command in more_commands(digest, section) if section.more else []:
            assert f"<code>{command}</code>" in html


@pytest.mark.parametrize("value", ["ftp://sti.example.org/stiwatch", "sti.example.org/stiwatch",
                                   "https://sti.example.org/st iwatch"])
def test_a_serve_url_that_is_no_web_address_is_refused(value):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"STIWATCH_SERVE_URL": value})
    assert str(caught.value) == (f"environment STIWATCH_SERVE_URL: serve_url: expected a "
                                 f"http: or https: URL, not {value!r}")


def test_the_commands_list_every_story_of_a_section_whose_area_has_over_20_items(db_path,
                                                                                stiwatch):
    """Search lists the area's items, the headlines' among them, newest first; the commands
    asked for as many as the section had stories (22 here: 2 shown, "… and 20 more"), so the
    2 oldest of the area's 24 items, stories the section left out, were listed by neither the
    text part's command nor anything else in the digest, while the HTML's link listed all 24."""
    urls = [f"https://nsf.example/rule-{n}" for n in range(24)]
    store = build(db_path, [
        # Ranked first (score 1.0 against 0.7), and the newest: the headlines.
        *[story(url, f"2026-11-{16 + n // 6:02d}T0{n % 6}:00:00Z", source="us-nsf",
                title=f"Rule {n} on {word}", areas=["research_security"],
                score=1.0 if n >= 22 else 0.7)
          for n, (url, word) in enumerate(zip(urls, [
              "visas", "export controls", "talent programmes", "lab access", "disclosure",
              "foreign funding", "conflicts of interest", "cyber hygiene", "travel",
              "data sharing", "quantum exports", "chip controls", "vetting", "biosafety",
              "insider threats", "partnerships", "audits", "training", "reporting lines",
              "due diligence", "sanctions", "screening", "compliance", "open science"]))],
    ])
    store.save_subscribers([{"email": "all@example.org"}])
    digest, text, _ = parts(store, settings_with(), "all@example.org")
    [section] = [s for s in digest.sections if s.title == "Research security"]
    assert (len(section.entries), section.more) == (2, 20)
    assert len(digest.headlines.entries) == 2
    assert listed(stiwatch, more_commands(digest, section)) == set(urls)


def test_the_commands_never_ask_search_for_more_than_it_takes(store, stiwatch):
    """`stiwatch search --limit` takes at most 10,000: a reader whose week had more reports
    (the count the commands ask for) got a command search refused, exit 2."""
    digest, _, _ = parts(store, settings_with(), "all@example.org")
    section = next(s for s in digest.sections if s.more)
    digest.reports = 12_000
    [command] = more_commands(digest, section)
    assert command.endswith("--limit 10000")
    result = stiwatch(*shlex.split(command)[1:], "--format", "json")
    assert result.exit_code == 0, result.output


def test_the_late_sections_more_lines_list_the_stories_found_since_the_last_digest(
        store, db_path, tmp_path, stiwatch):
    """"Found since your last digest" lists the stories of the four weeks before that were
    stored after the reader's last digest was built. Its commands and link selected those weeks
    by date alone, so they listed every story of them, the ones earlier digests had sent too."""
    def earlier(n: int) -> str:
        return f"2026-11-{2 + n:02d}T03:00:00Z"  # weeks 45 and 46

    add(store, [story(f"https://nsf.example/sent-{n}", earlier(n), source="us-nsf",
                             title=f"NSF sent {n}", areas=["research_security"],
                             countries=["US"], regions=["north_america"]) for n in range(3)])
    late_after = store.max_item_id()  # the reader's last digest was built up to here
    late = add(store, [story(f"https://nsf.example/late-{n}", earlier(n), source="us-nsf",
                             title=f"NSF late {n}", areas=["research_security"],
                             countries=["US"], regions=["north_america"]) for n in range(4)])
    # A newspaper's copy, stored since, of a story the reader had: not new, for the section
    # and its page (originals) as for its commands (search listed it, --after-id read alone).
    add(store, [story("https://news-a.example/sent-0", earlier(0), source="news-a",
                      title="NSF sent 0", areas=["research_security"], countries=["US"],
                      regions=["north_america"], duplicate_of="https://nsf.example/sent-0")])
    with serving(db_path, tmp_path) as base:
        serve_url = f"{base}/{db_path.stem}"
        settings = settings_with(serve_url=serve_url)
        for reader in ("all@example.org", "ben@example.org"):
            digest, text, html = parts(store, settings, reader, late_after)
            [section] = [s for s in digest.sections if s.id == LATE]
            assert (len(section.entries), section.more) == (2, 2)
            commands = more_commands(digest, section)
            for command in commands:
                assert f"    {command}" in text.replace("\r\n", "\n")
            assert listed(stiwatch, commands) == set(late), (reader, commands)
            links = re.findall(r'not shown\. <a href="([^"]+)" class="l">List them in the '
                               r'browser', html)
            [link] = [link.replace("&amp;", "&") for link in links if "id__gt" in link]
            path, _, query = link.partition("?")
            status, body = get(f"{path}.json?{query}&_shape=array&_size=max")
            assert status == 200, body
            assert {row["url"] for row in json.loads(body)} == set(late), (reader, link)


def _page(link: str, extra: str = "") -> list[dict]:
    """The rows of a `stiwatch serve` page, as JSON objects (every row)."""
    path, _, query = link.partition("?")
    status, body = get(f"{path}.json?{query}{extra}&_shape=array&_size=max")
    assert status == 200, body
    return json.loads(body)


def test_the_browser_lists_a_story_as_the_copy_the_digest_and_search_show(db_path, tmp_path,
                                                                         stiwatch):
    """A wire's report stored before the ministry's own page of the story: the digest and
    `stiwatch search` show the ministry's page, its title and date, while the page the digest
    links to listed the wire's (the story's original). It lists the ministry's now, once; its
    filters read the story's original (its tags, its id for the late section), as the digest
    does."""
    week = "2026-11-17T0{}:00:00Z".format
    s = build(db_path, [
        story("https://news-a.example/wire", week(3), source="news-a",
              title="Wire: Japan tightens research security", areas=["research_security"],
              countries=["JP"], regions=["east_asia"]),
        story("https://mext.example/security", week(6), title="MEXT research security rules",
              areas=["research_security"], countries=["JP"], regions=["east_asia"],
              duplicate_of="https://news-a.example/wire"),
        story("https://mext.example/other", week(4), title="MEXT other story",
              areas=["research_security"], countries=["JP"], regions=["east_asia"]),
        # Of the week before, stored before the reader's last digest
        story("https://news-b.example/old", "2026-11-10T03:00:00Z", source="news-b",
              title="Older wire story", areas=["research_security"], countries=["JP"],
              regions=["east_asia"]),
    ])
    late_after = s.max_item_id()
    ids = add(s, [
        # The ministry's page of the older story, found since: no new story.
        story("https://mext.example/old-own", "2026-11-10T05:00:00Z", title="MEXT older story",
              areas=["research_security"], countries=["JP"], regions=["east_asia"],
              duplicate_of="https://news-b.example/old"),
        story("https://mext.example/late", "2026-11-11T03:00:00Z", title="MEXT found late",
              areas=["research_security"], countries=["JP"], regions=["east_asia"]),
    ])
    s.save_subscribers([{"email": "dana@example.org", "areas": ["research_security"],
                         "countries": ["JP"]}])
    wire = s.item_id_for_url("https://news-a.example/wire")
    with serving(db_path, tmp_path) as base:
        serve_url = f"{base}/{db_path.stem}"
        digest, _, _ = parts(s, settings_with(serve_url=serve_url), "dana@example.org",
                             late_after)
        shown = {entry.story.url: entry.story for entry in digest.headlines.entries}
        section = Section("research_security", "Research security", [])
        assert set(shown) == {"https://mext.example/security", "https://mext.example/other"}
        page_link = more_link(digest, section, serve_url)
        rows = _page(page_link)
        assert [row["url"] for row in rows] == ["https://mext.example/security",
                                                "https://mext.example/other"]
        ministry = rows[0]
        assert ministry["title"] == shown[ministry["url"]].title
        assert ministry["source_id"] == "jp-mext" == shown[ministry["url"]].source.id
        assert ministry["published_at"] == week(6)
        assert ministry["id"] == wire  # the story's id, its original's
        shown_item = s.item_id_for_url("https://mext.example/security")
        assert ministry["item_id"] == shown_item
        assert ministry["countries"] == '["JP"]'
        status, page = get(page_link)
        assert status == 200 and "MEXT research security rules" in page
        assert "Wire: Japan tightens" not in page and "news-a.example/wire" not in page
        # item_id links to the item's row, as id does to the original's
        assert f'<a href="/{db_path.stem}/items/{shown_item}">{shown_item}</a>' in page
        assert {row["url"] for row in rows} == listed(stiwatch, more_commands(digest, section))

        # The late section: the story stored since the last digest, not the older story
        # whose ministry page came since (the digest and `search --after-id` leave it out).
        [late] = [x for x in digest.sections if x.id == LATE]
        assert [entry.story.url for entry in late.entries] == ["https://mext.example/late"]
        late_link = more_link(digest, late, serve_url)
        assert f"id__gt={late_after}" in late_link
        assert [row["url"] for row in _page(late_link)] == ["https://mext.example/late"]
        assert listed(stiwatch, more_commands(digest, late)) == {"https://mext.example/late"}
        # Unfiltered by id, the older story is its ministry's page, once.
        older = _page(late_link.replace(f"&id__gt={late_after}", ""))
        assert [row["url"] for row in older] == ["https://mext.example/late",
                                                 "https://mext.example/old-own"]

        # The page's filters find what they found: the story by its original's tags.
        whole = f"{serve_url}/items_tagged_json?published_at__gte=2026-11-16"
        for where, found in (("", True), ("&policy=1", True), ("&policy=0", False),
                             ("&countries__arraycontains=JP", True),
                             ("&countries__arraycontains=US", False),
                             ("&regions__arraycontains=east_asia", True),
                             ("&_tags_any=countries:US,regions:east_asia", True),
                             ("&_tags_any=countries:US,regions:europe", False),
                             ("&areas__arraycontains=research_security", True),
                             ("&areas__arraynotcontains=research_security", False),
                             ("&published_at__lt=2026-11-17T05:00:00Z", False),
                             (f"&id__gt={wire - 1}", True), (f"&id__gt={wire}", False)):
            urls = [row["url"] for row in _page(whole + where)]
            assert urls.count("https://mext.example/security") == int(found), where
            assert "https://news-a.example/wire" not in urls, where
        # Counted and faceted as listed, each story once (`stiwatch serve` counts the stories
        # of a page filtered by tags alone from their originals).
        for where in ("", "?policy=1", "?policy=1&countries__arraycontains=JP",
                      "?_tags_any=countries:US,regions:east_asia", f"?id__gt={wire}"):
            data = json.loads(get(f"{serve_url}/items_tagged_json.json{where}"
                                  f"{'&' if where else '?'}_size=max&_facet_tag=countries")[1])
            urls = [row[data["columns"].index("url")] for row in data["rows"]]
            assert len(urls) == len(set(urls)) == data["filtered_table_rows_count"], where
            results = data["facet_results"]
            results = results.get("results", results)
            assert {v["value"]: v["count"] for v in results["countries"]["results"]} == (
                {"JP": len(urls)} if urls else {}), where
            assert ("https://mext.example/security" in urls) == (f"id__gt" not in where), where
        # Tagged otherwise, the ministry's page is still listed by the original's tags.
        s.save_classifications([(ids["https://mext.example/old-own"], [
            {"facet": "policy", "value": "0", "score": 0.2, "method": "model"},
            {"facet": "country", "value": "US", "score": 0.8, "method": "rules"}])], "test-2")
        older = _page(f"{serve_url}/items_tagged_json?policy=1&countries__arraycontains=JP"
                      "&published_at__lt=2026-11-11")
        assert [row["url"] for row in older] == ["https://mext.example/old-own"]


def test_the_pages_search_lists_a_story_whose_words_are_only_in_a_copy(db_path, tmp_path,
                                                                         stiwatch):
    """A reader following '"Horizon Europe"' got a story whose words were in one of its copies
    only (a newspaper's copy of a ministry's page, or the ministry's page shown for a wire's
    report), and the page the digest links to, searching for the same words, left it out: it
    matched the story's original alone. It lists every story the digest selects, each once,
    as `stiwatch search` does."""
    week = "2026-11-1{}T0{}:00:00Z".format
    horizon = "Association to Horizon Europe lets researchers apply."
    s = build(db_path, [
        # the ministry's page (shown) says nothing of it; a newspaper's copy names it
        story("https://mext.example/assoc", week(7, 1), title="Japan begins association talks",
              summary="The ministry opened talks with the Commission.", areas=["international"],
              countries=["JP"], regions=["east_asia"]),
        story("https://news-a.example/assoc", week(7, 5), source="news-a",
              title="Japan begins association talks", summary=horizon,
              duplicate_of="https://mext.example/assoc"),
        # a wire's report stored first, the funder's own page (shown) naming it
        story("https://news-b.example/uk", week(8, 1), source="news-b",
              title="UK researchers eligible", summary="British researchers may now apply.",
              areas=["international"], countries=["GB"], regions=["europe"]),
        story("https://uk-ukri.example/uk", week(8, 3), source="uk-ukri",
              title="UK researchers eligible", summary=horizon,
              duplicate_of="https://news-b.example/uk"),
        # the original names it
        story("https://eu-rtd.example/calls", week(9, 1), source="eu-rtd",
              title="Horizon Europe opens its 2027 calls", areas=["public_research"],
              countries=["EU"], regions=["europe"]),
        # names neither
        story("https://de-bmbf.example/budget", week(9, 2), source="de-bmbf",
              title="Germany asks for a larger research budget", summary="Horizon and Europe.",
              areas=["public_research"], countries=["DE"], regions=["europe"]),
    ])
    s.save_subscribers([{"email": "dana@example.org", "query": '"Horizon Europe"'}])
    with serving(db_path, tmp_path) as base:
        serve_url = f"{base}/{db_path.stem}"
        digest, _, _ = parts(s, settings_with(serve_url=serve_url), "dana@example.org")
        selected = {entry.story.url for section in [digest.headlines, *digest.sections]
                    for entry in section.entries}
        assert selected == {"https://mext.example/assoc", "https://uk-ukri.example/uk",
                            "https://eu-rtd.example/calls"}
        search = urllib.parse.urlencode({"_search": '"Horizon Europe"'})
        link = f"{serve_url}/items_tagged_json?{search}&published_at__gte=2026-11-16"
        rows = _page(link)
        assert sorted(row["url"] for row in rows) == sorted(selected)
        # search finds the same stories, each shown as an item of it that names the words
        assert listed(stiwatch, ['stiwatch search --since 2026-11-16 -- \'"Horizon Europe"\'']
                      ) == selected - {"https://mext.example/assoc"} | {
                          "https://news-a.example/assoc"}
        # counted and faceted as listed
        data = json.loads(get(f"{serve_url}/items_tagged_json.json?{search}"
                              "&published_at__gte=2026-11-16&_facet_tag=regions")[1])
        assert data["filtered_table_rows_count"] == 3
        results = data["facet_results"]
        results = results.get("results", results)
        assert {v["value"]: v["count"] for v in results["regions"]["results"]} == {
            "europe": 2, "east_asia": 1}
        status, page = get(link)
        assert status == 200 and "Japan begins association talks" in page
        # items and items_tagged list items, each searched on its own text
        for table in ("items", "items_tagged"):
            assert {row["url"] for row in _page(f"{serve_url}/{table}?{search}")} == {
                "https://news-a.example/assoc", "https://uk-ukri.example/uk",
                "https://eu-rtd.example/calls"}, table


def test_the_more_lines_page_lists_the_weeks_sunday_evening_in_tokyo_and_not_the_last_weeks(
        db_path, tmp_path, stiwatch):
    """The link bounded the week as `published_at__gte=2026-11-15 15:00:00`, while the store
    writes `2026-11-15T10:00:00Z`: Datasette compares text, and "T" sorts after the space, so
    the page listed a report of Sunday 19:00 in Tokyo of the week before and left out one of
    Sunday 19:00 of the digest's own week (every report of the UTC day the week ends on), which
    the digest counted and its commands list."""
    s = build(db_path, [
        *[story(f"https://nsf.example/w47-{n}", f"2026-11-18T0{n}:00:00Z", source="us-nsf",
                title=f"NSF rule {n}", areas=["research_security"]) for n in range(3)],
        story("https://mext.example/sunday-w47", "2026-11-22T10:00:00Z",
              title="MEXT Sunday evening, this week", areas=["research_security"]),
        story("https://mext.example/sunday-w46", "2026-11-15T10:00:00Z",
              title="MEXT Sunday evening, the week before", areas=["research_security"]),
    ])
    s.save_subscribers([{"email": "all@example.org"}])
    with serving(db_path, tmp_path) as base:
        serve_url = f"{base}/{db_path.stem}"
        digest, _, _ = parts(s, settings_with(serve_url=serve_url, digest_section_cap="1"),
                             "all@example.org")
        assert digest.total == 4
        section = Section("research_security", "Research security", [])
        commands = more_commands(digest, section)
        expected = {*(f"https://nsf.example/w47-{n}" for n in range(3)),
                    "https://mext.example/sunday-w47"}
        assert listed(stiwatch, commands) == expected
        link = more_link(digest, section, serve_url)
        assert {row["url"] for row in _page(link)} == expected
        status, page = get(link)
        assert status == 200
        # the page's title names the bounds as the store writes them: in UTC, saying so
        assert "2026-11-15T15:00:00Z" in unescape(page)
