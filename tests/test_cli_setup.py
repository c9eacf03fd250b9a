"""`stiwatch init`, `sources sync|list|check`, `schema`: through click's runner and a subprocess."""

from __future__ import annotations

import json
import socket
from pathlib import Path
import shutil
import sqlite3
import subprocess
import sys
import tomllib

from click.testing import CliRunner
import pytest

import db
from conftest import FIXTURES, REPO
from stiwatch.cli import cli
from crawler.registry import load_registry
from db.docs import markdown, undocumented

VALID = FIXTURES / "registry" / "valid"
INVALID = FIXTURES / "registry" / "invalid"


def test_init_creates_the_store_and_syncs_the_bundled_registry(stiwatch, db_path: Path):
    result = stiwatch("init")
    assert result.exit_code == 0, result.output
    bundled = load_registry().sources
    assert f"Created {db_path}" in result.stdout
    assert f"Synced {len(bundled)} sources" in result.stdout
    with db.open_store(db_path) as store:
        assert len(store.list_sources()) == len(bundled)
        assert store.label_names("area")["open_science"] == "Open science"
    again = stiwatch("init")
    assert again.exit_code == 0 and f"Opened {db_path}" in again.stdout
    assert "0 added, 0 updated, 0 disabled" in again.stdout


def test_init_asks_for_a_contact_before_the_first_crawl_sends_none(stiwatch, db_path: Path):
    """Without `contact`, the User-Agent names no one a site's owner can reach: init says so
    on stderr (stdout stays the setup's report); with it set, nothing."""
    bare = stiwatch("init")
    assert bare.exit_code == 0
    assert "names no one to contact: set `contact`" in bare.stderr
    assert "set `contact`" not in bare.stdout
    again = stiwatch("init", env={"STIWATCH_CONTACT": "intl@agency.example"})
    assert again.exit_code == 0 and "set `contact`" not in again.output


def test_init_with_a_given_registry_and_quiet(stiwatch, db_path: Path):
    result = stiwatch("--quiet", "init", "--sources", str(VALID / "all_kinds.toml"))
    assert result.exit_code == 0 and result.output == ""
    with db.open_store(db_path) as store:
        assert [s["id"] for s in store.list_sources(enabled_only=True)] == ["ec-rtd", "oecd-sti"]


def test_init_again_keeps_the_operators_registry(stiwatch, db_path: Path, tmp_path: Path):
    """The upgrade steps run `init` again: a store fed from the operator's own file must not
    be swapped for the bundled sources; the `sources` setting names the file to sync."""
    own = tmp_path / "ours.toml"
    own.write_text((VALID / "minimal.toml").read_text().replace('"nsf-news"', '"our-agency"'))
    assert stiwatch("init", "--sources", str(own)).exit_code == 0
    again = stiwatch("init")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[1] == (
        "Kept the store's registry (1 enabled source is not in the bundled one, e.g. "
        "our-agency); sync a file with --sources FILE or the `sources` setting.")
    with db.open_store(db_path) as store:
        assert [s["id"] for s in store.list_sources(enabled_only=True)] == ["our-agency"]
    setting = stiwatch("init", env={"STIWATCH_SOURCES": str(VALID / "minimal.toml")})
    assert setting.exit_code == 0, setting.output
    assert "1 added, 0 updated, 1 disabled" in setting.stdout
    with db.open_store(db_path) as store:
        assert [s["id"] for s in store.list_sources(enabled_only=True)] == ["nsf-news"]
    # a file the setting names that is gone: the error says the setting named it
    gone = stiwatch("init", env={"STIWATCH_SOURCES": str(tmp_path / "gone.toml")})
    assert gone.exit_code == 2
    assert gone.output.splitlines() == [
        f"Error: {tmp_path / 'gone.toml'}: no such file (sources is set by env STIWATCH_SOURCES)"]


def test_invalid_registry_exits_2_with_one_line_per_problem_and_writes_nothing(
        stiwatch, db_path: Path):
    path = INVALID / "many_problems.toml"
    result = stiwatch("init", "--sources", str(path))
    assert result.exit_code == 2
    expected = path.with_suffix(".expected").read_text().strip().replace("{file}", str(path))
    assert result.stderr.splitlines() == [f"Error: {line}" for line in expected.splitlines()]
    assert not db_path.exists()
    # An existing store is left exactly as it was.
    assert stiwatch("init", "--sources", str(VALID / "minimal.toml")).exit_code == 0
    before = db_path.read_bytes()
    result = stiwatch("sources", "sync", str(INVALID / "duplicate_id.toml"))
    assert result.exit_code == 2 and "duplicate id, first used on line 2" in result.stderr
    assert db_path.read_bytes() == before


