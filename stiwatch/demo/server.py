"""A quiet loopback HTTP server for the demo site, with conditional-GET support.

Stdlib only: ``SimpleHTTPRequestHandler`` already serves files with ``Last-Modified`` and
answers ``If-Modified-Since``; we add ``ETag``/``If-None-Match`` (crawlers prefer it), feed
content types and silence, and run it in a daemon thread.
"""

from __future__ import annotations

from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading
from types import TracebackType
from urllib.parse import urlsplit

# By file-name ending, most specific first: a feed's type cannot be told from ".xml" alone.
CONTENT_TYPES = (
    ("atom.xml", "application/atom+xml"),
    ("rss.xml", "application/rss+xml"),
    (".rdf", "application/rdf+xml"),
    (".xml", "application/xml"),
    (".html", "text/html; charset=utf-8"),
    (".txt", "text/plain; charset=utf-8"),
)


class DemoRequestHandler(SimpleHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as real sites do; every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    _etag: str | None = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the demo prints its own progress; per-request lines on stderr are noise

    def guess_type(self, path: str | Path) -> str:
        name = str(path).lower()
        for ending, content_type in CONTENT_TYPES:
            if name.endswith(ending):
                return content_type
        return super().guess_type(path)

    def _target(self) -> Path | None:
        """The file a GET would send, or None (directory redirect, listing, 404)."""
        target = Path(self.translate_path(self.path))
        if target.is_dir():
            if not urlsplit(self.path).path.endswith("/"):
                return None  # the base class answers with a redirect
            target = target / "index.html"
        return target if target.is_file() else None

    def send_head(self):  # type: ignore[no-untyped-def] - mirrors the untyped stdlib method
        target = self._target()
        self._etag = None
        if target is not None:
            stat = target.stat()
            # Same scheme as nginx: changes whenever the file's time or size does.
            self._etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            wanted = self.headers.get("If-None-Match")
            if wanted is not None and self._etag_matches(wanted):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        # The base class honours If-Modified-Since only when If-None-Match is absent (RFC 9110).
        return super().send_head()

    def _etag_matches(self, header: str) -> bool:
        if header.strip() == "*":
            return True
        # Weak comparison, as RFC 9110 prescribes for If-None-Match.
        tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
        return self._etag in tags

    def end_headers(self) -> None:
        if self._etag is not None:
            self.send_header("ETag", self._etag)
        super().end_headers()


class DemoServer:
    """A running demo server; ``url`` has no trailing slash. Use as a context manager."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = partial(DemoRequestHandler, directory=str(root))
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True  # never let a hung client keep the demo alive
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="stiwatch-demo-server", daemon=True)
        self._thread.start()
        bound_host, bound_port = self._httpd.server_address[:2]
        bound_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self.url = f"http://{bound_host}:{bound_port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(root: Path, host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """Serve ``root`` on ``host:port`` (0 = any free port) in a background thread."""
    return DemoServer(Path(root), host, port)
