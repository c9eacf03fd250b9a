"""Sending a week's digests exactly once: SMTP or an outbox folder, one delivery row each.

For every active subscriber, the (subscriber, week) row of `deliveries` moves
``pending -> sending -> sent | failed`` (or ``skipped`` when nothing matched), each step committed
on its own:

- ``sent`` and ``failed`` are final for the week. ``skipped`` is not: each later send of the same
  week composes that subscriber's digest again (items crawled or classified since may match now).
  Still empty: the row stays ``skipped`` untouched (one log line; the report counts it with
  those done earlier, as before, so a re-run with nothing new reads the same).
  Not empty any more: the row goes back to ``pending`` and is sent like any other, once.

- ``sending`` is committed before the SMTP conversation starts and ``sent`` right after the server
  accepted, so a sender killed at any moment leaves at most that one row in ``sending``; the next
  run sends it again with the same Message-ID (the one duplicate the design allows), and never
  skips anyone.
- Once the whole message has gone out (the data's final ``.``), a timeout or a lost connection
  before the server's answer leaves the row *in doubt*: still ``sending``, with
  ``unanswered_at`` and the reason in ``last_error``. The server may have delivered it, so no
  run sends it again and it is not ``failed``; ``resolve_delivery`` (``stiwatch digest
  resolve``) records what an operator found out: sent, or owed again. The sender reconnects for
  the next message. ``resend_failed`` (``digest resolve --resend --all-failed``) makes every
  failed delivery of a week owed again at once (not those cancelled by the operator).
- SMTP 4xx and 552 are temporary: the row goes back to ``pending`` with ``next_attempt_at``
  (``delivery_retry_minutes``, doubling each attempt) until ``delivery_max_attempts``, then
  ``failed``. Other 5xx are permanent: ``failed`` at once, except a 5xx to MAIL FROM, which
  refuses the sender (``mail_from``), not the reader: the run stops as if the server could not
  be reached (below) and every row stays owed. So does a 5xx at RCPT TO or DATA that is the
  server's refusal of the session or message, not of a reader: Postfix's refusals of relaying,
  client, HELO or sender (which ``smtpd_delay_reject`` reports at RCPT TO), at once, or the same
  reply, the reader's address taken out, for ``SAME_REFUSAL_LIMIT`` readers in a row with none
  accepted in between; those readers are owed again, each keeping its Message-ID. A timeout or
  a lost connection before the message went out whole is temporary too (the server cannot have
  it); the sender reconnects for the next one. When the server cannot be reached
  at all, no row is marked ``sending``: each one still owed records the try (``attempts``) and
  the error (``last_error``) and stays owed, due at once, for the next run; rows whose digest is
  empty are still marked ``skipped`` (that needs no server). Such tries count towards
  ``delivery_max_attempts`` only in that a temporary refusal after them gives up sooner; an
  unreachable server never fails a row by itself.
- A message that cannot be built for one subscriber (that subscriber's data, e.g. a line break
  in the name, stored before ``subscribers add`` refused such names) is ``failed`` at once with
  the reason in ``last_error``, before its row is ``sending``; the others are still sent.
- With no ``smtp_host``, messages are written as ``.eml`` files into ``outbox/<week>/`` (and the
  rows recorded as sent). ``dry_run`` records nothing and writes every active subscriber's
  message, sent or not, into ``outbox/dry-run/<week>/`` instead (emptied of an earlier dry run's
  ``.eml`` files first), so it is never mistaken for a delivery.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
import hashlib
import logging
import os
from pathlib import Path
import re
import smtplib
import socket
import ssl
from typing import Any, Callable, Iterator, Mapping, Sequence

from email.utils import parseaddr

import db
from db.clock import iso_utc
from db.digests import CANCELLED

from .chart import ChartKey, area_chart, chart_key
from .errors import (DigestError, MessageError, OutboxError, SmtpSetupError,
                     UnsubscribeSetupError, WeekNotOver)
from .message import (build_message, chart_url, message_id, one_click, to_bytes,
                      unsubscribe_problem, unsubscribe_target)
from .render import render_html, render_text, subject
from .select import LATE_WEEKS, Digest, WeekData, load_week, select
from .trends import TrendReport, in_week, trends, window_of
from .weeks import Week

log = logging.getLogger("stiwatch.digest")
# On each warning or error about a delivery: the caller reports that outcome itself (`digest
# send` lists it, a failed `run` step sums it up in its one line), so stiwatch's logging keeps
# the record for the log file but does not repeat it on stderr, which cron mails.
REPORTED = {"reported": True}


@dataclass
class WeekBundle:
    """What every subscriber's digest of one week shares: stories, trends, chart."""

    week: Week
    data: WeekData
    trends: TrendReport
    through: int = 0  # the highest item id stored when it was read: it read none above
    installation: str = ""  # the store's installation_id: part of every Message-ID
    # stories of the LATE_WEEKS weeks before, stored after the lowest late_after of its readers
    late: WeekData | None = None

    # Charts drawn so far, by what they draw (``chart_key``; EVERY_AREA for all areas)
    charts: dict[ChartKey, bytes] = field(default_factory=dict, repr=False)

    def chart(self, filters: Mapping[str, Sequence[str] | None] | None = None) -> bytes:
        """The trends chart of a reader with ``filters`` (their areas, countries and regions:
        see ``chart_key``; none: every area), drawn when a message or preview first needs it,
        once for all readers who follow the same ones: a scheduled run with every reader
        already served (most days) never imports matplotlib."""
        key = chart_key(self.trends, filters)
        if key not in self.charts:
            self.charts[key] = area_chart(self.trends, key)
        return self.charts[key]

    @property
    def png(self) -> bytes:
        """The chart of every area (an unfiltered digest's)."""
        return self.chart()

    def message_id(self, email: str, mail_from: str) -> str:
        """This installation's Message-ID for ``email``'s digest of the week."""
        return message_id(email, self.week.label, mail_from, self.installation)