def test_two_enabled_sources_with_one_url_are_refused_and_nothing_is_written(
        stiwatch, db_path: Path):
    """Synced silently, they crawled one feed twice, each article stored under whichever
    source read it first."""
    assert stiwatch("init", "--sources", str(VALID / "minimal.toml")).exit_code == 0
    before = db_path.read_bytes()
    path = INVALID / "duplicate_url.toml"
    result = stiwatch("sources", "sync", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}:24: source 'nsf-all': field 'url': same url as source 'nsf-news' "
        "(line 4): it would be crawled twice, each article stored under whichever source read "
        "it first; keep one (or set enabled = false on the other)\n")
    assert db_path.read_bytes() == before


def test_sources_sync_disables_what_left_the_file(stiwatch, db_path: Path):
    stiwatch("init", "--sources", str(VALID / "all_kinds.toml"))
    result = stiwatch("sources", "sync", str(VALID / "minimal.toml"), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["added"] == ["nsf-news"]
    assert sorted(report["disabled"]) == ["ec-rtd", "oecd-sti"]  # jst-news was already disabled
    listed = json.loads(stiwatch("sources", "list", "--json").stdout)
    assert {s["id"]: s["enabled"] for s in listed} == {
        "ec-rtd": False, "jst-news": False, "nsf-news": True, "oecd-sti": False}
    table = stiwatch("sources", "list", "--enabled").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "KIND", "COUNTRY"]
    assert [line.split()[0] for line in table[1:]] == ["nsf-news"]
    # synced without --json, the user who meant to add one source learns what to do
    stiwatch("-q", "sources", "sync", str(VALID / "all_kinds.toml"))
    said = stiwatch("sources", "sync", str(VALID / "minimal.toml"))
    assert said.exit_code == 0, said.output
    from crawler.registry import bundled_registry_path
    assert said.stdout.splitlines()[-1] == (
        f"Sources not in {VALID / 'minimal.toml'} are disabled (their items stay): the file is "
        "the whole registry. To add sources, add them to the file you synced before (the "
        f"bundled one is {bundled_registry_path()}) and sync it again.")
    # nothing disabled, nothing said
    same = stiwatch("sources", "sync", str(VALID / "minimal.toml"))
    assert "Sources not in" not in same.stdout


def test_sync_names_a_few_of_many_disabled_sources_and_json_names_them_all(
        stiwatch, tmp_path: Path):
    """Syncing a file of one's own over the bundled registry printed all 85 disabled ids on
    one line, some 2,000 characters wide."""
    bundled = [s["id"] for s in load_registry().sources]
    mine = tmp_path / "mine.toml"
    mine.write_text('[[source]]\nid = "my-feed"\nname = "Mine"\n'
                    'url = "https://example.org/feed.xml"\nkind = "feed"\ncountry = "US"\n'
                    'language = "en"\norg_type = "news"\n', encoding="utf-8")
    stiwatch("-q", "init")

    said = stiwatch("sources", "sync", str(mine))

    assert said.exit_code == 0, said.output
    lines = said.stdout.splitlines()
    assert lines[:2] == [
        "added: my-feed",
        f"disabled ({len(bundled)}): {', '.join(bundled[:5])}, and {len(bundled) - 5} more"]
    assert lines[2] == f"1 added, 0 updated, 0 unchanged, {len(bundled)} disabled."
    assert lines[3] == ("(`stiwatch sources list` shows every source and whether it is "
                        "enabled; `sources sync --json` names every source a sync changes.)")
    assert max(len(line) for line in lines[:3]) < 200
    # --json still names every one
    stiwatch("-q", "sources", "sync", str(REPO / "crawler" / "sources.toml"))
    report = json.loads(stiwatch("sources", "sync", str(mine), "--json").stdout)
    assert report["disabled"] == bundled
    # a few are named whole, with no hint
    stiwatch("-q", "sources", "sync", str(VALID / "all_kinds.toml"))
    lines = stiwatch("sources", "sync", str(VALID / "minimal.toml")).stdout.splitlines()
    [named] = [line for line in lines if line.startswith("disabled")]
    assert sorted(named.removeprefix("disabled: ").split(", ")) == ["ec-rtd", "oecd-sti"]
    assert not any(line.startswith("(`stiwatch sources list`") for line in lines)


