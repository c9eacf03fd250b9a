"""`stiwatch demo`: the whole pipeline on the bundled demo site, offline, in about a minute."""

from __future__ import annotations

from datetime import datetime
import os
from pathlib import Path
import shlex
import shutil
import sys
import threading
import time

import click

from crawler.registry import dump_registry, load_registry
from digest.send import write_preview
from digest.weeks import last_complete_week, zone

from .. import interrupts
from ..app import App, pass_app
from ..demo import build_site, serve
from ..errors import UserError
from ..output import echo_json
from ..steps import classify_step, crawl_step, digest_step, run_step
from .classify import model_folder

# Left in every folder the demo makes: it rebuilds only folders that bear it (or are empty).
MARKER = ".stiwatch-demo"
REGISTRY_HEADER = "The demo site's sources (written by `stiwatch demo`)."

# Two readers with different interests, so the outbox shows how filters shape a digest.
DEMO_SUBSCRIBERS = [
    {"email": "analyst@example.org", "name": "Demo analyst (everything)"},
    {"email": "security-desk@example.org", "name": "Demo research-security desk",
     "areas": ["research_security", "international"], "regions": ["east_asia", "north_america"]},
]


@click.command("demo")
@click.option("--dir", "directory", default="demo", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's site, database and outbox, rebuilt on every run: a "
              "new or empty folder, or one an earlier demo made.")
@click.option("--json", "as_json", is_flag=True, help="Print what was made as JSON.")
@click.option("--serve", "keep_serving", is_flag=True,
              help="Then keep serving the demo site at the same address until Ctrl-C, so "
              "DIR/sources.toml, or a sources file of your own naming its pages, can be "
              "crawled again from another shell.")
@pass_app
def demo_command(app: App, directory: Path, as_json: bool, keep_serving: bool) -> None:
    """Run stiwatch end to end on a bundled demo site, with no network.

    Serves ten fictional STI-policy sources (RSS, Atom, RDF feeds, HTML listings and sitemaps;
    nine in English, a ministry's press releases in Japanese) on 127.0.0.1, crawls them into
    DIR/stiwatch.db, classifies every article, and writes last week's digest to DIR/outbox as
    .eml (as it would be mailed) and .html (to open in a browser). Then it prints the next
    commands to try. Nothing leaves this machine.

    DIR is rebuilt on every run, so the demo refuses a folder it did not make that is not empty
    (such as one holding a real stiwatch.db or sources.toml).

    The site lives only while the demo runs: its address changes every run, so DIR/sources.toml
    answers nothing afterwards. With --serve the demo keeps serving it, at the address
    DIR/sources.toml names, until Ctrl-C: crawl it from another shell as real sources
    (`stiwatch --db DIR/stiwatch.db crawl`, or `stiwatch init --sources mine.toml` with a copy
    of DIR/sources.toml of your own).
    """
    started = time.monotonic()
    named = Path(app.plain_settings["db"])
    if app.plain_settings.origin("db") == "option --db" and named.exists():
        # the demo always makes its own store: a real one named with --db is never touched,
        # and whoever named it must not believe the demo ran on it
        raise UserError(f"{named}: the demo makes its own database in DIR/stiwatch.db, so "
                        "--db is not used: give --dir DIR instead")
    model_folder(app)  # a mistyped model_dir setting, before the demo builds anything
    directory = directory.resolve()
    _claim(directory)
    db_path = directory / "stiwatch.db"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)  # a fresh store every time: the demo is reproducible
    _configure(app, directory)
    tz = zone(app.settings["timezone"])
    today = datetime.now(tz).date()

    with serve(directory / "site") as server:
        records = build_site(directory / "site", server.url, today)
        registry_path = directory / "sources.toml"
        registry_path.write_text(dump_registry(records, REGISTRY_HEADER), encoding="utf-8")
        store = app.store(create=True)
        store.sync_sources(load_registry(registry_path).sources)
        store.save_subscribers(DEMO_SUBSCRIBERS)
        app.echo(f"Demo site: {server.url}/ ({len(records)} sources)", err=True)
        steps = [run_step(app, crawl_step), run_step(app, classify_step)]

        week = last_complete_week(tz)
        html, png, digest = write_preview(app.store(), app.settings, week,
                                          directory / "outbox" / f"digest-{week.label}.html")
        steps.append(run_step(app, digest_step))
        summary = _summary(app, directory, week.label, html, steps, time.monotonic() - started)
        summary["site"] = f"{server.url}/"
        if as_json:
            echo_json(summary)
        else:
            _print(app, summary)
        if keep_serving:
            _serve_until_stopped(app, summary)


def _serve_until_stopped(app: App, summary: dict) -> None:
    """Wait, the site's server thread answering, until Ctrl-C or SIGTERM: how it is meant to
    stop, so exit status 0. The store is closed first: another shell's crawl writes to it."""
    app.close()
    registry = Path(summary["directory"]) / "sources.toml"
    # Not silenced by --quiet, as `stiwatch serve` says where it serves: without it the
    # command would only seem to hang.
    click.echo(f"Serving the demo site at {summary['site']} until Ctrl-C; its sources are in "
               f"{registry}. From another shell: {_invocation()} --db "
               f"{shlex.quote(summary['db'])} crawl", err=True)
    sys.stderr.flush()
    try:
        with interrupts.sigterm_as_interrupt():
            threading.Event().wait()
    except KeyboardInterrupt:
        app.echo("Stopped.", err=True)


