"""Article extraction: one page per case in tests/fixtures/extract/ with <case>.expected.json.

An expectation holds the fetch ``url``, optional HTTP ``headers``, ``feed_date`` and
``source_language`` (the language the page's source declares in the registry), and under
``expect`` the Article fields the case is about; ``text_contains``/``text_excludes`` list
passages that must (not) be in the text; ``published_at: "now"`` means the fetch time.
A top-level ``body`` (the page's exact article text) makes the page part of the development set
that ``bench/extraction_dev.py`` scores extraction changes on.
"""

from __future__ import annotations

from datetime import datetime, timezone
import json
import random
from pathlib import Path
import re

import pytest

from crawler.extract import Article, decode_html, extract_article
from crawler.text import content_hash
from fuzz import mangle

PAGES = Path(__file__).parent / "fixtures" / "extract"
CASES = sorted(p.name.removesuffix(".expected.json") for p in PAGES.glob("*.expected.json"))
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_every_page_has_an_expectation() -> None:
    assert sorted(p.stem for p in PAGES.glob("*.html")) == CASES
    assert len(CASES) >= 10  # a moved folder would leave the fixture tests nothing to run


def _extract(case: str) -> tuple[Article, dict]:
    spec = json.loads((PAGES / f"{case}.expected.json").read_text("utf-8"))
    article = extract_article((PAGES / f"{case}.html").read_bytes(), spec["url"],
                              spec.get("headers"), feed_date=spec.get("feed_date"),
                              language=spec.get("source_language"))
    return article, spec["expect"]


@pytest.mark.parametrize("case", CASES)
def test_extract_fixture(case: str) -> None:
    article, expect = _extract(case)
    expect = dict(expect)
    for passage in expect.pop("text_contains", []):
        assert passage in article.text
    for passage in expect.pop("text_excludes", []):
        assert passage.lower() not in article.text.lower()
    if expect.get("published_at") == "now":
        expect.pop("published_at")
        moment = datetime.strptime(article.published_at, "%Y-%m-%dT%H:%M:%SZ")
        age = datetime.now(timezone.utc) - moment.replace(tzinfo=timezone.utc)
        assert 0 <= age.total_seconds() < 120
    got = {key: getattr(article, key) for key in expect}
    assert got == expect


@pytest.mark.parametrize("case", CASES)
def test_article_invariants(case: str) -> None:
    """Whatever the page: an ISO UTC date with its source, a hash of the text, no markup."""
    article, _ = _extract(case)
    assert ISO_UTC.match(article.published_at)
    assert article.date_source in ("feed", "page", "text", "fetched")
    assert article.content_hash == content_hash(article.text)
    assert (article.content_hash == "") == (article.text == "")
    assert "<p>" not in article.text and "\ufffd" not in article.text
    assert article.url.startswith("https://")
    if article.text:
        assert article.summary and article.summary in article.text.replace("\n", " ")
        assert len(article.summary) <= 400


def test_same_text_same_hash_whatever_the_spacing() -> None:
    assert content_hash("Ministry  funds\nquantum  research") == content_hash(
        "ministry funds quantum research ")
    assert content_hash("Ministry funds quantum research") != content_hash("Ministry funds AI")


# -- decoding -------------------------------------------------------------------------------

SAMPLE = "Förderung für Forschung – „Wasserstoff“ kostet 5 €"


