"""The digest e-mail as a reader gets it: MIME structure, headers, escaping of crawled text,
the plain-text twin, the preview command, and a phone-width rendering in headless Chromium."""

from __future__ import annotations

import base64
import binascii
from datetime import date
import email
from email import policy
from html.parser import HTMLParser
import json
import math
import re

import pytest

from digeststore import G7_MEETING, JAPAN_SECURITY, add, build, story
from digest.chart import chart_figure, chart_key
from digest.render import render_html
from digest.send import message_bytes, message_for, prepare_week, compose, send_week
from digest.weeks import parse_week
from stiwatch.config import load_settings

WEEK = parse_week("2026-W47", "Asia/Tokyo")
HOSTILE = 'Ministry <script>alert("x")</script> <img src=x onerror=alert(1)> plan'


@pytest.fixture
def store(db_path):
    stories = [
        story("javascript:alert(1)", "2026-11-17T01:00:00Z", title=HOSTILE,
              summary='<b onmouseover="steal()">Bold</b> claims & more. Second sentence. Third.',
              areas=["governance"], countries=["JP"], regions=["east_asia"], score=0.99),
        story("https://x.example/orig", "2026-11-16T01:00:00Z", title="Quantum moonshot for labs",
              summary="Japan expands its moonshot programme.", areas=["public_research"],
              domains=["quantum"], countries=["JP"], regions=["east_asia"]),
        story("https://news-a.example/copy", "2026-11-16T06:00:00Z", source="news-a",
              title="Quantum moonshot (syndicated)", duplicate_of="https://x.example/orig"),
        *[story(f"https://x.example/n{i}", f"2026-11-18T0{i}:00:00Z", source="us-nsf",
                title=f"NSF security rule {i}", areas=["research_security"], countries=["US"],
                regions=["north_america"], score=0.7) for i in range(8)],
        story("https://x.example/old", "2026-11-04T01:00:00Z", title="Older governance",
              areas=["governance"]),
    ]
    s = build(db_path, stories)
    s.save_subscribers([{"email": "aiko@example.org", "name": "Aiko <Sato>"}])
    return s


@pytest.fixture
def settings():
    return load_settings(environ={"STIWATCH_MAIL_FROM": "STI Watch <digest@agency.example>",
                                  "STIWATCH_DIGEST_SECTION_CAP": "3"})


def build_message(store, settings, email_addr="aiko@example.org", week=WEEK):
    bundle = prepare_week(store, week)
    digest = compose(bundle, store.get_subscriber(email_addr), settings)
    raw = message_bytes(message_for(bundle, digest, settings))
    return digest, email.message_from_bytes(raw, policy=policy.default)


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.links, self.images, self.text = [], [], [], [], []
        self.alts, self.rows = [], []  # rows: the cells' text of each table row
        # Inside a display:none <div> (the inbox preheader): text no reader sees on the page.
        self.hidden = 0
        # (row, cell) of each open cell, innermost last: the text after a table nested in a
        # cell (a trend table's notes) is that cell's, not its last row's.
        self.cells = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]
        attrs = dict(attrs)
        if tag == "div" and (self.hidden or "display:none" in (attrs.get("style") or "")):
            self.hidden += 1
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag == "img":
            self.images.append(attrs.get("src"))
            self.alts.append(attrs.get("alt"))
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
            self.cells.append((len(self.rows) - 1, len(self.rows[-1]) - 1))

    def handle_endtag(self, tag):
        if tag == "div" and self.hidden:
            self.hidden -= 1
        if tag in ("td", "th") and self.cells:
            self.cells.pop()

    def handle_data(self, data):
        if self.hidden:
            return
        self.text.append(data)
        if self.cells:
            row, cell = self.cells[-1]
            self.rows[row][cell] = " ".join(f"{self.rows[row][cell]} {data}".split())


def parse_html(html):
    collector = Collector()
    collector.feed(html)
    collector.text = " ".join(" ".join(collector.text).split())
    return collector


def test_structure_headers_and_inline_chart(store, settings):
    digest, msg = build_message(store, settings)
    assert msg.get_content_type() == "multipart/related"
    alternative, image = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert image.get_content_type() == "image/png"
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    html = alternative.get_payload()[1].get_content()
    # nothing fetched from the network: the HTML shows the part inside the message
    assert parse_html(html).images == ["cid:" + image["Content-ID"].strip("<>")]

    assert msg["Subject"] == "STI policy digest 2026-W47 (16–22 Nov 2026): 10 stories"
    assert msg["From"] == "STI Watch <digest@agency.example>"
    assert msg["To"].addresses[0].addr_spec == "aiko@example.org"
    # By default the unsubscribe request goes to the mail_from address, not a placeholder host.
    assert msg["List-Unsubscribe"] == "<mailto:digest@agency.example?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in msg
    # Marked as an automatic bulk mailing: no out-of-office replies (docs/operations.md).
    assert (msg["Auto-Submitted"], msg["Precedence"]) == ("auto-generated", "bulk")
    first = msg["Message-ID"]
    assert first.startswith("<digest-2026-W47-") and first.endswith("@agency.example>")
    _, again = build_message(store, settings)
    assert again["Message-ID"] == first  # stable for (subscriber, week)
    store.save_subscribers([{"email": "ben@example.org"}])
    _, other = build_message(store, settings, "ben@example.org")
    assert other["Message-ID"] != first


def test_the_charts_content_id_is_a_msg_id_the_html_points_at(store, settings):
    # It was <trends-chart>, with no @domain: not the msg-id form RFC 2392 and 5322 ask for,
    # and some mail clients showed no chart.
    _, msg = build_message(store, settings)
    _, image = msg.get_payload()
    mid = msg["Message-ID"].strip("<>")
    content_id = image["Content-ID"]
    assert content_id == f"<trends-chart.{mid.partition('@')[0]}@agency.example>"
    assert content_id.startswith("<") and content_id.endswith(">")
    left, at, right = content_id.strip("<>").partition("@")
    assert left and at and right == "agency.example" and "@" not in right
    html = msg.get_payload()[0].get_payload()[1].get_content()
    assert parse_html(html).images == [f"cid:{left}@{right}"]
    store.save_subscribers([{"email": "ben@example.org"}])
    _, other = build_message(store, settings, "ben@example.org")
    assert other.get_payload()[1]["Content-ID"] != content_id  # unique to its message


def test_the_chart_has_two_pixels_for_each_css_pixel_of_its_img(store, settings):
    # At 1x (a 600-pixel PNG in a 600-pixel <img>) it was blurred on every phone and retina
    # screen, which draw 2 or 3 device pixels per CSS pixel.
    from PIL import Image
    import io

    _, msg = build_message(store, settings)
    alternative, image = msg.get_payload()
    html = alternative.get_payload()[1].get_content()
    [img] = re.findall(r"<img [^>]*>", html)
    width, height = (int(re.search(rf'{name}="(\d+)"', img).group(1))
                     for name in ("width", "height"))
    assert (width, height) == (600, 575)
    assert "max-width:600px;height:auto" in img  # scales down on a phone, keeping its shape
    png = Image.open(io.BytesIO(image.get_content()))
    assert png.size == (2 * width, 2 * height)
    assert len(image.get_content()) < 100_000  # it travels in every message


def test_chart_is_readable_on_a_phone_in_grey_and_blank_where_nothing_was_watched(db_path):
    # The store begins in W44: the 12-week chart leaves W36-W43 blank instead of drawing 0s.
    s = build(db_path, [
        *[story(f"https://x.example/{area}{week}",
                f"{date.fromisocalendar(2026, week, 3)}T03:00:00Z", areas=[area])
          for week in (44, 45, 46, 47)
          for area in ("governance", "public_research", "open_science", "research_security",
                       "international", "society", "human_resources", "knowledge_transfer",
                       "business_innovation")],
    ])
    report = prepare_week(s, WEEK).trends
    figure = chart_figure(report)
    # Shown 350 CSS px wide on a phone: every word on the chart at least 9 px high there.
    scale = 350 / (figure.get_figwidth() * figure.dpi)
    axes = figure.axes[0]
    words = [axes.title, axes.yaxis.label, *axes.get_xticklabels(), *axes.get_yticklabels(),
             axes.get_legend().get_title(), *axes.get_legend().get_texts()]
    assert axes.yaxis.label.get_text() == "Reports per week"
    small = [(t.get_text(), round(t.get_fontsize() * figure.dpi / 72 * scale, 1))
             for t in words if t.get_text() and t.get_fontsize() * figure.dpi / 72 * scale < 9]
    assert not small, small
    lines = axes.get_lines()
    assert len(lines) == 9
    # In grey every line still differs from the others by its dash pattern or its marker.
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 9
    for line in lines:
        values = list(line.get_ydata())
        assert all(math.isnan(v) for v in values[:8]) and values[8:] == [1, 1, 1, 1]
    [alt] = parse_html(render_html(compose(prepare_week(s, WEEK), None, load_settings(environ={})),
                                   chart_src="c.png")).alts
    assert ("2026-W36 to 2026-W47 (12 weeks); weeks before 2026-W44 blank: the store holds "
            "nothing earlier, one line per area") in alt


NINE_AREAS = ("governance", "public_research", "open_science", "research_security",
              "international", "society", "human_resources", "knowledge_transfer",
              "business_innovation")


def nine_area_store(db_path, weeks=(44, 45, 46, 47)):
    """A store with stories in each of the nine areas in each of ``weeks`` (2026): the n-th
    area has n or n + 1 a week, so no line hides another."""
    return build(db_path, [
        story(f"https://x.example/{area}{week}-{k}",
              f"{date.fromisocalendar(2026, week, 3)}T0{k % 10}:00:00Z", areas=[area])
        for week in weeks for n, area in enumerate(NINE_AREAS, 1)
        for k in range(n + week % 2)])


WHITE, DARK, BLACK = (255, 255, 255), (0x1B, 0x20, 0x27), (0, 0, 0)  # DARK: the dark card


def luminance(rgb):
    channels = [v / 255 for v in rgb]
    channels = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a, b):
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def hex_rgb(colour):
    from matplotlib.colors import to_rgb

    return tuple(round(v * 255) for v in to_rgb(colour))


def near(pixels, rgb, distance=12):
    """Mask of the pixels (an H x W x 3+ array) within ``distance`` of colour ``rgb``."""
    import numpy

    return (numpy.abs(pixels[..., :3].astype(int) - numpy.array(rgb)).max(axis=-1) <= distance)


