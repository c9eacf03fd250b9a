"""Timestamps as the store writes them: ISO 8601, UTC, whole seconds, ``Z`` for UTC
(``2026-11-26T21:05:00Z``). Every timestamp column holds this form (migration 8 rewrote
older ``+00:00`` values), so they sort and compare as text."""

from datetime import date, datetime, timezone
import re

# A date without a time of day, as ISO 8601 (and W3C Datetime, in sitemaps) writes it:
# "2026-11-20". Such a date stands for noon UTC of that day (``noon_utc``); match it whole
# (``DATE_ONLY.fullmatch(text)``).
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_utc(moment: datetime) -> str:
    """``moment`` (aware; naive counts as UTC) in the store's timestamp form."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"  # %Y leaves years below 1000 unpadded


def utcnow() -> str:
    """Now, in the store's timestamp form."""
    return iso_utc(datetime.now(timezone.utc))


def noon_utc(day: date) -> datetime:
    """The moment a date without a time of day (a page's ``<meta name="date"
    content="2026-11-20">``) stands for: noon UTC of that date. Midnight UTC put it on the day
    before for every reader west of UTC (19:00 the day before in New York), in dates shown and
    in the digest's weeks; noon UTC is that same date from UTC-11 to UTC+11, Tokyo and
    Washington alike."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)


def iso_day(day: date) -> str:
    """A date without a time of day in the store's form (``noon_utc``)."""
    return iso_utc(noon_utc(day))
