"""The health of a policy's channels, and the policy's Ready condition with it.

Where it sits: the delivery queue reports every attempt to the policy monitor
(``incidentops.handlers.policies``), which counts each channel's failures in a
row in memory and asks :func:`observe` whether the channel's health changed.
On a change (and on its timer) it writes the policy's status: ``channels``
from :func:`merge`, and Ready from :func:`readiness`, which puts the channels'
health beside the Secret facts of :func:`incidentops.domain.readiness.policy_readiness`.

A channel is Failing once it refused a notification for good (a 4xx: it will
refuse the next one too) or once :data:`FAILING_AFTER` attempts in a row
failed (one 503 is weather, three are a channel that is down); it is Healthy
again at its first delivery. Only these changes are written, never each
delivery, so a busy channel costs its policy no writes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Final

from incidentops.api import reasons
from incidentops.api.policy import ChannelHealth, ChannelState, EscalationPolicy
from incidentops.domain.common import clip, utc

__all__ = ["FAILING_AFTER", "merge", "observe", "readiness"]

FAILING_AFTER: Final = 3
"""Failed attempts in a row (retryable ones) that make a channel Failing."""


def observe(
    current: ChannelHealth | None,
    name: str,
    *,
    delivered: bool,
    permanent: bool,
    failures_in_a_row: int,
    message: str,
    now: datetime.datetime,
) -> ChannelHealth | None:
    """The channel's health after an attempt: ``current`` itself when it did not change (None: unknown)."""
    if delivered:
        if current is not None and current.state is ChannelState.HEALTHY:
            return current
        return ChannelHealth(name=name, state=ChannelState.HEALTHY, since=utc(now))
    if not permanent and failures_in_a_row < FAILING_AFTER:
        return current
    if current is not None and current.state is ChannelState.FAILING:
        return current
    return ChannelHealth(name=name, state=ChannelState.FAILING, since=utc(now), message=clip(message))


def merge(
    policy: EscalationPolicy, recorded: Sequence[ChannelHealth], observed: Mapping[str, ChannelHealth]
) -> list[ChannelHealth]:
    """``status.channels`` to write: what was observed, else what was recorded; the policy's channels only,
    in its order (a channel removed from the policy is forgotten)."""
    before = {c.name: c for c in recorded}
    out = []
    for channel in policy.spec.channels:
        health = observed.get(channel.name) or before.get(channel.name)
        if health is not None:
            out.append(health)
    return out


def readiness(secrets: tuple[bool, str, str], channels: Sequence[ChannelHealth]) -> tuple[bool, str, str]:
    """``(ready, reason, message)`` of the policy from its Secrets' verdict and its channels' health.

    A Secret problem wins (it is the more specific reason, and fixing it is
    the first thing to do); otherwise every Failing channel is named with its
    error, under ``NotificationsFailing``.
    """
    ready, _, _ = secrets
    failing = [c for c in channels if c.state is ChannelState.FAILING]
    if not ready or not failing:
        return secrets
    lines = [
        f"channel {c.name} failing since {utc(c.since).strftime('%Y-%m-%dT%H:%M:%SZ')}: {c.message or 'unknown error'}"
        for c in failing
    ]
    return False, reasons.NOTIFICATIONS_FAILING, clip("; ".join(lines))
