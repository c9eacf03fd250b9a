"""Article page bytes -> clean text, title, canonical URL, publication date, language.

Pure functions: no network, no store. The bytes are decoded here (HTTP charset, BOM, <meta
charset>, then detection helped by the source's language) because lxml and trafilatura guess
encodings from bytes on their own and get legacy pages (windows-1252, Shift_JIS, EUC-KR, GBK)
wrong; they only ever see ``str``.
Main text comes from trafilatura (without reader comments), cleared of the template lines that
sit inside article containers (repeated headline, byline, dateline, widget labels, copyright
trailer); dates from htmldate, in a fixed order of trust: the feed's date, the page's metadata,
a date found in the text, and finally the fetch time. Changes here are chosen on the
development set of ``bench/extraction_dev.py`` and only measured on ``data/eval``.

trafilatura, htmldate and py3langid are imported on the first article, not with this module:
the spiders decode listings with ``decode_html``, and a crawl that finds nothing new to extract
(every feed unchanged) need not load them, nor their tables and language model (``warm_up``,
about 1 s of a one-shot `stiwatch crawl`). The crawl fork server loads them once for every
crawl it forks (``crawler.warm``).
"""

from __future__ import annotations

import codecs
from collections import Counter
import copy
from dataclasses import dataclass
from datetime import datetime, timezone
import functools
import logging
import re
import threading
from typing import Mapping
import unicodedata

import charset_normalizer
import lxml.etree
import lxml.html

from db.clock import DATE_ONLY, iso_day, iso_utc, utcnow

from .feeds import FUTURE_SLACK
from .text import content_hash, normalise_space, plain_headers, summarise
from .urls import try_canonicalize

# charset-normalizer, trafilatura and htmldate log every page they find hard; a crawler would
# drown in it. (trafilatura sets htmldate's level when it is imported: see _load_libraries.)
_QUIET = ("trafilatura", "htmldate", "charset_normalizer")
for _name in _QUIET:
    logging.getLogger(_name).setLevel(logging.CRITICAL)

DATE_SOURCES = ("feed", "page", "text", "fetched")
# Languages from text shorter than this are guesses; the page's lang attribute is better then.
MIN_CHARS_FOR_LANGID = 80
# How far into the page a <meta charset> may hide (the HTML spec says 1024; real pages are sloppier).
META_SCAN_BYTES = 16384
SUMMARY_MAX_CHARS = 400

# Labels as browsers interpret them (WHATWG Encoding Standard): the legacy labels mean their
# Windows supersets, so the bytes a browser shows correctly decode correctly here too.
_SUPERSETS = {
    "latin_1": "cp1252", "iso8859_1": "cp1252", "ascii": "cp1252", "cp1252": "cp1252",
    "iso8859_9": "cp1254", "tis_620": "cp874", "iso8859_11": "cp874",
    "shift_jis": "cp932", "cp932": "cp932", "ms932": "cp932",
    "euc_kr": "cp949", "cp949": "cp949", "ks_c_5601_1987": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# The code pages an unlabelled page in a Latin-script language outside Western Europe was most
# likely written in: the HTML Standard's suggested fallback encoding for users of that language
# (its table of locale defaults), and the other code page its sites use for the same letters.
# Other languages need no entry: detection tells Cyrillic, Greek, Hebrew, Arabic, Thai and the
# CJK encodings apart from Latin ones reliably, and every other Latin-script language falls back
# to windows-1252, as browsers do. Among several, the one detection finds least messy wins; on
# a tie, the first. ISO-8859-2 comes first even where the standard suggests windows-1250 (cs, hr,
# sk): windows-1250 puts š, ž, ś, ź, ť in 0x8A-0x9F, control codes in ISO-8859-2, so its pages
# never look clean there; when both look as clean, the page is ISO-8859-2 or has none of the
# letters that tell them apart.
_LANGUAGE_CODE_PAGES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("cs", "hr", "hu", "pl", "sk", "sl"), ("iso8859_2", "cp1250")),
    **dict.fromkeys(("et", "lt", "lv"), ("cp1257", "iso8859_13", "iso8859_4")),
    **dict.fromkeys(("ku", "tr"), ("cp1254",)),
    "vi": ("cp1258",),
}
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")
# charset-normalizer's own margin: chaos scores closer than this are a tie.
_CHAOS_TIE = 0.01
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([-\w.:]+)", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([-\w.:]+)", re.IGNORECASE,
)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]+encoding\s*=\s*[\"']([-\w.:]+)", re.IGNORECASE)