def test_the_chart_reads_on_white_and_on_dark_backgrounds(db_path):
    # The chart was an opaque white picture: in a mail app's dark mode, a bright block in the
    # dark page. Now it is transparent: the page's own background shows through, light or dark,
    # where mail apps that darken a message (Gmail's and Outlook's apps) leave pictures alone.
    import io

    import numpy
    from PIL import Image

    from digest.chart import HALO_COLOUR, INK, area_chart

    report = prepare_week(nine_area_store(db_path), WEEK).trends
    pixels = numpy.asarray(Image.open(io.BytesIO(area_chart(report))).convert("RGBA"))
    # Each line, as drawn in the PNG: at least 3:1 on white, on the digest's dark card and on
    # black (WCAG 1.4.11), which no Okabe-Ito black, wine or sky blue line was. The text: dark
    # on white (4.5:1 at least), and on a dark page each glyph stands on its white halo, never
    # on the page itself: no text pixel touches a transparent one.
    figure = chart_figure(report)
    assert len(figure.axes[0].get_lines()) == 9
    assert contrast(hex_rgb(INK), WHITE) >= 4.5
    assert contrast(hex_rgb(INK), hex_rgb(HALO_COLOUR)) >= 4.5
    assert_reads_in_both_schemes(pixels, figure)


@pytest.mark.browser
def test_in_dark_mode_the_chart_is_no_white_block_and_its_lines_and_text_read(db_path, settings,
                                                                              tmp_path,
                                                                              chromium_page):
    # The chart stayed a light picture: in Apple Mail's and iOS Mail's dark mode, a white
    # block of 600 x 575 pixels in the dark page. Sampled where Chromium draws it, in each
    # scheme: the same places hold the same line or text in both.
    import numpy
    from PIL import Image

    from digest.chart import INK
    from digest.send import write_preview

    store = nine_area_store(db_path)
    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html")
    page = chromium_page
    page.set_viewport_size({"width": 640, "height": 900})
    shots = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(html_path.as_uri())
        shot = tmp_path / f"{scheme}.png"
        page.locator("img").screenshot(path=str(shot))
        shots[scheme] = numpy.asarray(Image.open(shot).convert("RGB"))
    light, dark = shots["light"], shots["dark"]
    card = numpy.array(DARK)
    # The page shows through: white in the light scheme, the dark card in the dark one.
    assert near(light, WHITE, 2).mean() > 0.75
    assert near(dark, DARK, 2).mean() > 0.75
    assert (numpy.array([luminance(p) for p in dark.reshape(-1, 3)[::7]]) > 0.4).mean() < 0.05
    report = prepare_week(store, WEEK).trends
    for line in chart_figure(report).axes[0].get_lines():
        where = near(light, hex_rgb(line.get_color()), 10)
        assert where.sum() > 40, line.get_label()
        for shot, background in ((light, WHITE), (dark, tuple(card))):
            rgb = tuple(numpy.median(shot[where], axis=0))
            assert contrast(rgb, background) >= 3, (line.get_label(), rgb, background)
    where = near(light, hex_rgb(INK), 30)
    assert where.sum() > 1000
    for shot, background in ((light, WHITE), (dark, tuple(card))):
        rgb = tuple(numpy.median(shot[where], axis=0))
        assert contrast(rgb, background) >= 4.5, (rgb, background)


def readers_chart(report, **filters):
    """The chart figure of a reader with ``filters``, as their message's chart is drawn."""
    return chart_figure(report, chart_key(report, filters))


def chart_of(msg):
    """The chart a message carries, as RGBA pixels."""
    import io

    import numpy
    from PIL import Image

    return numpy.asarray(Image.open(io.BytesIO(msg.get_payload()[1].get_content()))
                         .convert("RGBA"))


def test_a_reader_who_follows_some_areas_gets_a_chart_of_those(db_path, settings):
    # Every reader got the nine lines of every area, whatever they follow. A reader with an
    # areas filter now gets a line for each of their areas (one without a report in these
    # weeks too: a flat line says so), and the legend and the alt text say what is drawn.
    from digest.chart import COLOURS

    store = nine_area_store(db_path)
    add(store, [story("https://x.example/fusion", "2026-11-18T03:00:00Z", areas=["governance"])])
    store.save_subscribers([
        {"email": "sec@example.org", "areas": ["research_security", "open_science"],
         "countries": ["JP"]},
        {"email": "sec2@example.org", "areas": ["open_science", "research_security"]},
        {"email": "all@example.org"},  # every area
    ])
    bundle = prepare_week(store, WEEK)
    messages = {}
    for reader in ("sec@example.org", "sec2@example.org", "all@example.org"):
        digest = compose(bundle, store.get_subscriber(reader), settings)
        raw = message_bytes(message_for(bundle, digest, settings))
        messages[reader] = email.message_from_bytes(raw, policy=policy.default)

    def alt(reader):
        [text] = parse_html(messages[reader].get_payload()[0].get_payload()[1].get_content()).alts
        return text

    assert ("one line per area you follow: Open science, Research security. All policy reports "
            "per week") in alt("sec@example.org")
    assert ("one line per area with reports: Governance, Public research, Business innovation"
            ) in alt("all@example.org")
    report = bundle.trends
    mine = readers_chart(report, areas=["research_security", "open_science"]).axes[0]
    assert [line.get_label() for line in mine.get_lines()] == ["Open science",
                                                                "Research security"]
    assert mine.get_legend().get_title().get_text() == "The areas you follow, all their reports"
    every = chart_figure(report).axes[0]
    assert len(every.get_lines()) == 9
    assert every.get_legend().get_title().get_text() == "All 9 areas with reports"
    # The PNG in the message is that chart: its two colours, not a third.
    pixels = chart_of(messages["sec@example.org"])
    solid = pixels[..., 3] >= 240
    assert all((solid & near(pixels, hex_rgb(c))).sum() > 300 for c in COLOURS[:2])
    assert (solid & near(pixels, hex_rgb(COLOURS[2]))).sum() == 0
    assert (solid & near(chart_of(messages["all@example.org"]), hex_rgb(COLOURS[8]))).sum() > 100
    # Readers who follow the same areas share one chart, drawn once.
    assert messages["sec@example.org"].get_payload()[1].get_content() == \
        messages["sec2@example.org"].get_payload()[1].get_content()
    assert sorted(bundle.charts) == [("area", ()), ("area", ("open_science",
                                                            "research_security"))]

    # An area followed without a report in these weeks: a flat line at 0, and said so.
    store.save_subscribers([{"email": "new@example.org", "areas": ["research_security"]}])
    quiet = build(db_path.with_name("quiet.db"), [
        story("https://x.example/g", "2026-11-18T03:00:00Z", areas=["governance"])])
    lines = readers_chart(prepare_week(quiet, WEEK).trends, areas=["research_security"]
                          ).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["Research security"]
    assert [v for v in lines[0].get_ydata() if v == v] == [0]  # watched since W47: one 0


PLACES = {"JP": "east_asia", "KR": "east_asia", "CN": "east_asia", "US": "north_america",
          "DE": "europe"}


def country_store(db_path):
    """A store begun in W44 with stories of five countries in W44-W47: the n-th country has n
    or n + 1 a week, so no line hides another; every story has an area too."""
    return build(db_path, [
        story(f"https://x.example/{code}{week}-{k}",
              f"{date.fromisocalendar(2026, week, 3)}T0{k % 10}:00:00Z", areas=["governance"],
              countries=[code], regions=[region])
        for week in (44, 45, 46, 47) for n, (code, region) in enumerate(PLACES.items(), 1)
        for k in range(n + week % 2)])


def messages_of(store, settings, readers):
    bundle = prepare_week(store, WEEK)
    messages = {}
    for reader in readers:
        digest = compose(bundle, store.get_subscriber(reader), settings)
        raw = message_bytes(message_for(bundle, digest, settings))
        messages[reader] = email.message_from_bytes(raw, policy=policy.default)
    return bundle, messages


def alt_of(msg):
    [text] = parse_html(msg.get_payload()[0].get_payload()[1].get_content()).alts
    return text


def assert_reads_in_both_schemes(pixels, figure):
    """The dark-mode checks of the chart of every area, for another chart: transparent, each
    line at least 3:1 on white, the dark card and black, the text on its halo."""
    import numpy

    from digest.chart import INK

    alpha = pixels[..., 3]
    assert alpha[0, 0] == 0 and (alpha == 0).mean() > 0.8, "the background is not transparent"
    opaque = alpha >= 240
    for line in figure.axes[0].get_lines():
        drawn = pixels[opaque & near(pixels, hex_rgb(line.get_color()))][:, :3]
        assert len(drawn) > 300, line.get_label()
        rgb = tuple(numpy.median(drawn, axis=0))
        for background in (WHITE, DARK, BLACK):
            assert contrast(rgb, background) >= 3, (line.get_label(), rgb, background)
    ink = opaque & near(pixels, hex_rgb(INK), 40)
    assert ink.sum() > 5000
    clear = alpha < 64
    beside = numpy.zeros_like(clear)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            beside |= numpy.roll(numpy.roll(clear, dy, axis=0), dx, axis=1)
    assert (ink & beside).sum() < 0.005 * ink.sum()


