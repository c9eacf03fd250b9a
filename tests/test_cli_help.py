"""Every command has help text, and every command is documented in the README or docs/."""

from __future__ import annotations

from pathlib import Path
import re
import shutil
import subprocess
import sys

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


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)


def test_the_settings_files_in_the_docs_are_accepted_as_shown(tmp_path):
    """An operator copies these files as they are: each must load and set what it shows."""
    from stiwatch.config import load_settings
    import tomllib

    operations = (REPO / "docs" / "operations.md").read_text()
    readme = (REPO / "README.md").read_text()
    files = [b for b in _blocks(readme, "toml") + _blocks(operations, "toml")
             if b.startswith(("# stiwatch.toml", "# /etc/stiwatch/stiwatch.toml"))]
    assert len(files) == 2
    for number, text in enumerate(files):
        path = tmp_path / f"{number}.toml"
        path.write_text(text)
        settings = load_settings(str(path), environ={})
        assert {k: settings[k] for k in tomllib.loads(text)} == tomllib.loads(text)


def _scheduled_commands() -> list[list[str]]:
    """The stiwatch command lines of the crontab and the systemd units in operations.md."""
    import shlex

    text = (REPO / "docs" / "operations.md").read_text()
    lines = [line.split(None, 5)[5] for block in _blocks(text, "cron")
             for line in block.splitlines() if line and line[0].isdigit()]
    lines += re.findall(r"ExecStart=([^`\n]+)", text)
    commands = [shlex.split(line) for line in lines]
    return [c[1:] for c in commands if c[0].endswith("/stiwatch")]


def test_the_scheduled_command_lines_in_operations_md_parse():
    commands = _scheduled_commands()
    assert len(commands) >= 5  # cron: run, run --digest, backup; systemd: run, serve, ...
    for args in commands:
        # --help after the arguments: click parses them all (an unknown option or a missing
        # value fails) and then only prints the help
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_the_systemd_units_in_operations_md_verify(tmp_path):
    """Each unit file as shown (the stiwatch path pointed at this checkout's) has no key or
    value systemd would ignore, and each OnCalendar= is a calendar systemd reads."""
    text = (REPO / "docs" / "operations.md").read_text()
    stiwatch = str(Path(sys.executable).with_name("stiwatch"))
    units = {}
    for block in _blocks(text, "ini"):
        name = re.search(r"^# /etc/systemd/system/(\S+)$", block, re.M) or re.search(
            r"`/etc/systemd/system/(\S+)`:\n\n```ini\n" + re.escape(block), text)
        units[name.group(1)] = block.replace("/opt/stiwatch/.venv/bin/stiwatch", stiwatch)
    assert set(units) == {"stiwatch-run.service", "stiwatch-run.timer", "stiwatch-digest.timer",
                          "stiwatch-serve.service"}
    for name, block in units.items():
        (tmp_path / name).write_text(block)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             *[str(tmp_path / name) for name in units]],
                            capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
    for calendar in re.findall(r"^OnCalendar=(.*)$", text, re.M):
        check = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True,
                               text=True)
        assert check.returncode == 0, (calendar, check.stderr)


def test_the_registry_example_in_the_readme_syncs_as_shown(stiwatch, tmp_path):
    """It set `links` on a feed source, which the registry refuses: copied as it was, it was
    an error, exit 2."""
    [example] = [b for b in _blocks((REPO / "README.md").read_text(), "toml")
                 if b.startswith("[[source]]")]
    registry = tmp_path / "sources.toml"
    registry.write_text(example)
    result = stiwatch("sources", "sync", str(registry))
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output


def _example_lines(help_text: str) -> list[str]:
    """The `stiwatch ...` command lines of a help text's Example(s) blocks."""
    lines, inside = [], False
    for line in help_text.splitlines():
        stripped = line.strip()
        if stripped in ("Example:", "Examples:"):
            inside = True
        elif not stripped or stripped == "\b":
            inside = False
        elif inside and stripped.startswith("stiwatch "):
            lines.append(stripped)
    return lines


HELP_EXAMPLES = [(path, line) for path, command in COMMANDS
                 for line in _example_lines(command.help or "")]


def test_the_help_of_the_commands_a_newcomer_starts_with_has_examples():
    with_examples = {path for path, _ in HELP_EXAMPLES}
    for path in ("stiwatch search", "stiwatch sources sync", "stiwatch sources check",
                 "stiwatch subscribers import", "stiwatch tag", "stiwatch export",
                 "stiwatch trends", "stiwatch digest preview", "stiwatch digest send"):
        assert path in with_examples, path


@pytest.mark.parametrize("path, line", HELP_EXAMPLES, ids=[line for _, line in HELP_EXAMPLES])
def test_every_example_in_the_help_parses_as_printed(path: str, line: str):
    """Each command of an example, up to a shell operator, is a command with options and
    values its parser accepts (a misspelt option or a value outside a choice fails here)."""
    import shlex

    for part in re.split(r"\s(?:&&|\|)\s", line.split(" > ")[0]):
        words = shlex.split(part)
        assert words[0] == "stiwatch"
        command, args = cli, words[1:]
        while isinstance(command, click.Group):
            command, args = command.commands[args[0]], args[1:]
        command.make_context(" ".join(words), list(args))


def test_the_registry_in_the_help_of_sources_sync_is_valid():
    from crawler.registry import parse_registry

    text = dict(COMMANDS)["stiwatch sources sync"].help
    lines = [line.strip() for line in text[:text.index("Example:")].splitlines()]
    toml = "\n".join(line for line in lines[lines.index("[[source]]"):] if line != "\b")
    [source] = parse_registry(toml, "help").sources
    assert source["id"] == "jst-press" and source["kind"] == "feed"


def test_the_csv_in_the_help_of_subscribers_import_imports(stiwatch, tmp_path: Path):
    text = dict(COMMANDS)["stiwatch subscribers import"].help
    block = text[text.index("Example file:"):].split("\n\n")[0].splitlines()[1:]
    readers = tmp_path / "readers.csv"
    readers.write_text("\n".join(line.strip() for line in block) + "\n")
    result = stiwatch("subscribers", "import", str(readers))
    assert result.exit_code == 0, result.output
    assert "2 subscribers imported" in result.output


@pytest.mark.parametrize("path, command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_options_name_their_values_in_words(path: str, command: click.Command):
    """`--limit N`, `--port PORT`, `--name NAME`: not click's `INTEGER RANGE` or `TEXT`."""
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag:
            shown = param.make_metavar(click.Context(command)) if param.metavar is None \
                else param.metavar
            assert not re.search(r"INTEGER|FLOAT|TEXT", shown), f"{path} {param.opts[0]} {shown}"