def _c1_passthrough(error: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes windows-1252 leaves undefined (0x81, 0x8d, ...) become their C1 code points."""
    bad = error.object[error.start:error.end]
    return "".join(chr(b) for b in bad), error.end


codecs.register_error("stiwatch-c1", _c1_passthrough)


@dataclass
class Article:
    url: str
    title: str
    text: str
    summary: str
    published_at: str
    date_source: str
    language: str | None
    content_hash: str
    encoding: str
    description: str = ""
    author: str | None = None


# -- decoding -------------------------------------------------------------------------------

def _codec(label: str | None) -> str | None:
    """The Python codec a browser would use for a charset label, or None if unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'").lower()).name
    except LookupError:
        return None
    name = name.replace("-", "_")
    return _SUPERSETS.get(name, codecs.lookup(name).name)


def _decode_with(body: bytes, codec: str, tolerance: float = 0.005) -> str | None:
    """``body`` in ``codec`` if it fits (a few stray bytes tolerated), else None."""
    errors = "stiwatch-c1" if codec == "cp1252" else "strict"
    try:
        return body.decode(codec, errors=errors)
    except UnicodeDecodeError:
        pass
    text = body.decode(codec, errors="replace")
    if text.count("\ufffd") <= max(1, tolerance * len(text)):
        return text
    return None


def declared_charsets(body: bytes, headers: Mapping[str, str] | None) -> list[str]:
    """Charset labels the response declares: HTTP Content-Type first, then the document."""
    labels: list[str] = []
    content_type = plain_headers(headers).get("content-type", "")
    match = _HTTP_CHARSET.search(content_type)
    if match:
        labels.append(match.group(1))
    head = body[:META_SCAN_BYTES]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        match = pattern.search(head)
        if match:
            labels.append(match.group(1).decode("ascii", errors="replace"))
    return labels


def _detection_sample(body: bytes, limit: int = 200_000) -> bytes:
    """At most ``limit`` bytes, cut after a newline or '>' so that no multi-byte character is
    split (those bytes are never trail bytes in Shift_JIS, EUC-KR, GBK or Big5); a split
    character would make the detector reject the right encoding."""
    if len(body) <= limit:
        return body
    cut = max(body.rfind(b"\n", 0, limit), body.rfind(b">", 0, limit))
    return body[:cut + 1] if cut > 0 else body[:limit]


def decode_html(body: bytes, headers: Mapping[str, str] | None = None,
                language: str | None = None) -> tuple[str, str]:
    """Decode a page to ``(text, codec name)``.

    Order: a BOM; valid UTF-8 with non-ASCII text (servers and templates that claim latin-1
    while sending UTF-8 are common, the reverse never yields valid UTF-8); the HTTP charset;
    ``<meta charset>``/http-equiv/XML declaration; then, for a page that declares nothing, see
    ``_undeclared``: detection decides between scripts, ``language`` (the ISO 639-1 code its
    source declares) between the code pages of Latin letters, and windows-1252 is the fallback,
    as in browsers.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace"), codec
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not text.isascii():
            return text, "utf-8"
    codecs_declared = [
        codec for codec in map(_codec, declared_charsets(body, headers))
        # without a BOM a "utf-16" declaration is wrong (the HTML spec agrees)
        if codec is not None and not codec.startswith(("utf-16", "utf-32"))
    ]
    if len(codecs_declared) > 1 and codecs_declared[0] == "cp1252":
        # ISO-8859-1 is many servers' default header, not a statement about the page; when the
        # page itself names another encoding that its bytes fit exactly, believe the page.
        for codec in codecs_declared[1:]:
            if codec != "cp1252":
                try:
                    return body.decode(codec), codec
                except UnicodeDecodeError:
                    pass
    for codec in codecs_declared:
        text = _decode_with(body, codec)
        if text is not None:
            return text, codec
    if body.isascii():
        return body.decode("ascii"), "ascii"
    # Undeclared and almost UTF-8 (a truncated sequence, one stray byte): still UTF-8, when
    # valid multi-byte characters far outnumber the bad bytes. Legacy 8-bit text never passes.
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if sum(1 for char in text if ord(char) > 127) - bad >= 5 * bad:
        return text, "utf-8"
    return _undeclared(body, language)


def _undeclared(body: bytes, language: str | None) -> tuple[str, str]:
    """An unlabelled legacy page: ``(text, codec)``.

    charset-normalizer is reliable at telling scripts apart (Shift_JIS from GBK, windows-1251
    from KOI8-R), so a guess that reads as CJK, Cyrillic, Greek... text is taken. Between the
    code pages of Latin letters it is not: every one of them decodes such bytes into plausible
    accented letters, and French scored as Baltic (windows-1257) turned "française" into
    "franēaise". There the source's language decides when it has code pages of its own
    (``_LANGUAGE_CODE_PAGES``), else windows-1252, the HTML Standard's fallback, unless the
    bytes make no sense in it; only then the detector's Latin guess (windows-1250 Polish
    from a source that says "en").
    """
    sample = _detection_sample(body)
    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is not None and not _latin_script(str(best)):
        codec = _codec(best.encoding) or best.encoding
        text = _decode_with(body, codec)
        if text is not None:
            return text, codec
    code_pages = _LANGUAGE_CODE_PAGES.get((language or "").split("-")[0].lower(), ())
    if code_pages:
        codec = _least_messy(sample, code_pages)
        text = _decode_with(body, codec) if codec else None
        if codec and text is not None:
            return text, codec
    if best is None or _plausible(sample, matches, "cp1252"):
        return body.decode("cp1252", errors="stiwatch-c1"), "cp1252"
    codec = _codec(best.encoding) or best.encoding
    text = _decode_with(body, codec)
    if text is not None:
        return text, codec
    return body.decode("cp1252", errors="stiwatch-c1"), "cp1252"


def _latin_script(text: str) -> bool:
    """Whether most letters outside ASCII are Latin ones (é, ł, ş; ª and µ are not but occur)."""
    # The first 20,000 characters outside ASCII tell the script, counted per distinct one (a
    # CJK page has a few thousand).
    letters = latin = 0
    for char, count in Counter(_ASCII_RUNS.sub("", text)[:20_000]).items():
        if char.isalpha():
            letters += count
            latin += count if "LATIN" in unicodedata.name(char, "") else 0
    return 2 * latin >= letters


def _codecs_of(match: "charset_normalizer.CharsetMatch") -> set[str]:
    """The codecs (as ``_codec`` names them) that decode a match's bytes to the same text."""
    return {_codec(name) or name for name in match.could_be_from_charset}


