"""What an operator checks: items per week, failing sources, deliveries owed, file size."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
import os
from typing import Any

from .clock import iso_utc
from .digests import CANCELLED

# Deliveries that still need attention: not yet sent, failed, or handed to SMTP without an answer.
OWED_STATUSES = ("pending", "failed", "sending")


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


class StatusMixin:
    def items_per_week(self, weeks: int = 8, today: date | None = None,
                       tz: tzinfo = timezone.utc) -> list[dict[str, Any]]:
        """Items published per ISO week in ``tz`` for the last ``weeks`` weeks, oldest first.

        Every week is listed, empty ones with zeros. ``items`` counts originals (near-duplicates
        folded), ``policy`` those tagged policy-relevant, ``duplicates`` the folded copies.
        Weeks start on Monday at midnight in ``tz`` (the digest's and `stiwatch trends`'
        weeks); ``today`` is a day in ``tz``.
        """
        today = today or datetime.now(tz).date()
        first = week_start(today) - timedelta(weeks=weeks - 1)
        starts = [first + timedelta(weeks=n) for n in range(weeks)]
        # Each week's first instant in UTC, the stored form: the newest that an item's
        # published_at reaches is its week (exact across DST changes, and the index serves
        # the range).
        bounds = [iso_utc(datetime.combine(day, time(), tz)) for day in starts]
        week_of = " ".join(f"WHEN published_at >= ? THEN {n}"
                           for n in reversed(range(weeks)))
        counts = {
            row["n"]: row
            for row in self.query(
                f"""SELECT CASE {week_of} END AS n,
                          sum(duplicate_of IS NULL) AS items,
                          sum(duplicate_of IS NOT NULL) AS duplicates,
                          sum(duplicate_of IS NULL AND EXISTS (SELECT 1 FROM tags t
                              WHERE t.item_id = items.id AND t.facet = 'policy'
                              AND t.value = '1')) AS policy
                   FROM items WHERE published_at >= ? GROUP BY n""",
                [*reversed(bounds), bounds[0]],
            )
        }
        out = []
        for n, start in enumerate(starts):
            year, number, _ = start.isocalendar()
            row = counts.get(n, {})
            out.append({
                "week": f"{year}-W{number:02d}",
                "starts": start.isoformat(),
                "items": row.get("items") or 0,
                "policy": row.get("policy") or 0,
                "duplicates": row.get("duplicates") or 0,
            })
        return out

    def failing_sources(self) -> list[dict[str, Any]]:
        """Enabled sources whose last crawl failed, longest-failing first."""
        return self.query(
            """SELECT id, name, consecutive_failures, failing_since, last_ok_at, last_error
               FROM sources WHERE enabled = 1 AND consecutive_failures > 0
               ORDER BY failing_since, id"""
        )

    def noted_sources(self) -> list[dict[str, Any]]:
        """Enabled sources that work but whose last crawl left a note (a moved feed, pages
        that could not be read, new articles left for the next crawl, ...), by id."""
        return self.query(
            """SELECT id, name, last_flag FROM sources
               WHERE enabled = 1 AND consecutive_failures = 0 AND last_flag IS NOT NULL
               ORDER BY id"""
        )

    def deliveries_owed(self) -> list[dict[str, Any]]:
        """Digest deliveries not yet done: pending, failed, or sending without an answer; not
        those the operator cancelled (`digest resolve --cancel`), which are settled."""
        marks = ", ".join("?" for _ in OWED_STATUSES)
        return self.query(
            f"""SELECT period, subscriber, status, attempts, last_error, next_attempt_at,
                       unanswered_at, updated_at
                FROM deliveries WHERE status IN ({marks})
                  AND NOT (status = 'failed' AND last_error IS ?)
                ORDER BY period, subscriber""",
            [*OWED_STATUSES, CANCELLED],
        )

    def file_size(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total
