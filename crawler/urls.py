"""Canonical article URLs: one spelling per article, so one row in the store forever.

w3lib does the heavy lifting (percent-encoding, IDNA hosts, sorted query, dot segments,
fragments); on top of it we resolve relative links, keep http(s) only, drop default ports and
trailing host dots, and strip tracking parameters that make one article look like many.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url as _w3lib_canonicalize
from w3lib.html import strip_html5_whitespace


class InvalidURL(ValueError):
    """A URL that cannot name an article (not http(s), no host, unparseable)."""


# Query parameters that only say how a reader arrived, never which page they read.
# Matched case-insensitively on the whole name, or on a prefix for the families below.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi",
    "hsctatracking", "mkt_tok", "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid", "vero_id",
    "vero_conv", "wickedid", "at_medium", "at_campaign", "xtor", "ocid", "cmpid",
    "__twitter_impression", "ref_src", "ref_url", "spm", "wt_mc", "wt_zmc", "wt_ref",
    "sr_share", "smid", "smtyp", "ito", "cmp", "icid", "ncid", "soc_src", "soc_trk",
})
TRACKING_PREFIXES = ("utm_", "ns_", "pk_", "piwik_", "mtm_", "matomo_", "hsa_")

DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


# "Came from the feed" markers: these names are tracking when their value names a feed
# (NYT's ?emc=rss&partner=rss, ?ref=rss, ?source=feed); elsewhere they may select content.
FEED_MARKER_PARAMS = frozenset({"ref", "src", "source", "from", "partner", "emc", "via",
                                "channel", "origin", "referrer"})
FEED_MARKER_VALUES = frozenset({"rss", "feed", "atom", "rssfeed", "rss2", "feeds", "newsfeed"})


def is_tracking_param(name: str, value: str = "") -> bool:
    lowered = name.lower()
    if lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES):
        return True
    return lowered in FEED_MARKER_PARAMS and value.lower() in FEED_MARKER_VALUES


def canonicalize(url: str, base: str | None = None) -> str:
    """The canonical form of ``url`` (resolved against ``base``), or raise InvalidURL.

    >>> canonicalize("../b?utm_source=x&id=2#top", "HTTPS://Example.org:443/news/a/")
    'https://example.org/news/b?id=2'
    """
    if not isinstance(url, str):
        raise InvalidURL(f"{url!r} is not a URL.")
    raw = strip_html5_whitespace(url)
    if not raw:
        raise InvalidURL("An empty URL names no article.")
    if base:
        try:
            raw = urljoin(strip_html5_whitespace(base), raw)
        except ValueError as error:  # e.g. an unbalanced "[" taken for an IPv6 host
            raise InvalidURL(f"{url!r} is a malformed URL ({error}).") from None
    if not _SCHEME.match(raw):
        raise InvalidURL(f"{url!r} is not an absolute http(s) URL.")
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as error:
        raise InvalidURL(f"{url!r} is a malformed URL ({error}).") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"{url!r} is not an http(s) URL.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURL(f"{url!r} has no host name.")

    netloc = host if ":" not in host else f"[{host}]"  # IPv6 literals keep their brackets
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"

    # Filter the raw pairs (not decoded ones) so w3lib alone decides how values are encoded.
    query = "&".join(
        pair for pair in re.split(r"[&;]", parts.query)
        if pair and not is_tracking_param(*map(unquote_plus, pair.partition("=")[::2]))
    )
    rebuilt = urlunsplit((scheme, netloc, parts.path or "/", query, ""))
    try:
        canonical = _w3lib_canonicalize(rebuilt, keep_fragments=False)
        final_host = urlsplit(canonical).hostname or ""
    except (ValueError, UnicodeError) as error:
        raise InvalidURL(f"{url!r} is a malformed URL ({error}).") from None
    # After IDNA encoding a host is letters, digits, hyphens, dots (and the underscores some
    # real hosts have), or an IPv6 literal; anything else (spaces, "&", NUL) is no address.
    if not (_HOST.match(final_host) or (":" in final_host and _IPV6.match(final_host))):
        raise InvalidURL(f"{url!r} has an invalid host name.")
    return canonical


def try_canonicalize(url: str | None, base: str | None = None) -> str | None:
    """canonicalize(), or None for anything that is not a usable http(s) URL."""
    if not url:
        return None
    try:
        return canonicalize(url, base)
    except InvalidURL:
        return None
