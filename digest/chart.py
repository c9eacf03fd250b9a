"""The digest's chart: weekly volume of policy reports per area over the last weeks, as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so it is safe in threads and servers, then saved through Pillow (a matplotlib dependency) as a
palette PNG with no timestamp: the same numbers give the same bytes.

One picture for both colour schemes: its background is transparent, so the message's own
background shows through (white, or a mail app's dark one), its lines have colours of middle
lightness that keep 3:1 against white and against dark backgrounds (WCAG 1.4.11), and its text
is dark with a white halo: on white the halo vanishes (dark text, 14:1), on a dark background
the glyphs keep their halo to stand on. No single colour of text reads at 4.5:1 on both white
and the digest's dark #1b2027 (4.0:1 at best), hence the halo. Where the mail app applies the
digest's dark styles (Apple Mail, iOS Mail), a CSS filter turns the picture's lightness over as
well: light text on the dark page, its halo gone dark (digest.html.j2).
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

from .select import label_name
from .trends import COMPARE_WEEKS, TrendReport, TrendRow

# Hues of the colour-blind-safe Okabe-Ito palette and a few more, each brought to a relative
# luminance of about 0.21: at least 3:1 against white and against dark backgrounds from black to
# the digest's #1b2027, as a line must be (WCAG 1.4.11). Okabe-Ito's own black, wine and purple
# vanished on dark backgrounds, its yellow, sky blue and grey on white. Alike in lightness, lines
# stay apart in grey by their dash patterns and markers (STYLES, MARKERS).
COLOURS = ["#0081c9", "#a97500", "#009169", "#c15b94", "#d05c00", "#966bc4", "#7f7f7f",
           "#00879a", "#d3415c", "#6f8a00"]
# Text: dark on white (14:1), with a white halo of HALO points that keeps it legible where a
# mail app puts the transparent picture on a dark background.
INK, HALO_COLOUR, HALO = "#1f2933", "#ffffff", 2.2
# Axes, ticks and the grid: the grid is a faint mid grey in both schemes.
AXIS, GRID = "#7f7f7f", (0.5, 0.53, 0.57, 0.35)


FEW_LINES = 4  # lines a chart of 32 colours draws as well as one of 64
# The most countries or regions a reader's own chart draws: more lines than the chart of every
# area (9) crowd a phone-width legend and repeat colours; a reader following more gets that one.
MAX_PLACES = 9

# What a chart draws: (facet, values), its key in a week's charts. ("area", ()) is the chart of
# every area with reports.
ChartKey = tuple[str, tuple[str, ...]]
EVERY_AREA: ChartKey = ("area", ())
_NOUNS = {"area": ("area", "areas"), "country": ("country", "countries"),
          "region": ("region", "regions")}


def own_areas(report: TrendReport, areas: Sequence[str] | None) -> tuple[str, ...]:
    """The areas of a reader's ``areas`` filter the report has, in its order: the lines of
    their chart; () for a reader without one (or with none the report knows), whose chart
    draws every area with reports. Readers with the same areas share a chart."""
    wanted = set(areas or ())
    return tuple(row.value for row in report.rows("area") if row.value in wanted)


def _own_places(report: TrendReport, facet: str, wanted: Sequence[str]) -> tuple[str, ...]:
    """The countries or regions of a reader's filter the chart can name, busiest first as the
    report lists them, then those without a report in its weeks (a country has a row only
    when it has reports) by name."""
    wanted_set = set(wanted)
    listed = [row.value for row in report.rows(facet) if row.value in wanted_set]
    rest = sorted((v for v in wanted_set - set(listed) if _nameable(facet, v)),
                  key=lambda v: (label_name(facet, v), v))
    return tuple(listed + rest)


def _nameable(facet: str, value: str) -> bool:
    """Whether the digest knows ``value`` (a country pycountry names, a taxonomy region): an
    id it does not know draws no line."""
    return label_name(facet, value) != value


def chart_key(report: TrendReport,
              filters: Mapping[str, Sequence[str] | None] | None = None) -> ChartKey:
    """What a reader's chart draws, from their ``filters`` (a digest's: "areas", "countries",
    "regions"; none: every area): the areas they follow when they have an areas filter (areas
    win); else the countries they follow when they follow no region, or the regions when they
    follow no country (at most ``MAX_PLACES``); else every area with reports. Readers with the
    same key share a chart, and the chart's lines, titles and alt text all follow from it."""
    filters = filters or {}
    areas, countries, regions = (filters.get(name) for name in ("areas", "countries",
                                                                "regions"))
    if areas:
        return ("area", own_areas(report, areas))
    for facet, mine, other in (("country", countries, regions), ("region", regions, countries)):
        # A report without the facet (`stiwatch trends` counts no countries unless asked)
        # cannot tell a quiet country from an uncounted one.
        if mine and not other and facet in report.facets:
            values = _own_places(report, facet, mine)
            if 0 < len(values) <= MAX_PLACES:
                return (facet, values)
    return EVERY_AREA


