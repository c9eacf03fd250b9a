"""Timestamps as the store writes them: ISO 8601, UTC, whole seconds."""

from datetime import datetime, timezone


def utcnow() -> str:
    """Now as ISO 8601 UTC with seconds, the format of every timestamp in the store."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
