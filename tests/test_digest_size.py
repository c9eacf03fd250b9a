"""A busy week's digest and Gmail's clipping: Gmail shows an HTML part over about 102 KB cut
short ("[Message clipped] View entire message"), hiding the later stories and the footer with
the unsubscribe link. The markup is kept lean, and what still does not fit the budget is left
out, lowest-ranked first, with a line saying how many more matched and how to list them."""

from __future__ import annotations

import random

import pytest

from digeststore import build, story
from digest.render import render_html, render_text
from digest.send import compose, prepare_week
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

    def words(count: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(count))

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
                areas=[a for a in (area, rng.choice(AREAS)) if a],
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


def test_a_busy_weeks_digest_shows_every_story_in_less_than_gmail_clips(busy):
    # 5 headlines and 8 stories in each of 9 areas: the 77 stories of the busiest digests of
    # bench/digest_render.py's week, which were 120-135 KB of HTML when every line of every
    # story carried its styles inline (this one was 136 KB).
    digest = compose(prepare_week(busy, WEEK), None, settings(digest_section_cap=8))
    assert digest.shown == 77
    html = render_html(digest, chart_src="cid:chart@x", unsubscribe=UNSUBSCRIBE)
    assert len(html.encode("utf-8")) < GMAIL_CLIPS - 10_000
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
    "why": {"font-size": "12px", "line-height": "16.8px", "color": "rgb(123, 135, 148)",
            "font-style": "italic", "margin-bottom": "0px"},
}


@pytest.mark.browser
def test_story_lines_look_as_they_did_in_chromium(busy, tmp_path, chromium_page):
    digest = compose(prepare_week(busy, WEEK), None, settings(digest_section_cap=8))
    path = tmp_path / "digest.html"
    path.write_text(render_html(digest, chart_src=None, unsubscribe=UNSUBSCRIBE), "utf-8")
    page = chromium_page
    page.goto(path.as_uri())
    looks = page.evaluate("""styles => {
        const covered = [...document.querySelectorAll('div')].find(
            d => d.textContent.trim().startsWith('Covered by'));
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
