"""Listing responses -> Candidates, one function per source kind.

Each returns ``(candidates, urls_to_follow, flag)``: the articles the listing names, further
listings to fetch (child sitemaps), and a note worth keeping on the source (a malformed feed
that was recovered). A listing that cannot be used raises ListingError.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
import re
from typing import Any

from lxml import etree
from scrapy.http import Response
from scrapy.utils.gz import gunzip

from db.clock import DATE_ONLY, iso_utc, noon_utc

from ..extract import decode_html
from ..feeds import FeedError, parse_feed
from ..items import Candidate
from ..text import looks_like_html, normalise_space
from ..urls import try_canonicalize

Parsed = tuple[list[Candidate], list[str], "str | None"]


class ListingError(Exception):
    """A listing that cannot be used; the message is one sentence for the source's last_error."""


_ROOT_ELEMENT = re.compile(rb"<(?![?!])(?:[\w.-]+:)?([\w.-]+)")
_KIND_OF_ROOT = {b"rss": "feed", b"feed": "feed", b"rdf": "feed", b"urlset": "sitemap",
                 b"sitemapindex": "sitemap"}


def other_kind(body: bytes, kind: str) -> str:
    """" (it is an XML sitemap: kind = "sitemap")" when a listing's bytes are plainly of
    another kind than its source's, from their root element; else "". A registry's most
    common slip after a URL that moved: the right URL with the wrong kind."""
    found = _ROOT_ELEMENT.search(body[:4096].lstrip(b"\xef\xbb\xbf"))
    actual = _KIND_OF_ROOT.get(found.group(1).lower()) if found else None
    if actual is None or actual == kind:
        return ""
    what = "an RSS or Atom feed" if actual == "feed" else "an XML sitemap"
    return f" (it is {what}: kind = \"{actual}\")"


def response_headers(response: Response) -> dict[str, str]:
    """A response's headers as str (Scrapy's unicode view), for the extractors."""
    return dict(response.headers.to_unicode_dict())


# -- feeds ------------------------------------------------------------------------------------

def feed_listing(source: dict[str, Any], response: Response) -> Parsed:
    try:
        feed = parse_feed(response.body, response.url, response_headers(response),
                          language=source.get("language"))
    except FeedError as error:
        message = str(error)
        hint = other_kind(response.body, "feed")
        if hint:
            message = f"{message.rstrip('.')}{hint}."
        redirects = response.meta.get("redirect_urls") or []
        if redirects:
            message = f"{message.rstrip('.')} (the source's URL {redirects[0]} redirects there)."
        raise ListingError(message) from None
    candidates = [
        Candidate(url=entry.url, source_id=source["id"], title=entry.title,
                  summary=entry.summary, published_at=entry.published_at,
                  language=source.get("language"), content=entry.content)
        for entry in feed.entries
    ]
    notes = [f"malformed feed, recovered: {feed.bozo}"] if feed.bozo else []
    if feed.unlinked:
        # Nothing can be stored without a URL; say so rather than report a quiet "ok".
        notes.append(f"{feed.unlinked} of {len(feed.entries) + feed.skipped} entries have no "
                     "usable link and were skipped")
    return candidates, [], "; ".join(notes) or None


# -- html listing pages -------------------------------------------------------------------------

def extract_links(body: bytes, url: str, headers: dict[str, str] | None, css: str,
                  language: str | None = None) -> list[tuple[str, str]]:
    """(canonical URL, link text) of the links ``css`` selects on a listing page, in order.

    The selector may pick the <a> elements themselves or elements that contain them.
    ``language`` (the source's) helps decode a page that names no charset: link texts
    become the titles of articles whose pages cannot be read.
    """
    from parsel import Selector

    text, _ = decode_html(body, headers, language)
    selector = Selector(text=text, base_url=url)
    base = url
    base_href = selector.xpath("//head/base/@href").get()
    if base_href:
        base = try_canonicalize(base_href, url) or url
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for element in selector.css(css):
        anchors = [element] if element.root.tag == "a" else element.xpath(".//a[@href]")[:1]
        for anchor in anchors:
            link = try_canonicalize(anchor.attrib.get("href"), base)
            if link is None or link in seen:
                continue
            seen.add(link)
            found.append((link, normalise_space(" ".join(anchor.xpath(".//text()").getall()))))
    return found


def html_listing(source: dict[str, Any], response: Response) -> Parsed:
    if not response.body.strip():
        raise ListingError(f"The listing page {response.url} is empty.")
    # The page's URL, not Scrapy's get_base_url: extract_links reads <base href> itself, and
    # get_base_url decoded the whole page (response.text) for it before extract_links did.
    links = extract_links(response.body, response.url, response_headers(response),
                          source["links"], source.get("language"))
    listing = try_canonicalize(response.url)
    candidates = [Candidate(url=url, source_id=source["id"], title=title,
                            language=source.get("language"))
                  for url, title in links if url != listing]
    if not candidates:
        # A failure, not an "ok" with a note: a news listing with no article links is a
        # selector the site's redesign (or a typo) broke, and nothing is stored from it until
        # the registry is fixed; failed, it is among `stiwatch status`'s failing sources,
        # which is what operators alert on, and `sources check` says the same.
        raise ListingError(f"The listing page {response.url}: the links selector "
                           f"{source['links']!r} matched no article links"
                           f"{other_kind(response.body, 'html')}.")
    return candidates, [], None


# -- sitemaps ---------------------------------------------------------------------------------

NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"


