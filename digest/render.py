"""Digest -> HTML and plain text, from Jinja2 templates in digest/templates/.

The HTML template is autoescaped, so every string that came from a crawled page or feed (titles,
summaries, source names) arrives as text; links are kept only when they are http(s). Layout is
tables (Outlook ignores flexbox) at most 640 px wide, styled inline except for the lines repeated in
every story and trend row, whose classes are defined once in a <style> block in <head> (Gmail and
Outlook honour class selectors there; repeated inline they made busy digests too large); a second
block restyles the page for dark mode (prefers-color-scheme) where a mail app honours it. The message
reads without images: the chart's alt text names its lines and gives the weekly totals, and a
table gives each tag's count this week and its 4-week average.
"""

from __future__ import annotations

from functools import lru_cache
import shlex
import textwrap
from typing import Any
import unicodedata
from urllib.parse import urlencode, urlsplit

import jinja2
from markupsafe import Markup, escape

from db.clock import iso_utc

from .chart import CSS_HEIGHT, CSS_WIDTH, chart_alt, chart_key
from .select import LATE, LATE_WEEKS, OTHER, Digest, Entry, Section, Story, label_name
from .trends import PCT_MIN_MEAN

CHART_CID = "trends-chart"


@lru_cache(maxsize=50_000)
def safe_url(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None (javascript:, data:, relative...)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if any(ord(ch) < 33 or ch in '"<>`' for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def subject(digest: Digest) -> str:
    count = digest.total  # stories: the reports of one event are one (digest/events.py)
    noun = "story" if count == 1 else "stories"
    return f"STI policy digest {digest.week.label} ({digest.week.span()}): {count} {noun}"


def preheader(digest: Digest) -> str:
    """The text a mail app shows under the subject in the inbox: the reader's top three
    headlines ('' when there are none; the subject already gives the week and the count)."""
    return " · ".join(e.story.title for e in digest.headlines.entries[:3])


def _date(story: Story, tz: Any) -> str:
    return story.published.astimezone(tz).strftime("%a %-d %b")


def _change(row: Any) -> str:
    """A trend row's change column: arrow, change in reports, and the percentage when its base
    is large enough to mean something (``TrendRow.telling_pct``)."""
    if row.direction == "unknown":
        return "–"  # no earlier week in the store: no change to speak of
    if row.direction == "flat":
        return "= 0"  # "= +0 (+0%)" put a sign and a percentage on no change at all
    text = f"{_arrow(row.direction)} {_signed(row.change)}"
    if row.direction == "new":
        return text + " (new)"
    if row.telling_pct is not None:
        return text + f" ({row.telling_pct:+d}%)"
    return text


def partial_note(digest: Digest) -> str:
    """'' for a week that was over when its digest was built, else what the reader must know:
    its counts stop at that moment, and a part of a week compares low with whole weeks."""
    report = digest.trends
    if report is None or report.as_of is None:
        return ""
    moment = report.as_of.astimezone(digest.week.tz).strftime("%a %-d %b %H:%M")
    return (f"This week is not over yet: stories up to {moment} ({digest.week.tz.key}); "
            "against whole weeks its counts read low.")


# What the trends count, said where their numbers start.
REPORTS = ("All STI-policy reports (a story several sources reported counts once per source; "
           "a syndicated copy does not count)")


def trend_intro(report: Any, filtered: bool = False) -> str:
    """The sentence over the trend tables: all reports this week against the weeks before (so
    a reader sees how much of each row's rise is the week's volume), and what each row is
    compared with, honestly when the store is younger than the 4 comparison weeks. Trends count
    reports, not the digest's stories: an event three sources reported counts three times, as
    coverage does, while the stories above show it once; the sentence says so. A ``filtered``
    reader is told the trends are everyone's, not those of their filters' stories."""
    reports = REPORTS.replace("reports (", "reports, not only those your filters match (", 1) \
        if filtered else REPORTS
    history = report.history
    this = report.totals[-1] if report.totals else 0
    if not history:
        return (f"{reports}: {this} this week. The store holds nothing earlier (its first "
                "report is from this week), so there is no average to compare with yet.")
    average = _num(report.previous_mean)
    minimum = _num(PCT_MIN_MEAN)
    if history == 1:
        total = f"{this} this week, {average} the week before"
        rows = "this week against the week before"
        base = f"that week had at least {minimum} reports"
    else:
        total = f"{this} this week, {average} a week on average in the previous {history} weeks"
        rows = f"this week against the average of the previous {history} weeks"
        base = f"that average is at least {minimum} reports a week"
    if history < 4:
        total += (f" (the store begins in {report.first_week}: weeks before it are not "
                  "counted as quiet)")
    return (f"{reports}: {total}. Each row below: {rows}; a change in per cent "
            f"only where {base}.")


def one_source_note(row: Any) -> str:
    """The line under a trend table for a row whose rise is mostly one source's doing
    (``TrendRow.one_source``)."""
    return (f"Mostly one source: {row.name}, {row.top_source_stories} of {row.this_week} this "
            f"week from {row.top_source}.")


def no_rising_terms(report: Any) -> str:
    """What the digest says after "Rising terms:" when no term rose, and why."""
    if report.history:
        return "none this week (a term needs at least 2 reports from 2 sources)."
    return "none yet: nothing earlier in the store to compare with."


TREND_TABLES = (("area", "Policy areas"), ("domain", "Technology domains"), ("region", "Regions"))


def trend_tables(digest: Digest) -> list[tuple[str, list[Any]]]:
    """The trend tables of ``digest``, (title, rows as ``moved_first`` orders them), those with
    rows: every area, domain and region, then the countries the reader follows (every country
    would be a long table; their chart, when they have one, draws the same countries)."""
    report = digest.trends
    if report is None:
        return []
    tables = [(title, moved_first(report.rows(facet))) for facet, title in TREND_TABLES]
    followed = set(digest.filters.get("countries") or ())
    if followed and "country" in report.facets:
        tables.append(("Countries you follow", moved_first(
            [row for row in report.rows("country") if row.value in followed])))
    return [(title, rows) for title, rows in tables if rows]


def moved_first(rows: list[Any]) -> list[Any]:
    """A trend table's rows as the digest shows them: those with a report this week or in
    the weeks compared, largest change first, a fall as a rise (``abs(change)`` in reports:
    a percentage of a small average would put 1 against 0.25 above 30 against 20), then by
    name. Without history the change is this week's count."""
    shown = [row for row in rows if row.this_week or row.previous_mean]
    return sorted(shown, key=lambda row: (-abs(row.change), row.name.casefold()))


def avg_title(report: Any) -> str:
    """The average column's heading."""
    if report.history == 1:
        return "last week"
    return f"{report.history}-week avg" if report.history else "avg"


def avg_heading(report: Any) -> Markup:
    """``avg_title`` for the HTML table's heading: "4-week" kept whole, as a narrow column
    broke it after the hyphen ("4-" / "week" / "avg")."""
    first, space, rest = avg_title(report).partition(" ")
    if "-" not in first:
        return escape(avg_title(report))
    return Markup('<span style="white-space:nowrap">{}</span>{}{}').format(first, space, rest)


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + _num(abs(value))


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _arrow(direction: str) -> str:
    return {"up": "▲", "down": "▼", "new": "★", "flat": "="}.get(direction, "")


# Japanese and Chinese lines may break between any two wide characters, but not before these.
_NO_LINE_START = frozenset("、。，．・：；？！）」』】〕〉》ー々ぁぃぅぇぉっゃゅょァィゥェォッャュョ")
# ... nor after these: an opening bracket goes to the next line with what it opens.
_NO_LINE_END = frozenset("（「『【〔〈《")


def _columns(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


@lru_cache(maxsize=20_000)
def _wrap(text: str, width: int = 76, indent: str = "  ") -> str:
    """Word-wrap for the text part, cached: the same summary appears in many digests. Lines are
    measured in columns (a Japanese character takes two) and may break between wide characters,
    so Japanese text wraps as English does; an English word is never broken."""
    if not text:
        return ""
    if all(_columns(ch) == 1 for ch in text):
        return ("\n" + indent).join(textwrap.wrap(text, width, break_long_words=False,
                                                   break_on_hyphens=False))
    # Units: a wide character, or a run of narrow ones without spaces; and whether a space
    # came before each.
    units: list[tuple[str, bool]] = []
    spaced = False
    for char in text:
        if char.isspace():
            spaced = bool(units)
        elif _columns(char) == 1 and units and not spaced and _columns(units[-1][0][-1]) == 1:
            units[-1] = (units[-1][0] + char, units[-1][1])
        else:
            units.append((char, spaced))
            spaced = False
    lines: list[str] = []
    line, used = "", 0
    for unit, space in units:
        size = sum(_columns(ch) for ch in unit) + (1 if space and line else 0)
        if line and used + size > width and unit[0] not in _NO_LINE_START:
            carry = line[-1] if line[-1] in _NO_LINE_END and line[:-1].strip() else ""
            lines.append(line[:len(line) - len(carry)].rstrip())
            line, used = carry, sum(_columns(ch) for ch in carry)
            size -= 1 if space and not carry else 0
        line += (" " if space and line else "") + unit
        used += size
    lines.append(line)
    return ("\n" + indent).join(lines)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("digest", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"),
                                            default_for_string=True, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(wrap=_wrap, safe_url=safe_url, num=_num, change=_change)
    env.globals.update(label_name=label_name, more_commands=more_commands,
                       trend_intro=trend_intro, avg_title=avg_title, avg_heading=avg_heading,
                       partial_note=partial_note,
                       one_source_note=one_source_note, no_rising_terms=no_rising_terms,
                       preheader=preheader, more_link=more_link)
    return env


def _story_fields(story: Story, tz: Any) -> dict[str, Any]:
    return {
        "s": story,
        "date": _date(story, tz),
        # where it happens; a multilateral body's news names no country, and says so
        "countries": ", ".join(label_name("country", c) for c in story.countries) or (
            label_name("region", "international") if "international" in story.regions else ""),
        "tags": ", ".join([label_name("area", a) for a in story.areas]
                          + [label_name("domain", d) for d in story.domains]),
    }


def _story_block(story: Story, tz: Any, kind: str) -> str:
    """A story's HTML or text block, rendered once and reused by every digest of the week."""
    def make() -> str:
        template = environment().get_template(f"_story.{kind}.j2")
        return template.render(_story_fields(story, tz))

    text = story.text(kind, make)
    return Markup(text) if kind == "html" else text


def _context(digest: Digest, *, chart_src: str | None, unsubscribe: str | None,
             serve_url: str | None = None) -> dict[str, Any]:
    tz = digest.week.tz
    return {
        "d": digest,
        "serve_url": serve_url,
        "subject": subject(digest),
        "chart_src": chart_src,
        "chart_size": (CSS_WIDTH, CSS_HEIGHT),
        # the same key as the message's chart (WeekBundle.chart): the text says what it draws
        "chart_alt": chart_alt(digest.trends, chart_key(digest.trends, digest.filters))
        if chart_src else "",
        "unsubscribe": safe_url(unsubscribe) or (
            unsubscribe if unsubscribe and unsubscribe.startswith("mailto:") else None),
        "story_html": lambda story: _story_block(story, tz, "html"),
        "story_text": lambda story: _story_block(story, tz, "txt"),
        "trend_tables": trend_tables(digest),
    }


SEARCH_LIMIT = 20  # `stiwatch search --limit`'s default
SEARCH_MAX = 10_000  # the most `stiwatch search --limit` takes


def _section_scope(digest: Digest, section: Section) -> tuple[list[Any], list[str]]:
    """The weeks (oldest first) and the areas a section's stories come from: the weeks before
    this one for the late section, this one for the others; the reader's areas for the late and
    other sections, the section's own area for an area's."""
    weeks = digest.week.previous(LATE_WEEKS) if section.id == LATE else [digest.week]
    areas = digest.filters["areas"] if section.id in (LATE, OTHER) else [section.id]
    return weeks, list(areas)


def more_commands(digest: Digest, section: Section) -> list[str]:
    """`stiwatch search` command lines that list a section's stories, shown or not: the reader's
    filters, the section's area and its days, run as printed (search without a query lists
    the stories its filters match, newest first); for the late section the items stored after
    the reader's last digest too (``--after-id``), as the section took them; the reader's query
    as search's QUERY (after ``--``: a query may start with `-`), listed newest first too
    (``--sort newest``). Two commands for a reader with both countries and regions: the
    digest takes stories about either, search's filters must all match."""
    filters = digest.filters
    weeks, areas = _section_scope(digest, section)
    first, last = weeks[0].monday, weeks[-1].sunday
    base = ["stiwatch", "search", "--policy"]
    base += [arg for area in areas for arg in ("--area", area)]
    base += [arg for domain in filters["domains"] for arg in ("--domain", domain)]
    places = [[arg for c in filters["countries"] for arg in ("--country", c)],
              [arg for r in filters["regions"] for arg in ("--region", r)]]
    tail = ["--since", first.isoformat(), "--until", last.isoformat()]
    if section.id == LATE and digest.late_after is not None:
        # The weeks' dates alone listed every story of them, those earlier digests had sent too
        tail += ["--after-id", str(digest.late_after)]
    # Search lists the area's items, the headlines' and other sections' among them, and every
    # report of an event: as many as the section has stories cut the listing short. The
    # reader's reports this week (every report of their stories) are as many as it can list.
    count = len(section.entries) + section.more
    count = max(count, digest.late_reports if section.id == LATE else digest.reports)
    if count > SEARCH_LIMIT:
        tail += ["--limit", str(min(count, SEARCH_MAX))]
    if digest.query:
        tail += ["--sort", "newest", "--", digest.query]
    return [shlex.join(base + place + tail) for place in ([p for p in places if p] or [[]])]


# The `stiwatch serve` page a section's "more" line links to: each story once, as the copy the
# digest and search show (its original's id and tags, which the filters read), tags as JSON
# arrays that Datasette's array filters read.
LISTING = "items_tagged_json"


def _any_of(*columns: tuple[str, list[str]]) -> str:
    """`stiwatch serve`'s ``_tags_any`` value for a row of LISTING with any of these tags,
    which the page's title states (a ``_where`` it leaves out)."""
    return ",".join(f"{column}:{value}" for column, values in columns for value in values)


def more_link(digest: Digest, section: Section, serve_url: str | None) -> str | None:
    """The `stiwatch serve` page (``serve_url``: the store's page, as serve announces it) that
    lists what ``more_commands`` lists: the policy items of the section's area (the reader's
    areas for the late and other sections) and its days that meet the reader's filters, newest
    first (for the late section, those stored after the reader's last digest: ``id__gt``);
    one page where search needs two commands, since a page can take items about the reader's
    countries or regions; the reader's query as the page's search box (``_search``), which
    reads `stiwatch search`'s syntax and lists a story any of whose items matches, as the
    digest selects it (a report the digest grouped into another source's story is listed when
    it matches itself). None without ``serve_url``."""
    if not serve_url:
        return None
    filters = digest.filters
    weeks, areas = _section_scope(digest, section)
    # In the store's own form (2026-11-15T15:00:00Z): Datasette compares the text, and
    # week.start_utc's space sorts before the stored "T", which moved the bounds by up to a day.
    start, end = iso_utc(weeks[0].start), iso_utc(weeks[-1].end)
    args: list[tuple[str, str]] = [("policy", "1")]
    anys: list[str] = []
    for column, values in (("areas", list(areas)), ("domains", list(filters["domains"]))):
        if len(values) == 1:
            args.append((f"{column}__arraycontains", values[0]))  # Datasette's own filter
        elif values:
            anys.append(_any_of((column, values)))
    places = [(column, list(filters[column])) for column in ("countries", "regions")
              if filters[column]]
    if len(places) == 1 and len(places[0][1]) == 1:
        args.append((f"{places[0][0]}__arraycontains", places[0][1][0]))
    elif places:
        anys.append(_any_of(*places))  # about any of the countries or regions
    args += [("_tags_any", condition) for condition in anys]
    args += [("published_at__gte", start), ("published_at__lt", end)]
    if section.id == LATE and digest.late_after is not None:
        args.append(("id__gt", str(digest.late_after)))
    if digest.query:
        args.append(("_search", digest.query))
    return safe_url(f"{serve_url.rstrip('/')}/{LISTING}?{urlencode(args)}")


def _size(html: str) -> int:
    """Bytes of ``html`` in the message, decoded: UTF-8, each line ending a CR LF."""
    return len(html.encode("utf-8")) + html.count("\n")


def _leave_out_order(digest: Digest) -> list[tuple[Section, Entry]]:
    """The section stories in the order they give way to the budget: lowest-ranked first, each
    section's top story only after every other one (so every section keeps a story while it
    can); headlines never."""
    rest = [(s, e) for s in digest.sections for e in s.entries[1:]]
    tops = [(s, s.entries[0]) for s in digest.sections if s.entries]

    def worst_first(pairs: list[tuple[Section, Entry]]) -> list[tuple[Section, Entry]]:
        return sorted(pairs, key=lambda pair: pair[1].story.rank_key(), reverse=True)

    return worst_first(rest) + worst_first(tops)


def render_html(digest: Digest, *, chart_src: str | None = None,
                unsubscribe: str | None = None, budget: int | None = None,
                serve_url: str | None = None) -> str:
    """The HTML part. ``chart_src``: the chart's ``cid:`` URL in e-mail (message.chart_url), a
    file name in a preview, or None (no chart). ``serve_url``: the store's page in `stiwatch
    serve`, where a section's "more" line then links (``more_link``) instead of giving
    `stiwatch search` commands.

    ``budget``: bytes the HTML may take in the message at most, decoded (UTF-8, CR LF line
    endings; quoted-printable on the wire is larger); None or 0: no limit. Gmail clips a larger
    one, hiding its end and the unsubscribe link with it; so the lowest-ranked section stories
    are left out of ``digest`` itself (counted in their section's ``more``) until it fits, and
    a text part rendered from ``digest`` afterwards lists the same stories."""
    template = environment().get_template("digest.html.j2")

    def render() -> str:
        return template.render(_context(digest, chart_src=chart_src, unsubscribe=unsubscribe,
                                        serve_url=serve_url))

    html = render()
    size = _size(html)
    if not budget or size <= budget:
        return html
    tz = digest.week.tz
    order = _leave_out_order(digest)
    done = 0
    while size > budget and done < len(order):
        # Leave out about as many bytes of stories as are over, then measure again: a
        # section's "more" line, once it has one, takes some back.
        freed = 0
        while freed < size - budget and done < len(order):
            section, entry = order[done]
            done += 1
            section.entries.remove(entry)
            section.more += 1
            freed += _size(_story_block(entry.story, tz, "html")) + _size("; ".join(entry.why)) + 60
        html = render()
        size = _size(html)
    return html


def render_text(digest: Digest, *, unsubscribe: str | None = None) -> str:
    """The plain-text alternative: the same items, links written out."""
    template = environment().get_template("digest.txt.j2")
    return template.render(_context(digest, chart_src=None, unsubscribe=unsubscribe))
