"""Click parameter types the commands share."""

from __future__ import annotations

import math
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


class Moment(click.ParamType):
    """A date (YYYY-MM-DD, a day in the `timezone` setting) or an ISO date-time, checked when
    the option is read: the store reads it again in the right time zone."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            db.time_bound(value, "date")
        except db.BadQuery as error:
            self.fail(str(error).removeprefix("date: "), param, ctx)
        return value
