"""The taxonomy (classifier/taxonomy.toml) as data: ids, names, STIP theme mapping.

The classifier, the digest (through the store's `labels` table) and the docs all read it from here,
so an id exists in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
import difflib
from functools import lru_cache
from importlib import resources
import tomllib
from typing import Any

import pycountry

from db.codes import country_hint


class UnknownLabel(ValueError):
    """A label id that the taxonomy does not define."""


@dataclass(frozen=True)
class Label:
    facet: str
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Taxonomy:
    version: int
    areas: tuple[Label, ...]
    domains: tuple[Label, ...]
    regions: tuple[Label, ...]
    stip_themes: dict[str, str]  # STIP theme code -> area id

    def ids(self, facet: str) -> tuple[str, ...]:
        """Label ids of a facet: area, domain, region, policy ("0", "1") or country (ISO + EU)."""
        if facet == "policy":
            return ("0", "1")
        if facet == "country":
            return country_codes()
        return tuple(label.id for label in getattr(self, facet + "s"))

    def check(self, facet: str, value: str) -> str:
        """Return ``value`` if it is a valid id of ``facet``, else raise UnknownLabel."""
        if facet not in ("policy", "area", "domain", "region", "country"):
            raise UnknownLabel(
                f"unknown facet {facet!r} (expected policy, area, domain, country or region)"
            )
        if value not in self.ids(facet):
            close = difflib.get_close_matches(value.lower().replace("-", "_").replace(" ", "_"),
                                              self.ids(facet), n=1, cutoff=0.75)
            hint = (country_hint(value) if facet == "country"
                    else f" (did you mean {close[0]!r}?)" if close
                    else f" (expected one of: {', '.join(self.ids(facet))})")
            raise UnknownLabel(f"unknown {facet} {value!r}{hint}")
        return value

    def records(self) -> list[dict[str, Any]]:
        """Every named label as a row of the store's `labels` table."""
        return [
            {"facet": label.facet, "id": label.id, "name": label.name,
             "description": label.description}
            for label in (*self.areas, *self.domains, *self.regions)
        ]


def spelt(facet: str, value: str) -> str:
    """``value`` spelt as label ids are, whichever case a person typed it in: a country code
    in capitals (`jp` is JP), any other id in lower case (`AI` is ai, `Open_Science`
    open_science). Labelled files are not read through it: their ids must be exact."""
    return value.upper() if facet == "country" else value.lower()


@lru_cache(maxsize=1)
def country_codes() -> tuple[str, ...]:
    return tuple(sorted({c.alpha_2 for c in pycountry.countries} | {"EU"}))


def _labels(data: dict[str, Any], facet: str) -> tuple[Label, ...]:
    return tuple(
        Label(facet, entry["id"], entry["name"], entry.get("description", ""))
        for entry in data[facet]
    )


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    """The bundled taxonomy (cached: it is read on every command)."""
    text = resources.files(__package__).joinpath("taxonomy.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    themes = {code: area["id"] for area in data["area"] for code in area.get("stip", [])}
    return Taxonomy(
        version=data["version"],
        areas=_labels(data, "area"),
        domains=_labels(data, "domain"),
        regions=_labels(data, "region"),
        stip_themes=themes,
    )
