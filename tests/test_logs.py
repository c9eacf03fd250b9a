"""Logging as an operator sees it: where lines go, what they look like, a log file that fails."""

from __future__ import annotations

import os
from pathlib import Path
import pwd
import subprocess
import sys

from fsaccess import AS_OTHER_USERS, NOBODY, shared_folder, stiwatch_as


def test_a_missing_log_folder_is_created(stiwatch, tmp_path: Path):
    log_file = tmp_path / "var" / "log" / "stiwatch" / "stiwatch.log"
    # any command that works (`config` alone only shows the setting: it opens no log file)
    result = stiwatch("subscribers", "add", "a@example.org",
                      env={"STIWATCH_LOG_FILE": str(log_file)})
    assert result.exit_code == 0, result.output
    assert log_file.is_file()


def test_a_log_file_that_cannot_be_opened_is_a_one_line_error(stiwatch, tmp_path: Path):
    (tmp_path / "not-a-folder").write_text("")
    log_file = tmp_path / "not-a-folder" / "stiwatch.log"
    result = stiwatch("status", env={"STIWATCH_LOG_FILE": str(log_file)})
    assert result.exit_code == 2
    # which path is in the way, where the OS said only "Not a directory" (or "File exists")
    assert result.stderr.startswith(f"Error: {log_file}: cannot open the log file "
                                    f"({tmp_path / 'not-a-folder'} is a file, not a folder)")
    assert "env STIWATCH_LOG_FILE" in result.stderr
    assert result.stderr.count("\n") == 1


def test_with_a_log_file_warnings_still_reach_stderr(tmp_path: Path):
    log_file = tmp_path / "stiwatch.log"
    code = ("import logging\n"
            "from stiwatch.app import App\n"
            "App(None, None, False).settings\n"
            "logging.getLogger('stiwatch.test').info('routine')\n"
            "logging.getLogger('stiwatch.test').warning('look at this')\n")
    env = {**os.environ, "STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.endswith(" WARNING stiwatch.test: look at this\n")
    assert result.stderr.count("\n") == 1
    logged = log_file.read_text(encoding="utf-8")
    assert " INFO stiwatch.test: routine" in logged and "look at this" in logged


def test_a_service_user_without_a_writable_home_gets_no_matplotlib_warnings(tmp_path: Path):
    """A system user (`adduser --system` gives it /nonexistent; `useradd -r` names a home it
    does not create) under cron or systemd: each chart (every digest run) printed matplotlib's
    two WARNING lines about its config folder, mailed by cron each Monday. Matplotlib works on
    from a temporary folder; the log file keeps the lines at INFO."""
    home = tmp_path / "no-home"
    home.write_text("")  # not a folder: nothing can be made under it, even by root
    log_file = tmp_path / "stiwatch.log"
    env = {key: value for key, value in os.environ.items()
           if key not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                          "STIWATCH_LOG_LEVEL")}
    env.update(HOME=str(home), STIWATCH_DB=str(tmp_path / "s.db"))
    command = [sys.executable, "-m", "stiwatch", "--quiet"]
    subprocess.run([*command, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    chart = tmp_path / "chart.png"
    for extra in ({}, {"STIWATCH_LOG_FILE": str(log_file), "STIWATCH_LOG_LEVEL": "INFO"}):
        result = subprocess.run([*command, "trends", "--week", "2026-W47", "--chart", str(chart)],
                                env={**env, **extra}, capture_output=True, text=True,
                                timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert " INFO matplotlib: Matplotlib created a temporary cache directory" in (
        log_file.read_text(encoding="utf-8"))


@AS_OTHER_USERS
def test_a_log_file_this_user_may_not_open_names_the_user():
    """A log file left root's by a command run as root: the scheduled runs, as the service
    user, fail with exit 2, and the error names the user whose permission is missing."""
    with shared_folder() as folder:
        log_file = folder / "stiwatch.log"
        log_file.write_text("")  # root's, 0644: the service user may read it, not append
        result = stiwatch_as(NOBODY, folder / "stiwatch.db", "status",
                             env={**os.environ, "STIWATCH_LOG_FILE": str(log_file)})
    assert result.returncode == 2
    user = pwd.getpwuid(NOBODY).pw_name
    assert result.stderr == (
        f"Error: {log_file}: cannot open the log file (Permission denied: user {user} may not "
        "create or open it; check the owner and mode of the file and of its folder); "
        "log_file is set by env STIWATCH_LOG_FILE\n")
