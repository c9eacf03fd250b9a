"""What the digest reads (policy items of a time range, with their tags and coverage) and the
deliveries state machine (the `deliveries` table), one (subscriber, ISO week) row at a time.

States: ``pending`` (owed; after a temporary failure also carries ``next_attempt_at``) ->
``sending`` (committed *before* the SMTP conversation starts) -> ``sent`` | ``failed``; or
``skipped`` when nothing matched. A row left in ``sending`` by a killed sender is owed again and
resent with the same Message-ID, so at most that one message can arrive twice. A row whose
message went out whole without an answer (``unanswered_at``) stays ``sending`` *in doubt*: the
server may have it, so no run sends it again; ``resolve_delivery`` (an operator who checked)
makes it ``sent`` or owed again. ``sent`` and ``failed`` are final (short of that resolve);
``skipped`` is not: every later send of the same week looks at the row
again (items may have been crawled or classified since), and if the digest now has items the row
goes back to ``pending`` and on through ``sending -> sent`` like any other.
"""

from __future__ import annotations

from typing import Any, Iterable

from .clock import utcnow
from .errors import NoSuchDelivery, NotInDoubt, NotOwed
from .items import chunks
from .search import LIST_KEYS

# Originals published in [?, ?) (bounds twice: the plain string range keeps the index on
# published_at, datetime() compares offsets right). Items and their tags use the same condition.
_ORIGINALS_IN_RANGE = """i.published_at >= date(?, '-1 day') AND i.published_at < date(?, '+2 day')
                  AND datetime(i.published_at) >= ? AND datetime(i.published_at) < ?
                  AND i.duplicate_of IS NULL"""

# An item's text as a digest shows it: the summary, and the body's start only when the summary
# is empty (the body only stands in for a missing summary, so only its start is ever read).
_TEXT = ("i.summary, CASE WHEN coalesce(i.summary, '') = '' THEN substr(i.body, 1, 1500)"
         " END AS body,")

# A delivery still owed by the ``?`` moment: due ``pending``, or ``sending`` left by a killed
# sender (one in doubt, with ``unanswered_at``, is not: the server may have its message).
_OWED = """(d.status = 'sending' AND d.unanswered_at IS NULL)
           OR (d.status = 'pending' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?))"""


# last_error of a delivery the operator settled by not sending it (failed, but not owed).
CANCELLED = "cancelled by the operator"


