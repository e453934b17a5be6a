"""Delivery retry: which failures are worth another attempt, and when.

Retryable: HTTP 408, 429 and 5xx, connection errors and timeouts (and, for
e-mail, SMTP 4xx replies and dropped connections). Never retried: any other
4xx (the request is wrong and will stay wrong), redirects (a webhook that
moved is a configuration problem, and following a redirect would resend the
body to a host nobody configured), SMTP 5xx replies. A failed
:class:`~incidentops.notify.base.Outcome` says which it was (``retryable``)
and carries the server's ``Retry-After``.

The operator builds its channels with ``attempts=1``: one attempt per
``send``, and its delivery queue (``incidentops.handlers.queue``) retries
under the same key, with backoff, without holding anything while it waits.
The in-channel retries below serve callers that want them done in place.

Backoff is exponential: ``initial_delay * multiplier ** (n - 1)`` before retry
``n``, capped at ``max_delay``, with optional +/- ``jitter``. A ``Retry-After``
reply header (seconds or an HTTP date) replaces the computed delay, capped at
``max_retry_after``. ``budget`` bounds the time spent sleeping between
attempts, so one notification cannot hold its sender for long.

Tests make delays milliseconds, or pass ``sleep`` to record them without
waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from incidentops.notify.base import Outcome, Redactor

__all__ = [
    "Attempt",
    "RetryPolicy",
    "is_retryable_status",
    "parse_retry_after",
    "post_with_retry",
    "run_with_retry",
]

logger = logging.getLogger("incidentops.notify")

Logger = logging.Logger | logging.LoggerAdapter[Any]

USER_AGENT: Final = "incidentops-notify/1"
_SNIPPET_CHARS: Final = 160  # of a failed reply's body, kept in the reason (after redaction)
_READ_LIMIT: Final = 4096  # bytes read from any reply
_REASON_CHARS: Final = 240  # an attempt's reason, before "(gave up after ...)": status stays small


def _sleep_default(seconds: float) -> Awaitable[None]:
    return asyncio.sleep(seconds)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a channel retries one notification."""

    attempts: int = 5
    """Total attempts, the first included (1 = never retry)."""
    initial_delay: float = 1.0
    """Seconds before the first retry."""
    multiplier: float = 2.0
    max_delay: float = 30.0
    """Cap of the computed backoff."""
    max_retry_after: float = 60.0
    """Cap of a server's ``Retry-After``: a longer wait is cut to this."""
    jitter: float = 0.1
    """+/- fraction of randomness on computed delays (0 = deterministic); never applied to Retry-After."""
    timeout: float = 10.0
    """Seconds one attempt may take (the whole HTTP exchange, or one SMTP session)."""
    budget: float | None = 120.0
    """Seconds of sleeping allowed across all retries of one notification (None = unbounded)."""
    sleep: Callable[[float], Awaitable[None]] = field(default=_sleep_default, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.initial_delay, self.max_delay, self.max_retry_after, self.timeout) < 0 or self.multiplier < 1:
            raise ValueError("delays and timeout must not be negative, multiplier at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.initial_delay * self.multiplier ** (retry - 1), self.max_delay)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(base, 0.0)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """What one attempt found; ``reason`` must already be free of secrets."""

    ok: bool
    retryable: bool = False
    status_code: int | None = None
    reason: str
    retry_after: float | None = None


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx are worth another try; every other status is final."""
    return status in (408, 429) or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def _bounded(reason: str) -> str:
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "\u2026"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _retryable(result: Attempt, attempts: int, reason: str) -> Outcome:
    """A failure that another attempt, later, may turn into a delivery."""
    return Outcome(
        delivered=False,
        attempts=attempts,
        status_code=result.status_code,
        reason=reason,
        retryable=True,
        retry_after=result.retry_after,
    )


async def run_with_retry(
    attempt: Callable[[], Awaitable[Attempt]],
    policy: RetryPolicy,
    *,
    what: str,
    redactor: Redactor | None = None,
    log: Logger | None = None,
) -> Outcome:
    """Run ``attempt`` until it succeeds, fails for good, or the policy is spent.

    ``what`` names the delivery in log lines (channel kind and name, event,
    key: nothing secret). Every reason goes through ``redactor`` once more.
    """
    log = log or logger
    redact = redactor or Redactor()
    slept = 0.0
    number = 0
    while True:
        number += 1
        result = await attempt()
        reason = _bounded(redact(result.reason))
        if result.ok:
            if number > 1:
                log.info("%s: delivered on attempt %d", what, number)
                reason = f"{reason} after {_plural(number, 'attempt')}"
            return Outcome(delivered=True, attempts=number, status_code=result.status_code, reason=reason)
        if not result.retryable:
            log.warning("%s: attempt %d failed, not retried: %s", what, number, reason)
            suffix = " (not retried)" if number == 1 else f" (not retried; {_plural(number, 'attempt')})"
            return Outcome(delivered=False, attempts=number, status_code=result.status_code, reason=reason + suffix)
        if number >= policy.attempts:
            if policy.attempts == 1:
                # One attempt asked for: the caller retries; the reason stays the attempt's own.
                log.debug("%s: attempt failed: %s", what, reason)
                return _retryable(result, number, reason)
            log.warning("%s: attempt %d failed, giving up: %s", what, number, reason)
            return _retryable(result, number, f"{reason} (gave up after {_plural(number, 'attempt')})")
        delay = policy.delay(number, result.retry_after)
        if policy.budget is not None and slept + delay > policy.budget:
            log.warning("%s: attempt %d failed, retry budget spent: %s", what, number, reason)
            return _retryable(
                result, number, f"{reason} (gave up after {_plural(number, 'attempt')}: retry budget spent)"
            )
        log.info("%s: attempt %d failed: %s; retrying in %.3fs", what, number, reason, delay)
        await policy.sleep(delay)
        slept += delay


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1] + "\u2026"