def _plausible(sample: bytes, matches: "charset_normalizer.CharsetMatches", codec: str) -> bool:
    """Whether charset-normalizer finds ``codec``'s reading of the bytes clean enough.

    Not being among ``matches`` is not enough: the detector skips code pages similar to ones
    it rejected, so it is asked about ``codec`` alone then."""
    if any(codec in _codecs_of(match) for match in matches):
        return True
    return bool(charset_normalizer.from_bytes(sample, cp_isolation=[codec]))


def _least_messy(sample: bytes, code_pages: tuple[str, ...]) -> str | None:
    """The code page of ``code_pages`` whose reading charset-normalizer finds least messy (on a
    tie, the first listed), as ``_codec`` names it; None when none reads cleanly."""
    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=list(code_pages)))
    if not matches:
        return None
    lowest = min(match.chaos for match in matches)
    clean = set().union(*(_codecs_of(match) for match in matches
                          if match.chaos < lowest + _CHAOS_TIE))
    for name in code_pages:
        codec = _codec(name) or name
        if codec in clean:
            return codec
    return None


# -- parsing helpers ------------------------------------------------------------------------

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# HTML comments and processing instructions are left out of the tree, as trafilatura's own
# loader does: trafilatura drops a comment node together with its tail, so an ad-slot marker
# like "<p>first half <!-- ad --> second half</p>" would cost the rest of the paragraph.
# One parser per thread: an lxml parser object must not parse in two threads at once.
_PARSERS = threading.local()

