"""Reading the store for analysts: full-text search (FTS5, bm25) and a streaming export.

Search is rank-first: FTS5 returns matches already ordered by bm25 (``ORDER BY rank``), the
filters are checked row by row on that stream, and the loop stops at ``limit``. Snippets, copy
counts and tags are computed only for the rows returned.

bm25 costs about 5 microseconds per matching row (FTS5 reads each row's positions and size), so a
word found in 50,000 items would take a quarter of a second to rank. Ranking is therefore done
among the ``RANK_WINDOW`` most recently stored matches (found cheaply by walking the index in
rowid order); a query matching fewer items is ranked exactly, and when the window does not fill
the page (selective filters) the search is repeated over every match. ``exact=True`` always
ranks every match.
"""

from __future__ import annotations

from datetime import datetime
import re
import sqlite3
from typing import Any, Iterator, Sequence

from .errors import StoreError

# bm25 weights per items_fts column: a word in the title counts most, then the summary.
TITLE_WEIGHT, SUMMARY_WEIGHT, BODY_WEIGHT = 10.0, 4.0, 1.0
RANKING = f"bm25({TITLE_WEIGHT}, {SUMMARY_WEIGHT}, {BODY_WEIGHT})"
HIGHLIGHT = ("**", "**")
RANK_WINDOW = 5_000
TAG_FACETS = ("area", "domain", "country", "region")
LIST_KEYS = {"area": "areas", "domain": "domains", "country": "countries", "region": "regions"}

# A bare word with inner punctuation ("research-security", "U.S.", "G7's") is a syntax error in
# FTS5; quoted, it becomes the phrase the tokenizer would make of it anyway.
_TOKEN = re.compile(r'"[^"]*"?|[^\s"()]+|[()]')
_PUNCTUATED = re.compile(r"\w[\w\-./'’&@#]*\w\.?|\w\.", re.UNICODE)


class BadQuery(StoreError):
    """A search query that FTS5 cannot parse (or a filter that cannot be applied)."""


def fts_query(text: str) -> str:
    """The user's query as FTS5 syntax: punctuated words become phrases, the rest is kept."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if re.fullmatch(r"-\w+\*?", token, re.UNICODE) and out:
            out += ["NOT", token[1:]]  # web-search habit: `quantum -computing`
            continue
        star = token.endswith("*") and not token.startswith('"')
        word = token[:-1] if star else token
        if _PUNCTUATED.fullmatch(word) and not re.fullmatch(r"\w+", word, re.UNICODE):
            token = f'"{word}"' + ("*" if star else "")
        out.append(token)
    return " ".join(out)


def _explain(error: sqlite3.OperationalError, query: str) -> BadQuery:
    message = str(error).removeprefix("fts5: ").replace('near ""', "at the end of the query")
    if message.startswith("no such column"):
        message += " (a word before a colon names a column: title, summary or body)"
    return BadQuery(
        f"cannot search for {query!r}: {message}. Use words, \"quoted phrases\", AND, OR, NOT "
        "(in capitals), parentheses and prefix* (see `stiwatch search --help`)."
    )


def _is_query_error(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return any(
        marker in text
        for marker in ("fts5", "no such column", "unterminated string", "syntax error",
                       "unknown special query", "malformed MATCH")
    )


def _date_bound(value: str, name: str) -> str:
    """Check an ISO date (or date-time) given as a filter bound."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?", text):
        try:  # the shape alone lets 2026-13-01 through, which matches nothing, silently
            datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text.replace(" ", "T")
    raise BadQuery(f"{name}: {value!r} is not a date (expected YYYY-MM-DD)")


def _bind(params: dict[str, Any], prefix: str, values: Sequence[str]) -> str:
    """Bind ``values`` as ``:prefix0, :prefix1, ...`` in ``params``; the list for ``IN (...)``."""
    names = []
    for n, value in enumerate(values):
        params[f"{prefix}{n}"] = value
        names.append(f":{prefix}{n}")
    return ", ".join(names)


