"""The `stiwatch` command: a click group; each command lives in stiwatch/commands/."""

from __future__ import annotations

import click

from . import __version__
from .app import App
from .commands import COMMANDS, load_command
from .errors import as_user_error


# stiwatch's own options, as they read before a command: written after it (`stiwatch run
# --quiet`, a natural crontab line) click only says "No such option" and offers --digest.
GLOBAL_OPTIONS = {"-q": "--quiet", "--quiet": "--quiet", "--db": "--db PATH",
                  "--config": "--config FILE"}


def _misplaced_global_option(error: click.NoSuchOption) -> click.NoSuchOption:
    """The error for a global option given after the command, saying where it goes."""
    path = error.ctx.command_path.split(" ", 1) if error.ctx else []
    command = path[1] if len(path) == 2 else "COMMAND"
    return click.NoSuchOption(
        error.option_name,
        f"No such option {error.option_name!r} for `stiwatch {command}`: it is an option of "
        f"stiwatch itself and comes before the command: stiwatch "
        f"{GLOBAL_OPTIONS[error.option_name]} {command} ...", ctx=error.ctx)


class StiwatchGroup(click.Group):
    """Turns the library's named exceptions into one-line errors with the right exit status,
    and loads each command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None:
            command = load_command(cmd_name)
            if command is not None:
                self.commands[cmd_name] = command
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in COMMANDS:
            # click offers "Did you mean ...?" from the commands loaded so far: load them all
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as error:
            if error.option_name in GLOBAL_OPTIONS:
                raise _misplaced_global_option(error) from None
            raise
        # KeyboardInterrupt: Ctrl-C, or SIGTERM while crawling
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - re-raised if a bug
            user_error = as_user_error(error)
            if user_error is None or user_error is error:
                raise
            raise user_error from (None if isinstance(error, KeyboardInterrupt) else error)


@click.group(cls=StiwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_path", metavar="PATH", envvar=None,
              help="SQLite database file [default: $STIWATCH_DB, else ./stiwatch.db]; a new "
              "one is made only in a folder that exists.")
@click.option("--config", "config_file", metavar="FILE",
              help="TOML settings file [default: $STIWATCH_CONFIG, else ./stiwatch.toml if present].")
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors, no progress.")
@click.version_option(__version__, prog_name="stiwatch")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, config_file: str | None, quiet: bool) -> None:
    """stiwatch: monitor science, technology and innovation policy worldwide.

    Crawl ministries, funding agencies, intergovernmental bodies and STI news; store articles in
    one SQLite file; classify them by policy area, technology domain and country; send a weekly
    digest. Start with `stiwatch demo`, or `stiwatch init` then `stiwatch crawl`.
    """
    ctx.obj = App(db_path, config_file, quiet)


def main() -> None:
    cli(prog_name="stiwatch")
