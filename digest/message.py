"""The e-mail: multipart/related( multipart/alternative(text/plain, text/html), image/png ).

The chart travels inside the message and the HTML points at it by Content-ID, so nothing is
fetched from the network when the message is opened. The Message-ID is derived from
(subscriber, week): a message resent after a crash carries the same one, so mail clients and
servers can recognise the copy.
"""

from __future__ import annotations

from email.policy import SMTP
from email.generator import NLCRE, BytesGenerator
from email.utils import format_datetime, formataddr, parseaddr
from datetime import datetime, timezone
import hashlib
import io
import unicodedata
import uuid

from email.message import EmailMessage
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart

from .errors import MessageError
from .render import CHART_CID


def control_character(text: str) -> str | None:
    """The first line break or control character in ``text`` (C0, DEL, C1, U+2028/U+2029), or
    None. In a header such a character ends the line, and what follows becomes a header of its
    own (``Bcc: ...``): the e-mail package refuses the value, and stiwatch refuses it sooner."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a display name in a header (``'Bob\\nBcc: ...' contains a line
    break or control character (U+000A)``), or None when it can."""
    bad = control_character(name)
    if bad is None:
        return None
    return f"{name!r} contains a line break or control character (U+{ord(bad):04X})"


def _text(body: str, subtype: str) -> EmailMessage:
    """A UTF-8 text part. Base64 rather than quoted-printable: encoded in C, it keeps rendering
    a thousand digests well inside the benchmark budget, and any client decodes it."""
    part = EmailMessage()
    part.set_content(body, subtype=subtype, charset="utf-8", cte="base64")
    del part["MIME-Version"]
    return part


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "stiwatch.localhost"


def message_id(email: str, week: str, mail_from: str) -> str:
    """``<digest-2026-W47-0123abcd...@example.org>``: the same for the same (subscriber, week)."""
    digest = hashlib.sha256(f"{email.strip().lower()}\n{week}".encode()).hexdigest()[:20]
    return f"<digest-{week}-{digest}@{_domain(mail_from)}>"


def build_message(
    *,
    to_email: str,
    to_name: str | None,
    week: str,
    subject: str,
    text: str,
    html: str,
    png: bytes | None,
    mail_from: str,
    list_unsubscribe: str | None,
    date: datetime | None = None,
) -> MIMEMultipart:
    """A complete message, ready for ``smtplib.send_message`` or an ``.eml`` file.

    MessageError when the recipient's name cannot go into a header.
    """
    problem = name_problem(to_name or "")
    if problem:
        raise MessageError(f"the name {problem}")
    # Boundaries set here: "=_" never occurs in base64 bodies, and the generator is spared a
    # regex search of the whole message for a collision.
    alternative = MIMEMultipart("alternative", boundary=f"=_alt_{uuid.uuid4().hex}")
    alternative.attach(_text(text, "plain"))
    alternative.attach(_text(html, "html"))
    root = MIMEMultipart("related", boundary=f"=_rel_{uuid.uuid4().hex}",
                         type="multipart/alternative", policy=SMTP)
    root.attach(alternative)
    if png is not None:
        image = MIMEImage(png, "png")
        image.add_header("Content-ID", f"<{CHART_CID}>")
        image.add_header("Content-Disposition", "inline", filename="trends.png")
        root.attach(image)
    root["Subject"] = subject
    root["From"] = mail_from
    root["To"] = formataddr((to_name or "", to_email))
    root["Date"] = format_datetime(date or datetime.now(timezone.utc))
    root["Message-ID"] = message_id(to_email, week, mail_from)
    root["X-Stiwatch-Week"] = week
    root["Auto-Submitted"] = "auto-generated"
    root["Precedence"] = "bulk"
    if list_unsubscribe:
        root["List-Unsubscribe"] = f"<{list_unsubscribe}>"
        if list_unsubscribe.startswith("https:"):
            root["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return root


class _Generator(BytesGenerator):
    """BytesGenerator writing each body in one piece instead of line by line.

    The stock generator writes (and encodes) every 76-character base64 line separately, which
    made serialising the digest cost more than rendering it; the bytes are identical.
    """

    def _write_lines(self, lines: str) -> None:
        if not lines:
            return
        parts = NLCRE.split(lines)
        if len(parts) > 1:
            self.write(self._NL.join(parts[:-1]) + self._NL)
        if parts[-1]:
            self.write(parts[-1])


def to_bytes(message: MIMEMultipart) -> bytes:
    """The message as it goes on the wire (CRLF line ends)."""
    buffer = io.BytesIO()
    _Generator(buffer, policy=SMTP).flatten(message)
    return buffer.getvalue()
