"""The `sources` table: the registry as synced, plus each source's crawl health."""

from __future__ import annotations

from dataclasses import dataclass, field
import difflib
from typing import Any, Iterable

from .clock import utcnow
from .errors import NoSuchSource

# Columns that come from the registry file; the rest are health, written by crawls.
REGISTRY_COLUMNS = (
    "id", "name", "kind", "url", "homepage", "country", "language", "org_type", "links", "enabled",
)


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


class SourcesMixin:
    def sync_sources(self, records: Iterable[dict[str, Any]]) -> SyncReport:
        """Make the registry table match ``records``, in one transaction.

        A source missing from ``records`` is disabled, never deleted: its items stay. Health
        columns are kept; conditional-GET validators are dropped when the URL changes.
        """
        report = SyncReport()
        now = utcnow()
        records = list(records)
        with self.write():
            existing = {row["id"]: row for row in self.db.query("SELECT * FROM sources")}
            for record in records:
                row = {column: record.get(column) for column in REGISTRY_COLUMNS}
                row["enabled"] = 1 if record.get("enabled", True) else 0
                old = existing.get(row["id"])
                if old is None:
                    self.db["sources"].insert({**row, "added_at": now, "updated_at": now})
                    report.added.append(row["id"])
                    continue
                changes = {k: v for k, v in row.items() if old.get(k) != v}
                if not changes:
                    report.unchanged.append(row["id"])
                    continue
                if "url" in changes:
                    changes.update(etag=None, last_modified=None)
                    # Its further listings were another site's (or sitemap's) too.
                    self.conn.execute("DELETE FROM listing_validators WHERE source_id = ?",
                                      [row["id"]])
                self.db["sources"].update(row["id"], {**changes, "updated_at": now})
                report.updated.append(row["id"])
            wanted = {record["id"] for record in records}
            for source_id, old in existing.items():
                if source_id not in wanted and old["enabled"]:
                    self.db["sources"].update(source_id, {"enabled": 0, "updated_at": now})
                    report.disabled.append(source_id)
        return report

    def list_sources(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        where = "WHERE s.enabled = 1" if enabled_only else ""
        return self.query(
            f"""SELECT s.*, (SELECT count(*) FROM items i WHERE i.source_id = s.id) AS items
                FROM sources s {where} ORDER BY s.id"""
        )

    def get_source(self, source_id: str) -> dict[str, Any]:
        rows = self.query("SELECT * FROM sources WHERE id = ?", [source_id])
        if not rows:
            ids = [row["id"] for row in self.query("SELECT id FROM sources")]
            close = difflib.get_close_matches(source_id.lower().replace("_", "-"), ids, n=1)
            hint = (f" (did you mean {close[0]!r}?)" if close
                    else "" if ids else " (the store has no sources: `stiwatch sources sync FILE`)")
            raise NoSuchSource(f"no source with id {source_id!r}{hint}")
        return rows[0]

    def record_source_result(
        self,
        source_id: str,
        *,
        ok: bool,
        error: str | None = None,
        flag: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        keep_validators: bool = False,
        at: str | None = None,
    ) -> None:
        """Update a source's health after a crawl attempt.

        ``ok`` with ``keep_validators`` (a 304) keeps the stored ETag/Last-Modified; ``ok``
        otherwise replaces them with what the server sent (possibly nothing).
        """
        at = at or utcnow()
        with self.write():
            source = self.get_source(source_id)
            if ok:
                changes: dict[str, Any] = {
                    "last_crawled_at": at,
                    "last_ok_at": at,
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "last_error": None,
                    "last_flag": flag,
                }
                if not keep_validators:
                    changes.update(etag=etag, last_modified=last_modified)
            else:
                changes = {
                    "last_crawled_at": at,
                    "consecutive_failures": source["consecutive_failures"] + 1,
                    "failing_since": source["failing_since"] or at,
                    "last_error": error or "unknown error",
                }
            self.db["sources"].update(source_id, changes)

    def listing_validators(self) -> dict[str, dict[str, dict[str, str | None]]]:
        """The stored ETag/Last-Modified of every source's further listings (the sitemaps of
        a sitemap index): ``{source_id: {url: {"etag": ..., "last_modified": ...}}}``."""
        found: dict[str, dict[str, dict[str, str | None]]] = {}
        for row in self.query("SELECT * FROM listing_validators"):
            found.setdefault(row["source_id"], {})[row["url"]] = {
                "etag": row["etag"], "last_modified": row["last_modified"]}
        return found

    def replace_listing_validators(
        self, source_id: str, validators: dict[str, tuple[str | None, str | None]]
    ) -> None:
        """Keep exactly ``validators`` (url -> (etag, last_modified)) for the further listings
        of ``source_id``: those its listing no longer names are forgotten."""
        rows = [(source_id, url, etag, last_modified)
                for url, (etag, last_modified) in validators.items() if etag or last_modified]
        if not rows and self.scalar("SELECT 1 FROM listing_validators WHERE source_id = ?",
                                    [source_id]) is None:
            return  # a feed, or an index whose sitemaps send none: no write for nothing
        with self.write():
            self.conn.execute("DELETE FROM listing_validators WHERE source_id = ?", [source_id])
            self.conn.executemany(
                "INSERT INTO listing_validators (source_id, url, etag, last_modified) "
                "VALUES (?, ?, ?, ?)", rows)

    def host_pauses(self, now: str | None = None) -> dict[str, dict[str, str]]:
        """Hosts that asked for a pause (a long Retry-After) not yet over at ``now`` (ISO
        UTC, default now): ``{host: {"not_before": ..., "reason": ..., "paused_at": ...}}``."""
        return {row.pop("host"): row for row in self.query(
            "SELECT host, not_before, reason, paused_at FROM host_pauses WHERE not_before > ?",
            [now or utcnow()])}

    def record_host_pauses(self, pauses: dict[str, tuple[str, str]],
                           now: str | None = None) -> None:
        """Keep ``pauses`` (host -> (not_before, reason)), a later end winning over a stored
        one, and forget the pauses over at ``now``."""
        now = now or utcnow()
        with self.write():
            self.conn.execute("DELETE FROM host_pauses WHERE not_before <= ?", [now])
            self.conn.executemany(
                "INSERT INTO host_pauses (host, not_before, reason, paused_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET "
                "not_before = excluded.not_before, reason = excluded.reason, "
                "paused_at = excluded.paused_at WHERE excluded.not_before > not_before",
                [(host, until, reason, now) for host, (until, reason) in pauses.items()])
