"""ISO weeks in a configured time zone: parsing `2026-W47`, bounds in UTC, the last complete week.

A digest week runs Monday 00:00 to the next Monday 00:00 *local time* (setting `timezone`), so in
Asia/Tokyo it starts on Sunday 15:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DigestError

WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``, or a clear error naming the setting."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DigestError(
            f"timezone: unknown time zone {name!r} (use an IANA name such as Asia/Tokyo)"
        ) from None


@dataclass(frozen=True)
class Week:
    year: int
    number: int
    tz: ZoneInfo

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def start(self) -> datetime:
        """Monday 00:00 local time (aware)."""
        return datetime.combine(self.monday, time(), self.tz)

    @property
    def end(self) -> datetime:
        """The next Monday 00:00 local time (aware, exclusive)."""
        return datetime.combine(self.monday + timedelta(days=7), time(), self.tz)

    @property
    def start_utc(self) -> str:
        return _sql_utc(self.start)

    @property
    def end_utc(self) -> str:
        return _sql_utc(self.end)

    def local(self, moment: datetime) -> str:
        """``moment`` as the week's readers' clock shows it, `Mon 30 Nov 2026 00:00
        (Asia/Tokyo)`: how the week's start and end are named in messages."""
        return f"{moment.astimezone(self.tz):%a %-d %b %Y %H:%M} ({self.tz.key})"

    def span(self) -> str:
        """`16–22 Nov 2026` (or across months/years)."""
        a, b = self.monday, self.sunday
        if a.year != b.year:
            return f"{a:%-d %b %Y}–{b:%-d %b %Y}"
        if a.month != b.month:
            return f"{a:%-d %b}–{b:%-d %b %Y}"
        return f"{a:%-d}–{b:%-d %b %Y}"

    def shift(self, weeks: int) -> "Week":
        return week_of(self.start + timedelta(weeks=weeks, hours=12), self.tz)

    def previous(self, count: int) -> list["Week"]:
        """The ``count`` weeks before this one, oldest first."""
        return [self.shift(-n) for n in range(count, 0, -1)]

    def __str__(self) -> str:
        return self.label


def _sql_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def week_of(moment: datetime, tz: ZoneInfo) -> Week:
    """The ISO week containing ``moment`` (aware) in ``tz``."""
    year, number, _ = moment.astimezone(tz).isocalendar()
    return Week(year, number, tz)


def parse_week(text: str, tz: ZoneInfo | str) -> Week:
    """``2026-W47`` -> Week; a clear error for anything else."""
    tz = zone(tz) if isinstance(tz, str) else tz
    match = WEEK_RE.match(text.strip())
    if match:
        year, number = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            pass
        else:
            return Week(year, number, tz)
    raise DigestError(f"--week: {text!r} is not an ISO week such as 2026-W47")


def last_complete_week(tz: ZoneInfo | str, now: datetime | None = None) -> Week:
    """The most recent ISO week that has fully ended in ``tz``."""
    tz = zone(tz) if isinstance(tz, str) else tz
    now = now or datetime.now(timezone.utc)
    return week_of(now, tz).shift(-1)


def week_or_default(text: str | None, tz_name: str, now: datetime | None = None) -> Week:
    tz = zone(tz_name)
    return parse_week(text, tz) if text else last_complete_week(tz, now)
