"""Pages in legacy encodings, declared by HTTP header, by <meta>, or not at all, are stored as
correct Unicode after a real crawl (headers, and the source's language, travel from Scrapy to
the extractor)."""

from __future__ import annotations

from crawlsite import FAST, build_site, one_page_source, registry, rows

PAGE = """<!DOCTYPE html><html><head>{meta}<title>{title}</title></head><body>
<nav><a href="/">{nav}</a></nav><article><h1>{title}</h1>
<p>1. {para}</p><p>2. {para}</p><p>3. {para}</p></article></body></html>"""

CASES = {
    # path: (encoding, Content-Type header, meta tag, source's language, page's language,
    #        title, paragraph); each case is a source of its own
    "sjis": ("shift_jis", "text/html; charset=Shift_JIS", "", "en", "ja",
             "文部科学省、量子技術の研究開発戦略を公表",
             "文部科学省は、量子コンピュータと量子通信の研究開発を加速するための新しい戦略を公表した。"
             "大学と企業の共同研究を支援し、若手研究者の育成にも重点を置く。"),
    "cp1252": ("windows-1252", "text/html", '<meta charset="windows-1252">', "en", "fr",
               "Le ministère présente sa stratégie « science ouverte »",
               "Le ministère de l’Enseignement supérieur a présenté une stratégie nationale "
               "pour la science ouverte – données, publications et logiciels – avec un budget "
               "de 20 millions d’euros consacré aux infrastructures de recherche."),
    # Mislabelled: the header says UTF-8, the bytes are ISO-8859-1.
    "latin1": ("iso-8859-1", "text/html; charset=utf-8", "", "en", "de",
               "Ministerium fördert Forschung über künstliche Intelligenz",
               "Das Bundesministerium für Forschung fördert Hochschulen und außeruniversitäre "
               "Forschungseinrichtungen, die gemeinsam an künstlicher Intelligenz für die "
               "Medizin arbeiten; die Förderung läuft über fünf Jahre."),
    "euckr": ("euc-kr", "text/html", "", "en", "ko",
              "과학기술정보통신부, 인공지능 연구개발 지원 확대",
              "과학기술정보통신부는 인공지능 반도체와 양자 기술 연구개발에 대한 지원을 확대한다고 "
              "밝혔다. 대학과 연구기관의 공동 연구를 위한 새로운 사업도 시작한다."),
    # Declared nowhere (header without charset, no <meta>): windows-1252, the HTML standard's
    # fallback, not the Baltic code page a detector once preferred ("franēaise", "matičre").
    "cp1252-undeclared": ("windows-1252", "text/html", "", "fr", "fr",
                          "La coopération française en matière de recherche",
                          "Le ministère a présenté sa stratégie déjà annoncée ; dès l’été, les "
                          "établissements français recevront des dotations supplémentaires "
                          "pour la recherche sur l’intelligence artificielle."),
    # Declared nowhere, in a code page of Latin letters that the source's language implies.
    "latin2-undeclared": ("iso-8859-2", "text/html", "", "pl", "pl",
                          "Ministerstwo ogłasza nowy program finansowania badań",
                          "Ministerstwo Nauki ogłosiło w środę nowy program finansowania badań "
                          "naukowych. Środki zostaną przeznaczone na rozwój sztucznej "
                          "inteligencji i współpracę międzynarodową uczelni."),
    # Declared nowhere, from a source that says "en": detection still tells scripts apart.
    "cp1251-undeclared": ("windows-1251", "text/html", "", "en", "ru",
                          "Министерство объявило новую программу исследований",
                          "Министерство науки и высшего образования объявило о новой программе "
                          "финансирования научных исследований в области искусственного "
                          "интеллекта."),
    "sjis-undeclared": ("shift_jis", "text/html", "", "en", "ja",
                        "文科省、人工知能研究の新戦略を発表",
                        "文部科学省は、人工知能の研究開発を強化するため、大学や研究機関に重点的に"
                        "予算を配分する新たな戦略を発表した。"),
}


