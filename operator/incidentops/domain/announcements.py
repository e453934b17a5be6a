"""Notifications other than a level's page: ``sla-breached``, ``update-due``, ``status-update``,
``acknowledged`` and ``resolved``.

Where it sits: ``plan`` calls these after :func:`incidentops.domain.escalation.escalate`,
with the keys already done (``status.escalation.notified``) plus the pages due
in the same plan, so a channel paged now is told the rest in the same breath.

Who is told what:

- ``sla-breached``: the policy's ``notifyOnBreach``; by default the channels
  the incident's levels have notified in the episode (before any has, those of
  the first level that applies to its severity). Once per (episode, kind),
  unless the clock had already stopped when the breach was noticed (a late
  acknowledgement learned of afterwards is recorded, not announced).
- ``update-due``: the responders (channels that ``until: acknowledged`` levels
  reached in this episode) and the policy's ``communications`` channels, never
  stakeholder levels; once per missed update deadline (the latest one only).
- ``status-update``: every channel reached, stakeholders included, once per
  ``spec.statusUpdate.at``.
- ``acknowledged``: the channels reached by paging levels, and stakeholder
  channels reached before the acknowledgement; once per episode. Containment
  counts as acknowledgement.
- ``resolved``: every channel told anything in the episode; once per episode.

Order: a resolution makes every announcement of an earlier state moot. Once
the episode is resolved only ``resolved`` is due, so no "acknowledged", no
reminder and no breach notice ever follows it.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Sequence

from incidentops.api import reasons
from incidentops.api.common import Severity
from incidentops.api.incident import ActionPhase, ActionRecord, SLABreach
from incidentops.api.policy import EscalationPolicy
from incidentops.domain.common import stamp, utc
from incidentops.domain.decisions import ACKNOWLEDGED, ACTION, RESOLVED, SLA_BREACHED, STATUS_UPDATE, UPDATE_DUE, Due
from incidentops.domain.escalation import Reach, notification_key, order_channels, steps_for
from incidentops.domain.lifecycle import EpisodeFacts
from incidentops.domain.sla import Clock, breach_stop

__all__ = [
    "action_notices",
    "announcements",
    "breach_channels",
    "breach_channels_told",
    "breach_key",
    "breach_notices",
    "communications_channels",
    "live_announcement_keys",
]


def breach_key(uid: str, episode: int, breach: SLABreach, channel: str) -> str:
    """The key of the notice of ``breach`` to ``channel``: one per (episode, kind), whatever its deadline."""
    return notification_key(uid, episode, 0, None, channel, f"{SLA_BREACHED}:{breach.kind.value}")


def breach_channels(policy: EscalationPolicy, severity: Severity, reached: Sequence[Reach]) -> list[str]:
    """Who is told about a breach: ``notifyOnBreach``, else the channels reached in the episode, else the
    first level that applies to the severity."""
    if policy.spec.notify_on_breach is not None:
        return order_channels(policy, policy.spec.notify_on_breach)
    if reached:
        return [r.channel for r in reached]
    steps = steps_for(policy, severity)
    first = min(steps, key=lambda s: (s.delay, s.index)) if steps else None
    return order_channels(policy, first.channels) if first is not None else []


def communications_channels(policy: EscalationPolicy) -> list[str]:
    """The channels of the communications role (policy ``communications``)."""
    comms = policy.spec.communications
    return order_channels(policy, comms.notify) if comms is not None else []


def _event_key(uid: str, episode: int, channel: str, event: str, moment: datetime.datetime | None = None) -> str:
    return notification_key(uid, episode, 0, None, channel, event if moment is None else f"{event}@{stamp(moment)}")


def _due(key: str, channel: str, event: str, at: datetime.datetime | None, detail: str | None = None) -> Due:
    return Due(key, channel, event, None, None, 0, scheduled_at=at, detail=detail)


def breach_notices(
    policy: EscalationPolicy,
    uid: str,
    facts: EpisodeFacts,
    breaches: Sequence[SLABreach],
    channels: Sequence[str],
    done: Collection[str],
) -> tuple[Due, ...]:
    """``sla-breached`` notices due for the episode's breaches, to ``channels`` (:func:`breach_channels`);
    none once the episode is resolved."""
    if facts.resolved is not None:
        return ()
    notices: list[Due] = []
    for breach in breaches:
        stopped = breach_stop(breach.kind, facts)
        if stopped is not None and stopped <= utc(breach.at):
            continue  # the clock had stopped before the breach was noticed: on record, not worth a page
        for channel in channels:
            key = breach_key(uid, facts.episode, breach, channel)
            if key not in done:
                notices.append(_due(key, channel, SLA_BREACHED, utc(breach.deadline), breach.kind.value))
    return tuple(notices)


def _worth_telling(record: ActionRecord) -> bool:
    """A failed action, or one the rate limit stopped: the responders must know it did not happen."""
    if record.dry_run:
        return False
    return record.phase is ActionPhase.FAILED or (
        record.phase is ActionPhase.SKIPPED and record.reason == reasons.RATE_LIMITED
    )


def _action_key(uid: str, episode: int, channel: str, record: ActionRecord) -> str:
    return notification_key(uid, episode, 0, None, channel, f"{ACTION}:{record.name}:{record.phase.value}")


def action_notices(
    uid: str, facts: EpisodeFacts, records: Sequence[ActionRecord], channels: Sequence[str], done: Collection[str]
) -> tuple[Due, ...]:
    """``action`` notices: an action that failed or was rate-limited, once per action and outcome, to
    ``channels`` (those told of breaches); none once the episode is resolved."""
    if facts.resolved is not None:
        return ()
    out: list[Due] = []
    for record in records:
        if not _worth_telling(record):
            continue
        for channel in channels:
            key = _action_key(uid, facts.episode, channel, record)
            if key not in done:
                out.append(_due(key, channel, ACTION, record.finished_at, record.name))
    return tuple(out)


def breach_channels_told(
    policy: EscalationPolicy, uid: str, episode: int, breaches: Sequence[SLABreach], done: Collection[str]
) -> list[str]:
    """The channels told of a breach of this episode (keys in ``done``)."""
    return [
        channel
        for channel in (c.name for c in policy.spec.channels)
        if any(breach_key(uid, episode, breach, channel) in done for breach in breaches)
    ]


def announcements(
    policy: EscalationPolicy,
    uid: str,
    facts: EpisodeFacts,
    clock: Clock,
    latest_update_at: datetime.datetime | None,
    reached: Sequence[Reach],
    breach_told: Sequence[str],
    done: Collection[str],
) -> tuple[Due, ...]:
    """``update-due``, ``status-update``, ``acknowledged`` and ``resolved`` notices due now, in that order.

    ``breach_told`` are the channels told of a breach in this episode: they hear of the resolution too, and
    so do the communications channels once anyone was paged. Once resolved, only ``resolved`` is due.
    """
    episode = facts.episode
    level_channels = [r.channel for r in reached]
    out: list[Due] = []

    def add(channels: Sequence[str], event: str, moment: datetime.datetime, discriminate: bool) -> None:
        for channel in channels:
            key = _event_key(uid, episode, channel, event, moment if discriminate else None)
            if key not in done:
                out.append(_due(key, channel, event, moment))

    if facts.resolved is not None:
        comms = communications_channels(policy) if level_channels else []
        told = order_channels(policy, [*level_channels, *breach_told, *comms])
        add(told, RESOLVED, facts.resolved.at, discriminate=False)
        return tuple(out)
    if clock.missed_update is not None:
        responders = [r.channel for r in reached if r.paging]
        reminded = order_channels(policy, [*responders, *communications_channels(policy)])
        add(reminded, UPDATE_DUE, clock.missed_update, discriminate=True)
    if latest_update_at is not None:
        add(level_channels, STATUS_UPDATE, latest_update_at, discriminate=True)
    if facts.acknowledged is not None:
        acknowledged_at = facts.acknowledged.at
        told = [r.channel for r in reached if r.paging or r.at <= acknowledged_at]
        add(told, ACKNOWLEDGED, acknowledged_at, discriminate=False)
    return tuple(out)


def live_announcement_keys(
    policy: EscalationPolicy,
    uid: str,
    facts: EpisodeFacts,
    clock: Clock,
    latest_update_at: datetime.datetime | None,
    breaches: Sequence[SLABreach],
    actions: Sequence[ActionRecord] = (),
) -> set[str]:
    """Announcement keys that may still be due; every other one is stale (a past update deadline)."""
    keys: set[str] = set()
    for channel in (c.name for c in policy.spec.channels):
        keys.update(_action_key(uid, facts.episode, channel, record) for record in actions if _worth_telling(record))
        keys.add(_event_key(uid, facts.episode, channel, ACKNOWLEDGED))
        keys.add(_event_key(uid, facts.episode, channel, RESOLVED))
        if clock.missed_update is not None:
            keys.add(_event_key(uid, facts.episode, channel, UPDATE_DUE, clock.missed_update))
        if latest_update_at is not None:
            keys.add(_event_key(uid, facts.episode, channel, STATUS_UPDATE, latest_update_at))
        keys.update(breach_key(uid, facts.episode, breach, channel) for breach in breaches)
    return keys
