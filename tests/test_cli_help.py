"""Every command has help text, and every command is documented in the README or docs/."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner
import pytest

from conftest import REPO
from stiwatch.cli import cli


def walk(group: click.Group, prefix: str = "stiwatch"):
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path)


COMMANDS = list(walk(cli))


def documentation() -> str:
    texts = [(REPO / "README.md").read_text()]
    texts += [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(texts)


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help_and_is_documented(path: str, command: click.Command):
    assert command.help and len(command.help.strip()) > 20, f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{path} {param.opts[0]} has no help text"
    assert f"`{path}" in documentation(), f"`{path}` is not mentioned in README.md or docs/"


def test_help_runs_for_every_command(stiwatch):
    for path, _ in COMMANDS:
        args = path.split()[1:]
        result = stiwatch(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output, path


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_points_only_to_docs_in_this_repository(path: str, command: click.Command):
    """Help that names a docs/ page names one that exists; none sends users outside the repo
    (taxonomy.md lives beside the checkout, not in it)."""
    texts = [command.help or ""] + [p.help or "" for p in command.params
                                    if isinstance(p, click.Option)]
    for text in texts:
        assert "taxonomy.md" not in text, f"{path}: {text}"
        for page in set(re.findall(r"docs/[\w-]+\.md", text)):
            assert (REPO / page).is_file(), f"{path} refers to missing {page}"


def test_readme_lists_every_option_of_train():
    readme = (REPO / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `stiwatch train")]
    train = dict(COMMANDS)["stiwatch train"]
    for param in train.params:
        if isinstance(param, click.Option) and param.name not in ("help", "stip_file"):
            assert any(f"`{opt}" in row for opt in param.opts + param.secondary_opts), \
                f"README's train row does not list {param.opts[0]}"


@pytest.mark.parametrize("args, option, usage, command", [
    (["run", "--quiet"], "--quiet", "--quiet", "run"),
    (["digest", "send", "-q"], "-q", "--quiet", "digest send"),
    (["status", "--db", "x.db"], "--db", "--db PATH", "status"),
    (["search", "--config", "f.toml", "x"], "--config", "--config FILE", "search"),
])
def test_a_global_option_after_the_command_says_where_it_goes(args, option, usage, command):
    """`stiwatch run --quiet` (a natural crontab line) said only "No such option '--quiet'.
    Did you mean '--digest'?"."""
    result = CliRunner().invoke(cli, args, prog_name="stiwatch")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: No such option '{option}' for `stiwatch {command}`: it is an option of "
        f"stiwatch itself and comes before the command: stiwatch {usage} {command} ...")
    assert "Did you mean" not in result.stderr


def test_a_misspelt_option_still_gets_clicks_suggestion():
    result = CliRunner().invoke(cli, ["run", "--digets"], prog_name="stiwatch")
    assert result.exit_code == 2
    assert "No such option '--digets'. Did you mean '--digest'?" in result.stderr
