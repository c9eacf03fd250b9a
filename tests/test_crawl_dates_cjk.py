"""Publication dates written the Japanese and Chinese way in an article's text ("2026年11月20日",
full-width digits, the Japanese era "令和8年11月20日", a month "2026年10月") are read after a real
crawl, where they were stored as 1 January of the year or as the fetch time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from crawlsite import FAST, build_site, one_page_source, registry, rows

PAGE = """<!DOCTYPE html><html><head>{meta}<title>{title}</title></head><body>
<nav><a href="/">ホーム</a> | <a href="/about">組織案内</a></nav>
<article><h1>{title}</h1><p class="date">{date}</p>
<p>{para}</p><p>{para}</p><p>{para}</p></article>
<footer>Copyright © 2015 All Rights Reserved.</footer></body></html>"""

JA = ("文部科学省は、量子技術の研究開発を強化する新たな戦略を公表した。大学と国立研究開発法人の"
      "共同研究を支援し、若手研究者の育成と国際連携にも重点を置く。")
ZH = ("科技部会同财政部印发《关于加强基础研究的若干意见》，提出完善基础研究多元化投入机制，"
      "支持高校和科研院所开展自由探索，加强前沿领域布局。")

CASES = {
    # path: (encoding, meta, source language, date line, the day it means)
    "era": ("shift_jis", '<meta charset="shift_jis">', "ja", "令和8年11月20日", "2026-11-20"),
    "era-first-year": ("utf-8", '<meta charset="utf-8">', "ja", "掲載日：令和元年5月7日",
                       "2019-05-07"),
    "fullwidth": ("euc_jp", '<meta charset="euc-jp">', "ja", "２０２６年１１月１８日", "2026-11-18"),
    "zh": ("gbk", '<meta charset="gbk">', "zh", "发布时间：2026年11月19日", "2026-11-19"),
    # The abbreviated era of Japanese tables (htmldate said 8 November 2020), read from the
    # page's date element.
    "era-abbreviated": ("shift_jis", '<meta charset="shift_jis">', "ja", "更新日：R8.11.20",
                        "2026-11-20"),
    # A month alone is its first day (htmldate said 1 January).
    "month": ("utf-8", '<meta charset="utf-8">', "zh", "发布日期：2026年10月", "2026-10-01"),
    "era-month": ("utf-8", '<meta charset="utf-8">', "ja", "令和8年10月 発行", "2026-10-01"),
    # A fiscal year ("令和9年度") is no date, a deadline still to come is not the publication.
    "deadline": ("utf-8", '<meta charset="utf-8">', "ja",
                 "令和9年度公募（締切：{future}） 2026年11月17日 掲載", "2026-11-17"),
}


def test_cjk_dates_in_the_text_are_read(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    future = datetime.now(timezone.utc) + timedelta(days=60)
    future_ja = f"{future.year}年{future.month}月{future.day}日"
    sources = []
    for name, (encoding, meta, language, date, _) in CASES.items():
        para = ZH if language == "zh" else JA
        body = PAGE.format(meta=meta, title=f"{name} {para[:20]}", para=para,
                           date=date.format(future=future_ja)).encode(encoding, "xmlcharrefreplace")

        def serve(handler, body=body):
            handler.send_body(200, body, "text/html")

        http_server.routes[f"/dates/{name}.html"] = serve
        (http_server.root / f"list-{name}.html").write_text(
            f"<html><body><ul class='news'><li><a href='/dates/{name}.html'>{name}</a></li>"
            "</ul></body></html>")
        sources.append({"id": name, "kind": "html", "url": f"{base}/list-{name}.html",
                        "links": "ul.news a", "language": language, "country": "JP"})
    reg = registry(tmp_path / "sources.toml", sources)

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: r for r in rows(db_path, "SELECT * FROM items")}
    for name, (*_, day) in CASES.items():
        item = stored[f"{name}.html"]
        where = "page" if name == "era-abbreviated" else "text"
        assert (item["published_at"], item["date_source"]) == (f"{day}T12:00:00Z", where), name


def test_an_abbreviated_era_is_read_only_on_japanese_pages():
    from crawler.extract import extract_article

    english = ("<html><body><article><h1>Toolkit released</h1><p class='date'>Release R2.5.1</p>"
               + "<p>The new release of the research software adds features for scientists.</p>" * 3
               + "</article></body></html>")
    article = extract_article(english.encode(), "https://example.org/news/toolkit.html")
    assert article.date_source == "fetched"  # not 令和2年5月1日


ARTICLES = {
    # path: (source language, dateline, first paragraph, the day it means)
    "ja": ("ja", "掲載日：令和8年11月19日",
           "文部科学省と日本学術振興会は、科学研究費助成事業の審査制度を見直すと発表した。", "2026-11-19"),
    "zh": ("zh", "发布时间：2026年11月20日",
           "科技部会同财政部印发《关于加强基础研究的若干意见》，提出完善基础研究投入机制。", "2026-11-20"),
    "ko": ("ko", "2026년 11월 19일",
           "한국연구재단은 2027년도 기초연구사업 신규과제 공모를 시작한다고 밝혔다.", "2026-11-19"),
    "de": ("de", "Pressemitteilung Nr. 42 | 19. November 2026",
           "Die Deutsche Forschungsgemeinschaft richtet zwölf neue Sonderforschungsbereiche ein.",
           "2026-11-19"),
    "fr": ("fr", "Publié le 20 novembre 2026",
           "Le ministère lance un appel à projets pour la recherche en intelligence artificielle.",
           "2026-11-20"),
    "es": ("es", "20 de noviembre de 2026",
           "El Consejo de Ministros ha aprobado la Estrategia Española de Ciencia y Tecnología.",
           "2026-11-20"),
    "pt": ("pt", "19 de novembro de 2026",
           "O Ministério da Ciência anunciou um novo programa de bolsas para jovens cientistas.",
           "2026-11-19"),
}
SECOND = {"ja": "新制度は令和9年度の公募から適用する予定である。", "zh": "基金委还将加强科研诚信建设。",
          "ko": "신청은 12월 31일까지 온라인으로 접수한다.", "de": "Die Förderung läuft vier Jahre.",
          "fr": "Les projets seront évalués par l'ANR.", "es": "España aumentará su inversión.",
          "pt": "O Brasil fortalece a pesquisa."}


def test_datelines_in_other_languages_stay_out_of_the_body(stiwatch, http_server, tmp_path,
                                                            db_path):
    """The dateline the template puts above the article is no part of its body (search
    snippets and Datasette began with it in Japanese, Chinese, Korean, German, French,
    Spanish and Portuguese), and its date is the item's."""
    build_site(http_server)
    sources = []
    for name, (language, dateline, para, _) in ARTICLES.items():
        body = PAGE.format(meta='<meta charset="utf-8">', title=f"{name}: {para[:30]}",
                           date=dateline, para=para).replace(
            f"<p>{para}</p><p>{para}</p><p>{para}</p>",
            f"<p>{para}</p><p>{SECOND[name]}</p>").encode()
        sources.append(one_page_source(http_server, name, body, folder="lines",
                                       language=language))
    reg = registry(tmp_path / "sources.toml", sources)

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: r for r in rows(db_path, "SELECT * FROM items")}
    for name, (_, _, para, day) in ARTICLES.items():
        item = stored[f"{name}.html"]
        assert item["body"] == f"{para}\n{SECOND[name]}", name
        assert item["published_at"] == f"{day}T12:00:00Z", name


