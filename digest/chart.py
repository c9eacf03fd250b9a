"""The digest's chart: weekly volume of policy stories per area over the last weeks, as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state),
so it is safe in threads and servers, then saved through Pillow (a matplotlib dependency) as a
palette PNG with no timestamp: the same numbers give the same bytes.
"""

from __future__ import annotations

import io

from .trends import COMPARE_WEEKS, TrendReport, TrendRow

# Colour-blind-safe palette (Okabe-Ito plus greys) so lines stay distinguishable.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000", "#999999", "#6A3D9A"]


def drawn_rows(report: TrendReport) -> list[TrendRow]:
    """The areas the chart draws a line for: those with any story in its weeks."""
    return [row for row in report.rows("area") if any(row.series)]


def chart_alt(report: TrendReport) -> str:
    """The chart's alt text: what it draws, with the weekly totals, and what the digest's area
    table below it holds (this week and the 4-week average, not the weekly series)."""
    first, last = report.weeks[0], report.weeks[-1]
    span = f"{first} to {last} ({len(report.weeks)} weeks)"
    rows = drawn_rows(report)
    if not rows:
        if not any(report.totals):
            return f"Line chart: policy items per week by area, {span}: none in these weeks."
        return (f"Line chart: policy items per week by area, {span}, with no lines. All policy "
                f"items per week, oldest first: {', '.join(str(n) for n in report.totals)}; "
                "none has a policy area.")
    average = (f"the {report.history}-week average" if report.history > 1
               else "last week's count" if report.history else "no average (nothing earlier)")
    return (f"Line chart: policy items per week by area, {span}, one line per area with items: "
            f"{', '.join(row.name for row in rows)}. All policy items per week, oldest first: "
            f"{', '.join(str(n) for n in report.totals)}. The table below has this week's count "
            f"and {average} for each area with items in the last "
            f"{COMPARE_WEEKS + 1} weeks.")


def area_chart(report: TrendReport, *, width: float = 6.0, height: float = 4.0,
               dpi: int = 110) -> bytes:
    """PNG bytes of a line chart: one line per policy area that had any story in the window."""
    # Imported here: matplotlib costs ~0.4 s, and most `stiwatch` commands never draw.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    labels = [w.split("-")[1] for w in report.weeks]  # "W47": the year is in the title
    positions = list(range(len(labels)))
    drawn = 0
    for row in drawn_rows(report):
        colour = COLOURS[drawn % len(COLOURS)]
        axes.plot(positions, row.series, marker="o", markersize=3, linewidth=1.6,
                  color=colour, label=row.name)
        drawn += 1
    if not drawn:
        empty = "No policy items with an area" if any(report.totals) else "No policy items"
        axes.text(0.5, 0.5, f"{empty} in these weeks", ha="center", va="center",
                  transform=axes.transAxes, color="#555555")
    axes.set_xticks(positions, labels, fontsize=7)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    first, last = report.weeks[0], report.weeks[-1]
    axes.set_title(f"Policy items per week by area, {first} to {last}", fontsize=9, loc="left")
    if drawn:
        # Below the plot, so a phone-width image keeps the whole width for the lines.
        axes.legend(fontsize=7, frameon=False, loc="upper center", ncol=3,
                    bbox_to_anchor=(0.5, -0.12), columnspacing=1.2, handlelength=1.6)
    figure.tight_layout()
    canvas = figure.canvas
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    # A 64-colour palette PNG is a third of the truecolour size: it travels in every message.
    small = rgba.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
