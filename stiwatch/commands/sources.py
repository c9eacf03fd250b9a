"""`stiwatch sources`: sync, list and check the registry of crawled sources."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit
import zlib

import click

from crawler.registry import load_registry

from ..app import App, pass_app
from ..errors import UserError
from ..output import counted, display_width, echo_json, echo_table
from ..params import Seconds

LIST_WIDTH = 50
SYNC_NAMED = 5  # ids named per line of `sources sync` (added, updated, disabled); --json: all
HEALTH_COLUMNS = ["id", "kind", "country", "enabled", "items", "last_ok_at",
                  "consecutive_failures", "last_error", "last_flag"]


@click.group("sources")
def sources_group() -> None:
    """Manage the registry of sources (feeds, listing pages, sitemaps)."""


@sources_group.command("sync")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True,
              help="Print what changed as JSON, every id named.")
@pass_app
def sync_command(app: App, file: str, as_json: bool) -> None:
    """Validate a registry TOML file as a whole, then make the store match it.

    New sources are added, changed ones updated, and sources missing from FILE are disabled
    (never deleted: their items stay): FILE is the whole registry, so to add a source, add it
    to the file you synced before (a copy of the bundled crawler/sources.toml, or the
    demo's DIR/sources.toml) and sync that. An invalid file changes nothing: every problem is one
    line naming the file, line, source and field (exit status 2).

    Prints the ids of the sources added, updated and disabled: past 5 of one kind, the first 5
    and how many more (`--json` names every one; `stiwatch sources list` shows each source and
    whether it is enabled).

    \b
    FILE holds one [[source]] table per source (UTF-8):
      [[source]]
      id = "jst-press"                # unique: small letters, digits, -
      name = "JST: press releases"
      url = "https://www.jst.go.jp/rss/press.xml"   # feed, listing page or sitemap;
                                      # one enabled source per URL
      kind = "feed"                   # feed | html | sitemap
      country = "JP"                  # ISO 3166-1 alpha-2 (GB, not UK), EU or international
      language = "ja"                 # ISO 639-1 (ja, not jp)
      org_type = "funding_agency"     # ministry | funding_agency | research_org |
                                      # intergovernmental | news | academy | other
      # homepage = "https://www.jst.go.jp/"   # optional
      # links = "ul.news a"           # kind = "html" only: CSS selector of article links
      # enabled = false               # optional, default true

    \b
    Example:
      stiwatch sources sync my-sources.toml && stiwatch sources check
    """
    registry = load_registry(file)
    report = app.store(create=True).sync_sources(registry.sources)
    if as_json:
        echo_json(report.__dict__)
        return
    cut = False
    for label, ids in (("added", report.added), ("updated", report.updated),
                       ("disabled", report.disabled)):
        if len(ids) > SYNC_NAMED:
            # A file of one's own synced over the bundled registry disables 85 sources: their
            # ids on one line were 2,000 characters that buried the lines after them.
            cut = True
            app.echo(f"{label} ({len(ids)}): {', '.join(ids[:SYNC_NAMED])}, and "
                     f"{len(ids) - SYNC_NAMED} more")
        elif ids:
            app.echo(f"{label}: {', '.join(ids)}")
    app.echo(f"{len(report.added)} added, {len(report.updated)} updated, "
             f"{len(report.unchanged)} unchanged, {len(report.disabled)} disabled.")
    if cut:
        app.echo("(`stiwatch sources list` shows every source and whether it is enabled; "
                 "`sources sync --json` names every source a sync changes.)")
    if report.disabled:
        # An analyst adding one source syncs a file of that source alone, and every other
        # source stops being crawled: say why, and what to sync instead.
        from crawler.registry import bundled_registry_path

        app.echo(f"Sources not in {file} are disabled (their items stay): the file is the "
                 f"whole registry. To add sources, add them to the file you synced before "
                 f"(the bundled one is {bundled_registry_path()}) and sync it again.")


@sources_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print all columns as JSON.")
@click.option("--enabled", "enabled_only", is_flag=True, help="Only sources that are crawled.")
@pass_app
def list_command(app: App, as_json: bool, enabled_only: bool) -> None:
    """List sources with their health: last success, failures in a row, last error, and the
    last crawl's note on a source that worked (a malformed feed, a feed that moved, pages
    that could not be read)."""
    rows = app.existing_store().list_sources(enabled_only=enabled_only)
    for row in rows:
        row["enabled"] = bool(row["enabled"])
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, HEALTH_COLUMNS, max_width=LIST_WIDTH)
        if any(display_width(row[key] or "") > LIST_WIDTH for row in rows
               for key in ("last_error", "last_flag")):
            # A cut error hides its end, which says what to fix: say where it is whole.
            app.echo(f"(errors and notes cut at {LIST_WIDTH} characters: `stiwatch sources "
                     "list --json` shows them whole)")


def _network_reason(error: BaseException, timeout: float) -> str:
    """A failed request's cause in the words a crawl stores in `last_error` (crawler/spiders/
    base.py), not Python's (`[Errno 111] Connection refused`): check and crawl say one thing."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, TimeoutError):
        return f"no response within {timeout:g} s"
    return f"{type(reason).__name__}: {reason}"


