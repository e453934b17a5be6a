"""The incident's lifecycle: episodes, the conditions people set through the spec, the phase, the
response-time metrics, closing, and the post-mortem hook.

Where it sits: ``plan`` asks :func:`episode_facts` what counts in the current
episode (acknowledgement, containment, resolution), derives the conditions and
the phase from those facts, and closes or reopens the incident. The alert
intake may call :func:`start_episode` itself when a resolved incident's group
fires again; ``plan`` also detects that from ``status.alerts``
(:func:`should_reopen`), so either path gives the same episode.

Rules (DESIGN.md "Incident"):

- Triggered -> Acknowledged -> Contained -> Resolved -> Closed; the phase is a
  summary of the conditions, Closed is final.
- An acknowledgement, containment or resolution counts for the current episode
  only when its ``at`` is not before ``episodeStartedAt``. In episode 1 every
  ``at`` counts: there is no earlier episode it could belong to, and an
  incident declared after the fact (or a laptop clock a little behind the API
  server's) must not page people about something already handled.
- A resolution by the alerts lives in status only: condition Resolved with
  reason AlertsResolved, set by the intake or derived here from the latest
  alert snapshot (every alert resolved, policy ``alerts.autoResolve``).
- Closed once resolved, the reopen window has passed, and no post-mortem is
  outstanding (:func:`postmortem_outstanding`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import Condition, ConditionStatus, Severity, parse_duration
from incidentops.api.incident import (
    EscalationStatus,
    Incident,
    IncidentMetrics,
    IncidentSpec,
    IncidentStatus,
    Phase,
    PostmortemState,
    SLAStatus,
)
from incidentops.api.policy import DEFAULT_SEVERITY, AlertsPolicy, EscalationPolicy, default_sla
from incidentops.domain import timeline
from incidentops.domain.common import seconds_between, utc

__all__ = [
    "ConditionValue",
    "EpisodeFacts",
    "Mark",
    "closes_at",
    "counts_in_episode",
    "ensure_conditions",
    "episode_facts",
    "is_closed",
    "lifecycle_conditions",
    "metrics_for",
    "phase_of",
    "postmortem_outstanding",
    "reopen_window",
    "should_reopen",
    "start_episode",
]


@dataclass(frozen=True)
class Mark:
    """Who did something, and when."""

    by: str
    at: datetime.datetime


@dataclass(frozen=True)
class EpisodeFacts:
    """What counts in the current episode."""

    episode: int
    started_at: datetime.datetime
    acknowledged: Mark | None
    contained: Mark | None
    resolved: Mark | None
    resolved_reason: str | None
    """ResolvedBy (spec.resolution) or AlertsResolved (status only)."""
    acknowledgement_outdated: bool
    """spec.acknowledgement is set but belongs to an earlier episode."""

    @property
    def acknowledge_clock_stopped_at(self) -> datetime.datetime | None:
        """When acknowledgement stopped mattering: acknowledged, or resolved without acknowledgement."""
        moments = [mark.at for mark in (self.acknowledged, self.resolved) if mark is not None]
        return min(moments) if moments else None

    @property
    def paging_stopped(self) -> bool:
        """Whether ``until: acknowledged`` levels (and repeat rounds) have stopped."""
        return self.acknowledged is not None or self.resolved is not None


@dataclass(frozen=True)
class ConditionValue:
    """A condition as the domain decides it; ``plan`` applies it with ``set_condition``."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def counts_in_episode(at: datetime.datetime, episode: int, episode_started_at: datetime.datetime) -> bool:
    """Whether something done ``at`` counts for the current episode (see the module doc)."""
    return episode <= 1 or utc(at) >= utc(episode_started_at)


def reopen_window(policy: EscalationPolicy | None) -> datetime.timedelta:
    """How long after resolution firing alerts reopen the incident (policy ``alerts.reopenWindow``, 1h)."""
    alerts = policy.spec.alerts if policy is not None else AlertsPolicy()
    return parse_duration(alerts.reopen_window)


def _alerts_resolution(status: IncidentStatus, episode_started_at: datetime.datetime) -> Mark | None:
    """The resolution the latest alert snapshot implies: every alert resolved, received in this episode."""
    alerts = status.alerts
    if alerts is None or alerts.firing > 0 or alerts.resolved == 0 or alerts.last_received_at is None:
        return None
    if alerts.truncated > 0:
        # Alertmanager left alerts out (max_alerts): those not listed may still fire.
        return None
    if utc(alerts.last_received_at) < utc(episode_started_at):
        return None  # a snapshot from before a reopen says nothing about this episode
    return Mark(by=timeline.ACTOR_ALERTMANAGER, at=utc(alerts.last_received_at))