def _claim(directory: Path) -> None:
    """Make sure DIR is the demo's to rebuild: new, empty, or made by an earlier demo."""
    marker = directory / MARKER
    if directory.is_dir() and not marker.exists() and any(directory.iterdir()) \
            and not _made_before_markers(directory):
        raise UserError(
            f"{directory}: not empty and not made by `stiwatch demo`, which rebuilds its folder "
            "(stiwatch.db, sources.toml, site, outbox); nothing was changed: give it a new or "
            "empty folder, e.g. `stiwatch demo --dir demo-new`")
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("Made by `stiwatch demo`, which deletes and rebuilds this folder's "
                      "database, sources.toml, site and outbox on every run.\n", encoding="utf-8")


def _made_before_markers(directory: Path) -> bool:
    """A demo folder from before the marker existed: its registry says the demo wrote it."""
    try:
        with open(directory / "sources.toml", encoding="utf-8") as registry:
            return registry.readline().strip() == f"# {REGISTRY_HEADER}"
    except (OSError, UnicodeDecodeError):
        return False


def _configure(app: App, directory: Path) -> None:
    """Point every setting at DIR, and crawl our own loopback server without waiting."""
    for name, value in {
        "db": str(directory / "stiwatch.db"),
        "outbox": str(directory / "outbox"),
        "smtp_host": "",  # never mail anyone from a demo, whatever the config says
        "download_delay": 0.0,
        "autothrottle": False,
        "concurrent_requests_per_domain": 8,
        "sources": "",
        "sitemap_max_age_days": 90,  # the demo's archive spans nine weeks: show all of it
        "lock_file": str(directory / "stiwatch.lock"),
    }.items():
        app.settings.override(name, value, "stiwatch demo")


def _summary(app: App, directory: Path, week: str, html: Path, steps: list[dict],
             seconds: float) -> dict:
    store = app.store()
    db_path = directory / "stiwatch.db"
    counts = store.query(
        "SELECT count(*) AS items, sum(policy = '1') AS policy, "
        "sum(duplicate_of IS NOT NULL) AS duplicates FROM items_tagged")[0]
    by_area = store.query(
        "SELECT value AS area, count(*) AS items FROM tags JOIN items ON items.id = tags.item_id "
        "WHERE facet = 'area' AND items.duplicate_of IS NULL GROUP BY value ORDER BY items DESC")
    emls = sorted(str(p) for p in (directory / "outbox").rglob("*.eml"))
    db_arg = f"--db {shlex.quote(str(db_path))}"
    stiwatch = _invocation()
    return {
        "directory": str(directory), "db": str(db_path), "seconds": round(seconds, 1),
        "items": counts["items"], "policy_items": counts["policy"] or 0,
        "duplicates": counts["duplicates"] or 0, "areas": by_area, "week": week,
        "digest_html": str(html), "digest_eml": emls, "steps": steps,
        "next": [
            f"{stiwatch} {db_arg} search 'research security'",
            f"{stiwatch} {db_arg} search quantum --area international --format json",
            # the demo's Japanese source: search reads Japanese text, which has no spaces
            f"{stiwatch} {db_arg} search 量子技術",
            f"{stiwatch} {db_arg} trends --by area",
            f"{stiwatch} {db_arg} status",
            f"{stiwatch} {db_arg} serve",
        ],
    }


def _invocation() -> str:
    """How the user can run stiwatch again from this shell: after `make demo` it is in
    .venv/bin, on PATH only with the virtualenv active, so a bare `stiwatch` may not work."""
    script = Path(sys.argv[0])
    if script.name == "stiwatch" and script.is_file():  # the console script
        on_path = shutil.which("stiwatch")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "stiwatch"
        command = [_shorter(script)]
    else:  # python -m stiwatch
        command = [_shorter(Path(sys.executable)), "-m", "stiwatch"]
    return shlex.join(command)


def _shorter(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (.venv/bin/stiwatch)."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if os.sep in str(relative) else f".{os.sep}{relative}"


def _print(app: App, summary: dict) -> None:
    click.echo("")
    click.echo(f"Done in {summary['seconds']} s. Store: {summary['db']} "
               f"({summary['items']} items, {summary['policy_items']} about STI policy, "
               f"{summary['duplicates']} syndicated duplicates folded).")
    if summary["areas"]:
        click.echo("Policy areas: " + ", ".join(f"{a['area']} {a['items']}"
                                                for a in summary["areas"]))
    click.echo(f"Digest for {summary['week']}: {summary['digest_html']}")
    for path in summary["digest_eml"]:
        click.echo(f"  e-mail: {path}")
    click.echo("Try next:")
    for command in summary["next"]:
        click.echo(f"  {command}")
