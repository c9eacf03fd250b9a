"""A real SMTP server on 127.0.0.1 (aiosmtpd in a background thread) for delivery tests.

``SmtpServer(behaviour)`` listens on an ephemeral port. ``behaviour`` maps a recipient address
to what happens to it:

- ``"accept"`` (the default for anyone not listed): 250, message recorded;
- ``"451"``: temporary refusal of the recipient (RCPT TO);
- ``"421"``: RCPT TO answered 421 (the server is closing the session: temporary; the client
  closes its side, as RFC 5321 asks);
- ``"550"``: permanent refusal of the recipient (RCPT TO);
- ``"552"``: refused after DATA (mailbox full: temporary by convention);
- ``"drop"``: the connection is cut after the message data arrived, before any reply;
- ``"block"``: the message is recorded as *received* but the reply never comes (until
  ``release()``), so a sender can be killed while it waits;
- ``"slow"``: the message is accepted and recorded (the server has it), but its 250 comes only
  after ``slow_seconds`` (3 s by default): a sender whose ``smtp_timeout`` is shorter gives up
  waiting for an answer to a message that was in fact delivered (a slow or overloaded relay);
- ``"slow-rcpt"``: RCPT TO is answered only after ``slow_seconds``: a sender with a shorter
  ``smtp_timeout`` gives up before any data was sent (the message cannot have arrived).

``server.sender_reply = "553 5.7.1 ..."`` answers MAIL FROM with that instead of 250 (a
gateway that refuses the sender); None (the default) accepts it.
``server.rcpt_reply = "554 5.7.1 <{address}>: Relay access denied"`` answers RCPT TO with that
(``{address}``: the recipient's) for every recipient with no ``behaviour`` of its own, as a relay
that refuses the session does (Postfix reports a refused client, HELO or sender at RCPT TO when
``smtpd_delay_reject = yes``); ``server.data_reply`` does the same for the end of DATA (a content
filter). Both None by default.
``server.ehlo = False`` answers EHLO with 502, as a server that speaks only the old SMTP (or a
firewall's SMTP "fixup" in front of one) does: HELO still works.

Behaviour can change between runs (``server.behaviour[...] = ...``). ``messages`` holds the
accepted messages parsed with the standard ``email`` package; ``received`` also holds those that
were blocked in flight. ``SmtpServer(login=(user, password))`` requires that login.
``SmtpServer(tls="starttls" | "implicit", cert=(certfile, keyfile))`` speaks TLS with that
certificate (see ``self_signed_certificate``): STARTTLS required before MAIL, or TLS from the
first byte (port-465 style).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import datetime
import ipaddress
import logging
from pathlib import Path
import ssl
import email
from email import policy
from email.message import EmailMessage
import threading
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult


@dataclass
class Received:
    rcpt: str
    mail_from: str
    data: bytes
    accepted: bool

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)


class _Handler:
    def __init__(self, server: "SmtpServer") -> None:
        self.server = server

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):  # noqa: ANN001
        if not self.server.ehlo:
            return ["502 5.5.1 Command not implemented"]
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):  # noqa: ANN001
        if self.server.sender_reply:
            return self.server.sender_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):  # noqa: ANN001
        action = self.server.behaviour.get(address.lower())
        if action is None and self.server.rcpt_reply:
            return self.server.rcpt_reply.format(address=address)
        if action == "451":
            return "451 4.2.1 Mailbox temporarily unavailable, try later"
        if action == "421":
            return "421 4.3.2 Service shutting down, try later"
        if action == "550":
            return "550 5.1.1 No such user here"
        if action == "slow-rcpt":
            await asyncio.sleep(self.server.slow_seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):  # noqa: ANN001
        rcpt = envelope.rcpt_tos[0].lower()
        action = self.server.behaviour.get(rcpt)
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        if action is None and self.server.data_reply:
            return self.server.data_reply.format(address=rcpt)
        if action == "552":
            return "552 5.2.2 Mailbox full"
        if action == "drop":
            smtp.transport.abort()
            return None
        if action == "slow":
            with self.server.lock:
                self.server.received.append(Received(rcpt, envelope.mail_from, data, True))
            await asyncio.sleep(self.server.slow_seconds)
            return "250 2.0.0 Message accepted (eventually)"
        if action == "block":
            self.server.received.append(Received(rcpt, envelope.mail_from, data, False))
            self.server.blocked.set()
            await self.server.release_event.wait()
            smtp.transport.abort()
            return None
        with self.server.lock:
            self.server.received.append(Received(rcpt, envelope.mail_from, data, True))
        return "250 2.0.0 Message accepted"


# The server side of a refused TLS handshake is expected here, not news: keep it out of the
# output the tests read.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)


class SmtpServer:
    def __init__(self, behaviour: dict[str, str] | None = None,
                 login: tuple[str, str] | None = None, tls: str | None = None,
                 cert: tuple[Path, Path] | None = None, slow_seconds: float = 3.0) -> None:
        self.tls = tls
        self.slow_seconds = slow_seconds
        self.tls_context: ssl.SSLContext | None = None
        if tls:
            self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_context.load_cert_chain(*cert)
        self.login = login  # (user, password) accepted by AUTH (AUTH offered only then)
        self.logins: list[str] = []
        self.behaviour = {k.lower(): v for k, v in (behaviour or {}).items()}
        self.sender_reply: str | None = None  # MAIL FROM's answer, when not 250
        # RCPT TO's and DATA's answer for recipients without a behaviour, when not 250
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.ehlo = True  # False: EHLO is answered 502 (HELO only)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.blocked = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.release_event: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.release_event = asyncio.Event()
        handler = _Handler(self)
        auth = {}
        if self.login:
            # Plain-text login on loopback only: aiosmtpd otherwise insists on TLS first.
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        if self.tls == "starttls":
            auth.update(tls_context=self.tls_context, require_starttls=True)
        self._server = self.loop.run_until_complete(self.loop.create_server(
            lambda: SMTP(handler, hostname="smtp.test", ident="stiwatch-test-smtp",
                         data_size_limit=20 * 1024 * 1024, **auth),
            "127.0.0.1", 0, ssl=self.tls_context if self.tls == "implicit" else None))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self._server.close()
        self.loop.run_until_complete(self._server.wait_closed())

    def _authenticate(self, server, session, envelope, mechanism, data):  # noqa: ANN001
        user, password = data.login.decode(), data.password.decode()
        self.logins.append(user)
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=(user, password) == self.login, handled=False)

    def start(self) -> "SmtpServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("SMTP test server did not start")
        return self

    def release(self) -> None:
        """Let a blocked message conversation end (the connection is then cut)."""
        if self.release_event is not None:
            self.loop.call_soon_threadsafe(self.release_event.set)

    def stop(self) -> None:
        self.release()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def messages(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.accepted]

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.messages if r.rcpt == address.lower()]

    def settings_env(self) -> dict[str, str]:
        """Environment that points stiwatch at this server (no TLS, no login)."""
        return {"STIWATCH_SMTP_HOST": "127.0.0.1", "STIWATCH_SMTP_PORT": str(self.port),
                "STIWATCH_SMTP_STARTTLS": "false", "STIWATCH_SMTP_TIMEOUT": "10"}

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA: trust it with SSL_CERT_FILE=certfile."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stiwatch test SMTP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile
