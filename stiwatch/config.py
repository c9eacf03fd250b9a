"""Settings declared as data: each has a name, a default, a type and help.

Precedence, lowest first: the default, the TOML config file (``--config``, ``$STIWATCH_CONFIG``,
else ``./stiwatch.toml`` when present), the environment (``STIWATCH_<NAME>``), then command-line
flags. Secrets are read from the environment only; a config file that holds one is refused so it
never ends up in a backup or a repository.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import tomllib
from typing import Any, Callable, Mapping

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


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses nan
        raise ValueError(f"expected a number of at least 0, not {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    secret: bool = False

    @property
    def env(self) -> str:
        return f"STIWATCH_{self.name.upper()}"


def _default_model_dir() -> str:
    return str(Path(platformdirs.user_data_dir("stiwatch")) / "models")


SETTINGS: tuple[Setting, ...] = (
    # -- store and logging
    Setting("db", "stiwatch.db", "Path of the SQLite database file."),
    Setting("log_level", "WARNING", "Logging level: DEBUG, INFO, WARNING or ERROR."),
    Setting("log_file", "", "Append log lines to this file as well as stderr (empty: stderr only)."),
    # -- crawling
    Setting("sources", "", "Registry TOML file to sync before crawling (empty: use the store)."),
    Setting("contact", "", "E-mail or URL of whoever runs this crawler, sent in the User-Agent."),
    Setting("user_agent", "stiwatch/{version} (+{contact})",
            "User-Agent header; {version} and {contact} are filled in."),
    Setting("concurrent_requests_per_domain", 2, "Parallel requests to one host at most.", int),
    Setting("download_delay", 1.0, "Seconds between requests to the same host (at least).", float),
    Setting("autothrottle", True, "Adapt the delay to the server's response times.", _bool),
    Setting("download_timeout", 30, "Seconds before a request is abandoned.", int),
    Setting("max_response_size", 10 * 1024 * 1024,
            "Largest response body accepted, in bytes, after decompression.", int),
    Setting("max_redirects", 5, "Redirects followed for one request at most.", int),
    Setting("retry_times", 2, "Retries for timeouts and 5xx responses (with backoff).", int),
    Setting("sitemap_max_age_days", 30, "Sitemap entries older than this are ignored.", int),
    Setting("obey_robots_txt", True, "Obey robots.txt (and its Crawl-delay).", _bool),
    # -- classifying
    Setting("model_dir", _default_model_dir(), "Folder holding trained classifier models."),
    Setting("domains_lexicon", "", "Analyst TOML file extending the technology-domain lexicon "
            "(empty: the bundled one only)."),
    Setting("areas_lexicon", "", "Analyst TOML file extending the relevance and policy-area "
            "cues (empty: the bundled one only)."),
    Setting("places_lexicon", "", "Analyst TOML file extending the country gazetteer "
            "(empty: the bundled one only)."),
    Setting("area_rules_override", 0.99, "On news-like text, a policy area the cue rules "
            "score at least this is tagged even where the trained model disagrees; above 1 "
            "leaves areas to the model everywhere.", _non_negative),
    # -- digests
    Setting("timezone", "Asia/Tokyo", "Time zone whose ISO weeks digests cover."),
    Setting("digest_section_cap", 8, "Items shown per digest section at most.", int),
    Setting("outbox", "outbox", "Folder for .eml files when no SMTP host is set (or --dry-run)."),
    Setting("mail_from", "stiwatch <stiwatch@localhost>", "From header of digest e-mails."),
    Setting("list_unsubscribe", "mailto:stiwatch@localhost?subject=unsubscribe",
            "List-Unsubscribe target (mailto: or https: URL)."),
    Setting("smtp_host", "", "SMTP server; empty writes digests to the outbox instead."),
    Setting("smtp_port", 587, "SMTP port.", int),
    Setting("smtp_username", "", "SMTP login name (empty: no login)."),
    Setting("smtp_password", "", "SMTP password: only from STIWATCH_SMTP_PASSWORD.", secret=True),
    Setting("smtp_starttls", True, "Upgrade the SMTP connection with STARTTLS.", _bool),
    Setting("smtp_ssl", False, "Connect with implicit TLS (usually port 465).", _bool),
    Setting("smtp_timeout", 60, "Seconds before an SMTP conversation is abandoned.", int),
    Setting("delivery_max_attempts", 5, "Temporary SMTP failures retried up to this many times.",
            int),
    Setting("delivery_retry_minutes", 30,
            "Wait before the first retry of a temporary failure; doubles each time.", int),
    # -- operations
    Setting("lock_file", "", "Lock file that stops two `stiwatch run` overlapping "
            "(empty: next to the database)."),
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


_KINDS = {str: ((str,), "a string"), int: ((int,), "an integer"),
          float: ((int, float), "a number"), _non_negative: ((int, float), "a number"),
          _bool: ((bool,), "true or false")}


def _coerce(setting: Setting, raw: Any, where: str, *, parse: bool = False) -> Any:
    """Check a typed TOML value, or (``parse``) turn an environment string into the type."""
    if parse and setting.type is not str:
        try:
            return setting.type(raw)
        except ValueError as error:
            raise ConfigError(f"{where}: {setting.name}: {error}") from None
    accepted, kind = _KINDS[setting.type]
    if not isinstance(raw, accepted) or (isinstance(raw, bool) and setting.type is not _bool):
        raise ConfigError(f"{where}: {setting.name} must be {kind}, not {raw!r}")
    if setting.type in (float, _non_negative):
        try:
            return setting.type(raw)
        except ValueError as error:
            raise ConfigError(f"{where}: {setting.name}: {error}") from None
    return raw


def find_config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: the flag, else $STIWATCH_CONFIG, else ./stiwatch.toml if any."""
    chosen = explicit or environ.get("STIWATCH_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    default = Path("stiwatch.toml")
    return default if default.is_file() else None


def load_settings(
    config_file: str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting from defaults, the config file and the environment."""
    environ = os.environ if environ is None else environ
    path = find_config_file(config_file, environ)
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: invalid TOML: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read: {error}") from None
        for key in from_file:
            if key not in BY_NAME:
                raise ConfigError(f"{path}: unknown setting {key!r} (see `stiwatch config`)")
            if BY_NAME[key].secret:
                raise ConfigError(
                    f"{path}: {key} must not be stored in a file; "
                    f"set the environment variable {BY_NAME[key].env} instead"
                )
    values: dict[str, Value] = {}
    for setting in SETTINGS:
        value = Value(setting.default, "default")
        if setting.name in from_file:
            value = Value(_coerce(setting, from_file[setting.name], str(path)), str(path))
        if setting.env in environ:
            value = Value(
                _coerce(setting, environ[setting.env], f"environment {setting.env}", parse=True),
                f"env {setting.env}",
            )
        values[setting.name] = value
    return Settings(values, path)
