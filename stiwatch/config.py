"""Settings declared as data: each has a name, a default, a type and help.

Precedence, lowest first: the default, the TOML config file (``--config``, ``$STIWATCH_CONFIG``,
else ``./stiwatch.toml`` when present), the environment (``STIWATCH_<NAME>``), then command-line
flags. Secrets are read from the environment only; a config file that holds one is refused so it
never ends up in a backup or a repository.
"""

from __future__ import annotations

from dataclasses import dataclass
import difflib
import email.errors
import email.policy
import math
import os
from pathlib import Path
import re
import string
import tomllib
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import platformdirs


class ConfigError(Exception):
    """A config file or environment variable that cannot be used."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, not {raw!r}")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, not {raw!r}") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, not {raw!r}") from None


# -- constraints on string settings: each raises ValueError saying what it expected ----------

@dataclass(frozen=True)
class OneOf:
    """One of a few words, in any case."""

    choices: tuple[str, ...]

    def __call__(self, value: str) -> None:
        if value.upper() not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, not {value!r}")


@dataclass(frozen=True)
class EmailAddress:
    """One mail address, optionally with a display name (``Name <user@host>``), fit for a header."""

    def __call__(self, value: str) -> None:
        error = ValueError(f"expected one e-mail address such as 'Name <user@example.org>', "
                           f"not {value!r}")
        if any(ord(c) < 32 for c in value):
            raise error
        try:
            header = email.policy.default.header_factory("From", value)
        except (email.errors.HeaderParseError, IndexError):
            # Python's address parser fails outright on some malformed addresses instead of
            # noting a defect: "user@" (a domain left off) raised IndexError, a traceback.
            raise error from None
        if header.defects or len(header.addresses) != 1:
            raise error
        address = header.addresses[0]
        # "a@[]": the parser takes an empty domain literal for a domain
        if not address.username or not address.domain.strip("[] "):
            raise error


@dataclass(frozen=True)
class UrlScheme:
    """A URL with one of these schemes (empty allowed: the feature is off)."""

    schemes: tuple[str, ...]

    def __call__(self, value: str) -> None:
        if not value:
            return
        schemes = " or ".join(f"{s}:" for s in self.schemes)
        error = ValueError(f"expected a {schemes} URL, not {value!r}")
        # The value goes inside <...> in a mail header: no room for spaces or brackets.
        if re.search(r"[\s<>\"]", value) or any(ord(c) < 32 for c in value):
            raise error
        parts = urlsplit(value)
        if parts.scheme.lower() not in self.schemes:
            raise error
        if parts.scheme.lower() == "mailto":
            try:
                EmailAddress()(unquote(parts.path))
            except ValueError:
                raise error from None
        elif not parts.hostname:
            raise error


@dataclass(frozen=True)
class Template:
    """A str.format template that may use only these {placeholders}."""

    names: tuple[str, ...]

    def __call__(self, value: str) -> None:
        allowed = ", ".join("{" + n + "}" for n in self.names)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as error:
            raise ValueError(f"{error} in {value!r} (write {{{{ and }}}} for literal braces; "
                             f"placeholders: {allowed})") from None
        for field in fields:
            if field not in self.names:
                raise ValueError(f"unknown placeholder {{{field}}} in {value!r} "
                                 f"(allowed: {allowed})")
        try:  # a conversion or format spec that cannot apply to a string
            value.format(**{name: "" for name in self.names})
        except ValueError as error:
            raise ValueError(f"{error} in {value!r}") from None


@dataclass(frozen=True)
class UnsubscribeTarget:
    """`list_unsubscribe`: a mailto: or https: URL (``schemes``), once its {mail_from}, {email}
    and {token} are filled."""

    schemes: tuple[str, ...] = ("mailto", "https")

    def __call__(self, value: str) -> None:
        Template(("mail_from", "email", "token"))(value)
        if not value.isascii():  # it goes into a mail header as it is
            raise ValueError(f"expected an ASCII URL (percent-encode the rest), not {value!r}")
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f}
        if "token" in fields and "email" not in fields:
            # A token is a keyed hash: whoever receives it cannot tell whose it is.
            raise ValueError(f"{{token}} needs {{email}} beside it, which says whose token it "
                             f"is, not {value!r}")
        # {email} becomes the reader's address, percent-encoded: never a mailbox to write to.
        UrlScheme(self.schemes)(value.format(mail_from="stiwatch@example.org", email="reader",
                                             token="0" * 64))


@dataclass(frozen=True)
class TimeZoneName:
    """An IANA time zone name (the digests' weeks and the dates analysts type are read in it)."""

    def __call__(self, value: str) -> None:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"expected an IANA time zone such as Asia/Tokyo, not {value!r}"
                             f"{_zone_hint(value)}") from None


