"""The source registry: a TOML file of ``[[source]]`` tables, validated as a whole.

Every problem is reported (not just the first), each naming the file, the line, the source id
and the field, so a user fixes a file in one pass. Nothing is returned unless the whole file is
valid: a half-valid registry must never be synced.
"""

from __future__ import annotations

from dataclasses import dataclass
import difflib
from importlib import resources
import json
from pathlib import Path
import re
import tomllib
from typing import Any, Sequence
from urllib.parse import urlsplit

import cssselect
import pycountry

from db.codes import country_hint

from .urls import InvalidURL, canonicalize

KINDS = ("feed", "html", "sitemap")
ORG_TYPES = (
    "ministry", "funding_agency", "research_org", "intergovernmental", "news", "academy", "other",
)
SPECIAL_COUNTRIES = ("EU", "international")
FIELDS = (
    "id", "name", "url", "homepage", "kind", "country", "language", "org_type", "links", "enabled",
)
REQUIRED = ("id", "name", "url", "kind", "country", "language", "org_type")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
# Country codes written as languages (the language of Japan is 'ja', not 'jp').
LANGUAGE_ALIASES = {"jp": "ja", "kr": "ko", "cn": "zh", "tw": "zh", "cz": "cs", "dk": "da",
                    "se": "sv", "gr": "el", "ua": "uk", "il": "he", "vn": "vi", "at": "de",
                    "br": "pt", "mx": "es", "gb": "en", "us": "en", "ee": "et", "si": "sl"}


