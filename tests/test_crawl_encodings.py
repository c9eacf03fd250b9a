"""Pages in legacy encodings, declared by HTTP header, by <meta>, or not at all, are stored as
correct Unicode after a real crawl (headers travel from Scrapy to the extractor)."""

from __future__ import annotations

from crawlsite import FAST, build_site, registry, rows

PAGE = """<!DOCTYPE html><html><head>{meta}<title>{title}</title></head><body>
<nav><a href="/">{nav}</a></nav><article><h1>{title}</h1>
<p>1. {para}</p><p>2. {para}</p><p>3. {para}</p></article></body></html>"""

CASES = {
    # path: (encoding, Content-Type header, meta tag, language, title, paragraph)
    "sjis": ("shift_jis", "text/html; charset=Shift_JIS", "", "ja",
             "文部科学省、量子技術の研究開発戦略を公表",
             "文部科学省は、量子コンピュータと量子通信の研究開発を加速するための新しい戦略を公表した。"
             "大学と企業の共同研究を支援し、若手研究者の育成にも重点を置く。"),
    "cp1252": ("windows-1252", "text/html", '<meta charset="windows-1252">', "fr",
               "Le ministère présente sa stratégie « science ouverte »",
               "Le ministère de l’Enseignement supérieur a présenté une stratégie nationale "
               "pour la science ouverte – données, publications et logiciels – avec un budget "
               "de 20 millions d’euros consacré aux infrastructures de recherche."),
    # Mislabelled: the header says UTF-8, the bytes are ISO-8859-1.
    "latin1": ("iso-8859-1", "text/html; charset=utf-8", "", "de",
               "Ministerium fördert Forschung über künstliche Intelligenz",
               "Das Bundesministerium für Forschung fördert Hochschulen und außeruniversitäre "
               "Forschungseinrichtungen, die gemeinsam an künstlicher Intelligenz für die "
               "Medizin arbeiten; die Förderung läuft über fünf Jahre."),
    "euckr": ("euc-kr", "text/html", "", "ko",
              "과학기술정보통신부, 인공지능 연구개발 지원 확대",
              "과학기술정보통신부는 인공지능 반도체와 양자 기술 연구개발에 대한 지원을 확대한다고 "
              "밝혔다. 대학과 연구기관의 공동 연구를 위한 새로운 사업도 시작한다."),
}


def test_legacy_encodings_are_decoded(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    links = []
    for name, (encoding, content_type, meta, _, title, para) in CASES.items():
        body = PAGE.format(meta=meta, title=title, nav="Home", para=para).encode(encoding)

        def serve(handler, body=body, content_type=content_type):
            handler.send_body(200, body, content_type)

        http_server.routes[f"/enc/{name}.html"] = serve
        links.append(f'<li><a href="/enc/{name}.html">{name}</a></li>')
    (http_server.root / "encodings.html").write_text(
        f"<html><body><ul class='news'>{''.join(links)}</ul></body></html>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "encodings", "kind": "html", "url": f"{base}/encodings.html",
         "links": "ul.news a"}])

    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0

    stored = {r["url"].rsplit("/", 1)[1]: r for r in rows(db_path, "SELECT * FROM items")}
    for name, (_, _, _, language, title, para) in CASES.items():
        item = stored[f"{name}.html"]
        assert item["status"] == "complete", (name, item["fetch_error"])
        assert item["title"] == title
        assert para[:40] in item["body"]
        assert item["language"] == language
