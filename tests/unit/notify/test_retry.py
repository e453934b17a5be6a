from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops.notify import retry as retry_module
from incidentops.notify.retry import Attempt, RetryPolicy, is_retryable_status, parse_retry_after, run_with_retry
from incidentops.notify.webhook import WebhookChannel

from .conftest import HttpPeer, RecordingSleep, Reply, closed_port_url, fast_retry, make_notification

HOOK = "/hook"


def channel(peer: HttpPeer, session: aiohttp.ClientSession, retry: RetryPolicy, path: str = HOOK) -> WebhookChannel:
    return WebhookChannel(url=peer.url(path), session=session, retry=retry, name="hook")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retries_408_429_and_5xx_then_succeeds(
    http_peer: HttpPeer, session: aiohttp.ClientSession, status: int
) -> None:
    http_peer.script(HOOK, Reply(status, "busy"), Reply(status, "busy"), Reply(200, "ok"))
    outcome = await channel(http_peer, session, fast_retry()).send(make_notification())
    assert outcome.delivered and outcome.outcome == "Delivered"
    assert outcome.attempts == 3 and outcome.status_code == 200
    assert "after 3 attempts" in outcome.reason
    keys = {r.headers["Idempotency-Key"] for r in http_peer.on(HOOK)}
    assert len(http_peer.on(HOOK)) == 3 and keys == {make_notification().key}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
async def test_never_retries_other_4xx(http_peer: HttpPeer, session: aiohttp.ClientSession, status: int) -> None:
    http_peer.script(HOOK, default=Reply(status, "no such hook"))
    outcome = await channel(http_peer, session, fast_retry()).send(make_notification())
    assert not outcome.delivered and outcome.outcome == "Failed"
    assert outcome.attempts == 1 and outcome.status_code == status
    assert outcome.reason == f"HTTP {status}: no such hook (not retried)"
    assert len(http_peer.on(HOOK)) == 1


async def test_gives_up_after_the_configured_attempts(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, default=Reply(503, "down"))
    outcome = await channel(http_peer, session, fast_retry(attempts=3)).send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 3, 503)
    assert outcome.reason == "HTTP 503: down (gave up after 3 attempts)"
    assert len(http_peer.on(HOOK)) == 3


async def test_backoff_is_exponential_and_capped(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, default=Reply(500))
    sleep = RecordingSleep()
    policy = RetryPolicy(attempts=6, initial_delay=1, multiplier=2, max_delay=5, jitter=0, sleep=sleep, budget=None)
    outcome = await channel(http_peer, session, policy).send(make_notification())
    assert outcome.attempts == 6
    assert sleep.delays == [1, 2, 4, 5, 5]


async def test_retry_after_is_honoured(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, Reply(429, headers={"Retry-After": "7"}), Reply(503, headers={"Retry-After": "2"}), Reply())
    sleep = RecordingSleep()
    policy = RetryPolicy(attempts=5, initial_delay=0.5, jitter=0.5, max_retry_after=60, sleep=sleep)
    outcome = await channel(http_peer, session, policy).send(make_notification())
    assert outcome.delivered and outcome.attempts == 3
    assert sleep.delays == [7.0, 2.0]  # exactly as asked: no jitter on a server's wish


async def test_retry_after_is_capped(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, Reply(429, headers={"Retry-After": "3600"}), Reply())
    sleep = RecordingSleep()
    policy = RetryPolicy(max_retry_after=30, sleep=sleep)
    assert (await channel(http_peer, session, policy).send(make_notification())).delivered
    assert sleep.delays == [30.0]


async def test_retry_budget_bounds_the_wait(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, default=Reply(429, headers={"Retry-After": "50"}))
    sleep = RecordingSleep()
    policy = RetryPolicy(attempts=10, max_retry_after=60, budget=120, sleep=sleep)
    outcome = await channel(http_peer, session, policy).send(make_notification())
    assert not outcome.delivered and outcome.attempts == 3
    assert sleep.delays == [50.0, 50.0]
    assert "retry budget spent" in outcome.reason


async def test_connection_errors_are_retried(session: aiohttp.ClientSession) -> None:
    hook = WebhookChannel(url=closed_port_url("/hook"), session=session, retry=fast_retry(attempts=2))
    outcome = await hook.send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 2, None)
    assert outcome.reason.startswith("connection failed (")
    assert "127.0.0.1" not in outcome.reason


async def test_timeouts_are_retried(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, Reply(hang=True), Reply())
    outcome = await channel(http_peer, session, fast_retry(timeout=0.2)).send(make_notification())
    assert outcome.delivered and outcome.attempts == 2


async def test_redirects_are_not_followed(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    http_peer.script(HOOK, default=Reply(302, "", headers={"Location": http_peer.url("/elsewhere")}))
    outcome = await channel(http_peer, session, fast_retry()).send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 1, 302)
    assert "redirects are not followed" in outcome.reason
    assert http_peer.on("/elsewhere") == []


async def test_run_with_retry_keeps_the_last_status() -> None:
    results = iter(
        [
            Attempt(ok=False, retryable=True, status_code=503, reason="HTTP 503"),
            Attempt(ok=False, retryable=False, status_code=400, reason="HTTP 400"),
        ]
    )

    async def attempt() -> Attempt:
        return next(results)

    outcome = await run_with_retry(attempt, fast_retry(), what="test")
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 2, 400)
    assert outcome.reason == "HTTP 400 (not retried; 2 attempts)"


async def test_one_attempt_says_whether_another_is_worth_it(
    http_peer: HttpPeer, session: aiohttp.ClientSession
) -> None:
    """How the operator's delivery queue uses a channel: one attempt a send, the queue retries."""
    http_peer.script(HOOK, Reply(429, "slow down", headers={"Retry-After": "7"}), Reply(400, "bad"), Reply())
    hook = channel(http_peer, session, fast_retry(attempts=1))
    busy = await hook.send(make_notification())
    assert (busy.delivered, busy.retryable, busy.retry_after, busy.attempts) == (False, True, 7.0, 1)
    assert busy.reason == "HTTP 429: slow down", "the attempt's own reason: the queue says what comes next"
    refused = await hook.send(make_notification())
    assert (refused.delivered, refused.retryable, refused.retry_after) == (False, False, None)
    assert (await hook.send(make_notification())).delivered


def test_a_name_that_does_not_resolve_says_so() -> None:
    # The resolver's codes are negative: os.strerror() has no text for them.
    text = retry_module._os_error_text(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert text == "host name not resolved: Name or service not known"


def test_retryable_statuses() -> None:
    assert [s for s in range(100, 600) if is_retryable_status(s)] == [408, 429, *range(500, 600)]


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 31, 14, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"jitter": 1.0}, {"initial_delay": -1}, {"multiplier": 0.5}])
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    retry=st.integers(min_value=1, max_value=60),
    retry_after=st.none() | st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    jitter=st.floats(min_value=0, max_value=0.99),
)
def test_delay_is_never_negative_nor_beyond_its_caps(retry: int, retry_after: float | None, jitter: float) -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=30, max_retry_after=60, jitter=jitter)
    delay = policy.delay(retry, retry_after)
    assert delay >= 0
    assert delay <= (60 if retry_after is not None else 30 * (1 + jitter))
