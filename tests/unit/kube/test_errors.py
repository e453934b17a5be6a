"""What kind each failure is (Kopf's three kinds), and how it is told: a pure function of the exception."""

from __future__ import annotations

import aiohttp
import pytest

from incidentops import kube
from tests.unit.kubefake import api_error

TEMPORARY, PERMANENT, OTHER = kube.ErrorKind.TEMPORARY, kube.ErrorKind.PERMANENT, kube.ErrorKind.OTHER


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TEMPORARY),
        (502, TEMPORARY),
        (503, TEMPORARY),
        (504, TEMPORARY),
        (429, TEMPORARY),  # too many requests: later
        (408, TEMPORARY),
        (409, TEMPORARY),  # a conflict: read again
        (401, TEMPORARY),  # the operator's token expired or rotated: nothing the object can show
        (400, PERMANENT),
        (403, PERMANENT),
        (404, PERMANENT),
        (405, PERMANENT),
        (413, PERMANENT),
        (422, PERMANENT),
        (0, OTHER),  # kubernetes_asyncio could not build the request: our bug
    ],
)
def test_api_answers(status: int, kind: kube.ErrorKind) -> None:
    assert kube.error_kind(api_error(status)) is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), TEMPORARY),
        (ConnectionRefusedError(111, "Connection refused"), TEMPORARY),
        (ConnectionResetError(), TEMPORARY),
        (aiohttp.ServerDisconnectedError(), TEMPORARY),
        (aiohttp.ClientPayloadError("cut short"), TEMPORARY),
        (kube.StatusConflictError("kept conflicting"), TEMPORARY),
        (KeyError("spec"), OTHER),
        (ValueError("bad"), OTHER),
        (FileNotFoundError("token"), OTHER),  # an OSError, but not a connection's
        (RuntimeError("bug"), OTHER),
    ],
)
def test_failures_below_http_and_bugs(exc: BaseException, kind: kube.ErrorKind) -> None:
    assert kube.error_kind(exc) is kind


def test_retry_after_from_the_header_or_the_status_details() -> None:
    assert kube.retry_after(api_error(429, retry_after=7)) == 7
    details = kube.ApiError(status=429, reason="Too Many Requests")
    details.body = '{"kind": "Status", "details": {"retryAfterSeconds": 3}}'
    assert kube.retry_after(details) == 3
    assert kube.retry_after(api_error(503)) is None
    assert kube.retry_after(TimeoutError()) is None
    garbled = api_error(429)
    garbled.headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert kube.retry_after(garbled) is None


def test_describe_says_the_servers_words_in_one_line() -> None:
    forbidden = api_error(403, "Forbidden", message='secrets "pager" is forbidden: User "x" cannot get resource')
    assert kube.describe(forbidden) == '403 Forbidden: secrets "pager" is forbidden: User "x" cannot get resource'
    assert kube.describe(api_error(503, "Service Unavailable")) == "503 Service Unavailable"
    assert kube.describe(TimeoutError()) == "no answer in time (TimeoutError)"
    assert kube.describe(ConnectionResetError("reset by peer")) == "ConnectionResetError: reset by peer"