def _sitemap_body(response: Response, max_size: int) -> bytes:
    body = response.body
    if body[:2] == b"\x1f\x8b":  # a .xml.gz served as is
        try:
            body = gunzip(body, max_size=max_size)
        except Exception as error:  # noqa: BLE001 - any decompression problem is the site's
            raise ListingError(f"The sitemap {response.url} cannot be decompressed ({error}).")
    return body


def _iso_date(value: str | None) -> datetime | None:
    """A sitemap date: W3C Datetime (which allows "2018" and "2018-05" too), or the RFC 822
    date some sites put there. An unreadable date counts as recent, so the entries of a site
    whose dates went unread were all fetched, however old."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    coarse = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", text)
    if coarse:
        # The end of that year or month: an entry of "2026-10" may be from its last day.
        year, month = int(coarse.group(1)), int(coarse.group(2) or 12)
        if not 1 <= month <= 12:
            return None
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        try:
            return datetime(year, month, 1, tzinfo=timezone.utc) - timedelta(seconds=1)
        except (ValueError, OverflowError):  # year 0 or 9999
            return None
    if DATE_ONLY.fullmatch(text):
        # A day (a news sitemap's publication date often is): stored as noon UTC of it, as
        # every date without a time of day (db.clock.noon_utc).
        try:
            return noon_utc(date.fromisoformat(text))
        except ValueError:
            return None
    for candidate in (text, text[:10]):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child_text(element: Any, name: str) -> str | None:
    """Text of the first descendant called ``name`` in any namespace (news:title, loc, ...)."""
    for child in element.iter():
        if _local(child.tag) == name and child.text and child.text.strip():
            return child.text.strip()
    return None


def sitemap_listing(source: dict[str, Any], response: Response, *, max_age_days: int,
                    max_size: int, now: datetime | None = None) -> Parsed:
    """A sitemap index (child sitemaps to follow) or a (news) sitemap's recent articles."""
    body = _sitemap_body(response, max_size)
    # The same safe parser options as Scrapy's Sitemap: no entities, no network, no huge trees.
    parser = etree.XMLParser(recover=True, remove_comments=True, resolve_entities=False,
                             no_network=True, huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(body, parser) if body.strip() else None
    except etree.LxmlError as error:
        raise ListingError(f"The document at {response.url} is not an XML sitemap ({error}).")
    kind = _local(root.tag) if root is not None else ""
    if kind not in ("sitemapindex", "urlset"):
        what = other_kind(body, "sitemap") or (
            ' (it is an HTML page: a page that lists articles is kind = "html", with a links '
            'selector)' if looks_like_html(body) else "")
        raise ListingError(f"The document at {response.url} is not an XML sitemap{what}.")
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=max_age_days)

    if kind == "sitemapindex":
        follow = []
        for entry in root:
            if _local(entry.tag) != "sitemap":
                continue
            modified = _iso_date(_child_text(entry, "lastmod"))
            url = try_canonicalize(_child_text(entry, "loc"), response.url)
            if url and url not in follow and (modified is None or modified >= cutoff):
                follow.append(url)
        return [], follow, None

    candidates = []
    for entry in root:
        if _local(entry.tag) != "url":
            continue
        news_date = _iso_date(_child_text(entry, "publication_date"))
        published = news_date or _iso_date(_child_text(entry, "lastmod"))
        if published is not None and published < cutoff:
            continue  # old news: not what a weekly monitor needs
        # Only now: a site's sitemap holds 50,000 URLs of which a few are recent, and
        # canonicalising all of them held the crawl (one thread) for seconds on every read.
        url = try_canonicalize(_child_text(entry, "loc"), response.url)
        if url is None:
            continue
        candidates.append(Candidate(
            url=url, source_id=source["id"], title=normalise_space(_child_text(entry, "title") or ""),
            published_at=_iso(news_date), listed_at=_iso(published),
            language=source.get("language"),
        ))
    return candidates, [], None


def check_listing(source: dict[str, Any], url: str, body: bytes, headers: dict[str, str], *,
                  max_age_days: int, max_size: int) -> str:
    """What a crawl would find in the listing ``body`` fetched from ``url``, read as the
    source's kind: "12 entries", "3 article links", "a sitemap index of 2 recent sitemaps".

    For `stiwatch sources check`: a feed URL that serves a web page, a sitemap that is not
    one, or a links selector that matches nothing raise ListingError, so a mistake in the
    registry shows before the first crawl rather than as a quiet "ok" with nothing stored.
    """
    from scrapy.http import HtmlResponse, Request

    kind = source["kind"]
    request = Request(url, meta={"redirect_urls": [source["url"]]} if url != source["url"] else {})
    response_class = HtmlResponse if kind == "html" else Response
    response = response_class(url=url, body=body, headers=headers, request=request)
    if kind == "feed":
        candidates, _, flag = feed_listing(source, response)
        found = f"{len(candidates)} entries"
    elif kind == "html":
        candidates, _, flag = html_listing(source, response)
        found = f"{len(candidates)} article links"
    else:
        candidates, follow, flag = sitemap_listing(source, response, max_age_days=max_age_days,
                                                   max_size=max_size)
        found = (f"a sitemap index of {len(follow)} recent sitemaps" if follow
                 else f"{len(candidates)} URLs of the last {max_age_days} days")
    return f"{found} ({flag})" if flag else found


__all__ = ["ListingError", "check_listing", "extract_links", "feed_listing", "html_listing",
           "sitemap_listing"]
