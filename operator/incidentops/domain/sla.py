"""The SLA clock: the deadlines of the current episode, breaches, the rolling update deadline, and the
regulatory clocks of a data exposure.

Where it sits: ``plan`` computes a :class:`Clock` from the response times of
the incident's effective severity (``policy.spec.sla_for``, else the defaults
table: P1 15m/4h/15m, P2 1h/24h/1h, P3 4h/72h/4h, P4 24h/168h/24h) and the
episode's facts; breaches go into ``status.sla.breaches`` (each deadline once);
``announcements`` turns them into ``sla-breached`` and ``update-due``
notifications. Everything is recomputed from (policy, status, now) on every
plan, so a severity change or a policy edit re-derives the deadlines.

- ``acknowledgeBy`` / ``resolveBy``: episode start + acknowledgeWithin / resolveWithin.
  The acknowledge clock stops at acknowledgement (containment counts as one),
  or at resolution without one; the resolve clock at resolution. With the
  severity's ``clock: business`` the acknowledge and update times count only
  the policy's business hours (``businesstime``).
- A breach is identified by (episode, kind): each kind is missed at most once
  per episode, so a severity or policy change after a deadline passed moves
  the deadline but never counts the same miss twice.
- ``nextUpdateBy``: the latest of the episode start and the episode's
  ``spec.statusUpdate.at``, plus updateEvery; once missed it moves on by
  updateEvery, and the latest missed one is reminded about (``update-due``).
  A missed update is a reminder, not a breach: it would flood ``breaches``.
- ``notifyUsersBy`` / ``notifyRegulatorBy``: for a security incident with
  ``impact.dataExposed``, 72 hours (GDPR "72 hours from discovery", PIPEDA)
  from when the incident started: the clock runs from discovery, so a reopen
  does not restart it. Reported, never breached: whether people were notified
  is not something the operator can observe.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import ConditionStatus, IncidentType
from incidentops.api.incident import BreachKind, IncidentSpec, SLABreach
from incidentops.api.policy import BusinessHours, EffectiveSLA
from incidentops.domain import businesstime
from incidentops.domain.common import utc
from incidentops.domain.lifecycle import ConditionValue, EpisodeFacts

__all__ = [
    "BREACHES_CAP",
    "REGULATORY_CLOCK",
    "Clock",
    "breach_condition",
    "breach_event_reason",
    "breach_stop",
    "clock_for",
    "describe_breach",
    "detect_breaches",
    "keep_breaches",
    "next_deadline",
    "status_update_at",
    "wake_times",
]

REGULATORY_CLOCK = datetime.timedelta(hours=72)
"""GDPR and PIPEDA: notify the regulator and the affected users within 72 hours of discovery."""

BREACHES_CAP = 32
"""``status.sla.breaches`` keeps the newest this many (the model's maximum)."""

_TRACKED = (BreachKind.ACKNOWLEDGE, BreachKind.RESOLVE)
_EVENT_REASONS = {
    BreachKind.ACKNOWLEDGE: reasons.ACKNOWLEDGE_DEADLINE_MISSED,
    BreachKind.RESOLVE: reasons.RESOLVE_DEADLINE_MISSED,
}


@dataclass(frozen=True)
class Clock:
    """The deadlines of the current episode."""

    acknowledge_by: datetime.datetime
    resolve_by: datetime.datetime
    next_update_by: datetime.datetime | None
    """The next update deadline after now; None once resolved."""
    missed_update: datetime.datetime | None
    """The latest update deadline already passed, if any (the one reminded about); None once resolved."""
    notify_users_by: datetime.datetime | None
    notify_regulator_by: datetime.datetime | None


def status_update_at(facts: EpisodeFacts) -> datetime.datetime | None:
    """When the latest status update of this episode was posted (clamped to its receipt); None without one."""
    return facts.status_update_at


def _update_deadlines(
    base: datetime.datetime, every: datetime.timedelta, now: datetime.datetime, hours: BusinessHours | None
) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """``(missed, next)``: the latest update deadline at or before ``now`` and the first after it.

    With ``hours`` the cadence counts business time only.
    """
    if every <= datetime.timedelta(0):
        return None, None  # "0s" means no cadence
    if hours is None:
        if now < base + every:
            return None, base + every
        missed = base + every * ((now - base) // every)
        return missed, missed + every
    first = businesstime.add(hours, base, every)
    if now < first:
        return None, first
    # The k-th deadline is when k x every of business time has passed: at or before now for k up to this.
    count = businesstime.elapsed(hours, base, now) // every
    return businesstime.add(hours, base, every * count), businesstime.add(hours, base, every * (count + 1))


def clock_for(
    sla: EffectiveSLA,
    facts: EpisodeFacts,
    spec: IncidentSpec,
    effective_type: IncidentType | None,
    discovered_at: datetime.datetime,
    now: datetime.datetime,
    hours: BusinessHours | None = None,
) -> Clock:
    """The deadlines of the episode as of ``now``; ``hours`` are the policy's business hours."""
    start = facts.started_at
    business = hours if sla.business_clock else None
    missed, upcoming = None, None
    if facts.resolved is None:
        latest_update = status_update_at(facts)
        base = max(start, latest_update) if latest_update is not None else start
        missed, upcoming = _update_deadlines(base, sla.update_every, utc(now), business)
    exposed = effective_type is IncidentType.SECURITY and spec.impact is not None and bool(spec.impact.data_exposed)
    regulatory = utc(discovered_at) + REGULATORY_CLOCK if exposed else None
    acknowledge_by = (
        businesstime.add(business, start, sla.acknowledge_within)
        if business is not None
        else start + sla.acknowledge_within
    )
    return Clock(
        acknowledge_by=acknowledge_by,
        resolve_by=start + sla.resolve_within,
        next_update_by=upcoming,
        missed_update=missed,
        notify_users_by=regulatory,
        notify_regulator_by=regulatory,
    )


def breach_stop(kind: BreachKind, facts: EpisodeFacts) -> datetime.datetime | None:
    """When the clock of ``kind`` stopped (None while it runs)."""
    if kind is BreachKind.ACKNOWLEDGE:
        return facts.acknowledge_clock_stopped_at
    return facts.resolved.at if facts.resolved is not None else None


def _deadline(kind: BreachKind, clock: Clock) -> datetime.datetime:
    return clock.acknowledge_by if kind is BreachKind.ACKNOWLEDGE else clock.resolve_by


def detect_breaches(
    clock: Clock, facts: EpisodeFacts, recorded: Sequence[SLABreach], now: datetime.datetime
) -> list[SLABreach]:
    """Breaches newly missed as of ``now``: each kind at most once per episode (``recorded`` is the
    episode's own list, cleared by a reopen).

    A deadline is missed when it has passed and its clock had not stopped by
    then; a late acknowledgement the operator learns of only afterwards still
    counts as a breach (it is a fact for the SLA report).
    """
    known = {b.kind for b in recorded}
    found: list[SLABreach] = []
    for kind in _TRACKED:
        deadline = _deadline(kind, clock)
        stopped = breach_stop(kind, facts)
        if deadline <= utc(now) and (stopped is None or stopped > deadline) and kind not in known:
            found.append(SLABreach(kind=kind, deadline=deadline, at=utc(now)))
    return found


def keep_breaches(breaches: Sequence[SLABreach]) -> list[SLABreach]:
    """The newest :data:`BREACHES_CAP` breaches."""
    return list(breaches[-BREACHES_CAP:])


def breach_event_reason(kind: BreachKind) -> str:
    """The Event reason of a breach of ``kind``."""
    return _EVENT_REASONS.get(kind, reasons.SLA_BREACHED)


def _when(moment: datetime.datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_breach(breach: SLABreach) -> str:
    """``acknowledge deadline 2025-01-01T10:15:00Z missed``."""
    return f"{breach.kind.value.lower()} deadline {_when(breach.deadline)} missed"


def breach_condition(breaches: Sequence[SLABreach]) -> ConditionValue:
    """SLABreached: True naming every missed deadline of the episode, else False."""
    tracked = [b for b in breaches if b.kind in _TRACKED]
    if not tracked:
        return ConditionValue(cond.SLA_BREACHED, ConditionStatus.FALSE, reasons.NOT_BREACHED, "every deadline met")
    return ConditionValue(
        cond.SLA_BREACHED, ConditionStatus.TRUE, reasons.SLA_BREACHED, "; ".join(describe_breach(b) for b in tracked)
    )


def wake_times(clock: Clock, facts: EpisodeFacts, now: datetime.datetime) -> list[datetime.datetime]:
    """The deadlines ahead that something happens at (a breach, an update reminder): when the clock needs
    the scheduler. None once resolved; the acknowledge deadline only until acknowledgement."""
    if facts.resolved is not None:
        return []
    ahead: list[datetime.datetime] = [clock.resolve_by]
    if facts.acknowledge_clock_stopped_at is None:
        ahead.append(clock.acknowledge_by)
    if clock.next_update_by is not None:
        ahead.append(clock.next_update_by)
    return [moment for moment in ahead if moment > utc(now)]


def next_deadline(clock: Clock, facts: EpisodeFacts, now: datetime.datetime) -> datetime.datetime | None:
    """The earliest deadline still open (the printer column): SLA, update and regulatory deadlines
    ahead; none once resolved."""
    if facts.resolved is not None:
        return None
    ahead = wake_times(clock, facts, now)
    ahead += [m for m in (clock.notify_users_by, clock.notify_regulator_by) if m is not None and m > utc(now)]
    return min(ahead, default=None)
