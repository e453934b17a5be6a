"""After the incident: the post-mortem's state and its overdue reminders, a drill's assessment, and the
facts a draft is written from.

Where it sits: ``plan`` calls :func:`decide` on every look with the episode's
facts; it returns ``status.postmortem`` (or, for a drill, ``status.assessment``),
the reminders due now, the Events, and when to look again. The draft itself is
written by ``handlers/postmortems.py``, which asks :func:`draft_due` whether to
write it now, renders :func:`draft_facts` with a template (``notify.postmortem``),
stores it in a ConfigMap named by :func:`draft_name`, and records it with
:func:`drafted`. Pure: the policy, the incident and ``now`` are passed in.

Rules (docs/postmortems.md):

- A resolved incident whose severity requires a post-mortem (the policy's
  ``severities``; P1 and P2 by default) gets one due ``postmortemWithin`` after
  its resolution: Pending until the draft is written, Draft after, Overdue past
  ``dueBy``, Done once ``spec.postmortem.completed``. An optional one is drafted
  only on request (``spec.postmortem.draft``), has no ``dueBy`` and is never
  overdue; otherwise the state is NotRequired.
- Overdue reminders go to the channels told of trouble in the episode (the
  policy's ``notifyOnBreach``, else the channels the levels reached, else the
  first level's), at ``dueBy`` and then once a day: every 24 hours, or, with
  the policy's ``businessHours``, at the opening of each working day after
  ``dueBy``'s. Only the latest reminder is ever due (an operator down for three
  days sends one, not three); its key names its day, so it goes out once per
  day across restarts. None before ``dueBy``, none once Done.
- A reopen makes a draft that is not Done stale: the state is cleared while the
  incident is open, and the next resolution starts afresh (a new draft, under a
  new name, covering every episode so far; the old one stays as a record; a
  new ``dueBy`` from the new resolution). A post-mortem already Done stays Done.
- A drill gets an assessment instead: detection, acknowledgement, containment
  and resolution times against ``spec.drillTargets``, else the policy's
  targets for the severity (acknowledge, resolve; detect and contain only with
  a drill target), pass or fail each. It never holds the incident open.
- The draft waits for the response to settle (nothing due, no action with work
  left, such as an undo on resolve) so it records how it ended, but at most
  :data:`SETTLE` after the resolution.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from incidentops.api import reasons
from incidentops.api.common import format_duration, parse_duration
from incidentops.api.incident import (
    AssessedTarget,
    AssessmentStatus,
    DrillTargets,
    Incident,
    IncidentStatus,
    PostmortemState,
    PostmortemStatus,
    TargetResult,
    TargetSource,
)
from incidentops.api.policy import BusinessHours, EffectiveSLA, EscalationPolicy
from incidentops.domain import businesstime, timeline
from incidentops.domain.common import clip, seconds_between, utc
from incidentops.domain.decisions import POSTMORTEM_DUE, Due, Transition
from incidentops.domain.escalation import notification_key
from incidentops.domain.lifecycle import EpisodeFacts

__all__ = [
    "ASSESSMENT_KEY",
    "DRAFT_KEY",
    "FACTS_KEY",
    "SETTLE",
    "Decision",
    "assess",
    "decide",
    "draft_due",
    "draft_facts",
    "draft_name",
    "drafted",
    "reminder_day",
    "reminder_key",
    "reminders",
]

SETTLE: Final = datetime.timedelta(seconds=30)
"""The longest a draft waits after the resolution for the response to settle."""

DRAFT_KEY: Final = "postmortem.md"
"""The ConfigMap key of a post-mortem draft."""

ASSESSMENT_KEY: Final = "assessment.md"
"""The ConfigMap key of a drill's assessment."""

FACTS_KEY: Final = "facts.json"
"""The ConfigMap key of the facts the document was rendered from (``kubectl incident postmortem -o json``)."""

_DAY: Final = datetime.timedelta(days=1)
_NOTHING_DUE: Final[tuple[Due, ...]] = ()


@dataclass(frozen=True)
class Decision:
    """What the post-mortem side of a plan says."""

    postmortem: PostmortemStatus | None
    assessment: AssessmentStatus | None
    due: tuple[Due, ...] = _NOTHING_DUE
    transitions: tuple[tuple[Transition, datetime.datetime], ...] = ()
    """Events, each with its moment (for the timeline)."""
    wake_at: datetime.datetime | None = None
    live_keys: frozenset[str] = field(default_factory=frozenset)
    """The reminder keys that may still be due (kept when ``notified`` is pruned)."""


