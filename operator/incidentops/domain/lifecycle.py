"""The incident's lifecycle: episodes, the conditions people set through the spec, the phase, the
response-time metrics, closing, and the post-mortem hook.

Where it sits: ``plan`` asks :func:`episode_facts` what counts in the current
episode (acknowledgement, containment, resolution), derives the conditions and
the phase from those facts, and closes or reopens the incident. The alert
intake only records what it saw (``status.alerts``, with ``lastFiredAt`` when
the group starts firing again); ``plan`` alone decides from it whether a new
episode starts (:func:`should_reopen`, :func:`start_episode`).

Rules (DESIGN.md "Incident"):

- Triggered -> Acknowledged -> Contained -> Resolved -> Closed; the phase is a
  summary of the conditions, Closed is final.
- An acknowledgement, containment or resolution counts for the current episode
  only when its ``at`` is not before ``episodeStartedAt``. In episode 1 every
  ``at`` counts: there is no earlier episode it could belong to, and an
  incident declared after the fact (or a laptop clock a little behind the API
  server's) must not page people about something already handled.
- Times from outside are clamped to the time of receipt: a person's ``at``
  ahead of the operator's clock counts as the moment the operator first saw it
  (kept in ``status.clampedTimes``, so the answer is the same on every later
  look and after a restart), and the timeline says so.
- Containment counts as acknowledgement: someone who contained the incident is
  working on it. The effective acknowledgement is the earlier of the two.
- ``startedAt`` is one function of the object (:func:`started_at`): the
  receiver's ``spec.source.startedAt``, never later than the creation, else
  the creation; both writers (the receiver and the operator) use it. It says
  when the problem started (detection is the time from it to the creation).
  The first episode, its deadlines and its escalation start when the incident
  was opened (:func:`opened_at`): an alert that fired long before it reached
  the receiver must not page every level at once or breach on arrival.
- Reopening: only the group starting to fire again (``status.alerts.lastFiredAt``,
  set by the receiver on a transition from resolved to firing) after the
  resolution and within the reopen window starts a new episode, and the
  episode starts at that moment. The closing episode's times go to
  ``status.episodes``; ``status.metrics`` starts afresh.
- A resolution by the alerts lives in status only: condition Resolved with
  reason AlertsResolved, derived here from the latest alert snapshot (every
  alert resolved, policy ``alerts.autoResolve``) and kept by that condition.
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
    ClampedTime,
    ClampedTimeField,
    EpisodeRecord,
    EscalationStatus,
    Incident,
    IncidentMetrics,
    IncidentSpec,
    IncidentStatus,
    Phase,
    SLAStatus,
    TimelineEntry,
)
from incidentops.api.policy import DEFAULT_SEVERITY, AlertsPolicy, EscalationPolicy, default_sla
from incidentops.domain import timeline
from incidentops.domain.common import seconds_between, utc

__all__ = [
    "EPISODES_CAP",
    "ConditionValue",
    "EpisodeFacts",
    "Mark",
    "clamp_timeline",
    "clamp_times",
    "closes_at",
    "counts_in_episode",
    "ensure_conditions",
    "episode_facts",
    "episode_record",
    "is_closed",
    "lifecycle_conditions",
    "metrics_for",
    "opened_at",
    "phase_of",
    "postmortem_outstanding",
    "reopen_window",
    "should_reopen",
    "start_episode",
    "started_at",
]

EPISODES_CAP = 20
"""``status.episodes`` keeps the newest this many closed episodes."""


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
    """The effective acknowledgement: spec.acknowledgement or spec.containment, whichever came first."""
    contained: Mark | None
    resolved: Mark | None
    resolved_reason: str | None
    """ResolvedBy (spec.resolution) or AlertsResolved (status only)."""
    acknowledgement_outdated: bool
    """spec.acknowledgement is set but belongs to an earlier episode."""
    acknowledged_by_containment: bool = False
    """The effective acknowledgement is the containment (nobody acknowledged earlier)."""
    status_update_at: datetime.datetime | None = None
    """When the latest status update of this episode was posted (as it counts); None without one."""

    @property
    def acknowledge_clock_stopped_at(self) -> datetime.datetime | None:
        """When acknowledgement stopped mattering: acknowledged (or contained), or resolved without either."""
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
    since: datetime.datetime | None = None
    """When it became so, if known (a person's or the alerts' moment); else the plan's ``now``. Keeps the
    transition time a fact of the object, the same whenever the operator looks."""


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


_PERSON_FIELDS = (
    ClampedTimeField.ACKNOWLEDGEMENT,
    ClampedTimeField.CONTAINMENT,
    ClampedTimeField.RESOLUTION,
    ClampedTimeField.STATUS_UPDATE,
)
_SPEC_ATTRIBUTES = {
    ClampedTimeField.ACKNOWLEDGEMENT: "acknowledgement",
    ClampedTimeField.CONTAINMENT: "containment",
    ClampedTimeField.RESOLUTION: "resolution",
    ClampedTimeField.STATUS_UPDATE: "status_update",
}


def _given_at(spec: IncidentSpec, field: ClampedTimeField) -> datetime.datetime | None:
    record = getattr(spec, _SPEC_ATTRIBUTES[field])
    return utc(record.at) if record is not None else None


def clamp_times(spec: IncidentSpec, recorded: list[ClampedTime], now: datetime.datetime) -> list[ClampedTime]:
    """``status.clampedTimes`` as of ``now``: each person's ``at`` that was ahead of the operator's clock
    when first seen, with that moment. A record is kept while the spec still gives the same ``at``."""
    now = utc(now)
    kept = {r.field: r for r in recorded if _given_at(spec, r.field) == utc(r.at)}
    out: list[ClampedTime] = []
    for field in _PERSON_FIELDS:
        given = _given_at(spec, field)
        if field in kept:
            out.append(kept[field])
        elif given is not None and given > now:
            out.append(ClampedTime(field=field, at=given, received_at=now))
    return out


def clamp_timeline(before: list[ClampedTime], after: list[ClampedTime]) -> list[TimelineEntry]:
    """A timeline entry for every time newly clamped."""
    known = {(r.field, utc(r.at)) for r in before}
    return [
        timeline.entry(
            r.received_at,
            reasons.TIME_CLAMPED,
            f"{r.field.value}.at {utc(r.at).isoformat()} is ahead of the operator's clock:"
            f" it counts as received, {utc(r.received_at).isoformat()}",
        )
        for r in after
        if (r.field, utc(r.at)) not in known
    ]


def effective_at(spec: IncidentSpec, clamped: list[ClampedTime], field: ClampedTimeField) -> datetime.datetime | None:
    """The ``at`` of a person's record as it counts: the time of receipt when it was ahead of the clock."""
    given = _given_at(spec, field)
    if given is None:
        return None
    for record in clamped:
        if record.field is field and utc(record.at) == given:
            return min(given, utc(record.received_at))
    return given


