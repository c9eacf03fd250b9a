"""A real HTTP server on 127.0.0.1 for tests, modelled on Scrapy's own mock server.

It serves files from a folder and answers chosen paths with handlers that misbehave on purpose.
Every request is recorded (method, path, headers, time) so tests can assert politeness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import email.utils
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import mimetypes
from pathlib import Path
import sys
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

Handler = Callable[["RequestHandler"], None]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    time: float = field(default_factory=time.monotonic)


class RequestHandler(BaseHTTPRequestHandler):
    server: "MockHTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # keep test output clean; requests are in server.requests

    def _record(self) -> None:
        self.server.owner.requests.append(
            Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        )

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._record()
        owner = self.server.owner
        path = urlsplit(self.path).path
        handler = owner.routes.get(self.path) or owner.routes.get(path)
        if handler is not None:
            handler(self)
            return
        self.serve_file(path)

    do_HEAD = do_GET

    # -- helpers for handlers -----------------------------------------------------------

    def send_body(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
                  headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_redirect(self, location: str, status: int = 301) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def serve_file(self, path: str) -> None:
        root = self.server.owner.root
        if root is None:
            self.send_body(404, b"not found")
            return
        target = (root / path.lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if root.resolve() not in target.parents or not target.is_file():
            self.send_body(404, b"not found")
            return
        body = target.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(target.stat().st_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag or (
            "If-None-Match" not in self.headers
            and self.headers.get("If-Modified-Since") == modified
        ):
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("xml"):
            content_type += "; charset=utf-8"
        self.send_body(200, body, content_type, {"ETag": etag, "Last-Modified": modified})


class MockHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: "MockServer") -> None:
        super().__init__(("127.0.0.1", 0), RequestHandler)
        self.owner = owner

    def handle_error(self, request: object, client_address: object) -> None:
        # A crawler that hangs up mid-response (its child process ended, a timeout) is normal
        # here; socketserver would print a traceback to sys.stderr, which a CLI test running
        # at that moment captures as the command's output.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class MockServer:
    """``with MockServer(root) as server: server.url("/feed.xml")``"""

    def __init__(self, root: Path | None = None,
                 tls_cert: tuple[Path, Path] | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self._httpd = MockHTTPServer(self)
        self.port = self._httpd.server_address[1]
        self.scheme = "http"
        if tls_cert is not None:  # (certfile, keyfile): https, e.g. smtpserver's self-signed one
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls_cert)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator: answer ``path`` (with or without query) with a custom handler."""

        def register(handler: Handler) -> Handler:
            self.routes[path] = handler
            return handler

        return register

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        """Answer ``path`` with a redirect to ``location``."""
        self.routes[path] = lambda handler: handler.send_redirect(location, status)

    def requested(self, path: str) -> list[Request]:
        return [r for r in self.requests if urlsplit(r.path).path == path]

    def start(self) -> "MockServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
