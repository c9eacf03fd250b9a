"""A busy week's digest and Gmail's clipping: Gmail shows an HTML part over about 102 KB cut
short ("[Message clipped] View entire message"), hiding the later stories and the footer with
the unsubscribe link. The markup is kept lean, and what still does not fit the budget is left
out, lowest-ranked first, with a line saying how many more matched and how to list them."""

from __future__ import annotations

import email
from email import policy
import random
import re
import shlex

from click.testing import CliRunner
import pytest

from digeststore import build, story
from digest.render import render_html
from digest.send import compose, message_bytes, message_for, prepare_week, write_preview
from stiwatch.cli import cli
from digest.weeks import parse_week
from stiwatch.config import load_settings

WEEK = parse_week("2026-W47", "Asia/Tokyo")
AREAS = ["governance", "public_research", "business_innovation", "knowledge_transfer",
         "human_resources", "society", "international", "open_science", "research_security"]
DOMAINS = ["ai", "quantum", "semiconductors", "biotech_health", "energy_climate", "space"]
PLACES = [("JP", "east_asia"), ("US", "north_america"), ("DE", "europe"), ("KR", "east_asia"),
          ("GB", "europe"), ("CN", "east_asia"), ("IN", "south_asia")]
WORDS = ("ministry funding programme research security quantum strategy budget talent open "
         "science agency cooperation semiconductor hydrogen fusion launch call grants university "
         "innovation startups data infrastructure supercomputer climate health vaccine space "
         "council guidelines review international partnership").split()
SOURCES = ["jp-mext", "us-nsf", "eu-rtd", "uk-ukri", "de-bmbf"]


def busy_week(path, per_area: int, seed: int = 47):
    """A week of ``per_area`` policy stories in each area (a fifth also covered by one or two
    news sources), plus a few without an area: titles, summaries and URLs (tracking parameters
    already removed, as the crawler stores them) as long as real ministry and agency pages have
    them."""
    rng = random.Random(seed)
    stories, n = [], 0
    # Different news is worded differently: half of each text's words are made up, from a few
    # thousand, so two stories share some words, not nearly all of them, and are not taken for
    # reports of one event (digest.events). Drawn from a second generator, so the stories are
    # otherwise those the sizes below were measured on.
    made_up = random.Random(seed + 1)
    vocabulary = ["".join(made_up.choice("bdfgklmnprstvz") + made_up.choice("aeiou")
                          for _ in range(made_up.randint(2, 5))) for _ in range(3000)]

    def words(count: int) -> str:
        return " ".join(word if made_up.random() < 0.5 else made_up.choice(vocabulary)
                        for word in (rng.choice(WORDS) for _ in range(count)))

    for area in AREAS + [None] * 1:
        for _ in range(per_area if area else 4):
            n += 1
            country, region = rng.choice(PLACES)
            url = (f"https://www.{rng.choice(SOURCES)}.example/en/news/2026/11/"
                   f"{words(4).replace(' ', '-')}-{n:05d}.html")
            title = words(12).capitalize()
            stories.append(story(
                url, f"2026-11-{16 + n % 7:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                source=rng.choice(SOURCES), title=title,
                summary=f"{words(25).capitalize()}. {words(30).capitalize()}.",
                score=round(rng.uniform(0.5, 1.0), 3),
                areas=[a for a in (area, rng.choice([a for a in AREAS if a != area])) if a],
                area_scores={area: 0.95} if area else {},
                domains=rng.sample(DOMAINS, rng.randint(0, 2)),
                countries=[country], regions=[region]))
            for copy in range(rng.choice([0, 0, 0, 0, 1, 2])):
                stories.append(story(url.replace("www.", f"news{copy}.").replace(
                    "/en/news/", "/wire/"), stories[-1]["published"], source=f"news-{'ab'[copy]}",
                    title=title + " (wire)", duplicate_of=url))
    return build(path, stories)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    return busy_week(tmp_path_factory.mktemp("busy") / "stiwatch.db", per_area=12)


def settings(**values):
    return load_settings(environ={f"STIWATCH_{k.upper()}": str(v) for k, v in values.items()})


UNSUBSCRIBE = "https://digest.agency.example/unsubscribe?who=aiko%40agency.example"


GMAIL_CLIPS = 102 * 1024  # bytes of HTML, about


# A reader who follows every area: as many stories as an unfiltered one, each with its "why"
# line (an unfiltered reader's stories have none), so the largest digest of the week.
EVERY_AREA = {"email": "aiko@agency.example", "areas": AREAS}


def test_a_busy_weeks_digest_shows_every_story_in_less_than_gmail_clips(busy):
    # 5 headlines and 8 stories in each of 9 areas: the 77 stories of the busiest digests of
    # bench/digest_render.py's week, which were 120-135 KB of HTML when every line of every
    # story carried its styles inline (this one was 136 KB).
    digest = compose(prepare_week(busy, WEEK), EVERY_AREA, settings(digest_section_cap=8))
    assert digest.shown == 77
    html = render_html(digest, chart_src="cid:chart@x", unsubscribe=UNSUBSCRIBE)
    assert len(html.encode("utf-8")) < GMAIL_CLIPS - 5_000
    assert html.count("Why you got this:") == 77
    assert UNSUBSCRIBE in html


