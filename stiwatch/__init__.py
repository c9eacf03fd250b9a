"""stiwatch: a monitor of science, technology and innovation policy worldwide.

This package is the thin face of the project: the `stiwatch` command and its configuration.
It wires the wings (crawler, classifier, digest) to the store (db); they never import each other.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stiwatch")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+checkout"
