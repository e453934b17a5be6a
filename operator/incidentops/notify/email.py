"""E-mail channel: one SMTP submission per notification.

The message: ``Subject`` from the template (``[DRILL]`` first for a drill),
a plain-text body with an HTML alternative, ``Message-ID: <key@incidentops>``
derived from the notification key (a re-send after a restart is the same
message, and mail systems that deduplicate on Message-ID drop it),
``X-Incidentops-Key`` / ``-Event`` / ``-Incident`` / ``-Severity`` /
``-Drill`` headers for filters, ``Auto-Submitted: auto-generated`` (RFC 3834:
no vacation replies), and a ``References`` anchor per incident episode so
mail clients thread one episode's messages together.

SMTP: plain connection to ``host:port``, then ``STARTTLS`` when enabled
(certificate and host name verified), then ``AUTH`` when credentials are set.
Credentials come from a Secret with the keys ``username`` and ``password``;
they are refused without STARTTLS (a password must not cross the network in
clear). Implicit TLS (port 465) is not supported.

SMTP is spoken by the standard library's ``smtplib`` in a worker thread
(``asyncio.to_thread``): ``aiosmtplib`` is not a dependency of the operator,
and ``smtplib`` blocks, so it must never run on the event loop. One deadline
bounds the whole session (connect, EHLO, STARTTLS, AUTH, the message): every
blocking step gets what is left of it as its socket timeout, so a server that
answers each step just in time cannot stretch the session; ``send`` itself
returns at the deadline (name resolution is not bounded by a socket timeout),
leaving its thread to finish.

Rate: no limit but the server's own (4xx replies are retried with backoff);
at most :data:`RATE_LIMIT` ``.concurrency`` sessions to one server at once.

Retried (see :mod:`incidentops.notify.retry`): connection failures, timeouts,
dropped connections and 4xx replies (temporary). Final: 5xx replies (an
unknown recipient, a refused sender, failed authentication) and TLS errors.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import re
import smtplib
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Final

from incidentops.notify.base import (
    ChannelConfigError,
    Notification,
    Outcome,
    RateLimit,
    Redactor,
    ReportMessage,
    destination_id,
)
from incidentops.notify.retry import Attempt, Logger, RetryPolicy, run_with_retry
from incidentops.notify.templates import render

__all__ = ["PASSWORD_KEY", "RATE_LIMIT", "USERNAME_KEY", "EmailChannel", "build_message", "message_id"]

USERNAME_KEY: Final = "username"
PASSWORD_KEY: Final = "password"
MESSAGE_ID_DOMAIN: Final = "incidentops"
RATE_LIMIT: Final = RateLimit(concurrency=4)

_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._+-]")
_ADDRESS: Final = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_REPLY_CHARS: Final = 160


def message_id(key: str) -> str:
    """``<key@incidentops>``, the key reduced to characters a Message-ID allows."""
    local = _ID_UNSAFE.sub("-", key).strip(".") or "notification"
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def build_message(n: Notification, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """The e-mail for ``n``."""
    rendered = render(n.event, n)
    i = n.incident
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = email.utils.format_datetime(n.at if n.at.tzinfo else n.at.astimezone())
    msg["Message-ID"] = message_id(n.key)
    msg["References"] = message_id(f"{i.uid}.{i.episode}")
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Incidentops-Key"] = n.key
    msg["X-Incidentops-Event"] = n.event
    msg["X-Incidentops-Incident"] = f"{i.namespace}/{i.name}"
    msg["X-Incidentops-Severity"] = i.severity
    if i.drill:
        msg["X-Incidentops-Drill"] = "true"
    msg.set_content(rendered.text)
    if rendered.html is not None:
        msg.add_alternative(rendered.html, subtype="html")
    return msg


def build_report_message(r: ReportMessage, *, sender: str, to: Sequence[str]) -> EmailMessage:
    """The e-mail for a policy's report: the Markdown as the text (it reads as plain text)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = " ".join(r.subject.split())
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = email.utils.format_datetime(r.at if r.at.tzinfo else r.at.astimezone())
    msg["Message-ID"] = message_id(r.key)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Incidentops-Key"] = r.key
    msg["X-Incidentops-Event"] = "report"
    msg["X-Incidentops-Policy"] = r.policy
    msg["X-Incidentops-Period"] = r.period
    msg.set_content(r.text)
    return msg


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    raw = " ".join(raw.split())
    if len(raw) > _REPLY_CHARS:
        raw = raw[: _REPLY_CHARS - 1] + "\u2026"
    return f"SMTP {code}: {raw}" if raw else f"SMTP {code}"


def _check_address(value: str, what: str, channel: str) -> None:
    if not _ADDRESS.match(value.strip().rpartition("<")[2].rstrip(">")) or "\n" in value or "\r" in value:
        raise ChannelConfigError(f"email channel {channel!r}: {what} {value!r} is not an e-mail address")


