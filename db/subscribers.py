"""Digest subscribers (the `subscribers` table). Deliveries live in `digests.py`."""

from __future__ import annotations

import json
from typing import Any, Iterable

from .clock import utcnow
from .errors import NoSuchSubscriber

# A subscriber's filters (columns of `subscribers`, keys of its dict) and the tag facet whose label
# ids each one lists. The one definition: the digest and the CLI use these names too.
FILTER_FACETS = {"areas": "area", "domains": "domain", "countries": "country", "regions": "region"}
FILTERS = tuple(FILTER_FACETS)


# A reader's saved full-text query (`stiwatch search`'s syntax), one more filter of the digest:
# a column and key of its own, a string ("" for none) where the others are lists of ids.
QUERY = "query"


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = {key: value for key, value in row.items() if key != QUERY}
    decoded.update({f: json.loads(row[f] or "[]") for f in FILTERS})
    # after the other filters, where `subscribers list` shows it, not where the column was added
    ordered = {key: decoded.pop(key) for key in ("email", "name", *FILTERS) if key in decoded}
    return {**ordered, QUERY: row.get(QUERY) or "", **decoded, "active": bool(row["active"])}


class SubscribersMixin:
    def save_subscribers(self, subscribers: Iterable[dict[str, Any]]) -> list[str]:
        """Insert or update subscribers (all or none); each becomes active. Returns new emails.

        Filters are lists of label ids; an empty list means "everything". ``query``: words
        to follow, in `stiwatch search`'s syntax (checked by the caller); empty or absent: none.
        """
        now = utcnow()
        created = []
        with self.write():
            for sub in subscribers:
                email = sub["email"]
                row = {
                    "email": email,
                    "name": sub.get("name"),
                    **{f: json.dumps(list(sub.get(f) or [])) for f in FILTERS},
                    QUERY: (sub.get(QUERY) or "").strip() or None,
                    "active": 1,
                    "updated_at": now,
                }
                if self.scalar("SELECT 1 FROM subscribers WHERE email = ?", [email]):
                    self.db["subscribers"].update(email, row)
                else:
                    self.db["subscribers"].insert({**row, "created_at": now})
                    created.append(email)
        return created

    def list_subscribers(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        where = "WHERE active = 1" if active_only else ""
        return [_decode(r) for r in self.query(f"SELECT * FROM subscribers {where} ORDER BY email")]

    def get_subscriber(self, email: str) -> dict[str, Any]:
        rows = self.query("SELECT * FROM subscribers WHERE email = ?", [email])
        if not rows:
            raise NoSuchSubscriber(f"no subscriber {email!r}")
        return _decode(rows[0])

    def deactivate_subscriber(self, email: str) -> bool:
        """Stop sending to ``email``; the row and its delivery history stay. False (and
        nothing written) when it was removed already."""
        with self.write():
            if not self.get_subscriber(email)["active"]:
                return False
            self.db["subscribers"].update(email, {"active": 0, "updated_at": utcnow()})
            return True