def episode_facts(spec: IncidentSpec, status: IncidentStatus, auto_resolve: bool = True) -> EpisodeFacts:
    """What counts in ``status``'s current episode (``status.episode`` and ``episodeStartedAt`` must be set).

    People's times are read through ``status.clampedTimes`` (see :func:`clamp_times`).
    """
    assert status.episode is not None and status.episode_started_at is not None
    episode, start = status.episode, utc(status.episode_started_at)
    clamped = status.clamped_times

    def current(by: str | None, field: ClampedTimeField) -> Mark | None:
        at = effective_at(spec, clamped, field)
        if by is None or at is None or not counts_in_episode(at, episode, start):
            return None
        return Mark(by, at)

    ack = spec.acknowledgement
    explicit = current(ack.by if ack else None, ClampedTimeField.ACKNOWLEDGEMENT)
    contained = current(spec.containment.by if spec.containment else None, ClampedTimeField.CONTAINMENT)
    # Containment counts as acknowledgement: whichever came first is the moment paging stopped.
    acknowledged = explicit
    by_containment = False
    if contained is not None and (explicit is None or contained.at < explicit.at):
        acknowledged, by_containment = contained, True
    resolution = spec.resolution
    resolved = current(resolution.by if resolution else None, ClampedTimeField.RESOLUTION)
    posted = spec.status_update
    update = current(posted.by if posted else None, ClampedTimeField.STATUS_UPDATE)
    # Resolved when the first of these happened: a person resolved it, the alerts resolved (the latest
    # snapshot, received in this episode), or an earlier look found it resolved (the Resolved condition,
    # reset at every reopen, keeps that moment when the alerts have fired again since, outside the window).
    alerts_mark = _alerts_resolution(status, start) if auto_resolve else None
    kept = cond.get_condition(status.conditions, cond.RESOLVED)
    kept_mark = (
        Mark(by=timeline.ACTOR_ALERTMANAGER, at=utc(kept.last_transition_time))
        if kept is not None and kept.status is ConditionStatus.TRUE
        else None
    )
    moments = [m.at for m in (resolved, alerts_mark, kept_mark) if m is not None]
    resolved_reason = None
    if resolved is not None:
        resolved, resolved_reason = Mark(resolved.by, min(moments)), reasons.RESOLVED_BY
    elif moments:
        resolved, resolved_reason = Mark(timeline.ACTOR_ALERTMANAGER, min(moments)), reasons.ALERTS_RESOLVED
    return EpisodeFacts(
        episode=episode,
        started_at=start,
        acknowledged=acknowledged,
        contained=contained,
        resolved=resolved,
        resolved_reason=resolved_reason,
        acknowledgement_outdated=ack is not None and explicit is None,
        acknowledged_by_containment=by_containment,
        status_update_at=update.at if update is not None else None,
    )