def test_sources_check_reports_each_status_and_exits_1_on_failure(
        stiwatch, http_server, tmp_path: Path):
    (http_server.root / "feed.xml").write_text("<rss version='2.0'><channel/></rss>")
    # as `python -m http.server` answers: its own reason phrase on the status line
    http_server.route("/missing.xml")(lambda handler: handler.send_error(404, "File not found"))
    registry = tmp_path / "check.toml"
    registry.write_text("".join(
        f'[[source]]\nid = "{sid}"\nname = "{sid}"\nurl = "{url}"\nkind = "feed"\n'
        f'country = "US"\nlanguage = "en"\norg_type = "news"\n\n'
        for sid, url in [("up", http_server.url("/feed.xml")),
                         ("gone", http_server.url("/missing.xml")),
                         ("refused", "http://127.0.0.1:9/feed.xml")]))
    stiwatch("init", "--sources", str(registry))
    result = stiwatch("sources", "check", "--json", "--timeout", "5")
    assert result.exit_code == 1
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["up"]["status"] == 200 and rows["up"]["ok"]
    assert rows["gone"]["status"] == 404 and not rows["gone"]["ok"]
    # in the crawl's words (the standard phrase), not the server's ("File not found")
    assert rows["gone"]["error"] == "HTTP 404 Not Found"
    stiwatch("-q", "crawl", "--source", "gone")
    crawled = {r["id"]: r for r in json.loads(stiwatch("sources", "list", "--json").stdout)}
    assert crawled["gone"]["last_error"] == rows["gone"]["error"]
    assert rows["refused"]["status"] is None and "(connection refused)" in rows["refused"]["error"]
    user_agents = {r.headers["user-agent"] for r in http_server.requests}
    assert len(user_agents) == 1 and user_agents.pop().startswith("stiwatch/")
    ok_only = stiwatch("sources", "check", "--source", "up")
    assert ok_only.exit_code == 0 and "1 of 1 source answered and can be crawled" in ok_only.stdout