def test_legacy_encodings_are_decoded(stiwatch, http_server, tmp_path, db_path):
    build_site(http_server)
    sources = []
    for name, (encoding, content_type, meta, source_language, _, title, para) in CASES.items():
        body = PAGE.format(meta=meta, title=title, nav="Home", para=para).encode(encoding)
        sources.append(one_page_source(http_server, name, body, folder="enc",
                                       content_type=content_type, language=source_language))
    reg = registry(tmp_path / "sources.toml", sources)

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: r for r in rows(db_path, "SELECT * FROM items")}
    for name, (_, _, _, _, language, title, para) in CASES.items():
        item = stored[f"{name}.html"]
        assert item["status"] == "complete", (name, item["fetch_error"])
        assert item["title"] == title
        assert para[:40] in item["body"]
        assert item["language"] == language


FEED = """<?xml version="1.0"{declared}?><rss version="2.0"><channel><title>{channel}</title>
<link>{base}/</link><description>news</description>
<item><title>{title}</title><link>{base}/gone/{name}.html</link><description>{summary}</description>
<pubDate>Fri, 20 Nov 2026 01:00:00 +0900</pubDate></item></channel></rss>"""

FEEDS = {
    # path: (encoding, XML declaration's encoding, Content-Type, source language, title, summary)
    # No declaration anywhere: was read as ISO-8859-2 ("•ś•”‰ČŠwČ...").
    "sjis-undeclared": ("shift_jis", "", "application/rss+xml", "ja",
                        "文部科学省、量子技術の研究開発戦略を公表",
                        "文部科学省は、量子コンピュータの研究開発を加速する新しい戦略を公表した。"),
    # Right, but served as text/xml without a charset: flagged "declared as us-ascii".
    "eucjp-text-xml": ("euc_jp", "EUC-JP", "text/xml", "ja",
                       "科学研究費助成事業の制度改革について",
                       "文部科学省と日本学術振興会は、科研費の審査制度を見直すと発表した。"),
    # The server's default charset contradicts the feed's declaration.
    "gbk-header-utf8": ("gbk", "GBK", "application/rss+xml; charset=UTF-8", "zh",
                        "科技部发布关于加强基础研究的若干意见",
                        "科技部会同财政部印发意见，提出完善基础研究多元化投入机制。"),
    "euckr-undeclared": ("euc-kr", "", "application/rss+xml", "ko",
                         "과학기술정보통신부, 반도체 연구개발 예산 확대",
                         "과학기술정보통신부는 내년도 연구개발 예산안에서 반도체 투자를 확대한다고 밝혔다."),
}


def test_feeds_in_legacy_encodings_are_decoded(stiwatch, http_server, tmp_path, db_path):
    """Feed titles and summaries (what a partial item shows until its page can be read) in
    Shift_JIS, EUC-JP, GBK and EUC-KR, declared or not, are stored as written, and a feed that
    says its encoding right is not reported as malformed."""
    base = build_site(http_server)
    sources = []
    for name, (encoding, declared, content_type, language, title, summary) in FEEDS.items():
        body = FEED.format(declared=f' encoding="{declared}"' if declared else "",
                           channel="新着情報", base=base, name=name, title=title,
                           summary=summary).encode(encoding)

        def serve(handler, body=body, content_type=content_type):
            handler.send_body(200, body, content_type)

        http_server.routes[f"/feeds/{name}.xml"] = serve
        sources.append({"id": name, "kind": "feed", "url": f"{base}/feeds/{name}.xml",
                        "language": language})
    reg = registry(tmp_path / "sources.toml", sources)

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["source_id"]: r for r in rows(db_path, "SELECT * FROM items")}
    flags = {r["id"]: r["last_flag"] for r in rows(db_path, "SELECT * FROM sources")}
    for name, (*_, title, summary) in FEEDS.items():
        item = stored[name]
        assert (item["title"], item["summary"]) == (title, summary), name
        assert item["published_at"] == "2026-11-19T16:00:00Z", name
        assert not (flags[name] or "").startswith("malformed feed"), (name, flags[name])