def started_at(incident: Incident, now: datetime.datetime) -> datetime.datetime:
    """When the incident started: the receiver's ``spec.source.startedAt`` (the earliest firing alert, as
    it saw it), never later than the creation; else the creation. A function of the object alone, so the
    receiver and the operator, whichever writes first, write the same. (An object without either, as in
    tests, keeps what status says, else starts ``now``.)"""
    created = incident.metadata.creation_timestamp
    source = incident.spec.source
    alert_start = source.started_at if source is not None else None
    moments = [utc(m) for m in (created, alert_start) if m is not None]
    if moments:
        return min(moments)
    return utc(incident.status.started_at or now)


def opened_at(incident: Incident, now: datetime.datetime) -> datetime.datetime:
    """When the first episode starts: the incident's creation (``now`` before the object has one)."""
    created = incident.metadata.creation_timestamp
    return utc(created) if created is not None else started_at(incident, now)


def should_reopen(status: IncidentStatus, facts: EpisodeFacts, window: datetime.timedelta) -> datetime.datetime | None:
    """When the new episode starts, if the group started firing again after the resolution and within the
    reopen window; None otherwise.

    Only the receiver's ``lastFiredAt`` counts (a transition from resolved to
    firing): a re-send of a group that never stopped firing reopens nothing,
    however it was resolved. A Closed incident never reopens (the receiver
    opens a new one).
    """
    alerts = status.alerts
    if status.phase is Phase.CLOSED or facts.resolved is None or alerts is None:
        return None
    if alerts.firing == 0 or alerts.last_fired_at is None:
        return None
    fired = utc(alerts.last_fired_at)
    resolved_at = facts.resolved.at
    return fired if resolved_at < fired <= resolved_at + window else None


def episode_record(status: IncidentStatus, facts: EpisodeFacts) -> EpisodeRecord:
    """The closing episode's times, for ``status.episodes``."""
    metrics = status.metrics or IncidentMetrics()
    kinds = []
    for breach in status.sla.breaches if status.sla is not None else []:
        if breach.kind not in kinds:
            kinds.append(breach.kind)
    return EpisodeRecord(
        episode=facts.episode,
        started_at=facts.started_at,
        resolved_at=facts.resolved.at if facts.resolved is not None else None,
        time_to_acknowledge_seconds=metrics.time_to_acknowledge_seconds,
        time_to_contain_seconds=metrics.time_to_contain_seconds,
        time_to_resolve_seconds=metrics.time_to_resolve_seconds,
        breaches=kinds[:8],
    )