def test_a_date_without_a_time_is_that_day_for_readers_east_and_west(stiwatch, http_server,
                                                                     tmp_path, db_path):
    # <meta name="date" content="2026-11-23"> was stored as midnight UTC: 19:00 on the Sunday
    # in New York, so a Monday's story was dated the day before and counted in the week
    # before, in searches, in `status` and in the digest, for a reader west of UTC.
    import json

    today = datetime.now(timezone.utc).date()
    monday = today - timedelta(days=today.weekday() + 7)  # last week's Monday
    para = ("The ministry of science announced a programme for quantum research infrastructure "
            "at national laboratories and universities. ") * 4
    body = (f"<html lang='en'><head><meta name='date' content='{monday}'><title>Quantum "
            f"programme</title></head><body><article><h1>Quantum programme</h1><p>{para}</p>"
            "</article></body></html>").encode()
    build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [one_page_source(
        http_server, "dateonly", body, folder="news")])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    [item] = rows(db_path, "SELECT published_at, date_source FROM items")
    assert item == {"published_at": f"{monday}T12:00:00Z", "date_source": "page"}

    for zone in ("America/New_York", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles"):
        env = {"STIWATCH_TIMEZONE": zone}
        result = stiwatch("search", "quantum", "--since", str(monday), "--until", str(monday),
                          env=env)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1].split()[1] == str(monday), (zone, result.output)
        weeks = json.loads(stiwatch("status", "--json", env=env).output)["weeks"]
        assert {w["starts"]: w["items"] for w in weeks}[str(monday)] == 1, zone
