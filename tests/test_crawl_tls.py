"""https sources on a loopback TLS server: certificates are checked only when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from crawlsite import FAST, build_site, registry
from mockserver import MockServer
from smtpserver import self_signed_certificate


def test_certificates_are_verified_only_with_verify_tls_certificates(tmp_path):
    # Scrapy never checks a certificate: an operator who wants to could not ask it to.
    (tmp_path / "site").mkdir()
    cert = self_signed_certificate(tmp_path)

    def crawl(name: str, **env: str) -> dict:
        # A process of its own: the crawler's forkserver takes SSL_CERT_FILE from its parent.
        result = subprocess.run(
            [sys.executable, "-m", "stiwatch", "--db", str(tmp_path / f"{name}.db"), "crawl",
             "--sources", str(reg), "--json"],
            env={**os.environ, **FAST, **env}, capture_output=True, text=True, timeout=120)
        [source] = json.loads(result.stdout)["sources"]
        return {"exit": result.returncode, "status": source["status"], "new": source["new"],
                "errors": source["errors"]}

    with MockServer(tmp_path / "site", tls_cert=cert) as server:
        base = build_site(server)
        assert base.startswith("https://")
        reg = registry(tmp_path / "sources.toml", [
            {"id": "newsroom", "kind": "feed", "url": f"{base}/feed.xml"}])

        # By default a certificate nobody vouches for is accepted, as it always was.
        assert crawl("default") == {"exit": 0, "status": "ok", "new": 3, "errors": []}
        refused = crawl("verified", STIWATCH_VERIFY_TLS_CERTIFICATES="true")
        assert (refused["exit"], refused["status"], refused["new"]) == (1, "failed", 0)
        assert "TLS certificate could not be verified (certificate verify failed; " \
            "verify_tls_certificates is on)" in refused["errors"][0]
        # A certificate the system trusts passes.
        assert crawl("trusted", STIWATCH_VERIFY_TLS_CERTIFICATES="true",
                     SSL_CERT_FILE=str(cert[0]))["status"] == "ok"