def _zone_hint(value: str) -> str:
    """" (did you mean 'Asia/Tokyo'?)" for a name a case, a typo or a missing region away from
    one (asia/tokyo, Asia/Tokio, Tokyo), else "". Only on the error path: it lists every zone."""
    names = available_timezones()
    wanted = value.strip().replace(" ", "_").lower()
    by_case = {name.lower(): name for name in names}
    cities = {name.rsplit("/", 1)[-1].lower(): name for name in sorted(names) if "/" in name}
    meant = by_case.get(wanted) or cities.get(wanted)
    if meant is None and wanted:
        close = difflib.get_close_matches(wanted, by_case, n=1, cutoff=0.8)
        meant = by_case[close[0]] if close else None
    return f" (did you mean {meant!r}?)" if meant else ""


@dataclass(frozen=True)
class ExistingFile:
    """A path to a file that exists (empty allowed: the feature is off). What is in it is
    checked by whoever reads it: a lexicon file when the classifier loads."""

    def __call__(self, value: str) -> None:
        if value and not Path(value).expanduser().is_file():
            what = "a folder" if Path(value).expanduser().is_dir() else "no such file"
            raise ValueError(f"expected an existing file, not {value!r} ({what})")


@dataclass(frozen=True)
class Setting:
    """One setting. ``minimum``/``maximum`` bound a number; ``check`` constrains a string."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[str], None] | None = None
    # A file or folder: a leading ~ is the home folder, as in a shell (TOML and systemd's
    # Environment= expand nothing, and `db = "~/..."` made a folder named ~).
    path: bool = False

    @property
    def env(self) -> str:
        return f"STIWATCH_{self.name.upper()}"


def _default_model_dir() -> str:
    return str(Path(platformdirs.user_data_dir("stiwatch")) / "models")


SETTINGS: tuple[Setting, ...] = (
    # -- store and logging
    Setting("db", "stiwatch.db", "Path of the SQLite database file.", path=True),
    Setting("log_level", "WARNING", "Logging level: DEBUG, INFO, WARNING or ERROR.",
            check=OneOf(("DEBUG", "INFO", "WARNING", "ERROR"))),
    Setting("log_file", "", "Append log lines to this file (its folder is created); stderr then "
            "gets only warnings and errors (empty: every line to stderr).", path=True),
    # -- crawling
    Setting("sources", "", "Registry TOML file to sync before crawling (empty: use the store).",
            path=True),
    Setting("contact", "", "E-mail or URL of whoever runs this crawler, sent in the User-Agent."),
    Setting("user_agent", "stiwatch/{version} (+{contact})",
            "User-Agent header; {version} and {contact} are filled in.",
            check=Template(("version", "contact"))),
    Setting("concurrent_requests_per_domain", 2, "Parallel requests to one host at most.", _int,
            minimum=1),
    Setting("download_delay", 1.0, "Seconds between requests to the same host (at least).",
            _float, minimum=0),
    Setting("autothrottle", True, "Adapt the delay to the server's response times.", _bool),
    Setting("download_timeout", 30, "Seconds before a request is abandoned.", _int, minimum=1),
    # Scrapy reads 0 as "no limit": the floor keeps the limit a limit.
    Setting("max_response_size", 10 * 1024 * 1024,
            "Largest response body accepted, in bytes, after decompression (at least 1024); "
            "a sitemap may have 50 MiB, the sitemaps.org limit, if that is more.",
            _int, minimum=1024),
    Setting("max_redirects", 5, "Redirects followed for one request at most (0: none).", _int,
            minimum=0),
    Setting("retry_times", 2, "Retries for timeouts and 5xx responses (with backoff).", _int,
            minimum=0),
    Setting("sitemap_max_age_days", 30, "Sitemap entries older than this are ignored.", _int,
            minimum=1),
    Setting("max_new_articles_per_source", 500, "New article pages fetched per source in one "
            "crawl at most, newest first; the rest wait for the next crawl (a sitemap of "
            "50,000 undated URLs would otherwise hold the crawl for 14 hours).", _int, minimum=1),
    Setting("obey_robots_txt", True, "Obey robots.txt (and its Crawl-delay).", _bool),
    Setting("verify_tls_certificates", False, "Refuse https sites whose certificate does not "
            "verify against the system's trusted CAs (off: many government sites serve "
            "incomplete chains, and browsers fetch the missing certificates where Scrapy does "
            "not).", _bool),
    # -- classifying
    Setting("model_dir", _default_model_dir(), "Folder holding trained classifier models. "
            "One set here must exist (empty: the lexicon rules classify); only the default "
            "may be missing (no model yet): a typo is refused, not read as no model.",
            path=True),
    Setting("domains_lexicon", "", "Analyst TOML file extending the technology-domain lexicon "
            "(empty: the bundled one only).", check=ExistingFile(), path=True),
    Setting("areas_lexicon", "", "Analyst TOML file extending the relevance and policy-area "
            "cues (empty: the bundled one only).", check=ExistingFile(), path=True),
    Setting("places_lexicon", "", "Analyst TOML file extending the country gazetteer "
            "(empty: the bundled one only).", check=ExistingFile(), path=True),
    Setting("area_rules_override", 0.99, "On news-like text, a policy area the cue rules "
            "score at least this is tagged even where the trained model disagrees; above 1 "
            "leaves areas to the model everywhere.", _float, minimum=0),
    # -- digests
    Setting("timezone", "Asia/Tokyo", "Time zone whose ISO weeks digests and trends cover, "
            "and of the days search and export filter by and search shows.",
            check=TimeZoneName()),
    Setting("digest_section_cap", 8, "Items shown per digest section at most.", _int, minimum=1),
    Setting("digest_max_html_bytes", 90_000, "Size of a digest's HTML part at most, in bytes "
            "(0: no limit). Gmail clips one over about 102 KB, hiding its end and the unsubscribe "
            "link: the lowest-ranked stories are left out to fit, each section saying how many "
            "more matched and how to list them.", _int, minimum=0),
    Setting("digest_catch_up_weeks", 4, "run --digest also sends what this many weeks before "
            "the last complete one still owe; older weeks only by hand (digest send --week).",
            _int, minimum=0),
    Setting("serve_url", "", "The store's page in `stiwatch serve` as digest readers reach it "
            "(serve announces it as http://HOST:PORT/NAME; e.g. https://sti.example.org/stiwatch "
            "behind a proxy): a digest section cut short then links, in the HTML part, to the "
            "listing of its stories there, where it gave `stiwatch search` commands (the text "
            "part keeps them). Empty: the commands.", check=UrlScheme(("http", "https"))),
    Setting("outbox", "outbox", "Folder for .eml files when no SMTP host is set (or --dry-run).",
            path=True),
    Setting("mail_from", "stiwatch <stiwatch@localhost>", "From header of digest e-mails.",
            check=EmailAddress()),
    Setting("list_unsubscribe", "mailto:{mail_from}?subject=unsubscribe",
            "List-Unsubscribe target and the digest's Unsubscribe link (mailto: or https: URL; "
            "empty: none); {mail_from} is mail_from's address, {email} the reader's "
            "(URL-encoded), {token} a code only the holder of unsubscribe_secret can make for "
            "that address (HMAC-SHA256, hex). An https: URL with {email} also offers one-click "
            "unsubscribe (RFC 8058): it must be your own service, which unsubscribes the reader "
            "when a mail client POSTs to it (stiwatch has no such endpoint; `serve` is "
            "read-only). Give it {email} and {token} (e.g. https://example.org/unsub?"
            "email={email}&token={token}) and have it check the token (`stiwatch subscribers "
            "remove EMAIL --token TOKEN`): with {email} alone anyone who knows an address can "
            "unsubscribe it.",
            check=UnsubscribeTarget()),
    Setting("list_unsubscribe_mailto", "mailto:{mail_from}?subject=unsubscribe",
            "The mailto: address List-Unsubscribe also gives after an https: list_unsubscribe, "
            "for mail clients that do not use web links (empty: the https: URL alone); unused "
            "when list_unsubscribe is a mailto: URL. {mail_from}, {email} and {token} as there.",
            check=UnsubscribeTarget(("mailto",))),
    Setting("unsubscribe_secret", "", "Key of the {token} in list_unsubscribe (a long random "
            "string; after a change, the links already sent work only while the old one is in "
            "unsubscribe_previous_secrets): only from STIWATCH_UNSUBSCRIBE_SECRET.", secret=True),
    Setting("unsubscribe_previous_secrets", "", "Earlier unsubscribe_secret values, separated "
            "by spaces: `subscribers remove --token` still takes the tokens they made, so the "
            "links of digests sent before the secret changed keep working while they are "
            "listed; the digest makes tokens with unsubscribe_secret alone. Only from "
            "STIWATCH_UNSUBSCRIBE_PREVIOUS_SECRETS.", secret=True),
    Setting("smtp_host", "", "SMTP server; empty writes digests to the outbox instead."),
    Setting("smtp_port", 587, "SMTP port.", _int, minimum=1, maximum=65535),
    Setting("smtp_username", "", "SMTP login name (empty: no login)."),
    Setting("smtp_password", "", "SMTP password: only from STIWATCH_SMTP_PASSWORD.", secret=True),
    Setting("smtp_starttls", True, "Upgrade the SMTP connection with STARTTLS.", _bool),
    Setting("smtp_ssl", False, "Connect with implicit TLS (usually port 465).", _bool),
    Setting("smtp_timeout", 60, "Seconds before an SMTP conversation is abandoned.", _int,
            minimum=1),
    Setting("delivery_max_attempts", 5, "Temporary SMTP failures retried up to this many times.",
            _int, minimum=1),
    Setting("delivery_retry_minutes", 30,
            "Wait before the first retry of a temporary failure; doubles each time.", _int,
            minimum=0),
    # -- output
    Setting("csv_bom", False, "Start CSV output (export, search, trends --format csv, and "
            "serve's CSV downloads) with a UTF-8 byte order mark, which Excel on Windows needs "
            "to read Japanese text; --bom/--no-bom override it.", _bool),
    # -- operations
    Setting("lock_file", "", "Lock file that stops two `stiwatch run` overlapping "
            "(empty: next to the database).", path=True),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Value:
    value: Any
    origin: str


class Settings(Mapping[str, Any]):
    """The effective settings, each with where it came from."""

    def __init__(self, values: dict[str, Value], config_file: Path | None) -> None:
        self._values = values
        self.config_file = config_file

    def __getitem__(self, name: str) -> Any:
        return self._values[name].value

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def origin(self, name: str) -> str:
        return self._values[name].origin

    def override(self, name: str, value: Any, origin: str) -> None:
        """Apply a command-line flag (the highest precedence)."""
        self._values[name] = Value(value, origin)

    def describe(self) -> list[dict[str, Any]]:
        """Every setting with its effective value (secrets masked), origin and help."""
        rows = []
        for setting in SETTINGS:
            value = self._values[setting.name]
            shown = value.value
            if setting.secret and shown:
                shown = "********"
            rows.append(
                {"name": setting.name, "value": shown, "origin": value.origin, "help": setting.help}
            )
        return rows


_KINDS = {str: ((str,), "a string"), _int: ((int,), "an integer"),
          _float: ((int, float), "a number"), _bool: ((bool,), "true or false")}


def _coerce(setting: Setting, raw: Any, where: str, *, parse: bool = False) -> Any:
    """Check a typed TOML value, or (``parse``) turn an environment string into the type, then
    hold it to the setting's declared constraints."""
    accepted, kind = _KINDS[setting.type]
    if parse:
        try:
            value = setting.type(raw)
        except ValueError as error:
            raise ConfigError(f"{where}: {setting.name}: {error}") from None
    else:
        if not isinstance(raw, accepted) or (isinstance(raw, bool) and setting.type is not _bool):
            raise ConfigError(f"{where}: {setting.name} must be {kind}, not {raw!r}")
        value = float(raw) if setting.type is _float else raw
    if setting.path:
        value = os.path.expanduser(value)
    try:
        _constrain(setting, value, kind)
    except ValueError as error:
        raise ConfigError(f"{where}: {setting.name}: {error}") from None
    return value