TREND_WEEKS = 12  # weeks the digest's trends section and chart show


def prepare_week(store: Any, week: Week, late_after: int | None = None,
                 now: datetime | None = None) -> WeekBundle:
    """Read the trends window once (this week's stories are its last week) and draw the chart.

    Everything is read up to the highest item id stored now (``through``), which each
    delivery records. ``late_after``: the lowest id any reader's last digest was built up to;
    the stories published in the LATE_WEEKS weeks before this one and stored after it are read
    too, for the readers who have not had them (None: none are). A week not over by ``now``
    (a preview, `send --partial-week`) is marked so (``trends.as_of``): its digest says its
    counts stop there."""
    through = store.max_item_id()
    rows = [row for row in store.policy_items(window_of(week, TREND_WEEKS)[0].start_utc,
                                              week.end_utc)
            if row["id"] <= through]
    data = load_week(store, week, [row for row in rows if in_week(row, week)])
    # Countries too: a reader who follows only countries gets a line per country (digest.chart).
    report = trends(store, week, weeks=TREND_WEEKS,
                    facets=("area", "domain", "region", "country"), rows=rows)
    now = now or datetime.now(timezone.utc)
    if now < week.end:
        report.as_of = now
    late = None
    if late_after is not None and late_after < through:
        late = load_week(store, week, store.policy_items(
            week.previous(LATE_WEEKS)[0].start_utc, week.start_utc, ids=(late_after, through)))
    return WeekBundle(week, data, report, through=through, late=late,
                      installation=store.installation_id)


def compose(bundle: WeekBundle, subscriber: Mapping[str, Any] | None,
            settings: Mapping[str, Any], late_after: int | None = None) -> Digest:
    """One reader's digest; ``late_after``: the highest item id of their last digest."""
    return select(bundle.data, subscriber, int(settings["digest_section_cap"]), bundle.trends,
                  bundle.late, late_after)


def message_for(bundle: WeekBundle, digest: Digest, settings: Mapping[str, Any],
                *, date: datetime | None = None, message_id_header: str | None = None):
    """The message of ``digest``; ``message_id_header``: the one its delivery recorded (a
    resend), else this installation's for (reader, week)."""
    template = settings.get("list_unsubscribe") or None
    unsubscribe = reader_unsubscribe(settings, digest.email)
    message_id_header = message_id_header or bundle.message_id(digest.email or "",
                                                               settings["mail_from"])
    # First: fitting the size budget leaves stories out of ``digest``, and the text part too.
    html = render_html(digest, chart_src=chart_url(message_id_header), unsubscribe=unsubscribe,
                       budget=settings.get("digest_max_html_bytes"),
                       serve_url=settings.get("serve_url"))
    return build_message(
        to_email=digest.email or "",
        to_name=digest.name,
        week=bundle.week.label,
        subject=subject(digest),
        text=render_text(digest, unsubscribe=unsubscribe),
        html=html,
        png=bundle.chart(digest.filters),
        mail_from=settings["mail_from"],
        list_unsubscribe=unsubscribe,
        date=date,
        one_click_unsubscribe=one_click(template),
        list_unsubscribe_mailto=reader_unsubscribe(settings, digest.email,
                                                   "list_unsubscribe_mailto"),
        message_id_header=message_id_header,
    )


def reader_unsubscribe(settings: Mapping[str, Any], email: str | None,
                       setting: str = "list_unsubscribe") -> str | None:
    """The unsubscribe target ``setting`` names, filled for the reader ``email``
    (``unsubscribe_target``, keyed by the setting ``unsubscribe_secret``)."""
    return unsubscribe_target(settings.get(setting), settings["mail_from"], email,
                              settings.get("unsubscribe_secret"))


def check_unsubscribe(settings: Mapping[str, Any]) -> None:
    """UnsubscribeSetupError when the unsubscribe targets cannot be filled for a reader (a
    {token} without its secret): said once, before any delivery is touched, rather than as
    every reader's failed delivery."""
    problem = unsubscribe_problem(settings)
    if problem:
        raise UnsubscribeSetupError(problem)


def message_bytes(message: Any) -> bytes:
    return to_bytes(message)


def chart_path(out: str | Path) -> Path:
    """Where a preview written as ``out`` keeps its chart: beside it, as ``<stem>.png``."""
    out = Path(out)
    return out.with_name(out.stem + ".png")


def render_preview(store: Any, settings: Mapping[str, Any], week: Week, out: str | Path,
                   subscriber: Mapping[str, Any] | None = None,
                   bundle: WeekBundle | None = None) -> tuple[bytes, bytes, Digest]:
    """The preview to be written as ``out``: (HTML bytes linking ``chart_path(out)``, PNG bytes,
    digest). Without ``subscriber`` the digest is unfiltered."""
    if subscriber is not None:  # an unfiltered digest names no reader: no link to fill
        check_unsubscribe(settings)
    bundle = bundle or prepare_week(store, week)
    digest = compose(bundle, subscriber, settings)
    html = render_html(digest, chart_src=chart_path(out).name,
                       unsubscribe=reader_unsubscribe(settings, digest.email),
                       budget=settings.get("digest_max_html_bytes"),
                       serve_url=settings.get("serve_url"))
    return html.encode("utf-8"), bundle.chart(digest.filters), digest