@pytest.mark.parametrize("body, headers, text, encoding", [
    (SAMPLE.encode("utf-8"), None, SAMPLE, "utf-8"),
    (SAMPLE.encode("cp1252"), {"Content-Type": "text/html; charset=windows-1252"}, SAMPLE,
     "cp1252"),
    # Browsers read ISO-8859-1 as windows-1252; so do we (the C1 bytes are curly quotes there).
    (SAMPLE.encode("cp1252"), {"content-type": "text/html; charset=ISO-8859-1"}, SAMPLE,
     "cp1252"),
    (b"<meta charset='cp1252'>" + SAMPLE.encode("cp1252"), None,
     "<meta charset='cp1252'>" + SAMPLE, "cp1252"),
    (b"\xef\xbb\xbf" + SAMPLE.encode("utf-8"), {"Content-Type": "text/html; charset=latin-1"},
     SAMPLE, "utf-8"),
    (b"\xff\xfe" + SAMPLE.encode("utf-16-le"), None, SAMPLE, "utf-16-le"),
    (b"\xfe\xff" + SAMPLE.encode("utf-16-be"), None, SAMPLE, "utf-16-be"),
    ("東京大学".encode("shift_jis"), {"Content-Type": "text/html; charset=shift_jis"},
     "東京大学", "cp932"),
    # cp932 extensions (NEC row 13) that strict Shift_JIS lacks: ①, ㈱
    ("①㈱研究所".encode("cp932"), {"Content-Type": "text/html; charset=Shift_JIS"},
     "①㈱研究所", "cp932"),
    ("서울대학교".encode("euc-kr"), {"Content-Type": "text/html; charset=EUC-KR"}, "서울대학교",
     "cp949"),
    ("清华大学".encode("gb2312"), {"Content-Type": "text/html; charset=GB2312"}, "清华大学",
     "gb18030"),
    ("镕".encode("gbk"), {"Content-Type": "text/html; charset=gb2312"}, "镕", "gb18030"),
    (b"plain ascii", None, "plain ascii", "ascii"),
    (b"", None, "", "ascii"),
    # A utf-16 declaration without a BOM is wrong (HTML spec): the bytes are ASCII-compatible.
    (b"<meta charset=utf-16><p>caf\xc3\xa9</p>", None, "<meta charset=utf-16><p>café</p>",
     "utf-8"),
    # Undeclared, mostly UTF-8 with one broken byte: UTF-8 (one replacement character).
    ("Förderung für Forschung – Überblick. ".encode() * 3 + b"\xff", None,
     "Förderung für Forschung – Überblick. " * 3 + "\ufffd", "utf-8"),
    # A server's default "ISO-8859-1" header loses to the page's own <meta> when the bytes
    # fit the page's encoding exactly; a multi-byte header is believed over the page.
    (b"<meta charset=shift_jis>" + "東京大学".encode("shift_jis"),
     {"Content-Type": "text/html; charset=ISO-8859-1"}, "<meta charset=shift_jis>東京大学",
     "cp932"),
    (b"<meta charset=euc-kr>" + "東京大学".encode("shift_jis"),
     {"Content-Type": "text/html; charset=shift_jis"}, "<meta charset=euc-kr>東京大学", "cp932"),
    # Scrapy-style headers: bytes, lists.
    (SAMPLE.encode("cp1252"), {b"Content-Type": [b"text/html; charset=windows-1252"]}, SAMPLE,
     "cp1252"),
])
def test_decode_html(body: bytes, headers: dict | None, text: str, encoding: str) -> None:
    assert decode_html(body, headers) == (text, encoding)


def test_decode_html_undeclared_legacy_encodings_are_detected() -> None:
    """No HTTP charset, no meta: charset-normalizer finds the encoding of a real paragraph."""
    samples = {
        "cp1252": "Die Ministerin kündigte am Donnerstag in Berlin zusätzliche Fördermittel "
                  "für Hochschulen und außeruniversitäre Forschungseinrichtungen an. " * 3,
        "shift_jis": "文部科学省は十四日、量子技術の研究開発を強化するため、今後五年間で総額千億円を"
                     "投じる新たな計画を発表した。研究者からは歓迎の声が上がっている。" * 2,
        "euc-kr": "과학기술정보통신부는 인공지능 반도체 연구개발에 향후 5년간 1조 원을 투자하는 "
                  "새로운 국가 전략을 발표했다. 연구자들은 이번 발표를 환영했다. " * 2,
        "gb2312": "科学技术部发布新的国家计划，将在未来五年投入一千亿元，支持人工智能和量子信息等"
                  "前沿领域的基础研究。科研人员对计划表示欢迎。" * 2,
    }
    for codec, sample in samples.items():
        text, _ = decode_html(sample.encode(codec), {"Content-Type": "text/html"})
        assert text == sample, codec


CZECH = ("Ministerstvo školství představilo novou strategii podpory výzkumu. Vysoké školy "
         "získají více peněz na umělou inteligenci a mezinárodní spolupráci. ") * 3
