"""A small SMTP client for alert mails: the standard library's ``smtplib`` in a worker
thread, with a timeout on every socket operation.

Why not an async SMTP library: alerts are a handful a day, and ``smtplib`` is the one
client every mail server has been tested against. The worker thread keeps the blocking
socket off trio's loop; ``abandon_on_cancel`` lets the daemon shut down without waiting
for a slow server (a mail abandoned that way may have gone out: it is sent again later,
see ``service``).

Failures come out as :class:`MailError`; ``permanent`` says whether trying again can
help (a 5xx refusal of the sender, every recipient or the data: no) or not yet (no
connection, a timeout, a 4xx, a login refused while the operator fixes the password).
The password is never logged nor part of an error's text.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MailError", "OutgoingMail", "SmtpTarget", "recipients", "send_mail", "send_mail_sync"]


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to send: ``starttls`` upgrades a plain connection (port 587) and
    refuses to go on without it; ``username`` logs in with ``password`` (after TLS)."""

    host: str
    port: int = 25
    sender: str = "smppgw@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    #: Only for tests against a local server with a throwaway certificate.
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One message to one recipient list."""

    to: tuple[str, ...]
    subject: str
    body: str


class MailError(Exception):
    """A mail did not go out; ``permanent``: retrying the same mail cannot help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def _message(target: SmtpTarget, mail: OutgoingMail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = target.sender
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=target.sender.rpartition("@")[2] or None)
    msg.set_content(mail.body)
    return msg


def _classify(exc: Exception) -> MailError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        return MailError(f"every recipient refused: {sorted(exc.recipients)}", permanent=permanent)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailError(f"login refused ({exc.smtp_code})", permanent=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return MailError(f"{exc.smtp_code} {text}", permanent=exc.smtp_code >= 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return MailError(f"server lacks a feature: {exc}", permanent=False)
    return MailError(f"{type(exc).__name__}: {exc}", permanent=False)


def send_mail_sync(target: SmtpTarget, mail: OutgoingMail) -> dict[str, tuple[int, bytes]]:
    """Send one mail (blocking); returns the recipients refused while others took it.

    Raises:
        MailError: nothing was sent.
    """
    if not mail.to:
        return {}
    try:
        with smtplib.SMTP(target.host, target.port, timeout=target.timeout) as smtp:
            smtp.ehlo_or_helo_if_needed()
            if target.starttls:
                context = target.tls_context or ssl.create_default_context()
                smtp.starttls(context=context)
                smtp.ehlo()
            if target.username is not None:
                smtp.login(target.username, target.password or "")
            refused = smtp.send_message(_message(target, mail), target.sender, list(mail.to))
            return dict(refused)
    except (smtplib.SMTPException, OSError) as exc:
        raise _classify(exc) from None


async def send_mail(target: SmtpTarget, mail: OutgoingMail) -> dict[str, tuple[int, bytes]]:
    """:func:`send_mail_sync` in a worker thread (abandoned if the caller is cancelled)."""
    result: dict[str, tuple[int, bytes]] = await trio.to_thread.run_sync(
        partial(send_mail_sync, target, mail), abandon_on_cancel=True
    )
    return result


def recipients(*lists: Sequence[str]) -> tuple[str, ...]:
    """The addresses of ``lists`` in order, each once."""
    return tuple(dict.fromkeys(a for lst in lists for a in lst))