# --- reminders --------------------------------------------------------------------------------------


def _local_date(moment: datetime.datetime, hours: BusinessHours | None) -> datetime.date:
    return utc(moment).astimezone(hours.zone()).date() if hours is not None else utc(moment).date()


def reminders(
    due_by: datetime.datetime, hours: BusinessHours | None, now: datetime.datetime
) -> tuple[datetime.datetime | None, datetime.datetime]:
    """``(current, next)``: the latest reminder moment at or before ``now`` (None before ``dueBy``) and the
    first after it. Reminders are at ``dueBy``, then every 24 hours, or with ``hours`` at the opening of
    each working day after ``dueBy``'s day."""
    due_by, now = utc(due_by), utc(now)
    if now < due_by:
        return None, due_by
    if hours is None:
        current = due_by + _DAY * ((now - due_by) // _DAY)
        return current, current + _DAY
    first_day = _local_date(due_by, hours)
    current = due_by
    # The latest opening at or before now lies within the last week (a policy has a working day a week).
    for opening, _closing in businesstime.intervals(hours, max(due_by, now - 8 * _DAY)):
        if _local_date(opening, hours) <= first_day or opening <= due_by:
            continue
        if opening > now:
            return current, opening
        current = opening
    raise AssertionError("a policy's business hours open at least once a week")  # pragma: no cover


def reminder_day(moment: datetime.datetime, hours: BusinessHours | None) -> str:
    """The reminder's day, as it goes into its key: its date in the policy's time zone (UTC without hours)."""
    return _local_date(moment, hours).isoformat()


def reminder_key(uid: str, episode: int, channel: str, day: str) -> str:
    """The key of the overdue reminder of ``day`` to ``channel``: once per day and channel."""
    return notification_key(uid, episode, 0, None, channel, f"{POSTMORTEM_DUE}@{day}")


# --- the post-mortem's state ---------------------------------------------------------------------------


def _wanted(incident: Incident, sla: EffectiveSLA) -> tuple[bool, bool]:
    """``(required, drafted)``: whether a post-mortem is required, and whether one is drafted at all."""
    if incident.spec.drill:
        return False, False
    requested = incident.spec.postmortem is not None and bool(incident.spec.postmortem.draft)
    return sla.postmortem_required, sla.postmortem_required or requested


def _completed(incident: Incident) -> bool:
    return incident.spec.postmortem is not None and bool(incident.spec.postmortem.completed)


def decide(
    incident: Incident,
    status: IncidentStatus,
    facts: EpisodeFacts,
    sla: EffectiveSLA,
    policy: EscalationPolicy | None,
    uid: str,
    channels: Sequence[str],
    done: Collection[str],
    now: datetime.datetime,
) -> Decision:
    """``status.postmortem`` and ``status.assessment`` as of ``now``, the reminders due, the Events, and when
    to look again. ``channels`` are those told of trouble in the episode (the reminders' audience); ``done``
    the keys already sent."""
    now = utc(now)
    previous = status.postmortem
    if facts.resolved is None:
        # Open (or reopened): nothing is due yet; a Done post-mortem stays Done (see the module doc).
        kept = previous if previous is not None and previous.state is PostmortemState.DONE else None
        return Decision(postmortem=kept, assessment=None)
    resolved_at = facts.resolved.at
    if incident.spec.drill:
        return Decision(postmortem=None, assessment=_assessment(incident, status, facts, sla))

    required, drafted = _wanted(incident, sla)
    if previous is not None and previous.episode not in (None, facts.episode):
        previous = None if previous.state is not PostmortemState.DONE else previous
    ref = previous.ref if previous is not None else None
    due_by = resolved_at + sla.postmortem_within if required else None
    completed = _completed(incident)
    if completed:
        state = PostmortemState.DONE
    elif not drafted:
        state = PostmortemState.NOT_REQUIRED
    elif due_by is not None and now >= due_by:
        state = PostmortemState.OVERDUE
    else:
        state = PostmortemState.DRAFT if ref else PostmortemState.PENDING
    transitions: list[tuple[Transition, datetime.datetime]] = []
    before = previous.state if previous is not None else None
    if state is PostmortemState.DONE and before is not PostmortemState.DONE:
        url = incident.spec.postmortem.url if incident.spec.postmortem is not None else None
        transitions.append(
            (
                Transition(
                    "Normal", reasons.POSTMORTEM_DONE, clip(f"post-mortem completed{f': {url}' if url else ''}")
                ),
                now,
            )
        )
    if state in (PostmortemState.PENDING, PostmortemState.DRAFT) and before is None and due_by is not None:
        transitions.append(
            (
                Transition("Normal", reasons.POSTMORTEM_REQUIRED, f"a post-mortem is due by {_when(due_by)}"),
                resolved_at,
            )
        )

    due: list[Due] = []
    live: set[str] = set()
    reminded_at = previous.reminded_at if previous is not None else None
    wake: list[datetime.datetime] = []
    if state is PostmortemState.OVERDUE and due_by is not None:
        hours = policy.spec.business_hours if policy is not None else None
        current, upcoming = reminders(due_by, hours, now)
        wake.append(upcoming)
        if current is not None:
            day = reminder_day(current, hours)
            for channel in channels:
                key = reminder_key(uid, facts.episode, channel, day)
                live.add(key)
                if key not in done:
                    due.append(Due(key, channel, POSTMORTEM_DUE, None, None, 0, scheduled_at=current, detail=day))
            if reminded_at is None or utc(reminded_at) < current:
                transitions.append(
                    (
                        Transition(
                            "Warning",
                            reasons.POSTMORTEM_OVERDUE,
                            f"the post-mortem was due by {_when(due_by)} and is not completed: reminder of {day}",
                        ),
                        current,
                    )
                )
            reminded_at = current
    elif due_by is not None and state in (PostmortemState.PENDING, PostmortemState.DRAFT):
        wake.append(due_by)
    if state is PostmortemState.PENDING and resolved_at + SETTLE > now:
        wake.append(resolved_at + SETTLE)
    return Decision(
        postmortem=PostmortemStatus(
            ref=ref,
            due_by=due_by,
            state=state,
            episode=facts.episode,
            reminded_at=reminded_at,
        ),
        assessment=None,
        due=tuple(due),
        transitions=tuple(transitions),
        wake_at=min((m for m in wake if m > now), default=None),
        live_keys=frozenset(live),
    )


def _when(moment: datetime.datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- drills ---------------------------------------------------------------------------------------------


def assess(
    targets: DrillTargets, sla: EffectiveSLA, status: IncidentStatus, facts: EpisodeFacts, created: datetime.datetime
) -> list[TargetResult]:
    """Each target of a drill: the time measured against ``targets``' value, else the policy's (acknowledge
    and resolve only). Detection runs from ``status.startedAt`` (the earliest alert) to ``created``; the
    others from the episode's start. A step that never happened fails."""
    start = facts.started_at
    measured = {
        AssessedTarget.DETECT: seconds_between(status.started_at or created, created),
        AssessedTarget.ACKNOWLEDGE: seconds_between(start, facts.acknowledged.at) if facts.acknowledged else None,
        AssessedTarget.CONTAIN: seconds_between(start, facts.contained.at) if facts.contained else None,
        AssessedTarget.RESOLVE: seconds_between(start, facts.resolved.at) if facts.resolved else None,
    }
    own = {
        AssessedTarget.DETECT: targets.detect,
        AssessedTarget.ACKNOWLEDGE: targets.acknowledge,
        AssessedTarget.CONTAIN: targets.contain,
        AssessedTarget.RESOLVE: targets.resolve,
    }
    policy = {
        AssessedTarget.ACKNOWLEDGE: format_duration(sla.acknowledge_within),
        AssessedTarget.RESOLVE: format_duration(sla.resolve_within),
    }
    results = []
    for target in AssessedTarget:
        within, source = own[target], TargetSource.DRILL
        if within is None:
            within, source = policy.get(target), TargetSource.POLICY
        if within is None:
            continue
        seconds = measured[target]
        passed = seconds is not None and seconds <= parse_duration(within).total_seconds()
        results.append(TargetResult(target=target, within=within, source=source, seconds=seconds, passed=passed))
    return results


def _assessment(incident: Incident, status: IncidentStatus, facts: EpisodeFacts, sla: EffectiveSLA) -> AssessmentStatus:
    assert facts.resolved is not None
    previous = status.assessment
    if previous is not None and utc(previous.assessed_at) == facts.resolved.at and previous.ref:
        return previous  # written: the stored assessment is the record, whatever changes after
    created = utc(incident.metadata.creation_timestamp or facts.started_at)
    results = assess(incident.spec.drill_targets or DrillTargets(), sla, status, facts, created)
    return AssessmentStatus(
        ref=previous.ref if previous is not None and utc(previous.assessed_at) == facts.resolved.at else None,
        assessed_at=facts.resolved.at,
        passed=all(r.passed for r in results),
        results=results,
    )


# --- the draft ------------------------------------------------------------------------------------------


def draft_name(uid: str, episode: int, drill: bool) -> str:
    """The ConfigMap of the incident's draft (or assessment) for ``episode``: deterministic, so a retry after
    a crash finds the one already written instead of writing a second."""
    digest = hashlib.sha256(f"{uid}\x1f{episode}".encode()).hexdigest()[:16]
    return f"incidentops-{'assessment' if drill else 'postmortem'}-{digest}"


def draft_due(
    status: IncidentStatus, resolved_at: datetime.datetime | None, settled: bool, now: datetime.datetime
) -> bool:
    """Whether to write the draft (or the assessment) now: one is wanted and not yet written, and the response
    has settled (``settled``: nothing due, no action with work left) or :data:`SETTLE` has passed."""
    postmortem, assessment = status.postmortem, status.assessment
    wanted = (
        postmortem is not None
        and postmortem.ref is None
        and postmortem.state in (PostmortemState.PENDING, PostmortemState.OVERDUE)
    ) or (assessment is not None and assessment.ref is None)
    if not wanted or resolved_at is None:
        return False
    return settled or utc(now) >= utc(resolved_at) + SETTLE


def drafted(status: IncidentStatus, ref: str, now: datetime.datetime, note: str | None = None) -> IncidentStatus | None:
    """``status`` with the draft (or assessment) written under ``ref`` recorded, and a timeline entry; None
    when there is nothing to record (already recorded, or no longer wanted: a reopen came in between)."""
    postmortem, assessment = status.postmortem, status.assessment
    suffix = f" ({note})" if note else ""
    if assessment is not None and assessment.ref is None:
        verdict = "passed" if assessment.passed else "failed"
        entry = timeline.entry(
            now, reasons.DRILL_ASSESSED, f"drill {verdict}: assessment written to ConfigMap {ref}{suffix}"
        )
        return status.model_copy(
            update={
                "assessment": assessment.model_copy(update={"ref": ref}),
                "timeline": timeline.append(status.timeline, [entry]),
            }
        )
    if postmortem is None or postmortem.ref is not None:
        return None
    if postmortem.state not in (PostmortemState.PENDING, PostmortemState.OVERDUE):
        return None
    state = PostmortemState.OVERDUE if postmortem.state is PostmortemState.OVERDUE else PostmortemState.DRAFT
    entry = timeline.entry(now, reasons.POSTMORTEM_DRAFTED, f"post-mortem draft written to ConfigMap {ref}{suffix}")
    return status.model_copy(
        update={
            "postmortem": postmortem.model_copy(update={"ref": ref, "state": state}),
            "timeline": timeline.append(status.timeline, [entry]),
        }
    )


def _iso(moment: datetime.datetime | None) -> str | None:
    return utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else None


def _seconds(value: int | None) -> dict[str, Any] | None:
    return {"seconds": value, "text": format_duration(datetime.timedelta(seconds=value))} if value is not None else None


def draft_facts(incident: Incident, sla: EffectiveSLA, facts: EpisodeFacts) -> dict[str, Any]:
    """Everything a draft or an assessment says, from the incident's record as it is: a JSON-able mapping,
    the templates' one variable ``pm`` (docs/postmortems.md lists its keys)."""
    spec, status, meta = incident.spec, incident.status, incident.metadata
    resolution = spec.resolution
    start = facts.started_at
    created = utc(meta.creation_timestamp or start)
    resolved_at = facts.resolved.at if facts.resolved is not None else None
    metrics = status.metrics
    breaches = status.sla.breaches if status.sla is not None else []
    breached = {b.kind.value for b in breaches}
    for episode in status.episodes:
        breached.update(kind.value for kind in episode.breaches)

    def response(name: str, measured: int | None, within: datetime.timedelta | None) -> dict[str, Any]:
        met = None
        if within is not None:
            met = measured is not None and measured <= within.total_seconds() and name not in breached
        return {
            "name": name,
            "measured": _seconds(measured),
            "target": format_duration(within) if within else None,
            "met": met,
        }

    impact = spec.impact
    alerts = status.alerts
    source = spec.source
    roles = spec.roles
    return {
        "kind": "assessment" if spec.drill else "postmortem",
        "incident": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "title": spec.title,
            "description": spec.description,
            "severity": str(status.severity or spec.severity or ""),
            "type": str(status.type or spec.type) if (status.type or spec.type) else None,
            "drill": bool(spec.drill),
            "policy": status.escalation_policy,
            "episode": facts.episode,
            "reopenCount": status.reopen_count,
            "startedAt": _iso(status.started_at or start),
            "createdAt": _iso(created),
            "episodeStartedAt": _iso(start),
            "resolvedAt": _iso(resolved_at),
            # Never negative: a person's resolution `at` may lie before the start (a laptop's clock).
            "duration": (
                format_duration(datetime.timedelta(seconds=seconds_between(status.started_at or start, resolved_at)))
                if resolved_at
                else None
            ),
            "source": str(source.kind) if source is not None else "manual",
            "alertname": (source.labels or {}).get("alertname") if source is not None else None,
        },
        "impact": {
            "usersAffected": impact.users_affected if impact else None,
            "services": list(impact.services) if impact else [],
            "estimatedCost": impact.estimated_cost if impact else None,
            "dataExposed": impact.data_exposed if impact else None,
            "alerts": {"firing": alerts.firing, "resolved": alerts.resolved, "truncated": alerts.truncated}
            if alerts
            else None,
            "targets": [f"{t.kind} {t.name}" if t.name else "selector" for t in spec.targets],
        },
        "resolution": {
            "by": facts.resolved.by if facts.resolved else None,
            "at": _iso(resolved_at),
            "summary": resolution.summary if resolution else None,
            "rootCause": resolution.root_cause if resolution else None,
        },
        "roles": {
            "commander": roles.commander if roles else None,
            "technicalLead": roles.technical_lead if roles else None,
            "communications": roles.communications if roles else None,
            "acknowledgedBy": facts.acknowledged.by if facts.acknowledged else None,
            "containedBy": facts.contained.by if facts.contained else None,
        },
        "responseTimes": [
            response("Acknowledge", metrics.time_to_acknowledge_seconds if metrics else None, sla.acknowledge_within),
            response("Contain", metrics.time_to_contain_seconds if metrics else None, None),
            response("Resolve", metrics.time_to_resolve_seconds if metrics else None, sla.resolve_within),
        ],
        "breaches": [{"kind": b.kind.value, "deadline": _iso(b.deadline), "noticedAt": _iso(b.at)} for b in breaches],
        "episodes": [
            {
                "episode": e.episode,
                "startedAt": _iso(e.started_at),
                "resolvedAt": _iso(e.resolved_at),
                "acknowledge": _seconds(e.time_to_acknowledge_seconds),
                "resolve": _seconds(e.time_to_resolve_seconds),
                "breaches": [k.value for k in e.breaches],
            }
            for e in status.episodes
        ],
        "timeline": [
            {"at": _iso(t.at), "kind": t.kind, "message": t.message, "actor": t.actor}
            for t in sorted(status.timeline, key=lambda t: utc(t.at))
        ],
        "notifications": [
            {
                "at": _iso(n.at),
                "channel": n.channel,
                "event": n.event,
                "level": n.level,
                "outcome": n.outcome.value,
                "attempts": n.attempts,
            }
            for n in sorted(status.notifications, key=lambda n: utc(n.at))
        ],
        "actions": [
            {
                "name": a.name,
                "type": a.type.value,
                "phase": a.phase.value,
                "dryRun": bool(a.dry_run),
                "plan": a.plan,
                "target": a.target,
                "message": a.message,
                "approvedBy": a.approved_by,
                "startedAt": _iso(a.started_at),
                "finishedAt": _iso(a.finished_at),
                "changes": [{"object": c.object, "field": c.field, "old": c.old, "new": c.new} for c in a.changes],
            }
            for a in status.actions
        ],
        "evidence": [
            {
                "name": e.name,
                "ref": e.ref,
                "sha256": e.sha256,
                "bytes": e.bytes,
                "items": e.items,
                "collectedAt": _iso(e.collected_at),
            }
            for e in status.evidence
        ],
        "postmortem": {
            "dueBy": _iso(status.postmortem.due_by) if status.postmortem else None,
            "required": sla.postmortem_required,
        },
        "assessment": (
            {
                "passed": status.assessment.passed,
                "results": [
                    {
                        "target": r.target.value,
                        "within": r.within,
                        "source": r.source.value,
                        "measured": _seconds(r.seconds),
                        "passed": r.passed,
                    }
                    for r in status.assessment.results
                ],
            }
            if status.assessment is not None
            else None
        ),
    }