# Characters XML forbids (C0 controls but tab, newline and carriage return): a stray one in a
# page (a BEL or ESC pasted from a terminal, a form feed from a word processor) made trafilatura
# return no text at all, and the item was stored without its body.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _parser() -> lxml.html.HTMLParser:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True)
    return parser


def _parse(text: str) -> lxml.html.HtmlElement | None:
    # lxml refuses str input that carries an XML encoding declaration: it is stale after decoding.
    text = _XML_INVALID.sub("", _XML_DECLARATION.sub("", text, count=1))
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text, parser=_parser())
    except (lxml.etree.ParserError, ValueError):
        return None


def _first(tree: lxml.html.HtmlElement, xpath: str) -> str:
    for value in tree.xpath(xpath):
        value = normalise_space(str(value))
        if value:
            return value
    return ""


def _canonical_url(tree: lxml.html.HtmlElement | None, url: str) -> str:
    """The page's <link rel=canonical> when it is believable, else the fetched URL."""
    fetched = try_canonicalize(url) or url
    if tree is None:
        return fetched
    for href in tree.xpath("//head//link[contains(concat(' ', normalize-space("
                           "translate(@rel, 'CANONICAL', 'canonical')), ' '), ' canonical ')]"
                           "/@href"):
        candidate = try_canonicalize(str(href), url)
        if candidate is None:
            continue
        # A canonical link pointing at the site's front page from an article is a CMS bug that
        # would fold every article into one row: ignore it.
        if candidate.split("?")[0].rstrip("/").count("/") <= 2 and \
                fetched.split("?")[0].rstrip("/").count("/") > 2:
            continue
        return candidate
    return fetched


# htmldate's spelling of a date without a time of day under our output format: a midnight
# without an offset ("2026-11-20T00:00:00"; a time it found keeps its offset).
_HTMLDATE_MIDNIGHT = "T00:00:00"


def _utc(value: str | None) -> str | None:
    """An htmldate/ISO date(time) string as 'YYYY-MM-DDTHH:MM:SSZ' (naive means UTC); a date
    without a time of day as noon UTC of that date (db.clock.iso_day)."""
    if not value:
        return None
    day = value.strip().removesuffix(_HTMLDATE_MIDNIGHT)
    if DATE_ONLY.fullmatch(day):
        try:
            moment = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        if moment > datetime.now(timezone.utc) + FUTURE_SLACK:
            return None
        return iso_day(moment.date())
    moment = None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(value, fmt)
            break
        except ValueError:
            continue
    if moment is None:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    if moment > datetime.now(timezone.utc) + FUTURE_SLACK:
        return None
    return iso_utc(moment)


def _page_date(tree: lxml.html.HtmlElement, url: str, extensive: bool) -> str | None:
    import htmldate  # on first use: see the module's docstring

    try:
        found = htmldate.find_date(
            tree, url=url, original_date=True, extensive_search=extensive,
            outputformat="%Y-%m-%dT%H:%M:%S%z",
        )
    except Exception:  # htmldate on hostile markup: a missing date, not a failed article
        return None
    return _utc(found)


# Dates as Japanese and Chinese pages write them ("2026年11月27日", full-width digits, the
# Japanese era "令和8年11月27日"): htmldate reads the first as 1 January of the year and the
# others not at all. A month counts ("2026年11月": its first day, where htmldate said 1
# January), a year alone does not, nor does "令和9年度" (a fiscal year).
_CJK_DATE = re.compile(r"(?:(令和|平成)\s*(元|\d{1,2})|(\d{4}))\s*年\s*(\d{1,2})\s*月"
                       r"(?:\s*(\d{1,2})\s*日)?")
_ERA_START = {"令和": 2018, "平成": 1988}  # 令和元年 (year 1) is 2019, 平成元年 1989


def _era_year(era: str, era_year: str) -> int:
    """The Western year of a Japanese era's year ("元" is its first)."""
    return _ERA_START[era] + (1 if era_year == "元" else int(era_year))


# Japanese tables abbreviate the era: "R8.11.20" is 令和8年11月20日, which htmldate read as
# 8 November 2020. Spelt out as ISO dates in Japanese pages (kana) before htmldate reads them;
# elsewhere "R2.5.1" is a release.
_ERA_ABBREVIATION = re.compile(
    r"(?<![A-Za-z0-9.])([RH])\s?(\d{1,2})[./](\d{1,2})[./](\d{1,2})(?![0-9]|[./][0-9])")
