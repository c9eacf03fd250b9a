"""The `items` table (one row per canonical article URL) and its near-duplicate signatures."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from .cjk import has_cjk, index_text
from .clock import utcnow
from .errors import NoSuchItem, StoreError

ITEM_COLUMNS = (
    "url", "source_id", "title", "summary", "body", "language", "published_at", "date_source",
    "fetched_at", "content_hash", "duplicate_of", "status", "fetch_error",
)


def chunks(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """``values`` in slices small enough to bind as one ``IN (...)`` list (SQLite caps the
    number of bound parameters)."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def insert_rows(conn: Any, head: str, rows: list[tuple], per_statement: int = 100) -> None:
    """Run ``head`` ("INSERT ... INTO t (a, b)") for ``rows`` as multi-row VALUES statements:
    for many small rows (a batch's tags) half the time of executemany, which steps one
    statement per row."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    for chunk in chunks(rows, per_statement):
        conn.execute(f"{head} VALUES {', '.join([one] * len(chunk))}",
                     [value for row in chunk for value in row])


class ItemsMixin:
    def save_items(self, rows: Iterable[dict[str, Any]], *,
                   attempted: bool = True) -> list[tuple[int, bool]]:
        """Insert or update items by canonical URL, all in one transaction.

        Returns ``(item_id, created)`` per row, in order. An existing row keeps its id (and
        therefore its tags); a row that is saved ``partial`` again counts one more fetch attempt.
        A complete row is never downgraded to a partial one, and a stored ``published_at`` is
        never replaced by a fetch time (``date_source = 'fetched'``). ``attempted=False``: the
        pages were not requested at all (robots.txt forbids them), so no attempt is counted
        (a new row starts at 0).
        """
        results: list[tuple[int, bool]] = []
        with self.write():
            for row in rows:
                unknown = set(row) - set(ITEM_COLUMNS)
                if unknown:
                    raise StoreError(f"unknown item column(s): {', '.join(sorted(unknown))}")
                if not row.get("url") or not row.get("source_id"):
                    raise StoreError("an item needs a url and a source_id")
                row = {"fetched_at": utcnow(), "status": "complete", **row}
                existing = self.conn.execute(
                    "SELECT id, status, fetch_attempts, published_at FROM items WHERE url = ?",
                    [row["url"]],
                ).fetchone()
                if existing is None:
                    if not attempted:
                        row["fetch_attempts"] = 0
                    columns = list(row)
                    cursor = self.conn.execute(
                        f"INSERT INTO items ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' for _ in columns)})",
                        [row[c] for c in columns],
                    )
                    results.append((cursor.lastrowid, True))
                    continue
                item_id, status, attempts, published_at = existing
                if status == "complete" and row["status"] == "partial":
                    results.append((item_id, False))
                    continue
                # The source that first stored it keeps it: another listing naming the same
                # article (an aggregator's feed) must not move it between sources.
                changes = {k: v for k, v in row.items() if k not in ("url", "source_id")}
                if published_at and row.get("date_source") == "fetched":
                    # A fetch time says when we first saw an undated article; a later fetch
                    # would move it into the current week, back into digests and trends.
                    changes.pop("published_at", None)
                    changes.pop("date_source", None)
                counted = row["status"] == "partial" and attempted
                changes["fetch_attempts"] = attempts + 1 if counted else attempts
                # Plain UPDATE: sqlite-utils' update() first reads the whole row back (SELECT *,
                # the stored body with it) to check that it exists, which the SELECT above did.
                self.conn.execute(
                    f"UPDATE items SET {', '.join(f'{column} = ?' for column in changes)} "
                    "WHERE id = ?", [*changes.values(), item_id])
                results.append((item_id, False))
            self.index_cjk()
        return results

    def index_cjk(self, batch: int = 1000) -> int:
        """Index the queued items that contain CJK letters in items_fts_cjk; returns how many
        items were looked at. The triggers queue every item whose text is new or changed,
        whoever writes it: save_items indexes its own at once, other writers' are indexed at
        the next save or writable open (after migration 10, every item once, in batches).
        """
        done = 0
        # Checked before taking the write lock: opening a store must not wait for a crawl.
        while self.conn.execute("SELECT 1 FROM items_cjk_pending LIMIT 1").fetchone():
            with self.write():
                rows = self.conn.execute(
                    "SELECT p.item_id, i.title, i.summary, i.body FROM items_cjk_pending p "
                    "LEFT JOIN items i ON i.id = p.item_id ORDER BY p.item_id "
                    f"LIMIT {int(batch)}").fetchall()
                if not rows:
                    break  # another process indexed the queue while this one waited for the lock
                cjk = [row for row in rows if has_cjk(row[1]) or has_cjk(row[2])
                       or has_cjk(row[3])]
                if cjk:
                    self.conn.executemany("DELETE FROM items_fts_cjk WHERE rowid = ?",
                                          [(row[0],) for row in cjk])
                    self.conn.executemany(
                        "INSERT INTO items_fts_cjk (rowid, title, summary, body) "
                        "VALUES (?, ?, ?, ?)",
                        [(item_id, index_text(title), index_text(summary), index_text(body))
                         for item_id, title, summary, body in cjk])
                self.conn.execute("DELETE FROM items_cjk_pending WHERE item_id <= ?",
                                  [rows[-1][0]])
            done += len(rows)
        return done

    def get_item(self, item_id: int) -> dict[str, Any]:
        if not -2**63 <= item_id < 2**63:  # past SQLite's integers: no such id, not an error
            raise NoSuchItem(f"no item with id {item_id}")
        rows = self.query("SELECT * FROM items WHERE id = ?", [item_id])
        if not rows:
            raise NoSuchItem(f"no item with id {item_id}")
        return rows[0]

    def item_id_for_url(self, url: str) -> int | None:
        return self.scalar("SELECT id FROM items WHERE url = ?", [url])

    def known_urls(self, urls: Iterable[str]) -> set[str]:
        """Which of ``urls`` are already stored as complete items (not worth fetching again)."""
        return self._urls_in("SELECT url FROM items WHERE status = 'complete' AND url IN ({})",
                             list(dict.fromkeys(urls)))

    def _urls_in(self, sql: str, urls: list[str]) -> set[str]:
        """The first column of ``sql`` (with ``{}`` for the placeholders) over ``urls``, in
        chunks that stay under SQLite's limit on bound parameters."""
        found: set[str] = set()
        for chunk in chunks(urls):
            found.update(row[0] for row in self.conn.execute(
                sql.format(", ".join("?" for _ in chunk)), chunk))
        return found

    def add_url_aliases(self, aliases: Iterable[tuple[str, int]]) -> None:
        """Remember that each ``(url, item_id)``: a listing URL naming a stored article whose
        canonical URL is another (a redirect, a page's rel=canonical)."""
        with self.write():
            self.conn.executemany(
                "INSERT OR REPLACE INTO item_urls (url, item_id) VALUES (?, ?)", list(aliases)
            )

    def known_listing_urls(self, urls: Iterable[str]) -> set[str]:
        """Which of ``urls`` name a complete stored item, directly or through an alias."""
        urls = list(dict.fromkeys(urls))
        known = self.known_urls(urls)
        rest = [url for url in urls if url not in known]
        return known | self._urls_in(
            "SELECT a.url FROM item_urls a JOIN items i ON i.id = a.item_id "
            "WHERE i.status = 'complete' AND a.url IN ({})", rest)

    def partial_items(self, source_id: str) -> list[dict[str, Any]]:
        """Items of a source stored from feed data only, to be fetched again."""
        return self.query(
            "SELECT * FROM items WHERE source_id = ? AND status = 'partial' ORDER BY id",
            [source_id],
        )

    # -- near-duplicate signatures --------------------------------------------------------

    def save_signature(self, item_id: int, signature: bytes, buckets: list[int]) -> None:
        """Store an item's similarity signature and its LSH buckets (one per band)."""
        with self.write():
            self.conn.execute(
                "INSERT OR REPLACE INTO item_signatures (item_id, signature) VALUES (?, ?)",
                [item_id, signature],
            )
            self.conn.execute("DELETE FROM signature_bands WHERE item_id = ?", [item_id])
            self.conn.executemany(
                "INSERT OR IGNORE INTO signature_bands (band, bucket, item_id) VALUES (?, ?, ?)",
                [(band, bucket, item_id) for band, bucket in enumerate(buckets)],
            )

    def signature_candidates(self, buckets: list[int]) -> dict[int, bytes]:
        """Items sharing at least one LSH bucket with ``buckets``, with their signatures."""
        if not buckets:
            return {}
        clauses = " OR ".join("(b.band = ? AND b.bucket = ?)" for _ in buckets)
        params = [value for pair in enumerate(buckets) for value in pair]
        rows = self.conn.execute(
            f"""SELECT DISTINCT s.item_id, s.signature
                FROM signature_bands b JOIN item_signatures s ON s.item_id = b.item_id
                WHERE {clauses}""",
            params,
        )
        return {item_id: signature for item_id, signature in rows}