def test_sources_check_reads_each_listing_as_its_kind(stiwatch, http_server, tmp_path: Path,
                                                     db_path: Path):
    """A newcomer's registry: a feed URL that is the newsroom's web page, a listing selector
    that matches nothing, a sitemap URL that is a web page. Each answers 200; `check` used to
    call them all fine, and the first crawl then stored nothing."""
    from crawlsite import announce_feed, build_site, registry

    base = build_site(http_server)
    announce_feed(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "feed", "kind": "feed", "url": f"{base}/feed.xml"},
        {"id": "listing", "kind": "html", "url": f"{base}/listing.html", "links": "ul.news a"},
        {"id": "sitemap", "kind": "sitemap", "url": f"{base}/sitemap_news.xml"},
        {"id": "feed-is-page", "kind": "feed", "url": f"{base}/listing.html"},
        {"id": "no-links", "kind": "html", "url": f"{base}/listing.html",
         "links": "div.press-releases h3 a"},
        {"id": "sitemap-is-page", "kind": "sitemap", "url": f"{base}/listing.html"},
        {"id": "gzipped", "kind": "feed", "url": f"{base}/gzipped.xml"},
        # The right URL with the wrong kind.
        {"id": "sitemap-as-feed", "kind": "feed", "url": f"{base}/sitemap_news.xml"},
        {"id": "feed-as-sitemap", "kind": "sitemap", "url": f"{base}/feed.xml"},
        {"id": "feed-as-page", "kind": "html", "url": f"{base}/feed.xml", "links": "item a"},
        # Answers 200, but the site's robots.txt (Disallow: /private/) keeps the crawl out.
        {"id": "forbidden", "kind": "feed", "url": f"{base}/private/feed.xml"}])
    (http_server.root / "private" / "feed.xml").write_bytes(
        (http_server.root / "feed.xml").read_bytes())
    # Compressed though not asked for, as some CDNs do: the crawler reads it.
    import gzip

    feed = gzip.compress((http_server.root / "feed.xml").read_bytes())
    http_server.route("/gzipped.xml")(lambda handler: handler.send_body(
        200, feed, "application/rss+xml", headers={"Content-Encoding": "gzip"}))
    # Written to the store as they are: several of these sources share a URL (one document
    # read as each kind), which `sources sync` refuses, as a crawl would read it twice.

    with db.open_store(db_path, create=True) as store:
        store.sync_sources(tomllib.loads(reg.read_text())["source"])

    result = stiwatch("sources", "check", "--json")

    assert result.exit_code == 1
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert {i: rows[i]["found"] for i in ("feed", "listing", "sitemap", "gzipped")} == {
        "feed": "4 entries", "listing": "3 article links",
        "sitemap": "2 URLs of the last 30 days", "gzipped": "4 entries"}
    assert all(rows[i]["ok"] for i in ("feed", "listing", "sitemap", "gzipped"))
    assert rows["feed-is-page"]["error"] == (
        f"The document at {base}/listing.html is not an RSS or Atom feed: it is an HTML page "
        f"titled 'News | Ministry of Science', which names its feed: {base}/feed.xml (make "
        "that the source's url).")
    assert rows["no-links"]["error"] == (
        f"The listing page {base}/listing.html: the links selector 'div.press-releases h3 a' "
        "matched no article links.")
    assert rows["sitemap-is-page"]["error"] == (
        f"The document at {base}/listing.html is not an XML sitemap (it is an HTML page: a page "
        'that lists articles is kind = "html", with a links selector).')
    assert not any(rows[i]["ok"] for i in ("feed-is-page", "no-links", "sitemap-is-page"))
    assert rows["sitemap-as-feed"]["error"].endswith(
        'is not an RSS or Atom feed (it is an XML sitemap: kind = "sitemap").')
    assert rows["feed-as-sitemap"]["error"] == (
        f'The document at {base}/feed.xml is not an XML sitemap (it is an RSS or Atom feed: '
        'kind = "feed").')
    assert rows["forbidden"]["error"] == (
        f"forbidden by {base}/robots.txt (obey_robots_txt is on)")
    assert rows["feed-as-page"]["error"] == (
        f"The listing page {base}/feed.xml: the links selector 'item a' matched no article "
        'links (it is an RSS or Atom feed: kind = "feed").')

    table = stiwatch("sources", "check").stdout.splitlines()
    # The reason is printed whole: its end says what to fix.
    assert any(line.startswith("feed-is-page") and line.endswith("(make that the source's url).")
               for line in table)
    assert table[-1] == "4 of 11 sources answered and can be crawled."


def test_check_and_crawl_judge_a_links_selector_that_matches_nothing_alike(
        stiwatch, http_server, tmp_path: Path, db_path: Path):
    """A listing page whose links selector matches nothing (the site was redesigned, or the
    selector is a typo): `check` failed it while `crawl` called it ok with a note, so a
    source that will never store anything stayed out of `status`'s failing sources."""
    from crawlsite import FAST, build_site, registry

    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "listing", "kind": "html", "url": f"{base}/listing.html", "links": "ul.news a"},
        {"id": "no-links", "kind": "html", "url": f"{base}/listing.html?v=2",
         "links": "div.press-releases h3 a"}])
    stiwatch("-q", "sources", "sync", str(reg))
    said = ("The listing page {}/listing.html?v=2: the links selector 'div.press-releases h3 "
            "a' matched no article links.").format(base)

    checked = stiwatch("sources", "check", "--json")
    crawled = stiwatch("crawl", "--json", env=FAST)

    assert checked.exit_code == 1
    check = {r["id"]: r for r in json.loads(checked.stdout)}
    assert check["listing"]["ok"] and not check["no-links"]["ok"]
    assert check["no-links"]["error"] == said
    assert crawled.exit_code == 0, crawled.output  # the other source was crawled
    crawl = {s["id"]: s for s in json.loads(crawled.stdout)["sources"]}
    assert crawl["listing"]["status"] == "ok" and crawl["no-links"]["status"] == "failed"
    health = {r["id"]: r for r in json.loads(stiwatch("sources", "list", "--json").stdout)}
    assert health["no-links"]["last_error"] == said and health["no-links"]["last_flag"] is None
    assert health["no-links"]["consecutive_failures"] == 1
    status = json.loads(stiwatch("status", "--json").stdout)
    assert [s["id"] for s in status["failing_sources"]] == ["no-links"]
    text = stiwatch("sources", "check").stdout.splitlines()
    assert text[-1] == "1 of 2 sources answered and can be crawled."
    assert any(line.startswith("no-links") and line.endswith(said) for line in text)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_sources_check_refuses_a_timeout_that_cannot_work(stiwatch, timeout: str):
    stiwatch("init", "--sources", str(VALID / "minimal.toml"))
    result = stiwatch("sources", "check", "--timeout", timeout)
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.stderr
    assert result.stdout == ""  # no source was requested, none reported failed