def test_a_reader_who_follows_only_countries_gets_a_chart_of_those(db_path, settings):
    # A reader following Japan, South Korea and China (no areas) got the chart of every area
    # over every country's reports, which says nothing of their countries. Now: one line per
    # country they follow (one without a report in these weeks too: a flat line), titled and
    # described as such; readers with the same countries share the chart; a reader with an
    # areas filter keeps the chart of their areas.
    from digest.chart import COLOURS, MAX_PLACES, area_chart

    store = country_store(db_path)
    store.save_subscribers([
        {"email": "asia@example.org", "countries": ["JP", "KR", "CN", "BR"]},
        {"email": "asia2@example.org", "countries": ["CN", "BR", "KR", "JP"]},
        {"email": "gov@example.org", "areas": ["governance"], "countries": ["JP", "KR"]},
        # Ten lines or more crowd a phone-width legend and repeat colours: every area.
        {"email": "many@example.org", "countries": ["JP", "KR", "CN", "US", "DE", "FR", "GB",
                                                    "IN", "BR", "CA"][:MAX_PLACES + 1]},
    ])
    bundle, messages = messages_of(store, settings, ["asia@example.org", "asia2@example.org",
                                                     "gov@example.org", "many@example.org"])
    alt = alt_of(messages["asia@example.org"])
    assert alt.startswith("Line chart: policy reports per week by country, 2026-W36 to 2026-W47 "
                          "(12 weeks); weeks before 2026-W44 blank: the store holds nothing "
                          "earlier, one line per country you follow: China, South Korea, Japan, "
                          "Brazil. All policy reports per week from 2026-W44, oldest first: "), alt
    assert "by area" not in alt and "Governance" not in alt
    figure = readers_chart(bundle.trends, countries=["JP", "KR", "CN", "BR"])
    axes = figure.axes[0]
    assert axes.get_title(loc="left") == ("Policy reports per week by country,\n"
                                          "2026-W36 to 2026-W47")
    legend = axes.get_legend().get_title().get_text()
    assert legend == "The countries you follow, all their reports"
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == ["China", "South Korea", "Japan", "Brazil"]
    assert all(math.isnan(v) for v in lines[0].get_ydata()[:8])  # not yet watched: blank
    assert list(lines[0].get_ydata()[8:]) == [3, 4, 3, 4]
    assert list(lines[3].get_ydata()[8:]) == [0, 0, 0, 0]  # Brazil: no report, a flat line
    # The message carries that chart: four colours, not the nine of every area.
    png = messages["asia@example.org"].get_payload()[1].get_content()
    assert png == area_chart(bundle.trends, chart_key(bundle.trends,
                                                {"countries": ["JP", "KR", "CN", "BR"]}))
    pixels = chart_of(messages["asia@example.org"])
    solid = pixels[..., 3] >= 240
    assert all((solid & near(pixels, hex_rgb(c))).sum() > 300 for c in COLOURS[:4])
    assert (solid & near(pixels, hex_rgb(COLOURS[4]))).sum() == 0
    assert_reads_in_both_schemes(pixels, figure)
    # The same countries in another order: the same chart, drawn once.
    assert messages["asia2@example.org"].get_payload()[1].get_content() == png
    # Areas win: a reader who follows an area and countries gets the chart of the area.
    gov = alt_of(messages["gov@example.org"])
    assert "by area" in gov and "one line per area you follow: Governance." in gov
    assert "one line per area with reports: Governance." in alt_of(messages["many@example.org"])
    assert sorted(bundle.charts) == [("area", ()), ("area", ("governance",)),
                                     ("country", ("CN", "KR", "JP", "BR"))]


def test_a_reader_who_follows_countries_gets_a_table_of_them_under_the_chart(db_path,
                                                                            settings):
    # The chart drew a reader's countries, and its alt text said "The tables below count areas,
    # domains and regions, not countries": the numbers of the countries they follow were in no
    # table. Now a table of those countries (this week, the average, the change), in both
    # parts, for any reader with a countries filter; none for a reader without one.
    store = country_store(db_path)
    store.save_subscribers([
        {"email": "asia@example.org", "countries": ["JP", "KR", "BR"]},
        {"email": "gov@example.org", "areas": ["governance"], "countries": ["DE"]},
        {"email": "all@example.org"},
    ])
    _, messages = messages_of(store, settings, ["asia@example.org", "gov@example.org",
                                                "all@example.org"])

    def table(msg, title):
        rows = parse_html(msg.get_payload()[0].get_payload()[1].get_content()).rows
        start = rows.index([title, "This week", "3-week avg", "Change"])
        body = []
        for row in rows[start + 1:]:
            if len(row) != 4:
                break
            body.append(row)
        return body

    # JP, the first country, has 1 or 2 a week (2 in W47), KR 2 or 3; Brazil none: left out
    assert table(messages["asia@example.org"], "Countries you follow") == [
        ["Japan", "2", "1.33", "▲ +0.67"], ["South Korea", "3", "2.33", "▲ +0.67 (+29%)"]]
    text = messages["asia@example.org"].get_payload()[0].get_payload()[0].get_content()
    assert "Countries you follow: this week / 3-week avg / change" in text
    assert re.search(r"^  South Korea +3 +2\.33  .*\+0\.67", text, re.M), text
    alt = alt_of(messages["asia@example.org"])
    assert alt.endswith("The table below has this week's count and the 3-week average for "
                        "each country you follow with reports in the last 5 weeks."), alt
    # a reader of an area who follows a country: the chart of their area, and the table
    assert [row[0] for row in table(messages["gov@example.org"], "Countries you follow")] \
        == ["Germany"]
    assert "Countries you follow" not in alt_of(messages["all@example.org"])
    for part in messages["all@example.org"].get_payload()[0].get_payload():
        assert "Countries you follow" not in part.get_content()


def test_a_reader_who_follows_only_regions_gets_a_chart_of_those(db_path, settings):
    from digest.chart import COLOURS

    store = country_store(db_path)
    store.save_subscribers([
        {"email": "asia@example.org", "regions": ["east_asia", "europe"]},
        {"email": "both@example.org", "regions": ["east_asia"], "countries": ["US"]},
    ])
    bundle, messages = messages_of(store, settings, ["asia@example.org", "both@example.org"])
    alt = alt_of(messages["asia@example.org"])
    assert ("by region, 2026-W36 to 2026-W47 (12 weeks); weeks before 2026-W44 blank: the store "
            "holds nothing earlier, one line per region you follow: East Asia, Europe.") in alt
    assert alt.endswith("The table below has this week's count and the 3-week average for "
                        "each region with reports in the last 5 weeks."), alt
    figure = readers_chart(bundle.trends, regions=["europe", "east_asia"])
    axes = figure.axes[0]
    assert axes.get_legend().get_title().get_text() == "The regions you follow, all their reports"
    assert [line.get_label() for line in axes.get_lines()] == ["East Asia", "Europe"]
    assert list(axes.get_lines()[0].get_ydata()[8:]) == [6, 9, 6, 9]
    pixels = chart_of(messages["asia@example.org"])
    solid = pixels[..., 3] >= 240
    assert all((solid & near(pixels, hex_rgb(c))).sum() > 300 for c in COLOURS[:2])
    assert (solid & near(pixels, hex_rgb(COLOURS[2]))).sum() == 0
    assert_reads_in_both_schemes(pixels, figure)
    # Countries and regions together (Japan or Europe): neither alone says what they follow;
    # their chart is the one of every area.
    assert "one line per area with reports: Governance." in alt_of(messages["both@example.org"])


def test_chart_alt_text_is_true_to_the_chart_and_the_table_below(store, settings):
    add(store, [story("https://x.example/w40", "2026-09-30T03:00:00Z", title="Open data rule",
                      areas=["open_science"])])  # drawn in the chart, too old for the table
    digest, msg = build_message(store, settings)
    page = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    [alt] = page.alts
    report = digest.trends
    assert report.weeks[0] == "2026-W36" and report.weeks[-1] == "2026-W47"
    drawn = [r.name for r in report.rows("area") if any(r.series)]
    assert drawn == ["Governance", "Public research", "Open science", "Research security"]
    start = page.rows.index(["Policy areas", "This week", "4-week avg", "Change"])
    table = []
    for row in page.rows[start + 1:]:
        if len(row) != 4 or row[0] in ("Technology domains", "Regions"):
            break
        table.append(row)
    in_table = [row[0] for row in table]
    assert sorted(in_table) == ["Governance", "Public research", "Research security"]

    assert alt == (
        "Line chart: policy reports per week by area, 2026-W36 to 2026-W47 (12 weeks); weeks "
        "before 2026-W40 blank: the store holds nothing earlier, one line "
        f"per area with reports: {', '.join(drawn)}. All policy reports per week from 2026-W40, "
        f"oldest first: {', '.join(str(n) for n in report.totals[4:])}. The table below has this "
        "week's count and "
        "the 4-week average for each area with reports in the last 5 weeks.")
    # The weeks before the store's first, blank in the chart, are no counts of 0 here either
    # (they were: "oldest first: 0, 0, 0, 0, 1, ...", four quiet weeks that were not watched).
    assert report.totals[:4] == [0, 0, 0, 0] and "oldest first: 0" not in alt
    # What the alt text says the table holds is what it holds.
    last5 = {r.name for r in report.rows("area") if any(r.series[-5:])}
    assert set(in_table) == last5
    for name, this_week, average, _ in table:
        row = next(r for r in report.rows("area") if r.name == name)
        assert (int(this_week), float(average)) == (row.this_week, row.previous_mean)


@pytest.mark.parametrize("weeks, says, not_says", [
    # a store as old as the chart: nothing blank to explain
    ((36, 46, 47), "2026-W36 to 2026-W47 (12 weeks), one line per area", "blank"),
    # one week before this one: its count is the comparison, not "the 1-week average"
    ((46, 47), "this week's count and last week's count for each area", "1-week average"),
], ids=["store-as-old-as-the-chart", "one-week-of-history"])
def test_chart_alt_text_says_only_what_is_so(db_path, weeks, says, not_says):
    s = build(db_path, [story(f"https://x.example/{week}",
                              f"{date.fromisocalendar(2026, week, 3)}T03:00:00Z",
                              areas=["governance"]) for week in weeks])
    [alt] = parse_html(render_html(compose(prepare_week(s, WEEK), None, load_settings(environ={})),
                                   chart_src="c.png")).alts
    assert says in alt and not_says not in alt, alt


def test_crawled_text_is_escaped_and_only_http_links_survive(store, settings):
    _, msg = build_message(store, settings)
    html = msg.get_payload()[0].get_payload()[1].get_content()
    page = parse_html(html)
    assert "script" not in page.tags
    assert not [a for a in page.attrs if a.startswith("on")]
    assert all(link.startswith(("https://", "http://", "mailto:")) for link in page.links)
    assert "javascript:" not in " ".join(page.links)
    # The hostile title arrives as text, visibly.
    assert 'Ministry <script>alert("x")</script> <img src=x onerror=alert(1)> plan' in page.text
    assert "&lt;script&gt;" in html
    assert "Bold claims & more. Second sentence." in page.text  # markup dropped, 2 sentences
    assert "Third." not in page.text
    assert "Hello Aiko <Sato>," in page.text
    # the greeting stands apart from the count line under it, as a paragraph of its own
    assert re.search(r'<p style="margin:0 0 10px 0;">Hello Aiko &lt;Sato&gt;,</p>\s*\d+ STI-policy',
                     html)


