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
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path)


COMMANDS = list(walk(cli))


def _parse(args: list[str]) -> None:
    """Parse `stiwatch ARGS` as click does before running it, and run nothing: an unknown
    command or option, a missing value or one its type refuses (a choice, a number, a date)
    raises click's UsageError. `--help` (or `--version`) stops parsing there, as it does
    for a user."""
    try:
        ctx = cli.make_context("stiwatch", list(args))
        while isinstance(ctx.command, click.Group):
            # as Group.invoke does: the command's name is the first argument left (kept in
            # _protected_args since click 8.2, protected_args before)
            named = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
            if not named:
                ctx.fail("Missing command.")
            name, command, rest = ctx.command.resolve_command(ctx, [*named, *ctx.args])
            ctx = command.make_context(name, rest, parent=ctx)
    except click.exceptions.Exit as stop:
        assert stop.exit_code == 0, args


def _stiwatch_commands(line: str) -> list[list[str]]:
    """The arguments of each stiwatch command (`.venv/bin/stiwatch` too) in a shell line, read
    as the shell reads it: commands end at `|`, `&&` or `;`, a redirection is no argument,
    `#` starts a comment."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words, redirected = [], [], False
    for token in [*lexer, ";"]:
        if redirected:
            redirected = False
        elif set(token) <= set("<>"):
            redirected = True
        elif set(token) <= set("|&;()"):
            if words and (words[0] == "stiwatch" or words[0].endswith("/bin/stiwatch")):
                commands.append(words[1:])
            words = []
        else:
            words.append(token)
    return commands


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


def test_the_readme_links_each_command_to_its_reference_section():
    readme = (REPO / "README.md").read_text()
    text = (REPO / "docs" / "commands.md").read_text()
    sections = sorted(re.findall(r'^<a id="stiwatch-(\w+)"></a>$', text, flags=re.M))
    assert sections == sorted({path.split()[1] for path, _ in COMMANDS if " " in path})
    for name in sections:
        assert f"(docs/commands.md#stiwatch-{name})" in readme, name


def test_the_command_reference_shows_each_commands_help_as_it_is():
    """docs/commands.md holds every command's `--help`, written there by cog (`make docs`):
    the reference can name no option the command lacks, nor leave one out."""
    from cogapp import Cog

    status = Cog().main(["cog", "--check", "-I", str(REPO), str(REPO / "docs" / "commands.md")])
    assert status == 0, "docs/commands.md differs from the commands' --help: run `make docs`"


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


def test_a_misspelt_command_gets_a_suggestion_from_every_command():
    """Commands load only when run: the suggestion must still come from all of them."""
    result = subprocess.run([sys.executable, "-m", "stiwatch", "statsu"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: No such command 'statsu'. Did you mean 'status'?")


HEAVY = ("scrapy", "twisted", "sklearn", "scipy", "matplotlib", "datasette")


def test_status_and_subscribers_load_no_crawler_model_or_chart_library(tmp_path):
    """Each command loads its own wing only: `status` from a monitoring check every few
    minutes, or `subscribers add`, used to import Scrapy and all the rest first (0.4 s)."""
    db = tmp_path / "s.db"
    assert subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(db), "init"],
                          capture_output=True, timeout=60).returncode == 0
    probe = ("import runpy, sys\n"
             "sys.argv = ['stiwatch'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('stiwatch', run_name='__main__')\n"
             "except SystemExit as end:\n    assert not end.code, end.code\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    for command in (["status"], ["subscribers", "add", "ana@example.org"],
                    ["subscribers", "list"]):
        result = subprocess.run([sys.executable, "-c", probe, "--db", str(db), *command],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "[]", command


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


def test_the_commands_run_by_hand_as_the_service_user_in_operations_md_name_its_settings():
    """Copied as shown, a command without --config reads ./stiwatch.toml or nothing: a
    restore then took `<db>.lock` instead of the runs' `lock_file`, blind to a run under way."""
    text = (REPO / "docs" / "operations.md").read_text()
    lines = [line for block in _blocks(text, "sh")
             for line in block.replace("\\\n", " ").splitlines()
             if line.startswith("sudo -u stiwatch ") and "/bin/stiwatch " in line]
    assert len(lines) >= 2  # init, restore
    for line in lines:
        assert "--config /etc/stiwatch/stiwatch.toml" in line, line


def test_the_run_lock_operations_md_waits_for_is_the_one_its_settings_file_names():
    """The restore by hand waited on `stiwatch.db.lock` while the settings file shown sets
    `lock_file = /var/lib/stiwatch/run.lock`: `flock -n` succeeded during a run."""
    import tomllib

    text = (REPO / "docs" / "operations.md").read_text()
    [settings] = [b for b in _blocks(text, "toml") if b.startswith("# /etc/stiwatch/")]
    lock_file = tomllib.loads(settings)["lock_file"]
    waited = re.findall(r"flock -n (\S+) true", text)
    assert lock_file in waited, waited