def start_episode(
    status: IncidentStatus, facts: EpisodeFacts, at: datetime.datetime, now: datetime.datetime
) -> IncidentStatus:
    """``status`` with a new episode started at ``at`` (when the receiver saw the group fire again, never
    after ``now``): the incident reopens.

    Episode + 1, reopenCount + 1, back to Triggered, the escalation cursor
    reset (round 0, before the first level, nothing notified: every key of the
    new episode differs from the old ones anyway), the episode's SLA breaches
    cleared, Acknowledged/Contained/Resolved back to False. The closing
    episode's response times move to ``episodes``; ``metrics`` starts afresh.
    The bounded history (notifications, timeline) is kept.
    """
    now = utc(now)
    at = min(utc(at), now)
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
        at,
        reasons.REOPENED,
        f"reopened: the alerts fire again within the reopen window (episode {episode})",
        timeline.ACTOR_ALERTMANAGER,
    )
    return status.model_copy(
        update={
            "episode": episode,
            "episode_started_at": at,
            "reopen_count": status.reopen_count + 1,
            "phase": Phase.TRIGGERED,
            "conditions": conditions,
            "escalation": EscalationStatus(),
            "sla": SLAStatus(),
            "metrics": None,
            "acknowledged_by": None,
            "reopen_until": None,
            "episodes": [*status.episodes, episode_record(status, facts)][-EPISODES_CAP:],
            "timeline": timeline.append(status.timeline, [reopened]),
        }
    )


def postmortem_outstanding(
    incident: Incident, policy: EscalationPolicy | None, severity: Severity | None = None
) -> bool:
    """Whether a required post-mortem keeps the incident from closing.

    True when the SLA of the incident's severity (the policy's, else the
    defaults: P1/P2 required) says ``required`` and people have not completed
    it (``spec.postmortem.completed``, which makes ``status.postmortem.state``
    Done in the same look). A drill is assessed instead and never waits.
    ``severity`` overrides the incident's effective severity (``plan`` passes
    the new one).
    """
    if incident.spec.drill:
        return False
    severity = severity or incident.status.severity or incident.spec.severity or DEFAULT_SEVERITY
    sla = policy.spec.sla_for(severity) if policy is not None else default_sla(severity)
    if not sla.postmortem_required:
        return False
    completed = incident.spec.postmortem is not None and bool(incident.spec.postmortem.completed)
    return not completed


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

    if facts.acknowledged is not None and facts.acknowledged_by_containment:
        out.append(
            ConditionValue(
                cond.ACKNOWLEDGED,
                true,
                reasons.ACKNOWLEDGED_BY_CONTAINMENT,
                f"contained by {facts.acknowledged.by}, which counts as acknowledgement",
                facts.acknowledged.at,
            )
        )
    elif facts.acknowledged is not None:
        out.append(
            ConditionValue(
                cond.ACKNOWLEDGED, true, reasons.ACKNOWLEDGED_BY, f"by {facts.acknowledged.by}", facts.acknowledged.at
            )
        )
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
        out.append(
            ConditionValue(cond.CONTAINED, true, reasons.CONTAINED_BY, f"by {facts.contained.by}", facts.contained.at)
        )
    else:
        out.append(ConditionValue(cond.CONTAINED, false, reasons.NOT_CONTAINED, "not contained"))

    if facts.resolved is not None and facts.resolved_reason == reasons.RESOLVED_BY:
        out.append(
            ConditionValue(cond.RESOLVED, true, reasons.RESOLVED_BY, f"by {facts.resolved.by}", facts.resolved.at)
        )
    elif facts.resolved is not None:
        out.append(
            ConditionValue(
                cond.RESOLVED, true, reasons.ALERTS_RESOLVED, "every alert of the group resolved", facts.resolved.at
            )
        )
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


def metrics_for(facts: EpisodeFacts) -> IncidentMetrics | None:
    """Response times of the current episode, from its start (None before anything happened in it).

    Containment counts as acknowledgement when nobody acknowledged first. A new
    episode starts with none: the closed one's are in ``status.episodes``.
    """
    start = facts.started_at

    def since(mark: Mark | None) -> int | None:
        return seconds_between(start, mark.at) if mark is not None else None

    metrics = IncidentMetrics(
        time_to_acknowledge_seconds=since(facts.acknowledged),
        time_to_contain_seconds=since(facts.contained),
        time_to_resolve_seconds=since(facts.resolved),
    )
    return None if metrics == IncidentMetrics() else metrics
