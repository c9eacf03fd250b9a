"""Where library exceptions become user-facing errors: one place, one mapping.

Library code raises small named exceptions; only the CLI decides how they look and which exit
status they get. Exit 2 means "your input or environment needs fixing", 1 means "it failed".
"""

from __future__ import annotations

import click

from classifier.errors import EvalFileError, FeedFileError, ModelError, StipError, TrainingError
from classifier.lexicon import LexiconError
from classifier.taxonomy import UnknownLabel
from crawler.registry import RegistryError
import db
from digest.errors import DigestError

from . import interrupts
from .config import ConfigError

# Exceptions whose message is already a complete, user-facing sentence about bad input.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    DigestError,
    ConfigError,
    LexiconError,
    EvalFileError,
    FeedFileError,
    ModelError,
    StipError,
    TrainingError,
    RegistryError,
    UnknownLabel,
    db.StoreError,
)


class UserError(click.ClickException):
    """A clear error for the user, one line per problem, with a chosen exit status."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        for line in self.format_message().splitlines():
            click.echo(f"Error: {line}", err=True)


def translate(error: Exception) -> UserError | None:
    """The user-facing form of a library exception, or None if it is a bug (let it raise)."""
    if isinstance(error, INPUT_ERRORS):
        return UserError(str(error), exit_code=2)
    return None


def as_user_error(error: BaseException) -> click.ClickException | None:
    """How an error that ends a command reads to the user: a click error as it is, Ctrl-C or
    SIGTERM as "interrupted by ..." with the signal's exit status, a library exception as
    ``translate`` gives it; None for a bug (let it raise)."""
    if isinstance(error, click.ClickException):
        return error
    if isinstance(error, KeyboardInterrupt):
        name, status = interrupts.describe(error)
        return UserError(f"interrupted by {name}", exit_code=status)
    if isinstance(error, db.MigrationInterrupted):
        name, status = interrupts.describe(error.interrupt)
        return UserError(f"{error.path}: interrupted by {name} while migrating to schema "
                         f"version {error.target}: rolled back, the file is intact at schema "
                         f"version {error.version}; run the command again to finish migrating",
                         exit_code=status)
    return translate(error) if isinstance(error, Exception) else None