def write_preview(store: Any, settings: Mapping[str, Any], week: Week, out: str | Path,
                  subscriber: Mapping[str, Any] | None = None,
                  bundle: WeekBundle | None = None) -> tuple[Path, Path, Digest]:
    """Write the week's digest as ``out`` (HTML) plus its chart beside it (``<stem>.png``).

    Without ``subscriber`` the digest is unfiltered. Returns (html path, png path, digest).
    """
    html, png, digest = render_preview(store, settings, week, out, subscriber, bundle)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png_path = chart_path(out)
    atomic_write(png_path, png)
    atomic_write(out, html)
    return out, png_path, digest


def write_week_files(store: Any, settings: Mapping[str, Any], week: Week, folder: str | Path,
                     bundle: WeekBundle | None = None) -> dict[str, Path]:
    """The unfiltered digest of ``week`` as ``digest-<week>.eml``, ``.html`` and ``.png`` in
    ``folder`` (for `stiwatch demo` and for looking at a week without subscribers).

    Records no delivery. Returns the paths by suffix (``eml``, ``html``, ``png``).
    """
    check_unsubscribe(settings)  # the .eml is addressed to mail_from: its link names it
    bundle = bundle or prepare_week(store, week)
    folder = Path(folder)
    html_path, png_path, digest = write_preview(store, settings, week,
                                                folder / f"digest-{week.label}.html",
                                                bundle=bundle)
    to = parseaddr(settings["mail_from"])[1] or "stiwatch@localhost"
    digest.email = to
    eml_path = folder / f"digest-{week.label}.eml"
    atomic_write(eml_path, message_bytes(message_for(bundle, digest, settings)))
    return {"eml": eml_path, "html": html_path, "png": png_path}


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, so an interrupted or failed
    write never leaves a truncated file under the final name (not mkstemp: its 0600 mode would
    make a preview unreadable to a web server or a colleague)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- transports ----------------------------------------------------------------------------------

class DeliveryError(Exception):
    """A message not delivered, or not known to be: ``temporary`` (retry later), permanent, or
    ``unanswered`` (it went out whole and no answer came: the server may have it)."""

    def __init__(self, message: str, *, temporary: bool, connection_lost: bool = False,
                 unanswered: bool = False, stage: str = "") -> None:
        super().__init__(message)
        self.temporary = temporary
        self.connection_lost = connection_lost
        self.unanswered = unanswered
        self.stage = stage  # the command the server refused: "RCPT TO", "DATA", or ""


class _KnowsWhenTheMessageIsOut:
    """smtplib's session, plus what it does not tell: whether the message has gone out whole.

    ``SMTP.data()`` hands the message, ended by its lone ``.`` line, to ``send()`` in one piece
    and then waits for the answer. A timeout or a lost connection before ``message_out`` is set
    means the server cannot have the message (safe to retry); after it, the server may well
    have accepted it (a slow relay answers late), so sending it again could deliver it twice.
    """

    message_out = False

    def send(self, s: str | bytes) -> None:  # smtplib's own method, called for every line out
        self.message_out = False
        super().send(s)  # type: ignore[misc]
        self.message_out = isinstance(s, bytes) and s.endswith(b"\r\n.\r\n")


class _SMTP(_KnowsWhenTheMessageIsOut, smtplib.SMTP):
    pass


class _SMTP_SSL(_KnowsWhenTheMessageIsOut, smtplib.SMTP_SSL):
    pass


class SenderBusy(DigestError):
    """Another sender holds the lock of this database; ``held`` says who (a `stiwatch restore`
    holds it too)."""

    def __init__(self, message: str, held: db.LockHeld) -> None:
        super().__init__(message)
        self.held = held


def _why_unreachable(error: BaseException) -> str:
    """The cause in a reader's words, not Python's ("[Errno -2] Name or service not known")."""
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error)


class CannotConnect(Exception):
    """The SMTP server could not be reached or refused the session: stop this run."""


class SenderRefused(CannotConnect):
    """The server answered MAIL FROM with a permanent refusal (5xx): it takes no message from
    this sender (``mail_from``, or the login's right to use it), whoever the reader."""


# Postfix's own words for refusing the session, not a reader: relaying for this client, the
# client host, its HELO name, the sender. With smtpd_delay_reject = yes (its default) they come as
# the answer to RCPT TO, the reader's address in front, so by the code alone each looks like that
# reader's refusal. Each with what the operator should check.
_SESSION_REFUSALS = {
    "relay access denied": "that the server relays for this host (its mynetworks or client "
                           "rules), or for smtp_username's login",
    "sender address rejected": "mail_from, and smtp_username if the server wants a login to "
                               "send as it",
    "client host rejected": "that the server takes mail from this host (its client rules, this "
                            "host's reverse DNS)",
    "helo command rejected": "the name this host gives in EHLO (the server may want a "
                             "fully-qualified name it can resolve)",
}
# This many readers in a row refused for good with the same reply (their address taken out), at
# the same command and with no reader accepted in between: the refusal is the server's (a relay
# rule, a content filter), not each reader's. Fewer cannot be told from readers' own refusals.
SAME_REFUSAL_LIMIT = 3


