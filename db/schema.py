"""The store's schema as an ordered list of migrations.

Each migration runs once, in its own transaction, and records itself in ``schema_migrations``.
A file already at the latest version is left untouched; an older file is brought forward; a file
from a newer stiwatch is refused (we cannot know what its extra columns mean).

Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
import sqlite3

from .clock import utcnow
from .errors import MigrationFailed, SchemaTooNew, SQLiteTooOld


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _utc_with_z(columns: dict[str, tuple[str, ...]]) -> str:
    """SQL rewriting "...+00:00" timestamps in these columns as "...Z" (same instant)."""
    return "\n".join(
        f"UPDATE {table} SET {column} = substr({column}, 1, length({column}) - 6) || 'Z'"
        f" WHERE {column} LIKE '%+00:00';"
        for table, names in columns.items() for column in names)


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "sources, items, full-text index, crawl runs",
        """
        CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('feed', 'html', 'sitemap')),
            url TEXT NOT NULL,
            homepage TEXT,
            country TEXT,
            language TEXT,
            org_type TEXT,
            links TEXT,
            enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            etag TEXT,
            last_modified TEXT,
            last_crawled_at TEXT,
            last_ok_at TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            failing_since TEXT,
            last_error TEXT,
            last_flag TEXT
        );

        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            source_id TEXT NOT NULL REFERENCES sources(id),
            title TEXT,
            summary TEXT,
            body TEXT,
            language TEXT,
            published_at TEXT,
            date_source TEXT CHECK (date_source IN ('feed', 'page', 'text', 'fetched')),
            fetched_at TEXT NOT NULL,
            content_hash TEXT,
            duplicate_of INTEGER REFERENCES items(id),
            status TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial')),
            fetch_error TEXT,
            fetch_attempts INTEGER NOT NULL DEFAULT 1,
            classified_at TEXT
        );
        CREATE INDEX items_source_id ON items(source_id);
        CREATE INDEX items_published_at ON items(published_at);
        CREATE INDEX items_duplicate_of ON items(duplicate_of) WHERE duplicate_of IS NOT NULL;
        CREATE INDEX items_content_hash ON items(content_hash);
        CREATE INDEX items_partial ON items(source_id) WHERE status = 'partial';
        CREATE INDEX items_unclassified ON items(id) WHERE classified_at IS NULL;

        -- External-content FTS5 index: the text lives once, in items.
        CREATE VIRTUAL TABLE items_fts USING fts5(
            title, summary, body,
            content = 'items', content_rowid = 'id',
            tokenize = 'porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (rowid, title, summary, body)
            VALUES (new.id, new.title, new.summary, new.body);
        END;
        CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, summary, body)
            VALUES ('delete', old.id, old.title, old.summary, old.body);
        END;
        -- Only text changes touch the index; tagging or dedup updates stay cheap.
        CREATE TRIGGER items_au AFTER UPDATE OF title, summary, body ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, summary, body)
            VALUES ('delete', old.id, old.title, old.summary, old.body);
            INSERT INTO items_fts (rowid, title, summary, body)
            VALUES (new.id, new.title, new.summary, new.body);
        END;

        CREATE TABLE crawl_runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')),
            stats TEXT
        );
        """,
    ),
    Migration(
        2,
        "near-duplicate signatures",
        """
        CREATE TABLE item_signatures (
            item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            signature BLOB NOT NULL
        );
        CREATE TABLE signature_bands (
            band INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            PRIMARY KEY (band, bucket, item_id)
        ) WITHOUT ROWID;
        CREATE INDEX signature_bands_item ON signature_bands(item_id);
        """,
    ),
    Migration(
        3,
        "tags, analyst labels, label names, items_tagged view",
        """
        CREATE TABLE labels (
            facet TEXT NOT NULL,
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            taxonomy_version INTEGER NOT NULL,
            PRIMARY KEY (facet, id)
        );

        CREATE TABLE tags (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            facet TEXT NOT NULL CHECK (facet IN ('policy', 'area', 'domain', 'country', 'region')),
            value TEXT NOT NULL,
            score REAL,
            method TEXT NOT NULL
                CHECK (method IN ('model', 'rules', 'gazetteer', 'source', 'analyst')),
            model_version TEXT,
            tagged_at TEXT NOT NULL,
            PRIMARY KEY (item_id, facet, value)
        ) WITHOUT ROWID;
        CREATE INDEX tags_facet_value ON tags(facet, value, item_id);

        CREATE TABLE analyst_labels (
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            facet TEXT NOT NULL CHECK (facet IN ('policy', 'area', 'domain', 'country', 'region')),
            value TEXT NOT NULL,
            verdict INTEGER NOT NULL CHECK (verdict IN (0, 1)),
            labelled_at TEXT NOT NULL,
            PRIMARY KEY (item_id, facet, value)
        );

        CREATE VIEW items_tagged AS
        SELECT
            i.id,
            i.url,
            i.title,
            i.source_id,
            s.name AS source_name,
            i.published_at,
            i.language,
            i.status,
            i.duplicate_of,
            (SELECT t.value FROM tags t WHERE t.item_id = i.id AND t.facet = 'policy') AS policy,
            (SELECT t.score FROM tags t WHERE t.item_id = i.id AND t.facet = 'policy')
                AS policy_score,
            (SELECT group_concat(value, ',') FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'area' ORDER BY t.value)) AS areas,
            (SELECT group_concat(value, ',') FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'domain' ORDER BY t.value)) AS domains,
            (SELECT group_concat(value, ',') FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'country' ORDER BY t.value)) AS countries,
            (SELECT group_concat(value, ',') FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'region' ORDER BY t.value)) AS regions
        FROM items i
        LEFT JOIN sources s ON s.id = i.source_id;
        """,
    ),
    Migration(
        4,
        "subscribers and digest deliveries",
        """
        CREATE TABLE subscribers (
            email TEXT PRIMARY KEY,
            name TEXT,
            areas TEXT NOT NULL DEFAULT '[]',
            domains TEXT NOT NULL DEFAULT '[]',
            countries TEXT NOT NULL DEFAULT '[]',
            regions TEXT NOT NULL DEFAULT '[]',
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE deliveries (
            subscriber TEXT NOT NULL REFERENCES subscribers(email),
            period TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
            message_id TEXT,
            item_count INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,
            sent_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (subscriber, period)
        );
        CREATE INDEX deliveries_period_status ON deliveries(period, status);
        """,
    ),
    Migration(
        5,
        "scheduled runs",
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
            exit_code INTEGER,
            steps TEXT
        );
        """,
    ),
    Migration(
        6,
        "article URL aliases",
        """
        CREATE TABLE item_urls (
            url TEXT PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE
        ) WITHOUT ROWID;
        CREATE INDEX item_urls_item ON item_urls(item_id);
        """,
    ),
    Migration(
        7,
        "items_tagged_json view (tags as JSON arrays)",
        """
        CREATE VIEW items_tagged_json AS
        SELECT
            i.id,
            i.title,
            i.url,
            i.source_id,
            i.published_at,
            (SELECT t.value FROM tags t WHERE t.item_id = i.id AND t.facet = 'policy') AS policy,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'area' ORDER BY t.value)) AS areas,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'domain' ORDER BY t.value)) AS domains,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'country' ORDER BY t.value)) AS countries,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'region' ORDER BY t.value)) AS regions
        FROM items i
        WHERE i.duplicate_of IS NULL;
        """,
    ),
    Migration(8, "timestamps in one form: UTC with Z", _utc_with_z({
        # db.clock wrote "+00:00" while crawled dates ended in "Z". Frozen, like every
        # migration: a later timestamp column is written with Z from the start.
        "schema_migrations": ("applied_at",),
        "sources": ("added_at", "updated_at", "last_crawled_at", "last_ok_at", "failing_since"),
        "items": ("published_at", "fetched_at", "classified_at"),
        "crawl_runs": ("started_at", "finished_at"),
        "tags": ("tagged_at",),
        "analyst_labels": ("labelled_at",),
        "subscribers": ("created_at", "updated_at"),
        "deliveries": ("next_attempt_at", "sent_at", "updated_at"),
        "runs": ("started_at", "finished_at"),
    })),
    Migration(
        9,
        "an item whose text changes is classified again",
        """
        -- In SQL rather than in save_items so that every writer (a --refresh crawl, a partial
        -- item fetched in full, an analyst's own UPDATE) is covered. The WHEN clause keeps an
        -- unchanged rewrite (a crawl saving the same text again) from discarding the tags'
        -- date; IS NOT treats NULL as a value (a body first read after a partial fetch).
        -- Its near-duplicates copied its old tags: they copy the new ones once it is re-tagged.
        CREATE TRIGGER items_text_changed AFTER UPDATE OF title, summary, body ON items
        WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary
            OR old.body IS NOT new.body
        BEGIN
            UPDATE items SET classified_at = NULL
            WHERE (id = new.id OR duplicate_of = new.id) AND classified_at IS NOT NULL;
        END;
        """,
    ),
    Migration(
        10,
        "CJK full-text index (character pairs) with its queue of items to index",
        """
        -- Chinese, Japanese and Korean are written without spaces between words, which
        -- unicode61 needs: items containing CJK letters are indexed again here, each run of
        -- CJK letters written as its character pairs (db/cjk.py). Those pairs are made in
        -- Python, so the triggers only queue the items whose text is new or changed, whoever
        -- writes them; Store.index_cjk() indexes the queue (at the end of save_items and when
        -- a store is opened for writing), skipping items without CJK letters.
        CREATE VIRTUAL TABLE items_fts_cjk USING fts5(
            title, summary, body,
            tokenize = 'porter unicode61 remove_diacritics 2'
        );
        CREATE TABLE items_cjk_pending (
            item_id INTEGER PRIMARY KEY
        );
        CREATE TRIGGER items_cjk_ai AFTER INSERT ON items BEGIN
            INSERT OR IGNORE INTO items_cjk_pending (item_id) VALUES (new.id);
        END;
        CREATE TRIGGER items_cjk_au AFTER UPDATE OF title, summary, body ON items
        WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary
            OR old.body IS NOT new.body
        BEGIN
            DELETE FROM items_fts_cjk WHERE rowid = old.id;
            INSERT OR IGNORE INTO items_cjk_pending (item_id) VALUES (new.id);
        END;
        CREATE TRIGGER items_cjk_ad AFTER DELETE ON items BEGIN
            DELETE FROM items_fts_cjk WHERE rowid = old.id;
            DELETE FROM items_cjk_pending WHERE item_id = old.id;
        END;
        -- Every stored item is looked at once (in Python, in batches, at the next open).
        INSERT INTO items_cjk_pending (item_id) SELECT id FROM items;
        """,
    ),
    Migration(
        11,
        "an analyst's policy = 0 scores 0.0 (the probability of relevance), not 1.0",
        """
        -- A policy tag's score is the probability that the item is policy-relevant: an
        -- analyst's "not policy" had been stored with 1.0, which read as certainly relevant.
        UPDATE tags SET score = 0.0
        WHERE method = 'analyst' AND facet = 'policy' AND value = '0';
        """,
    ),
    Migration(
        12,
        "a delivery whose message went out without an answer is in doubt, not resent",
        """
        -- Set when the whole message was sent but the server's answer never came (a timeout or
        -- a lost connection after DATA): the server may have it, so the row stays `sending`
        -- and no run sends it again until `stiwatch digest resolve` says what happened. A row
        -- `sending` without it is one a killed sender left, resent once with its Message-ID.
        ALTER TABLE deliveries ADD COLUMN unanswered_at TEXT;
        """,
    ),
    Migration(
        13,
        "a near-duplicate points at its story's original, never at another copy",
        """
        -- Search, digests, trends and the classifier read a story as one original and the
        -- items whose duplicate_of names it. A text can be nearest to a copy (C resembles B,
        -- a copy of A, more than A), or an original can become a copy when it is re-fetched:
        -- these triggers keep every duplicate_of on the story's original, whoever writes it.
        -- Chains stored before are flattened first (a cycle's members become originals).
        CREATE TEMP TABLE dup_chain AS
        WITH RECURSIVE up(id, target, depth) AS (
            SELECT id, duplicate_of, 1 FROM items WHERE duplicate_of IS NOT NULL
            UNION ALL
            SELECT up.id, i.duplicate_of, up.depth + 1
            FROM up JOIN items i ON i.id = up.target
            WHERE i.duplicate_of IS NOT NULL AND up.depth < 64
        )
        SELECT id, target, depth FROM up;
        UPDATE items SET classified_at = NULL, duplicate_of = nullif(
            (SELECT target FROM dup_chain c WHERE c.id = items.id ORDER BY depth DESC LIMIT 1),
            items.id)
        WHERE id IN (SELECT id FROM dup_chain WHERE depth > 1);
        DROP TABLE dup_chain;
        CREATE TRIGGER items_duplicate_of_ai AFTER INSERT ON items
        WHEN new.duplicate_of IS NOT NULL
        BEGIN
            UPDATE items SET duplicate_of = nullif(coalesce(
                (SELECT o.duplicate_of FROM items o WHERE o.id = new.duplicate_of),
                new.duplicate_of), new.id)
            WHERE id = new.id;
        END;
        CREATE TRIGGER items_duplicate_of_au AFTER UPDATE OF duplicate_of ON items
        WHEN old.duplicate_of IS NOT new.duplicate_of
        BEGIN
            -- An item never copies a copy, nor itself through its own copy: re-fetched, an
            -- original resembling its copy stays the original.
            UPDATE items SET duplicate_of = nullif(coalesce(
                (SELECT o.duplicate_of FROM items o WHERE o.id = new.duplicate_of),
                new.duplicate_of), new.id)
            WHERE id = new.id AND new.duplicate_of IS NOT NULL;
            -- Its tags were its own or its old original's: it is tagged (or inherits) again.
            UPDATE items SET classified_at = NULL WHERE id = new.id;
            -- An original that became a copy takes its copies along to its own original.
            UPDATE items SET classified_at = NULL,
                duplicate_of = (SELECT duplicate_of FROM items WHERE id = new.id)
            WHERE duplicate_of = new.id
              AND (SELECT duplicate_of FROM items WHERE id = new.id) IS NOT NULL;
        END;
        """,
    ),
    Migration(
        14,
        "a delivery records the last item its digest was built from",
        """
        -- A story stored after its week's digest went out (a source down over the weekend, a
        -- press release dated days before it was posted) would never be mailed: the reader's
        -- next digest lists the items published earlier whose id is above this one.
        ALTER TABLE deliveries ADD COLUMN through_item_id INTEGER;
        """,
    ),
    Migration(
        15,
        "INSERT OR REPLACE on items keeps both full-text indexes in step",
        """
        -- INSERT OR REPLACE (sqlite-utils insert --replace) removes the row it replaces
        -- without firing delete triggers (unless recursive_triggers is on), so its words stayed
        -- in items_fts and items_fts_cjk and a search for them found the new row. Before each
        -- insert the rows it could replace (same id or url) are noted; an insert that goes
        -- ahead removed them, and its AFTER INSERT triggers take their words out. An insert
        -- that is ignored, fails or turns into an upsert's UPDATE fires no AFTER INSERT, and
        -- the next insert's note replaces the stale one.
        CREATE TABLE items_replaced (
            id INTEGER PRIMARY KEY,
            title TEXT,
            summary TEXT,
            body TEXT
        );
        CREATE TRIGGER items_replaced_bi BEFORE INSERT ON items BEGIN
            DELETE FROM items_replaced;
            INSERT INTO items_replaced (id, title, summary, body)
            SELECT id, title, summary, body FROM items WHERE id = new.id OR url = new.url;
        END;
        DROP TRIGGER items_ai;
        CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, summary, body)
            SELECT 'delete', id, title, summary, body FROM items_replaced;
            INSERT INTO items_fts (rowid, title, summary, body)
            VALUES (new.id, new.title, new.summary, new.body);
        END;
        DROP TRIGGER items_cjk_ai;
        CREATE TRIGGER items_cjk_ai AFTER INSERT ON items BEGIN
            DELETE FROM items_fts_cjk WHERE rowid IN (SELECT id FROM items_replaced);
            INSERT OR IGNORE INTO items_cjk_pending (item_id) VALUES (new.id);
        END;
        -- With recursive_triggers on, the replaced row's delete triggers take its words out
        -- themselves: the note is dropped so that they are not taken out twice.
        DROP TRIGGER items_ad;
        CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, title, summary, body)
            VALUES ('delete', old.id, old.title, old.summary, old.body);
            DELETE FROM items_replaced WHERE id = old.id;
        END;
        """,
    ),
    Migration(
        16,
        "the store's own random id",
        """
        -- Digest Message-IDs include it: a second installation (a pilot beside production)
        -- mailing the same reader from the same domain would otherwise send the same
        -- Message-ID, and mail providers drop a message whose Message-ID they have seen.
        -- A backup keeps it, so a digest resent from a restored backup is still one message.
        CREATE TABLE store_info (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        INSERT INTO store_info (key, value)
        VALUES ('installation_id', lower(hex(randomblob(16))));
        """,
    ),
    Migration(
        17,
        "validators of a source's further listings (the sitemaps of a sitemap index)",
        """
        -- Only the source's own URL kept its ETag/Last-Modified (in sources): every sitemap an
        -- index names was downloaded in full on every crawl, however unchanged.
        CREATE TABLE listing_validators (
            source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            etag TEXT,
            last_modified TEXT,
            PRIMARY KEY (source_id, url)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        18,
        "an index that counts items by language, status and originality without reading them",
        """
        -- `stiwatch serve` counts the items table's language and status facets, and counts
        -- items_tagged_json (originals only), on every first page: each read the whole items
        -- table, bodies and all (0.7-0.9 s each at 200,000 items, timed out at a million). This
        -- index holds those three columns, so each count reads it alone.
        CREATE INDEX items_language_status ON items(language, status, duplicate_of);
        """,
    ),
    Migration(
        19,
        "a count of an item's marks for classification, so classify keeps a mark set meanwhile",
        """
        -- `classify` reads a batch, classifies it (seconds), then writes its tags and sets
        -- classified_at. An analyst's `tag --add policy=1` (or a copy's original corrected, a
        -- text refreshed) committed in between cleared classified_at, and the write set it
        -- again over tags made without the change: the item was never tagged anew. Every mark
        -- now counts here, whoever sets it; classify notes the count when it reads an item and
        -- writes the item only if the count is the same (db/tags.py:save_classifications).
        ALTER TABLE items ADD COLUMN classify_marks INTEGER NOT NULL DEFAULT 0;
        CREATE TRIGGER items_marked AFTER UPDATE OF classified_at ON items
        WHEN new.classified_at IS NULL
        BEGIN
            UPDATE items SET classify_marks = classify_marks + 1 WHERE id = new.id;
        END;
        -- items_text_changed marks only items already classified: a new text of an item still
        -- waiting (the one a running classify is reading) counts too
        CREATE TRIGGER items_text_marked AFTER UPDATE OF title, summary, body ON items
        WHEN new.classified_at IS NULL AND (old.title IS NOT new.title
            OR old.summary IS NOT new.summary OR old.body IS NOT new.body)
        BEGIN
            UPDATE items SET classify_marks = classify_marks + 1 WHERE id = new.id;
        END;
        """,
    ),
    Migration(
        20,
        "hosts paused by a long Retry-After, until when",
        """
        -- A Retry-After longer than a crawl waits paused the host for the rest of that crawl
        -- only: a host that asked for 7200 s was asked again by the crawl cron started an
        -- hour later. Each crawl sends such a host nothing until not_before has passed.
        CREATE TABLE host_pauses (
            host TEXT PRIMARY KEY,
            not_before TEXT NOT NULL,
            reason TEXT NOT NULL,
            paused_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        21,
        "items_tagged_json reads its newest originals by date, whatever ANALYZE recorded; "
        "items_tagged counts its languages from an index",
        """
        -- Once the store is ANALYZEd, SQLite takes `duplicate_of IS NULL` for a rare value of
        -- items_language_status (its statistics count each NULL as a value of its own): the
        -- view's first page read every original by that index and sorted them all by date,
        -- 1.7-2.4 s at 500,000 items and, cold, over `stiwatch serve`'s 5 s limit (an error
        -- page). The unary + keeps the condition off the indexes: the page reads
        -- items_published_at, newest first, and the count still reads items_language_status.
        -- Same columns, same rows.
        DROP VIEW items_tagged_json;
        CREATE VIEW items_tagged_json AS
        SELECT
            i.id,
            i.title,
            i.url,
            i.source_id,
            i.published_at,
            (SELECT t.value FROM tags t WHERE t.item_id = i.id AND t.facet = 'policy') AS policy,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'area' ORDER BY t.value)) AS areas,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'domain' ORDER BY t.value)) AS domains,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'country' ORDER BY t.value)) AS countries,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = i.id AND t.facet = 'region' ORDER BY t.value)) AS regions
        FROM items i
        WHERE +i.duplicate_of IS NULL;
        -- items_tagged's language facet: the view's LEFT JOIN to sources needs each item's
        -- source_id, which this index lacked, so the count read every item's row, bodies and
        -- all (1.0 s at 500,000 items, at serve's 1 s facet limit); with source_id it reads the
        -- index alone (0.1 s). The counts of migration 18 read it as before.
        DROP INDEX items_language_status;
        CREATE INDEX items_language_status ON items(language, status, duplicate_of, source_id);
        """,
    ),
    Migration(
        22,
        "an item's classification state in a narrow table of its own",
        """
        -- `classify` set items.classified_at on every item it tagged: SQLite rewrites a whole
        -- row to change one column, title, summary and body included (12 KB for a 2,000-word
        -- article), a quarter of a rules-only classify's time; every mark (a correction, a new
        -- text) rewrote it again to count classify_marks. Both now live in a row of a few
        -- bytes per item. The columns leave items rather than stay behind frozen: a query
        -- still reading them fails by name instead of answering from stale values.
        CREATE TABLE item_classification (
            item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
            classified_at TEXT,
            classify_marks INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO item_classification (item_id, classified_at, classify_marks)
        SELECT id, classified_at, classify_marks FROM items;
        CREATE INDEX item_classification_pending ON item_classification(item_id)
        WHERE classified_at IS NULL;
        -- The triggers and the index that named the old columns go first (SQLite refuses to
        -- drop a column they name), then come back reading the new table.
        DROP TRIGGER items_marked;
        DROP TRIGGER items_text_marked;
        DROP TRIGGER items_text_changed;
        DROP TRIGGER items_duplicate_of_au;
        DROP INDEX items_unclassified;
        ALTER TABLE items DROP COLUMN classified_at;
        ALTER TABLE items DROP COLUMN classify_marks;
        -- Every item has its row, whoever inserts it. An INSERT OR REPLACE keeping the id
        -- (without foreign keys on, which would have deleted the old row) marks it instead.
        CREATE TRIGGER items_classification_ai AFTER INSERT ON items BEGIN
            INSERT INTO item_classification (item_id) VALUES (new.id)
            ON CONFLICT (item_id) DO UPDATE SET classified_at = NULL;
        END;
        -- As migration 19 counted on items: every mark, whoever sets it.
        CREATE TRIGGER item_classification_marked AFTER UPDATE OF classified_at
        ON item_classification
        WHEN new.classified_at IS NULL
        BEGIN
            UPDATE item_classification SET classify_marks = classify_marks + 1
            WHERE item_id = new.item_id;
        END;
        -- Migrations 9 and 19 as one: a new text marks the item once, whether it was
        -- classified or still waiting (a running classify may be reading it), and marks
        -- its classified copies (they copied its old tags).
        CREATE TRIGGER items_text_changed AFTER UPDATE OF title, summary, body ON items
        WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary
            OR old.body IS NOT new.body
        BEGIN
            UPDATE item_classification SET classified_at = NULL WHERE item_id = new.id;
            UPDATE item_classification SET classified_at = NULL
            WHERE item_id IN (SELECT id FROM items WHERE duplicate_of = new.id)
              AND classified_at IS NOT NULL;
        END;
        -- Migration 13's, with its marks in the new table.
        CREATE TRIGGER items_duplicate_of_au AFTER UPDATE OF duplicate_of ON items
        WHEN old.duplicate_of IS NOT new.duplicate_of
        BEGIN
            -- An item never copies a copy, nor itself through its own copy: re-fetched, an
            -- original resembling its copy stays the original.
            UPDATE items SET duplicate_of = nullif(coalesce(
                (SELECT o.duplicate_of FROM items o WHERE o.id = new.duplicate_of),
                new.duplicate_of), new.id)
            WHERE id = new.id AND new.duplicate_of IS NOT NULL;
            -- Its tags were its own or its old original's: it is tagged (or inherits) again.
            UPDATE item_classification SET classified_at = NULL WHERE item_id = new.id;
            -- An original that became a copy takes its copies along to its own original,
            -- marked before they move (they are found by their old duplicate_of).
            UPDATE item_classification SET classified_at = NULL
            WHERE item_id IN (SELECT id FROM items WHERE duplicate_of = new.id)
              AND (SELECT duplicate_of FROM items WHERE id = new.id) IS NOT NULL;
            UPDATE items SET duplicate_of = (SELECT duplicate_of FROM items WHERE id = new.id)
            WHERE duplicate_of = new.id
              AND (SELECT duplicate_of FROM items WHERE id = new.id) IS NOT NULL;
        END;
        """,
    ),
    Migration(
        23,
        "a reader's saved full-text query",
        """
        -- Words the taxonomy has no label for (a programme, a law), in `stiwatch search`'s
        -- syntax; NULL: none. One more filter of the digest, ANDed with the others.
        ALTER TABLE subscribers ADD COLUMN query TEXT;
        """,
    ),
    Migration(
        24,
        "items_tagged_json shows each story as the copy the digest and search show",
        """
        -- A story (an original and its near-duplicates) was listed as its original: a wire's
        -- report stored before the ministry's own page was listed with the wire's link, title
        -- and date, where the digest and `stiwatch search` show the ministry's. Each story is
        -- now the row of the item they show: its first copy (by id) from an official source
        -- when the original is from none, else the original. The org types are
        -- db.OFFICIAL_ORG_TYPES as of this version (a test holds them equal). `id` stays the
        -- story's, its original's: the tag columns and filters (policy, areas, countries...,
        -- `_tags_any`) read the original's tags, as the digest does, and `id__gt` keeps the
        -- stories first stored after an item (a later copy of an older story is no new story).
        -- `item_id` is the item shown; a date filter reads its date, which the page shows.
        --
        -- Each item is checked by index lookups (the first page still reads items_published_at
        -- newest first and stops at its rows), the copies' sources from the index of copies:
        -- with source_id in it, counting the view's 168,000 stories of 200,000 items takes
        -- 0.4-0.5 s where reading each copy's row took 0.8-1.0 s (load 7; 0.03 s before).
        DROP INDEX items_duplicate_of;
        CREATE INDEX items_duplicate_of ON items(duplicate_of, source_id)
        WHERE duplicate_of IS NOT NULL;
        DROP VIEW items_tagged_json;
        CREATE VIEW items_tagged_json AS
        SELECT
            -- CAST: INTEGER affinity, so that Datasette's `id=5` (a string) finds the row
            CAST(coalesce(i.duplicate_of, i.id) AS INTEGER) AS id,
            i.id AS item_id,
            i.title,
            i.url,
            i.source_id,
            i.published_at,
            (SELECT t.value FROM tags t WHERE t.item_id = coalesce(i.duplicate_of, i.id)
                AND t.facet = 'policy') AS policy,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = coalesce(i.duplicate_of, i.id) AND t.facet = 'area'
                ORDER BY t.value)) AS areas,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = coalesce(i.duplicate_of, i.id) AND t.facet = 'domain'
                ORDER BY t.value)) AS domains,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = coalesce(i.duplicate_of, i.id) AND t.facet = 'country'
                ORDER BY t.value)) AS countries,
            (SELECT json_group_array(value) FROM (SELECT t.value FROM tags t
                WHERE t.item_id = coalesce(i.duplicate_of, i.id) AND t.facet = 'region'
                ORDER BY t.value)) AS regions
        FROM items i
        -- The unary + keep the conditions off the indexes (migration 21): the rows are read
        -- by date, each item checked once.
        WHERE CASE WHEN i.duplicate_of IS NULL
            -- an original, unless it is from no official source and an official copy is
            -- (most originals have no copy: one lookup in items_duplicate_of)
            THEN NOT EXISTS (SELECT 1 FROM items c WHERE c.duplicate_of = i.id
                    AND +c.source_id IN (SELECT s.id FROM sources s WHERE s.org_type IN
                    ('academy', 'funding_agency', 'intergovernmental', 'ministry',
                     'research_org')))
                OR +i.source_id IN (SELECT s.id FROM sources s WHERE s.org_type IN
                    ('academy', 'funding_agency', 'intergovernmental', 'ministry',
                     'research_org'))
            -- a copy: the first from an official source, of an original from none
            ELSE +i.source_id IN (SELECT s.id FROM sources s WHERE s.org_type IN
                    ('academy', 'funding_agency', 'intergovernmental', 'ministry',
                     'research_org'))
                AND NOT EXISTS (SELECT 1 FROM items o WHERE o.id = i.duplicate_of
                    AND +o.source_id IN (SELECT s.id FROM sources s WHERE s.org_type IN
                    ('academy', 'funding_agency', 'intergovernmental', 'ministry',
                     'research_org')))
                AND NOT EXISTS (SELECT 1 FROM items e WHERE e.duplicate_of = i.duplicate_of
                    AND e.id < i.id AND +e.source_id IN (SELECT s.id FROM sources s
                    WHERE s.org_type IN ('academy', 'funding_agency', 'intergovernmental', 'ministry',
                     'research_org')))
            END;
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1].version
# The oldest SQLite library the migrations run on (ALTER TABLE ... DROP COLUMN).
MIN_SQLITE = (3, 35, 0)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0 for a new, empty file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection, target: int | None = None) -> list[int]:
    """Apply every migration newer than the file's version (up to ``target``).

    Returns the versions applied. Each migration commits on its own, so a crash between two
    leaves a valid, older file that the next open finishes migrating.
    """
    target = LATEST_VERSION if target is None else target
    # BEGIN IMMEDIATE serialises two processes opening the same old file at once.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        version = current_version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if version > LATEST_VERSION:
        raise SchemaTooNew(too_new(version))
    if version < target and sqlite3.sqlite_version_info < MIN_SQLITE:
        # Migration 22 drops columns (ALTER TABLE ... DROP COLUMN, SQLite 3.35): an older
        # library would fail there with a bare syntax error, halfway through a new store.
        raise SQLiteTooOld(
            f"SQLite {sqlite3.sqlite_version} is too old: stiwatch needs SQLite "
            f"{'.'.join(map(str, MIN_SQLITE))} or later (the library Python's sqlite3 module "
            f"uses; Python 3.11 from python.org or Debian 12 has it); the file is left at "
            f"schema version {version}")
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= version or migration.version > target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if current_version(conn) >= migration.version:
                conn.execute("COMMIT")
                continue
            for statement in _statements(migration.sql):
                try:
                    conn.execute(statement)
                except sqlite3.Error as error:
                    # A lock or a read-only file is the caller's to explain (it is not this
                    # step's fault); anything else names the step that broke.
                    if environmental(error):
                        raise
                    raise MigrationFailed(
                        f"migration {migration.version} ({migration.name}) failed: {error}; "
                        f"the file is left at schema version {current_version(conn)}"
                    ) from error
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utcnow()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls some errors back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied


def too_new(version: int) -> str:
    """SchemaTooNew's message for a file at ``version``."""
    return (f"schema version {version} is newer than this stiwatch knows (up to "
            f"{LATEST_VERSION}): upgrade stiwatch to open it")


def environmental(error: sqlite3.Error) -> bool:
    """Whether an SQLite error comes from the file's surroundings (a lock held elsewhere, no
    permission to write, a full disk) rather than from the SQL that ran."""
    text = str(error)
    return any(marker in text for marker in (
        "database is locked", "readonly database", "unable to open database file",
        "disk is full", "disk I/O error"))


def _statements(sql: str) -> list[str]:
    """Split a migration script into complete statements (triggers contain semicolons)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