def test_sources_check_reads_robots_txt_as_the_crawler_does(stiwatch, http_server,
                                                           tmp_path: Path):
    """A robots.txt that answers a server error keeps the whole site from being crawled (RFC
    9309): `check` said the feed answered, and every crawl then failed."""
    from crawlsite import build_site, registry

    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "feed", "kind": "feed", "url": f"{base}/feed.xml"}])
    stiwatch("sources", "sync", str(reg))
    http_server.route("/robots.txt")(lambda handler: handler.send_body(503, b"busy"))

    result = stiwatch("sources", "check", "--json")

    assert result.exit_code == 1
    [row] = json.loads(result.stdout)
    assert row["error"] == ("robots.txt could not be fetched (HTTP 503 Service Unavailable): "
                            "the site is not crawled until it can be")
    result = stiwatch("sources", "check", "--json", env={"STIWATCH_OBEY_ROBOTS_TXT": "false"})
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["found"] == "4 entries"


def test_sources_check_names_a_refused_connection_as_the_crawl_does(stiwatch, tmp_path: Path):
    """`check` said `[Errno 111] Connection refused` (or `ConnectionRefusedError: ...`) where
    the crawl's last_error says `connection refused`."""
    from crawlsite import registry

    with socket.socket() as closed:  # a port nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    reg = registry(tmp_path / "sources.toml", [
        {"id": "feed", "kind": "feed", "url": f"http://127.0.0.1:{port}/feed.xml"}])
    stiwatch("sources", "sync", str(reg))

    result = stiwatch("sources", "check", "--json")
    assert result.exit_code == 1
    [row] = json.loads(result.stdout)
    assert row["error"] == ("robots.txt could not be fetched (connection refused): the site is "
                            "not crawled until it can be")
    result = stiwatch("sources", "check", "--json", env={"STIWATCH_OBEY_ROBOTS_TXT": "false"})
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["error"] == "connection refused"


def test_sources_check_reads_robots_txt_for_the_crawls_own_user_agent(stiwatch, http_server,
                                                                       tmp_path: Path):
    """`check` matched robots.txt against the crawler's default token whatever
    STIWATCH_SCRAPY_SETTINGS told the crawl to be: it reported a source refused that the crawl
    reads, or fine where the crawl is refused."""
    from crawlsite import build_site, registry

    base = build_site(http_server)
    reg = registry(tmp_path / "sources.toml", [
        {"id": "feed", "kind": "feed", "url": f"{base}/feed.xml"}])
    stiwatch("sources", "sync", str(reg))
    (http_server.root / "robots.txt").write_text(
        "User-agent: stiwatch\nDisallow: /\n\nUser-agent: *\nAllow: /\n")

    refused = stiwatch("sources", "check", "--json")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)[0]["error"] == (
        f"forbidden by {base}/robots.txt (obey_robots_txt is on)")
    other = {"STIWATCH_SCRAPY_SETTINGS": json.dumps({"ROBOTSTXT_USER_AGENT": "otherbot"})}
    allowed = stiwatch("sources", "check", "--json", env=other)
    assert allowed.exit_code == 0 and json.loads(allowed.stdout)[0]["found"] == "4 entries"
    broken = stiwatch("sources", "check", env={"STIWATCH_SCRAPY_SETTINGS": "{"})
    assert broken.exit_code == 2
    assert broken.stderr.startswith("Error: STIWATCH_SCRAPY_SETTINGS is not valid JSON: ")