class _RefusalStreak:
    """The readers refused for good, one after another, with the same reply."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.refused: list[tuple[str, DeliveryError]] = []

    def add(self, email: str, error: DeliveryError) -> None:
        # The reply without the reader's address (Postfix puts it in front: "<a@x>: ...").
        text = re.sub(re.escape(email), "", str(error), flags=re.IGNORECASE)
        key = (error.stage, text)
        if key != self.key:
            self.key, self.refused = key, []
        self.refused.append((email, error))

    def clear(self) -> None:
        self.key, self.refused = None, []

    def servers(self, settings: Mapping[str, Any]) -> str | None:
        """Why the refusals so far are the server's, as one line; None while they may be the
        readers' own."""
        if not self.refused:
            return None
        where = f"the SMTP server at {settings['smtp_host']}:{settings['smtp_port']}"
        _, error = self.refused[0]
        advice = next((check for phrase, check in _SESSION_REFUSALS.items()
                       if phrase in str(error).lower()), None)
        if advice is not None:
            email, error = self.refused[-1]
            return (f"{where} refused {email} at {error.stage} ({error}), which is its refusal "
                    f"of this client or sender, not of the readers: check {advice}")
        if len(self.refused) < SAME_REFUSAL_LIMIT:
            return None
        advice = ("the server's log and its content filter: it refuses the digest itself"
                  if error.stage == "DATA" else "the server's log and its relay and recipient "
                  "rules for this host, smtp_username and mail_from")
        return (f"{where} refused {len(self.refused)} readers in a row "
                f"({', '.join(email for email, _ in self.refused)}) at {error.stage} ({error}), "
                "the same reply for each but the address, which is its refusal of this client, "
                f"sender or message, not of the readers: check {advice}")


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500 or code == 552


def _reply(code: int, text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}"


class SmtpTransport:
    kind = "smtp"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings
        self.conn: smtplib.SMTP | None = None
        self.envelope_from = parseaddr(settings["mail_from"])[1]

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        host, port, timeout = s["smtp_host"], int(s["smtp_port"]), float(s["smtp_timeout"])
        try:
            if s["smtp_ssl"]:
                conn = _SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
            else:
                conn = _SMTP(host, port, timeout=timeout)
            code, reply = conn.ehlo()
            if not 200 <= code < 300:
                # A server (or a firewall's SMTP "fixup" before it) without ESMTP: once EHLO
                # failed, smtplib would send MAIL FROM with no greeting at all.
                code, reply = conn.helo()
                if not 200 <= code < 300:
                    conn.close()
                    raise CannotConnect(f"the SMTP server at {host}:{port} refused the greeting "
                                        f"(HELO: {_reply(code, reply)})")
            if s["smtp_starttls"] and not s["smtp_ssl"]:
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise SmtpSetupError(
                        f"smtp_starttls: {host}:{port} does not offer STARTTLS; set "
                        "smtp_starttls = false to send unencrypted, or smtp_ssl = true for port 465"
                    )
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s["smtp_username"]:
                if not conn.has_extn("auth"):
                    conn.close()
                    # A relay that takes mail without a login offers no AUTH: not unreachable.
                    raise SmtpSetupError(
                        f"smtp_username: {host}:{port} does not offer a login (SMTP AUTH); "
                        "leave smtp_username empty to send without one")
                if not s.get("smtp_password"):
                    conn.close()
                    # Missing from the job's environment (a crontab without it, systemd's
                    # optional EnvironmentFile=-): the server's 535 would say it was wrong.
                    raise SmtpSetupError(
                        f"smtp_username is set ({s['smtp_username']}) but the SMTP password is "
                        "empty: give it in the environment variable STIWATCH_SMTP_PASSWORD of "
                        "the command (never in a file stiwatch reads; see docs/operations.md)")
                conn.login(s["smtp_username"], s["smtp_password"])
        except smtplib.SMTPAuthenticationError as error:
            raise CannotConnect(f"SMTP login as {s['smtp_username']!r} refused: "
                                f"{_reply(error.smtp_code, error.smtp_error)}") from error
        except ssl.SSLError as error:  # an OSError, but the server was reached
            raise CannotConnect(f"TLS with the SMTP server at {host}:{port} failed ({error})"
                                ) from error
        except (smtplib.SMTPException, OSError) as error:
            raise CannotConnect(f"the SMTP server at {host}:{port} could not be reached "
                                f"({_why_unreachable(error)})") from error
        return conn

    def connect(self) -> None:
        """Open the session unless one is open (CannotConnect when the server is unreachable)."""
        if self.conn is None:
            self.conn = self._connect()

    def send(self, message: Any, email: str) -> None:
        self.connect()
        try:
            self.conn.sendmail(self.envelope_from, [email], to_bytes(message))
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients.get(email, (550, b"refused"))
            if code == 421:  # smtplib has closed the session: the next message reconnects
                self._drop()
            raise DeliveryError(_reply(code, text), temporary=_is_temporary(code),
                                stage="RCPT TO") from error
        except smtplib.SMTPSenderRefused as error:
            code = error.smtp_code
            if code == 421:
                self._drop()
            if 500 <= code < 600 and not _is_temporary(code):
                s = self.settings
                raise SenderRefused(
                    f"the SMTP server at {s['smtp_host']}:{s['smtp_port']} refused the sender "
                    f"{self.envelope_from} ({_reply(code, error.smtp_error)}): check mail_from, "
                    "and smtp_username if the server wants a login to send as it") from error
            raise DeliveryError(_reply(code, error.smtp_error),
                                temporary=_is_temporary(code)) from error
        except smtplib.SMTPServerDisconnected as error:
            out = self._message_out()
            self.conn = None
            raise self._lost(f"connection lost: {error or 'server closed the connection'}",
                             out) from error
        except smtplib.SMTPResponseException as error:  # an answer: the server said what it did
            if error.smtp_code in (421,):
                self._drop()
            raise DeliveryError(_reply(error.smtp_code, error.smtp_error),
                                temporary=_is_temporary(error.smtp_code),
                                stage="DATA" if isinstance(error, smtplib.SMTPDataError)
                                else "") from error
        except (OSError, smtplib.SMTPException) as error:
            out = self._message_out()
            self._drop()
            raise self._lost(f"connection lost: {error}", out) from error

    def _message_out(self) -> bool:
        return bool(getattr(self.conn, "message_out", False))

    def stopped(self) -> bool:
        """The send was stopped (Ctrl-C, SIGTERM): drop the session without waiting for the
        server, and say whether it may have the message (it went out whole, no answer yet)."""
        out = self._message_out()
        self._drop()
        return out

    @staticmethod
    def _lost(reason: str, message_out: bool) -> DeliveryError:
        if message_out:
            return DeliveryError(f"no answer after the message was sent ({reason}); the server "
                                 "may have it, so it is not sent again", temporary=False,
                                 connection_lost=True, unanswered=True)
        return DeliveryError(reason, temporary=True, connection_lost=True)

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()