_KANA = re.compile("[\u3040-\u30ff]")


def _spell_out(match: re.Match) -> str:
    letter, era_year, month, day = match.groups()
    year = _era_year("令和" if letter == "R" else "平成", era_year)
    try:
        return datetime(year, int(month), int(day)).strftime("%Y-%m-%d")
    except ValueError:
        return match.group(0)


def _spell_out_era_abbreviations(tree: lxml.html.HtmlElement) -> None:
    if not _KANA.search(tree.text_content()):
        return
    for element in tree.iter(lxml.etree.Element):
        for side in ("text", "tail"):
            value = getattr(element, side)
            if value and _ERA_ABBREVIATION.search(value):
                setattr(element, side, _ERA_ABBREVIATION.sub(_spell_out, value))


def _cjk_text_date(tree: lxml.html.HtmlElement) -> str | None:
    """The first past year-month-day written the CJK way in the page's text, as UTC; failing
    that, the first past year-month's first day."""
    text = " ".join(tree.xpath("//body//text()[not(ancestor::script) and not(ancestor::style)]"))
    if "年" not in text:  # every such date has one: most pages are done here, unnormalised
        return None
    # NFKC folds full-width digits (２０２６) and the era ligature ㋿ into what the pattern reads.
    text = unicodedata.normalize("NFKC", text)
    month_only = None
    for match in _CJK_DATE.finditer(text):
        era, era_year, year, month, day = match.groups()
        if era:
            year = _era_year(era, era_year)
        try:
            moment = datetime(int(year), int(month), int(day or 1), tzinfo=timezone.utc)
        except ValueError:
            continue
        found = _utc(moment.strftime("%Y-%m-%d"))
        if found and day:
            return found
        month_only = month_only or found
    return month_only


_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _cjk_script(text: str) -> str | None:
    """"ja", "ko" or "zh" when most letters of ``text`` are of that script (kana tell Japanese
    from Chinese), else None."""
    letters = sum(ch.isalpha() for ch in text)
    if not letters:
        return None
    hangul, kana, han = (len(pattern.findall(text)) for pattern in (_HANGUL, _KANA, _HAN))
    if 2 * hangul > letters:
        return "ko"
    if kana and 2 * (kana + han) > letters:
        return "ja"
    return "zh" if 2 * han > letters else None


def _language(text: str, tree: lxml.html.HtmlElement | None,
              headers: Mapping[str, str] | None) -> str | None:
    if len(text) >= MIN_CHARS_FOR_LANGID:
        import py3langid  # on first use: see the module's docstring

        code, _score = py3langid.classify(text[:2000])  # plenty for an n-gram model
        return code
    declared = _first(tree, "/html/@lang | /html/@xml:lang") if tree is not None else ""
    if not declared:
        declared = plain_headers(headers).get("content-language", "").split(",")[0]
    code = declared.strip().split("-")[0].split("_")[0].lower()
    # A short text in kana, Hangul or Chinese characters says its language by its script
    # better than a template's lang="en" (or the source's language, the fallback for None):
    # stored as English, it was tagged by the English-only model. Chinese characters alone
    # are also Japanese (or Korean) when the page says so.
    script = _cjk_script(text)
    if script and not (script == "zh" and code in ("ja", "ko")):
        return script
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def _link_texts(tree: lxml.html.HtmlElement) -> set[str]:
    return {normalise_space(a.text_content()).casefold() for a in tree.iter("a")} - {""}


def _mostly_links(text: str, link_texts: set[str]) -> bool:
    """True when the "article" is just the page's menus (what recall mode finds on a front page)."""
    lines = [line for line in text.split("\n") if line.strip()]
    linked = sum(len(line) for line in lines if line.casefold() in link_texts)
    return linked >= 0.6 * sum(len(line) for line in lines)


