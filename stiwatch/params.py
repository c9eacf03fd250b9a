"""Click parameter types the commands share."""

from __future__ import annotations

import math
from typing import Any

import click


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
