"""What an operator checks: items per week, failing sources, deliveries owed, file size."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
import os
from typing import Any

from .canned import WEEK_START
from .digests import CANCELLED

# Deliveries that still need attention: not yet sent, failed, or handed to SMTP without an answer.
OWED_STATUSES = ("pending", "failed", "sending")


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


class StatusMixin:
    def items_per_week(self, weeks: int = 8, today: date | None = None) -> list[dict[str, Any]]:
        """Items published per ISO week (UTC) for the last ``weeks`` weeks, oldest first.

        Every week is listed, empty ones with zeros. ``items`` counts originals (near-duplicates
        folded), ``policy`` those tagged policy-relevant, ``duplicates`` the folded copies.
        """
        today = today or datetime.now(timezone.utc).date()
        first = week_start(today) - timedelta(weeks=weeks - 1)
        counts = {
            row["week"]: row
            for row in self.query(
                f"""SELECT {WEEK_START.format("published_at")} AS week,
                          sum(duplicate_of IS NULL) AS items,
                          sum(duplicate_of IS NOT NULL) AS duplicates,
                          sum(duplicate_of IS NULL AND EXISTS (SELECT 1 FROM tags t
                              WHERE t.item_id = items.id AND t.facet = 'policy'
                              AND t.value = '1')) AS policy
                   FROM items WHERE published_at >= ? GROUP BY week""",
                [first.isoformat()],
            )
        }
        out = []
        for n in range(weeks):
            start = first + timedelta(weeks=n)
            year, number, _ = start.isocalendar()
            row = counts.get(start.isoformat(), {})
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