class SearchMixin:
    def search(
        self,
        query: str,
        *,
        areas: Sequence[str] = (),
        domains: Sequence[str] = (),
        countries: Sequence[str] = (),
        regions: Sequence[str] = (),
        sources: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        policy_only: bool = False,
        limit: int = 20,
        exact: bool = False,
    ) -> list[dict[str, Any]]:
        """Items matching ``query`` (FTS5 syntax), best bm25 first, near-duplicates folded.

        Filters combine with AND; several values of one filter combine with OR. ``since`` and
        ``until`` are inclusive dates (YYYY-MM-DD) on ``published_at``. Each row has the item's
        id, url, title, source, date, a highlighted ``snippet``, ``score`` (higher is better),
        ``copies`` (near-duplicates folded into it) and its tags as lists. Unless ``exact``,
        a query matching more than RANK_WINDOW items is ranked among the most recent of them.
        """
        if not query or not query.strip():
            raise BadQuery("empty search query: give at least one word")
        if limit < 1:
            raise BadQuery(f"limit must be at least 1, not {limit}")
        where = ["items_fts MATCH :q", "items_fts.rank MATCH :ranking", "i.duplicate_of IS NULL"]
        params: dict[str, Any] = {"q": fts_query(query), "ranking": RANKING, "limit": limit}
        for facet, values in (("area", areas), ("domain", domains), ("country", countries),
                              ("region", regions)):
            if values:
                where.append(
                    f"EXISTS (SELECT 1 FROM tags t WHERE t.item_id = i.id AND t.facet = "
                    f"'{facet}' AND t.value IN ({_bind(params, facet, values)}))"
                )
        if policy_only:
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.item_id = i.id "
                         "AND t.facet = 'policy' AND t.value = '1')")
        if sources:
            where.append(f"i.source_id IN ({_bind(params, 'source', sources)})")
        if since:
            params["since"] = _date_bound(since, "since")
            where.append("i.published_at >= :since")
        if until:
            bound = _date_bound(until, "until")
            # A bare date includes the whole day: compare against the next day's start.
            if len(bound) == 10:
                where.append("i.published_at < date(:until, '+1 day')")
            else:
                where.append("i.published_at <= :until")
            params["until"] = bound
        open_, close = HIGHLIGHT
        sql = f"""
            SELECT i.id, i.url, i.title, i.source_id, i.published_at, i.language,
                   snippet(items_fts, -1, '{open_}', '{close}', '…', 24) AS snippet,
                   -items_fts.rank AS score
            FROM items_fts CROSS JOIN items i ON i.id = items_fts.rowid
            WHERE {' AND '.join(where)}
            ORDER BY items_fts.rank
            LIMIT :limit
        """
        try:
            floor = None if exact else self._rank_floor(params["q"])
            rows = []
            if floor is not None:
                windowed = sql.replace("WHERE ", "WHERE items_fts.rowid >= :floor AND ", 1)
                rows = self._rows(windowed, {**params, "floor": floor})
            if floor is None or len(rows) < limit:
                rows = self._rows(sql, params)
        except sqlite3.OperationalError as error:
            if _is_query_error(error):
                raise _explain(error, query) from None
            raise
        self._decorate(rows)
        return rows

    def _rank_floor(self, match: str) -> int | None:
        """The rowid of the RANK_WINDOW-th most recent match, or None if there are fewer.

        Walking a doclist from the newest rowid is cheap when matches are dense; when they are
        sparse (a phrase of two common words) the walk would read the whole index for nothing.
        So the newest tenth of the rowid space is sampled first: a sparse query is sent
        straight to exact ranking, which has to read its matches once anyway.
        """
        top = self.scalar("SELECT max(rowid) FROM items") or 0
        recent = top - top // 10
        count, oldest = self.conn.execute(
            "SELECT count(*), min(rowid) FROM (SELECT rowid FROM items_fts WHERE items_fts "
            "MATCH ? AND rowid >= ? ORDER BY rowid DESC LIMIT ?)", [match, recent, RANK_WINDOW]
        ).fetchone()
        if count >= RANK_WINDOW:
            return oldest
        if count * 10 < RANK_WINDOW:  # fewer than the window expected in all: rank them all
            return None
        row = self.conn.execute(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rowid DESC "
            "LIMIT 1 OFFSET ?", [match, RANK_WINDOW - 1]
        ).fetchone()
        return None if row is None else row[0]

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        columns = ("id", "url", "title", "source_id", "published_at", "language", "snippet",
                   "score")
        return [dict(zip(columns, row)) for row in self.conn.execute(sql, params)]

    def count_matches(self, query: str) -> int:
        """How many items (duplicates included) match ``query``: for benchmarks and hints."""
        try:
            return self.conn.execute(
                "SELECT count(*) FROM items_fts WHERE items_fts MATCH ?", [fts_query(query)]
            ).fetchone()[0]
        except sqlite3.OperationalError as error:
            if _is_query_error(error):
                raise _explain(error, query) from None
            raise

    def _decorate(self, rows: list[dict[str, Any]]) -> None:
        """Add source names, copy counts and tags to a page of result rows (in place)."""
        if not rows:
            return
        ids = [row["id"] for row in rows]
        marks = ", ".join("?" for _ in ids)
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            row["score"] = round(row["score"], 3)
            row["copies"] = 0
            row["source_name"] = None
        for item_id, copies in self.conn.execute(
            f"SELECT duplicate_of, count(*) FROM items WHERE duplicate_of IN ({marks}) "
            "GROUP BY duplicate_of", ids
        ):
            by_id[item_id]["copies"] = copies
        for item_id, name in self.conn.execute(
            f"SELECT i.id, s.name FROM items i JOIN sources s ON s.id = i.source_id "
            f"WHERE i.id IN ({marks})", ids
        ):
            by_id[item_id]["source_name"] = name
        self._attach_tags(by_id)

    def _attach_tags(self, by_id: dict[int, dict[str, Any]]) -> None:
        """Give each row ``policy`` (None when untagged) and its tag lists (``areas``, ...)."""
        for row in by_id.values():
            row["policy"] = None
            for key in LIST_KEYS.values():
                row[key] = []
        ids = list(by_id)
        marks = ", ".join("?" for _ in ids)
        for item_id, facet, value in self.conn.execute(
            f"SELECT item_id, facet, value FROM tags WHERE item_id IN ({marks}) "
            "ORDER BY item_id, facet, value", ids
        ):
            if facet == "policy":
                by_id[item_id]["policy"] = int(value)
            else:
                by_id[item_id][LIST_KEYS[facet]].append(value)

    # -- export -------------------------------------------------------------------------------

    def iter_export(self, *, since: str | None = None, batch: int = 1000) -> Iterator[dict]:
        """Every item with its tags, in id order, a batch at a time (never all in memory).

        ``since`` keeps items published on or after that date (YYYY-MM-DD); a bad one raises
        BadQuery here, before the caller has written anything (not at the first row).
        """
        condition, extra = "1", []
        if since:
            condition, extra = "i.published_at >= ?", [_date_bound(since, "since")]
        return self._export_batches(condition, extra, batch)

    def _export_batches(self, condition: str, extra: list[Any], batch: int) -> Iterator[dict]:
        last = 0
        while True:
            rows = self.query(
                f"""SELECT i.id, i.url, i.source_id, s.name AS source_name, i.title, i.summary,
                           i.body, i.language, i.published_at, i.date_source, i.fetched_at,
                           i.status, i.duplicate_of
                    FROM items i LEFT JOIN sources s ON s.id = i.source_id
                    WHERE i.id > ? AND {condition}
                    ORDER BY i.id LIMIT {int(batch)}""",
                [last, *extra],
            )
            if not rows:
                return
            self._attach_tags({row["id"]: row for row in rows})
            yield from rows
            last = rows[-1]["id"]

