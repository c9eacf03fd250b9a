"""`stiwatch serve`: browse and query the store in Datasette, read-only."""

from __future__ import annotations

import click

from ..app import App, pass_app
from ..datasette_meta import build_metadata


@click.command("serve")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 exposes it to the network: mind who can see "
              "it).")
@pass_app
def serve_command(app: App, port: int, host: str) -> None:
    """Serve the store in Datasette (a web UI and JSON API for SQL), read-only.

    The database is opened read-only (SQLite mode=ro), so crawls can keep writing while analysts
    browse. Every table and column is documented, items, tags and sources have facets, the
    items table has full-text search, and canned queries answer the usual questions: this
    week's policy items by area, source health, the weekly trend by area, and items about one
    country. Stop it with Ctrl-C.
    """
    # Imported here: Datasette and uvicorn take a while to load and only this command needs them.
    from datasette.app import Datasette
    import asyncio
    import uvicorn

    store = app.existing_store()  # an old file is migrated first, so the canned queries fit
    path = store.path.resolve()
    store.close()
    app.close()
    ds = Datasette(
        [str(path)],
        metadata=build_metadata(path.stem),
        settings={"default_page_size": 50, "sql_time_limit_ms": 5000, "suggest_facets": False,
                  "facet_time_limit_ms": 1000},
    )
    asyncio.run(ds.invoke_startup())
    click.echo(f"Serving {path} read-only at http://{host}:{port}/{path.stem} (Ctrl-C to stop)")
    uvicorn.run(ds.app(), host=host, port=port, log_level="warning", lifespan="on")