SHORT = {
    # name: (the page's lang attribute or None, title, a paragraph under 80 characters,
    #        the language stored)
    "short-ja-lang-en": ("en", "文科省、AI研究拠点を公募", "文部科学省はAI研究拠点の公募を開始した。", "ja"),
    "short-ko-no-lang": (None, "과기정통부, 양자 R&D 공모", "과기정통부는 양자 연구개발 과제를 공모한다.", "ko"),
    "short-zh-lang-en": ("en", "科技部启动人工智能重大专项", "科技部启动人工智能重大专项申报。", "zh"),
    # Chinese characters alone are Japanese when the page says so
    "short-kanji-lang-ja": ("ja", "令和8年度研究提案募集", "令和8年度研究提案募集要項", "ja"),
    "short-en": ("en", "JST opens a call", "JST opens a call for AI research hubs.", "en"),
}


def test_short_cjk_pages_are_stored_in_their_script_language(stiwatch, http_server, tmp_path,
                                                             db_path):
    """A short article in kana, Hangul or Chinese characters from a source declared English
    (a Japanese agency's mixed news page, a template's lang="en") is stored in its own
    language: stored as English, the English-only model chose its areas."""
    build_site(http_server)
    sources = []
    for name, (lang, title, para, _) in SHORT.items():
        attribute = f' lang="{lang}"' if lang else ""
        body = (f'<!DOCTYPE html><html{attribute}><head><meta charset="utf-8"><title>{title}'
                f"</title></head><body><article><h1>{title}</h1><p>{para}</p></article>"
                "</body></html>").encode("utf-8")
        sources.append(one_page_source(http_server, name, body, folder="short", language="en",
                                       country="JP", org_type="funding_agency"))
    reg = registry(tmp_path / "sources.toml", sources)

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: r for r in rows(db_path, "SELECT * FROM items")}
    assert {name: stored[f"{name}.html"]["language"] for name in SHORT} == {
        name: expected for name, (*_, expected) in SHORT.items()}


def test_a_page_with_stray_control_characters_keeps_its_text(stiwatch, http_server, tmp_path,
                                                             db_path):
    """A BEL, ESC or form feed pasted into an article (XML forbids them) made the extractor
    find no text: the item was stored partial, without its body."""
    build_site(http_server)
    para = ("The ministry\x07 announced\x1b[0m a national strategy\x0c for research funding "
            "at universities\x08 and public research institutes over the next five years.")
    body = PAGE.format(meta='<meta charset="utf-8">', title="Ministry\x01 strategy", nav="Home",
                       para=para).encode("utf-8")
    reg = registry(tmp_path / "sources.toml", [one_page_source(http_server, "ctrl", body,
                                                               folder="ctrl")])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    [item] = rows(db_path, "SELECT * FROM items")
    assert item["status"] == "complete", item["fetch_error"]
    assert "The ministry announced[0m a national strategy for research funding" in item["body"]
    assert item["title"] == "Ministry strategy"


def test_a_short_page_takes_the_language_its_server_declares(stiwatch, http_server, tmp_path,
                                                             db_path):
    """Too short for language identification and no lang attribute: the Content-Language
    header says what it is, before the source's registry language (here English)."""
    build_site(http_server)
    body = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Neue Förderrichtlinie"
            "</title></head><body><article><p>Das Ministerium fördert Quantenforschung.</p>"
            "</article></body></html>").encode("utf-8")
    source = one_page_source(http_server, "kurz", body, folder="short", language="en")
    http_server.routes["/short/kurz.html"] = lambda handler: handler.send_body(
        200, body, "text/html; charset=utf-8", headers={"Content-Language": "de-DE"})
    reg = registry(tmp_path / "sources.toml", [source])

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    [item] = rows(db_path, "SELECT language FROM items")
    assert item["language"] == "de"
