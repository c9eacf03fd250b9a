"""Crawl runs (the `crawl_runs` table) and scheduled runs (the `runs` table)."""

from __future__ import annotations

import json
from typing import Any, Callable

from .clock import utcnow


class RunsMixin:
    def start_crawl_run(self, stats: dict[str, Any] | None = None) -> int:
        """A ``running`` row; ``stats`` records what is known while it runs (its pid and host)."""
        with self.write():
            cursor = self.conn.execute(
                "INSERT INTO crawl_runs (started_at, status, stats) VALUES (?, 'running', ?)",
                [utcnow(), json.dumps(stats, sort_keys=True) if stats is not None else None],
            )
        return cursor.lastrowid

    def finish_crawl_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        with self.write():
            self.db["crawl_runs"].update(
                run_id,
                {"finished_at": utcnow(), "status": status, "stats": json.dumps(stats, sort_keys=True)},
            )

    def close_abandoned_crawl_runs(self, is_alive: Callable[[dict[str, Any]], bool]) -> list[int]:
        """Mark ``running`` crawl runs whose process is gone as ``interrupted``.

        ``is_alive(stats)`` decides from the stats noted while running; runs it cannot judge
        should be reported alive. ``finished_at`` stays NULL: nobody saw them end.
        """
        closed = []
        with self.write():
            for row in self.query("SELECT id, stats FROM crawl_runs WHERE status = 'running'"):
                stats = json.loads(row["stats"]) if row["stats"] else {}
                if not is_alive(stats):
                    self.db["crawl_runs"].update(row["id"], {"status": "interrupted"})
                    closed.append(row["id"])
        return closed

    def crawl_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM crawl_runs ORDER BY id DESC LIMIT ?", [limit])
        for row in rows:
            row["stats"] = json.loads(row["stats"]) if row["stats"] else None
        return rows

    def start_run(self, command: str) -> int:
        with self.write():
            cursor = self.conn.execute(
                "INSERT INTO runs (command, started_at, status) VALUES (?, ?, 'running')",
                [command, utcnow()],
            )
        return cursor.lastrowid

    def finish_run(self, run_id: int, status: str, exit_code: int,
                   steps: list[dict[str, Any]]) -> None:
        with self.write():
            self.db["runs"].update(run_id, {
                "finished_at": utcnow(), "status": status, "exit_code": exit_code,
                "steps": json.dumps(steps, sort_keys=True),
            })

    def close_abandoned_runs(
            self, why: str = "its process ended without recording how (killed?)") -> list[int]:
        """Mark every ``running`` scheduled run ``failed``; only for the holder of the run lock.

        Holding the lock, the caller knows no other run is alive: such a row is a run whose
        process was killed before it could record its end (or, ``why`` says, one under way
        when the backup just restored was taken). ``finished_at`` stays NULL.
        """
        steps = json.dumps([{"step": "run", "ok": False, "status": "interrupted",
                             "summary": why}])
        with self.write():
            ids = [row["id"] for row in self.query("SELECT id FROM runs WHERE status = 'running'")]
            for run_id in ids:
                self.db["runs"].update(run_id, {"status": "failed", "steps": steps})
        return ids

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit])
        for row in rows:
            row["steps"] = json.loads(row["steps"]) if row["steps"] else None
        return rows
