"""Read the OECD STIP Compass export (CSV, optionally gzip-compressed) into training examples.

The export has one row per initiative x policy instrument; an initiative's text and theme flags
repeat on each of its rows, so rows are folded into one example per ``InitiativeID``. The text is
built as in the evaluation files: the short description, the objectives and the background, one
per line; the title is the English name. Theme flags (``TH9`` ... ``TH99``, 0/1) become policy
areas through the taxonomy's STIP mapping (classifier/taxonomy.toml); codes without an area (the
COVID-19 and ERA groups) are kept in ``themes`` but give no area. Every initiative is a positive
example of policy relevance.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
import gzip
import hashlib
import io
import os
from pathlib import Path
import re
import sys
from typing import Iterator

import pycountry

from .errors import StipError
from .taxonomy import Taxonomy, load_taxonomy

REQUIRED_COLUMNS = ("InitiativeID", "NameEnglish", "ShortDescription")
TEXT_COLUMNS = (
    "ShortDescription", "Objectives1", "Objectives2", "Objectives3", "Objectives4",
    "Objectives5", "Objectives6", "Background",
)
THEME_COLUMN = re.compile(r"^TH\d+$")
# An initiative's country: CountryCode (ISO alpha-3, "EU", "BEVLG"...), else CountryLabel's
# name. Optional: without both, no initiative has a country and no country model is learnt.
COUNTRY_COLUMNS = ("CountryCode", "CountryLabel")


@dataclass(frozen=True)
class Example:
    """One training example in the evaluation files' shape."""

    id: str
    title: str
    text: str
    policy: int = 1
    areas: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)
    # countries the text is known not to be about (an analyst's --remove country=XX)
    not_countries: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "text": self.text, "policy": self.policy,
                "areas": list(self.areas), "countries": list(self.countries)}


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: Path) -> io.TextIOBase:
    """The file as text, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except FileNotFoundError:
        raise StipError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StipError(f"{path}: is a directory, not a STIP Compass CSV export") from None
    except OSError as error:
        raise StipError(f"{path}: cannot read: {error.strerror or error}") from None
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def country_code(code: str, label: str = "") -> str | None:
    """STIP's country code (ISO alpha-3, ``EU``, ``BEVLG``-style Belgian entities) -> alpha-2."""
    code = (code or "").strip().upper()
    if code == "EU":
        return "EU"
    if code.startswith("BE") and len(code) > 3:
        return "BE"
    found = pycountry.countries.get(alpha_3=code) if len(code) == 3 else None
    if found is None and label:
        try:
            found = pycountry.countries.lookup(label.split(" - ")[0].strip())
        except LookupError:
            found = None
    return found.alpha_2 if found is not None else None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str], list[str]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            try:
                columns = reader.fieldnames
            except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as error:
                raise StipError(f"{path}: not a readable CSV file ({error})") from None
            if not columns:
                raise StipError(f"{path}: empty file, expected a STIP Compass CSV export")
            for column in REQUIRED_COLUMNS:
                if column not in columns:
                    raise StipError(
                        f"{path}: missing column {column!r}; "
                        "expected the STIP Compass CSV export (InitiativeID, NameEnglish, "
                        "ShortDescription, ..., theme flags TH9..TH99)"
                    )
            themes = [c for c in columns if THEME_COLUMN.match(c or "")]
            if not themes:
                raise StipError(
                    f"{path}: missing theme columns (TH9, TH10, ...); "
                    "expected the STIP Compass CSV export with one 0/1 column per theme"
                )
            try:
                for row in reader:
                    # DictReader's line_num counts physical lines (text may hold newlines).
                    yield reader.line_num, row, themes
            except csv.Error as error:
                raise StipError(f"{path}: line {reader.line_num}: malformed CSV ({error})") from None
            except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as error:
                raise StipError(f"{path}: cannot decode ({error})") from None
    except OSError as error:
        raise StipError(f"{path}: cannot read: {error}") from None


def has_country_column(path: str | os.PathLike[str]) -> bool:
    """Whether the export has a CountryCode or CountryLabel column (read_stip() checks the
    rest of it)."""
    for _line, row, _themes in _rows(Path(path)):
        return any(column in row for column in COUNTRY_COLUMNS)
    return False


def _flag(value: str | None, path: Path, line: int, column: str) -> bool:
    value = (value or "").strip()
    if value in ("", "0", "0.0", "False", "false"):
        return False
    if value in ("1", "1.0", "True", "true"):
        return True
    raise StipError(f"{path}: line {line}: column {column} should be 0 or 1, not {value!r}")


def read_stip(
    path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[Example]:
    """One example per initiative, in file order (``limit``: only the first N initiatives)."""
    path = Path(path)
    taxonomy = taxonomy or load_taxonomy()
    mapping = taxonomy.stip_themes
    order = [label.id for label in taxonomy.areas]
    folded: dict[str, dict] = {}
    for line, row, theme_columns in _rows(path):
        key = (row.get("InitiativeID") or "").strip()
        if not key:
            raise StipError(f"{path}: line {line}: empty InitiativeID")
        entry = folded.get(key)
        if entry is None:
            if limit is not None and len(folded) >= limit:
                break
            text = "\n".join(
                " ".join((row.get(c) or "").split()) for c in TEXT_COLUMNS
                if (row.get(c) or "").strip()
            )
            entry = folded[key] = {
                "title": " ".join((row.get("NameEnglish") or "").split()),
                "text": text,
                "themes": set(),
                "country": country_code(row.get("CountryCode") or "", row.get("CountryLabel") or ""),
            }
        for column in theme_columns:
            if _flag(row.get(column), path, line, column):
                entry["themes"].add(column)
    examples = []
    for key, entry in folded.items():
        if not (entry["title"] or entry["text"]):
            continue
        areas = {mapping[t] for t in entry["themes"] if t in mapping}
        number = key.rstrip("/").rsplit("/", 1)[-1]
        examples.append(Example(
            id=f"stip2021-{number}",
            title=entry["title"],
            text=entry["text"],
            areas=tuple(a for a in order if a in areas),
            themes=tuple(sorted(entry["themes"], key=lambda t: int(t[2:]))),
            countries=(entry["country"],) if entry["country"] else (),
        ))
    if not examples:
        raise StipError(f"{path}: no initiatives found (the file has a header but no rows)")
    return examples