def _safe_name(email: str) -> str:
    """The outbox file name (without .eml) of ``email``: the address itself when it is plain
    and short, else a readable stem plus a hash of the whole address, so that two addresses
    never share a file (a/b@x.org and a&b@x.org both read a_b@x.org: one digest overwrote the
    other, both counted sent) and a 254-character address still fits a 255-byte file name."""
    stem = re.sub(r"[^A-Za-z0-9@._+-]", "_", email)
    if stem == email and len(stem) <= MAX_PLAIN_NAME:
        return stem
    digest = hashlib.sha256(email.encode("utf-8")).hexdigest()[:12]
    return f"{stem[:MAX_PLAIN_NAME - 13]}-{digest}"


# Longest name kept as is: + ".eml" (and "-<12 hex>" when hashed) stays within NAME_MAX (255),
# with room for atomic_write's temporary-file prefix and suffix.
MAX_PLAIN_NAME = 200


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ``path`` or parent of it, when that is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


DRY_RUN_FOLDER = "dry-run"  # inside the outbox; week labels never clash with it


class OutboxTransport:
    kind = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def connect(self) -> None:
        """Make the folder, or OutboxError naming the setting's path (nothing sent yet)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._unusable(error) from None

    def forget_earlier(self) -> None:
        """Remove the .eml files an earlier run left in the folder (for dry runs, so the folder
        shows this run only)."""
        try:
            if self.folder.is_dir():
                for old in self.folder.glob("*.eml"):
                    old.unlink()
        except OSError as error:
            raise self._unusable(error) from None

    def _unusable(self, error: OSError) -> OutboxError:
        in_the_way = _file_in_the_way(self.folder)
        if in_the_way is not None:
            return OutboxError(f"outbox: {in_the_way} is a file, not a folder (setting "
                               "`outbox`: point it at a folder, or move the file)")
        return OutboxError(f"outbox: cannot use {self.folder}: {error.strerror or error}")

    def send(self, message: Any, email: str) -> None:
        self.connect()
        path = self.folder / f"{_safe_name(email)}.eml"
        try:
            atomic_write(path, message_bytes(message))
        except OSError as error:
            # Temporary, like a refused recipient: the row is owed again, not left `sending`.
            raise DeliveryError(f"cannot write {path}: {error.strerror or error}",
                                temporary=True) from error
        self.written.append(path)

    def stopped(self) -> bool:
        return False  # a file is written whole (atomic_write) or not at all

    def close(self) -> None:
        pass


# -- one run -----------------------------------------------------------------------------------

@dataclass
class SendReport:
    week: str
    transport: str  # smtp, outbox or dry-run
    policy_items: int = 0  # the week's policy items: each report of an event counts
    story_count: int = 0  # the stories they make (an event several sources reported is one)
    subscribers: int = 0  # active subscribers
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # nothing matched their filters (newly)
    retry: list[dict[str, str]] = field(default_factory=list)  # temporary failures this run
    failed: list[dict[str, str]] = field(default_factory=list)  # permanent (or out of retries)
    # Went out whole this run, and no answer came: in doubt, not sent again (needs a look).
    unanswered: list[dict[str, str]] = field(default_factory=list)
    waiting: list[dict[str, str]] = field(default_factory=list)  # owed, retry not yet due
    in_doubt: list[dict[str, str]] = field(default_factory=list)  # left in doubt by earlier runs
    # Sent or failed in an earlier run, or skipped earlier and still nothing matching (skipped
    # rows are composed again on every run; one that matches now is sent and counted in `sent`).
    already: int = 0
    files: list[str] = field(default_factory=list)  # outbox .eml files written
    aborted: str | None = None  # why nothing more could be sent (server unreachable, refusing)
    unreachable: list[str] = field(default_factory=list)  # owed, not sent because of `aborted`

    @property
    def ok(self) -> bool:
        return not (self.failed or self.retry or self.unanswered) and self.aborted is None

    @property
    def doubtful(self) -> list[dict[str, str]]:
        """Deliveries in doubt after this send: left so now, or by earlier runs."""
        return self.unanswered + self.in_doubt

    @property
    def counted(self) -> str:
        """The operator's count of the week: '20 policy items in 15 stories' ('1 policy item
        in 1 story'), where the line had said '1 policy items' and no stories."""
        items = "item" if self.policy_items == 1 else "items"
        stories = "story" if self.story_count == 1 else "stories"
        return f"{self.policy_items} policy {items} in {self.story_count} {stories}"

    @property
    def stories(self) -> int:
        """Deprecated name of ``policy_items``, which it always counted (not stories)."""
        return self.policy_items

    def as_dict(self) -> dict[str, Any]:
        # `stories` stays in the JSON for the scripts that read it, with the value it always
        # had (policy items); docs/operations.md marks it deprecated.
        return {**self.__dict__, "stories": self.stories, "ok": self.ok}