def episode_facts(spec: IncidentSpec, status: IncidentStatus, auto_resolve: bool = True) -> EpisodeFacts:
    """What counts in ``status``'s current episode (``status.episode`` and ``episodeStartedAt`` must be set)."""
    assert status.episode is not None and status.episode_started_at is not None
    episode, start = status.episode, utc(status.episode_started_at)

    def current(mark: Mark | None) -> Mark | None:
        return mark if mark is not None and counts_in_episode(mark.at, episode, start) else None

    ack = spec.acknowledgement
    acknowledged = current(Mark(ack.by, utc(ack.at)) if ack is not None else None)
    contained = current(Mark(spec.containment.by, utc(spec.containment.at)) if spec.containment else None)
    resolution = spec.resolution
    resolved = current(Mark(resolution.by, utc(resolution.at)) if resolution is not None else None)
    resolved_reason = reasons.RESOLVED_BY if resolved is not None else None
    if resolved is None and auto_resolve:
        resolved = _alerts_resolution(status, start)
        resolved_reason = reasons.ALERTS_RESOLVED if resolved is not None else None
    if resolved is None:
        # The intake recorded an alert resolution in status: keep it for this episode.
        kept = cond.get_condition(status.conditions, cond.RESOLVED)
        if kept is not None and kept.status is ConditionStatus.TRUE and kept.reason == reasons.ALERTS_RESOLVED:
            resolved = Mark(by=timeline.ACTOR_ALERTMANAGER, at=utc(kept.last_transition_time))
            resolved_reason = reasons.ALERTS_RESOLVED
    return EpisodeFacts(
        episode=episode,
        started_at=start,
        acknowledged=acknowledged,
        contained=contained,
        resolved=resolved,
        resolved_reason=resolved_reason,
        acknowledgement_outdated=ack is not None and acknowledged is None,
    )


def should_reopen(status: IncidentStatus, facts: EpisodeFacts, window: datetime.timedelta) -> bool:
    """Whether the alerts fire again within the reopen window after the episode's resolution.

    The snapshot must be newer than the resolution and have arrived within the
    window; a Closed incident never reopens (a new group makes a new incident).
    """
    alerts = status.alerts
    if status.phase is Phase.CLOSED or facts.resolved is None or alerts is None:
        return False
    if alerts.firing == 0 or alerts.last_received_at is None:
        return False
    received = utc(alerts.last_received_at)
    resolved_at = facts.resolved.at
    return resolved_at < received <= resolved_at + window


def start_episode(status: IncidentStatus, now: datetime.datetime) -> IncidentStatus:
    """``status`` with a new episode started at ``now``: the incident reopens.

    Episode + 1, reopenCount + 1, back to Triggered, the escalation cursor
    reset (round 0, before the first level, nothing notified: every key of the
    new episode differs from the old ones anyway), the episode's SLA breaches
    cleared, Acknowledged/Contained/Resolved back to False. Response-time
    metrics and the bounded history (notifications, timeline) are kept.
    """
    now = utc(now)
    episode = (status.episode or 1) + 1
    generation = status.observed_generation
    conditions = list(status.conditions)  # set_condition replaces items, never changes one
    resets = (
        (cond.ACKNOWLEDGED, reasons.AWAITING_ACKNOWLEDGEMENT, f"episode {episode}: awaiting acknowledgement"),
        (cond.CONTAINED, reasons.NOT_CONTAINED, f"episode {episode}: not contained"),
        (cond.RESOLVED, reasons.UNRESOLVED, f"episode {episode}: the alerts fire again"),
        (cond.SLA_BREACHED, reasons.NOT_BREACHED, f"episode {episode}: every deadline met so far"),
        (cond.ESCALATION_EXHAUSTED, reasons.ESCALATION_IN_PROGRESS, f"episode {episode}: escalation restarted"),
    )
    for type_, reason, message in resets:
        cond.set_condition(conditions, type_, False, reason, message, now, generation)
    reopened = timeline.entry(
        now,
        reasons.REOPENED,
        f"reopened: the alerts fire again within the reopen window (episode {episode})",
        timeline.ACTOR_ALERTMANAGER,
    )
    return status.model_copy(
        update={
            "episode": episode,
            "episode_started_at": now,
            "reopen_count": status.reopen_count + 1,
            "phase": Phase.TRIGGERED,
            "conditions": conditions,
            "escalation": EscalationStatus(),
            "sla": SLAStatus(),
            "timeline": timeline.append(status.timeline, [reopened]),
        }
    )


def postmortem_outstanding(
    incident: Incident, policy: EscalationPolicy | None, severity: Severity | None = None
) -> bool:
    """Whether a required post-mortem keeps the incident from closing.

    The hook for the post-mortem work to come. Today: True when the SLA of the
    incident's severity (the policy's, else the defaults: P1/P2 required) says
    ``required`` and ``status.postmortem.state`` is not Done. ``severity``
    overrides the incident's effective severity (``plan`` passes the new one).
    """
    severity = severity or incident.status.severity or incident.spec.severity or DEFAULT_SEVERITY
    sla = policy.spec.sla_for(severity) if policy is not None else default_sla(severity)
    if not sla.postmortem_required:
        return False
    postmortem = incident.status.postmortem
    return postmortem is None or postmortem.state is not PostmortemState.DONE