def test_plain_text_part_has_the_same_items(store, settings):
    digest, msg = build_message(store, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html_text = parse_html(msg.get_payload()[0].get_payload()[1].get_content()).text
    shown = [e.story.title for e in digest.headlines.entries] + [
        e.story.title for s in digest.sections for e in s.entries]
    assert len(shown) == 6 and digest.total == 10
    for title in shown:
        assert f"* {title}" in text
        assert title in html_text
    assert shown[:3] == ["Quantum moonshot for labs", HOSTILE, "NSF security rule 7"]
    assert "NSF security rule 3" not in text  # left out by the cap of 3 ...
    assert "... and 4 more in Research security not shown." in text  # ... and counted
    assert "… and 4 more in Research security not shown." in html_text
    assert "https://x.example/orig" in text and "javascript:" not in text
    assert ("Also reported by:\n    - STI News A: https://news-a.example/copy\n"
            in text.replace("\r\n", "\n"))
    # No filters, no "why" under each story: the top line says it once for all of them.
    for part in (text, html_text):
        assert "Why you got this" not in part
        assert "Filters: none (you get everything)." in part
    # The store begins in W45: the average is of 2 weeks, not of 4 with 2 unwatched ones.
    assert ["Governance", "1", "0.5", "▲", "+0.5"] in [
        line.split() for line in text.splitlines()]
    for part in (text, html_text):
        assert "Quantum moonshot for labs" in part and "Trends" in part


def test_one_event_in_three_reports_is_one_story_with_the_others_linked(db_path, settings):
    """What a director reads: the G7 meeting once, under the official source's headline, with
    the two other sources that reported it as links, in both parts; the count above the stories
    says how many reports they group, and the trends say they count reports."""
    s = build(db_path, G7_MEETING + JAPAN_SECURITY)
    s.save_subscribers([{"email": "aiko@example.org"}])
    digest, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content().replace("\r\n", "\n")
    raw_html = msg.get_payload()[0].get_payload()[1].get_content()
    html = parse_html(raw_html)
    g7 = "Minister joins G7 counterparts in endorsing research security principles"
    for part in (text, html.text):
        assert part.count(g7) == 1
        assert "adopt research security principles in Canada" not in part  # the wire's title
        assert "UKRI to align" not in part
        assert ("3 STI-policy stories (from 5 reports: an event several sources reported is "
                "one story) this week") in " ".join(part.split())  # no filters to match
        assert ("All STI-policy reports (a story several sources reported counts once per "
                "source; a syndicated copy does not count): 5 this week") in " ".join(
            part.split())
    assert html.text.count("Also reported by:") == 1
    assert ('<div class="c">Also reported by: '
            '<a href="https://news-a.example/g7" class="l">STI News A</a>, '
            '<a href="https://uk-ukri.example/g7" class="l">UKRI</a></div>') in raw_html
    assert (f"* {g7}\n  Japan MEXT · Mon 16 Nov · Japan, Canada, United Kingdom\n"
            "  https://x.example/g7\n") in text
    assert ("  Also reported by:\n"
            "    - STI News A: https://news-a.example/g7\n"
            "    - UKRI: https://uk-ukri.example/g7\n"
            "  Tags: International cooperation, Research security\n") in text
    assert text.count("Also reported by") == 1


def test_the_send_report_counts_policy_items_not_stories(db_path, tmp_path):
    """The operator's line ('2026-W47: 5 policy items, 1 sent') counts items, as `classify`
    and `trends` do: the G7 meeting's three reports are three, though its readers get one
    story."""
    s = build(db_path, G7_MEETING + JAPAN_SECURITY)
    s.save_subscribers([{"email": "aiko@example.org"}])
    outbox = load_settings(environ={"STIWATCH_OUTBOX": str(tmp_path / "outbox")})
    report = send_week(s, outbox, WEEK, dry_run=True)
    assert report.stories == 5 and len(report.sent) == 1


def test_send_json_names_its_counts_and_keeps_stories_as_an_alias(db_path, stiwatch, tmp_path):
    """`digest send --json` said `"stories": 5` of a week whose digest shows 3 stories (the G7
    meeting's three reports are one): the counts are named for what they count, and `stories`
    stays, deprecated, with the value scripts have always read."""
    s = build(db_path, G7_MEETING + JAPAN_SECURITY)
    s.save_subscribers([{"email": "aiko@example.org"}])
    s.close()
    result = stiwatch("digest", "send", "--week", "2026-W47", "--dry-run", "--json",
                      env={"STIWATCH_OUTBOX": str(tmp_path / "outbox")})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["policy_items"], report["story_count"], report["stories"]) == (5, 3, 5)
    preview = stiwatch("digest", "preview", "--week", "2026-W47", "--out", str(tmp_path / "p.html"))
    assert "unfiltered: 3 stories" in preview.output  # story_count is the digest's count
    # the operator's line says both counts (it said '5 policy items' alone)
    again = stiwatch("digest", "send", "--week", "2026-W47", "--dry-run",
                     env={"STIWATCH_OUTBOX": str(tmp_path / "outbox2")})
    assert again.output.startswith("Digest 2026-W47 (5 policy items in 3 stories): 1 sent "), \
        again.output


def test_preview_counts_stories_as_the_digest_does(db_path, stiwatch, tmp_path):
    """It said 'unfiltered: 3 items, 3 shown' of a week of 5 policy items, the G7 meeting's
    three reports being one story: the digest above its stories says 3 stories of 5 reports."""
    build(db_path, G7_MEETING + JAPAN_SECURITY).close()
    result = stiwatch("digest", "preview", "--week", "2026-W47", "--out", str(tmp_path / "p.html"))
    assert result.exit_code == 0, result.output
    assert "unfiltered: 3 stories, 3 shown;" in result.output


def test_the_log_line_of_a_delivery_counts_the_readers_stories(db_path, tmp_path, caplog):
    """The log said 'sent to aiko@example.org (3 items)' of a digest of 5 policy items, which
    the operator's line counts: the 3 are the stories the reader got, as the subject says."""
    s = build(db_path, G7_MEETING + JAPAN_SECURITY)
    s.save_subscribers([{"email": "aiko@example.org"}])
    outbox = load_settings(environ={"STIWATCH_OUTBOX": str(tmp_path / "outbox")})
    with caplog.at_level("INFO", logger="stiwatch.digest"):
        send_week(s, outbox, WEEK)
    [message] = (tmp_path / "outbox" / WEEK.label).glob("*.eml")
    subject = email.message_from_bytes(message.read_bytes(), policy=policy.default)["Subject"]
    assert subject.endswith(": 3 stories")
    assert ("digest 2026-W47: sent to aiko@example.org (3 stories)"
            in [record.getMessage() for record in caplog.records])