def _main_text(tree: lxml.html.HtmlElement, url: str) -> str:
    """trafilatura's main text; retried for recall when the precise pass finds none."""
    import trafilatura  # on first use: see the module's docstring

    link_texts = _link_texts(tree)
    for favor_recall in (False, True):
        try:
            document = trafilatura.bare_extraction(
                copy.deepcopy(tree),  # trafilatura prunes the tree; dates are read from it later
                url=url, with_metadata=False, include_comments=False, include_tables=True,
                favor_recall=favor_recall,
            )
        except Exception:  # a page trafilatura chokes on has no extractable text, nothing worse
            document = None
        text = normalise_space(getattr(document, "text", None) or "") if document else ""
        if text and not _mostly_links(text, link_texts):
            return text
    return ""


def _title_and_author(tree: lxml.html.HtmlElement, url: str) -> tuple[str, str | None]:
    """Title and author as trafilatura's metadata pass reads them (meta tags, JSON-LD, <title>,
    <h1>), without the rest of that pass: dates are htmldate's job here, and site name,
    categories, licence and host cost about 20 ms a page for nothing we store."""
    import trafilatura  # on first use: see the module's docstring

    try:
        from trafilatura.metadata import (
            examine_meta, extract_author, extract_meta_json, extract_title,
        )

        meta = extract_meta_json(tree, examine_meta(tree))
        title = meta.title or extract_title(tree)
        # trafilatura's own rule: a one-word "author" from meta tags is a site or a handle.
        author = meta.author if meta.author and " " in meta.author else None
        author = author or extract_author(tree)
    except Exception:  # internals moved in another trafilatura version: use the public call
        try:
            document = trafilatura.extract_metadata(copy.deepcopy(tree), default_url=url)
        except Exception:
            return "", None
        title, author = document.title, document.author
    return normalise_space(title or ""), (normalise_space(author) or None) if author else None


# Lines that templates put into the article container and that are not the article: where
# they are found (the first lines, anywhere, the last lines) is part of each rule, so that a
# sentence of the article that merely starts the same way is kept. Each is a whole line.
_MONTHS = ("jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sept?(ember)?"
           "|oct(ober)?|nov(ember)?|dec(ember)?")
_DAYS = "mon(day)?|tue(s|sday)?|wed(nesday)?|thu(rs|rsday)?|fri(day)?|sat(urday)?|sun(day)?"
# "Updated 10:42 a.m. ET, November 2, 2026", "08.12.2026", "Published: Tue 3 Nov 2026 09:15 GMT"
_DATELINE = re.compile(
    r"^(?:(?:last\s+)?(?:updated|modified|published|posted|first\s+published)(?:\s+on)?"
    rf"\s*:?\s*)?(?:(?:{_DAYS}|{_MONTHS}|at|on|\d{{1,4}}(?:st|nd|rd|th)?|[ap]\.?m\.?"
    r"|[A-Z]{2,4}|[-/.,:|·•–—]|\s)+)$",
    re.IGNORECASE,
)
# A dateline names a month or a day, or writes the date in digits (2026-11-02, 08.12.2026).
_DATE_MARK = re.compile(
    rf"\b(?:{_MONTHS}|{_DAYS})\b|\b\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}\b", re.IGNORECASE)
_DATE_WORD = re.compile(
    rf"(?:{_MONTHS}|{_DAYS}|at|on|[ap]m|updated|modified|published|posted|first|last)",
    re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]{2,}")
_TIME_ZONES = frozenset(
    "UTC GMT ET EST EDT CT CST CDT MT MST MDT PT PST PDT BST CET CEST EET EEST WET WEST MSK IST"
    " JST KST HKT SGT AEST AEDT AWST NZST NZDT".split())
# "By Maria Lopez", "By Jane Doe, science correspondent", "Posted by admin": a byline, when
# short and without a sentence's full stop.
_BYLINE = re.compile(r"^(?:(?:posted|written|words|reporting)\s+)?by\s+[^\W\d].{0,70}$",
                     re.IGNORECASE)