def closes_at(facts: EpisodeFacts, window: datetime.timedelta) -> datetime.datetime | None:
    """When the reopen window after the resolution ends (None while unresolved)."""
    return facts.resolved.at + window if facts.resolved is not None else None


def is_closed(
    previous: Phase | None,
    facts: EpisodeFacts,
    window: datetime.timedelta,
    outstanding_postmortem: bool,
    now: datetime.datetime,
) -> bool:
    """Closed is final; otherwise closed once resolved, past the reopen window, no post-mortem outstanding."""
    if previous is Phase.CLOSED:
        return True
    end = closes_at(facts, window)
    return end is not None and not outstanding_postmortem and utc(now) >= end


def ensure_conditions(conditions: list[Condition], now: datetime.datetime, generation: int | None) -> list[Condition]:
    """``conditions`` with every Incident condition type present (the missing ones Unknown, Initializing)."""
    present = {c.type for c in conditions}
    missing = [t for t in cond.INCIDENT_CONDITION_TYPES if t not in present]
    return [*conditions, *cond.initial_conditions(missing, now, generation)]


def lifecycle_conditions(facts: EpisodeFacts, status: IncidentStatus) -> list[ConditionValue]:
    """Acknowledged, Contained, Resolved and AlertsResolved for the current episode."""
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    out: list[ConditionValue] = []

    if facts.acknowledged is not None:
        out.append(ConditionValue(cond.ACKNOWLEDGED, true, reasons.ACKNOWLEDGED_BY, f"by {facts.acknowledged.by}"))
    elif facts.acknowledgement_outdated:
        out.append(
            ConditionValue(
                cond.ACKNOWLEDGED,
                false,
                reasons.ACKNOWLEDGEMENT_OUTDATED,
                f"the acknowledgement predates episode {facts.episode}: acknowledge again",
            )
        )
    else:
        out.append(ConditionValue(cond.ACKNOWLEDGED, false, reasons.AWAITING_ACKNOWLEDGEMENT, "nobody acknowledged"))

    if facts.contained is not None:
        out.append(ConditionValue(cond.CONTAINED, true, reasons.CONTAINED_BY, f"by {facts.contained.by}"))
    else:
        out.append(ConditionValue(cond.CONTAINED, false, reasons.NOT_CONTAINED, "not contained"))

    if facts.resolved is not None and facts.resolved_reason == reasons.RESOLVED_BY:
        out.append(ConditionValue(cond.RESOLVED, true, reasons.RESOLVED_BY, f"by {facts.resolved.by}"))
    elif facts.resolved is not None:
        out.append(ConditionValue(cond.RESOLVED, true, reasons.ALERTS_RESOLVED, "every alert of the group resolved"))
    else:
        out.append(ConditionValue(cond.RESOLVED, false, reasons.UNRESOLVED, "open"))

    alerts = status.alerts
    if alerts is None:
        out.append(ConditionValue(cond.ALERTS_RESOLVED, unknown, reasons.NO_ALERTS, "the incident has no alert group"))
    elif alerts.firing > 0:
        out.append(
            ConditionValue(cond.ALERTS_RESOLVED, false, reasons.ALERTS_FIRING, f"{alerts.firing} alert(s) firing")
        )
    elif alerts.truncated > 0:
        message = f"{alerts.truncated} alert(s) left out of the last notification (max_alerts) may still fire"
        out.append(ConditionValue(cond.ALERTS_RESOLVED, unknown, reasons.ALERTS_FIRING, message))
    else:
        out.append(
            ConditionValue(
                cond.ALERTS_RESOLVED, true, reasons.ALERTS_RESOLVED, f"{alerts.resolved} alert(s), all resolved"
            )
        )
    return out


def phase_of(conditions: list[Condition], closed: bool) -> Phase:
    """The phase people see, from the conditions: the furthest step reached in the episode."""
    if closed:
        return Phase.CLOSED
    if cond.is_true(conditions, cond.RESOLVED):
        return Phase.RESOLVED
    if cond.is_true(conditions, cond.CONTAINED):
        return Phase.CONTAINED
    if cond.is_true(conditions, cond.ACKNOWLEDGED):
        return Phase.ACKNOWLEDGED
    return Phase.TRIGGERED


def metrics_for(current: IncidentMetrics | None, facts: EpisodeFacts) -> IncidentMetrics | None:
    """Response times from the episode's start, set as each step happens in the current episode.

    A value stays until the same step happens in a later episode, which replaces it.
    """
    base = current or IncidentMetrics()
    start = facts.started_at

    def since(mark: Mark | None, previous: int | None) -> int | None:
        return seconds_between(start, mark.at) if mark is not None else previous

    metrics = IncidentMetrics(
        time_to_acknowledge_seconds=since(facts.acknowledged, base.time_to_acknowledge_seconds),
        time_to_contain_seconds=since(facts.contained, base.time_to_contain_seconds),
        time_to_resolve_seconds=since(facts.resolved, base.time_to_resolve_seconds),
    )
    return None if current is None and metrics == IncidentMetrics() else metrics