def _http_error(status: int) -> str:
    """``HTTP 404 Not Found``: the standard reason phrase, as a crawl stores it in `last_error`,
    not the server's own (Python's http.server says "File not found"): check and crawl say one
    thing."""
    from crawler.middlewares import status_message

    return f"HTTP {status_message(status)}"


def _robots_problem(url: str, user_agent: str, agent: str, timeout: float) -> str | None:
    """Why a crawl that obeys robots.txt would not fetch ``url``, in the crawl's words, or None.

    As the crawler reads RFC 9309: a robots.txt that is missing (4xx) allows everything; one
    that answers a server error, 429 or nothing keeps the whole site from being crawled."""
    from protego import Protego

    parts = urlsplit(url)
    robots = f"{parts.scheme}://{parts.netloc}/robots.txt"
    request = urllib.request.Request(robots, headers={"User-Agent": user_agent})
    unavailable = "robots.txt could not be fetched ({}): the site is not crawled until it can be"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            rules = response.read(500_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            return unavailable.format(_http_error(error.code))
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        return unavailable.format(_network_reason(error, timeout))
    if not Protego.parse(rules).can_fetch(url, agent):
        return f"forbidden by {robots} (obey_robots_txt is on)"
    return None


def _robots_agent(app: App, user_agent: str) -> str:
    """The token robots.txt groups are matched on, as the crawl reads it: the crawler's
    ROBOTSTXT_USER_AGENT, or the one STIWATCH_SCRAPY_SETTINGS names instead."""
    # Scrapy is imported by `sources check` alone: it costs `sources list` and `sync` 0.5 s.
    from crawler.middlewares import robots_user_agent
    from crawler.runner import CrawlInputError, scrapy_settings
    from crawler.settings import ROBOTSTXT_USER_AGENT

    try:
        crawl_settings = scrapy_settings(app.settings, user_agent)
    except CrawlInputError as error:
        raise UserError(str(error)) from None
    return robots_user_agent({"ROBOTSTXT_USER_AGENT": ROBOTSTXT_USER_AGENT, **crawl_settings})


def _check(source: dict, user_agent: str, timeout: float, *, max_size: int,
           max_age_days: int, robots_agent: str | None) -> dict:
    """GET the source's URL and read it as its kind, as a crawl would: what answered, and what
    it holds ("12 entries") or why a crawl could not use it (an HTML page where the feed should
    be, a links selector that matches nothing)."""
    from crawler.spiders.listings import ListingError, check_listing

    started = time.monotonic()
    result = {"status": None, "error": None, "content_type": None, "final_url": None,
              "found": None}
    request = urllib.request.Request(source["url"], headers={"User-Agent": user_agent})
    try:
        # A listing robots.txt forbids answers fine here, and the crawl then refuses it.
        problem = (_robots_problem(source["url"], user_agent, robots_agent, timeout)
                   if robots_agent else None)
        if problem is not None:
            raise ListingError(problem)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(max_size + 1)
            result.update(status=response.status, final_url=response.url,
                          content_type=response.headers.get("Content-Type"))
            encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
            headers = {k: v for k, v in response.headers.items()
                       if k.lower() != "content-encoding"}
        if encoding in ("gzip", "x-gzip"):
            # Sent though not asked for (some CDNs do): the crawler reads it, so check it too,
            # no further than the size limit.
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, max_size + 1)
        if len(body) > max_size:
            result["error"] = f"response too large (over the {max_size:,} byte limit)"
        else:
            result["found"] = check_listing(source, result["final_url"], body, headers,
                                            max_age_days=max_age_days, max_size=max_size)
    except urllib.error.HTTPError as error:
        result.update(status=error.code, error=_http_error(error.code))
    except ListingError as error:
        result["error"] = str(error)
    except (urllib.error.URLError, OSError, ValueError, zlib.error) as error:
        result.update(error=_network_reason(error, timeout))
    result["ms"] = round((time.monotonic() - started) * 1000)
    result["ok"] = result["error"] is None
    return result


