"""Country codes as the store holds them (ISO 3166-1 alpha-2, plus EU), and what a value that
is not one probably meant. Here because every wing reads and writes these codes: the crawler's
registry, the classifier's tags and the CLI's filters (db imports nothing of ours, so any of
them may import it)."""

from __future__ import annotations

import pycountry

# Codes people use that ISO 3166-1 does not: the UK's own, and the EU's for Greece.
COUNTRY_ALIASES = {"UK": "GB", "EL": "GR"}


def country_hint(value: str,
                 otherwise: str = " (use ISO 3166-1 alpha-2 codes such as JP, US, or EU)") -> str:
    """What a country that is not a code probably meant, as " (...)": "UK" and "Japan" are
    written every day by people who mean GB and JP; ``otherwise`` when it cannot tell."""
    code = COUNTRY_ALIASES.get(value.strip().upper())
    if code is None:
        try:
            code = pycountry.countries.lookup(value.strip()).alpha_2
        except LookupError:
            return otherwise
    return f" ({pycountry.countries.get(alpha_2=code).name} is {code!r})"