class EmailChannel:
    """Mails every notification to a fixed list of recipients through one SMTP server."""

    kind: Final = "email"

    def __init__(
        self,
        *,
        to: Sequence[str],
        sender: str,
        host: str,
        port: int = 587,
        starttls: bool = True,
        username: str | None = None,
        password: str | None = None,
        name: str = "email",
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        tls_context: ssl.SSLContext | None = None,
        log: Logger | None = None,
    ) -> None:
        if not to:
            raise ChannelConfigError(f"email channel {name!r}: no recipients")
        for address in to:
            _check_address(address, "recipient", name)
        _check_address(sender, "sender", name)
        if (username is None) != (password is None):
            raise ChannelConfigError(f"email channel {name!r}: credentials need both a username and a password")
        if username is not None and not starttls:
            raise ChannelConfigError(f"email channel {name!r}: credentials are only sent over STARTTLS")
        self.name = name
        self._to = tuple(to)
        self._sender = sender
        self._host = host
        self._port = port
        self._starttls = starttls
        self._username = username
        self._password = password
        self._retry = retry or RetryPolicy()
        # The whole session's limit: the retry policy's per-attempt timeout unless given.
        self._timeout = timeout if timeout is not None else self._retry.timeout
        self._tls_context = tls_context
        self._log = log
        self._redactor = Redactor([password, username])
        self.destination = destination_id(self.kind, host, str(port))
        self.rate_limit = RATE_LIMIT

    def __repr__(self) -> str:
        return f"EmailChannel(name={self.name!r}, host={self._host!r}, port={self._port}, to={len(self._to)})"

    async def send(self, n: Notification) -> Outcome:
        return await self._send(build_message(n, sender=self._sender, to=self._to), f"{n.event} {n.key}")

    async def send_report(self, r: ReportMessage) -> Outcome:
        msg = build_report_message(r, sender=self._sender, to=self._to)
        return await self._send(msg, f"report {r.period} {r.key}")

    async def _send(self, msg: EmailMessage, what: str) -> Outcome:
        async def attempt() -> Attempt:
            # smtplib blocks: run it in a worker thread, never on the event loop.
            deadline = time.monotonic() + self._timeout
            try:
                return await asyncio.wait_for(asyncio.to_thread(self._deliver, msg, deadline), self._timeout)
            except TimeoutError:
                return Attempt(ok=False, retryable=True, reason=f"timed out after {self._timeout:g}s")

        return await run_with_retry(
            attempt,
            self._retry,
            what=f"email channel {self.name!r}: {what}",
            redactor=self._redactor,
            log=self._log,
        )

    def _deliver(self, msg: EmailMessage, deadline: float) -> Attempt:
        """One SMTP session that ends by ``deadline`` (``time.monotonic()``; runs in a worker thread)."""

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            return remaining

        def step(smtp: smtplib.SMTP) -> smtplib.SMTP:
            # Each blocking step may take only what is left of the session's time.
            if smtp.sock is not None:
                smtp.sock.settimeout(left())
            return smtp

        try:
            with smtplib.SMTP(self._host, self._port, timeout=left()) as smtp:
                step(smtp).ehlo()
                if self._starttls:
                    context = self._tls_context or ssl.create_default_context()
                    step(smtp).starttls(context=context)
                    step(smtp).ehlo()
                if self._username is not None and self._password is not None:
                    step(smtp).login(self._username, self._password)
                refused = step(smtp).send_message(msg, from_addr=self._sender, to_addrs=list(self._to))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retryable = all(400 <= code < 500 for code in codes)
            first_code, first_text = next(iter(exc.recipients.values()))
            return Attempt(
                ok=False,
                retryable=retryable,
                status_code=first_code,
                reason=f"all recipients refused ({_reply(first_code, first_text)})",
            )
        except smtplib.SMTPAuthenticationError as exc:
            # The server's reply may quote what it was sent; only the code is kept.
            return Attempt(
                ok=False,
                retryable=400 <= exc.smtp_code < 500,
                status_code=exc.smtp_code,
                reason=f"authentication failed (SMTP {exc.smtp_code})",
            )
        except smtplib.SMTPResponseException as exc:
            return Attempt(
                ok=False,
                retryable=400 <= exc.smtp_code < 500,
                status_code=exc.smtp_code,
                reason=_reply(exc.smtp_code, exc.smtp_error),
            )
        except smtplib.SMTPNotSupportedError:
            what = "STARTTLS" if self._starttls else "AUTH"
            return Attempt(ok=False, reason=f"the SMTP server does not support {what}")
        except smtplib.SMTPServerDisconnected:
            return Attempt(ok=False, retryable=True, reason="SMTP server disconnected")
        except ssl.SSLError as exc:
            return Attempt(ok=False, reason=f"TLS error ({exc.reason or type(exc).__name__})")
        except TimeoutError:
            return Attempt(ok=False, retryable=True, reason=f"timed out after {self._timeout:g}s")
        except OSError as exc:
            detail = exc.strerror or type(exc).__name__
            return Attempt(ok=False, retryable=True, reason=f"connection failed ({detail})")
        except smtplib.SMTPException as exc:
            return Attempt(ok=False, retryable=True, reason=f"SMTP error ({type(exc).__name__})")
        if refused:
            listed = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in sorted(refused.items()))
            accepted = len(self._to) - len(refused)
            return Attempt(
                ok=True,
                status_code=250,
                reason=f"accepted for {accepted} of {len(self._to)} recipients; refused: {listed}",
            )
        return Attempt(ok=True, status_code=250, reason=f"accepted for {len(self._to)} recipients")
