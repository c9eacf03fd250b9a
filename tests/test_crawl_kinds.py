"""HTML listing and sitemap sources, crawled through `stiwatch crawl` into a real store."""

from __future__ import annotations

import json
from datetime import date, timedelta
import subprocess
import sys
from pathlib import Path

import pytest

from crawlsite import FAST, build_site, registry, rows

REPO = Path(__file__).resolve().parents[1]


def test_html_listing_follows_the_links_selector(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "ministry-news", "kind": "html", "url": f"{base}/listing.html",
         "links": "ul.news a"},
    ])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    assert (source["status"], source["new"], source["duplicates"]) == ("ok", 2, 1)
    items = {r["url"]: r for r in rows(db_path, "SELECT * FROM items")}
    # Only what the selector picks (not the nav, not the archive link); fragments dropped.
    assert set(items) == {f"{base}/news/quantum.html", f"{base}/news/budget.html",
                          f"{base}/mirror/quantum-copy.html"}
    assert not http_server.requested("/news/archive.html")
    assert not http_server.requested("/about.html")
    # The republished copy (same text, other boilerplate) points at whichever was stored first.
    copy = items[f"{base}/mirror/quantum-copy.html"]
    original = items[f"{base}/news/quantum.html"]
    first, second = sorted([copy, original], key=lambda item: item["id"])
    assert second["duplicate_of"] == first["id"] and first["duplicate_of"] is None
    assert items[f"{base}/news/budget.html"]["duplicate_of"] is None
    # No feed date: the page's own metadata dates the article.
    assert (original["published_at"], original["date_source"]) == ("2026-11-20T09:00:00Z", "page")
    assert all(item["status"] == "complete" for item in items.values())


def test_sitemap_index_and_news_sitemap_recent_entries_only(stiwatch, http_server, tmp_path,
                                                           db_path):
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "wire", "kind": "sitemap", "url": f"{base}/sitemap_index.xml", "org_type": "news"},
    ])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    [source] = json.loads(result.stdout)["sources"]
    assert (source["status"], source["new"]) == ("ok", 2)
    items = {r["url"]: r for r in rows(db_path, "SELECT * FROM items")}
    assert set(items) == {f"{base}/news/quantum.html", f"{base}/news/budget.html"}
    # The child sitemap last modified in 2009 and the 2015 news entry are not fetched.
    assert http_server.requested("/sitemap_news.xml")
    assert not http_server.requested("/sitemap_2009.xml")
    assert not http_server.requested("/news/flaky.html")
    # news:publication_date is the listing's date, trusted like a feed's.
    assert items[f"{base}/news/quantum.html"]["date_source"] == "feed"
    assert items[f"{base}/news/budget.html"]["date_source"] == "page"