def _constrain(setting: Setting, value: Any, kind: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, not {value!r}")
    low, high = setting.minimum, setting.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bound = (f"from {low:g} to {high:g}" if low is not None and high is not None
                 else f"of at least {low:g}" if low is not None else f"of at most {high:g}")
        raise ValueError(f"expected {kind} {bound}, not {value!r}")
    if setting.check is not None:
        setting.check(value)


# STIWATCH_* variables that are not settings: read elsewhere (the config file's path, extra
# Scrapy settings) or by the test suite and benchmarks (the shared data, the browser).
OTHER_ENVIRONMENT = frozenset({"STIWATCH_CONFIG", "STIWATCH_SCRAPY_SETTINGS",
                               "STIWATCH_SHARED_DATA", "STIWATCH_CHROMIUM"})


def _environment_problems(environ: Mapping[str, str]) -> list[str]:
    """A misspelt STIWATCH_ variable is refused as a misspelt file key is: ignored, it would
    leave its setting at the default (STIWATCH_DATABASE: a new store in the working folder)."""
    known = {setting.env for setting in SETTINGS} | OTHER_ENVIRONMENT
    problems = []
    for name in sorted(environ):
        if name.startswith("STIWATCH_") and name not in known:
            import crawler.settings

            if name.isupper() and hasattr(crawler.settings, name):
                # STIWATCH_MAX_RETRY_AFTER and the like: the crawler's own Scrapy settings.
                problems.append(f"environment {name}: a setting of the crawler (Scrapy), not "
                                f"of stiwatch: pass it as STIWATCH_SCRAPY_SETTINGS="
                                f"'{{\"{name}\": ...}}'")
                continue
            close = difflib.get_close_matches(name.removeprefix("STIWATCH_"),
                                              [k.removeprefix("STIWATCH_") for k in known], n=1)
            hint = f"did you mean STIWATCH_{close[0]}? " if close else ""
            problems.append(f"environment {name}: unknown setting "
                            f"{name.removeprefix('STIWATCH_').lower()!r} ({hint}see "
                            "`stiwatch config`)")
    return problems


def find_config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: the flag, else $STIWATCH_CONFIG, else ./stiwatch.toml if any."""
    chosen = explicit or environ.get("STIWATCH_CONFIG")
    if chosen:
        path = Path(chosen)
        # Named where it was set: a stale STIWATCH_CONFIG in a service's environment is
        # otherwise looked for on the command line that never gave it.
        origin = "--config" if explicit else "STIWATCH_CONFIG"
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config file ({origin}; give the "
                              f"TOML file, e.g. {path / 'stiwatch.toml'})")
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found ({origin})")
        return path
    default = Path("stiwatch.toml")
    return default if default.is_file() else None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The settings file's table; its syntax errors and stray bytes named by line, in the
    words the registry's are (both are TOML files people edit by hand)."""
    try:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        from crawler.registry import utf8_problem

        raise ConfigError(utf8_problem(str(path), data, error)) from None
    except tomllib.TOMLDecodeError as error:
        from crawler.registry import toml_syntax_problem

        raise ConfigError(toml_syntax_problem(str(path), error)) from None


def _where(path: Path, key: str) -> str:
    """``PATH:LINE`` of a top-level key in the settings file (``PATH`` when not found)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return str(path)
    pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
    header = re.compile(rf"^\s*\[+\s*{re.escape(key)}\s*[\].]")
    for number, line in enumerate(lines, start=1):
        if pattern.match(line) or header.match(line):
            return f"{path}:{number}"
    return str(path)


def load_settings(
    config_file: str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting from defaults, the config file and the environment."""
    environ = os.environ if environ is None else environ
    # Every problem at once, one line each, as a sources file's: fixing one only to be shown
    # the next is a round trip per mistake.
    problems = _environment_problems(environ)
    path = find_config_file(config_file, environ)
    from_file: dict[str, Any] = {}
    if path is not None:
        from_file = _read_config_file(path)
        for key in from_file:
            if key not in BY_NAME:
                grouped = [name for name in BY_NAME if name.startswith(f"{key}_")]
                close = difflib.get_close_matches(key, list(BY_NAME), n=1)
                if isinstance(from_file[key], dict) and grouped:
                    # [smtp] host = ...: the settings are flat names, smtp_host = ...
                    hint = (f"settings are top-level names such as {grouped[0]}, not a [{key}] "
                            "table; ")
                elif close and BY_NAME[close[0]].secret:
                    hint = (f"did you mean {close[0]!r}? it is read only from "
                            f"{BY_NAME[close[0]].env}; ")
                else:
                    hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(f"{_where(path, key)}: unknown setting {key!r} ({hint}see "
                                "`stiwatch config`)")
            elif BY_NAME[key].secret:
                problems.append(
                    f"{_where(path, key)}: {key} must not be stored in a file; "
                    f"set the environment variable {BY_NAME[key].env} instead"
                )
    values: dict[str, Value] = {}
    for setting in SETTINGS:
        value = Value(setting.default, "default")
        try:
            if setting.name in from_file and not setting.secret:
                value = Value(_coerce(setting, from_file[setting.name],
                                      _where(path, setting.name)), str(path))
            if setting.env in environ:
                value = Value(
                    _coerce(setting, environ[setting.env], f"environment {setting.env}",
                            parse=True),
                    f"env {setting.env}",
                )
        except ConfigError as error:
            problems.append(str(error))
        values[setting.name] = value
    if problems:
        raise ConfigError("\n".join(problems))
    return Settings(values, path)
