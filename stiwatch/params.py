"""Click parameter types the commands share."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import math
import re
from typing import Any

import click

import db


class Seconds(click.FloatRange):
    """A number of seconds within a range, refusing ``nan`` and ``inf``: float() accepts
    both and every comparison with nan is false, so a plain FloatRange lets it through (a
    request timeout of nan then fails deep inside the HTTP client)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return number


# The help text every --since/--until that takes Moment() ends with.
RELATIVE_HELP = "7d, 2w: that many days or weeks before now"
RELATIVE_RE = re.compile(r"([1-9]\d{0,4})([dw])", re.IGNORECASE)


class Moment(click.ParamType):
    """A date (YYYY-MM-DD, a day in the `timezone` setting) or an ISO date-time, checked when
    the option is read: the store reads it again in the right time zone. ``7d`` or ``2w`` is
    that many days or weeks before now, given on as a UTC date-time."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        relative = RELATIVE_RE.fullmatch(str(value).strip())
        if relative:
            days = int(relative[1]) * (7 if relative[2].lower() == "w" else 1)
            moment = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            db.time_bound(value, "date")
        except db.BadQuery as error:
            message = str(error).removeprefix("date: ")
            # The store knows only dates; the relative forms are this option's own, and a user
            # who typed `3m` or `yesterday` was told only of YYYY-MM-DD.
            if message.endswith("(expected YYYY-MM-DD)"):
                message = message.removesuffix(")") + f", or {RELATIVE_HELP})"
            self.fail(message, param, ctx)
        return value