def test_sources_check_without_sources_says_so(stiwatch, db_path: Path):
    """It printed "0 of 0 sources answered" and exited 0, as if all were well."""
    stiwatch("subscribers", "add", "a@example.org")  # a store, without sources
    result = stiwatch("sources", "check")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {db_path}: no enabled sources to check (run `stiwatch "
                             "init`, or `stiwatch sources sync FILE`)\n")


def test_unknown_source_is_a_clear_error(stiwatch):
    stiwatch("init", "--sources", str(VALID / "minimal.toml"))
    result = stiwatch("sources", "check", "--source", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: no source with id 'nope'"
    # An id written with _ or in capitals, as a newcomer types it from the source's name.
    for typed in ("nsf_news", "NSF-News"):
        result = stiwatch("crawl", "--source", typed)
        assert result.exit_code == 2
        assert result.stderr == f"Error: no source with id {typed!r} (did you mean 'nsf-news'?)\n"


def test_a_newer_database_is_refused_by_every_command(stiwatch, db_path: Path):
    with db.open_store(db_path) as store:
        store.conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    result = stiwatch("sources", "list")
    assert result.exit_code == 2
    assert "schema version 999" in result.stderr and "upgrade stiwatch" in result.stderr


# Every command that only works on an existing store; `serve` is left out (it starts a server
# when it succeeds) but opens the store as `search` does.
NEEDS_A_STORE = [
    ["subscribers", "list"], ["subscribers", "remove", "a@example.org"],
    ["sources", "list"], ["sources", "check"], ["trends"],
    ["digest", "status"], ["digest", "preview", "--week", "2026-W47"],
    ["digest", "send", "--week", "2026-W47"], ["classify"], ["tag", "1"],
    ["search", "quantum"], ["status"], ["export", "--format", "csv"], ["backup", "copy.db"],
]


def _errors(output: str) -> list[str]:
    """Every line printed, having checked there is no traceback: the error must be the only
    one (`classify` used to say which classifier it loaded before refusing the path)."""
    assert "Traceback" not in output
    return output.splitlines()


@pytest.mark.parametrize("args", NEEDS_A_STORE, ids=" ".join)
def test_a_mistyped_db_path_is_refused_not_created(args, tmp_path: Path):
    """`--db nope2.db` used to create an empty store and report nothing found, exit 0."""
    typo = tmp_path / "nope2.db"
    result = CliRunner().invoke(cli, ["--db", str(typo), *args])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        f"Error: {typo}: no such database (run `stiwatch init` and `stiwatch crawl`, "
        "or try `stiwatch demo`)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]
    assert list((tmp_path / "work").iterdir()) == []  # the working directory too


def _someone_elses_database(folder: Path) -> tuple[Path, bytes]:
    """An SQLite file of another application, and its bytes."""
    other = folder / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('not a stiwatch store')")
    conn.commit()
    conn.close()
    return other, other.read_bytes()


# Commands that create stores (init, subscribers add) do so only in a new or empty file.
CREATE_A_STORE = [["init"], ["subscribers", "add", "a@example.org"]]


@pytest.mark.parametrize("args", NEEDS_A_STORE + CREATE_A_STORE, ids=" ".join)
def test_an_sqlite_file_of_something_else_is_refused_and_left_alone(args, tmp_path: Path):
    other, before = _someone_elses_database(tmp_path)
    result = CliRunner().invoke(cli, ["--db", str(other), *args])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        f"Error: {other}: not a stiwatch database (it has none of stiwatch's tables)"]
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "other.db", "work"]
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("args", NEEDS_A_STORE + CREATE_A_STORE, ids=" ".join)
def test_a_folder_given_as_the_database_is_named_as_one(args, tmp_path: Path):
    """`--db /var/lib/stiwatch/` said "not a stiwatch database (disk I/O error)"."""
    folder = tmp_path / "var"
    folder.mkdir()
    result = CliRunner().invoke(cli, ["--db", str(folder), *args])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        f"Error: {folder}: is a folder, not a database file (give the file, e.g. "
        f"{folder / 'stiwatch.db'})"]
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("args", [
    *CREATE_A_STORE, ["crawl"], ["run"],
    ["sources", "sync", str(REPO / "crawler" / "sources.toml")]], ids=" ".join)
