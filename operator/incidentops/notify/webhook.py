"""Generic webhook channel: a signed JSON POST any receiver can consume.

Request::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <notification key>
    X-Incidentops-Timestamp: <unix seconds>            (with an HMAC secret)
    X-Incidentops-Signature: sha256=<lowercase hex>    (with an HMAC secret)

    {"version": "1", "event": "triggered", "key": "...", "at": "<RFC 3339>",
     "channel": "<channel name>", "drill": false, "level": 0, "levelName": "on-call",
     "subject": "...", "message": "<the rendered text>",
     "incident": {"name", "namespace", "uid", "title", "severity", "phase", "episode",
                  "type", "description", "startedAt", "acknowledgedBy", "summary",
                  "rootCause", "url"},
     "details": {...}}

Signature scheme (verify it with :func:`verify_signature`):

1. Take the ``X-Incidentops-Timestamp`` header ``t`` (decimal unix seconds) and
   the raw request body ``b``, exactly as received (do not re-serialise it).
2. Compute ``HMAC-SHA256(key=<secret>, message=t + "." + b)`` (UTF-8 for
   ``t`` and the dot) as lowercase hex.
3. Compare it, in constant time, with the ``X-Incidentops-Signature`` value
   after its ``sha256=`` prefix.
4. Reject a timestamp more than a few minutes from your clock (the helper's
   default tolerance is 300 s) to stop replays.

The timestamp and signature are computed again for every retry. A receiver
that sees the same ``Idempotency-Key`` twice has seen the same notification
twice (a retry, or a re-send after the operator restarted) and should drop it.

2xx is success; 408, 429 and 5xx are retried (see :mod:`incidentops.notify.retry`);
other replies are failures, not retried. Redirects are not followed. There is
no rate limit but the receiver's own (its 429 and ``Retry-After`` are
honoured); at most :data:`RATE_LIMIT` ``.concurrency`` requests are in flight
to one URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import aiohttp

from incidentops.notify.base import (
    Notification,
    Outcome,
    RateLimit,
    Redactor,
    ReportMessage,
    destination_id,
    url_secrets,
)
from incidentops.notify.retry import Logger, RetryPolicy, post_with_retry
from incidentops.notify.templates import RenderedMessage, render

__all__ = [
    "RATE_LIMIT",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "report_payload",
    "sign",
    "verify_signature",
    "webhook_payload",
]

TIMESTAMP_HEADER: Final = "X-Incidentops-Timestamp"
SIGNATURE_HEADER: Final = "X-Incidentops-Signature"
PAYLOAD_VERSION: Final = "1"
DEFAULT_TOLERANCE: Final = 300.0
RATE_LIMIT: Final = RateLimit(concurrency=8)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def webhook_payload(n: Notification, message: RenderedMessage) -> dict[str, Any]:
    """The JSON document POSTed for ``n``."""
    i = n.incident
    return {
        "version": PAYLOAD_VERSION,
        "event": n.event,
        "key": n.key,
        "at": n.at.isoformat(),
        "channel": n.channel,
        "drill": i.drill,
        "level": n.level,
        "levelName": n.level_name,
        "subject": message.subject,
        "message": message.text,
        "incident": {
            "name": i.name,
            "namespace": i.namespace,
            "uid": i.uid,
            "title": i.title,
            "severity": i.severity,
            "phase": i.phase,
            "episode": i.episode,
            "type": i.type,
            "description": i.description,
            "startedAt": _iso(i.started_at),
            "acknowledgedBy": i.acknowledged_by,
            "summary": i.summary,
            "rootCause": i.root_cause,
            "url": i.url,
        },
        "details": dict(n.details),
    }


def report_payload(r: ReportMessage) -> dict[str, Any]:
    """The JSON document POSTed for a policy's report: ``event`` is ``report``, ``message`` the Markdown,
    ``report`` the report as ``kubectl incident report -o json`` prints it."""
    return {
        "version": PAYLOAD_VERSION,
        "event": "report",
        "key": r.key,
        "at": r.at.isoformat(),
        "channel": r.channel,
        "policy": r.policy,
        "period": r.period,
        "subject": r.subject,
        "message": r.text,
        "report": dict(r.data),
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Incidentops-Signature`` value: ``sha256=<hex>`` of ``f"{timestamp}." + body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether a received webhook is authentic and fresh.

    ``body`` is the raw request body, ``timestamp`` and ``signature`` the
    header values. ``tolerance`` (seconds, None = no check) bounds the clock
    difference, so a captured request cannot be replayed later.
    """
    if not timestamp or not signature or not signature.startswith("sha256="):
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    """POSTs every notification as signed JSON to one URL."""

    kind: Final = "webhook"

    def __init__(
        self,
        *,
        url: str,
        session: aiohttp.ClientSession,
        name: str = "webhook",
        hmac_secret: str | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        log: Logger | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._secret = hmac_secret
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._log = log
        # The URL may come from a Secret (a token in its path or query): never shown, whatever its origin.
        self._redactor = Redactor([*url_secrets(url), hmac_secret])
        self.destination = destination_id(self.kind, url)
        self.rate_limit = RATE_LIMIT

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r}, signed={self._secret is not None})"

    async def send(self, n: Notification) -> Outcome:
        message = render(n.event, n)
        return await self._post(encode(webhook_payload(n, message)), n.key, f"{n.event} {n.key}")

    async def send_report(self, r: ReportMessage) -> Outcome:
        return await self._post(encode(report_payload(r)), r.key, f"report {r.period} {r.key}")

    async def _post(self, body: bytes, key: str, what: str) -> Outcome:
        def headers() -> dict[str, str]:
            hdrs = {"Content-Type": "application/json", "Idempotency-Key": key}
            if self._secret is not None:
                timestamp = str(int(self._clock()))
                hdrs[TIMESTAMP_HEADER] = timestamp
                hdrs[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            return hdrs

        return await post_with_retry(
            self._session,
            self._url,
            body=body,
            headers=headers,
            policy=self._retry,
            what=f"webhook channel {self.name!r}: {what}",
            redactor=self._redactor,
            log=self._log,
        )
