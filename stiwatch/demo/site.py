"""The bundled offline demo site: content loading/validation and the static-site generator.

Content lives as data in ``content/<source-id>.toml`` (one file per fictional source). Dates in
the files are relative (``week``/``day``) so the demo always shows a live-looking last week,
whatever day it is run: the ISO week containing ``today`` is week 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from html import escape
import os
from pathlib import Path
import posixpath
import re
import shutil
import tomllib
from typing import Any
from urllib.parse import urlsplit
import zlib

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

# The demo's sources must form a valid registry: share its vocabularies.
from crawler.registry import KINDS, ORG_TYPES, SPECIAL_COUNTRIES

HERE = Path(__file__).resolve().parent
CONTENT_DIR = HERE / "content"
TEMPLATES_DIR = HERE / "templates"

# Label ids of the project's taxonomy. Kept here (not imported from the classifier) so the demo
# content is a fixed, independent hand-labelled test set; a test in the classifier can compare.
AREAS = (
    "governance", "public_research", "business_innovation", "knowledge_transfer",
    "human_resources", "society", "international", "open_science", "research_security",
)
DOMAINS = (
    "ai", "quantum", "semiconductors", "biotech_health", "energy_climate", "space",
    "digital_infrastructure", "materials_manufacturing",
)
FEED_FORMATS = ("rss2", "atom", "rss1")
LISTING_LAYOUTS = ("cards", "table", "list")
TRACKING = "utm_source=rss&utm_medium=feed"
# Written into a built site so a rebuild may safely wipe it, and nothing else.
MARKER = ".stiwatch-demo-site"

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OFFSET = re.compile(r"^([+-])(\d\d):(\d\d)$")

SOURCE_KEYS = {"id", "name", "kind", "country", "language", "org_type", "links", "style"}
ARTICLE_KEYS = {
    "slug", "title", "week", "day", "hour", "summary", "body", "expected", "syndicated_from",
}
EXPECTED_KEYS = {"policy", "areas", "domains", "countries"}
# Style keys every source needs, and those its kind needs on top.
STYLE_REQUIRED = {"path", "site_title", "tagline", "footer", "article_path", "utc_offset"}
STYLE_BY_KIND = {
    "feed": {"feed", "feed_format"},
    "html": {"listing", "listing_layout"},
    "sitemap": {"sitemap_index"},
}


class ContentError(ValueError):
    """A demo content file is invalid; the message names the file (and article slug)."""


@dataclass(frozen=True)
class Expected:
    policy: int
    areas: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "areas": list(self.areas),
                "domains": list(self.domains), "countries": list(self.countries)}


@dataclass
class DemoArticle:
    source_id: str
    slug: str
    title: str
    week: int
    day: int
    hour: int | None
    summary: str
    body: str
    expected: Expected
    syndicated_from: str | None = None
    own_labels: bool = True  # False: a syndicated copy that inherits the original's labels

    @property
    def key(self) -> str:
        return f"{self.source_id}/{self.slug}"

    @property
    def paragraphs(self) -> list[str]:
        return [" ".join(p.split()) for p in re.split(r"\n\s*\n", self.body.strip()) if p.strip()]


@dataclass
class DemoSource:
    id: str
    name: str
    kind: str
    language: str
    org_type: str
    country: str | None
    links: str | None
    style: dict[str, Any]
    file: Path
    articles: list[DemoArticle] = field(default_factory=list)


@dataclass
class PlacedArticle:
    """An article pinned to a real date and URL for one build."""

    source: DemoSource
    article: DemoArticle
    published: datetime  # aware, in the source's UTC offset
    path: str  # URL path, starting with "/"
    url: str  # absolute, canonical

    @property
    def file(self) -> str:
        """Path of the file on disk, relative to the site root."""
        rel = self.path.lstrip("/")
        return rel + "index.html" if rel.endswith("/") else rel


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _valid_country(code: str) -> bool:
    if code in SPECIAL_COUNTRIES:
        return True
    import pycountry  # a project dependency; imported lazily to keep `import stiwatch.demo` light

    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


def _offset(value: str) -> timedelta:
    match = _OFFSET.match(value)
    if not match:
        raise ValueError(f"utc_offset {value!r} is not like '+09:00'")
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def _check_labels(raw: Any, where: str) -> Expected:
    if not isinstance(raw, dict):
        raise ContentError(f"{where}: 'expected' must be a table")
    unknown = set(raw) - EXPECTED_KEYS
    if unknown:
        raise ContentError(f"{where}: unknown keys in 'expected': {sorted(unknown)}")
    policy = raw.get("policy")
    if policy not in (0, 1) or isinstance(policy, bool):
        raise ContentError(f"{where}: expected.policy must be 0 or 1, not {policy!r}")
    values: dict[str, tuple[str, ...]] = {}
    for facet, check, allowed in (
        ("areas", AREAS.__contains__, AREAS),
        ("domains", DOMAINS.__contains__, DOMAINS),
        ("countries", _valid_country, None),
    ):
        items = raw.get(facet, [])
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ContentError(f"{where}: expected.{facet} must be a list of strings")
        for item in items:
            if not check(item):
                hint = f" (one of {', '.join(allowed)})" if allowed else " (ISO 3166-1 alpha-2 or EU)"
                raise ContentError(f"{where}: unknown {facet[:-1]} {item!r}{hint}")
        if len(set(items)) != len(items):
            raise ContentError(f"{where}: duplicate values in expected.{facet}")
        values[facet] = tuple(items)
    if policy == 0 and values["areas"]:
        raise ContentError(f"{where}: policy = 0 items must have no areas")
    if policy == 1 and not values["areas"]:
        raise ContentError(f"{where}: policy = 1 items need at least one area")
    return Expected(policy, values["areas"], values["domains"], values["countries"])


def _load_source(path: Path) -> DemoSource:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{path.name}: not valid TOML: {exc}") from exc
    raw = data.get("source")
    if not isinstance(raw, dict):
        raise ContentError(f"{path.name}: missing [source] table")
    where = f"{path.name}: [source]"
    unknown = set(raw) - SOURCE_KEYS
    if unknown:
        raise ContentError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("id", "name", "kind", "language", "org_type"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ContentError(f"{where}: '{key}' is required")
    if not _ID.match(raw["id"]) or raw["id"] != path.stem:
        raise ContentError(f"{where}: id {raw['id']!r} must be lowercase-hyphenated and match the file name")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ContentError(f"{where}: kind {kind!r} is not one of {KINDS}")
    if raw["org_type"] not in ORG_TYPES:
        raise ContentError(f"{where}: org_type {raw['org_type']!r} is not one of {ORG_TYPES}")
    if (kind == "html") != bool(raw.get("links")):
        raise ContentError(f"{where}: 'links' (a CSS selector) is required for html sources only")
    country = raw.get("country") or None
    if country is not None and not _valid_country(country):
        raise ContentError(f"{where}: unknown country {country!r}")
    style = raw.get("style")
    if not isinstance(style, dict):
        raise ContentError(f"{where}: missing [source.style] table")
    missing = (STYLE_REQUIRED | STYLE_BY_KIND[kind]) - set(style)
    if missing:
        raise ContentError(f"{where}: style is missing {sorted(missing)}")
    try:
        _offset(style["utc_offset"])
    except ValueError as exc:
        raise ContentError(f"{where}: {exc}") from exc
    if kind == "feed" and style["feed_format"] not in FEED_FORMATS:
        raise ContentError(f"{where}: feed_format must be one of {FEED_FORMATS}")
    if kind == "html" and style["listing_layout"] not in LISTING_LAYOUTS:
        raise ContentError(f"{where}: listing_layout must be one of {LISTING_LAYOUTS}")
    source = DemoSource(
        id=raw["id"], name=raw["name"], kind=kind, language=raw["language"],
        org_type=raw["org_type"], country=country, links=raw.get("links"), style=style, file=path,
    )
    articles = data.get("article", [])
    if not isinstance(articles, list) or not articles:
        raise ContentError(f"{path.name}: no [[article]] tables")
    for index, entry in enumerate(articles):
        source.articles.append(_load_article(source, entry, index))
    return source


def _load_article(source: DemoSource, raw: dict[str, Any], index: int) -> DemoArticle:
    slug = raw.get("slug")
    where = f"{source.file.name}: article {slug!r}" if slug else f"{source.file.name}: article #{index + 1}"
    if not isinstance(slug, str) or not _ID.match(slug):
        raise ContentError(f"{where}: slug must be lowercase-hyphenated")
    unknown = set(raw) - ARTICLE_KEYS
    if unknown:
        raise ContentError(f"{where}: unknown keys {sorted(unknown)}")
    week, day, hour = raw.get("week"), raw.get("day"), raw.get("hour")
    if not isinstance(week, int) or not -8 <= week <= 0:
        raise ContentError(f"{where}: week must be an integer in -8..0, not {week!r}")
    if not isinstance(day, int) or not 1 <= day <= 7:
        raise ContentError(f"{where}: day must be 1 (Monday) .. 7, not {day!r}")
    if hour is not None and (not isinstance(hour, int) or not 0 <= hour <= 23):
        raise ContentError(f"{where}: hour must be 0..23, not {hour!r}")
    # Keep the UTC date equal to the local date, so an item's week is the same in every zone
    # and the hand labels' week assignment cannot drift with the store's UTC timestamps.
    local_hour = hour if hour is not None else int(source.style.get("default_hour", 10))
    utc_hour = local_hour - _offset(source.style["utc_offset"]).total_seconds() / 3600
    if not 0 <= utc_hour <= 23:
        raise ContentError(f"{where}: hour {local_hour} falls on another day in UTC")
    syndicated = raw.get("syndicated_from")
    if syndicated is not None:
        if not isinstance(syndicated, str) or syndicated.count("/") != 1:
            raise ContentError(f"{where}: syndicated_from must be '<source-id>/<slug>'")
        if "body" in raw:
            raise ContentError(f"{where}: a syndicated article takes its body from {syndicated}")
    else:
        for key in ("title", "summary", "body"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ContentError(f"{where}: '{key}' is required")
        if "expected" not in raw:
            raise ContentError(f"{where}: 'expected' labels are required")
    expected = _check_labels(raw["expected"], where) if "expected" in raw else Expected(0)
    return DemoArticle(
        source_id=source.id, slug=slug, title=raw.get("title", ""), week=week, day=day,
        hour=hour, summary=raw.get("summary", ""), body=raw.get("body", ""), expected=expected,
        syndicated_from=syndicated, own_labels="expected" in raw,
    )


def load_content(directory: Path | None = None) -> list[DemoSource]:
    """Load and validate every ``*.toml`` in ``directory`` (default: the bundled content).

    Raises ContentError naming the file and slug on the first problem. Syndicated articles get
    the body (and, unless given, title, summary and labels) of the article they copy.
    """
    directory = Path(directory) if directory is not None else CONTENT_DIR
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ContentError(f"{directory}: no content files")
    sources = [_load_source(path) for path in files]
    paths: dict[str, str] = {}
    for source in sources:
        if source.style["path"] in paths:
            raise ContentError(f"{source.file.name}: style.path {source.style['path']!r} "
                               f"already used by {paths[source.style['path']]}")
        paths[source.style["path"]] = source.file.name
    by_key: dict[str, DemoArticle] = {}
    for source in sources:
        for article in source.articles:
            if article.key in by_key:
                raise ContentError(f"{source.file.name}: article {article.slug!r}: duplicate slug")
            by_key[article.key] = article
    for source in sources:
        for article in source.articles:
            if article.syndicated_from is None:
                continue
            where = f"{source.file.name}: article {article.slug!r}"
            original = by_key.get(article.syndicated_from)
            if original is None or original.syndicated_from is not None:
                raise ContentError(f"{where}: syndicated_from {article.syndicated_from!r} "
                                   "is not an original article")
            if original.source_id == source.id:
                raise ContentError(f"{where}: cannot syndicate from its own source")
            if (article.week, article.day) < (original.week, original.day):
                raise ContentError(f"{where}: republished before the original")
            article.body = original.body
            article.title = article.title or original.title
            article.summary = article.summary or original.summary
            if not article.own_labels:
                article.expected = original.expected
    return sources


# ---------------------------------------------------------------------------------------------
# Placing articles in time and URL space


def week_monday(today: date) -> date:
    """Monday of the ISO week containing ``today`` (week 0)."""
    return today - timedelta(days=today.weekday())


def placed_articles(sources: list[DemoSource], base_url: str, today: date) -> list[PlacedArticle]:
    """Every article that exists on ``today``, with its date and URL, newest first.

    Also the answer key: pair each URL with ``article.expected`` to score the classifier.
    """
    base = base_url.rstrip("/")
    monday = week_monday(today)
    placed = []
    for source in sources:
        tz = timezone(_offset(source.style["utc_offset"]))
        default_hour = int(source.style.get("default_hour", 10))
        for article in source.articles:
            day = monday + timedelta(weeks=article.week, days=article.day - 1)
            if day > today:
                continue  # not published yet, as seen from `today`
            # A stable pseudo-random minute: real newsrooms do not publish on the hour.
            minute = zlib.crc32(article.key.encode()) % 60
            hour = article.hour if article.hour is not None else default_hour
            published = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
            rel = source.style["article_path"].format(
                slug=article.slug, year=f"{day:%Y}", month=f"{day:%m}", day=f"{day:%d}")
            path = f"/{source.style['path']}/{rel}"
            placed.append(PlacedArticle(source, article, published, path, base + path))
    placed.sort(key=lambda p: (p.published, p.article.key), reverse=True)
    return placed


# ---------------------------------------------------------------------------------------------
# Rendering


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,  # a typo in a template must fail the build, not print ""
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["rfc822"] = format_datetime
    env.filters["iso"] = lambda d: d.isoformat()
    env.filters["human_date"] = _human_date
    # A plain str (not Markup) on purpose: autoescape then entity-encodes it once more, which
    # is how HTML travels inside RSS <content:encoded>.
    env.filters["paragraphs_html"] = lambda paras: "".join(f"<p>{escape(x, quote=False)}</p>" for x in paras)
    return env


def _human_date(value: datetime, style: str = "dmy") -> str:
    if style == "mdy":
        return f"{value:%B} {value.day}, {value:%Y}"
    if style == "ymd":
        return f"{value:%Y.%m.%d}"
    if style == "ja":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {value:%B %Y}"


def _feed_link(placed: PlacedArticle, index: int, mode: str) -> str:
    """The link a feed gives for an article; some carry tracking parameters to be stripped."""
    if mode == "all" or (mode == "alternate" and index % 2 == 0):
        return f"{placed.url}?{TRACKING}"
    return placed.url


def _write(root: Path, rel: str, text: str, mtime: datetime) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    # File times drive Last-Modified/ETag: pages look as old as their news, and a rebuild for
    # the same day yields the same validators, so conditional GETs behave like a real site.
    stamp = mtime.timestamp()
    os.utime(target, (stamp, stamp))


def _prepare_root(root: Path) -> None:
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise FileExistsError(f"{root} is not empty and is not a demo site; refusing to overwrite")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("built by stiwatch.demo.build_site; safe to delete\n")


def build_site(root: Path, base_url: str, today: date,
               sources: list[DemoSource] | None = None) -> list[dict[str, Any]]:
    """Write the static demo site into ``root`` and return its registry records.

    ``base_url`` is where ``root`` will be served (e.g. ``DemoServer.url``); it goes into
    canonical links, feeds and sitemaps. A previous demo site in ``root`` is replaced.
    """
    root = Path(root)
    base = base_url.rstrip("/")
    sources = sources if sources is not None else load_content()
    placed = placed_articles(sources, base, today)
    by_key = {p.article.key: p for p in placed}
    env = _environment()
    _prepare_root(root)
    # Nothing is older than the newest article; an empty site still needs a timestamp.
    site_time = placed[0].published if placed else datetime.combine(today, datetime.min.time(), timezone.utc)

    records = []
    for source in sources:
        items = [p for p in placed if p.source is source]
        records.append(_build_source(env, root, base, source, items, by_key, site_time))

    robots = env.get_template("robots.txt").render(
        disallow=["/private/"],
        sitemaps=[r["url"] for r in records if r["kind"] == "sitemap"],
    )
    _write(root, "robots.txt", robots, site_time)
    _write(root, "index.html", env.get_template("portal.html").render(records=records), site_time)
    _write_private(env, root, base, sources, site_time)
    return records


def _build_source(env: Environment, root: Path, base: str, source: DemoSource,
                  items: list[PlacedArticle], by_key: dict[str, PlacedArticle],
                  site_time: datetime) -> dict[str, Any]:
    style = source.style
    prefix = f"/{style['path']}/"
    newest = items[0].published if items else site_time
    kind_path = {"feed": style.get("feed"), "html": style.get("listing"),
                 "sitemap": style.get("sitemap_index")}[source.kind]
    entry_url = f"{base}{prefix}{kind_path}"
    ctx: dict[str, Any] = {
        "source": source, "style": style, "base": base, "prefix": prefix,
        "home": prefix, "news": prefix + (style.get("listing") or style.get("news_page", "news/")),
        "feed_url": entry_url if source.kind == "feed" else None,
        "feed_type": _FEED_TYPES.get(style.get("feed_format", ""), ""),
        "nav": style.get("nav", ["Home", "News", "About"]),
        "date_style": style.get("date_style", "dmy"),
    }

    for index, item in enumerate(items):
        original = by_key.get(item.article.syndicated_from or "")
        related = [p for p in items if p is not item][:3] if style.get("related") else []
        html = env.get_template("article.html").render(
            **ctx, item=item, original=original, related=related, page_title=item.article.title)
        _write(root, item.file, html, item.published)

    # A home page (and, for feed/sitemap sources, a news index) as on any real site.
    _write(root, f"{style['path']}/index.html",
           env.get_template("home.html").render(**ctx, items=items[:5], page_title="Home"), newest)
    _write(root, f"{style['path']}/about.html",
           env.get_template("about.html").render(**ctx, page_title="About"), newest)
    if source.kind != "html":
        news_page = style.get("news_page", "news/")
        rel = news_page + "index.html" if news_page.endswith("/") else news_page
        html = env.get_template("listing.html").render(
            **ctx, links=[(p, p.path) for p in items], layout="list", private=None,
            page_title="News")
        _write(root, f"{style['path']}/{rel}", html, newest)

    if source.kind == "feed":
        fmt = style["feed_format"]
        entries = [(p, _feed_link(p, i, style.get("tracking", "none"))) for i, p in enumerate(items)]
        xml = env.get_template(f"{fmt}.xml").render(**ctx, entries=entries, updated=newest)
        _write(root, f"{style['path']}/{style['feed']}", xml, newest)
    elif source.kind == "html":
        listing = style["listing"]
        rel = listing + "index.html" if listing.endswith("/") else listing
        listing_url = f"{base}{prefix}{listing}"
        mode = style.get("listing_hrefs", "root")
        links = [(p, _href(listing_url, p.url, mode)) for p in items]
        private = None
        if style.get("private_slug"):
            private_url = f"{base}/private/{style['private_slug']}.html"
            private = {"title": style["private_item"], "href": _href(listing_url, private_url, mode)}
        html = env.get_template("listing.html").render(
            **ctx, links=links, layout=style["listing_layout"], private=private,
            page_title=style.get("listing_title", "News"))
        _write(root, f"{style['path']}/{rel}", html, newest)
    else:
        _write_sitemaps(env, root, base, source, items, ctx, newest)

    return {
        "id": source.id, "name": source.name, "kind": source.kind, "url": entry_url,
        "homepage": f"{base}{prefix}", "country": source.country, "language": source.language,
        "org_type": source.org_type, "links": source.links,
    }


def _href(page_url: str, target_url: str, mode: str) -> str:
    """How a listing links an article: absolute, root-relative or document-relative.

    Sources differ on purpose, so the crawler must resolve hrefs against the listing URL.
    """
    if mode == "absolute":
        return target_url
    page, target = urlsplit(page_url), urlsplit(target_url)
    if mode == "relative":
        return posixpath.relpath(target.path, posixpath.dirname(page.path))
    return target.path


_FEED_TYPES = {"rss2": "application/rss+xml", "atom": "application/atom+xml",
               "rss1": "application/rdf+xml"}


def _write_sitemaps(env: Environment, root: Path, base: str, source: DemoSource,
                    items: list[PlacedArticle], ctx: dict[str, Any], newest: datetime) -> None:
    """A sitemap index over a news sitemap (last 14 days) and an archive sitemap (older)."""
    style = source.style
    cutoff = newest - timedelta(days=14)
    parts = [("sitemap-news.xml", [p for p in items if p.published > cutoff]),
             ("sitemap-archive.xml", [p for p in items if p.published <= cutoff])]
    children = []
    for name, chunk in parts:
        if not chunk:
            continue
        when = chunk[0].published
        _write(root, f"{style['path']}/{name}",
               env.get_template("sitemap_news.xml").render(**ctx, items=chunk), when)
        children.append({"loc": f"{base}/{style['path']}/{name}", "lastmod": when})
    _write(root, f"{style['path']}/{style['sitemap_index']}",
           env.get_template("sitemap_index.xml").render(children=children), newest)


def _write_private(env: Environment, root: Path, base: str, sources: list[DemoSource],
                   when: datetime) -> None:
    """Pages under /private/: linked from a listing but disallowed by robots.txt.

    They exist and would be served, so a crawler that ignores robots.txt visibly stores them.
    """
    for source in sources:
        slug = source.style.get("private_slug")
        if not slug:
            continue
        html = env.get_template("private.html").render(
            source=source, title=source.style["private_item"])
        _write(root, f"private/{slug}.html", html, when)


def manifest(base_url: str, today: date,
             sources: list[DemoSource] | None = None) -> list[dict[str, Any]]:
    """The answer key for a build: URL, source, date and expected labels per article.

    Deliberately not written into the served site (a crawler must not find it).
    """
    sources = sources if sources is not None else load_content()
    return [
        {"url": p.url, "source_id": p.source.id, "slug": p.article.slug,
         "published": p.published.isoformat(), "week": p.article.week,
         "syndicated_from": p.article.syndicated_from, **p.article.expected.as_dict()}
        for p in placed_articles(sources, base_url, today)
    ]


def english_sources(sources: list[DemoSource] | None = None) -> list[DemoSource]:
    """The demo's sources written in English (all but the Japanese ministry's): what the
    trained models, which read English only (other languages get the lexicon rules), learn
    from, and the text the classifier benchmarks measure (bench/, with figures from before the
    Japanese source)."""
    return [s for s in (sources if sources is not None else load_content())
            if s.language == "en"]


def labelled_records(sources: list[DemoSource] | None = None) -> list[dict[str, Any]]:
    """The hand-labelled articles (not their syndicated copies) of the English sources, in
    taxonomy.md's JSON Lines shape: text as the classifier sees a crawled item (summary, then
    body); ``areas`` only on policy items. `stiwatch train` folds them in as in-domain news."""
    records = []
    for source in english_sources(sources):
        for article in source.articles:
            if not article.own_labels:
                continue
            labels = article.expected.as_dict()
            if not labels["policy"]:
                del labels["areas"]
            text = "\n\n".join([article.summary, *article.paragraphs] if article.summary
                               else article.paragraphs)
            records.append({"id": article.key, "title": article.title, "text": text, **labels})
    return records
