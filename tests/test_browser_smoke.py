"""The browser used by page tests really renders: guards the chromium install of `make test`."""

from pathlib import Path


def test_chromium_renders_a_loopback_page(chromium_page, http_server, tmp_path: Path):
    (http_server.root / "index.html").write_text(
        "<!doctype html><title>t</title><h1 id='h'>stiwatch</h1>", encoding="utf-8")
    chromium_page.goto(http_server.url("/index.html"))
    assert chromium_page.inner_text("#h") == "stiwatch"
    shot = tmp_path / "shot.png"
    chromium_page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
