"""Named errors of the digest; the CLI shows their message (one sentence) and exits 2."""


class DigestError(Exception):
    """Bad input to the digest: a week, a time zone, a subscriber file, a setting."""


class InvalidSubscriber(DigestError):
    """A subscriber whose address or filter ids are not valid (message names line and field)."""


class SmtpSetupError(DigestError):
    """SMTP settings that cannot work (e.g. STARTTLS required but not offered)."""


class UnsubscribeSetupError(DigestError):
    """Unsubscribe settings that cannot be filled in (a {token} with no secret to make it)."""


class WeekNotOver(DigestError):
    """A week asked to be sent before it has ended (its later items would never reach readers)."""


class OutboxError(DigestError):
    """The `outbox` setting names something messages cannot be written into."""


class MessageError(DigestError):
    """One subscriber's message cannot be built (e.g. a line break in the name, which would
    start a header of its own): that delivery fails, the others are still sent."""