def test_a_store_is_never_made_in_a_folder_that_does_not_exist(args, tmp_path: Path):
    """`--db /var/lib/stiwatc/stiwatch.db init` (a typo) made the folder and a new, empty
    store in it, and every later run then read that one; the crawl's and run's lock file
    beside the database made the folder too."""
    database = tmp_path / "typo" / "stiwatch.db"
    result = CliRunner().invoke(cli, ["--db", str(database), *args])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        f"Error: {database}: no such folder {database.parent} (create it first; a database is "
        "never made in a folder made on the way, which a typo would name)"]
    assert not database.parent.exists()


def test_commands_that_set_a_store_up_still_create_it(stiwatch, db_path: Path):
    assert stiwatch("subscribers", "add", "a@example.org").exit_code == 0
    assert db_path.exists()
    with db.open_store(db_path) as store:
        assert [s["email"] for s in store.list_subscribers()] == ["a@example.org"]


def test_real_subprocess_uses_environment_database(tmp_path: Path):
    env_db = tmp_path / "from-env.db"
    command = shutil.which("stiwatch") or ""
    argv = [command] if command else [sys.executable, "-m", "stiwatch"]
    done = subprocess.run(
        [*argv, "init", "--sources", str(VALID / "minimal.toml")],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STIWATCH_DB": str(env_db)},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"Created {env_db}" in done.stdout
    done = subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(env_db), "sources",
                           "list", "--json"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert [s["id"] for s in json.loads(done.stdout)] == ["nsf-news"]


def test_schema_reference_is_complete_and_docs_are_current(stiwatch):
    with db.open_store(":memory:") as store:
        assert undocumented(store.conn) == []
        expected = markdown(store.conn)
    assert stiwatch("schema").stdout == expected
    assert (REPO / "docs" / "schema.md").read_text() == expected, (
        "docs/schema.md is stale: regenerate it with `stiwatch schema > docs/schema.md`")


def test_schema_reference_names_every_index(stiwatch):
    """An analyst writing SQL sees which columns are indexed, partial indexes with their
    condition (a query that does not repeat it cannot use them)."""
    text = stiwatch("schema").stdout
    with db.open_store(":memory:") as store:
        names = [row[0] for row in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
    assert names and all(f"`{name}` (" in text for name in names)
    assert "`tags_facet_value` (facet, value, item_id)." in text
    assert "`items_partial` (source_id) WHERE status = 'partial'" in text
    assert "Keys and indexes: primary key (email)." in text


def test_files_saved_with_a_utf8_bom_are_read(stiwatch, db_path: Path, tmp_path: Path):
    """Windows editors save UTF-8 with a byte-order mark; the settings file, the registry and
    a lexicon file were each refused as "invalid TOML: Invalid statement (at line 1, column
    1)", a line that looks right (subscribers import already read such CSV files)."""
    bom = "\ufeff"
    config = tmp_path / "stiwatch.toml"
    config.write_text(bom + 'contact = "intl@example.org"\n', encoding="utf-8")
    registry = tmp_path / "sources.toml"
    registry.write_text(bom + (VALID / "all_kinds.toml").read_text(), encoding="utf-8")
    lexicon = tmp_path / "domains.toml"
    lexicon.write_text(bom + '[domain.quantum]\nstrong = ["Quantum Valley"]\n', encoding="utf-8")
    result = stiwatch("--config", str(config), "init", "--sources", str(registry))
    assert result.exit_code == 0, result.output
    result = stiwatch("--config", str(config), "classify",
                      env={"STIWATCH_DOMAINS_LEXICON": str(lexicon)})
    assert result.exit_code == 0, result.output
    with db.open_store(db_path) as store:
        assert [s["id"] for s in store.list_sources(enabled_only=True)] == ["ec-rtd", "oecd-sti"]


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="watches the child's open files")
@pytest.mark.parametrize("command", ["status", "run"])
def test_sigterm_during_a_migration_says_so_and_leaves_the_store_intact(tmp_path: Path,
                                                                        command: str):
    """systemctl stop while an old store is being migrated: the step under way is rolled back
    and the command says so in one line, exit 143, where it ended without a word. The child
    is stopped inside the migration, waiting for the write lock this test holds. `run` does
    not then finish the migration to record the stopped run, which its message would belie."""
    import os
    import signal
    import time

    from db.schema import migrate

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, target=7)
    conn.execute("INSERT INTO sources (id, name, kind, url, added_at, updated_at) VALUES "
                 "('old', 'Old', 'feed', 'https://old.example/', '2026-01-01', '2026-01-01')")
    conn.executemany("INSERT INTO items (url, source_id, title, fetched_at) "
                     "VALUES (?, 'old', ?, '2026-01-01T00:00:00+00:00')",
                     [(f"https://old.example/{n}", f"研究 {n}") for n in range(100)])
    conn.execute("BEGIN IMMEDIATE")  # the lock a crawl would hold
    child = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(path), command],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(os.readlink(fd).endswith("old.db-wal")
                      for fd in Path(f"/proc/{child.pid}/fd").iterdir()
                      if fd.is_symlink()):
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        time.sleep(1.0)  # from its first read to waiting in migrate's BEGIN IMMEDIATE
        child.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    finally:
        conn.execute("ROLLBACK")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 143 and out == ""
    assert err == (f"Error: {path}: interrupted by SIGTERM while migrating to schema version "
                   f"{db.LATEST_VERSION}: rolled back, the file is intact at schema version 7; "
                   "run the command again to finish migrating\n")
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (7,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (100,)
    assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    conn.close()
    # Run again, it finishes migrating.
    again = subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(path), "status"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    with db.open_store(path, readonly=True) as store:
        assert store.schema_version == db.LATEST_VERSION
        assert store.scalar("SELECT count(*) FROM items") == 100


def test_a_new_store_whose_first_migration_was_interrupted_is_created_on_the_next_init(
        stiwatch, db_path: Path):
    """Stopped (a crash, Ctrl-C, SIGTERM) after migrate() committed its schema_migrations
    table but before migration 1, `stiwatch init` said "run the command again", and then
    refused the file for ever as "not a stiwatch database"."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    conn.close()
    result = stiwatch("init")
    assert result.exit_code == 0, result.output
    with db.open_store(db_path, readonly=True) as store:
        assert store.schema_version == db.LATEST_VERSION


def test_the_queries_the_schema_reference_gives_run_and_its_index_repair_works(stiwatch,
                                                                                db_path: Path):
    """Analysts copy the reference's SQL as it stands: each query runs and finds what it
    says, and its repair of the full-text indexes leaves search working."""
    from collections import Counter
    import re

    import analysts_store

    ids = analysts_store.build(db_path)
    with db.open_store(db_path) as store:
        [(cjk, _)] = store.save_items([{
            "url": "https://mext.example/ja", "source_id": "mext-news", "language": "ja",
            "title": "量子技術の研究開発を強化", "summary": "", "body": "",
            "published_at": analysts_store.ago(1)}])
    def search(query: str) -> list[int]:
        result = stiwatch("search", query, "--format", "json")
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.stdout)]

    words = ("strategy", "quantum -semiconductor", "量子技術", "研究")
    before = {query: search(query) for query in words}
    assert before["量子技術"] == [cjk] and len(before["strategy"]) >= 2
    text = (REPO / "docs" / "schema.md").read_text()
    queries = re.findall(r"`(SELECT\b[^`]*)`", text)
    [repair] = re.findall(r"`(INSERT INTO items_fts\(items_fts\) VALUES\('rebuild'\);[^`]*)`", text)
    assert len(queries) >= 4
    with sqlite3.connect(db_path) as conn:
        found = {query: conn.execute(query).fetchall() for query in queries}
        # the indexes out of step with the items
        conn.executescript("INSERT INTO items_fts(items_fts) VALUES('delete-all');"
                           "DELETE FROM items_fts_cjk;")
    conn.close()
    assert search("strategy") == [] and search("量子技術") == []
    with sqlite3.connect(db_path) as conn:
        conn.executescript(repair)
    conn.close()
    fts = next(q for q in queries if "items_fts MATCH" in q)
    assert {row[0] for row in found[fts]} == {ids["jp-quantum"]}  # 'quantum AND strategy'
    cjk_query = next(q for q in queries if "items_fts_cjk MATCH" in q)
    assert [row[0] for row in found[cjk_query]] == [cjk]
    facets = next(q for q in queries if "json_each(areas)" in q)
    originals = [tags for key, *_, tags in analysts_store.ITEMS if key != "eu-open-copy"]
    assert dict(found[facets]) == Counter(area for tags in originals for area in tags["area"])
    assert stiwatch("init").exit_code == 0  # "and open the store once with `stiwatch init`"
    assert {query: search(query) for query in words} == before
