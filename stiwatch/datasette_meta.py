"""Datasette metadata for `stiwatch serve`, generated from the schema docs (db/docs.py).

Every table, view and column gets the description the schema reference uses, so the browser
and docs/schema.md never disagree. Facets and canned queries are what analysts ask for first.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

from db.canned import CANNED_QUERIES
from db.docs import FTS, PERSONAL, TABLES, VIEWS

from . import __version__

FACETS: dict[str, list[Any]] = {
    "items": ["source_id", "language", "status"],
    # One count per label, not per comma-joined combination. "tag": counted from the tags
    # table (the plugin's TagFacet), where Datasette's column and array facets computed the
    # view's tag columns for every item and timed out from 200,000 items.
    "items_tagged_json": [{"tag": "policy"}, {"tag": "areas"}, {"tag": "domains"},
                          {"tag": "regions"}, {"tag": "countries"}],
    # Not areas: its values are comma-joined combinations, so "governance" counted only the
    # items with no other area (1,124 of 3,426 in a 50,000-item store); items_tagged_json
    # counts each label.
    "items_tagged": [{"tag": "policy"}, "source_name", "language"],
    "tags": ["facet", "value", "method"],
    "sources": ["enabled", "kind", "country", "org_type"],
    "labels": ["facet"],
    "crawl_runs": ["status"],
    "runs": ["status", "command"],
    "deliveries": ["status", "period"],
    "analyst_labels": ["facet", "verdict"],
}
# The tables' default sorts are unique columns: Datasette 0.65 pages a table sorted by a
# column with repeated values without a tie-breaker on its first page (the plugin adds it, for
# the sorts an analyst clicks too). Views page by offset, consistently.
SORT_DESC = {"items": "id", "items_tagged": "published_at",
             "items_tagged_json": "published_at", "crawl_runs": "id",
             "runs": "id"}
# Views of items, where an id names an item of the items table: their search box reads the
# items' index, their pages read a snapshot (the plugin), their ids link to items.
ITEM_VIEWS = ("items_tagged", "items_tagged_json")
HIDDEN = ("item_signatures", "signature_bands", "items_cjk_pending", "items_replaced")
LABEL_COLUMNS = {"sources": "name", "labels": "name", "items": "title"}


# Chinese, Japanese and Korean text may break between any two characters, so Datasette's
# tables gave its columns their one-character minimum: a ministry's title and body came out
# three to five characters wide. A reading width for the item text columns; in the metadata as a
# data: URL, as it is a few bytes and needs no route of its own.
TEXT_COLUMNS_CSS = (".rows-and-columns td.col-title,.rows-and-columns td.col-summary,"
                    ".rows-and-columns td.col-body,.rows-and-columns td.col-context"
                    "{min-width:16em}")


def _html(text: str) -> str:
    """The docs' Markdown `code` spans as HTML, everything else escaped."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def reads_personal(sql: str) -> bool:
    """Whether ``sql`` names a personal table (db.docs.PERSONAL)."""
    return any(re.search(rf"\b{name}\b", sql, re.IGNORECASE) for name in PERSONAL)


def build_metadata(database: str, personal: bool = False) -> dict[str, Any]:
    """Datasette metadata for the store served under the name ``database``.

    Unless ``personal``, the tables of readers' addresses are denied to every visitor (absent
    from the pages, 403 for their URLs) and so are the canned queries that read them; the
    plugin's authorizer refuses them to typed SQL.
    """
    tables: dict[str, Any] = {}
    for name, doc in {**TABLES, **VIEWS}.items():
        # Datasette shows column descriptions as plain text: the Markdown backticks go.
        entry: dict[str, Any] = {"description_html": _html(doc["description"]),
                                 "columns": {column: meaning.replace("`", "")
                                             for column, meaning in doc["columns"].items()}}
        if name in FACETS:
            entry["facets"] = FACETS[name]
        if name in SORT_DESC:
            entry["sort_desc"] = SORT_DESC[name]
        if name in HIDDEN:
            entry["hidden"] = True
        if name in LABEL_COLUMNS:
            entry["label_column"] = LABEL_COLUMNS[name]
        if name in PERSONAL and not personal:
            entry["allow"] = False
        tables[name] = entry
    # The search box on `items` uses the FTS5 index. "escaped": Datasette runs the query
    # through escape_fts(), which the plugin makes read `stiwatch search`'s syntax and
    # never fail ("raw" passed it to FTS5 as is: a lone quote was a 400 page).
    # The views the analysts start from search the same index, by their item ids (without it
    # their search box was there and did nothing).
    for name in ("items", *ITEM_VIEWS):
        tables[name].update(fts_table="items_fts", fts_pk="id", searchmode="escaped")
    for name, description in FTS.items():
        tables[name] = {"description_html": _html(description), "hidden": True}
    # A query's page shows description_html; the database page's link, description as its
    # tooltip (plain text, where Markdown's backticks would stay).
    queries = {
        name: {"title": q["title"], "description": q["description"].replace("`", ""),
               "description_html": _html(q["description"]), "sql": q["sql"].strip()}
        for name, q in CANNED_QUERIES.items()
        if personal or not reads_personal(q["sql"])
    }
    return {
        "title": "stiwatch: STI policy news",
        "description": "Articles from ministries, funding agencies, intergovernmental bodies and "
        "STI news, classified by policy relevance, area, technology domain and country. Start "
        "with the items_tagged view or the canned queries below. Read-only.",
        "source": f"stiwatch {__version__}",
        "extra_css_urls": ["data:text/css," + quote(TEXT_COLUMNS_CSS)],
        "databases": {
            database: {
                "description": "The stiwatch store (see docs/schema.md).",
                "tables": tables,
                "queries": queries,
            }
        },
    }