# Labels and calls to action that sit between the paragraphs of an article.
_WIDGET_LINE = re.compile(
    r"^(?:advertisement|advertising|sponsored(?: content)?|anzeige|werbung|publicité"
    r"|(?:read|see) (?:more|also)\s*:.*|(?:also read|related(?: articles?| stories| content)?"
    r"|more on this(?: story| topic)?|recommended(?: reading)?)\s*:.*"
    r"|share (?:this|on|via)\b.*"
    r"|(?:sign up|subscribe)\b.*\b(?:newsletter|inbox|e-?mail|updates)\b.*"
    r"|follow us\b.*|click here\b.*|(?:.{0,40}[|·•]\s*)?\d+\s*min(?:ute)?s?\s+read)$",
    re.IGNORECASE,
)
# What ends a template after the article: copyright notices and navigation back.
_TRAILER = re.compile(
    r"^(?:(?:©|\(c\)|copyright\s*(?:©|\(c\)|\d{4})).{0,200}"
    r"|.{0,150}\ball rights reserved\b.{0,100}"
    r"|back to (?:the )?(?:top|news|overview|list|homepage|home)\b.{0,40})$",
    re.IGNORECASE,
)
# How many lines at either end of the text count as its head and its tail.
_EDGE_LINES = 3
_WIDGET_MAX_CHARS = 120


def _is_dateline(line: str) -> bool:
    if len(line) > 80 or not any(char.isdigit() for char in line) \
            or not _DATE_MARK.search(line) or not _DATELINE.match(line):
        return False
    # Letters are date words or time zones (ET, GMT), never other words ("3 NASA missions").
    return all(word.upper() in _TIME_ZONES or _DATE_WORD.fullmatch(word)
               for word in _WORD.findall(line))


# Datelines as other languages write them: "掲載日：令和8年11月19日", "发布时间：2026年11月20日",
# "2026년 11월 19일", "Publié le 20 novembre 2026", "20 de noviembre de 2026", "Pressemitteilung
# Nr. 42 | 19. November 2026". The date plus a short label is the whole line.
_FOREIGN_MONTHS = (
    "januar|jänner|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember"
    "|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre"
    "|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre"
    "|diciembre|janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro")
_FOREIGN_DATE = re.compile(
    r"(?:(?:令和|平成)\s*(?:元|\d{1,2})|\d{4})\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日"
    r"|\d{4}\s*년\s*\d{1,2}\s*월\s*\d{1,2}\s*일"
    rf"|\b\d{{1,2}}(?:er|\.|º)?\s+(?:de\s+)?(?:{_FOREIGN_MONTHS})\s+(?:de\s+)?\d{{4}}\b",
    re.IGNORECASE)
_FOREIGN_LABEL_MAX_CHARS = 30


def _is_foreign_dateline(line: str) -> bool:
    if len(line) > 60:
        return False
    line = unicodedata.normalize("NFKC", line)  # full-width digits, as Japanese pages write them
    match = _FOREIGN_DATE.search(line)
    if match is None:
        return False
    label = (line[:match.start()] + " " + line[match.end():]).strip(" \t:：|·•-–—,、()（）[]【】")
    # A sentence that starts with a date ("2026年11月20日に閣議決定した。") is the article's.
    return len(label) <= _FOREIGN_LABEL_MAX_CHARS and not label.endswith((".", "。"))


def _is_byline(line: str, author: str | None) -> bool:
    folded = line.casefold()
    if author and folded.strip(" .,") == author.casefold():
        return True
    return bool(_BYLINE.match(line)) and not line.rstrip().endswith((".", "!", "?", "\"", "”"))


def _without_page_chrome(text: str, title: str, author: str | None) -> str:
    """The body without the template's lines around and between its paragraphs: a first line
    that repeats the headline, bylines and datelines among the first and last lines, widget
    labels ("Advertisement", "Read more: ...", "Share this article", newsletter sign-ups)
    anywhere, and copyright or "back to news" lines at the end."""
    lines = text.split("\n")
    title_folded = title.casefold() if title else None
    kept: list[str] = []
    real = [i for i, line in enumerate(lines) if line.strip()]
    head, tail = set(real[:_EDGE_LINES]), set(real[-_EDGE_LINES:])
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("|"):  # table rows are the article's data
            kept.append(line)
            continue
        edge = index in head or index in tail
        if index in head and title_folded and stripped.casefold() == title_folded:
            continue
        if edge and (_is_dateline(stripped) or _is_foreign_dateline(stripped)
                     or _is_byline(stripped, author)):
            continue
        if len(stripped) <= _WIDGET_MAX_CHARS and _WIDGET_LINE.match(stripped):
            continue
        if index in tail and _TRAILER.match(stripped):
            continue
        kept.append(line)
    # Nothing but such lines: better the lines than no text at all.
    return normalise_space("\n".join(kept)) or text