FRENCH = ("La coopération française en matière de recherche : le ministère a présenté sa "
          "stratégie déjà annoncée ; dès l’été, les établissements recevront des dotations. ") * 3


@pytest.mark.parametrize("text, codec, language, expected", [
    # No language, or one whose fallback is windows-1252: windows-1252, as browsers do, not the
    # Baltic code page the detector scores best ("franēaise").
    (FRENCH, "cp1252", None, "cp1252"),
    (FRENCH, "cp1252", "fr", "cp1252"),
    # A language of another script does not force its code pages onto Latin text.
    (FRENCH, "cp1252", "ru", "cp1252"),
    (FRENCH, "cp1252", "ja", "cp1252"),
    # The source's language picks among its code pages; ISO-8859-2 and windows-1250 read the
    # same Czech bytes equally cleanly unless they are windows-1250 (š, ž at 0x9a, 0x9e).
    (CZECH, "iso8859_2", "cs", "iso8859-2"),
    (CZECH, "cp1250", "cs", "cp1250"),
    ("Sanayi ve Teknoloji Bakanlığı yapay zekâ alanında yeni bir araştırma stratejisi "
     "açıkladı; üniversitelere ayrılan bütçe iki katına çıkarılacak. " * 3, "cp1254", "tr",
     "cp1254"),
    # Another script: detection decides whatever the source's language says.
    ("Министерство науки объявило о новой программе финансирования исследований. " * 3,
     "cp1251", "en", "cp1251"),
    ("Министерство науки объявило о новой программе финансирования исследований. " * 3,
     "koi8_r", "pl", "koi8-r"),
])
def test_decode_html_undeclared_with_the_source_language(text: str, codec: str,
                                                          language: str | None,
                                                          expected: str) -> None:
    body = f"<html><body><p>{text}</p></body></html>".encode(codec)
    assert decode_html(body, {"Content-Type": "text/html"}, language) == (
        f"<html><body><p>{text}</p></body></html>", expected)


def test_decode_html_detects_long_undeclared_pages() -> None:
    """Detection reads a sample of a long page without splitting a double-byte character."""
    line = "<p>文部科学省は十四日、量子技術の研究開発を強化するため計画を発表した。</p>\n"
    body = (line * 3000).encode("shift_jis")
    assert len(body) > 200_000
    text, encoding = decode_html(body, {"Content-Type": "text/html"})
    assert (text, encoding) == (line * 3000, "cp932")


def test_garbage_bytes_never_raise() -> None:
    body = bytes(range(256)) * 40
    text, encoding = decode_html(body, None)
    assert text and encoding
    article = extract_article(body, "https://news.example/binary")
    assert article.text == "" or isinstance(article.text, str)
    assert article.date_source == "fetched"


def test_unreadable_feed_date_falls_back_to_the_page() -> None:
    spec = json.loads((PAGES / "meta_date.expected.json").read_text("utf-8"))
    body = (PAGES / "meta_date.html").read_bytes()
    article = extract_article(body, spec["url"], feed_date="sometime last week")
    assert (article.published_at, article.date_source) == ("2023-11-02T16:45:00Z", "page")
    article = extract_article(body, spec["url"], feed_date="2023-11-01T09:00:00+01:00")
    assert (article.published_at, article.date_source) == ("2023-11-01T08:00:00Z", "feed")


def test_mangled_pages_never_raise() -> None:
    """Fuzz (fixed seed): cut, flipped and spliced pages, lying charsets; always an Article."""
    rng = random.Random(11)
    pages = [p.read_bytes() for p in sorted(PAGES.glob("*.html"))]
    splices = [b"<", b">", b"&", b"\x00", b"<![CDATA[", b"<?xml encoding='utf-16'?>",
               b"<meta charset=utf-16>", b"\xff\xfe", b"<script>", b"</html>", b"\x01"]
    for _ in range(25):
        body = mangle(rng, rng.choice(pages), splices, max_cut=80)
        charset = rng.choice(["utf-8", "bogus", "utf-16", "shift_jis", ""])
        article = extract_article(body, "https://fuzz.example/a",
                                  {"Content-Type": f"text/html; charset={charset}"})
        assert ISO_UTC.match(article.published_at)
        assert article.content_hash == content_hash(article.text)
