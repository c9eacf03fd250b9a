"""Settings: defaults, file, environment and flags, each with its origin; secrets only from env."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner
import pytest

from stiwatch.cli import cli
from stiwatch.config import BY_NAME, SETTINGS, ConfigError, load_settings


def test_defaults_when_nothing_is_configured():
    settings = load_settings(environ={})
    assert settings.config_file is None
    for setting in SETTINGS:
        assert settings[setting.name] == setting.default
        assert settings.origin(setting.name) == "default"
        assert setting.help


def test_file_then_environment_override_with_origins(tmp_path: Path):
    config = tmp_path / "custom.toml"
    config.write_text('download_delay = 2.5\nsmtp_port = 2525\ntimezone = "Europe/Paris"\n')
    settings = load_settings(str(config), environ={"STIWATCH_SMTP_PORT": "465",
                                                   "STIWATCH_SMTP_SSL": "yes"})
    assert settings["download_delay"] == 2.5
    assert settings.origin("download_delay") == str(config)
    assert settings["smtp_port"] == 465
    assert settings.origin("smtp_port") == "env STIWATCH_SMTP_PORT"
    assert settings["smtp_ssl"] is True
    assert settings["timezone"] == "Europe/Paris"


def test_stiwatch_toml_in_the_working_directory_is_found(isolated_env: Path):
    (isolated_env / "stiwatch.toml").write_text('contact = "intl@example.org"\n')
    settings = load_settings(environ={})
    assert settings["contact"] == "intl@example.org"
    assert settings.config_file == Path("stiwatch.toml")


def test_config_path_from_environment(tmp_path: Path):
    config = tmp_path / "elsewhere.toml"
    config.write_text("digest_section_cap = 3\n")
    settings = load_settings(environ={"STIWATCH_CONFIG": str(config)})
    assert settings["digest_section_cap"] == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("smtp_password = 'hunter2'\n",
         "smtp_password must not be stored in a file; set the environment variable "
         "STIWATCH_SMTP_PASSWORD instead"),
        ("unsubscribe_secret = 'k9'\n",
         "unsubscribe_secret must not be stored in a file; set the environment variable "
         "STIWATCH_UNSUBSCRIBE_SECRET instead"),
        ("smtp_prot = 25\n", "unknown setting 'smtp_prot'"),
        ("smtp_port = '25'\n", "smtp_port must be an integer, not '25'"),
        ("smtp_starttls = 1\n", "smtp_starttls must be true or false, not 1"),
        ("download_delay = true\n", "download_delay must be a number, not True"),
        ("contact = 3\n", "contact must be a string, not 3"),
        ("area_rules_override = -0.5\n",
         "area_rules_override: expected a number of at least 0, not -0.5"),
        ("area_rules_override = 'off'\n", "area_rules_override must be a number, not 'off'"),
        ("timezone = \n", "invalid TOML"),
    ],
)
def test_bad_config_file_names_file_and_setting(tmp_path: Path, content: str, message: str):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value).startswith(f"{config}:1: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("content, message", [
    ('contact = "a@example.org"\ncontcat = "intl@example.org"\n',
     "2: unknown setting 'contcat' (did you mean 'contact'? see `stiwatch config`)"),
    ('# mail\n[smtp]\nhost = "mail.example.org"\n',
     "2: unknown setting 'smtp' (settings are top-level names such as smtp_host, not a [smtp] "
     "table; see `stiwatch config`)"),
    ("smtp_pasword = 'x'\n",
     "1: unknown setting 'smtp_pasword' (did you mean 'smtp_password'? it is read only from "
     "STIWATCH_SMTP_PASSWORD; see `stiwatch config`)"),
    ('# settings\n\ndownload_delay = "1"\n', "3: download_delay must be a number, not '1'"),
    ('contact = "a@example.org\n',
     "1: invalid TOML: Illegal character '\\n' (at line 1, column 25): a string without its "
     "closing quote?"),
])
def test_a_newcomers_slip_in_the_config_file_names_its_line_and_what_was_meant(
        tmp_path: Path, content: str, message: str):
    """Misspelt names were refused without the suggestion the environment's get, and no
    error named the line."""
    config = tmp_path / "stiwatch.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value) == f"{config}:{message}"


def test_every_mistake_in_the_settings_is_named_at_once(stiwatch, tmp_path: Path):
    """Two slips in the file and one in the environment: the first alone was named, so each
    fix was a round trip to find the next (a sources file names all of its problems)."""
    config = tmp_path / "stiwatch.toml"
    config.write_text('contcat = "a@example.org"\ntimezone = "Asia/Tokio"\n'
                      'download_delay = "1"\n')
    result = stiwatch("--config", str(config), "config",
                      env={"STIWATCH_SMTP_PASWORD": "x"})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: environment STIWATCH_SMTP_PASWORD: unknown setting 'smtp_pasword' (did you "
        "mean STIWATCH_SMTP_PASSWORD? see `stiwatch config`)",
        f"Error: {config}:1: unknown setting 'contcat' (did you mean 'contact'? see "
        "`stiwatch config`)",
        f"Error: {config}:3: download_delay must be a number, not '1'",
        f"Error: {config}:2: timezone: expected an IANA time zone such as Asia/Tokyo, not "
        "'Asia/Tokio' (did you mean 'Asia/Tokyo'?)",
    ]


def test_a_config_file_that_is_not_utf8_names_the_line(tmp_path: Path):
    """Saved by a Japanese Windows editor in Shift_JIS: it was a decoder's traceback-like
    message giving a byte position."""
    config = tmp_path / "stiwatch.toml"
    config.write_bytes('timezone = "Asia/Tokyo"\n# 国際部\ncontact = "a@example.org"\n'
                       .encode("shift_jis"))
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value) == (f"{config}:2: not UTF-8 (byte 0x8d): TOML files are UTF-8; "
                                 "save it as UTF-8")


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="environment STIWATCH_SMTP_PORT: smtp_port"):
        load_settings(environ={"STIWATCH_SMTP_PORT": "twenty-five"})


@pytest.mark.parametrize("name, message", [
    ("STIWATCH_SMTP_PASWORD", "unknown setting 'smtp_pasword' (did you mean "
     "STIWATCH_SMTP_PASSWORD? see `stiwatch config`)"),
    ("STIWATCH_DATABASE", "unknown setting 'database' (see `stiwatch config`)"),
])
def test_a_misspelt_environment_variable_is_refused_naming_it(name: str, message: str):
    """It was ignored, leaving its setting at the default: no SMTP password, or a new store in
    the working folder instead of the one meant."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={name: "x"})
    assert str(caught.value) == f"environment {name}: {message}"