def test_scrapy_list_from_the_repository_root():
    result = subprocess.run([sys.executable, "-m", "scrapy", "list"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["feed", "html", "sitemap", "sources"]


def test_article_known_under_its_listing_url_is_not_fetched_again(stiwatch, http_server,
                                                                  tmp_path, db_path):
    """A listing link that redirects is stored under the page's URL and remembered as an alias."""
    base = build_site(http_server)

    http_server.redirect("/go/budget", "/news/budget.html")

    reg = registry(tmp_path / "sources.toml", [
        {"id": "moved", "kind": "html", "url": f"{base}/moved.html", "links": "ul.news a"}])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    assert [r["url"] for r in rows(db_path, "SELECT url FROM items")] == \
        [f"{base}/news/budget.html"]

    listing = http_server.root / "moved.html"
    listing.write_text(listing.read_text() + "<!-- changed -->\n")
    first = len(http_server.requests)
    result = stiwatch("crawl", "--json", env=FAST)

    report = json.loads(result.stdout)["sources"][0]
    assert (report["status"], report["unchanged"], report["new"]) == ("ok", 1, 0)
    assert [r.path for r in http_server.requests[first:]] == ["/robots.txt", "/moved.html"]


def test_sitemap_index_that_lists_itself_ends(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    (http_server.root / "loop_index.xml").write_text(
        "<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        f"<sitemap><loc>{base}/loop_index.xml</loc></sitemap>"
        f"<sitemap><loc>{base}/sitemap_news.xml</loc></sitemap></sitemapindex>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "loop", "kind": "sitemap", "url": f"{base}/loop_index.xml"}])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert json.loads(result.stdout)["sources"][0]["new"] == 2
    assert len(http_server.requested("/loop_index.xml")) == 2  # the root, and itself once
    assert len(http_server.requested("/sitemap_news.xml")) == 1


def test_a_news_entry_published_long_ago_is_old_however_recently_modified(stiwatch, http_server,
                                                                         tmp_path, db_path):
    # news:publication_date says when the story came out; a <lastmod> of this week (a typo
    # fixed, a tag added) does not make a 2015 story news again.
    base = build_site(http_server)
    (http_server.root / "edited.xml").write_text(
        "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9' "
        "xmlns:news='http://www.google.com/schemas/sitemap-news/0.9'>"
        f"<url><loc>{base}/news/flaky.html</loc><lastmod>{date.today().isoformat()}</lastmod>"
        "<news:news><news:publication_date>2015-03-01T10:00:00Z</news:publication_date>"
        "</news:news></url>"
        f"<url><loc>{base}/news/budget.html</loc><lastmod>{date.today().isoformat()}</lastmod>"
        "</url></urlset>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "edited", "kind": "sitemap", "url": f"{base}/edited.xml"}])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert json.loads(result.stdout)["sources"][0]["new"] == 1
    assert [r["url"] for r in rows(db_path, "SELECT url FROM items")] == [
        f"{base}/news/budget.html"]
    assert not http_server.requested("/news/flaky.html")


def test_a_sitemap_lastmod_of_a_month_is_read_as_its_last_day(stiwatch, http_server, tmp_path,
                                                              db_path):
    # <lastmod>2026-10</lastmod> (W3C Datetime allows it) may mean October 31st: with a window
    # that reaches back into last month, last month's entry is recent, the month before's not.
    base = build_site(http_server)
    today = date.today()
    last_month = today.replace(day=1) - timedelta(days=1)
    before = last_month.replace(day=1) - timedelta(days=1)
    (http_server.root / "monthly.xml").write_text(
        "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
        f"<url><loc>{base}/news/budget.html</loc><lastmod>{last_month:%Y-%m}</lastmod></url>"
        f"<url><loc>{base}/news/flaky.html</loc><lastmod>{before:%Y-%m}</lastmod></url>"
        "</urlset>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "monthly", "kind": "sitemap", "url": f"{base}/monthly.xml"}])
    env = {**FAST, "STIWATCH_SITEMAP_MAX_AGE_DAYS": str(today.day + 1)}

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=env)

    assert result.exit_code == 0, result.output
    assert [r["url"] for r in rows(db_path, "SELECT url FROM items")] == [
        f"{base}/news/budget.html"]


def test_a_listing_page_that_links_to_itself_is_no_article(stiwatch, http_server, tmp_path,
                                                           db_path):
    # A newsroom's "page 1" link (or its own heading) matched by the links selector: the
    # listing page itself must not be stored as a story.
    base = build_site(http_server)
    (http_server.root / "news-list.html").write_text(
        "<html><body><ul class='news'>"
        f"<li><a href='{base}/news-list.html'>Latest news</a></li>"
        "<li><a href='/news/budget.html'>Budget</a></li></ul></body></html>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "paged", "kind": "html", "url": f"{base}/news-list.html", "links": "ul.news a"}])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"][0]["new"] == 1
    assert [r["url"] for r in rows(db_path, "SELECT url FROM items")] == [
        f"{base}/news/budget.html"]


def test_gzipped_sitemap_file(stiwatch, http_server, tmp_path, db_path):
    import gzip

    base = build_site(http_server)
    news = (http_server.root / "sitemap_news.xml").read_bytes()
    (http_server.root / "sitemap_news.xml.gz").write_bytes(gzip.compress(news))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "gz", "kind": "sitemap", "url": f"{base}/sitemap_news.xml.gz"}])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"][0]["new"] == 2


def test_the_sitemaps_of_an_index_are_fetched_conditionally(stiwatch, http_server, tmp_path,
                                                            db_path):
    # Only the source's own URL kept its validators: whenever the index changed (or it sent
    # none, as generated indexes do), every sitemap it names was downloaded in full again.
    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "wire", "kind": "sitemap", "url": f"{base}/sitemap_index.xml"}])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    index = http_server.root / "sitemap_index.xml"
    index.write_text(index.read_text().replace("</sitemapindex>", "<!-- 2 --></sitemapindex>"))

    second = json.loads(stiwatch("crawl", "--json", env=FAST).stdout)

    assert second["sources"][0]["status"] == "ok"
    [first_fetch, again] = http_server.requested("/sitemap_news.xml")
    assert "if-none-match" not in first_fetch.headers
    assert again.headers["if-none-match"]  # and the server answered 304
    assert second["cost"]["not_modified"] == 1

    # The sitemap changes: read in full, its new article stored.
    news = http_server.root / "sitemap_news.xml"
    news.write_text(news.read_text().replace(
        "</urlset>", f"<url><loc>{base}/news/flaky.html</loc></url></urlset>"))
    index.write_text(index.read_text().replace("<!-- 2 -->", "<!-- 3 -->"))
    third = json.loads(stiwatch("crawl", "--json", env=FAST).stdout)
    assert third["sources"][0]["new"] == 1
    assert len(http_server.requested("/sitemap_news.xml")) == 3

    # A sitemap the index no longer names is forgotten with its validators.
    (http_server.root / "other.xml").write_text(
        "<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'></urlset>")
    index.write_text(index.read_text().replace(f"{base}/sitemap_news.xml", f"{base}/other.xml"))
    stiwatch("crawl", env=FAST)
    assert [r["url"] for r in rows(db_path, "SELECT url FROM listing_validators")] == [
        f"{base}/other.xml"]


