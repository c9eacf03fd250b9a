"""The e-mail: multipart/related( multipart/alternative(text/plain, text/html), image/png ).

The chart travels inside the message and the HTML points at it by Content-ID, so nothing is
fetched from the network when the message is opened. The Message-ID is derived from
(subscriber, week): a message resent after a crash carries the same one, so mail clients and
servers can recognise the copy.
"""

from __future__ import annotations

from email.policy import EmailPolicy
from email.generator import NLCRE, BytesGenerator
from email.utils import format_datetime, formataddr, parseaddr
from datetime import datetime, timezone
import base64
import binascii
import hashlib
import hmac
import io
import string
from typing import Any, Mapping
import unicodedata
from urllib.parse import quote
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


# The environment variable holding the key of {token}: named in errors, which the digest
# gives without reading stiwatch's settings table.
SECRET_VARIABLE = "STIWATCH_UNSUBSCRIBE_SECRET"


def placeholders(template: str | None) -> set[str]:
    """The {names} a setting's template uses (``{{token}}`` is a literal, not one)."""
    if not template:
        return set()
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def normalise_email(email: str) -> str:
    """The address as stiwatch stores a subscriber's: trimmed, lower-cased."""
    return email.strip().lower()


def unsubscribe_token(secret: str, email: str) -> str:
    """The ``{token}`` of ``email``: HMAC-SHA256 of its normalised address (UTF-8), keyed by
    ``secret`` (UTF-8), as 64 lower-case hex digits. Only whoever holds the secret can make
    one, so a link carrying it cannot be forged from an address alone (RFC 8058 section 3)."""
    return hmac.new(secret.encode("utf-8"), normalise_email(email).encode("utf-8"),
                    hashlib.sha256).hexdigest()


def token_matches(secret: str, email: str, token: str) -> bool:
    """Whether ``token`` is ``email``'s, compared in constant time (upper-case hex too)."""
    return hmac.compare_digest(unsubscribe_token(secret, email).encode("ascii"),
                               token.strip().lower().encode("utf-8"))


def unsubscribe_problem(settings: Mapping[str, Any]) -> str | None:
    """Why the digest's unsubscribe targets cannot be filled (one line), or None: a {token}
    with no secret to make it (missing from the job's environment, as a password can be)."""
    if settings.get("unsubscribe_secret"):
        return None
    for name in ("list_unsubscribe", "list_unsubscribe_mailto"):
        if "token" in placeholders(settings.get(name)):
            return (f"{name} uses {{token}} but the unsubscribe secret is empty: give it in the "
                    f"environment variable {SECRET_VARIABLE} of the command (never in a file "
                    "stiwatch reads; see docs/operations.md)")
    return None


def unsubscribe_target(template: str | None, mail_from: str, email: str | None,
                       secret: str | None = None) -> str | None:
    """The setting ``list_unsubscribe`` for one reader: ``{mail_from}`` becomes the sender's
    address, ``{email}`` the reader's, both percent-encoded, and ``{token}`` the reader's
    ``unsubscribe_token`` keyed by ``secret``. None when there is no target, or when it names
    the reader and there is none (an unfiltered preview). MessageError for a {token} without a
    secret (``unsubscribe_problem`` refuses that before anything is sent)."""
    if not template:
        return None
    used = placeholders(template)
    if used & {"email", "token"} and not email:
        return None
    if "token" in used and not secret:
        raise MessageError(f"{{token}} needs the environment variable {SECRET_VARIABLE}")
    token = unsubscribe_token(secret, email) if "token" in used and secret and email else ""
    return template.format(mail_from=quote(parseaddr(mail_from)[1], safe="@"),
                           email=quote(email or "", safe=""), token=token)


def one_click(template: str | None) -> bool:
    """RFC 8058 one-click unsubscribe is offered only by an https link that names the reader:
    a mail client POSTs to it with nothing else, so a fixed URL could unsubscribe nobody."""
    return bool(template) and template.startswith("https:") and "email" in placeholders(template)


def _text(body: str, subtype: str) -> EmailMessage:
    """A UTF-8 text part, quoted-printable: readable in the raw message and by gateways that
    scan text (base64 hid it), and every line on the wire within 76 octets, whatever the length
    of the HTML's own lines (RFC 5322: at most 998). Encoded by binascii, in C: the email
    package's quoted-printable encoder, in Python, would cost more than rendering the digest.

    A part mostly in Chinese, Japanese or Korean is base64 instead, when that is smaller:
    quoted-printable writes each of their characters in 9 octets, base64 in 4, and a Japanese
    week's digest would pass the size where Gmail clips a message (its text is no more
    readable on the wire either way)."""
    # Line ends as the email package reads them (\r, \n, \r\n; not U+2028): b2a_qp would
    # pass a lone \r through as it is, a bare CR on the wire.
    data = b"\n".join(body.encode("utf-8").splitlines()) + b"\n"
    quoted = binascii.b2a_qp(data, istext=True)
    # base64 of the canonical form (RFC 2045: CRLF line ends), in 76-character lines
    in_base64 = base64.encodebytes(data.replace(b"\n", b"\r\n"))
    encoded, encoding = ((quoted, "quoted-printable") if len(quoted) <= len(in_base64)
                         else (in_base64, "base64"))
    part = EmailMessage()
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(encoded.decode("ascii"))
    return part


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "stiwatch.localhost"