def _scheduled_commands() -> list[list[str]]:
    """The stiwatch command lines of the crontab and the systemd units in operations.md."""
    text = (REPO / "docs" / "operations.md").read_text()
    lines = [line.split(None, 5)[5] for block in _blocks(text, "cron")
             for line in block.splitlines() if line and line[0].isdigit()]
    lines += re.findall(r"ExecStart=([^`\n]+)", text)
    return [args for line in lines for args in _stiwatch_commands(line)]


def test_the_scheduled_command_lines_in_operations_md_parse():
    commands = _scheduled_commands()
    assert len(commands) >= 5  # cron: run, run --digest, backup; systemd: run, serve, ...
    for args in commands:
        _parse(args)


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
                          "stiwatch-backup.service", "stiwatch-serve.service"}
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
    commands = _stiwatch_commands(line)
    assert commands, line
    for args in commands:
        _parse(args)


# Placeholders the docs write in command lines, each with a value its option accepts.
PLACEHOLDERS = {"FILE": "file", "DIR": "models", "FEEDS": "feeds", "ITEM": "81",
                "ITEM_ID": "81", "ID": "81", "EMAIL": "reader@example.org", "W": "2026-W47",
                "N": "10", "SECONDS": "3600", "DATE": "2026-11-16", "FACET": "area",
                "VALUE": "open_science", "XX": "JP"}


def _as_run(line: str) -> list[str]:
    """The command lines a documented line stands for: `[X]` is X, `[A | B]` and `a|b` are
    each of A and B, and a placeholder word (PLACEHOLDERS) takes its example value."""
    choice = re.search(r"\[([^][]*)\]|[^\s`|]+(?:\|[^\s`|]+)+", line)
    if choice is None:
        return [re.sub(r"(?<![\w-])[A-Z_]+(?![\w-])",
                       lambda m: PLACEHOLDERS.get(m[0], m[0]), line)]
    inside = choice[0] if choice[1] is None else choice[1]
    return [run for option in re.split(r"\s*\|\s*", inside)
            for run in _as_run(line[:choice.start()] + option + line[choice.end():])]


# Command lines (as the page shows them) that fail to parse on purpose, e.g. a page showing an
# error, each with the reason. None today: every line shown runs as shown.
NOT_AS_RUN: dict[str, str] = {}


def _documented_command_lines() -> list[tuple[str, str]]:
    """("FILE:LINE", line) for each stiwatch command line in README.md and docs/*.md: in a
    fenced block, a line that runs stiwatch (after a `$ ` prompt, a crontab's five time
    fields or `ExecStart=`); in the text, a code span that starts with `stiwatch ` and has
    an option (`stiwatch status` alone names the command, it is not a line to run)."""
    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        name = page.relative_to(REPO).as_posix()
        text, fence = [], None
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("```"):
                fence = line[3:].strip() if fence is None else None
                text.append("")
                continue
            if fence is None:
                text.append(line)
                continue
            text.append("")
            command = line.strip().removeprefix("$ ").removeprefix("ExecStart=")
            if fence == "cron" and command[:1].isdigit():
                command = command.split(None, 5)[5]
            first = command.split(" ", 1)[0]
            if first == "stiwatch" or first.endswith("/bin/stiwatch"):
                found.append((f"{name}:{number}", command))
        text = "\n".join(text)
        # a code span may go on over a line break; in a table, `\|` is a `|`
        for span in re.finditer(r"(?<!`)`(stiwatch\s[^`]+)`(?!`)", text):
            command = " ".join(span[1].replace("\\|", "|").split())
            if re.search(r"\s-", command):
                found.append((f"{name}:{text.count(chr(10), 0, span.start()) + 1}", command))
    return sorted(found, key=lambda pair: (pair[0].split(":")[0], int(pair[0].split(":")[1])))


DOCUMENTED = _documented_command_lines()


def test_the_docs_show_command_lines_of_each_kind():
    places = {place.split(":")[0] for place, _ in DOCUMENTED}
    assert {"README.md", "docs/operations.md", "docs/classifier.md"} <= places
    assert len(DOCUMENTED) >= 40
    assert set(NOT_AS_RUN) <= {line for _, line in DOCUMENTED}, "an exemption outlived its line"


@pytest.mark.parametrize("place, line", DOCUMENTED, ids=[place for place, _ in DOCUMENTED])
def test_every_command_line_in_the_docs_parses(place: str, line: str):
    """A renamed or removed option, a value its type refuses, or a command that is gone,
    in README.md or docs/*.md, fails here with the page and line."""
    if line in NOT_AS_RUN:
        pytest.skip(NOT_AS_RUN[line])
    for run in _as_run(line):
        commands = _stiwatch_commands(run)
        assert commands, f"{place}: {line}"
        for args in commands:
            try:
                _parse(args)
            except click.UsageError as error:
                pytest.fail(f"{place}: `{line}` (as `stiwatch {' '.join(args)}`): "
                            f"{error.format_message()}")


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


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    anchors: set[str] = set(re.findall(r'<a id="([^"]+)">', text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S),
                              flags=re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_link_between_the_docs_reaches_a_file_and_heading_that_exist():
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