def test_trend_percentages_only_where_the_average_is_a_real_base(db_path, settings):
    # One story against 0.25 a week is not "+300%", nor 4 against 0.5 "+700%"; 3 against a
    # steady 2 a week is +50%.
    before = [f"2026-11-{day:02d}T01:00:00Z" for day in (2, 3, 10, 11, 12, 13, 14, 15)]
    s = build(db_path, [
        story("https://x.example/first", "2026-10-01T01:00:00Z"),  # watched since October
        story("https://x.example/gov-old", "2026-10-27T01:00:00Z", areas=["governance"]),
        story("https://x.example/gov", "2026-11-17T01:00:00Z", areas=["governance"]),
        *[story(f"https://x.example/sec{i}", "2026-11-01T01:00:00Z", areas=["research_security"])
          for i in range(2)],
        *[story(f"https://x.example/sec-now{i}", "2026-11-18T01:00:00Z",
                areas=["research_security"]) for i in range(4)],
        *[story(f"https://x.example/pub{i}", when, areas=["public_research"])
          for i, when in enumerate(before[:4] * 2)],
        *[story(f"https://x.example/pub-now{i}", "2026-11-19T01:00:00Z",
                areas=["public_research"]) for i in range(3)],
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    lines = [line.split() for line in text.splitlines()]
    assert ["Governance", "1", "0.25", "▲", "+0.75"] in lines
    assert ["Research", "security", "4", "0.5", "▲", "+3.5"] in lines
    assert ["Public", "research", "3", "2", "▲", "+1", "(+50%)"] in lines
    assert "%)" not in text.replace("(+50%)", "")
    assert ["Governance", "1", "0.25", "▲ +0.75"] in html.rows
    assert ["Public research", "3", "2", "▲ +1 (+50%)"] in html.rows
    for part in (" ".join(text.split()), html.text):
        assert "in per cent only where that average is at least 2 reports a week" in part
        # The week's volume beside the rows, so a reader sees how much of a rise it is.
        assert ("All STI-policy reports (a story several sources reported counts once per "
                "source; a syndicated copy does not count): 8 this week, 2.75 a week on average "
                "in the previous 4 weeks.") in part


def test_trend_rows_show_what_moved_most_first(db_path, settings):
    # They came in the taxonomy's fixed order: governance's fall and research security's jump
    # sat among the rows that did not move. Largest change first, up or down, then by name.
    def weekly(area, weeks, count):
        return [story(f"https://x.example/{area}-{week}-{n}",
                      f"{date.fromisocalendar(2026, week, 3)}T03:00:00Z", areas=[area])
                for week in weeks for n in range(count)]

    s = build(db_path, [
        story("https://x.example/first", "2026-10-01T01:00:00Z"),  # 4 weeks of history
        *weekly("governance", (43, 44, 45, 46), 4),  # 4 a week, then none: -4
        *weekly("research_security", (47,), 6),  # new: +6
        *weekly("public_research", (43, 44, 45, 46), 2), *weekly("public_research", (47,), 3),
        *weekly("open_science", (47,), 1),  # +1, as public research: by name
        *weekly("human_resources", (43, 44, 45, 46, 47), 2),  # flat
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    expected = ["Research security", "Governance", "Open science", "Public research",
                "Human resources"]
    rows = parse_html(html).rows
    start = rows.index(["Policy areas", "This week", "4-week avg", "Change"])
    assert [row[0] for row in rows[start + 1:start + 1 + len(expected)]] == expected
    assert rows[start + 1:start + 3] == [["Research security", "6", "0", "★ +6 (new)"],
                                         ["Governance", "0", "4", "▼ -4 (-100%)"]]
    text = text.replace("\r\n", "\n")
    table = text.split("Policy areas: this week / ", 1)[1].split("\n\n", 1)[0]
    names = [re.match(r"\s*(.+?)\s+\d+\s", line).group(1) for line in table.splitlines()[1:]
             if not line.lstrip().startswith("Mostly one source")]
    assert names[:len(expected)] == expected


def test_a_rise_carried_by_one_source_says_so(db_path, settings):
    # Six NSF award notices in one week are not a trend in North American public research;
    # two ministries on research security and one source's falling area are no burst.
    s = build(db_path, [
        *[story(f"https://us-nsf.example/award{i}", "2026-11-18T01:00:00Z", source="us-nsf",
                areas=["public_research"], regions=["north_america"]) for i in range(6)],
        story("https://news-a.example/pub", "2026-11-18T02:00:00Z", source="news-a",
              areas=["public_research"]),
        story("https://jp-mext.example/sec", "2026-11-18T01:00:00Z", areas=["research_security"]),
        story("https://de-bmbf.example/sec", "2026-11-18T01:00:00Z", source="de-bmbf",
              areas=["research_security"]),
        *[story(f"https://uk-ukri.example/gov{i}", f"2026-11-0{i + 2}T01:00:00Z",
                source="uk-ukri", areas=["governance"]) for i in range(3)],
        story("https://uk-ukri.example/gov-now", "2026-11-18T01:00:00Z", source="uk-ukri",
              areas=["governance"]),
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    notes = [line.strip() for line in text.splitlines() if "one source" in line]
    assert notes == ["Mostly one source: Public research, 6 of 7 this week from US NSF.",
                     "Mostly one source: North America, 6 of 6 this week from US NSF."]
    for note in notes:
        assert note in html.text
    assert "Research security, " not in html.text and "Governance, " not in html.text


def test_trends_of_a_young_store_do_not_count_unwatched_weeks_as_quiet(db_path, settings):
    # Crawling began in W46: 1 story then, 4 now is +3 against last week, not +3.75 against a
    # "4-week average" of 0.25 made of three weeks nobody watched.
    s = build(db_path, [
        story("https://x.example/w46", "2026-11-10T01:00:00Z", source="us-nsf",
              title="Research security review", areas=["research_security"]),
        # half of W46's stories, all of W47's: "research security" rose in share too
        story("https://x.example/w46-budget", "2026-11-10T02:00:00Z", source="jp-mext",
              title="Budget plan", areas=["governance"]),
        # each on its own matter: "research security" is what rose, not one longer phrase
        # standing for it (a phrase carrying most of a term's rise is shown instead of it)
        *[story(f"https://x.example/w47-{i}", "2026-11-18T01:00:00Z", source=source,
                title=f"Research security {matter}", areas=["research_security"])
          for i, (source, matter) in enumerate([("jp-mext", "rules"), ("us-nsf", "audits"),
                                                ("de-bmbf", "guidance"),
                                                ("uk-ukri", "training")])],
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    flat = " ".join(text.split())
    assert ("counts once per source; a syndicated copy does not count): 4 this week, 2 the week "
            "before (the store begins in "
            "2026-W46: weeks before it are not counted as quiet)") in flat
    assert ["Research", "security", "4", "1", "▲", "+3"] in [line.split()
                                                         for line in text.splitlines()]
    assert "Policy areas: this week / last week / change" in text
    assert ["Research security", "4", "1", "▲ +3"] in html.rows
    assert "4-week" not in text and "4-week" not in html.text
    assert "research security (4 reports, was 1/week)" in " ".join(text.split())

    # The first week the store holds: nothing to compare with, and nothing is "new" or rising.
    _, msg = build_message(s, settings, week=parse_week("2026-W46", "Asia/Tokyo"))
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    assert ("does not count): 2 this week. The store holds nothing earlier (its first "
            "report is from this week), so there is no average to compare with yet.") in (
        " ".join(text.split()))
    assert ["Research", "security", "1", "–", "–"] in [line.split()
                                                     for line in text.splitlines()]
    assert ["Research security", "1", "–", "–"] in html.rows
    for part in (text, html.text):
        assert "★" not in part and "new)" not in part
        assert "Rising terms: none yet: nothing earlier in the store to compare with." in (
            " ".join(part.split()))


def test_trends_of_a_store_three_weeks_old_say_so_and_mark_a_new_area(db_path, settings):
    # Three weeks before this one: still fewer than the 4 the average is made of, so the
    # sentence says where the store begins; an area with no report before this week is new.
    s = build(db_path, [
        *[story(f"https://x.example/w{week}", f"{date.fromisocalendar(2026, week, 3)}T03:00:00Z",
                source="us-nsf", title=f"Governance review {week}", areas=["governance"])
          for week in (44, 45, 46, 47)],
        story("https://x.example/sec", "2026-11-18T01:00:00Z", source="jp-mext",
              title="Research security rules", areas=["research_security"]),
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = " ".join(msg.get_payload()[0].get_payload()[0].get_content().split())
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    assert ("in the previous 3 weeks (the store begins in 2026-W44: weeks before it are not "
            "counted as quiet)") in text
    [row] = [row for row in html.rows if row[0] == "Research security"]
    assert row[-1].endswith("(new)"), row


def test_preview_command_writes_html_and_chart(store, stiwatch, tmp_path):
    store.close()
    out = tmp_path / "preview" / "digest.html"
    out.parent.mkdir()  # --out never makes a folder (see the test below)
    result = stiwatch("digest", "preview", "--week", "2026-W47", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "unfiltered: 10 stories" in result.output
    page = parse_html(out.read_text(encoding="utf-8"))
    assert page.images == ["digest.png"]
    assert (out.parent / "digest.png").read_bytes()[:4] == b"\x89PNG"
    assert "Unfiltered preview" in page.text

    result = stiwatch("digest", "preview", "--week", "2026-W47", "--subscriber",
                      "aiko@example.org", "--out", str(out))
    assert result.exit_code == 0 and "for aiko@example.org" in result.output
    result = stiwatch("digest", "preview", "--subscriber", "nobody@example.org")
    assert result.exit_code == 2 and "no subscriber 'nobody@example.org'" in result.output


@pytest.mark.parametrize("out, problem", [
    ("afile/p.html", "--out afile/p.html: afile is a file, not a folder"),
    ("afile/deeper/p.html", "--out afile/deeper/p.html: afile is a file, not a folder"),
    ("afolder", "--out afolder: that is a folder; give a file name"),
    # A typo in the folder: refused as `export --out` refuses it, no folder tree made.
    ("reprots/w47/p.html", "--out reprots/w47/p.html: no such folder reprots/w47 (create it "
     "first)"),
])
def test_preview_out_that_cannot_be_a_file_is_one_error(store, stiwatch, isolated_env, out,
                                                       problem):
    store.close()
    (isolated_env / "afile").write_text("keep me\n")
    (isolated_env / "afolder").mkdir()
    result = stiwatch("digest", "preview", "--week", "2026-W47", "--out", out)
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: {problem}"]
    assert (isolated_env / "afile").read_text() == "keep me\n"
    assert list((isolated_env / "afolder").iterdir()) == []
    assert sorted(p.name for p in isolated_env.iterdir()) == ["afile", "afolder"]


@pytest.mark.browser
def test_digest_reads_on_a_phone_in_chromium(store, settings, tmp_path, chromium_page):
    from digest.send import write_preview

    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html",
                                    store.get_subscriber("aiko@example.org"))
    page = chromium_page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(html_path.as_uri())
    assert page.is_visible("#headlines")
    assert page.inner_text("#headlines") == "Headlines"
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    width = page.evaluate("document.querySelector('img').getBoundingClientRect().width")
    assert 0 < width <= 360
    shot = tmp_path / "phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# For each element with text of its own, the WCAG 2 contrast ratio of its colour on the
# background it is drawn on (the nearest ancestor's opaque background colour).
CONTRASTS = """() => {
    const rgb = c => c.match(/[\\d.]+/g).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => v / 255).map(
        v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = el => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
        }
        return rgb(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
    };
    const out = [];
    for (const el of document.body.querySelectorAll('*')) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length || el.closest('[style*="display:none"]')) continue;
        const fg = lum(rgb(getComputedStyle(el).color)), bg = lum(background(el));
        out.push({text: el.textContent.trim().slice(0, 40), tag: el.tagName,
                  ratio: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05), bg: bg});
    }
    return out;
}"""


@pytest.mark.browser
def test_in_dark_mode_the_digest_is_dark_and_every_text_reads_at_wcag_aa(store, settings,
                                                                         tmp_path, chromium_page):
    # It had no dark styles: a reader in dark mode saw the light layout, or a mail app's own
    # inversion of it. Apple Mail and iOS Mail honour prefers-color-scheme once the message
    # says it supports both schemes; the inline light styles stay the default elsewhere.
    from digest.send import write_preview

    add(store, [story(f"https://x.example/open{day}", f"2026-11-{day}T02:00:00Z",
                      title="Open data rule", areas=["open_science"]) for day in (4, 11)])
    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html",
                                    store.get_subscriber("aiko@example.org"))
    html = html_path.read_text()
    assert '<meta name="color-scheme" content="light dark">' in html
    assert '<meta name="supported-color-schemes" content="light dark">' in html
    page = chromium_page
    page.set_viewport_size({"width": 640, "height": 900})
    page.emulate_media(color_scheme="light")
    page.goto(html_path.as_uri())
    box = "getComputedStyle(document.querySelector('#headlines').closest('table'))"
    assert page.evaluate(f"{box}.backgroundColor") == "rgb(255, 255, 255)"  # light: as it was
    # The light scheme reads at WCAG AA too (the "why you got this" lines, the footer and its
    # Unsubscribe link were #7b8794 on white, 3.7:1).
    light = page.evaluate(CONTRASTS)
    low = [(t["text"], t["tag"], round(t["ratio"], 2)) for t in light if t["ratio"] < 4.5]
    assert not low, low
    page.emulate_media(color_scheme="dark")
    page.goto(html_path.as_uri())
    assert page.evaluate(f"{box}.backgroundColor") != "rgb(255, 255, 255)"
    texts = page.evaluate(CONTRASTS)
    assert len(texts) > 50
    # Every text on a dark background (the banner, white on blue, is so in both schemes) ...
    assert all(t["bg"] < 0.05 for t in texts if t["text"] != "STI policy digest"
               and not t["text"].startswith("Week ")), [t for t in texts if t["bg"] >= 0.05]
    # ... and readable there: WCAG AA, 4.5:1 for text under 18 pt.
    low = [(t["text"], t["tag"], round(t["ratio"], 2)) for t in texts if t["ratio"] < 4.5]
    assert not low, low
    # The trend table's rising, falling and flat changes among them.
    changes = {t["text"][0] for t in texts if t["tag"] == "TD" and t["text"][:1] in "▲▼=★"}
    assert {"▲", "▼"} <= changes


ARABIC_TITLE = "وزارة التعليم العالي تطلق استراتيجية وطنية للذكاء الاصطناعي"
ARABIC_SUMMARY = "أعلنت الوزارة عن استراتيجية جديدة لسياسة العلوم والتكنولوجيا والابتكار."


@pytest.mark.browser
def test_right_to_left_titles_and_summaries_read_right_to_left(store, settings, tmp_path,
                                                               chromium_page):
    from digest.send import write_preview

    add(store, [story("https://x.example/ar", "2026-11-19T03:00:00Z", title=ARABIC_TITLE,
                      summary=ARABIC_SUMMARY, areas=["governance"], score=1.0)])
    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html")
    page = chromium_page
    page.set_viewport_size({"width": 640, "height": 900})
    page.goto(html_path.as_uri())
    for text in (ARABIC_TITLE, ARABIC_SUMMARY):
        # The innermost block holding the text: its direction decides where the sentence's
        # final full stop goes and which side the lines start from.
        block = page.evaluate(
            """text => {
                const el = [...document.querySelectorAll('div')].filter(
                    d => d.textContent.trim() === text).pop();
                const range = document.createRange();
                range.selectNodeContents(el);
                const box = el.getBoundingClientRect(), run = range.getBoundingClientRect();
                return {dir: getComputedStyle(el).direction,
                        gapRight: box.right - run.right, gapLeft: run.left - box.left};
            }""", text)
        assert block["dir"] == "rtl", text
        assert block["gapRight"] < 2 < block["gapLeft"], (text, block)  # starts on the right
    # An English title next to it stays left to right.
    assert page.evaluate("""() => getComputedStyle([...document.querySelectorAll('div')].filter(
        d => d.textContent.trim() === 'Quantum moonshot for labs').pop()).direction""") == "ltr"


def unsubscribe_links(msg):
    alternative = msg.get_payload()[0]
    text, html = (part.get_content() for part in alternative.get_payload())
    in_text = [line.split(": ", 1)[1] for line in text.splitlines()
               if line.startswith("Unsubscribe: ")]
    in_html = [link for link in parse_html(html).links if "unsub" in link.lower()]
    return in_text, in_html


def test_unsubscribe_defaults_to_the_sender_address(store, settings):
    _, msg = build_message(store, settings)
    target = "mailto:digest@agency.example?subject=unsubscribe"
    assert msg["List-Unsubscribe"] == f"<{target}>"
    assert unsubscribe_links(msg) == ([target], [target])


def test_one_click_unsubscribe_only_with_a_link_naming_the_reader(store):
    # A fixed https URL cannot tell who asked: a mail client's one-click POST to it would
    # unsubscribe nobody, so it must not be offered.
    fixed = load_settings(environ={"STIWATCH_MAIL_FROM": "digest@agency.example",
                                   "STIWATCH_LIST_UNSUBSCRIBE": "https://agency.example/unsub"})
    _, msg = build_message(store, fixed)
    mailto = "mailto:digest@agency.example?subject=unsubscribe"  # list_unsubscribe_mailto
    assert msg["List-Unsubscribe"] == f"<https://agency.example/unsub>, <{mailto}>"
    assert "List-Unsubscribe-Post" not in msg

    store.save_subscribers([{"email": "k.tanaka+sti@example.jp", "name": "田中"}])
    personal = load_settings(environ={
        "STIWATCH_MAIL_FROM": "digest@agency.example",
        "STIWATCH_LIST_UNSUBSCRIBE": "https://agency.example/unsub?list=sti&who={email}"})
    _, msg = build_message(store, personal, "k.tanaka+sti@example.jp")
    target = "https://agency.example/unsub?list=sti&who=k.tanaka%2Bsti%40example.jp"
    assert msg["List-Unsubscribe"] == f"<{target}>, <{mailto}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_links(msg) == ([target], [target])  # the reader's link: the web page
    _, other = build_message(store, personal)
    assert other["List-Unsubscribe"] == ("<https://agency.example/unsub?list=sti&"
                                         f"who=aiko%40example.org>, <{mailto}>")


def test_preview_without_a_reader_has_no_personal_unsubscribe_link(store, settings, tmp_path):
    from digest.send import write_preview

    personal = {**settings, "list_unsubscribe": "https://agency.example/unsub?who={email}"}
    html_path, _, _ = write_preview(store, personal, WEEK, tmp_path / "d.html")
    page = parse_html(html_path.read_text(encoding="utf-8"))
    assert not [link for link in page.links if "unsub" in link]
    assert "{email}" not in page.text


def test_a_long_unsubscribe_url_stays_a_readable_link(store):
    # Folded to 78 columns, the one-word URL used to go out RFC 2047-encoded
    # (=?utf-8?q?=3Chttps=3A//...), which no mail client reads as an unsubscribe link.
    url = "https://agency.example/unsubscribe/confirm?list=sti-policy-weekly&token=" + "9f" * 40
    settings = load_settings(environ={"STIWATCH_MAIL_FROM": "digest@agency.example",
                                      "STIWATCH_LIST_UNSUBSCRIBE": url})
    bundle = prepare_week(store, WEEK)
    digest = compose(bundle, store.get_subscriber("aiko@example.org"), settings)
    raw = message_bytes(message_for(bundle, digest, settings))
    header = f"<{url}>, <mailto:digest@agency.example?subject=unsubscribe>"
    assert f"\r\nList-Unsubscribe: {header}\r\n".encode() in raw
    assert email.message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"] == header


def test_a_japanese_summary_keeps_its_sentences_together(store, settings):
    add(store, [story("https://x.example/ja", "2026-11-19T03:00:00Z",
                      title="文部科学省、量子技術の研究開発戦略を公表",
                      summary="政府は新しい戦略を発表した。予算は増える。研究者は歓迎した。",
                      areas=["governance"], countries=["JP"], score=1.0)])
    _, msg = build_message(store, settings)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    for part in (text, parse_html(html).text):
        # Two sentences, as the crawler's own summaries join them: no space after 。
        assert "政府は新しい戦略を発表した。予算は増える。" in part
        assert "研究者は歓迎した" not in part


def test_preview_of_one_item_says_one_item(store, stiwatch, tmp_path):
    store.close()
    result = stiwatch("digest", "preview", "--week", "2026-W45", "--out", str(tmp_path / "p.html"))
    assert result.exit_code == 0, result.output
    assert "unfiltered: 1 story, 1 shown;" in result.output


def test_the_filters_are_described_as_they_are_applied(store, settings):
    # Countries and regions together are one "places" filter (Japan OR North America), and
    # within a filter any id matches: the reader must not read "Japan; North America" as both.
    store.save_subscribers([{"email": "desk@example.org", "areas": ["research_security"],
                             "domains": ["quantum", "ai"], "countries": ["JP"],
                             "regions": ["north_america"]}])
    add(store, [story("https://x.example/q", "2026-11-19T03:00:00Z", title="Quantum security",
                      areas=["research_security"], domains=["quantum"], countries=["US"],
                      regions=["north_america"])])
    _, msg = build_message(store, settings, "desk@example.org")
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    described = ("areas: Research security; and domains: Quantum or Artificial intelligence; "
                 "and places: Japan or North America")
    assert f"Filters: {described}." in " ".join(text.split())
    assert f"Filters: {described}." in parse_html(html).text


def test_plain_text_trend_tables_keep_their_columns_with_long_names(store, settings):
    add(store, [story("https://x.example/br", "2026-11-19T03:00:00Z", title="Brazil science plan",
                      areas=["governance"], countries=["BR"], regions=["latin_america"])])
    _, msg = build_message(store, settings)
    # Quoted-printable: the lines end as on the wire (CRLF), as a mail client receives them.
    text = msg.get_payload()[0].get_payload()[0].get_content().replace("\r\n", "\n")
    lines = text.split("Regions: this week / ", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
    rows = [row for row in lines.splitlines() if not row.lstrip().startswith("Mostly one")]
    assert any(row.lstrip().startswith("Latin America and the Caribbean") for row in rows)
    # The numbers and the change arrow line up on every row.
    arrows = {min(row.find(a) for a in "▲▼★=" if a in row) for row in rows}
    assert len(arrows) == 1, rows


def test_a_long_japanese_summary_is_shortened_not_cut_to_its_date(store, settings):
    clause = ("文部科学省は、量子技術の研究開発を加速するため、大学や国立研究開発法人、企業との連携"
              "を強化し、若手研究者の育成や国際共同研究の推進、研究基盤の整備などを柱とする")
    summary = "2026年11月18日 " + clause * 4  # no 。 and one space, after the date
    add(store, [story("https://x.example/ja2", "2026-11-19T03:00:00Z", title="量子技術戦略",
                      summary=summary, areas=["governance"], countries=["JP"], score=1.0)])
    _, msg = build_message(store, settings)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    shown = "".join(text.split("https://x.example/ja2", 1)[1].split("Tags:", 1)[0].split())
    assert shown.startswith("2026年11月18日" + clause * 2) and shown.endswith("…")
    assert len(shown) <= 321
    assert clause * 2 in parse_html(html).text


def test_an_unfiltered_preview_of_an_empty_week_does_not_blame_filters(store, stiwatch, tmp_path):
    store.close()
    out = tmp_path / "p.html"
    result = stiwatch("digest", "preview", "--week", "2026-W30", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = parse_html(out.read_text(encoding="utf-8"))
    assert "No STI-policy stories this week." in page.text
    assert "your filters" not in page.text


def display_width(text):
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_plain_text_wraps_japanese_summaries_like_english_ones(store, settings):
    summary = ("文部科学省は、量子技術の研究開発を加速するため、大学や国立研究開発法人、企業との連携を"
               "強化し、若手研究者の育成や国際共同研究の推進を柱とするQuantum Japan戦略を公表した。")
    add(store, [story("https://x.example/ja3", "2026-11-19T03:00:00Z", title="量子技術戦略",
                      summary=summary, areas=["governance"], countries=["JP"], score=1.0)])
    _, msg = build_message(store, settings)
    # Quoted-printable: the lines end as on the wire (CRLF), as a mail client receives them.
    text = msg.get_payload()[0].get_payload()[0].get_content().replace("\r\n", "\n")
    block = text.split("https://x.example/ja3\n", 1)[1].split("  Tags:", 1)[0].splitlines()
    assert len(block) > 1
    # 76 columns and an indent of 2; a closing 、 or 。 may hang past them rather than start a line.
    assert all(line.startswith("  ") and display_width(line) <= 80 for line in block), block
    # Nothing lost or added, and English words are not broken.
    assert "".join(line.strip() for line in block) == "".join(summary.split())
    assert any("Quantum" in line for line in block) and any("Japan" in line for line in block)
    assert all(not line.strip().startswith(("、", "。")) for line in block)  # not at a line start


def test_chart_of_stories_without_an_area_does_not_say_there_are_none(db_path, settings):
    s = build(db_path, [story(f"https://x.example/na{i}", f"2026-11-1{7 + i}T03:00:00Z",
                              title=f"Policy news {i}") for i in range(2)])
    s.save_subscribers([{"email": "aiko@example.org"}])
    digest, msg = build_message(s, settings)
    [alt] = parse_html(msg.get_payload()[0].get_payload()[1].get_content()).alts
    assert digest.total == 2
    assert "none in these weeks" not in alt
    assert alt.endswith("All policy reports per week from 2026-W47, oldest first: 2; none has "
                        "a policy area.")


def test_preview_of_a_week_not_over_says_so(store, stiwatch, tmp_path):
    from datetime import datetime, timezone

    from digest.weeks import week_of

    store.close()
    current = week_of(datetime.now(timezone.utc), WEEK.tz)
    result = stiwatch("digest", "preview", "--week", current.label, "--out",
                      str(tmp_path / "p.html"))
    assert result.exit_code == 0, result.output
    assert f"{current.label} is not over yet: this preview has its items so far." in result.output
    result = stiwatch("digest", "preview", "--week", "2026-W47", "--out", str(tmp_path / "p.html"))
    assert "not over" not in result.output


def test_a_multilateral_bodys_story_says_it_is_international(db_path, settings):
    # No country named, a multilateral body acting: the line under the title says where, as a
    # story about countries names them, rather than nothing.
    s = build(db_path, [
        story("https://x.example/oecd", "2026-11-17T01:00:00Z", source="news-a",
              title="Ministers back shared rules for trusted research",
              areas=["international"], regions=["international"]),
        story("https://x.example/jp", "2026-11-17T02:00:00Z", title="Japan funds AI",
              areas=["governance"], countries=["JP"], regions=["east_asia", "international"]),
    ])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content()).text
    for part in (text, html):
        assert "STI News A · Tue 17 Nov · International (multilateral)" in part
        assert "Japan MEXT · Tue 17 Nov · Japan" in part  # its countries say where
        assert "Japan, International" not in part


def test_a_summary_that_only_repeats_the_title_is_not_shown_twice(store, settings):
    title = "科学技術・学術審議会 研究計画・評価分科会（第95回）の開催について"
    # also when the feed adds a full stop or changes the case
    english = "Ministry opens call for quantum research"
    add(store, [story("https://x.example/same", "2026-11-19T03:00:00Z", title=title,
                      summary=f" {title} ", areas=["governance"], countries=["JP"], score=1.0),
                story("https://x.example/stop", "2026-11-19T04:00:00Z", title=english,
                      summary=f"{english.upper()}.", areas=["governance"], score=1.0)])
    _, msg = build_message(store, settings)
    text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
    for shown in (text, parse_html(html).text):
        assert shown.count(title) == 1
        assert shown.count(english) == 1 and english.upper() not in shown


def test_titles_and_summaries_say_their_language(store, settings, tmp_path):
    """A Chinese, Japanese or Korean story in the English digest is marked with its language, so
    the reader's mail client draws its Han characters with that language's glyphs (and a screen
    reader reads it in that language); the page itself stays English."""
    from digest.send import write_preview

    stories = {"zh": ("科技部发布关于加强基础研究的若干意见", "科技部会同财政部印发意见，加强基础研究。"),
               "ja": ("文部科学省、量子技術の研究開発戦略を策定", "文部科学省は量子技術の戦略を公表した。"),
               "ko": ("과학기술정보통신부, 반도체 연구개발 예산 확대", "정부는 반도체 기술 개발에 1조 원을 투입한다.")}
    add(store, [story(f"https://x.example/{code}", "2026-11-19T03:00:00Z", title=title,
                      summary=summary, areas=["governance"], score=1.0, language=code)
                for code, (title, summary) in stories.items()])
    add(store, [story("https://x.example/und", "2026-11-19T04:00:00Z", title="Undetermined",
                      summary="No language stored.", areas=["governance"], language="<b>")])
    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html")

    class Langs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.found = [], {}

        def handle_starttag(self, tag, attrs):
            if tag in ("br", "img", "meta", "link", "hr", "input"):
                return
            self.stack.append(dict(attrs).get("lang") or (self.stack[-1] if self.stack else None))

        def handle_endtag(self, tag):
            if tag not in ("br", "img", "meta", "link", "hr", "input") and self.stack:
                self.stack.pop()

        def handle_data(self, data):
            if data.strip():
                self.found[data.strip()] = self.stack[-1] if self.stack else None

    parser = Langs()
    parser.feed(html_path.read_text(encoding="utf-8"))
    for code, (title, summary) in stories.items():
        assert parser.found[title] == code, title
        assert parser.found[summary] == code, summary
    assert parser.found["Quantum moonshot for labs"] == "en"  # the page's language, inherited
    assert parser.found["Undetermined"] == "en"  # a stored code that is no language is left out


def _aikos_parts(store, settings):
    """Aiko's digest of the week as sent: its bytes, and its text and HTML parts."""
    bundle = prepare_week(store, WEEK)
    digest = compose(bundle, store.get_subscriber("aiko@example.org"), settings)
    raw = message_bytes(message_for(bundle, digest, settings))
    text, html = email.message_from_bytes(raw, policy=policy.default).get_payload()[0].get_payload()
    return raw, text, html


def test_text_parts_are_quoted_printable_readable_on_the_wire_with_short_lines(store, settings):
    # Both text parts were base64: a gateway or an administrator reading the raw message saw
    # no word of it. Quoted-printable keeps ASCII text as it is, and every line within 76
    # octets, here with a 1,500-character link (an HTML line of its own) and Japanese text.
    url = "https://x.example/report?" + "&".join(f"k{i}=v{i}" for i in range(150))
    add(store, [story(url, "2026-11-19T03:00:00Z", title="Cabinet Office = new AI safety plan",
                      summary="政府は新しい戦略を発表した。 " + "Budget grows. " * 120,
                      areas=["governance"], countries=["JP"], score=1.0)])
    raw, text, html = _aikos_parts(store, settings)
    for part in (text, html):
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert b"Quantum moonshot for labs" in raw  # readable as it is on the wire
    assert b"Cabinet Office =3D new AI safety plan" in raw
    assert len(max(raw.split(b"\r\n"), key=len)) <= 78  # RFC 5322: 78 should, 998 must
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in html.get_content().splitlines()) > 998  # the HTML's own
    assert f'href="{url.replace("&", "&amp;")}"' in html.get_content()
    assert f"  {url}" in text.get_content()
    assert "政府は新しい戦略を発表した。" in text.get_content()
    assert "Hello Aiko <Sato>," in text.get_content()


def test_japanese_display_names_are_encoded_whole_and_fold_within_the_limits(store):
    # The email package encoded only the non-ASCII words of a name: "(JST)" went out bare, a
    # comment to every mail client (the reader's name showed as 田中 太郎), and "Dr." as an
    # obsolete phrase; its encoded-words ran to 76 characters (RFC 2047: at most 75).
    import re
    from email.header import decode_header, make_header

    sender = "科学技術・イノベーション政策 週刊ダイジェスト（国際部）"
    settings = load_settings(environ={"STIWATCH_MAIL_FROM": f"{sender} <digest@agency.example>"})
    store.save_subscribers([{"email": "tanaka@example.jp", "name": "Dr. 田中 太郎 (JST)"}])
    bundle = prepare_week(store, WEEK)
    digest = compose(bundle, store.get_subscriber("tanaka@example.jp"), settings)
    raw = message_bytes(message_for(bundle, digest, settings))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"(JST)" not in head and b" Dr. " not in head
    words = re.findall(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", head)
    assert words and max(len(word) for word in words) <= 75
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["To"].addresses[0].display_name == "Dr. 田中 太郎 (JST)"
    assert msg["To"].addresses[0].addr_spec == "tanaka@example.jp"
    assert msg["From"].addresses[0].addr_spec == "digest@agency.example"
    # Adjacent encoded-words are joined without the space between them (RFC 2047 6.2), as
    # mail clients read them (the email package's parser keeps a space there).
    legacy = email.message_from_bytes(raw)
    assert str(make_header(decode_header(legacy["From"]))) == f"{sender} <digest@agency.example>"
    assert str(make_header(decode_header(legacy["To"]))) == "Dr. 田中 太郎 (JST) <tanaka@example.jp>"


def test_a_part_mostly_in_japanese_is_base64_when_that_is_smaller(store, settings):
    # Quoted-printable writes a Japanese character in 9 octets, base64 in 4: a Japanese week's
    # digest went over the size where Gmail clips a message. English parts stay readable.
    japanese = "政府は量子技術の研究開発に新たな予算を投じると発表した。" * 4
    add(store, [story(f"https://x.example/jp{n}", f"2026-11-{17 + n % 3}T03:00:00Z",
                      title=f"量子技術の研究拠点を公募（第{n}次）", summary=japanese,
                      areas=["governance"], countries=["JP"], score=1.0 - n / 100)
                for n in range(12)])
    raw, text, html = _aikos_parts(store, settings)
    for part in (text, html):
        encoding = part["Content-Transfer-Encoding"]
        body = part.get_payload().encode("ascii")
        other = (binascii.b2a_qp(part.get_content().encode("utf-8"), istext=True)
                 if encoding == "base64"
                 else base64.encodebytes(part.get_content().encode("utf-8")))
        assert len(body) <= len(other) * 1.05, encoding  # the smaller of the two
    assert text["Content-Transfer-Encoding"] == "base64"
    assert "量子技術の研究拠点を公募（第0次）" in text.get_content()
    assert len(max(raw.split(b"\r\n"), key=len)) <= 78


def test_preview_of_a_week_not_begun_does_not_call_it_one_under_way(store, stiwatch, tmp_path):
    from datetime import datetime, timezone

    from digest.weeks import week_of

    store.close()
    ahead = week_of(datetime.now(timezone.utc), WEEK.tz).shift(2)
    result = stiwatch("digest", "preview", "--week", ahead.label, "--out",
                      str(tmp_path / "p.html"))
    assert result.exit_code == 0, result.output
    assert (f"{ahead.label} has not started yet (it starts "
            f"{ahead.start:%a %-d %b %Y %H:%M} (Asia/Tokyo)).") in result.output
    assert "not over" not in result.output and "so far" not in result.output


def test_a_filtered_readers_text_part_keeps_a_blank_line_between_stories(store, settings):
    # The "Why you got this" line ate the blank line after each story: a filtered reader's
    # plain text ran "...; country: Japan" straight into the next "* title" and "== Trends ==".
    store.save_subscribers([{"email": "desk@example.org", "countries": ["JP", "US"]}])
    _, msg = build_message(store, settings, "desk@example.org")
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    lines = text.splitlines()
    whys = [n for n, line in enumerate(lines) if line.startswith("  Why you got this:")]
    assert len(whys) >= 3
    for n in whys:
        assert lines[n + 1] == "", lines[n - 1:n + 3]
    assert "\n\n== Trends ==\n" in text
    # the unfiltered reader's stories were already apart: they stay so, with one blank line
    _, unfiltered = build_message(store, settings)
    plain = unfiltered.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "\n\n== Trends ==\n" in plain and "\n\n\n* " not in plain and "\n\n\n==" not in plain
    assert "\n\n\n* " not in text and "\n\n\n==" not in text


def test_a_filtered_reader_is_told_the_trends_are_not_filtered(store, settings):
    # The trend tables count every report of the week; a reader who filters on research
    # security read "Governance 5" under their own digest as five of their stories.
    store.save_subscribers([{"email": "desk@example.org", "areas": ["research_security"]}])
    for reader, says in (("desk@example.org", True), ("aiko@example.org", False)):
        _, msg = build_message(store, settings, reader)
        text, html = (part.get_content() for part in msg.get_payload()[0].get_payload())
        for part in (" ".join(text.split()), parse_html(html).text):
            assert ("All STI-policy reports, not only those your filters match (a story"
                    in part) is says
            assert "All STI-policy reports" in part


@pytest.mark.browser
def test_with_images_blocked_the_charts_alt_text_reads_as_small_print(store, settings, tmp_path,
                                                                      chromium_page):
    # Outlook blocks images from new senders: the reader sees the chart's alt text in its place.
    # Unstyled, it came in the browser's default serif at 16 px, the largest text of the
    # trends; styled on the <img>, it reads like the line above it.
    from digest.send import write_preview

    html_path, png_path, _ = write_preview(store, settings, WEEK, tmp_path / "d.html",
                                           store.get_subscriber("aiko@example.org"))
    png_path.unlink()  # images blocked
    page = chromium_page
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(html_path.as_uri())
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('img'));"
                          " return [s.fontSize, s.fontFamily, s.color]; })()")
    assert style == ["12px", "Arial, Helvetica, sans-serif", "rgb(82, 96, 109)"]


# Where each line of an element's text starts: the first character of each line box.
LINE_STARTS = """(selector) => {
    const starts = [];
    for (const el of document.querySelectorAll(selector)) {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        let top = null;
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.data.length; i++) {
                if (!node.data[i].trim()) continue;
                const range = document.createRange();
                range.setStart(node, i);
                range.setEnd(node, i + 1);
                const rect = range.getClientRects()[0];
                if (!rect) continue;
                if (top === null || rect.top > top + 2) {
                    starts.push(node.data.slice(i, i + 12));
                    top = rect.top;
                }
            }
        }
    }
    return starts;
}"""
PHONE_WIDTHS = range(300, 480, 3)  # CSS pixels: small phones to the digest's narrow layout


def line_starts_on_phones(page, html_path, selector: str) -> list[tuple[int, str]]:
    """(width, the start of each line of the ``selector`` elements) for the page at
    ``html_path`` at every width of PHONE_WIDTHS."""
    page.goto(html_path.as_uri())
    starts = []
    for width in PHONE_WIDTHS:
        page.set_viewport_size({"width": width, "height": 740})
        starts += [(width, line) for line in page.evaluate(LINE_STARTS, selector)]
    return starts


@pytest.mark.browser
def test_on_a_phone_no_line_of_a_storys_source_and_date_starts_with_its_separator(
        db_path, settings, tmp_path, chromium_page):
    """On a phone the line under a title wrapped before its "·": "Korea Ministry of Science
    and ICT Press Releases / · Mon 16 Nov · South Korea", a line starting with a dot. The dot
    stays at the end of the line before, at every width."""
    from digest.send import write_preview

    s = build(db_path, [])
    s.sync_sources([{"id": "kr-msit", "name": "Korea Ministry of Science and ICT Press Releases",
                     "kind": "feed", "url": "https://kr-msit.example/feed", "country": "KR",
                     "language": "en", "org_type": "ministry"}])
    add(s, [story(f"https://x.example/{n}", f"2026-11-{16 + n % 5}T0{n}:00:00Z",
                  source="kr-msit", title=f"Story {n}", areas=[area], countries=countries)
            for n, (area, countries) in enumerate([
                ("governance", ["KR", "US"]), ("international", ["KR"]),
                ("research_security", ["KR", "JP", "CA"])])])
    html_path, _, _ = write_preview(s, settings, WEEK, tmp_path / "d.html", None)
    starts = line_starts_on_phones(chromium_page, html_path, ".m")
    assert {w for w, _ in starts} == set(PHONE_WIDTHS)
    assert [(w, line) for w, line in starts if line.startswith("·")] == []


@pytest.mark.browser
def test_on_a_phone_the_average_columns_heading_never_breaks_at_its_hyphen(
        store, settings, tmp_path, chromium_page):
    """"4-week avg" broke as "4-" / "week" / "avg" in a narrow trend table's heading."""
    from digest.send import write_preview

    html_path, _, _ = write_preview(store, settings, WEEK, tmp_path / "d.html", None)
    starts = [line for _, line in line_starts_on_phones(chromium_page, html_path, "th")]
    assert any(re.match(r"\d-week", line) for line in starts)
    assert not any(line.startswith(("week avg", "-week")) for line in starts)


def test_plain_text_never_ends_a_japanese_line_with_an_opening_bracket(store, settings):
    """A line of the text part ended with 「 and its quotation began the next ("…会議で「" /
    "量子技術…」"): Japanese typesetting (kinsoku) keeps an opening bracket with what it opens,
    as it keeps 。 off a line's start."""
    summary = "政" * 37 + "「量子技術イノベーション戦略」の改定を決定しました。"
    add(store, [story("https://x.example/ja4", "2026-11-19T03:00:00Z", title="量子戦略の改定",
                      summary=summary, areas=["governance"], countries=["JP"], score=1.0)])
    _, msg = build_message(store, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content().replace("\r\n", "\n")
    block = text.split("https://x.example/ja4\n", 1)[1].split("  Tags:", 1)[0].splitlines()
    assert len(block) == 2, block
    assert "".join(line.strip() for line in block) == summary
    assert not any(line.rstrip().endswith(tuple("（「『【〔〈《")) for line in block), block


def test_an_unchanged_trend_row_says_no_change_without_a_sign(db_path, settings):
    """Two stories this week against a steady two a week read "= +0 (+0%)": a plus sign and a
    percentage on no change at all. It reads "= 0", in both parts."""
    s = build(db_path, [
        story(f"https://x.example/gov{week}-{i}", f"2026-{month}-{day:02d}T01:00:00Z",
              areas=["governance"])
        for week, (month, day) in enumerate([("10", 20), ("10", 27), ("11", 3), ("11", 10),
                                             ("11", 17)]) for i in range(2)])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    text = msg.get_payload()[0].get_payload()[0].get_content()
    html = parse_html(msg.get_payload()[0].get_payload()[1].get_content())
    assert ["Governance", "2", "2", "=", "0"] in [line.split() for line in text.splitlines()]
    assert ["Governance", "2", "2", "= 0"] in html.rows
    assert "+0" not in text and "+0" not in html.text


def test_a_japanese_sources_name_is_marked_japanese_as_its_title_is(db_path, settings):
    """The title and summary of a Japanese report carried lang="ja", its source's name
    (科学技術・イノベーション省 報道発表) did not: in the English page its kanji could be drawn
    with Chinese glyphs. It carries its source's language, there and under "Also reported by";
    an English source's name adds nothing."""
    s = build(db_path, [])
    s.sync_sources([
        {"id": "jp-msti", "name": "科学技術・イノベーション省 報道発表", "kind": "feed",
         "url": "https://msti.example/rss", "country": "JP", "language": "ja",
         "org_type": "ministry"},
        {"id": "news-a", "name": "STI News A", "kind": "feed", "url": "https://news-a.example/f",
         "country": None, "language": "en", "org_type": "news"},
        {"id": "jp-jsa", "name": "Japan Science Agency", "kind": "feed",
         "url": "https://jsa.example/f", "country": "JP", "language": "en",
         "org_type": "funding_agency"}])
    add(s, [story("https://msti.example/q", "2026-11-17T03:00:00Z", source="jp-msti",
                  title="量子技術イノベーション戦略を改定", language="ja", areas=["governance"],
                  countries=["JP"]),
            story("https://news-a.example/q", "2026-11-17T06:00:00Z", source="news-a",
                  title="Japan revises quantum strategy", areas=["governance"], countries=["JP"],
                  duplicate_of="https://msti.example/q"),
            story("https://news-a.example/jp", "2026-11-18T03:00:00Z", source="news-a",
                  title="Japan funds chip training", areas=["governance"], countries=["JP"]),
            story("https://msti.example/jp", "2026-11-18T05:00:00Z", source="jp-msti",
                  title="半導体人材の育成", language="ja", areas=["governance"], countries=["JP"],
                  duplicate_of="https://news-a.example/jp"),
            # the agency's English page first: the ministry's is "also reported by"
            story("https://jsa.example/ai", "2026-11-19T03:00:00Z", source="jp-jsa",
                  title="AI safety call", areas=["governance"], countries=["JP"]),
            story("https://msti.example/ai", "2026-11-19T04:00:00Z", source="jp-msti",
                  title="AI安全性の公募", language="ja", areas=["governance"], countries=["JP"],
                  duplicate_of="https://jsa.example/ai")])
    s.save_subscribers([{"email": "aiko@example.org"}])
    _, msg = build_message(s, settings)
    html = msg.get_payload()[0].get_payload()[1].get_content()
    marked = re.findall(r'lang="ja"[^>]*>科学技術・イノベーション省 報道発表<', html)
    assert html.count("科学技術・イノベーション省 報道発表") == len(marked) == 3, html
    assert re.search(r"Also reported by: <a [^>]*lang=\"ja\"", html)
    assert 'lang="en"' not in html.replace('<html lang="en">', "")
    assert "STI News A" in html and "Japan Science Agency" in html