def drawn_rows(report: TrendReport, key: ChartKey = EVERY_AREA) -> list[TrendRow]:
    """The lines the chart of ``key`` draws: a reader's own areas, countries or regions, those
    without any report in its weeks too (a flat line says so); else, for a reader who follows
    every area, the areas with any report in its weeks."""
    facet, values = key
    if not values:
        return [row for row in report.rows("area") if any(row.series)]
    rows = {row.value: row for row in report.rows(facet)}
    flat = [0] * len(report.weeks)
    return [rows.get(value) or TrendRow(value, label_name(facet, value), list(flat), 0, 0.0,
                                        0.0, None, "flat")
            for value in values]


def legend_title(report: TrendReport, key: ChartKey = EVERY_AREA) -> str:
    """What the lines are, over the legend: the reader's areas, countries or regions (each
    counted whole, as the trend tables count: not only the reports the reader's other filters
    match), or all areas."""
    facet, values = key
    if values:
        return f"The {_NOUNS[facet][1]} you follow, all their reports"
    count = len(drawn_rows(report))
    return f"All {count} areas with reports" if count > 1 else "The one area with reports"


def chart_alt(report: TrendReport, key: ChartKey = EVERY_AREA) -> str:
    """The alt text of the chart of ``key``: what it draws, with the weekly totals, and what
    the digest's tables below it hold (this week and the 4-week average, not the weekly
    series)."""
    first, last = report.weeks[0], report.weeks[-1]
    span = f"{first} to {last} ({len(report.weeks)} weeks)"
    facet, values = key
    noun = _NOUNS[facet][0]
    rows = drawn_rows(report, key)
    lines = (f"one line per {noun} you follow" if values
             else "one line per area with reports")
    # The weeks before the store's first are blank in the chart: not counted as 0 here either
    # ("0, 0, 0, 0, 13, ..." read as four quiet weeks before a jump).
    unwatched = (report.first_week and report.first_week > first
                 and report.first_week in report.weeks)
    since = f" from {report.first_week}" if unwatched else ""
    totals = ", ".join(str(n) for n in
                       report.totals[report.weeks.index(report.first_week) if unwatched else 0:])
    if not rows:
        if not any(report.totals):
            return f"Line chart: policy reports per week by area, {span}: none in these weeks."
        return (f"Line chart: policy reports per week by area, {span}, with no lines. All policy "
                f"reports per week{since}, oldest first: {totals}; none has a policy area.")
    if unwatched:
        span += f"; weeks before {report.first_week} blank: the store holds nothing earlier"
    average = (f"the {report.history}-week average" if report.history > 1
               else "last week's count" if report.history else "no average (nothing earlier)")
    # the country table lists the countries the reader follows (digest/render.trend_tables)
    which = f"{noun} you follow" if facet == "country" else noun
    table = (f"The table below has this week's count and {average} for each {which} with "
             f"reports in the last {COMPARE_WEEKS + 1} weeks.")
    return (f"Line chart: policy reports per week by {noun}, {span}, {lines}: "
            f"{', '.join(row.name for row in rows)}. All policy reports per week{since}, oldest "
            f"first: {totals}. {table}")


# The image is 600 CSS pixels wide in the message and about 350 on a phone: its text is sized
# for the phone (10 pt at 125 dpi in a 4.8-inch figure is 9.7 px there; 7 pt at 110 dpi in a
# 6-inch one was 5.6 px, unreadable).
WIDTH, HEIGHT, DPI, FONT = 4.8, 4.6, 125, 10.0
# The <img>'s size in CSS pixels (its width and height attributes): the figure at DPI.
CSS_WIDTH, CSS_HEIGHT = round(WIDTH * DPI), round(HEIGHT * DPI)
# The PNG has this many pixels per CSS pixel: phones and retina screens draw 2 or 3 device
# pixels per CSS pixel, and a 1x image came out blurred there.
PIXEL_RATIO = 2
# Line styles and markers vary with the colour, so lines stay apart in grayscale (a printout,
# a colour-blind reader) where two colours come out the same grey.
STYLES = ["-", "--", "-.", ":"]
MARKERS = ["o", "s", "^", "D", "v"]


