"""The bundled offline demo: fictional STI-policy sources served from a loopback HTTP server.

``build_site`` writes the static site for a given day, ``serve`` serves it, and ``load_content``
reads the hand-written, hand-labelled articles it is made from.
"""

from .server import DemoServer, serve
from .site import ContentError, DemoArticle, DemoSource, build_site, load_content, manifest

__all__ = [
    "ContentError", "DemoArticle", "DemoServer", "DemoSource", "build_site", "load_content",
    "manifest", "serve",
]
