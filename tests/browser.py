"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for tests of web pages.

`make test` installs Debian's chromium; Playwright's own browser download is never used (it needs
the internet). Flags keep Chromium from reaching for Google's servers on this closed network.
"""

from __future__ import annotations

from contextlib import contextmanager
import os
import shutil
from typing import Iterator

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("STIWATCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        raise RuntimeError(
            "headless Chromium is required for browser tests: `make test` installs Debian's "
            "chromium (or set STIWATCH_CHROMIUM to a Chromium binary)"
        )
    return path


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator["object"]:
    """A Playwright page in a fresh headless Chromium; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