def _os_error_text(exc: OSError) -> str:
    # The errno's standard text only: the exception's own text may carry the address.
    if isinstance(exc, socket.gaierror):
        # Resolver errors have negative codes of their own (os.strerror(-2) is "Unknown error -2").
        return f"host name not resolved: {exc.strerror}" if exc.strerror else "host name not resolved"
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__


def _exception_reason(exc: BaseException, timeout: float) -> tuple[str, bool]:
    """A safe description of a transport failure, and whether it is worth a retry.

    Exception texts are not used as they are: aiohttp puts the URL (which may
    be the credential) into several of them.
    """
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s", True
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL", False
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error", False
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({_os_error_text(exc.os_error)})", True
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected", True
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"transport error ({type(exc).__name__})", True
    return f"unexpected error ({type(exc).__name__})", False


async def post_with_retry(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    headers: Callable[[], Mapping[str, str]],
    policy: RetryPolicy,
    what: str,
    redactor: Redactor | None = None,
    log: Logger | None = None,
    accept: Callable[[int, bytes], str | None] | None = None,
) -> Outcome:
    """POST ``body`` to ``url`` with the retry policy.

    ``headers`` is called before every attempt (a signature carries the time
    of the attempt). ``accept(status, body)`` may turn a 2xx into a failure by
    returning a reason (a 2xx carrying an error); it is not called otherwise.
    """
    redact = redactor or Redactor()
    timeout = aiohttp.ClientTimeout(total=policy.timeout)

    async def attempt() -> Attempt:
        hdrs = {"User-Agent": USER_AGENT, **headers()}
        # Values of our own headers (a signature, a timestamp) never go into a reason, even echoed back.
        hide = Redactor([v for k, v in hdrs.items() if k.lower() not in _SHOWABLE_HEADERS])
        started = time.monotonic()
        try:
            async with session.post(url, data=body, headers=hdrs, timeout=timeout, allow_redirects=False) as resp:
                status = resp.status
                reply = await resp.content.read(_READ_LIMIT)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason, retryable = _exception_reason(exc, policy.timeout)
            return Attempt(ok=False, retryable=retryable, reason=reason)
        elapsed = time.monotonic() - started
        if 200 <= status <= 299:
            problem = accept(status, reply) if accept else None
            if problem is None:
                return Attempt(ok=True, status_code=status, reason=f"HTTP {status} in {elapsed:.2f}s")
            return Attempt(ok=False, status_code=status, reason=hide(redact(f"HTTP {status}: {problem}")))
        snippet = _snippet(reply)
        reason = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        if 300 <= status <= 399:
            reason = f"HTTP {status}: redirects are not followed"
        return Attempt(
            ok=False,
            retryable=is_retryable_status(status),
            status_code=status,
            reason=hide(redact(reason)),
            retry_after=retry_after if is_retryable_status(status) else None,
        )

    return await run_with_retry(attempt, policy, what=what, redactor=redact, log=log)


_SHOWABLE_HEADERS: Final = frozenset({"content-type", "user-agent", "idempotency-key", "accept"})