class RegistryError(Exception):
    """A registry file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Registry:
    path: str
    sources: list[dict[str, Any]]


def bundled_registry_path() -> Path:
    """The curated registry that ships inside the package."""
    return Path(str(resources.files(__package__).joinpath("sources.toml")))


def _locate(text: str) -> list[tuple[int, dict[str, int]]]:
    """Line numbers of each ``[[source]]`` header and of the fields under it.

    tomllib reports positions only for syntax errors, so validation errors find their lines here.
    """
    tables: list[tuple[int, dict[str, int]]] = []
    in_source = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_source = stripped.replace(" ", "") == "[[source]]"
            if in_source:
                tables.append((number, {}))
            continue
        match = re.match(r"([A-Za-z0-9_-]+)\s*=", stripped)
        if in_source and match:
            tables[-1][1].setdefault(match.group(1), number)
    return tables


def _choice_hint(given: str, choices: Sequence[str]) -> str:
    """" (did you mean 'sitemap'?)" for a value a plural, a case or a typo away from a choice,
    else "": the list of choices alone leaves the reader to spot which one."""
    folded = given.strip().lower().replace("-", "_").replace(" ", "_")
    close = difflib.get_close_matches(folded, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _country_ok(value: str) -> bool:
    if value in SPECIAL_COUNTRIES:
        return True
    return len(value) == 2 and value.isupper() and pycountry.countries.get(alpha_2=value) is not None


def _language_ok(value: str) -> bool:
    return len(value) == 2 and value.islower() and pycountry.languages.get(alpha_2=value) is not None


def _country_hint(value: str) -> str:
    """What a country value that is not a code probably meant, as " (...)", or ""."""
    if _country_ok(value.upper()):
        return f" (in capitals: {value.upper()!r})"
    # "UK", a name ("Japan") or an alpha-3 code ("JPN").
    return country_hint(value, otherwise="")


def _language_hint(value: str) -> str:
    if _language_ok(value.lower()):
        return f" (in small letters: {value.lower()!r})"
    code = LANGUAGE_ALIASES.get(value.lower())
    if code:
        name = pycountry.languages.get(alpha_2=code).name
        return f" ({value!r} is a country code; {name} is {code!r})"
    try:
        language = pycountry.languages.lookup(value.strip())
    except LookupError:
        return ""
    code = getattr(language, "alpha_2", None)
    return f" ({language.name} is {code!r})" if code else ""


def _url_hint(value: str) -> str:
    """A URL written without its scheme ("www.example.go.jp/rss.xml") gets the one to add."""
    if "://" not in value and re.match(r"^[\w.-]+\.[a-z]{2,}(?::\d+)?(/|$)", value, re.I):
        return f" (start it with the scheme: 'https://{value}')"
    return ""


def _url_ok(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_source(source: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of one source as ``(field, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    misspelt: set[str] = set()
    for key in source:
        if key not in FIELDS:
            close = difflib.get_close_matches(key.lower(), [f for f in FIELDS if f not in source],
                                              n=1, cutoff=0.7)
            if close:
                # The misspelling is the problem: the field it misses is not reported again.
                misspelt.add(close[0])
                problems.append((key, f"unknown field (did you mean '{close[0]}'?)"))
            else:
                problems.append((key, f"unknown field (expected one of: {', '.join(FIELDS)})"))
    missing = [key for key in REQUIRED if key not in source and key not in misspelt]
    if len(missing) == 1:
        problems.append((missing[0], "missing"))
    elif missing:
        # One line for a source left unfinished, not one per field.
        problems.append(("", f"missing fields: {', '.join(missing)}"))
    mistyped = [key for key in FIELDS if key != "enabled" and key in source
                and not isinstance(source[key], str)]
    for key in mistyped:
        hint = ""
        if isinstance(source[key], list) and key == "links":
            hint = " (several selectors go in one string, separated by commas: 'h2 a, h3 a')"
        elif isinstance(source[key], list):
            hint = " (one value, not a list)"
        problems.append((key, f"must be a string, not {source[key]!r}{hint}"))
    if "enabled" in source and not isinstance(source["enabled"], bool):
        meant = {"true": "true", "yes": "true", "false": "false", "no": "false"}.get(
            str(source["enabled"]).lower())
        quoted = f" (without quotes: enabled = {meant})" if meant else ""
        problems.append(("enabled", f"must be true or false, not {source['enabled']!r}{quoted}"))
    if mistyped:
        # The checks below assume strings; the type problems are enough to act on.
        return problems
    value = source.get
    if "id" in source and not ID_PATTERN.match(value("id")):
        slug = re.sub(r"[^a-z0-9]+", "-", value("id").lower()).strip("-")
        slug = slug if ID_PATTERN.match(slug) else ""
        hint = f": {slug!r}" if slug else ""
        problems.append(("id", f"{value('id')!r} is not a slug (lowercase letters, digits, '-', "
                               f"starting with a letter{hint})"))
    if "name" in source and not value("name").strip():
        problems.append(("name", "is empty"))
    if "kind" in source and value("kind") not in KINDS:
        hint = (' (RSS and Atom feeds are kind = "feed")'
                if value("kind").lower() in ("rss", "atom", "rdf", "xml")
                else _choice_hint(value("kind"), KINDS))
        problems.append(("kind", f"{value('kind')!r} is not one of: {', '.join(KINDS)}{hint}"))
    if "org_type" in source and value("org_type") not in ORG_TYPES:
        hint = _choice_hint(value("org_type"), ORG_TYPES)
        problems.append(
            ("org_type", f"{value('org_type')!r} is not one of: {', '.join(ORG_TYPES)}{hint}")
        )
    if "country" in source and not _country_ok(value("country")):
        hint = _country_hint(value("country"))
        problems.append(("country", f"{value('country')!r} is not an ISO 3166-1 alpha-2 code, "
                                    f"'EU' or 'international'{hint}"))
    if "language" in source and not _language_ok(value("language")):
        hint = _language_hint(value("language"))
        problems.append(("language", f"{value('language')!r} is not an ISO 639-1 code{hint}"))
    for key in ("url", "homepage"):
        if isinstance(value(key), str) and not _url_ok(value(key)):
            problems.append((key, f"{value(key)!r} is not an http(s) URL{_url_hint(value(key))}"))
    links = value("links")
    if value("kind") == "html":
        if not links:
            problems.append(("links", "required for kind = \"html\" (CSS selector of article links)"))
        elif isinstance(links, str):
            try:
                cssselect.GenericTranslator().css_to_xpath(links)
            except cssselect.SelectorError as error:
                xpath = (": it looks like XPath; links takes CSS, such as 'ul.news a'"
                         if links.lstrip().startswith(("/", "(")) else "")
                problems.append(
                    ("links", f"{links!r} is not a valid CSS selector ({error}){xpath}"))
    elif links is not None and value("kind") in KINDS:
        problems.append(("links", f"only html sources take a links selector, not {value('kind')}"))
    return problems


def toml_syntax_problem(path: str, error: tomllib.TOMLDecodeError) -> str:
    """``PATH:LINE: invalid TOML: ...`` like the other problems, with a hint for the usual
    slip: a string whose closing quote is missing, which tomllib calls an illegal newline."""
    message = str(error)
    where = re.search(r"\(at line (\d+), column \d+\)", message)
    line = f":{where.group(1)}" if where else ""
    if message.startswith("Illegal character '\\n'"):
        message += ": a string without its closing quote?"
    return f"{path}{line}: invalid TOML: {message}"


def utf8_problem(path: str, data: bytes, error: UnicodeDecodeError) -> str:
    """Where a file that is not UTF-8 first fails, by line, as an editor shows it."""
    line = data[:error.start].count(b"\n") + 1
    return (f"{path}:{line}: not UTF-8 (byte 0x{data[error.start]:02x}): TOML files are "
            "UTF-8; save it as UTF-8")


def _at(path: str, line: int) -> str:
    """``PATH:LINE``, or ``PATH`` where the line is unknown (sources written as an inline
    array, ``source = [{...}]``, have no [[source]] headers to find)."""
    return f"{path}:{line}" if line else path


def _check_same_url(source: dict[str, Any], urls: dict[str, tuple[str, int]], label: str,
                    where: str, line: int, problems: list[str]) -> None:
    """A problem when an enabled source has the URL (in its canonical form: host case,
    default port, fragment aside) of an earlier enabled one. A disabled source may share it:
    it is not crawled (a renamed source's old id kept beside the new one)."""
    url = source.get("url")
    if not isinstance(url, str) or source.get("enabled", True) is not True:
        return
    try:
        key = canonicalize(url)
    except InvalidURL:
        return  # reported as not an http(s) URL
    if key in urls:
        first, first_line = urls[key]
        on = f" (line {first_line})" if first_line else ""
        problems.append(f"{where}: {label}: field 'url': same url as source {first!r}{on}: "
                        "it would be crawled twice, each article stored under whichever "
                        "source read it first; keep one (or set enabled = false on the other)")
    else:
        urls[key] = (source["id"], line)


def parse_registry(text: str, path: str = "<registry>") -> Registry:
    """Validate registry text; raise RegistryError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError([toml_syntax_problem(path, error)]) from None
    unknown = [key for key in data if key != "source"]
    sources = data.get("source", [])
    # [[sources]] or [[Source]]: tables meant as sources, under another name.
    misnamed = [key for key in unknown if isinstance(data[key], dict) or (
        isinstance(data[key], list) and data[key] and all(isinstance(t, dict) for t in data[key]))]
    problems = [f"{path}: unknown top-level key {key!r} ("
                + ("did you mean [[source]]?)" if key in misnamed
                   else "expected [[source]] tables)")
                for key in unknown]
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise RegistryError(problems + [f"{path}: 'source' must be an array of [[source]] "
                                        "tables (two brackets: [[source]], not [source])"])
    if not sources and not misnamed:
        problems.append(f"{path}: no [[source]] tables")
    lines = _locate(text)
    seen: dict[str, int] = {}
    # enabled sources by URL: two would crawl one feed twice, each article stored under
    # whichever got it first (the other's count and health saying nothing true)
    urls: dict[str, tuple[str, int]] = {}
    for index, source in enumerate(sources):
        header, fields = lines[index] if index < len(lines) else (0, {})
        label = f"source {source.get('id')!r}" if "id" in source else f"source #{index + 1}"
        # In the order of the file's lines, as an editor goes through them.
        for field, message in sorted(_check_source(source),
                                     key=lambda problem: fields.get(problem[0], header)):
            line = fields.get(field, header)
            named = f"field '{field}': " if field else ""
            problems.append(f"{_at(path, line)}: {label}: {named}{message}")
        source_id = source.get("id")
        if isinstance(source_id, str):
            if source_id in seen:
                first = seen[source_id]
                problems.append(
                    f"{_at(path, fields.get('id', header))}: {label}: field 'id': duplicate id"
                    + (f", first used on line {first}" if first else f" (source #{index + 1})")
                )
            else:
                seen[source_id] = fields.get("id", header)
                _check_same_url(source, urls, label, _at(path, fields.get("url", header)),
                                fields.get("url", header), problems)
    if problems:
        raise RegistryError(problems)
    records = [{"enabled": True, "homepage": None, "links": None, **s} for s in sources]
    return Registry(path, records)


def load_registry(path: str | Path | None = None) -> Registry:
    """Read and validate a registry file (the bundled one when ``path`` is None)."""
    path = Path(path) if path is not None else bundled_registry_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError([f"{path}: no such file"]) from None
    except OSError as error:
        raise RegistryError([f"{path}: cannot read: {error}"]) from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte order mark, as Windows editors write
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RegistryError([utf8_problem(str(path), data, error)]) from None
    return parse_registry(text, str(path))


def dump_registry(records: list[dict[str, Any]], comment: str = "") -> str:
    """Registry TOML for source records (the inverse of ``parse_registry``; None is left out).

    Values are strings or booleans; JSON's string escapes are valid TOML basic strings.
    """
    lines = [f"# {line}" for line in comment.splitlines()] + ([""] if comment else [])
    for record in records:
        lines.append("[[source]]")
        for key, value in record.items():
            if value is not None:
                lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
        lines.append("")
    return "\n".join(lines)