STYLES = ("font-size", "line-height", "font-weight", "font-style", "color", "text-decoration-line",
          "margin-bottom", "padding-top", "padding-left", "border-top-width", "border-top-color",
          "overflow-wrap", "word-break")
# The computed look of each line of a story, as the inline styles gave it before they became
# classes of the <style> block.
LOOK = {
    "cell": {"padding-top": "12px", "padding-left": "20px", "border-top-width": "1px",
             "border-top-color": "rgb(228, 231, 235)", "overflow-wrap": "anywhere",
             "word-break": "break-word"},
    "title": {"font-size": "16px", "line-height": "20.8px", "font-weight": "700",
              "margin-bottom": "4px"},
    "link": {"color": "rgb(11, 79, 138)", "text-decoration-line": "none", "font-size": "16px"},
    "meta": {"font-size": "12px", "line-height": "16.8px", "color": "rgb(82, 96, 109)",
             "margin-bottom": "6px"},
    "summary": {"font-size": "14px", "line-height": "21px", "color": "rgb(31, 41, 51)",
                "margin-bottom": "6px"},
    "covered": {"font-size": "12px", "color": "rgb(82, 96, 109)", "margin-bottom": "4px"},
    "source": {"color": "rgb(11, 79, 138)", "text-decoration-line": "underline"},
    "why": {"font-size": "12px", "line-height": "16.8px", "color": "rgb(97, 110, 124)",
            "font-style": "italic", "margin-bottom": "0px"},
}


@pytest.mark.browser
def test_story_lines_look_as_they_did_in_chromium(busy, tmp_path, chromium_page):
    digest = compose(prepare_week(busy, WEEK), EVERY_AREA, settings(digest_section_cap=8))
    path = tmp_path / "digest.html"
    path.write_text(render_html(digest, chart_src=None, unsubscribe=UNSUBSCRIBE), "utf-8")
    page = chromium_page
    page.goto(path.as_uri())
    looks = page.evaluate("""styles => {
        const covered = [...document.querySelectorAll('div')].find(
            d => d.textContent.trim().startsWith('Also reported by'));
        const cell = covered.closest('td');
        const divs = [...cell.children];
        const pick = el => Object.fromEntries(styles.map(
            s => [s, getComputedStyle(el).getPropertyValue(s)]));
        return {cell: pick(cell), title: pick(divs[0]), link: pick(divs[0].querySelector('a')),
                meta: pick(divs[1]), summary: pick(divs[2]), covered: pick(covered),
                source: pick(covered.querySelector('a')),
                why: pick(divs.find(d => d.textContent.trim().startsWith('Why you got this')))};
    }""", list(STYLES))
    for line, expected in LOOK.items():
        assert {k: looks[line][k] for k in expected} == expected, line


BUDGET = 90_000


def parts(bundle, subscriber, config):
    """(digest, text part, HTML part) of the e-mail a reader gets, read back from its bytes."""
    digest = compose(bundle, subscriber, config)
    msg = email.message_from_bytes(message_bytes(message_for(bundle, digest, config)),
                                   policy=policy.default)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    return digest, text.replace("\r\n", "\n"), html


def primary_areas_in_store(store) -> dict[str, int]:
    """Policy stories of the week per their best area, counted in the store itself."""
    rows = store.conn.execute(
        """SELECT t.value, count(*) FROM items i JOIN tags t ON t.item_id = i.id
           WHERE t.facet = 'area' AND i.duplicate_of IS NULL
             AND julianday(i.published_at) >= julianday(?)
             AND julianday(i.published_at) < julianday(?)
             AND t.score = (SELECT max(score) FROM tags WHERE item_id = i.id AND facet = 'area')
             AND EXISTS (SELECT 1 FROM tags p WHERE p.item_id = i.id AND p.facet = 'policy'
                         AND p.value = '1')
           GROUP BY t.value""", [WEEK.start_utc, WEEK.end_utc]).fetchall()
    return dict(rows)


def more_lines(text: str) -> dict[str, int]:
    return {title: int(n) for n, title in
            re.findall(r"\.\.\. and (\d+) more in (.+?) not shown", text)}


