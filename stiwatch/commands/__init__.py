"""The commands of `stiwatch`, one module per area, each imported only when it is run.

A command's module imports its wing (Scrapy for `crawl`, scikit-learn for `train`, matplotlib
for the digest): loading them all made every `stiwatch status` or `subscribers add` pay about
0.4 s for commands it never runs. `stiwatch --help` still imports each, for its summary line.
"""

from __future__ import annotations

from importlib import import_module

import click

# name -> (module in this package, attribute)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "demo_command"),
    "init": ("setup", "init_command"),
    "config": ("setup", "config_command"),
    "sources": ("sources", "sources_group"),
    "crawl": ("crawl", "crawl_command"),
    "classify": ("classify", "classify_command"),
    "train": ("classify", "train_command"),
    "evaluate": ("classify", "evaluate_command"),
    "tag": ("classify", "tag_command"),
    "run": ("run", "run_command"),
    "schema": ("setup", "schema_command"),
    "search": ("search", "search_command"),
    "trends": ("trends", "trends_command"),
    "subscribers": ("subscribers", "subscribers_group"),
    "digest": ("digest", "digest_group"),
    "export": ("export", "export_command"),
    "serve": ("serve", "serve_command"),
    "status": ("status", "status_command"),
    "backup": ("backup", "backup_command"),
    "restore": ("restore", "restore_command"),
}


def load_command(name: str) -> click.Command | None:
    """The command called ``name``, its module imported now; None for no such command."""
    if name not in COMMANDS:
        return None
    module, attribute = COMMANDS[name]
    command = getattr(import_module(f"{__name__}.{module}"), attribute)
    if command.name != name:  # the table and the module disagree: a mistake made here
        raise RuntimeError(f"stiwatch.commands: {module}.{attribute} is {command.name!r}, "
                           f"listed as {name!r}")
    return command