class DigestsMixin:
    # -- reading items for digests and trends ------------------------------------------------

    def first_published_at(self) -> str | None:
        """The earliest publication time stored, UTC ``YYYY-MM-DD HH:MM:SS`` (None: no dated
        item): weeks before it were not watched, so trends must not count them as quiet."""
        # The index gives the earliest few by text; datetime() orders any odd offset among them.
        return self.scalar(
            """SELECT min(datetime(published_at)) FROM (SELECT published_at FROM items
               WHERE published_at > '' ORDER BY published_at LIMIT 16)""")

    def max_item_id(self) -> int:
        """The highest item id stored (0 for none): ids only grow, so it marks what was stored
        by now."""
        return self.scalar("SELECT coalesce(max(id), 0) FROM items")

    def policy_items(
        self, start_utc: str, end_utc: str, *, with_text: bool = True,
        ids: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Original (not duplicate) items tagged ``policy = 1`` published in [start, end).

        Bounds are UTC as ``YYYY-MM-DD HH:MM:SS``. Timestamps are compared after SQLite's
        ``datetime()`` normalises them, so ``Z``, ``+00:00`` or another offset all count right;
        the plain string range around it (one day wider) keeps the index on ``published_at``.
        With ``with_text``, rows also carry ``summary`` and ``body`` (the body's first 1,500
        characters, only when the summary is empty). Each row has ``policy_score`` and a list
        per tag facet
        (``areas``, ``domains``, ``countries``, ``regions``, each as ``[(value, score)]``).
        ``ids`` = (after, through): only items with ``after < id <= through``.
        """
        in_range = [start_utc, end_utc, start_utc, end_utc]
        where = _ORIGINALS_IN_RANGE
        if ids is not None:
            where += " AND i.id > ? AND i.id <= ?"
            in_range += list(ids)
        text = _TEXT if with_text else ""
        rows = self.query(
            f"""SELECT i.id, i.url, i.title, i.language, {text} i.source_id, s.name AS source_name,
                       s.language AS source_language, s.org_type AS source_org_type,
                       i.published_at, p.score AS policy_score
                FROM items i
                JOIN tags p ON p.item_id = i.id AND p.facet = 'policy' AND p.value = '1'
                LEFT JOIN sources s ON s.id = i.source_id
                WHERE {where}
                ORDER BY i.id""",
            in_range,
        )
        by_id = {}
        for row in rows:
            row.update({key: [] for key in LIST_KEYS.values()})
            by_id[row["id"]] = row
        for row in self.query(
            f"""SELECT t.item_id, t.facet, t.value, t.score
               FROM items i
               JOIN tags p ON p.item_id = i.id AND p.facet = 'policy' AND p.value = '1'
               JOIN tags t ON t.item_id = i.id AND t.facet IN ('area', 'domain', 'country', 'region')
               WHERE {where}
               ORDER BY t.item_id, t.facet, t.value""",
            in_range,
        ):
            item = by_id.get(row["item_id"])
            if item is not None:
                item[LIST_KEYS[row["facet"]]].append((row["value"], row["score"]))
        return list(by_id.values())

    def duplicates_of(self, item_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """``{original id: [its near-duplicates' id, url, source_id, source_name,
        source_language, source_org_type, title, language, summary, body, published_at]}``, each list by id
        (``body``: its first 1,500 characters, only when the summary is empty, as in
        `policy_items`)."""
        ids = list(item_ids)
        found: dict[int, list[dict[str, Any]]] = {}
        for chunk in chunks(ids):
            for row in self.query(
                f"""SELECT i.duplicate_of AS original, i.id, i.url, i.source_id,
                           s.name AS source_name, s.language AS source_language,
                           s.org_type AS source_org_type, i.title,
                           i.language, {_TEXT} i.published_at
                    FROM items i LEFT JOIN sources s ON s.id = i.source_id
                    WHERE i.duplicate_of IN ({', '.join('?' for _ in chunk)})
                    ORDER BY i.id""",
                chunk,
            ):
                found.setdefault(row.pop("original"), []).append(row)
        return found

    def leads(self, item_ids: Iterable[int], chars: int) -> dict[int, str]:
        """``{item id: the first ``chars`` characters of its body}``, items with a body only.
        Only the start is read: the digest compares the leads of a week's stories."""
        found: dict[int, str] = {}
        for chunk in chunks(list(item_ids)):
            for row in self.query(
                f"""SELECT id, substr(body, 1, ?) AS lead FROM items
                    WHERE id IN ({', '.join('?' for _ in chunk)}) AND coalesce(body, '') != ''""",
                [int(chars), *chunk],
            ):
                found[row["id"]] = row["lead"]
        return found

    # -- deliveries --------------------------------------------------------------------------

    def ensure_deliveries(self, period: str, emails: Iterable[str]) -> int:
        """Create a ``pending`` row for each subscriber that has none for ``period``."""
        now = utcnow()
        with self.write():
            cursor = self.conn.executemany(
                "INSERT OR IGNORE INTO deliveries (subscriber, period, status, updated_at)"
                " VALUES (?, ?, 'pending', ?)",
                [(email, period, now) for email in emails],
            )
        return cursor.rowcount

    def deliveries(self, period: str | None = None) -> list[dict[str, Any]]:
        """Delivery rows (of one period, or all), newest period first, then by subscriber."""
        where, params = ("WHERE d.period = ?", [period]) if period else ("", [])
        return self.query(
            f"""SELECT d.*, s.name, s.active FROM deliveries d
                LEFT JOIN subscribers s ON s.email = d.subscriber
                {where} ORDER BY d.period DESC, d.subscriber""",
            params,
        )

    def get_delivery(self, email: str, period: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT * FROM deliveries WHERE subscriber = ? AND period = ?", [email, period]
        )
        return rows[0] if rows else None

    def owed_deliveries(self, period: str, now: str, *,
                        skipped: bool = True) -> list[dict[str, Any]]:
        """Rows of active subscribers the sender must look at for ``period`` by ``now``:
        ``sending`` first (left by a killed sender), then by subscriber the ``pending``
        ones that are due and (unless not ``skipped``) the ``skipped`` ones (their digest is
        composed again: the week may have gained matching items since). ``sent`` and ``failed``
        never come back, nor does a row in doubt (``sending`` with ``unanswered_at``: the server
        may have its message)."""
        return self.query(
            f"""SELECT d.*, s.name FROM deliveries d JOIN subscribers s ON s.email = d.subscriber
               WHERE d.period = ? AND s.active = 1 AND ({_OWED}
                      {"OR d.status = 'skipped'" if skipped else ""})
               ORDER BY d.status <> 'sending', d.subscriber""",
            [period, now],
        )

    def periods_owed(self, before: str, now: str) -> list[str]:
        """Weeks before ``before`` (labels such as ``2026-W47`` sort as text) that still owe an
        active subscriber a digest due by ``now`` (``pending`` and due, or ``sending`` left by
        a killed sender), oldest first: what a scheduled run sends besides the new week."""
        rows = self.query(
            f"""SELECT DISTINCT d.period FROM deliveries d
                JOIN subscribers s ON s.email = d.subscriber
                WHERE d.period < ? AND s.active = 1 AND ({_OWED})
                ORDER BY d.period""",
            [before, now],
        )
        return [row["period"] for row in rows]

    def _set_delivery(self, email: str, period: str, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        with self.write():
            self.conn.execute(
                f"UPDATE deliveries SET {', '.join(f'{k} = ?' for k in fields)}"
                " WHERE subscriber = ? AND period = ?",
                [*fields.values(), email, period],
            )

    def last_built(self, before: str) -> dict[str, int]:
        """Per subscriber, the ``through_item_id`` of their latest delivery before the week
        ``before`` whose digest was sent or found empty: items above it, published before that
        week, have reached no digest of theirs."""
        return {row["subscriber"]: row["through_item_id"] for row in self.query(
            """SELECT subscriber, through_item_id FROM deliveries
               WHERE period < ? AND status IN ('sent', 'skipped')
                 AND through_item_id IS NOT NULL
               ORDER BY period""", [before])}

    def delivery_sending(self, email: str, period: str, message_id: str, item_count: int,
                         through_item_id: int | None = None) -> None:
        """Committed before the message leaves: if we die now, the next run resends it.
        ``through_item_id``: the highest item id the digest was built from."""
        with self.write():
            attempts = self.scalar(
                "SELECT attempts FROM deliveries WHERE subscriber = ? AND period = ?",
                [email, period],
            ) or 0
            self._set_delivery(email, period, status="sending", message_id=message_id,
                               item_count=item_count, attempts=attempts + 1, unanswered_at=None,
                               through_item_id=through_item_id)

    def delivery_sent(self, email: str, period: str) -> None:
        now = utcnow()
        self._set_delivery(email, period, status="sent", sent_at=now, next_attempt_at=None)

    def delivery_retry(self, email: str, period: str, error: str, next_attempt_at: str) -> None:
        """A temporary failure: owed again from ``next_attempt_at`` on."""
        self._set_delivery(email, period, status="pending", last_error=error,
                           next_attempt_at=next_attempt_at)

    def delivery_unanswered(self, email: str, period: str, error: str) -> None:
        """The whole message went out but no answer came (a timeout or a lost connection after
        DATA): the server may have it. The row stays ``sending``, now in doubt, and is not sent
        again by any run (``owed_deliveries`` leaves it out) until ``resolve_delivery``."""
        self._set_delivery(email, period, status="sending", last_error=error,
                           next_attempt_at=None, unanswered_at=utcnow())

    def resolve_delivery(self, email: str, period: str, *, arrived: bool) -> dict[str, Any]:
        """An operator's word on a delivery in doubt (``sending``), e.g. after reading the mail
        server's log. ``arrived``: it is ``sent`` (``sent_at``: when it went out). Otherwise it
        is owed again (``pending``, due at once: the next send of the week sends it, with the
        same Message-ID); a ``failed`` row can be made owed again too (its subscriber fixed).
        NoSuchDelivery or NotInDoubt otherwise. Returns the row as it was."""
        with self.write():
            row = self._existing_delivery(email, period)
            if row["status"] != "sending" and (arrived or row["status"] != "failed"):
                raise NotInDoubt(f"{period} {email} is {row['status']}, not in doubt")
            if arrived:
                self._set_delivery(email, period, status="sent", next_attempt_at=None,
                                   sent_at=row["unanswered_at"] or utcnow())
            else:
                self._set_delivery(email, period, status="pending", next_attempt_at=None,
                                   unanswered_at=None)
        return row

    def _existing_delivery(self, email: str, period: str) -> dict[str, Any]:
        row = self.get_delivery(email, period)
        if row is None:
            raise NoSuchDelivery(f"no delivery of {period} to {email}")
        return row

    def cancel_delivery(self, email: str, period: str) -> dict[str, Any]:
        """An operator's decision that an owed delivery (``pending``, or ``sending`` in doubt)
        is not to be sent: it becomes ``failed`` ("cancelled by the operator"), final, so no
        run sends it. NoSuchDelivery or NotOwed otherwise. Returns the row as it was."""
        with self.write():
            row = self._existing_delivery(email, period)
            if row["status"] not in ("pending", "sending"):
                raise NotOwed(f"{period} {email} is {row['status']}, not owed")
            self._set_delivery(email, period, status="failed", next_attempt_at=None,
                               last_error=CANCELLED, unanswered_at=None)
        return row

    def delivery_unreachable(self, email: str, period: str, error: str) -> None:
        """The server could not be reached for this row's message: the try and the error are
        recorded (so `digest status` says why) and nothing else changes. A ``pending`` row stays
        owed and due (the next run tries at once), a ``sending`` row stays in doubt (resent
        with its Message-ID): neither can be lost or sent twice because of it."""
        with self.write():
            self.conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, updated_at = ?"
                " WHERE subscriber = ? AND period = ? AND status IN ('pending', 'sending')",
                [error, utcnow(), email, period],
            )

    def delivery_failed(self, email: str, period: str, error: str) -> None:
        """A permanent failure (or the last retry): never tried again for this week."""
        self._set_delivery(email, period, status="failed", last_error=error,
                           next_attempt_at=None)

    def delivery_skipped(self, email: str, period: str,
                         through_item_id: int | None = None) -> None:
        """Nothing matched this subscriber's filters this week: nothing is sent (for now: a later
        send of the week looks again, see ``delivery_owed_again``)."""
        self._set_delivery(email, period, status="skipped", item_count=0, next_attempt_at=None,
                           through_item_id=through_item_id)

    def delivery_owed_again(self, email: str, period: str) -> bool:
        """A ``skipped`` row whose digest now has items: back to ``pending`` (owed). Only a
        ``skipped`` row changes; returns whether one did."""
        with self.write():
            cursor = self.conn.execute(
                "UPDATE deliveries SET status = 'pending', item_count = NULL,"
                " next_attempt_at = NULL, updated_at = ?"
                " WHERE subscriber = ? AND period = ? AND status = 'skipped'",
                [utcnow(), email, period],
            )
        return cursor.rowcount == 1