def send_week(
    store: Any,
    settings: Mapping[str, Any],
    week: Week,
    *,
    dry_run: bool = False,
    partial_week: bool = False,
    progress: Any = None,
    now: datetime | None = None,
    bundle: WeekBundle | None = None,
    on_event: Callable[[str], None] | None = None,
    owed_only: bool = False,
    unreachable: str | None = None,
    holder: str = "stiwatch digest send",
) -> SendReport:
    """Send (or write) the digest of ``week`` to every active subscriber still owed it.

    ``owed_only`` (a scheduled run catching up on an earlier week) sends only the deliveries
    already recorded as owed: no row is made for someone who subscribed since, and rows
    skipped for want of matching items are left as they are. ``unreachable``: the SMTP server
    was found unreachable moments ago (for another week of the same run), so each owed row
    records that reason without another try at connecting.

    ``week`` must be over by ``now`` (WeekNotOver otherwise): a delivery is final for its week,
    so a digest sent mid-week would keep the rest of the week's items from its readers for good.
    ``partial_week`` sends a week that has started anyway; a week that has not started never.

    Only one sender at a time per database (an OS lock beside it, released even on SIGKILL):
    two overlapping senders could otherwise both take the row the other has in flight.
    ``holder``: the command sending, as the lock names it to a second sender (`stiwatch run`
    sends too).
    """
    now = now or datetime.now(timezone.utc)
    check_week_over(week, now, partial_week=partial_week)
    check_unsubscribe(settings)
    options = {"owed_only": owed_only, "unreachable": unreachable}
    if dry_run:
        return _send_week(store, settings, week, True, progress, now, bundle, on_event, **options)
    with sender_lock(store.path, holder):
        return _send_week(store, settings, week, False, progress, now, bundle, on_event,
                          **options)


def sender_lock_path(database: str | os.PathLike[str]) -> Path:
    """The lock file a sender holds beside ``database`` (`stiwatch restore` takes it too)."""
    return Path(f"{database}.digest-send.lock")


# The sender's locks this process holds, by lock file: a command that takes the lock before it
# opens the store then sends under it, and flock would refuse the send a second hold (another
# open file of the same lock).
_held: dict[str, db.FileLock] = {}


@contextmanager
def sender_lock(database: str | os.PathLike[str], label: str = "stiwatch digest resolve", *,
                wait: float = 0.0) -> Iterator[None]:
    """The sender's lock of the store at ``database``, recording ``label`` as what holds it: a
    send (which a `stiwatch run --digest` makes too), or an operator's change of deliveries
    (`digest resolve`). Waits up to ``wait`` seconds; SenderBusy if it stays held, the FileLock's
    LockUnusable if the file cannot be made. Held already by this process, it takes nothing."""
    path = sender_lock_path(database)
    key = os.path.abspath(path)
    if key in _held:
        yield
        return
    lock = db.FileLock(path, label)
    try:
        lock.acquire(wait=wait)
    except db.LockHeld as held:
        raise SenderBusy(
            f"{held.who('another `stiwatch digest send`')} is running on {database} "
            f"(lock {held.path}); try again when it has finished", held
        ) from None
    _held[key] = lock
    try:
        yield
    finally:
        del _held[key]
        lock.release()


def resolve_delivery(store: Any, email: str, week: Week, *, arrived: bool) -> dict[str, Any]:
    """Record what an operator found out about a delivery in doubt: it ``arrived`` (sent), or
    it did not (owed again: the next send of ``week`` sends it, with the same Message-ID). A
    failed delivery can be made owed again as well. Under the sender's lock, so a send under
    way never races the change. The store's NoSuchDelivery or NotInDoubt otherwise."""
    with sender_lock(store.path):
        return store.resolve_delivery(email, week.label, arrived=arrived)


@dataclass
class ResendReport:
    """What ``resend_failed`` did to the failed deliveries of one week."""

    week: str
    resent: list[str] = field(default_factory=list)  # owed again: the next send sends each
    cancelled: list[str] = field(default_factory=list)  # left failed: the operator's decision
    removed: list[str] = field(default_factory=list)  # left failed: no longer subscribed


def resend_failed(store: Any, week: Week) -> ResendReport:
    """Every failed delivery of ``week`` owed again at once, as ``resolve_delivery(arrived=False)``
    does for one (after a relay refused a whole run, or once what made them fail is fixed): the
    next send of the week sends each, with the Message-ID it was tried with. A failed delivery
    was never accepted by the server, so none is sent twice; sent, skipped, owed and in-doubt
    ones are not touched. Those the operator cancelled stay failed (the operator's word, and a
    cancelled delivery may have been one in doubt), as do those of readers no longer
    subscribed. Under the sender's lock and in one transaction: all of them or none."""
    report = ResendReport(week.label)
    with sender_lock(store.path), store.write():
        for row in store.deliveries(week.label):
            if row["status"] != "failed":
                continue
            email = row["subscriber"]
            if row["last_error"] == CANCELLED:
                report.cancelled.append(email)
            elif not row["active"]:
                report.removed.append(email)
            else:
                store.resolve_delivery(email, week.label, arrived=False)
                report.resent.append(email)
    return report