def test_a_crawler_setting_given_as_a_variable_says_where_it_goes():
    """operations.md named STIWATCH_MAX_RETRY_AFTER, which as a variable of its own was
    refused as an unknown setting ("did you mean STIWATCH_RETRY_TIMES?")."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"STIWATCH_MAX_RETRY_AFTER": "300"})
    assert str(caught.value) == (
        "environment STIWATCH_MAX_RETRY_AFTER: a setting of the crawler (Scrapy), not of "
        "stiwatch: pass it as STIWATCH_SCRAPY_SETTINGS='{\"STIWATCH_MAX_RETRY_AFTER\": ...}'")


def test_the_other_stiwatch_variables_are_not_settings_but_allowed(tmp_path: Path):
    config = tmp_path / "s.toml"
    config.write_text("")
    settings = load_settings(environ={"STIWATCH_CONFIG": str(config),
                                      "STIWATCH_SCRAPY_SETTINGS": "{}"})
    assert settings.config_file == config


def test_a_misspelt_environment_variable_stops_a_command_before_it_starts(stiwatch, db_path):
    result = stiwatch("--quiet", "run", env={"STIWATCH_SMTP_HSOT": "mail.example.org"})
    assert result.exit_code == 2
    assert result.stderr == ("Error: environment STIWATCH_SMTP_HSOT: unknown setting "
                             "'smtp_hsot' (did you mean STIWATCH_SMTP_HOST? see `stiwatch "
                             "config`)\n")
    assert not db_path.exists()


def test_a_path_setting_starting_with_a_tilde_is_in_the_home_folder(tmp_path: Path):
    """TOML (and systemd's Environment=) expand nothing: `db = "~/..."` was a folder named ~
    in the working directory, and a lexicon "~/..." passed its check but was then not found."""
    home = Path(os.environ["HOME"])
    (home / "domains.toml").write_text("[domain.quantum]\nstrong = ['Quantum Valley']\n")
    config = tmp_path / "s.toml"
    config.write_text('db = "~/stiwatch/stiwatch.db"\noutbox = "~/outbox"\n')
    settings = load_settings(str(config), environ={"STIWATCH_DOMAINS_LEXICON": "~/domains.toml"})
    assert settings["db"] == str(home / "stiwatch" / "stiwatch.db")
    assert settings["outbox"] == str(home / "outbox")
    assert settings["domains_lexicon"] == str(home / "domains.toml")


def test_init_with_a_tilde_db_creates_the_store_in_the_home_folder(isolated_env: Path):
    Path("stiwatch.toml").write_text('db = "~/data/stiwatch.db"\n')
    # the folder must exist (a store is never made in a folder made on the way)
    (Path(os.environ["HOME"]) / "data").mkdir(parents=True)
    registry = isolated_env / "sources.toml"
    registry.write_text('[[source]]\nid = "a"\nname = "A"\nurl = "http://127.0.0.1:9/f.xml"\n'
                        'kind = "feed"\ncountry = "JP"\nlanguage = "en"\norg_type = "news"\n')
    result = CliRunner().invoke(cli, ["init", "--sources", str(registry)])
    assert result.exit_code == 0, result.output
    assert (Path(os.environ["HOME"]) / "data" / "stiwatch.db").is_file()
    assert sorted(p.name for p in isolated_env.iterdir()) == ["sources.toml", "stiwatch.toml"]


def test_missing_explicit_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(str(tmp_path / "missing.toml"), environ={})


def test_a_config_path_that_is_no_file_says_where_it_was_set(stiwatch, tmp_path: Path):
    # A folder read "config file not found", and neither said it came from STIWATCH_CONFIG.
    result = stiwatch("--config", str(tmp_path), "status")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {tmp_path}: is a folder, not a config file (--config; give the TOML file, "
        f"e.g. {tmp_path / 'stiwatch.toml'})"]
    result = stiwatch("status", env={"STIWATCH_CONFIG": str(tmp_path / "gone.toml")})
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"Error: {tmp_path / 'gone.toml'}: config file not found (STIWATCH_CONFIG)"]


def test_config_command_masks_the_password_and_shows_origins(stiwatch, db_path):
    result = stiwatch("config", "--json", env={"STIWATCH_SMTP_PASSWORD": "hunter2",
                                               "STIWATCH_SMTP_HOST": "mail.example.org"})
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["smtp_password"] == {
        "name": "smtp_password", "value": "********", "origin": "env STIWATCH_SMTP_PASSWORD",
        "help": rows["smtp_password"]["help"],
    }
    assert rows["smtp_host"]["value"] == "mail.example.org"
    assert rows["db"] == {**rows["db"], "value": str(db_path), "origin": "option --db"}


def test_config_command_table(stiwatch):
    result = stiwatch("config", env={"STIWATCH_SMTP_PASSWORD": "hunter2"})
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert "smtp_password" in result.output and "********" in result.output
    assert "Config file: none" in result.output
    # each setting's help too, not only in --json: what `area_rules_override` is, for one
    line = next(l for l in result.stdout.splitlines() if l.startswith("area_rules_override "))
    assert line.split()[1:3] == ["0.99", "default"]
    assert line.endswith(BY_NAME["area_rules_override"].help)


FORGEABLE = "https://example.org/unsub?email={email}"
TOKENED = FORGEABLE + "&token={token}"


@pytest.mark.parametrize("env, note", [
    ({"STIWATCH_LIST_UNSUBSCRIBE": FORGEABLE},
     "Note: list_unsubscribe names the reader by {email} alone, so anyone who knows an "
     "address can unsubscribe it: add {token} (e.g. &token={token}), set "
     "STIWATCH_UNSUBSCRIBE_SECRET and have your service check it (see docs/operations.md)\n"),
    ({"STIWATCH_LIST_UNSUBSCRIBE": TOKENED},
     "Note: list_unsubscribe uses {token} but the unsubscribe secret is empty: give it in "
     "the environment variable STIWATCH_UNSUBSCRIBE_SECRET of the command (never in a file "
     "stiwatch reads; see docs/operations.md); `digest send` refuses to send until it is "
     "set\n"),
    ({"STIWATCH_LIST_UNSUBSCRIBE": TOKENED, "STIWATCH_UNSUBSCRIBE_SECRET": "k9-secret"}, ""),
    ({}, ""),  # the default mailto: names nobody
], ids=["email-alone", "token-without-secret", "token-and-secret", "default"])
def test_config_command_says_what_the_unsubscribe_link_lacks(stiwatch, env, note):
    """An https link naming the reader by {email} alone can be forged by anyone who knows an
    address; a {token} without its secret stops `digest send`. `stiwatch config` says either
    on stderr (the table on stdout stays as it was), and is quiet once both are right."""
    result = stiwatch("config", env=env)
    assert result.exit_code == 0
    assert result.stderr == note
    assert "k9-secret" not in result.output


def test_config_shows_a_log_file_it_neither_creates_nor_needs(stiwatch, tmp_path: Path):
    """`stiwatch config`, run by root to check the settings, created /var/log/stiwatch/ and a
    root-owned log file the scheduled runs could then not open; and a log_file that cannot be
    opened hid every setting behind its error."""
    log_file = tmp_path / "logs" / "stiwatch.log"
    result = stiwatch("config", env={"STIWATCH_LOG_FILE": str(log_file)})
    assert result.exit_code == 0, result.output
    assert str(log_file) in result.stdout
    assert not log_file.parent.exists()
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = stiwatch("config", "--json", env={"STIWATCH_LOG_FILE": str(blocker / "x.log")})
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["log_file"]["value"] == str(blocker / "x.log")
    # every other command still refuses it before doing anything
    assert stiwatch("status", env={"STIWATCH_LOG_FILE": str(blocker / "x.log")}).exit_code == 2


def test_bad_config_is_a_one_line_error_with_exit_2(stiwatch, tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("colour = 'blue'\n")
    result = stiwatch("--config", str(config), "config")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {config}:1: unknown setting 'colour' (see `stiwatch config`)"


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("concurrent_requests_per_domain", "0", "expected an integer of at least 1, not 0"),
        ("digest_section_cap", "-1", "expected an integer of at least 1, not -1"),
        ("download_timeout", "0", "expected an integer of at least 1, not 0"),
        ("download_delay", "-0.5", "expected a number of at least 0, not -0.5"),
        ("download_delay", "nan", "expected a finite number, not nan"),
        ("max_response_size", "0", "expected an integer of at least 1024, not 0"),
        ("retry_times", "-1", "expected an integer of at least 0, not -1"),
        ("smtp_port", "70000", "expected an integer from 1 to 65535, not 70000"),
        ("smtp_port", "1.5", "expected an integer, not '1.5'"),
        ("delivery_max_attempts", "0", "expected an integer of at least 1, not 0"),
        ("log_level", "verbose", "expected one of DEBUG, INFO, WARNING, ERROR, not 'verbose'"),
        ("mail_from", "not an address <<", "expected one e-mail address such as"),
        ("mail_from", "a@example.org, b@example.org", "expected one e-mail address such as"),
        ("mail_from", "stiwatch@", "expected one e-mail address such as"),  # was IndexError
        ("list_unsubscribe", "mailto:lists@", "expected a mailto: or https: URL"),
        # a space cannot stand in the <...> of the List-Unsubscribe header
        ("list_unsubscribe", "https://example.org/un subscribe",
         "expected a mailto: or https: URL"),
        ("list_unsubscribe", "foo", "expected a mailto: or https: URL, not 'foo'"),
        ("list_unsubscribe", "http://example.org/u", "expected a mailto: or https: URL"),
        ("list_unsubscribe", "mailto:nobody", "expected a mailto: or https: URL"),
        ("list_unsubscribe", "https://example.org/u?who={name}",
         "unknown placeholder {name} in 'https://example.org/u?who={name}' "
         "(allowed: {mail_from}, {email}, {token})"),
        # a token says nothing of whose it is: the service needs the address beside it
        ("list_unsubscribe", "https://example.org/u?t={token}",
         "{token} needs {email} beside it, which says whose token it is"),
        ("list_unsubscribe", "mailto:{email}", "expected a mailto: or https: URL"),
        ("list_unsubscribe", "https://例え.jp/u", "expected an ASCII URL"),
        ("list_unsubscribe_mailto", "https://example.org/u", "expected a mailto: URL"),
        ("list_unsubscribe_mailto", "mailto:nobody", "expected a mailto: URL"),
        ("user_agent", "bot {name}",
         "unknown placeholder {name} in 'bot {name}' (allowed: {version}, {contact})"),
        ("user_agent", "bot {", "Single '{' encountered"),
        ("timezone", "Mars/Olympus",
         "expected an IANA time zone such as Asia/Tokyo, not 'Mars/Olympus'"),
        ("timezone", "", "expected an IANA time zone such as Asia/Tokyo, not ''"),
        # A typo, a case or a city alone: the name meant is said, not only the form of one.
        ("timezone", "Asia/Tokio", "not 'Asia/Tokio' (did you mean 'Asia/Tokyo'?)"),
        ("timezone", "asia/tokyo", "not 'asia/tokyo' (did you mean 'Asia/Tokyo'?)"),
        ("timezone", "Tokyo", "not 'Tokyo' (did you mean 'Asia/Tokyo'?)"),
        ("timezone", "Europe/Brussel", "not 'Europe/Brussel' (did you mean 'Europe/Brussels'?)"),
        ("timezone", "America/NewYork",
         "not 'America/NewYork' (did you mean 'America/New_York'?)"),
        ("domains_lexicon", "/no/such/lexicon.toml",
         "expected an existing file, not '/no/such/lexicon.toml' (no such file)"),
        ("places_lexicon", "/", "expected an existing file, not '/' (a folder)"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_variable(name: str, raw: str,
                                                                 message: str):
    env = f"STIWATCH_{name.upper()}"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={env: raw})
    assert str(caught.value).startswith(f"environment {env}: {name}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "name, raw",
    [
        ("list_unsubscribe", "https://example.org/unsubscribe?list=sti"),
        ("list_unsubscribe", "mailto:lists@example.org?subject=unsubscribe"),
        ("list_unsubscribe", ""),
        ("list_unsubscribe", "https://example.org/unsubscribe?list=sti&who={email}"),
        ("list_unsubscribe", "mailto:{mail_from}?subject=unsubscribe%20{email}"),
        ("list_unsubscribe", "https://example.org/unsub?email={email}&token={token}"),
        ("list_unsubscribe_mailto", "mailto:unsub@example.org?subject={email}%20{token}"),
        ("list_unsubscribe_mailto", ""),
        ("list_unsubscribe_mailto", "mailto:unsubscribe@example.org?subject={email}"),
        ("mail_from", "STI Watch <stiwatch@example.org>"),
        ("mail_from", "stiwatch@example.org"),
        ("user_agent", "acme-monitor/{version} ({contact}; {{literal}})"),
        ("log_level", "info"),
        ("download_delay", "0"),
    ],
)
def test_values_that_work_are_accepted(name: str, raw: str):
    assert load_settings(environ={f"STIWATCH_{name.upper()}": raw})[name] is not None


def test_a_file_value_below_its_minimum_names_the_file(tmp_path: Path):
    config = tmp_path / "stiwatch.toml"
    config.write_text("concurrent_requests_per_domain = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value) == (f"{config}:1: concurrent_requests_per_domain: expected an "
                                 "integer of at least 1, not 0")


def test_every_default_passes_its_own_constraints(tmp_path: Path):
    config = tmp_path / "defaults.toml"
    config.write_text("".join(f"{s.name} = {json.dumps(s.default)}\n"
                              for s in SETTINGS if not s.secret))
    settings = load_settings(str(config), environ={})
    assert all(settings.origin(s.name) == str(config) for s in SETTINGS if not s.secret)


def test_every_number_setting_declares_a_lower_bound():
    numbers = [s for s in SETTINGS if isinstance(s.default, (int, float))
               and not isinstance(s.default, bool)]
    assert numbers and all(s.minimum is not None for s in numbers)


@pytest.mark.parametrize("env, args", [
    ({"STIWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "0"}, ["crawl"]),
    ({"STIWATCH_DIGEST_SECTION_CAP": "-1"}, ["digest", "preview"]),
    ({"STIWATCH_USER_AGENT": "bot {name}"}, ["crawl"]),
    ({"STIWATCH_MAIL_FROM": "not an address <<"}, ["digest", "send"]),
])
def test_commands_refuse_bad_settings_before_doing_anything(stiwatch, db_path: Path,
                                                            env: dict, args: list):
    result = stiwatch(*args, env=env)
    assert result.exit_code == 2
    [variable] = env
    assert result.stderr.startswith(f"Error: environment {variable}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not db_path.exists()  # no store created, no crawl run left `running`


# -- found by mutation testing stiwatch/config.py: each pins what a user reads or gets -------

@pytest.mark.parametrize("raw, value", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), (" On ", True),
    ("0", False), ("false", False), ("FALSE", False), ("no", False), ("off", False),
    ("OFF", False), ("", False),
])
def test_a_boolean_variable_reads_the_usual_words(raw: str, value: bool):
    # each word is given to the setting whose default is the other value, so it is read
    name = "smtp_ssl" if value else "autothrottle"
    assert BY_NAME[name].default is not value
    assert load_settings(environ={f"STIWATCH_{name.upper()}": raw})[name] is value


@pytest.mark.parametrize("env, message", [
    ({"STIWATCH_SMTP_SSL": "maybe"},
     "environment STIWATCH_SMTP_SSL: smtp_ssl: expected true or false, not 'maybe'"),
    ({"STIWATCH_DOWNLOAD_DELAY": "soon"},
     "environment STIWATCH_DOWNLOAD_DELAY: download_delay: expected a number, not 'soon'"),
    ({"STIWATCH_USER_AGENT": "bot {contact!x}"},
     "environment STIWATCH_USER_AGENT: user_agent: Unknown conversion specifier x in "
     "'bot {contact!x}'"),
    ({"STIWATCH_MAIL_FROM": "stiwatch"}, "environment STIWATCH_MAIL_FROM: mail_from: expected "
     "one e-mail address such as 'Name <user@example.org>', not 'stiwatch'"),
    ({"STIWATCH_MAIL_FROM": "@example.org"}, "environment STIWATCH_MAIL_FROM: mail_from: "
     "expected one e-mail address such as 'Name <user@example.org>', not '@example.org'"),
    ({"STIWATCH_MAIL_FROM": '""@example.org'}, "environment STIWATCH_MAIL_FROM: mail_from: "
     "expected one e-mail address such as 'Name <user@example.org>', not '\"\"@example.org'"),
    ({"STIWATCH_MAIL_FROM": "a@[]"}, "environment STIWATCH_MAIL_FROM: mail_from: expected "
     "one e-mail address such as 'Name <user@example.org>', not 'a@[]'"),
    # a name with no zone near it gets no guess (a looser match would offer Atlantic/Azores)
    ({"STIWATCH_TIMEZONE": "Atlantis"}, "environment STIWATCH_TIMEZONE: timezone: expected "
     "an IANA time zone such as Asia/Tokyo, not 'Atlantis'"),
    ({"STIWATCH_TIMEZONE": "New York"}, "environment STIWATCH_TIMEZONE: timezone: expected "
     "an IANA time zone such as Asia/Tokyo, not 'New York' (did you mean 'America/New_York'?)"),
    # the city is the name's last part, also under a region's own folder
    ({"STIWATCH_TIMEZONE": "Monticello"}, "environment STIWATCH_TIMEZONE: timezone: expected "
     "an IANA time zone such as Asia/Tokyo, not 'Monticello' "
     "(did you mean 'America/Kentucky/Monticello'?)"),
])
def test_a_bad_value_is_one_whole_line_naming_the_variable(env: dict[str, str], message: str):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert str(caught.value) == message


def test_every_crawler_variable_and_misspelling_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"STIWATCH_BATCH_SIZE": "5", "STIWATCH_MAX_RETRY_AFTER": "60",
                               "STIWATCH_TIMEZON": "UTC"})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "environment STIWATCH_BATCH_SIZE", "environment STIWATCH_MAX_RETRY_AFTER",
        "environment STIWATCH_TIMEZON"]


def test_the_highest_port_is_accepted():
    assert load_settings(environ={"STIWATCH_SMTP_PORT": "65535"})["smtp_port"] == 65535


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path):
    # Windows Notepad writes one; its line numbers still count from the first line
    config = tmp_path / "stiwatch.toml"
    config.write_bytes('\ufefftimezone = "Europe/Paris"\n'.encode())
    assert load_settings(str(config), environ={})["timezone"] == "Europe/Paris"
    config.write_bytes('\ufefftimezon = "Europe/Paris"\n'.encode())
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value).startswith(f"{config}:1: unknown setting 'timezon'")


def test_a_dotted_key_or_a_group_name_in_the_config_file(tmp_path: Path):
    config = tmp_path / "stiwatch.toml"
    # a dotted key has no `smtp =` line to point at: the file is named alone
    config.write_text('smtp.host = "mail.example.org"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value) == (
        f"{config}: unknown setting 'smtp' (settings are top-level names such as smtp_host, "
        "not a [smtp] table; see `stiwatch config`)")
    # a plain value under a group's name is not a table: no word of tables
    config.write_text('smtp = "mail.example.org"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config), environ={})
    assert str(caught.value).startswith(f"{config}:1: unknown setting 'smtp' (")
    assert "table" not in str(caught.value)


def test_a_whole_number_in_the_file_for_a_decimal_setting_reads_as_decimal(stiwatch,
                                                                           tmp_path: Path):
    config = tmp_path / "stiwatch.toml"
    config.write_text("download_delay = 2\n")
    result = stiwatch("--config", str(config), "config", "--json")
    assert result.exit_code == 0, result.output
    [row] = [row for row in json.loads(result.output) if row["name"] == "download_delay"]
    assert row["value"] == 2.0 and isinstance(row["value"], float)


def test_the_settings_are_a_mapping_of_every_name_and_the_model_folder_default():
    settings = load_settings(environ={})
    assert list(settings) == [setting.name for setting in SETTINGS]
    assert dict(settings)["timezone"] == settings["timezone"]
    # docs/classifier.md: ~/.local/share/stiwatch/models, the user's data folder (read when
    # stiwatch.config is imported, so before the tests' own HOME)
    model_dir = Path(settings["model_dir"])
    assert model_dir.is_absolute() and model_dir.parts[-2:] == ("stiwatch", "models")