def chart_figure(report: TrendReport, key: ChartKey = EVERY_AREA,
                 background: str = "none") -> Any:
    """The chart of ``key`` as a matplotlib Figure: one line per policy area, country or region
    a reader follows (see ``chart_key`` and ``drawn_rows``), or, for a reader who follows all,
    per area that had any story in the window; weeks before the store's first story
    (``report.first_week``) are left blank, not drawn as zeros; at ``PIXEL_RATIO`` x ``DPI``.
    ``background``: "none" (transparent, for the digest), or a colour."""
    # Imported here: matplotlib costs ~0.4 s, and most `stiwatch` commands never draw.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matplotlib import patheffects
    from matplotlib.text import Text

    # At PIXEL_RATIO x DPI: sizes are in points and inches, so it is the same chart with twice
    # the pixels in each direction. Laid out at the DPI it is drawn at: laid out at DPI and
    # drawn at twice that, matplotlib measured every text twice.
    # Transparent: the message's background, light or dark, shows through.
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI * PIXEL_RATIO, facecolor=background)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_facecolor("none")
    labels = [w.split("-")[1] for w in report.weeks]  # "W47": the year is in the title
    positions = list(range(len(labels)))
    watched = [report.first_week is None or w >= report.first_week for w in report.weeks]
    drawn = 0
    for row in drawn_rows(report, key):
        values = [n if seen else float("nan") for n, seen in zip(row.series, watched)]
        axes.plot(positions, values, marker=MARKERS[drawn % len(MARKERS)], markersize=4,
                  linewidth=1.6, linestyle=STYLES[drawn % len(STYLES)],
                  color=COLOURS[drawn % len(COLOURS)], label=row.name)
        drawn += 1
    if not drawn:
        empty = "No policy reports with an area" if any(report.totals) else "No policy reports"
        axes.text(0.5, 0.5, f"{empty} in these weeks", ha="center", va="center",
                  transform=axes.transAxes, fontsize=FONT)
    if not all(watched):
        axes.text(sum(1 for seen in watched if not seen) / 2 - 0.5, 0.02, "not yet\nwatched",
                  ha="center", va="bottom", transform=axes.get_xaxis_transform(),
                  fontsize=FONT - 1)
    # Every other week labelled when there are many: twelve labels overlap at phone size.
    step = 2 if len(labels) > 8 else 1
    shown = [n for n in positions if (len(positions) - 1 - n) % step == 0]
    axes.set_xticks(shown, [labels[n] for n in shown], fontsize=FONT)
    axes.set_xlim(-0.5, len(positions) - 0.5)
    axes.tick_params(axis="y", labelsize=FONT)
    axes.set_ylabel("Reports per week", fontsize=FONT)
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(axis="y", color=GRID, linewidth=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(AXIS)
    axes.tick_params(color=AXIS)
    first, last = report.weeks[0], report.weeks[-1]
    facet = key[0]
    # y=1.0: just over the axes, where matplotlib puts it anyway (no ticks on top). Left to
    # matplotlib, it measures every y tick label to check, in the layout and again in the draw.
    axes.set_title(f"Policy reports per week by {_NOUNS[facet][0]},\n{first} to {last}",
                   fontsize=FONT + 1, loc="left", y=1.0)
    if drawn:
        # Below the plot, so a phone-width image keeps the whole width for the lines.
        # Titled with what the lines are: a reader's own areas (countries, regions), or all.
        legend = axes.legend(fontsize=FONT, frameon=False, loc="upper center", ncol=2,
                             bbox_to_anchor=(0.5, -0.12), columnspacing=1.0, handlelength=2.4,
                             title=legend_title(report, key),
                             title_fontsize=FONT)
        legend.get_title().set_fontweight("bold")
    halo = [patheffects.withStroke(linewidth=HALO, foreground=HALO_COLOUR)]
    for text in figure.findobj(Text):
        text.set_color(INK)
        text.set_path_effects(halo)
    figure.tight_layout()
    return figure


def area_chart(report: TrendReport, key: ChartKey = EVERY_AREA,
               background: str = "none") -> bytes:
    """PNG bytes of the chart of ``key`` (``chart_figure``) at ``PIXEL_RATIO`` times its size
    in CSS pixels (1200 x 1150 for a 600 x 575 <img>); transparent unless ``background`` is a
    colour."""
    from PIL import Image

    canvas = chart_figure(report, key, background).canvas
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    # A palette PNG is a third of the truecolour size: it travels in every message. 64 colours
    # for many lines; a reader's few lines (and their edges) look the same in 32, a fifth
    # smaller. FASTOCTREE is Pillow's quantizer that keeps alpha (to a few levels: 250 for a
    # line).
    _, mine = key
    colours = 32 if mine and len(mine) <= FEW_LINES else 64
    small = (rgba.quantize(colors=colours, method=Image.Quantize.FASTOCTREE)
             if background == "none"
             else rgba.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT))
    buffer = io.BytesIO()
    # zlib's slowest level makes the chart of every area, drawn once a week, 5% smaller for
    # 0.1 s; a reader's own chart, one per set of areas, countries or regions followed (about
    # 150 for the bench's thousand readers), is 2% larger at level 7 in a tenth of the time.
    small.save(buffer, format="PNG", compress_level=7 if mine else 9)
    return buffer.getvalue()
