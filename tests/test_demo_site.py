"""The bundled demo site: its content is valid and rich enough, and it serves like a real site."""

from __future__ import annotations

from datetime import date
from pathlib import Path
import urllib.error
import urllib.request

import feedparser
import pytest

from classifier.taxonomy import load_taxonomy
from crawler.registry import dump_registry, load_registry
from stiwatch.demo import ContentError, build_site, load_content, manifest, serve

TODAY = date(2026, 11, 26)  # a Thursday: week 0 is partly published


def test_content_is_rich_enough_for_the_demo() -> None:
    sources = load_content()
    kinds = {s.kind for s in sources}
    articles = [a for s in sources for a in s.articles]
    weeks = {a.week for a in articles}
    assert len(sources) >= 6 and {"feed", "html"} <= kinds
    assert len(articles) >= 80
    assert len(weeks) >= 8
    assert len({s.country for s in sources if s.country}) >= 5


def test_expected_labels_use_the_taxonomy_ids() -> None:
    taxonomy = load_taxonomy()
    for source in load_content():
        for article in source.articles:
            exp = article.expected
            assert set(exp.areas) <= set(taxonomy.ids("area")), article.key
            assert set(exp.domains) <= set(taxonomy.ids("domain")), article.key


@pytest.mark.parametrize("broken, message", [
    ('kind = "ftp"', "kind 'ftp' is not one of"),
    ('week = -20', "week must be an integer in -8..0"),
])
def test_broken_content_names_the_file_and_field(tmp_path: Path, broken: str, message: str) -> None:
    original = (Path(load_content()[0].file)).read_text(encoding="utf-8")
    key = broken.split(" = ")[0]
    lines = original.splitlines()
    # Replace the first line that sets this key (source kind or the first article's week).
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
    lines[index] = broken
    bad = tmp_path / Path(load_content()[0].file).name
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ContentError, match=message) as info:
        load_content(tmp_path)
    assert bad.name in str(info.value)


def test_built_site_is_a_valid_registry_and_serves_real_http(tmp_path: Path) -> None:
    root = tmp_path / "site"
    with serve(root) as server:
        records = build_site(root, server.url, TODAY)
        registry_file = tmp_path / "sources.toml"
        registry_file.write_text(dump_registry(records), encoding="utf-8")
        assert len(load_registry(registry_file).sources) == len(records)

        feed_source = next(r for r in records if r["kind"] == "feed")
        with urllib.request.urlopen(feed_source["url"]) as response:
            body, etag = response.read(), response.headers["ETag"]
        parsed = feedparser.parse(body)
        assert not parsed.bozo and parsed.entries
        # A conditional GET with the validator costs a 304 and no body.
        request = urllib.request.Request(feed_source["url"], headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == 304

        with urllib.request.urlopen(server.url + "/robots.txt") as response:
            assert "Disallow: /private/" in response.read().decode()


def test_manifest_is_the_answer_key_and_not_served(tmp_path: Path) -> None:
    root = tmp_path / "site"
    key = manifest("http://demo.invalid", TODAY)
    assert len(key) >= 80
    assert all(row["url"].startswith("http://demo.invalid/") for row in key)
    build_site(root, "http://demo.invalid", TODAY)
    assert not any("manifest" in p.name for p in root.rglob("*"))


def test_rebuild_refuses_to_wipe_a_folder_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_site(tmp_path, "http://demo.invalid", TODAY)
    assert (tmp_path / "precious.txt").read_text() == "keep me"



def test_the_japanese_source_is_japanese_throughout_and_stays_out_of_model_training(
        tmp_path: Path) -> None:
    from stiwatch.demo.site import labelled_records

    root = tmp_path / "site"
    records = build_site(root, "http://demo.invalid", TODAY)
    record = next(r for r in records if r["language"] == "ja")
    assert (record["id"], record["country"], record["org_type"]) == ("jp-msti", "JP", "ministry")
    parsed = feedparser.parse((root / "msti" / "rss" / "houdou.xml").read_bytes())
    assert not parsed.bozo and parsed.feed.language == "ja"
    # week -1 (the digest's week, seen from Thursday 26 November), day 2
    quantum = next(e for e in parsed.entries if "量子技術" in e.title)
    assert quantum.published.startswith("Tue, 17 Nov 2026")
    page = (root / quantum.link.removeprefix("http://demo.invalid/")).read_text(encoding="utf-8")
    assert '<html lang="ja">' in page and "2026年11月17日" in page
    assert "量子暗号通信" in page

    # The trained models read English only: its articles are not their training news.
    english = {f"{s.id}/{a.slug}" for s in load_content() if s.language == "en"
               for a in s.articles if a.own_labels}
    assert {r["id"] for r in labelled_records()} == english
    assert not any(r["id"].startswith("jp-msti/") for r in labelled_records())