def _lead(text: str) -> str:
    """The article's first real paragraph (skipping bylines, datelines and subheadings)."""
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    for paragraph in paragraphs:
        wide = sum(1 for c in paragraph if ord(c) > 0x2e80)  # CJK says more per character
        if len(paragraph) + wide >= 80 or paragraph.endswith((".", "!", "?", "。", "！", "？")):
            return paragraph
    return paragraphs[0] if paragraphs else ""


# Markup whose dates are about the site, not the article (copyright years, other stories).
_NOT_ARTICLE = (
    "//footer | //nav | //aside | //header[not(ancestor::article)] | //form"
    " | //*[contains(@class, 'footer') or contains(@id, 'footer') or contains(@class, 'copyright')"
    " or contains(@class, 'related') or contains(@class, 'comment') or contains(@class, 'sidebar')"
    " or contains(@class, 'menu')]"
)


def _without_site_chrome(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    stripped = copy.deepcopy(tree)
    for element in stripped.xpath(_NOT_ARTICLE):
        if element.getparent() is not None:
            element.drop_tree()
    return stripped


@functools.cache
def _load_libraries() -> None:
    """Import the extraction libraries, on the first article (see the module's docstring)."""
    import htmldate  # noqa: F401
    import py3langid  # noqa: F401
    import trafilatura  # noqa: F401
    import trafilatura.metadata  # noqa: F401

    # trafilatura.metadata sets htmldate's level to WARNING when it is imported: quiet it again.
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.CRITICAL)


_WARM_UP_PAGE = (
    b"<html lang='en'><head><title>Warm-up</title></head><body><article><h1>Warm-up</h1>"
    + b"<p>This paragraph exists only to load the extraction machinery once, so that later"
    b" articles in this process are extracted without paying for it again.</p>" * 4
    + b"</article></body></html>"
)


@functools.cache
def warm_up() -> None:
    """Load the extraction libraries and what they build on first use (tables, the language
    model) by extracting a sample page: about 1 s, once per process."""
    try:
        extract_article(_WARM_UP_PAGE, "http://localhost/warm-up.html")
    except Exception:  # noqa: BLE001 - a failed warm-up fails no crawl: its pages will say
        pass


def extract_article(body: bytes, url: str, headers: Mapping[str, str] | None = None,
                    feed_date: str | None = None, language: str | None = None) -> Article:
    """Extract one article page. Never raises for bad content: no text means ``text == ''``.

    ``language`` is the language its source declares (ISO 639-1), a hint for decoding a page
    that does not say its encoding; the Article's own ``language`` is still read from its text.
    """
    _load_libraries()
    text, encoding = decode_html(body or b"", headers, language)
    tree = _parse(text)
    page_url = _canonical_url(tree, url)

    main, title, author, description = "", "", None, ""
    if tree is not None:
        main = _main_text(tree, url)
        title, author = _title_and_author(tree, url)
        title = title or _first(tree, "//head/title/text() | //meta[@property='og:title']/@content"
                                      " | //h1//text()")
        description = _first(tree, "//meta[@name='description']/@content"
                                   " | //meta[@property='og:description']/@content")
    main = _without_page_chrome(main, title, author)

    # Order of trust: the feed, the page's markup (meta, JSON-LD, <time>, URL), its text, now.
    published, source = _utc(feed_date), "feed"
    if not published and tree is not None:
        _spell_out_era_abbreviations(tree)  # the text and title were read above
        published, source = _page_date(tree, url, extensive=False), "page"
        if not published and main:
            # Site chrome dropped first: a footer's "© 2024" is no publication date.
            article_tree = _without_site_chrome(tree)
            published, source = _cjk_text_date(article_tree), "text"
            if not published:
                published = _page_date(article_tree, url, extensive=True)
    if not published:
        published, source = utcnow(), "fetched"

    return Article(
        url=page_url,
        title=title,
        text=main,
        summary=summarise(_lead(main), SUMMARY_MAX_CHARS) if main else "",
        published_at=published,
        date_source=source,
        language=_language(main, tree, headers),
        content_hash=content_hash(main),
        encoding=encoding,
        description=description,
        author=author,
    )
