"""Feed bytes -> entries: RSS 0.9x/1.0/2.0 and Atom through feedparser, made safe and tidy.

feedparser is as forgiving as a mature feed reader should be: a feed that is not well-formed but
recoverable is used, and the problem is kept in ``ParsedFeed.bozo`` for the source's record.
Two things happen before feedparser sees the bytes: a DOCTYPE that declares entities (billion
laughs, XXE) is refused, and the bytes are handed over as a stream, never as a ``str`` or
``bytes`` that feedparser could take for a URL or a local file name.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
import html
import io
import re
from typing import Any, Mapping

import feedparser
import lxml.etree
import lxml.html

from db.clock import DATE_ONLY, iso_day, iso_utc

from .text import html_to_text, looks_like_html, normalise_space, plain_headers, shorten
from .urls import try_canonicalize

# Summaries longer than this are cut at a word boundary: they are a fallback body, not the body.
SUMMARY_MAX_CHARS = 2000
# Dates before this, or further in the future than FUTURE_SLACK, are a publisher's bug.
EARLIEST_YEAR = 1990
FUTURE_SLACK = timedelta(days=2)
PROLOG_SCAN_BYTES = 1 << 20


class FeedError(Exception):
    """Bytes that cannot be used as a feed; the message is one sentence naming the URL."""


@dataclass
class FeedEntry:
    url: str
    title: str
    summary: str
    published_at: str | None
    guid: str | None = None
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    # Plain text of the entry's full content (content:encoded, atom:content), when it has one.
    content: str = ""


@dataclass
class ParsedFeed:
    title: str
    entries: list[FeedEntry]
    bozo: str | None = None
    version: str = ""
    # Entries dropped because they had no usable http(s) link (or repeated one already seen).
    skipped: int = 0
    # ...of which those without a usable link: the feed's problem, worth telling the operator.
    unlinked: int = 0


# -- refusing dangerous DTDs ----------------------------------------------------------------

def _prolog_text(body: bytes) -> str:
    """The start of the document as text, good enough to scan markup before the root element.

    Only the first PROLOG_SCAN_BYTES: a DOCTYPE that runs past them is reported unterminated
    (and refused), so a huge feed costs no more than a small one here.
    """
    body = body[:PROLOG_SCAN_BYTES]
    head = body[:4]
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace")
    if head[:2] == b"<\x00":
        return body.decode("utf-16-le", errors="replace")
    if head[:2] == b"\x00<":
        return body.decode("utf-16-be", errors="replace")
    # Every ASCII-compatible encoding spells markup the same: latin-1 maps bytes 1:1.
    return body.decode("latin-1")


_DECL_START = re.compile(r"<!DOCTYPE", re.IGNORECASE)


def _doctype_problem(body: bytes) -> str | None:
    """Why the DOCTYPE (if any) is unsafe: it declares entities, or None when it is harmless.

    Only the prolog is scanned (XML declaration, comments, processing instructions, the
    DOCTYPE), so a "<!DOCTYPE" quoted inside an entry's CDATA is not mistaken for one.
    """
    text = _prolog_text(body)
    pos = text.find("<")
    while 0 <= pos < len(text):
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
        elif _DECL_START.match(text, pos):
            return _scan_doctype(text, pos)
        else:
            return None  # the root element: the prolog is over
        if end < 0:
            return None
        pos = text.find("<", end)
    return None


def _scan_doctype(text: str, start: int) -> str | None:
    quote = None
    depth = 0
    pos = start + len("<!DOCTYPE")
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == ">" and depth <= 0:
            return None
        elif depth > 0 and char == "<" and text[pos:pos + 8].upper() == "<!ENTITY":
            return "declares XML entities in its DOCTYPE (refused: entity expansion attacks)"
        elif depth > 0 and char == "%":
            return "uses parameter entities in its DOCTYPE (refused: entity expansion attacks)"
        pos += 1
    return "has an unterminated DOCTYPE"


# -- parsing --------------------------------------------------------------------------------

def _iso(parsed: Any) -> str | None:
    """A feedparser time tuple (already UTC) as 'YYYY-MM-DDTHH:MM:SSZ', or None if absurd."""
    if not parsed:
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    except (OverflowError, ValueError, TypeError, OSError):
        return None
    if moment.year < EARLIEST_YEAR or moment > datetime.now(timezone.utc) + FUTURE_SLACK:
        return None
    return iso_utc(moment)


# A character reference left in plain text ("R&amp;D", "&#8211;"): named, decimal or hex.
_STRAY_REFERENCE = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def _text_of(entry: Any, key: str) -> str:
    """Plain text of an entry field, whatever markup the feed put in it."""
    value = entry.get(key) or ""
    detail = entry.get(f"{key}_detail") or {}
    if detail.get("type") == "text/plain" and "<" not in value:
        # Plain text means no references, but CMSs escape their titles twice ("R&amp;amp;D"
        # read as "R&amp;D"): a complete reference is taken as the character it names.
        return normalise_space(_STRAY_REFERENCE.sub(lambda m: html.unescape(m.group(0)), value))
    return html_to_text(value)


def _content_text(entry: Any) -> str:
    parts = [html_to_text(c.get("value") or "") if c.get("type") != "text/plain"
             else normalise_space(c.get("value") or "") for c in entry.get("content") or []]
    return "\n\n".join(p for p in parts if p)


def _raw_ids(body: bytes) -> list[str | None] | None:
    """The guid/id of each item/entry as written, in document order, when the feed uses
    xml:base (None otherwise, or when it is not well-formed XML).

    feedparser resolves a guid against xml:base, so guid "2" under xml:base="https://x.org/n/"
    came out as the "absolute URL" https://x.org/n/2: a page that does not exist.
    """
    if b"xml:base" not in body:
        return None
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = lxml.etree.fromstring(body, parser)
    except (lxml.etree.LxmlError, ValueError):
        return None
    ids: list[str | None] = []
    for element in root.iter("{*}item", "{*}entry"):
        raw = next((child.text for child in element if isinstance(child.tag, str)
                    and lxml.etree.QName(child).localname in ("guid", "id")), None)
        ids.append(raw.strip() if raw else None)
    return ids


def _entry_url(entry: Any, base: str, raw_id: str | None = None) -> str | None:
    # A guid is a link only when it is an absolute URL: "press-2024-117" resolved against the
    # feed's URL would invent a page (feedparser copies a permalink guid into ``link``).
    guid = raw_id if raw_id is not None else str(entry.get("id", ""))
    guid_is_url = guid.lower().startswith(("http:", "https:"))
    candidates = [] if entry.get("guidislink") and not guid_is_url else [entry.get("link")]
    candidates += [link.get("href") for link in entry.get("links") or []
                   if link.get("rel", "alternate") == "alternate"]
    if guid_is_url:
        candidates.append(entry.get("id"))
    for candidate in candidates:
        url = try_canonicalize(candidate, base)
        if url:
            return url
    return None


def _entry_date(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # Plain dict access: FeedParserDict's own aliases (updated -> published) warn.
        value = _iso(dict.get(entry, key))
        if value:
            written = dict.get(entry, key[: -len("_parsed")])
            if isinstance(written, str) and DATE_ONLY.fullmatch(written.strip()):
                # <dc:date>2026-11-20</dc:date>: a day, not its first instant in UTC.
                return iso_day(date.fromisoformat(value[:10]))
            return value
    return None


def _html_page_title(body: bytes, content_type: str) -> str | None:
    """The <title> of bytes that are an HTML page ("" when it has none), or None."""
    if "html" not in content_type.lower() and not looks_like_html(body):
        return None
    found = re.search(rb"<title[^>]*>(.*?)</title", body[:65536], re.IGNORECASE | re.DOTALL)
    if not found:
        return ""
    return shorten(normalise_space(html.unescape(found.group(1).decode("utf-8", "replace"))), 80)


def _announced_feeds(body: bytes, base: str) -> list[str]:
    """The feeds an HTML page names in its <head> (<link rel="alternate"
    type="application/rss+xml">), as absolute URLs: a newsroom's page given as a feed's URL
    usually names the feed itself."""
    try:
        root = lxml.html.fromstring(body[:262144])
    except (lxml.etree.LxmlError, ValueError):
        return []
    found: list[str] = []
    for link in root.xpath("//link[@href][@type]"):
        rel = (link.get("rel") or "").lower().split()
        kind = link.get("type", "").lower()
        url = try_canonicalize(link.get("href"), base)
        if ("alternate" in rel and kind in ("application/rss+xml", "application/atom+xml",
                                             "application/rdf+xml") and url and url not in found):
            found.append(url)
    return found


_XML_DECLARED_ENCODING = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])[-\w.:]+", re.IGNORECASE)
_CHARSET_PARAM = re.compile(r";\s*charset\s*=[^;]*", re.IGNORECASE)


def _as_utf8(body: bytes, headers: dict[str, str], language: str | None) -> bytes:
    """A feed that is not UTF-8 as UTF-8 (``headers``' charset set to match), decoded as pages
    are: its HTTP charset or XML declaration when its bytes fit it, else detected (with its
    source's language). feedparser alone read an undeclared Shift_JIS feed as ISO-8859-2
    (mojibake titles and summaries) and flagged a correct EUC-JP feed served as text/xml as
    "declared as us-ascii"."""
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        pass
    from .extract import decode_html  # extract imports this module

    text, codec = decode_html(body, headers, language)
    if codec in ("utf-8", "ascii"):
        return body
    text = _XML_DECLARED_ENCODING.sub(r"\g<1>utf-8", text.lstrip("\ufeff"), count=1)
    media_type = _CHARSET_PARAM.sub("", headers.get("content-type", "application/xml"))
    headers["content-type"] = f"{media_type}; charset=utf-8"
    return text.encode("utf-8")


def feed_as_utf8(body: bytes, language: str | None = None) -> bytes:
    """The bytes of a feed saved to a file (no HTTP charset beside them) as UTF-8, decoded as
    the crawler decodes a fetched feed: its XML declaration when its bytes fit it, else
    detected. For readers of saved feeds outside a crawl (wired in by the CLI)."""
    return _as_utf8(body, {"content-type": "application/xml"}, language)


def parse_feed(body: bytes, url: str, headers: Mapping[str, str] | None = None,
               language: str | None = None) -> ParsedFeed:
    """Parse feed bytes fetched from ``url`` (whose HTTP ``headers`` may name the charset).

    ``language``: the source's (ISO 639-1), a hint for a feed that does not say its encoding.
    Raises FeedError for an unsafe DTD, or for bytes that are not a feed and hold no entries.
    A recoverable malformation is not an error: it is reported in ``bozo``.
    """
    if not body or not body.strip():
        raise FeedError(f"The feed at {url} is empty.")
    problem = _doctype_problem(body)
    if problem:
        raise FeedError(f"The feed at {url} {problem}.")

    response_headers = plain_headers(headers)
    # No header at all is not the feed's fault: let feedparser read the XML declaration instead
    # of flagging "no Content-type specified" on every feed parsed outside a crawl.
    response_headers.setdefault("content-type", "application/xml")
    body = _as_utf8(body, response_headers, language)
    # Relative links are resolved here, not by feedparser: it would also "resolve" a permalink
    # guid such as "press-2024-117" into a page that does not exist. So feedparser gets no base
    # (xml:base inside the feed still applies); ours is Content-Location, else the fetched URL.
    base = try_canonicalize(response_headers.pop("content-location", None), url) or url
    try:
        result = feedparser.parse(io.BytesIO(body), response_headers=response_headers,
                                  sanitize_html=True, resolve_relative_uris=True)
    except Exception as error:  # feedparser should never raise; if it does, it is the feed's fault
        raise FeedError(f"The feed at {url} could not be parsed: {error}.") from error

    bozo = None
    exception = result.get("bozo_exception")
    # A feed served as text/html is the server's labelling, not a malformed feed: not flagged.
    if result.get("bozo") and not isinstance(exception, feedparser.NonXMLContentType):
        bozo = f"{type(exception).__name__}: {exception}" if exception else "malformed feed"

    version = result.get("version") or ""
    raw_entries = result.get("entries") or []
    if not raw_entries and not version:
        page = _html_page_title(body, response_headers.get("content-type", ""))
        if page is not None:
            # A login form or a "we have moved" page where the feed was: its title says which,
            # where the XML parser's complaint about HTML said nothing useful.
            why = ": it is an HTML page" + (f" titled {page!r}" if page else "")
            feeds = _announced_feeds(body, base)
            if feeds:
                why += f", which names its feed: {feeds[0]} (make that the source's url)"
        else:
            why = f" ({bozo})" if bozo else ""
        raise FeedError(f"The document at {url} is not an RSS or Atom feed{why}.")

    entries: list[FeedEntry] = []
    seen: set[str] = set()
    skipped = unlinked = 0
    raw_ids = _raw_ids(body)
    if raw_ids is not None and len(raw_ids) != len(raw_entries):
        raw_ids = None  # not one to one: keep feedparser's view
    for index, raw in enumerate(raw_entries):
        entry_url = _entry_url(raw, base, raw_ids[index] if raw_ids else None)
        if entry_url is None or entry_url in seen:
            skipped += 1
            unlinked += entry_url is None
            continue
        seen.add(entry_url)
        content = _content_text(raw)
        summary = _text_of(raw, "summary") or content
        entries.append(FeedEntry(
            url=entry_url,
            title=_text_of(raw, "title"),
            summary=shorten(summary, SUMMARY_MAX_CHARS),
            published_at=_entry_date(raw),
            guid=raw.get("id") or None,
            author=normalise_space(raw.get("author") or "") or None,
            tags=[normalise_space(t.get("term") or "") for t in raw.get("tags") or []
                  if (t.get("term") or "").strip()],
            content=content,
        ))
    feed_info = result.get("feed") or {}
    return ParsedFeed(
        title=_text_of(feed_info, "title"),
        entries=entries,
        bozo=bozo,
        version=version,
        skipped=skipped,
        unlinked=unlinked,
    )
