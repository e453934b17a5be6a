"""A channel's health from its attempts, and the policy's Ready condition with it."""

from __future__ import annotations

from incidentops.api import reasons
from incidentops.api.policy import ChannelHealth, ChannelState
from incidentops.domain import health

from .builders import at, level, policy

SECRETS_OK = (True, reasons.CHANNELS_READY, "all 2 channels can be used")


def _after(current: ChannelHealth | None, *, delivered: bool = False, permanent: bool = False, failures: int = 1):  # type: ignore[no-untyped-def]
    return health.observe(
        current,
        "chat",
        delivered=delivered,
        permanent=permanent,
        failures_in_a_row=failures,
        message="HTTP 503: down",
        now=at(1),
    )


def test_one_failure_is_weather_three_in_a_row_are_a_channel_down() -> None:
    assert _after(None, failures=1) is None
    assert _after(None, failures=2) is None
    failing = _after(None, failures=3)
    assert failing is not None and failing.state is ChannelState.FAILING and failing.message == "HTTP 503: down"
    assert _after(failing, failures=4) is failing, "no change, nothing to write"


def test_a_refusal_for_good_is_failing_at_once_and_a_delivery_heals() -> None:
    failing = _after(None, permanent=True)
    assert failing is not None and failing.state is ChannelState.FAILING
    healed = _after(failing, delivered=True, failures=0)
    assert healed is not None and healed.state is ChannelState.HEALTHY and healed.message is None
    assert _after(healed, delivered=True, failures=0) is healed


def test_merge_keeps_the_policys_channels_in_order() -> None:
    p = policy(levels=[level("on-call", notify=["chat", "pager"])])
    old = [ChannelHealth(name="gone", state=ChannelState.FAILING, since=at(0)), _failing("pager")]
    merged = health.merge(p, old, {"chat": ChannelHealth(name="chat", state=ChannelState.HEALTHY, since=at(1))})
    assert [c.name for c in merged] == ["chat", "pager"]


def _failing(name: str) -> ChannelHealth:
    return ChannelHealth(name=name, state=ChannelState.FAILING, since=at(0), message=f"{name}: connection refused")


def test_ready_names_every_failing_channel() -> None:
    healthy = ChannelHealth(name="mail", state=ChannelState.HEALTHY, since=at(0))
    ready, reason, message = health.readiness(SECRETS_OK, [_failing("chat"), healthy, _failing("pager")])
    assert (ready, reason) == (False, reasons.NOTIFICATIONS_FAILING)
    assert message == (
        "channel chat failing since 2025-01-01T10:00:00Z: chat: connection refused; "
        "channel pager failing since 2025-01-01T10:00:00Z: pager: connection refused"
    )
    assert health.readiness(SECRETS_OK, [healthy]) == SECRETS_OK


def test_a_secret_problem_comes_first() -> None:
    missing = (False, reasons.SECRET_NOT_FOUND, "channel chat: Secret hook (key url) not found")
    assert health.readiness(missing, [_failing("chat")]) == missing