def test_an_over_budget_digest_fits_leaving_out_its_lowest_ranked_stories(busy):
    config = settings(digest_section_cap=15)
    bundle = prepare_week(busy, WEEK)
    whole = compose(bundle, EVERY_AREA, config)
    whole_html = render_html(whole, chart_src="cid:c@x", unsubscribe=UNSUBSCRIBE)
    assert len(whole_html.encode("utf-8")) > BUDGET + 20_000  # 113 stories: Gmail clipped it

    digest, text, html = parts(bundle, EVERY_AREA, config)
    size = len(html.encode("utf-8"))
    assert BUDGET - 3_000 < size <= BUDGET  # cut to the budget, not far below it
    assert digest.shown < whole.shown and digest.total == whole.total
    # Every section is still there with a story, and says how many more matched.
    assert [s.title for s in digest.sections] == [s.title for s in whole.sections]
    assert all(s.entries for s in digest.sections)
    assert len(digest.headlines.entries) == 5
    for section in digest.sections:
        assert (f'<h2 style="margin:0;font-size:17px;line-height:1.3;color:#0b4f8a;">'
                f"{section.title}</h2>") in html
    # The "N more" lines, in both parts, against the store: shown + more = the section's
    # stories (those of its area not already in the headlines).
    counts = primary_areas_in_store(busy)
    headline_areas = [e.story.primary_area for e in digest.headlines.entries]
    said = more_lines(text)
    assert said == {s.title: s.more for s in digest.sections if s.more}
    assert sorted(said.items()) == sorted(
        (t, int(n)) for n, t in re.findall(r"… and (\d+) more in (.+?) not shown", html))
    for section in digest.sections:
        assert len(section.entries) + section.more == counts[section.id] - headline_areas.count(
            section.id), section.title
    assert sum(counts.values()) == digest.total
    # Lowest-ranked first: no story left out ranks above a shown one (a section's top story
    # aside, which stays while any other can go).
    shown_ids = {e.story.id for s in digest.sections for e in s.entries}
    left_out = [e.story for s in whole.sections for e in s.entries if e.story.id not in shown_ids]
    kept = [e.story for s in digest.sections for e in s.entries[1:]]
    assert left_out and max(story.rank_key() for story in kept) < min(
        story.rank_key() for story in left_out)
    # The text part lists the same stories as the HTML one.
    assert text.count("\n* ") == html.count('<td class="s">') == digest.shown
    for part in (text, html):
        assert f"the top {digest.shown} are below" in part
    # The footer and the unsubscribe link close both.
    assert "because you subscribed" in html
    assert html.rstrip().endswith("</html>")
    assert 'Unsubscribe</a>' in html[-1500:] and "Unsubscribe: " in text[-400:]


def test_the_more_line_says_how_to_list_the_stories_with_the_readers_filters(busy):
    config = settings(digest_section_cap=1)
    bundle = prepare_week(busy, WEEK)
    reader = {"email": "aiko@agency.example", "name": "Aiko", "domains": ["quantum", "ai"],
              "countries": ["JP"], "regions": ["europe"]}
    digest, text, html = parts(bundle, reader, config)
    section = next(s for s in digest.sections if s.more)
    commands = [c for c in re.findall(r"^    (stiwatch search .*)$", text, re.M)
                if f"--area {section.id} " in c]
    # The digest takes stories about Japan or Europe; search's filters must all match: one
    # command for each.
    assert commands == [
        f"stiwatch search --policy --area {section.id} --domain quantum --domain ai "
        f"--country JP --since 2026-11-16 --until 2026-11-22",
        f"stiwatch search --policy --area {section.id} --domain quantum --domain ai "
        f"--region europe --since 2026-11-16 --until 2026-11-22"]
    for command in commands:
        assert f"<code>{command}</code>" in html
    assert f"{section.more} more in {section.title} not shown. To list them:" in text
    # Run as printed, they list every story of the section the digest left out.
    whole = compose(bundle, reader, settings(digest_section_cap=1000))
    missing = {e.story.title for s in [whole.headlines, *whole.sections] for e in s.entries
               if e.story.primary_area == section.id}
    missing -= {e.story.title for s in [digest.headlines, *digest.sections] for e in s.entries}
    assert len(missing) == section.more
    found = set()
    for command in commands:
        args = shlex.split(command)[1:]
        result = CliRunner().invoke(cli, ["--db", str(busy.path), *args, "--format", "json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        found |= {row["title"] for row in __import__("json").loads(result.output)}
    assert missing <= found


@pytest.mark.browser
def test_a_cut_digest_reads_to_its_footer_in_chromium(busy, tmp_path, chromium_page):
    config = settings(digest_section_cap=15, list_unsubscribe=UNSUBSCRIBE.replace(
        "aiko%40agency.example", "{email}"))
    reader = {"email": "aiko@agency.example", "name": "Aiko"}
    html_path, _, digest = write_preview(busy, config, WEEK, tmp_path / "d.html", reader)
    assert len(html_path.read_bytes()) <= BUDGET
    assert any(s.more for s in digest.sections)
    page = chromium_page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(html_path.as_uri())
    assert page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    titles = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert titles == ["Headlines", *[s.title for s in digest.sections], "Trends"]
    more = page.evaluate("""[...document.querySelectorAll('td')].map(td => td.innerText)
        .filter(t => t.startsWith('… and '))""")
    assert len(more) == sum(1 for s in digest.sections if s.more)
    assert all("stiwatch search --policy" in line for line in more)
    link = page.locator("a", has_text="Unsubscribe")
    assert link.get_attribute("href") == UNSUBSCRIBE
    assert link.is_visible()
