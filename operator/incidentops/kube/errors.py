"""What a failure is: temporary, permanent or other (Kopf's three kinds), and how to say it.

Where it sits: in ``incidentops.kube``, the one layer that talks to the API
server, because it is the one that knows what the server's answers mean. The
scheduler asks :func:`error_kind` what to do after a failed look at an
incident; the leader elector asks it whether a failed renewal is the server's
doing (try again) or a bug (crash). Everything here is a function of the
exception alone.

- temporary: the server is busy, down, slow or unreachable, or the object
  kept changing under us. The same request may succeed later: retry with
  backoff (and at least the server's ``Retry-After``).
- permanent: the server refused the request itself (403, 422, 400 ...).
  Retrying it unchanged will not help; show it on the object, retry slowly,
  and at once when the object changes.
- other: anything else is a bug or something unforeseen: retry with backoff,
  and show the traceback once.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

ApiError = ApiException
"""What the API server's non-2xx answers raise (``.status``, ``.reason``, ``.headers``, ``.body``)."""


class StatusConflictError(RuntimeError):
    """The object kept changing under us (``write_status`` gave up); a temporary error, retried later."""


class ErrorKind(enum.StrEnum):
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    OTHER = "other"


# Answers that mean "not now" rather than "not this": 401 too, because what it
# says is that the operator's token expired or rotated, which is nothing the
# object could show or fix; the token is read again and the request will pass.
_TEMPORARY_CLIENT_STATUS = frozenset({401, 408, 409, 429})
# Failures below HTTP: no answer in time, no connection, a connection cut mid-answer.
_TEMPORARY_EXCEPTIONS = (
    TimeoutError,
    ConnectionError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    StatusConflictError,
)


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of ``exc``: what a caller should do about it (see the module's docstring)."""
    if isinstance(exc, ApiException):
        status = exc.status if isinstance(exc.status, int) else 0
        if status >= 500 or status in _TEMPORARY_CLIENT_STATUS:
            return ErrorKind.TEMPORARY
        if 400 <= status < 500:
            return ErrorKind.PERMANENT
        return ErrorKind.OTHER  # status 0: kubernetes_asyncio could not even build the request
    if isinstance(exc, _TEMPORARY_EXCEPTIONS):
        return ErrorKind.TEMPORARY
    return ErrorKind.OTHER


def is_status(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiException) and exc.status in codes


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``, else the Status's ``retryAfterSeconds``)."""
    if not isinstance(exc, ApiException):
        return None
    headers: Any = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        value = (api_status(exc).get("details") or {}).get("retryAfterSeconds")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: the API server never sends one
    return seconds if seconds is not None and seconds >= 0 else None


def api_status(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` object the API server sent with an error, or ``{}``."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def server_message(exc: ApiException) -> str:
    """The server's own words for a refusal (its Status message), else its code and reason."""
    message = api_status(exc).get("message")
    if isinstance(message, str) and message:
        return message
    return f"{exc.status} {exc.reason or ''}".strip()


def describe(exc: BaseException) -> str:
    """One line for logs and conditions: ``403 Forbidden: <the server's message>``, or the exception."""
    if isinstance(exc, ApiException):
        head = f"{exc.status} {exc.reason or ''}".strip()
        message = server_message(exc)
        return head if message == head else f"{head}: {message}"
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "no answer in time (TimeoutError)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