def cancel_delivery(store: Any, email: str, week: Week) -> dict[str, Any]:
    """An owed delivery the operator does not want sent (a stale week, a subscriber who left):
    recorded failed, final. Under the sender's lock, as ``resolve_delivery``."""
    with sender_lock(store.path):
        return store.cancel_delivery(email, week.label)


def check_week_over(week: Week, now: datetime, *, partial_week: bool = False) -> None:
    """WeekNotOver unless ``week`` has ended by ``now`` (or, with ``partial_week``, begun)."""
    if now < week.start:
        raise WeekNotOver(f"--week {week.label} has not started yet (it starts "
                          f"{week.local(week.start)}): there is nothing to send")
    if now < week.end and not partial_week:
        raise WeekNotOver(
            f"--week {week.label} is not over until {week.local(week.end)}; sent now, its readers "
            "would never get the rest of the week's items (wait, or add --partial-week to send "
            "the week so far and count it as sent)"
        )


def _put_back(store: Any, week: Week, report: SendReport, streak: _RefusalStreak, reason: str,
              now: datetime) -> None:
    """The server refuses this client, sender or message, whoever the reader: the deliveries
    it refused so are owed again (due at once, each keeping its Message-ID), and the run stops
    as when the server cannot be reached."""
    report.aborted = reason
    refused = [email for email, _ in streak.refused]
    for email in refused:
        store.delivery_retry(email, week.label, reason, iso_utc(now))
    report.failed = [row for row in report.failed if row["email"] not in refused]
    report.unreachable.extend(refused)
    streak.clear()
    log.error("digest %s: %s; what is owed stays owed for the next run", week.label, reason,
              extra=REPORTED)


