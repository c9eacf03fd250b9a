"""The schema's documentation, as data: the analysts' reference for every table and column.

One source for `docs/schema.md` (`stiwatch schema`), the Datasette metadata of `stiwatch serve`,
and a test that fails when a column exists without a description.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# Tables holding readers' e-mail addresses: `stiwatch serve` keeps them out of the browser and
# out of its SQL unless the operator asks for them.
PERSONAL = ("subscribers", "deliveries")

TABLES: dict[str, dict[str, Any]] = {
    "sources": {
        "description": "One row per source in the registry (feeds, listing pages, sitemaps) with "
        "its crawl health. Sources removed from the registry are disabled, never deleted.",
        "columns": {
            "id": "Unique slug from the registry, e.g. `nsf-news`.",
            "name": "Human-readable name.",
            "kind": "`feed` (RSS/Atom), `html` (listing page) or `sitemap`.",
            "url": "Feed URL, listing page URL or sitemap URL that is crawled.",
            "homepage": "The organisation's home page, if given.",
            "country": "ISO 3166-1 alpha-2 code of the publisher, `EU`, or `international`; "
            "the classifier falls back to it when a text names no country.",
            "language": "ISO 639-1 code of the source's pages.",
            "org_type": "ministry, funding_agency, research_org, intergovernmental, news, academy "
            "or other.",
            "links": "For `html` sources: CSS selector picking article links on the listing.",
            "enabled": "1 if crawled; 0 once the source left the registry.",
            "added_at": "When the source first entered the store (ISO 8601 UTC).",
            "updated_at": "When its registry fields last changed (ISO 8601 UTC).",
            "etag": "ETag of the last full response, sent back as If-None-Match.",
            "last_modified": "Last-Modified of the last full response, sent as If-Modified-Since.",
            "last_crawled_at": "Start of the last crawl attempt (ISO 8601 UTC).",
            "last_ok_at": "Last crawl attempt that succeeded (ISO 8601 UTC).",
            "consecutive_failures": "Failed crawls in a row; 0 after a success.",
            "failing_since": "First failure of the current run of failures, NULL when healthy.",
            "last_error": "Message of the last failure, NULL when the last crawl succeeded.",
            "last_flag": "Non-fatal problem seen in the last successful crawl, e.g. a malformed "
            "feed that could still be read (feedparser's bozo flag).",
        },
    },
    "items": {
        "description": "One row per article, keyed by its canonical URL (tracking parameters and "
        "fragments removed, the page's rel=canonical preferred). Searchable through `items_fts`.",
        "columns": {
            "id": "Item id (stable; tags and deliveries refer to it).",
            "url": "Canonical URL; unique.",
            "source_id": "The source that first stored the item (`sources.id`).",
            "title": "Article title.",
            "summary": "Short summary from the feed entry or the page's description.",
            "body": "Clean main text of the article page, NULL when the page could not be read.",
            "language": "ISO 639-1 code detected from the text; a text under 80 characters takes "
            "the page's declared language (`lang`, Content-Language; else the source's), except "
            "that one mostly in kana, Hangul or Chinese characters is `ja`, `ko` or `zh` by its "
            "script whatever the page declares (Chinese characters alone stay `ja` or `ko` on a "
            "page that says so).",
            "published_at": "Publication time, ISO 8601 UTC. A date without a time of day "
            "(a page's `<meta name=\"date\" content=\"2026-11-20\">`, a date in its text or "
            "URL, a feed's or news sitemap's `2026-11-20`) is stored as noon UTC of that date, "
            "`2026-11-20T12:00:00Z`: the same date in every time zone from UTC-11 to UTC+11, so "
            "searches, `stiwatch status`, trends and the digest, which read days and weeks in "
            "the `timezone` setting, keep the day the publisher wrote. (Earlier versions of "
            "stiwatch stored it as midnight UTC, the day before west of UTC.)",
            "date_source": "Where `published_at` came from, in order of trust: `feed`, `page` "
            "(metadata), `text` (found in the page, also as Japanese and Chinese pages write dates: "
            "2026年11月20日, ２０２６年１１月２０日, the era date 令和8年11月20日 or R8.11.20; a month alone, 2026年11月, is its "
            "first day), `fetched` (no believable date: none "
            "found, or more than two days ahead; the time of the first fetch, kept by later "
            "fetches until one finds a real date).",
            "fetched_at": "When the article was last fetched (ISO 8601 UTC).",
            "content_hash": "SHA-256 of the normalised body text (exact-duplicate check).",
            "duplicate_of": "For a near-duplicate (the same article syndicated under another URL): "
            "the `items.id` of its story's original, the earliest copy stored, which is never itself "
            "a near-duplicate; NULL for originals.",
            "status": "`complete` (article page read) or `partial` (stored from the feed entry "
            "only; fetched again by later crawls, as `fetch_attempts` says).",
            "fetch_error": "Why the article page could not be read, for `partial` items "
            "(e.g. `HTTP 404 Not Found`, `too many redirects`).",
            "fetch_attempts": "How many crawls tried the article page. A `partial` item is "
            "tried again up to 8 times, after a `404` (or a redirect to its section page) 3, "
            "after a `410 Gone` never. A page robots.txt forbids is never requested: no "
            "attempt is counted, and it is read once robots.txt allows it.",
        },
    },
    "item_classification": {
        "description": "Whether and when the classifier tagged each item: one row per item, "
        "made with it. (Until schema version 22 these were the columns `items.classified_at` "
        "and `items.classify_marks`; a query that read them joins this table: `SELECT i.*, "
        "c.classified_at FROM items i JOIN item_classification c ON c.item_id = i.id`, and "
        "`WHERE c.classified_at IS NULL` finds the items the next `stiwatch classify` tags.) "
        "Set `classified_at` to NULL to have an item classified again.",
        "columns": {
            "item_id": "The item (`items.id`).",
            "classified_at": "When the classifier last tagged the item; NULL if never, or if its "
            "title, summary or body changed since (the next `stiwatch classify` tags it again).",
            "classify_marks": "How many times the item was marked for classification "
            "(`classified_at` set to NULL, or its text changed while NULL), counted by triggers. "
            "`stiwatch classify` writes an item's tags only if this is what it was when it read "
            "the item, so a correction made meanwhile (`stiwatch tag`) keeps its mark and the "
            "next `classify` tags the item anew.",
        },
    },
    "item_signatures": {
        "description": "Near-duplicate detection: a similarity signature per item (internal).",
        "columns": {
            "item_id": "The item (`items.id`).",
            "signature": "Packed MinHash signature of the item's text shingles.",
        },
    },
    "signature_bands": {
        "description": "Locality-sensitive hashing buckets of the signatures, to find near-"
        "duplicate candidates quickly (internal).",
        "columns": {
            "band": "Band number of the signature.",
            "bucket": "Hash of the band's values.",
            "item_id": "The item (`items.id`).",
        },
    },
    "item_urls": {
        "description": "Other URLs under which a listing named a stored article (a feed link "
        "that redirects, a page whose rel=canonical differs), so later crawls know it without "
        "fetching it again.",
        "columns": {
            "url": "The listing's canonical URL for the article.",
            "item_id": "The item stored under its own canonical URL (`items.id`).",
        },
    },
    "listing_validators": {
        "description": "ETag and Last-Modified of the further listings a source's own listing "
        "names (the sitemaps of a sitemap index), sent back as If-None-Match and "
        "If-Modified-Since so that an unchanged sitemap costs a 304. Kept, like the source's "
        "own, only from crawls that stored everything the source listed; a listing the index "
        "no longer names loses its row.",
        "columns": {
            "source_id": "The source (`sources.id`).",
            "url": "The further listing's URL, as the source's listing names it.",
            "etag": "ETag of its last full response.",
            "last_modified": "Last-Modified of its last full response.",
        },
    },
    "host_pauses": {
        "description": "Hosts that answered with a Retry-After longer than a crawl waits "
        "(STIWATCH_MAX_RETRY_AFTER, 120 s): every crawl sends such a host nothing, not even "
        "robots.txt, until `not_before`, and its summary says the host is paused until then. "
        "Rows whose time has passed are removed by the next crawl that ends.",
        "columns": {
            "host": "The host name (Scrapy's download slot), e.g. `www.example.org`.",
            "not_before": "When the host may be asked again (ISO 8601 UTC): the answer's time "
            "plus its Retry-After, a week at most (STIWATCH_MAX_HOST_PAUSE, 604800 s). Delete "
            "the row to ask the host again sooner.",
            "reason": "What the host said, e.g. `asked for a pause of 7200 s (Retry-After)`; a "
            "longer one than STIWATCH_MAX_HOST_PAUSE ends `, kept to 604800 s "
            "(STIWATCH_MAX_HOST_PAUSE)`.",
            "paused_at": "When the crawl that met the Retry-After stored it (ISO 8601 UTC).",
        },
    },
    "crawl_runs": {
        "description": "One row per `stiwatch crawl` (also within `stiwatch run`).",
        "columns": {
            "id": "Run id.",
            "started_at": "Start (ISO 8601 UTC).",
            "finished_at": "End (ISO 8601 UTC); NULL while running or if the process was killed.",
            "status": "`running`, `ok` (every source succeeded), `partial` (some failed), "
            "`failed` (all failed) or `interrupted`.",
            "stats": "JSON: totals and per-source counts (new, duplicates, unchanged, errors); "
            "while running, `pid` (the `stiwatch crawl` or `run` process, the one the run "
            "lock names and a user stops), `crawler_pid` (its crawler child, which writes the "
            "row) and `host` (a later crawl marks the run `interrupted` when the crawler is "
            "gone; rows from before crawler_pid have the crawler's pid as `pid`).",
        },
    },
    "runs": {
        "description": "One row per scheduled `stiwatch run` (crawl, classify, digest).",
        "columns": {
            "id": "Run id.",
            "command": "The command line that started it, e.g. `run --digest`.",
            "started_at": "Start (ISO 8601 UTC).",
            "finished_at": "End (ISO 8601 UTC); NULL while running or if the process was killed.",
            "status": "`running`, `ok`, `partial` (a step had failures) or `failed` (a step "
                      "could not finish: bad input, or the run was stopped by a signal; the "
                      "reason is the last step's `summary`).",
            "exit_code": "The exit status the run gave cron (0 ok, 1 a step failed, 2 bad input, "
                         "130/143 stopped by SIGINT/SIGTERM); NULL if its process was killed.",
            "steps": "JSON: one object per step (crawl, classify, digest) with its counts.",
        },
    },
    "labels": {
        "description": "The taxonomy's label ids and names (areas, domains, regions), as "
        "installed from classifier/taxonomy.toml.",
        "columns": {
            "facet": "`area`, `domain` or `region`.",
            "id": "Label id used in `tags.value` and subscriber filters.",
            "name": "Display name.",
            "description": "What the label covers.",
            "taxonomy_version": "Version of the taxonomy the row came from.",
        },
    },
    "tags": {
        "description": "Labels on items, one row per (item, facet, value): written by the "
        "classifier, or by an analyst with `stiwatch tag`.",
        "columns": {
            "item_id": "The item (`items.id`).",
            "facet": "`policy`, `area`, `domain`, `country` or `region`.",
            "value": "For policy `1` (STI-policy relevant) or `0`; otherwise a label id "
            "(`labels.id`) or, for countries, an ISO 3166-1 alpha-2 code or `EU`.",
            "score": "Confidence in [0, 1]. For `policy`, the probability that the item is "
            "policy-relevant (whatever the value); for analyst tags 1.0, or 0.0 for an "
            "analyst's policy = 0.",
            "method": "`model` (trained classifier), `rules` (lexicon), `gazetteer` (place "
            "names and agencies), `source` (the source's home country; for `policy`, an item in a "
            "language the classifier does not read from an STI ministry or funding agency) or "
            "`analyst` (set with "
            "`stiwatch tag`, or a region implied by a country an analyst set). A region has the "
            "method of the country it comes from.",
            "model_version": "Version of the model or rule set that wrote the tag.",
            "tagged_at": "When the tag was written (ISO 8601 UTC).",
        },
    },
    "analyst_labels": {
        "description": "Analysts' corrections (`stiwatch tag`): what they added (verdict 1) or "
        "removed (verdict 0). The classifier never overrides them; training uses them. "
        "`stiwatch tag ITEM --undo FACET=VALUE` deletes a row (the correction taken back).",
        "columns": {
            "item_id": "The item (`items.id`).",
            "facet": "As in `tags`.",
            "value": "As in `tags`.",
            "verdict": "1: the item has this label; 0: it does not.",
            "labelled_at": "When the analyst said so (ISO 8601 UTC).",
        },
    },
    "subscribers": {
        "description": "Digest recipients and their filters (JSON arrays of label ids; an empty "
        "array means everything), and the words each follows (`query`). Personal data: `stiwatch serve` hides it unless started "
        "with `--show-subscribers`.",
        "columns": {
            "email": "Address; unique.",
            "name": "Display name.",
            "areas": "Policy areas wanted (JSON array of `labels.id`).",
            "domains": "Technology domains wanted (JSON array).",
            "countries": "Countries wanted (JSON array of ISO codes or `EU`).",
            "regions": "Regions wanted (JSON array).",
            "query": "Words wanted, as a `stiwatch search` query (`\"Horizon Europe\"`, "
            "`export control*`): a story is sent only when one of its items matches it too; "
            "NULL: no such filter. Added by migration 23.",
            "active": "1 while subscribed; 0 after `stiwatch subscribers remove` (history kept).",
            "created_at": "When added (ISO 8601 UTC).",
            "updated_at": "Last change (ISO 8601 UTC).",
        },
    },
    "deliveries": {
        "description": "One row per (subscriber, ISO week): the digest's delivery state, so each "
        "is sent exactly once. Personal data: `stiwatch serve` hides it unless started with "
        "`--show-subscribers`.",
        "columns": {
            "subscriber": "Recipient (`subscribers.email`).",
            "period": "ISO week, e.g. `2026-W47`.",
            "status": "`pending`, `sending` (handed to SMTP, outcome not yet recorded; with "
            "`unanswered_at`, in doubt: the message went out but no answer came), `sent`, "
            "`failed` (permanently, or after the last retry) or `skipped` (nothing matched; not "
            "final: each later send of the week looks again and sends it once if items now match).",
            "message_id": "Message-ID header, derived from (subscriber, week): stable on resend.",
            "item_count": "Stories in the digest, as its subject counts them (the reports "
            "of one event are one story).",
            "through_item_id": "The highest `items.id` stored when the digest was built (sent or "
            "skipped): the subscriber's next digest adds the items published earlier but stored "
            "after it (\"Found since your last digest\"); NULL before schema version 14.",
            "attempts": "Delivery attempts so far, counting runs when the SMTP server could not "
                        "be reached.",
            "last_error": "SMTP reply or error of the last failed attempt (e.g. the server could "
                          "not be reached: the row stays owed).",
            "next_attempt_at": "Earliest retry after a temporary failure (ISO 8601 UTC).",
            "sent_at": "When the server accepted the message (ISO 8601 UTC); for a delivery "
                       "in doubt recorded as sent by `stiwatch digest resolve --sent`, when it "
                       "went out.",
            "updated_at": "Last state change (ISO 8601 UTC).",
            "unanswered_at": "When the whole message went out but no answer came (a timeout or "
                             "a lost connection after DATA): the server may have it, so the row "
                             "stays `sending` and is not sent again until `stiwatch digest "
                             "resolve` records it as sent or owed again (ISO 8601 UTC).",
        },
    },
    "items_cjk_pending": {
        "description": "Items whose text is new or changed, queued by triggers whoever writes "
        "them, until stiwatch has looked for Chinese, Japanese or Korean letters in them and "
        "indexed those in `items_fts_cjk` (internal): at once for the items it saves, at the "
        "next writable open for those another tool wrote.",
        "columns": {
            "item_id": "The item (`items.id`).",
        },
    },
    "items_replaced": {
        "description": "The rows the latest INSERT into `items` could replace (same id or "
        "url), noted by a trigger so that an INSERT OR REPLACE takes their words out of "
        "`items_fts` and `items_fts_cjk` (SQLite fires no delete trigger for them) (internal; "
        "at most a few rows, replaced at each insert).",
        "columns": {
            "id": "The replaced item's id.",
            "title": "Its title, as indexed.",
            "summary": "Its summary, as indexed.",
            "body": "Its body, as indexed.",
        },
    },
    "store_info": {
        "description": "Facts about the store itself, one row per key (internal).",
        "columns": {
            "key": "`installation_id`: a random id made with the store, kept by its backups and by a "
            "store `stiwatch restore` puts in its place "
            "(part of every digest's Message-ID, so two installations never send the same one).",
            "value": "The value.",
        },
    },
    "schema_migrations": {
        "description": "Schema versions applied to this file; opening an older file migrates it.",
        "columns": {
            "version": "Migration number.",
            "name": "What it changed.",
            "applied_at": "When it ran (ISO 8601 UTC).",
        },
    },
}

VIEWS: dict[str, dict[str, Any]] = {
    "items_tagged": {
        "description": "One row per item with its tags folded into columns: the easiest place "
        "to start an analysis.",
        "columns": {
            "id": "Item id.",
            "url": "Canonical URL.",
            "title": "Title.",
            "source_id": "Source id.",
            "source_name": "Source name.",
            "published_at": "Publication time (ISO 8601 UTC).",
            "language": "Language code.",
            "status": "`complete` or `partial`.",
            "duplicate_of": "Original's id for near-duplicates, else NULL.",
            "policy": "`1` if STI-policy relevant, `0` if not, NULL if not yet classified.",
            "policy_score": "Probability of policy relevance.",
            "areas": "Policy area ids, comma-separated.",
            "domains": "Technology domain ids, comma-separated.",
            "countries": "Country codes, comma-separated.",
            "regions": "Region ids, comma-separated.",
        },
    },
    "items_tagged_json": {
        "description": "Each story once (an original and its near-duplicates are one story), "
        "as the digest and `stiwatch search` show it: the row of its first copy from an "
        "official source (a ministry, funding agency, research organisation, academy or "
        "intergovernmental body) when the original is from none, else of the original; with "
        "the story's tags as JSON arrays. `id`, the tags and `policy` are the story's original's, "
        "as the digest reads them, so `id__gt` keeps the stories first stored after an item (a "
        "later copy of an older story is no new story); `item_id`, `title`, `url`, `source_id` "
        "and `published_at` are the item shown, and a date filter reads its date. (Until schema "
        "version 24 every row was the original: a wire's report stored before the ministry's "
        "page listed the wire's link and title, where the digest showed the ministry's; the "
        "originals are still `SELECT * FROM items WHERE duplicate_of IS NULL`.) For facets (one "
        "count per area, domain, country or region; `stiwatch serve` counts them from `tags`, "
        "`_facet_tag=areas` in a URL, where Datasette's own `_facet_array=areas` reads every "
        "row's tags) and SQLite's `json_each`, e.g. `SELECT value, count(*) FROM "
        "items_tagged_json, json_each(areas) GROUP BY value`.",
        "columns": {
            "id": "The story's id: its original's `items.id` (its tags are the columns below).",
            "item_id": "The item shown (`items.id`): the original, or its first copy from an "
            "official source.",
            "title": "Title of the item shown.",
            "url": "Canonical URL of the item shown.",
            "source_id": "Source id of the item shown.",
            "published_at": "Publication time of the item shown (ISO 8601 UTC).",
            "policy": "`1` if STI-policy relevant, `0` if not, NULL if not yet classified.",
            "areas": "Policy area ids, a JSON array.",
            "domains": "Technology domain ids, a JSON array.",
            "countries": "Country codes, a JSON array.",
            "regions": "Region ids, a JSON array.",
        },
    },
}

FTS = {
    "items_fts": "Full-text index (SQLite FTS5, Porter stemming) over items' title, summary and "
    "body, kept in sync by triggers. Query with `SELECT * FROM items WHERE id IN (SELECT rowid "
    "FROM items_fts WHERE items_fts MATCH 'quantum AND strategy')`, or `stiwatch search`. "
    "Words are split at spaces and punctuation, so Chinese and Japanese text (no spaces) is "
    "one word per sentence here: search it in `items_fts_cjk`. The triggers follow INSERT, "
    "UPDATE, DELETE and, since schema version 15, INSERT OR REPLACE on `items` (e.g. "
    "`sqlite-utils insert --replace`, which before left the replaced row's words in both "
    "indexes). Should the indexes ever disagree with the items (such a write made before "
    "version 15), repair them with `INSERT INTO items_fts(items_fts) VALUES('rebuild'); "
    "DELETE FROM items_fts_cjk; INSERT OR IGNORE INTO items_cjk_pending SELECT id FROM "
    "items;` and open the store once with `stiwatch init`.",
    "items_fts_cjk": "Full-text index (FTS5) of the items containing Chinese, Japanese or Korean "
    "letters, rowid = `items.id`, columns title, summary and body. Each run of CJK letters is "
    "indexed as its overlapping character pairs followed by its last letter (研究開発 -> `研究 "
    "究開 開発 発`), other text as in `items_fts`. A word of two or more CJK letters is the "
    "phrase of its pairs: `SELECT * FROM items WHERE id IN (SELECT rowid FROM items_fts_cjk "
    "WHERE items_fts_cjk MATCH '\"量子 子技 技術\"')` finds 量子技術; one letter is a prefix "
    "(`'研*'`). `stiwatch search 量子技術` and the canned query `search_cjk` write the pairs for "
    "you. Filled by stiwatch (see `items_cjk_pending`).",
}


def undocumented(conn: sqlite3.Connection) -> list[str]:
    """Tables, views and columns present in the database but missing from the docs."""
    missing = []
    documented = {**TABLES, **VIEWS}
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE "
        "'sqlite_%' AND name NOT LIKE 'items_fts%' ORDER BY name"
    ):
        if name not in documented:
            missing.append(name)
            continue
        for row in conn.execute(f"PRAGMA table_info({name})"):
            if row[1] not in documented[name]["columns"]:
                missing.append(f"{name}.{row[1]}")
    return missing


def markdown(conn: sqlite3.Connection) -> str:
    """docs/schema.md: every table, view and column, with types taken from the live schema."""
    out = [
        "# The stiwatch store: schema reference",
        "",
        "stiwatch keeps everything in one SQLite file (WAL mode, foreign keys on). This is the "
        "analysts' interface: query it with `sqlite3`, `stiwatch search`, or Datasette "
        "(`stiwatch serve`). Times are ISO 8601 strings in UTC, whole seconds, ending in `Z` "
        "(`2026-11-26T09:30:00Z`), so text order is time order. Label ids are those of "
        "`classifier/taxonomy.toml` (see the `labels` table).",
        "",
        "Generated by `stiwatch schema` from `db/docs.py`; a test keeps it in step with the "
        "migrations in `db/schema.py`.",
        "",
    ]
    for kind, docs in (("Table", TABLES), ("View", VIEWS)):
        for name, doc in docs.items():
            out += [f"## {kind} `{name}`", "", doc["description"], ""]
            out += ["| column | type | meaning |", "|---|---|---|"]
            types = {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info({name})")}
            for column, meaning in doc["columns"].items():
                # a view's expression column has no declared type: say what it is
                kind_of = types.get(column) or ("computed" if kind == "View" else "")
                out.append(f"| `{column}` | {kind_of} | {meaning} |")
            out.append("")
            if kind == "Table":
                out += [f"Keys and indexes: {'; '.join(_indexes(conn, name))}.", ""]
    for name, description in FTS.items():
        out += [f"## Full-text index `{name}`", "", description, ""]
    return "\n".join(out)


def _indexes(conn: sqlite3.Connection, table: str) -> list[str]:
    """The table's primary key, unique constraints and indexes as the live schema has them,
    for writing fast queries: e.g. "`tags_facet_value` (facet, value, item_id)"."""
    info = list(conn.execute(f"PRAGMA table_info({table})"))
    key = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
    found = [f"primary key ({', '.join(key)})"] if key else []
    for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
        if origin == "pk":
            continue  # a WITHOUT ROWID table's key, already named above
        columns = ", ".join(row[2] for row in conn.execute(f"PRAGMA index_info({name})"))
        if origin == "u":
            found.append(f"unique ({columns})")
            continue
        text = f"`{name}` ({columns})" if not unique else f"`{name}` unique ({columns})"
        if partial:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [name]).fetchone()
            text += " WHERE " + sql[0].split(" WHERE ", 1)[1].strip()
        found.append(text)
    return sorted(found, key=lambda text: (not text.startswith("primary"), text)) or ["none"]