def chart_content_id(message_id_header: str) -> str:
    """The chart's Content-ID, without its ``<>``: ``trends-chart.<Message-ID's left part>@<its
    domain>``. RFC 2392 and 5322 want a msg-id (``left@right``), unique to the message; some
    mail clients show no image for a bare ``<trends-chart>``. The HTML points at it as ``cid:``
    plus this (see ``chart_url``)."""
    left, _, right = message_id_header.strip().strip("<>").rpartition("@")
    return f"{CHART_CID}.{left}@{right}" if left and right else f"{CHART_CID}@stiwatch.localhost"


def chart_url(message_id_header: str) -> str:
    """The ``cid:`` URL of the chart of the message with this Message-ID (RFC 2392: the
    Content-ID percent-encoded where a URL needs it)."""
    return "cid:" + quote(chart_content_id(message_id_header), safe="@")


def message_id(email: str, week: str, mail_from: str, installation: str = "") -> str:
    """``<digest-2026-W47-0123abcd...@example.org>``: the same for the same (subscriber, week)
    of one ``installation`` (a store and its backups), so that a resend is known for a copy;
    another installation mailing the same reader from the same domain (a pilot beside the
    production one) gets another, or mail providers would drop its digest as a copy."""
    key = f"{installation}\n" if installation else ""
    digest = hashlib.sha256(f"{key}{email.strip().lower()}\n{week}".encode()).hexdigest()[:20]
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
    message_id_header: str,
    one_click_unsubscribe: bool = False,
    list_unsubscribe_mailto: str | None = None,
) -> MIMEMultipart:
    """A complete message, ready for ``smtplib.send_message`` or an ``.eml`` file.

    ``list_unsubscribe_mailto``: a mailto: URL List-Unsubscribe gives after an https:
    ``list_unsubscribe`` (RFC 2369: a client takes the first it can use).

    MessageError when the recipient's name cannot go into a header.
    """
    problem = name_problem(to_name or "")
    if problem:
        raise MessageError(f"the name {problem}")
    # Boundaries set here: "=_" never occurs in base64 or quoted-printable bodies (where a
    # literal "=" is "=3D"), and the generator is spared a
    # regex search of the whole message for a collision.
    alternative = MIMEMultipart("alternative", boundary=f"=_alt_{uuid.uuid4().hex}")
    alternative.attach(_text(text, "plain"))
    alternative.attach(_text(html, "html"))
    root = MIMEMultipart("related", boundary=f"=_rel_{uuid.uuid4().hex}",
                         type="multipart/alternative", policy=POLICY)
    root.attach(alternative)
    if png is not None:
        image = MIMEImage(png, "png")
        image.add_header("Content-ID", f"<{chart_content_id(message_id_header)}>")
        image.add_header("Content-Disposition", "inline", filename="trends.png")
        root.attach(image)
    root["Subject"] = subject
    root["From"] = mail_from
    root["To"] = formataddr((to_name or "", to_email))
    root["Date"] = format_datetime(date or datetime.now(timezone.utc))
    root["Message-ID"] = message_id_header
    root["X-Stiwatch-Week"] = week
    root["Auto-Submitted"] = "auto-generated"
    root["Precedence"] = "bulk"
    if list_unsubscribe:
        targets = [list_unsubscribe]
        if list_unsubscribe.startswith("https:") and list_unsubscribe_mailto \
                and list_unsubscribe_mailto.startswith("mailto:"):
            targets.append(list_unsubscribe_mailto)
        root["List-Unsubscribe"] = ", ".join(f"<{target}>" for target in targets)
        # RFC 8058: only beside an https URI, which the mail client POSTs to.
        if one_click_unsubscribe and list_unsubscribe.startswith("https:"):
            root["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return root


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded-words (UTF-8, base64), each whole characters and at most
    72 characters long (RFC 2047: 75)."""
    chunks, chunk = [], ""
    for char in text:
        if chunk and len((chunk + char).encode("utf-8")) > 45:  # 45 bytes: 60 in base64
            chunks.append(chunk)
            chunk = ""
        chunk += char
    chunks.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(c.encode('utf-8')).decode('ascii')}?=" for c in chunks]


class _Policy(EmailPolicy):
    """The SMTP policy, except for two headers it would fold wrongly.

    List-Unsubscribe is never folded: its URLs are words, and one too long for a 78-character
    line would be RFC 2047-encoded, which no mail client reads as a link (a line may be 998
    characters; the URL has no spaces or controls, see config).

    A From or To whose display name is not all ASCII gets the whole name encoded: the email
    package encodes only its non-ASCII words and leaves the rest bare, so in ``田中 太郎 (JST)``
    the ``(JST)`` became a comment (shown by no client: the name read ``田中 太郎``) and ``Dr.``
    in ``Dr. 田中`` an obsolete phrase; and its encoded-words ran to 76 characters.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "list-unsubscribe" and str(value).isascii():
            return f"{name}: {value}{self.linesep}".encode("ascii")
        addresses = getattr(value, "addresses", ())
        if name.lower() in ("from", "to") and len(addresses) == 1 \
                and not addresses[0].display_name.isascii():
            lines = [f"{name}:"]
            for word in [*_encoded_words(addresses[0].display_name),
                         f"<{addresses[0].addr_spec}>"]:
                if len(lines[-1]) + 1 + len(word) > self.max_line_length:
                    lines.append("")
                lines[-1] += " " + word
            return (self.linesep.join(lines) + self.linesep).encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Policy(linesep="\r\n")


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
    _Generator(buffer, policy=POLICY).flatten(message)
    return buffer.getvalue()