def _send_week(store: Any, settings: Mapping[str, Any], week: Week, dry_run: bool,
               progress: Any, now: datetime, bundle: WeekBundle | None,
               on_event: Callable[[str], None] | None, *, owed_only: bool = False,
               unreachable: str | None = None) -> SendReport:
    if dry_run:
        transport: Any = OutboxTransport(Path(settings["outbox"]) / DRY_RUN_FOLDER / week.label)
        transport.forget_earlier()
        kind = "dry-run"
    elif settings["smtp_host"]:
        transport = SmtpTransport(settings)
        kind = "smtp"
    else:
        transport = OutboxTransport(Path(settings["outbox"]) / week.label)
        kind = "outbox"
    report = SendReport(week.label, kind)
    subscribers = {s["email"]: s for s in store.list_subscribers(active_only=True)}
    built = {email: through for email, through in store.last_built(week.label).items()
             if email in subscribers}
    bundle = bundle or prepare_week(store, week, min(built.values(), default=None), now)
    # Policy items, as the operator's other counts are: each report of an event grouped into
    # one story counts; story_count is what the unfiltered digest shows above its stories.
    report.policy_items = sum(story.reports for story in bundle.data.stories)
    report.story_count = len(bundle.data.stories)
    report.subscribers = len(subscribers)
    if not bundle.data.stories and not (bundle.late and bundle.late.stories):
        log.info("digest %s: no policy items this week, nothing sent", week.label)
        return report
    emit = on_event or (lambda message: None)

    if dry_run:
        owed = [{"subscriber": email, "status": "pending", "attempts": 0} for email in subscribers]
    else:
        if not owed_only:
            store.ensure_deliveries(week.label, list(subscribers))
        owed = store.owed_deliveries(week.label, iso_utc(now), skipped=not owed_only)
        owed_emails = {row["subscriber"] for row in owed}
        for row in store.deliveries(week.label):
            if row["subscriber"] in owed_emails or not row["active"]:
                continue
            if row["status"] == "pending":
                report.waiting.append({"email": row["subscriber"], "error": row["last_error"] or "",
                                       "next_attempt_at": row["next_attempt_at"] or ""})
            elif row["status"] == "sending":  # not owed: only a row in doubt
                report.in_doubt.append({"email": row["subscriber"],
                                        "error": row["last_error"] or "",
                                        "since": row["unanswered_at"] or ""})
            else:
                report.already += 1
    if progress is not None:
        progress.set_total(len(owed))
    max_attempts = max(1, int(settings["delivery_max_attempts"]))
    retry_minutes = float(settings["delivery_retry_minutes"])
    streak = _RefusalStreak()

    def cannot_build(email: str, error: Exception) -> None:
        """One subscriber's message cannot be made (its data, e.g. a line break in the name,
        from a store older than the check at `subscribers add`): that delivery fails for good,
        with the reason, and the others go on. Nothing was handed to a server."""
        reason = f"cannot build the message: {error}"
        if not isinstance(error, MessageError):  # not foreseen: name the kind of error too
            reason = f"cannot build the message: {type(error).__name__}: {error}"
        if not dry_run:
            store.delivery_failed(email, week.label, reason)
        report.failed.append({"email": email, "error": reason})
        log.error("digest %s: %s failed: %s", week.label, email, reason,
                  exc_info=not isinstance(error, MessageError), extra=REPORTED)
        emit(f"{email}: {reason}")
        if progress is not None:
            progress.advance(failed=1)

    try:
        for row in owed:
            email = row["subscriber"]
            subscriber = subscribers[email]
            try:
                digest = compose(bundle, subscriber, settings, built.get(email))
            except Exception as error:  # noqa: BLE001 - this subscriber's data, not the run's
                cannot_build(email, error)
                continue
            was_skipped = row["status"] == "skipped"
            if digest.empty:
                if was_skipped:  # no state change to write; still done (earlier) for this week
                    report.already += 1
                else:
                    if not dry_run:
                        store.delivery_skipped(email, week.label, bundle.through)
                    report.skipped.append(email)
                log.info("digest %s: %snothing matched for %s, nothing sent", week.label,
                         "still " if was_skipped else "", email)
                if progress is not None:
                    progress.advance(skipped=1)
                continue
            if not dry_run:
                if was_skipped:  # owed now: should the server be unreachable, it shows as pending
                    store.delivery_owed_again(email, week.label)
                    log.info("digest %s: %s skipped earlier, now %d items match", week.label,
                             email, digest.total)
                if report.aborted is None and unreachable is not None:
                    report.aborted = unreachable  # found so a moment ago: not tried again
                if report.aborted is None:
                    try:
                        transport.connect()  # fail before the row is sending
                    except CannotConnect as error:
                        report.aborted = str(error)
                        log.error("digest %s: %s; what is owed stays owed for the next run",
                                  week.label, error, extra=REPORTED)
                # The rest are still composed: an empty digest is skipped without a server,
                # and each owed row records why it was not sent.
                if report.aborted is not None:
                    store.delivery_unreachable(email, week.label, report.aborted)
                    report.unreachable.append(email)
                    if progress is not None:
                        progress.advance(failed=1)
                    continue
            # Built only for a message that will be tried, and before its row is `sending`.
            try:
                # A resend keeps the Message-ID its row recorded, whatever made it.
                mid = row.get("message_id") or bundle.message_id(email, settings["mail_from"])
                message = message_for(bundle, digest, settings, message_id_header=mid)
            except Exception as error:  # noqa: BLE001 - this subscriber's data, not the run's
                cannot_build(email, error)
                continue
            if not dry_run:
                store.delivery_sending(email, week.label, mid, digest.total, bundle.through)
            try:
                transport.send(message, email)
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM (`systemctl stop`) after the whole message went out and
                # before the server answered: it may well deliver it, so the row is in doubt,
                # like a timeout there, never sent again by the next run. (Stopped earlier,
                # the row stays `sending` and the next run sends it, with the same Message-ID.)
                if transport.stopped() and not dry_run:
                    reason = ("stopped after the message was sent, before the server answered; "
                              "the server may have it, so it is not sent again")
                    store.delivery_unanswered(email, week.label, reason)
                    log.error("digest %s: %s in doubt: %s", week.label, email, reason,
                              extra=REPORTED)
                raise
            except CannotConnect as error:
                # Refused for the sender, not for this reader: no message of the run can go,
                # and each stays owed (this one due at once, its Message-ID kept), as when
                # the server cannot be reached.
                report.aborted = str(error)
                store.delivery_retry(email, week.label, report.aborted, iso_utc(now))
                report.unreachable.append(email)
                log.error("digest %s: %s; what is owed stays owed for the next run",
                          week.label, error, extra=REPORTED)
                if progress is not None:
                    progress.advance(failed=1)
                continue
            except DeliveryError as error:
                attempts = (row.get("attempts") or 0) + 1
                if dry_run:  # records nothing: the real row of this subscriber stays as it is
                    report.failed.append({"email": email, "error": str(error)})
                elif error.unanswered:
                    store.delivery_unanswered(email, week.label, str(error))
                    report.unanswered.append({"email": email, "error": str(error)})
                    log.error("digest %s: %s in doubt: %s", week.label, email, error,
                              extra=REPORTED)
                elif error.temporary and attempts < max_attempts:
                    retry_at = iso_utc(now + timedelta(minutes=retry_minutes * 2 ** (attempts - 1)))
                    store.delivery_retry(email, week.label, str(error), retry_at)
                    report.retry.append({"email": email, "error": str(error),
                                         "next_attempt_at": retry_at})
                    log.warning("digest %s: %s temporarily refused (%s), retry after %s",
                                week.label, email, error, retry_at, extra=REPORTED)
                else:
                    reason = str(error) if not error.temporary else (
                        f"gave up after {attempts} attempts: {error}")
                    store.delivery_failed(email, week.label, reason)
                    report.failed.append({"email": email, "error": reason})
                    log.error("digest %s: %s failed: %s", week.label, email, reason,
                              extra=REPORTED)
                    if not error.temporary and error.stage:
                        streak.add(email, error)
                        server_refused = streak.servers(settings)
                        if server_refused is not None:
                            _put_back(store, week, report, streak, server_refused, now)
                emit(f"{email}: {error}")
                if progress is not None:
                    progress.advance(failed=1)
                continue
            streak.clear()  # a reader accepted: the server does take mail
            if not dry_run:
                store.delivery_sent(email, week.label)
            report.sent.append(email)
            # the reader's stories, as the subject counts them (digest.total), not items
            log.info("digest %s: sent to %s (%d %s)", week.label, email, digest.total,
                     "story" if digest.total == 1 else "stories")
            if progress is not None:
                progress.advance(sent=1)
    finally:
        transport.close()
        if isinstance(transport, OutboxTransport):
            report.files = [str(p) for p in transport.written]
    return report