@sources_group.command("check")
@click.option("--source", "source_ids", multiple=True, metavar="ID",
              help="Check only this source (repeatable).")
@click.option("--timeout", default=15.0, show_default=True,
              type=Seconds(min=0, min_open=True, max=600),
              help="Seconds per request (more than 0, at most 600).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@pass_app
def check_command(app: App, source_ids: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Request each enabled source's URL once and read it as its kind, as a crawl would.

    Reports the HTTP status (an error with the standard reason phrase, `HTTP 404 Not Found`,
    as a crawl stores it, whatever the server calls it) and what the listing holds (a feed's entries, the article links a
    listing page's selector finds, a sitemap's recent URLs), or why a crawl could not use it:
    an HTML page where the feed or sitemap should be, a links selector that matches nothing,
    a URL the site's robots.txt forbids (with obey_robots_txt on, the default).
    Exits 1 when any source failed. Use it on a machine with internet access after editing the
    registry (`stiwatch sources sync FILE` first); it does not store anything.

    \b
    Example:
      stiwatch sources sync my-sources.toml && stiwatch sources check
    """
    store = app.store()
    sources = [store.get_source(i) for i in source_ids] or store.list_sources(enabled_only=True)
    if not sources:
        # "0 of 0 sources answered", exit 0, read as all being well.
        raise UserError(f"{app.db_path}: no enabled sources to check (run `stiwatch init`, or "
                        "`stiwatch sources sync FILE`)")
    user_agent = app.user_agent()
    limits = {"max_size": int(app.settings["max_response_size"]),
              "max_age_days": int(app.settings["sitemap_max_age_days"]),
              "robots_agent": (_robots_agent(app, user_agent)
                               if app.settings["obey_robots_txt"] else None)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda s: _check(s, user_agent, timeout, **limits), sources))
    rows = [{"id": s["id"], "kind": s["kind"], "url": s["url"], **r}
            for s, r in zip(sources, results)]
    if as_json:
        echo_json(rows)
    else:
        # What each source holds, or the whole reason it cannot be crawled: cut, a reason
        # loses its end, which is the part that says what to fix.
        table = [{**r, "result": r["found"] if r["ok"] else r["error"]} for r in rows]
        echo_table(table, ["id", "kind", "status", "ms", "result"], max_width=400)
        failed = sum(not r["ok"] for r in rows)
        app.echo(f"{len(rows) - failed} of {counted(len(rows), 'source')} answered and can be "
                 "crawled.")
    if any(not r["ok"] for r in rows):
        raise SystemExit(1)
