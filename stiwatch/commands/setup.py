"""Setting up: `stiwatch init`, `stiwatch config`, `stiwatch schema`."""

from __future__ import annotations

import click

from crawler.registry import load_registry
import db
from db.docs import markdown
from digest.message import SECRET_VARIABLE, placeholders, unsubscribe_problem

from ..app import App, pass_app
from ..config import Settings
from ..output import counted, echo_json, echo_table
from .crawl import sources_setting


@click.command("init")
@click.option("--sources", "sources_file", metavar="FILE",
              help="Registry TOML to sync [default: the `sources` setting; else, for a new "
              "store or one that follows it, the bundled registry of real sources].")
@pass_app
def init_command(app: App, sources_file: str | None) -> None:
    """Create (or migrate) the database and sync the source registry into it.

    Says so (on stderr) when the `contact` setting is unset: the crawler's User-Agent then
    names no one a site's owner can reach. Safe to run again, as the upgrade steps do: it migrates an older database in place and
    re-syncs the registry (disabling, never deleting, sources that left it). Which registry:
    --sources FILE, else the `sources` setting, else the bundled one, but only for a new
    store or one whose sources all come from it: a store fed from the operator's own file is
    left as it is rather than swapped for the bundled sources.
    """
    sources_file = sources_file or sources_setting(app)
    registry = load_registry(sources_file)  # validated before anything is written
    store = app.store(create=True)
    hint = app.contact_hint()
    if hint:  # set up now, before the first crawl sends it
        app.echo(hint, err=True)
    if not (store.migrated and store.migrated_from):  # a migration said so as it happened
        verb = "Created" if store.migrated else "Opened"
        app.echo(f"{verb} {app.db_path} (schema version {store.schema_version}).")
    if sources_file is None:
        bundled = {source["id"] for source in registry.sources}
        own = [s["id"] for s in store.list_sources(enabled_only=True) if s["id"] not in bundled]
        if own:
            app.echo(f"Kept the store's registry ({counted(len(own), 'enabled source')} "
                     f"{'is' if len(own) == 1 else 'are'} not in the "
                     f"bundled one, e.g. {own[0]}); sync a file with --sources FILE or the "
                     "`sources` setting.")
            return
    report = store.sync_sources(registry.sources)
    app.echo(
        f"Synced {counted(len(registry.sources), 'source')} from {registry.path}: "
        f"{len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.disabled)} disabled."
    )


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@pass_app
def config_command(app: App, as_json: bool) -> None:
    """Show every setting's effective value, where it came from and what it does.

    Settings come from defaults, the TOML config file, STIWATCH_<NAME> environment variables and
    command-line options, in rising order. Secrets are masked and only read from the environment.
    A note on stderr says what is unsafe or missing in the unsubscribe settings.
    """
    settings = app.plain_settings
    rows = settings.describe()
    if as_json:
        echo_json(rows)
        return
    if settings.config_file:
        app.echo(f"Config file: {settings.config_file}")
    else:
        app.echo("Config file: none (create stiwatch.toml or set STIWATCH_CONFIG)")
    # Nothing cut short: a value is what the command uses, and the help is the last column.
    echo_table(rows, ["name", "value", "origin", "help"], max_width=10_000)
    note = unsubscribe_note(settings)
    if note:
        app.echo(f"Note: {note}", err=True)


def unsubscribe_note(settings: Settings) -> str | None:
    """What is wrong or unsafe in the unsubscribe settings, in one line, or None."""
    problem = unsubscribe_problem(settings)
    if problem:
        return f"{problem}; `digest send` refuses to send until it is set"
    template = settings["list_unsubscribe"]
    used = placeholders(template)
    if template.startswith("https:") and "email" in used and "token" not in used:
        return ("list_unsubscribe names the reader by {email} alone, so anyone who knows an "
                "address can unsubscribe it: add {token} (e.g. &token={token}), set "
                f"{SECRET_VARIABLE} and have your service check it (see docs/operations.md)")
    return None


@click.command("schema")
@pass_app
def schema_command(app: App) -> None:
    """Print the database schema reference (Markdown), table by table, column by column."""
    with db.open_store(":memory:") as store:
        click.echo(markdown(store.conn), nl=False)