def test_a_sitemap_of_50000_urls_over_max_response_size_is_read(stiwatch, http_server, tmp_path,
                                                                db_path):
    # The sitemaps.org protocol allows 50,000 URLs and 50 MB uncompressed; max_response_size
    # (10 MB, for article pages) refused such a sitemap whole, the source failing every crawl.
    import gzip

    base = build_site(http_server)
    recent = {0: "news/quantum.html", 1: "news/huge.html"}
    old = "archive/2019/press-releases/science-and-technology-policy-item-{:05d}.html"
    entries = "".join(
        f"<url><loc>{base}/{recent.get(n, old.format(n))}"
        f"</loc><lastmod>{'2026-11-26' if n in recent else '2019-01-01T09:00:00+09:00'}"
        "</lastmod><changefreq>never</changefreq><priority>0.5</priority></url>\n"
        for n in range(50_000))
    body = ("<?xml version='1.0' encoding='UTF-8'?>\n<urlset xmlns="
            f"'http://www.sitemaps.org/schemas/sitemap/0.9'>\n{entries}</urlset>\n").encode()
    assert len(body) > 10 * 1024 * 1024
    (http_server.root / "big.xml").write_bytes(body)
    (http_server.root / "big.xml.gz").write_bytes(gzip.compress(body))  # served as is
    # An article page over the limit is still refused.
    http_server.routes["/news/huge.html"] = lambda handler: handler.send_body(
        200, b"<html><body><p>" + b"word " * (2_200_000) + b"</p></body></html>")
    reg = registry(tmp_path / "sources.toml", [
        {"id": "big", "kind": "sitemap", "url": f"{base}/big.xml"},
        {"id": "bigz", "kind": "sitemap", "url": f"{base}/big.xml.gz"}])

    result = stiwatch("crawl", "--sources", str(reg), "--json", env=FAST)

    report = {s["id"]: s for s in json.loads(result.stdout)["sources"]}
    assert result.exit_code == 0, result.output
    assert [report[s]["status"] for s in ("big", "bigz")] == ["ok", "ok"], report
    items = {r["url"]: r for r in rows(db_path, "SELECT url, status, fetch_error FROM items")}
    assert set(items) == {f"{base}/news/quantum.html", f"{base}/news/huge.html"}
    assert items[f"{base}/news/quantum.html"]["status"] == "complete"
    assert items[f"{base}/news/huge.html"]["fetch_error"] == (
        "response too large (over the 10,485,760 byte limit)")


def test_a_fetched_page_is_decoded_once_by_the_crawler(http_server):
    """Scrapy decoded each HTML page in full (response.text, its own charset detection) in
    the meta-refresh middleware, which never redirected (METAREFRESH_MAXDELAY 0), and again
    for an HTML listing's base URL, before the spider decoded the same bytes itself."""
    from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
    from scrapy.exceptions import NotConfigured
    from scrapy.http import HtmlResponse, Request
    from scrapy.settings import Settings
    from scrapy.utils.test import get_crawler

    from crawler.spiders.listings import html_listing

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    crawler = get_crawler(settings_dict={"METAREFRESH_ENABLED":
                                         settings.getbool("METAREFRESH_ENABLED")})
    with pytest.raises(NotConfigured):
        MetaRefreshMiddleware.from_crawler(crawler)

    class Counted(HtmlResponse):
        decoded = 0

        @property
        def text(self) -> str:
            Counted.decoded += 1
            return super().text

    page = (b"<html><head><base href='https://example.org/news/'></head><body>"
            b"<ul class='news'><li><a href='a.html'>A</a></li></ul></body></html>")
    url = "https://example.org/list/"
    response = Counted(url, body=page, request=Request(url))
    candidates, _, _ = html_listing({"id": "s", "links": "ul.news a"}, response)
    assert [c.url for c in candidates] == ["https://example.org/news/a.html"]  # <base> read
    assert Counted.decoded == 0


def test_a_meta_refresh_is_still_not_followed(stiwatch, http_server, tmp_path, db_path):
    base = build_site(http_server)
    page = (http_server.root / "news" / "budget.html").read_text()
    (http_server.root / "news" / "budget.html").write_text(page.replace(
        "<head>", "<head><meta http-equiv='refresh' content='0; url=/about.html'>", 1))
    reg = registry(tmp_path / "sources.toml", [
        {"id": "ministry-news", "kind": "html", "url": f"{base}/listing.html",
         "links": "ul.news a"}])
    assert stiwatch("crawl", "--sources", str(reg), env=FAST).exit_code == 0
    assert not http_server.requested("/about.html")
    [budget] = rows(db_path, "SELECT * FROM items WHERE url LIKE '%/news/budget.html'")
    assert budget["status"] == "complete"
