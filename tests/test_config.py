"""Settings: defaults, file, environment and flags, each with its origin; secrets only from env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stiwatch.config import SETTINGS, ConfigError, load_settings


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
    assert str(caught.value).startswith(f"{config}: ")
    assert message in str(caught.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="environment STIWATCH_SMTP_PORT: smtp_port"):
        load_settings(environ={"STIWATCH_SMTP_PORT": "twenty-five"})


def test_missing_explicit_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(str(tmp_path / "missing.toml"), environ={})


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


def test_bad_config_is_a_one_line_error_with_exit_2(stiwatch, tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("colour = 'blue'\n")
    result = stiwatch("--config", str(config), "config")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {config}: unknown setting 'colour' (see `stiwatch config`)"
