"""The classifier's named exceptions, importable without loading scikit-learn (the CLI maps
them to one-line errors at start-up)."""

from __future__ import annotations


class StipError(ValueError):
    """A STIP Compass export that cannot be used; the message names the file (and line/column)."""


class ModelError(Exception):
    """A model folder that cannot be used (unreadable or damaged files)."""


class ModelDirError(ModelError):
    """A model folder that cannot be created or written (a file, under a file, read-only)."""


class ModelMismatch(ModelError):
    """A model saved by another scikit-learn, taxonomy or model-format version."""


class TrainingError(ValueError):
    """Training data that cannot make a model (too few examples of a class)."""


class FeedFileError(ValueError):
    """A feed file of non-policy news (train --negatives) that gives no entry to learn from;
    the message names the file and says why."""


class EvalFileError(ValueError):
    """An evaluation file that cannot be scored; the message names the file and line."""
