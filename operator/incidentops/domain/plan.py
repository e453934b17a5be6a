"""The one entry point: what an incident's status should be now, what to send, what to announce as
Events, and when to look again.

Where it sits: the scheduler calls :func:`plan` with the incident, the
:class:`~incidentops.domain.selection.Selection` and ``now``; it writes
``Plan.status`` (resourceVersion-checked), posts ``Plan.transitions`` as
Events, hands ``Plan.due`` to the delivery queue, and requeues at
``Plan.wake_at``; the queue folds each outcome back with
:func:`record_deliveries` (through ``delivery.record_outcomes``).

After the resolution ``domain.postmortem`` adds the post-mortem's state
(``status.postmortem``), its overdue reminders (in ``due``, after the rest)
and a drill's assessment (``status.assessment``); the draft itself is written
apart from the look (``handlers/postmortems.py``).

Guarantees (tested as properties in ``tests/unit/domain``):

- Idempotent: the same inputs and ``now`` give the same plan; planning on the
  plan's own status gives the same status and due, and no transitions.
- A key is never due twice: ``record_deliveries`` adds every key that is
  done to the cursor (``status.escalation.notified``) and ``plan`` never
  makes a recorded key due again. Delivered, Failed (for good: escalation
  goes on to the next channel and level) and Skipped are done; Pending (a
  delivery still being retried) is not, so a restart sends it again under
  the same key.
- The cursor never goes back within an episode.
- After the due work is recorded, planning at the same ``now`` gives no due
  and a ``wake_at`` after ``now`` (or None).

Bounds: ``notifications`` keeps the newest :data:`NOTIFICATIONS_CAP`,
``timeline`` the newest 100, ``notified`` at most :data:`NOTIFIED_CAP` keys.
Past :data:`NOTIFIED_SOFT_CAP`, keys that can never be due again (pages of
past rounds, reminders of past update deadlines, keys of levels or channels a
policy edit removed) are dropped first, oldest first.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import Condition, ConditionStatus
from incidentops.api.incident import (
    ActionRecord,
    EscalationStatus,
    Incident,
    IncidentStatus,
    NotificationOutcome,
    NotificationRecord,
    Phase,
    SLABreach,
    SLAStatus,
    TimelineEntry,
)
from incidentops.api.policy import EffectiveSLA, EscalationPolicy, default_sla
from incidentops.domain import actions as acting
from incidentops.domain import postmortem as postmortems
from incidentops.domain import timeline
from incidentops.domain.announcements import (
    action_notices,
    announcements,
    breach_channels,
    breach_channels_told,
    breach_notices,
    live_announcement_keys,
)
from incidentops.domain.common import clip, utc
from incidentops.domain.decisions import Due, Transition
from incidentops.domain.escalation import (
    EscalationDecision,
    escalate,
    exhausted_condition,
    live_page_keys,
    reached_channels,
)
from incidentops.domain.lifecycle import (
    ConditionValue,
    EpisodeFacts,
    clamp_timeline,
    clamp_times,
    closes_at,
    ensure_conditions,
    episode_facts,
    is_closed,
    lifecycle_conditions,
    metrics_for,
    opened_at,
    phase_of,
    postmortem_outstanding,
    reopen_window,
    should_reopen,
    start_episode,
    started_at,
)
from incidentops.domain.selection import SOURCE_CLASSIFICATION, SOURCE_DEFAULT, Selection
from incidentops.domain.sla import (
    Clock,
    breach_condition,
    breach_event_reason,
    clock_for,
    describe_breach,
    detect_breaches,
    keep_breaches,
    next_deadline,
    status_update_at,
    wake_times,
)

__all__ = [
    "NORMAL",
    "NOTIFICATIONS_CAP",
    "NOTIFIED_CAP",
    "NOTIFIED_SOFT_CAP",
    "WARNING",
    "Due",
    "Plan",
    "Transition",
    "incident_uid",
    "plan",
    "record_deliveries",
]

NORMAL: Final = "Normal"
WARNING: Final = "Warning"

NOTIFICATIONS_CAP: Final = 50
"""``status.notifications`` keeps the newest this many records (history for people; never the memory)."""

NOTIFIED_CAP: Final = 256
"""``status.escalation.notified`` never holds more keys than this (the model's maximum)."""

NOTIFIED_SOFT_CAP: Final = 192
"""Past this many keys, ``plan`` drops keys that can never be due again."""

_OUTCOMES: Final = {
    "Delivered": NotificationOutcome.SENT,  # the notifiers' word for it
    "Sent": NotificationOutcome.SENT,
    "Failed": NotificationOutcome.FAILED,
    "Skipped": NotificationOutcome.SKIPPED,
    "Pending": NotificationOutcome.PENDING,
}


@dataclass(frozen=True)
class Plan:
    """What to do now."""

    status: IncidentStatus
    """The whole status to write now (everything but the delivery records of ``due``)."""

    due: tuple[Due, ...]
    """Notifications to send now, in order: pages, breach notices, then the announcements."""

    transitions: tuple[Transition, ...]
    """Events for the changes this plan makes."""

    wake_at: datetime.datetime | None
    """The next moment anything becomes due; None when nothing is scheduled (e.g. Closed)."""


@dataclass(frozen=True)
class _Change:
    """A transition, and how it goes into the timeline."""

    transition: Transition
    at: datetime.datetime
    actor: str | None = timeline.ACTOR_OPERATOR
    on_timeline: bool = True


def incident_uid(incident: Incident) -> str:
    """The identity that goes into notification keys: the uid (``namespace/name`` before it has one)."""
    meta = incident.metadata
    return meta.uid or f"{meta.namespace or ''}/{meta.name or ''}"


def _visited(incident: Incident, now: datetime.datetime) -> IncidentStatus:
    """The status with what the first visit sets (start, episode 1, Triggered, every condition type), and
    the people's times of this look clamped to the clock."""
    # Shallow copies throughout: the domain never mutates a model in place, it builds new ones.
    status = incident.status
    # The same function as the receiver's: whichever writer lands first writes the same start.
    started = started_at(incident, now)
    first = status.episode is None
    return status.model_copy(
        update={
            "started_at": started,
            "episode": status.episode or 1,
            "episode_started_at": (
                utc(status.episode_started_at) if status.episode_started_at else opened_at(incident, now)
            ),
            "phase": Phase.TRIGGERED if first else status.phase,
            "conditions": ensure_conditions(status.conditions, now, incident.metadata.generation),
            "escalation": status.escalation or EscalationStatus(),
            "clamped_times": clamp_times(incident.spec, status.clamped_times, now),
        }
    )


def _ready(selection: Selection) -> ConditionValue:
    status = ConditionStatus.TRUE if selection.policy is not None else ConditionStatus.FALSE
    return ConditionValue(cond.READY, status, selection.reason, selection.message)


def _prune(notified: Sequence[str], live: set[str]) -> list[str]:
    """``notified`` shrunk to the soft cap by dropping, oldest first, keys that can never be due again."""
    excess = len(notified) - NOTIFIED_SOFT_CAP
    if excess <= 0:
        return list(notified)
    kept: list[str] = []
    for key in notified:
        if excess > 0 and key not in live:
            excess -= 1
            continue
        kept.append(key)
    return kept


@dataclass(frozen=True)
class _Notifying:
    """The notification side of a plan."""

    decision: EscalationDecision | None
    due: tuple[Due, ...]
    cursor: EscalationStatus
    trouble: tuple[str, ...] = ()
    """The channels told of trouble in the episode (breaches; the post-mortem's reminders)."""
    live: frozenset[str] = frozenset()
    """The keys that may still be due (never pruned from ``notified``)."""


def _notifying(
    policy: EscalationPolicy | None,
    selection: Selection,
    uid: str,
    facts: EpisodeFacts,
    clock: Clock,
    latest_update: datetime.datetime | None,
    breaches: Sequence[SLABreach],
    actions: Sequence[ActionRecord],
    cursor: EscalationStatus,
    sla: EffectiveSLA,
    now: datetime.datetime,
) -> _Notifying:
    if policy is None:
        # Nothing is sent without a policy; the cursor keeps what it knew, for when one applies again.
        return _Notifying(None, (), cursor.model_copy(update={"next_at": None}))
    decision = escalate(policy, selection.severity, uid, facts, cursor, now, sla)
    done = set(cursor.notified) | {page.key for page in decision.pages}
    reached = reached_channels(policy, selection.severity, uid, facts, decision.round, done)
    told_of_trouble = breach_channels(policy, selection.severity, reached)
    notices = breach_notices(policy, uid, facts, breaches, told_of_trouble, done)
    notices += action_notices(uid, facts, actions, told_of_trouble, done)
    done |= {notice.key for notice in notices}
    told = breach_channels_told(policy, uid, facts.episode, breaches, done)
    others = announcements(policy, uid, facts, clock, latest_update, reached, told, done)
    live = live_page_keys(policy, uid, facts.episode, decision.round) | live_announcement_keys(
        policy, uid, facts, clock, latest_update, breaches, actions
    )
    new_cursor = EscalationStatus(
        round=decision.round,
        level=decision.level,
        level_name=decision.level_name,
        next_at=decision.next_at,
        notified=_prune(cursor.notified, live),
        exhausted=decision.exhausted,
    )
    return _Notifying(
        decision, (*decision.pages, *notices, *others), new_cursor, tuple(told_of_trouble), frozenset(live)
    )


def plan(incident: Incident, selection: Selection, now: datetime.datetime, *, recent_actions: int = 0) -> Plan:
    """What ``incident``'s status should be at ``now`` under ``selection``, what is due, and when to wake.

    ``recent_actions`` is how many actions the policy's incidents started in the last hour (its
    ``guards.maxActionsPerHour``). See the module doc for the guarantees; DESIGN.md for the rules.
    """
    now = utc(now)
    policy = selection.policy
    generation = incident.metadata.generation
    first_visit = incident.status.episode is None
    changes: list[_Change] = []

    window = reopen_window(policy)
    status, facts, reopened = _current_episode(incident, policy, window, now)
    if reopened is not None:
        changes.append(reopened)
    baseline = status  # transitions compare against the episode as it stood before this plan

    sla_rules = policy.spec.sla_for(selection.severity) if policy is not None else default_sla(selection.severity)
    hours = policy.spec.business_hours if policy is not None else None
    assert status.started_at is not None
    clock = clock_for(sla_rules, facts, incident.spec, selection.type, status.started_at, now, hours)
    recorded = status.sla.breaches if status.sla is not None else []
    new_breaches = detect_breaches(clock, facts, recorded, now)
    breaches = keep_breaches([*recorded, *new_breaches])
    latest_update = status_update_at(facts)

    uid = incident_uid(incident)
    acted = acting.ledger(
        incident,
        selection,
        resolved=facts.resolved is not None,
        operator_namespace=selection.operator_namespace,
        recent=recent_actions,
        now=now,
    )
    cursor = status.escalation or EscalationStatus()
    notifying = _notifying(
        policy, selection, uid, facts, clock, latest_update, breaches, acted.records, cursor, sla_rules, now
    )

    pm = postmortems.decide(incident, status, facts, sla_rules, policy, uid, notifying.trouble, cursor.notified, now)
    cursor_now = notifying.cursor
    if pm.live_keys:
        cursor_now = cursor_now.model_copy(
            update={"notified": _prune(cursor.notified, set(notifying.live | pm.live_keys))}
        )
    outstanding = postmortem_outstanding(incident, policy, selection.severity)
    closed = is_closed(status.phase, facts, window, outstanding, now)

    conditions = _conditions(
        status,
        [
            _ready(selection),
            *lifecycle_conditions(facts, status),
            breach_condition(breaches),
            exhausted_condition(policy, notifying.decision, facts),
        ],
        now,
        generation,
    )

    new_status = status.model_copy(
        update={
            "observed_generation": generation,
            "phase": phase_of(conditions, closed),
            "conditions": conditions,
            "severity": selection.severity,
            "type": selection.type,
            "escalation_policy": selection.ref,
            "sla": SLAStatus(
                acknowledge_by=clock.acknowledge_by,
                resolve_by=clock.resolve_by,
                next_update_by=clock.next_update_by,
                next_deadline=next_deadline(clock, facts, now),
                breaches=breaches,
                notify_users_by=clock.notify_users_by,
                notify_regulator_by=clock.notify_regulator_by,
            ),
            "escalation": cursor_now,
            "metrics": metrics_for(facts),
            "acknowledged_by": facts.acknowledged.by if facts.acknowledged is not None else None,
            "reopen_until": closes_at(facts, window),
            "actions": acted.records,
            "postmortem": pm.postmortem,
            "assessment": pm.assessment,
        }
    )

    if first_visit:
        changes.insert(0, _triggered(incident, selection, now))
    changes += _transitions(baseline, new_status, selection, facts, new_breaches, notifying.due, now)
    changes += [_Change(transition, now) for transition in acted.transitions]
    changes += [_Change(transition, at) for transition, at in pm.transitions]
    entries = [*clamp_timeline(incident.status.clamped_times, new_status.clamped_times), *_timeline_entries(changes)]
    new_status = new_status.model_copy(update={"timeline": timeline.append(new_status.timeline, entries)})

    wake_at = _wake_at(clock, facts, notifying.decision, window, outstanding, now)
    if pm.wake_at is not None:
        wake_at = min(wake_at, pm.wake_at) if wake_at is not None else pm.wake_at
    return Plan(
        status=new_status,
        due=(*notifying.due, *pm.due),
        transitions=tuple(change.transition for change in changes),
        wake_at=None if closed else wake_at,
    )


def _current_episode(
    incident: Incident, policy: EscalationPolicy | None, window: datetime.timedelta, now: datetime.datetime
) -> tuple[IncidentStatus, EpisodeFacts, _Change | None]:
    """The status with the first visit's fields, reopened if the alerts fire again; its episode's facts;
    the reopen's change, if this plan reopened it."""
    auto_resolve = policy.spec.alerts.auto_resolve if policy is not None else True
    status = _visited(incident, now)
    facts = episode_facts(incident.spec, status, auto_resolve)
    fired_at = should_reopen(status, facts, window)
    if fired_at is None:
        return status, facts, None
    status = start_episode(status, facts, fired_at, now)  # records the reopen on the timeline itself
    reopened = _Change(
        Transition(WARNING, reasons.REOPENED, f"the alerts fire again: episode {status.episode} started"),
        now,
        on_timeline=False,
    )
    return status, episode_facts(incident.spec, status, auto_resolve), reopened


def _conditions(
    status: IncidentStatus, values: Sequence[ConditionValue], now: datetime.datetime, generation: int | None
) -> list[Condition]:
    """``status``'s conditions with ``values`` set (``lastTransitionTime`` moves only on a status change)."""
    conditions = list(status.conditions)  # set_condition replaces items, never changes one
    for value in values:
        since = min(value.since, now) if value.since is not None else now
        cond.set_condition(conditions, value.type, value.status, value.reason, clip(value.message), since, generation)
    return conditions


def _wake_at(
    clock: Clock,
    facts: EpisodeFacts,
    decision: EscalationDecision | None,
    window: datetime.timedelta,
    outstanding_postmortem: bool,
    now: datetime.datetime,
) -> datetime.datetime | None:
    """The next moment something happens: a page or round, an SLA or update deadline, the chain running
    out, the end of the reopen window. Always after ``now``: what is due at ``now`` is in ``due``."""
    moments = wake_times(clock, facts, now)
    if decision is not None:
        moments += [m for m in (decision.next_at, decision.exhausts_at) if m is not None]
    end = closes_at(facts, window)
    if end is not None and not outstanding_postmortem:
        moments.append(end)
    return min((m for m in moments if m > now), default=None)


def _triggered(incident: Incident, selection: Selection, now: datetime.datetime) -> _Change:
    policy = f"policy {selection.ref}" if selection.ref else "no escalation policy"
    drill = "DRILL: " if incident.spec.drill else ""
    return _Change(
        Transition(
            NORMAL,
            reasons.TRIGGERED,
            clip(f"{drill}{selection.severity.value} incident triggered: {incident.spec.title} ({policy})"),
        ),
        now,
    )


def _normal(reason: str, message: str, at: datetime.datetime, actor: str | None = timeline.ACTOR_OPERATOR) -> _Change:
    return _Change(Transition(NORMAL, reason, clip(message)), at, actor)


def _warning(reason: str, message: str, at: datetime.datetime) -> _Change:
    return _Change(Transition(WARNING, reason, clip(message)), at)


def _policy_changes(
    baseline: IncidentStatus, new: IncidentStatus, selection: Selection, now: datetime.datetime
) -> list[_Change]:
    before = cond.get_condition(baseline.conditions, cond.READY)
    after = cond.get_condition(new.conditions, cond.READY)
    assert after is not None
    if after.status is ConditionStatus.FALSE:
        if before is None or before.status is not ConditionStatus.FALSE or before.reason != after.reason:
            return [_warning(selection.reason, selection.message, now)]
        return []
    if before is not None and before.status is ConditionStatus.FALSE:
        return [_normal(reasons.POLICY_SELECTED, selection.message, now)]
    if baseline.escalation_policy is not None and baseline.escalation_policy != new.escalation_policy:
        return [
            _normal(
                reasons.POLICY_CHANGED,
                f"EscalationPolicy {new.escalation_policy} now applies (was {baseline.escalation_policy})",
                now,
            )
        ]
    return []


def _severity_changes(baseline: IncidentStatus, selection: Selection, now: datetime.datetime) -> list[_Change]:
    severity = selection.severity.value
    if baseline.severity is None:
        by = f" by policy {selection.classified_by}" if selection.classified_by else ""
        if selection.severity_source == SOURCE_CLASSIFICATION:
            return [_normal(reasons.CLASSIFIED, f"classified {severity}{by}", now)]
        if selection.severity_source == SOURCE_DEFAULT:
            return [_normal(reasons.DEFAULT_SEVERITY, f"no classification rule matched: {severity}{by}", now)]
        return []
    if baseline.severity is not selection.severity:
        return [
            _normal(
                reasons.SEVERITY_CHANGED,
                f"severity {baseline.severity.value} -> {severity} ({selection.severity_source}):"
                " deadlines and levels re-evaluated",
                now,
            )
        ]
    return []


def _lifecycle_changes(baseline: IncidentStatus, new: IncidentStatus, facts: EpisodeFacts) -> list[_Change]:
    out: list[_Change] = []
    steps = (
        (cond.ACKNOWLEDGED, reasons.ACKNOWLEDGED, "acknowledged", facts.acknowledged),
        (cond.CONTAINED, reasons.CONTAINED, "contained", facts.contained),
        (cond.RESOLVED, reasons.RESOLVED, "resolved", facts.resolved),
    )
    for type_, reason, verb, mark in steps:
        if mark is None or cond.is_true(baseline.conditions, type_) or not cond.is_true(new.conditions, type_):
            continue
        how = "every alert of the group resolved" if mark.by == timeline.ACTOR_ALERTMANAGER else f"by {mark.by}"
        out.append(_normal(reason, f"{verb} {how}", mark.at, mark.by))
    return out


def _escalation_changes(
    baseline: IncidentStatus, new: IncidentStatus, due: Sequence[Due], now: datetime.datetime
) -> list[_Change]:
    before = baseline.escalation or EscalationStatus()
    after = new.escalation or EscalationStatus()
    out: list[_Change] = []
    if after.round > before.round:
        out.append(
            _normal(
                reasons.ESCALATION_ROUND_STARTED,
                f"round {after.round + 1}: nobody acknowledged, paging the chain again",
                now,
            )
        )
    if after.level is not None and (before.level is None or after.level > before.level):
        channels = [d.channel for d in due if d.level == after.level]
        told = f": notifying {', '.join(channels)}" if channels else ""
        out.append(_normal(reasons.ESCALATED, f"level {after.level_name} reached{told}", now))
    if after.exhausted and not before.exhausted:
        out.append(
            _warning(reasons.ESCALATION_EXHAUSTED, "every level and round was paged and nobody acknowledged", now)
        )
    return out


def _transitions(
    baseline: IncidentStatus,
    new: IncidentStatus,
    selection: Selection,
    facts: EpisodeFacts,
    new_breaches: Sequence[SLABreach],
    due: Sequence[Due],
    now: datetime.datetime,
) -> list[_Change]:
    """The Events of this plan: what changed between the episode as it stood and the new status."""
    changes = [
        *_policy_changes(baseline, new, selection, now),
        *_severity_changes(baseline, selection, now),
        *_lifecycle_changes(baseline, new, facts),
        *(_warning(breach_event_reason(b.kind), f"SLA breached: {describe_breach(b)}", now) for b in new_breaches),
        *_escalation_changes(baseline, new, due, now),
    ]
    if new.phase is Phase.CLOSED and baseline.phase is not Phase.CLOSED:
        changes.append(_normal(reasons.CLOSED, "closed: the reopen window passed", now))
    return changes


def _timeline_entries(changes: Sequence[_Change]) -> list[TimelineEntry]:
    return [
        timeline.entry(change.at, change.transition.reason, change.transition.message, change.actor)
        for change in changes
        if change.on_timeline
    ]


def _outcome(outcome: str) -> NotificationOutcome:
    try:
        return _OUTCOMES[outcome]
    except KeyError:
        raise ValueError(f"unknown delivery outcome {outcome!r}; expected one of {', '.join(_OUTCOMES)}") from None


def _delivery_entries(deliveries: Sequence[tuple[Due, str, int, str]], now: datetime.datetime) -> list[TimelineEntry]:
    """One timeline entry per (event, level) of a batch: "escalated (team-lead): email sent, slack failed (...)"."""
    groups: dict[tuple[str, str | None, str | None], list[str]] = {}
    kinds: dict[tuple[str, str | None, str | None], set[NotificationOutcome]] = {}
    for due, outcome, _attempts, message in deliveries:
        group = (due.event, due.level_name, due.detail)
        result = _outcome(outcome)
        text = f"{due.channel} {result.value.lower()}"
        if result is not NotificationOutcome.SENT and message:
            text += f" ({message})"
        groups.setdefault(group, []).append(text)
        kinds.setdefault(group, set()).add(result)
    entries = []
    for (event, level_name, detail), texts in groups.items():
        outcomes = kinds[(event, level_name, detail)]
        if outcomes & {NotificationOutcome.FAILED, NotificationOutcome.PENDING}:
            kind = reasons.NOTIFICATION_FAILED  # failed for good, or failed and waiting for a retry
        elif outcomes == {NotificationOutcome.SKIPPED}:
            kind = reasons.NOTIFICATION_SKIPPED
        else:
            kind = reasons.NOTIFICATION_SENT
        label = f"{event} ({level_name or detail})" if (level_name or detail) else event
        entries.append(timeline.entry(now, kind, f"{label}: {', '.join(texts)}"))
    return entries


def record_deliveries(
    status: IncidentStatus, deliveries: Sequence[tuple[Due, str, int, str]], now: datetime.datetime
) -> IncidentStatus:
    """``status`` with the outcome of each ``(due, outcome, attempts, message)`` recorded.

    ``outcome`` is ``Delivered`` (or ``Sent``), ``Failed``, ``Skipped`` or
    ``Pending``. The first three count as done: the key joins
    ``escalation.notified`` and is never due again, and escalation goes on to
    the next channel and level. ``Pending`` (a delivery still being retried)
    records its NotificationRecord but does not add the key to
    ``escalation.notified``: the key stays due until a later outcome is
    recorded, so a crash while retrying plans it again under the same key.
    Adds a NotificationRecord per delivery (newest :data:`NOTIFICATIONS_CAP`
    kept; a key recorded again replaces its record), moves ``escalation.level``
    up to the highest level delivered, and adds timeline entries.
    """
    if not deliveries:
        return status
    now = utc(now)
    cursor = status.escalation or EscalationStatus()
    notified = list(cursor.notified)
    known = set(notified)
    level, level_name = cursor.level, cursor.level_name
    records = {record.key: record for record in status.notifications}  # insertion order: oldest first
    for due, outcome, attempts, message in deliveries:
        records.pop(due.key, None)
        records[due.key] = NotificationRecord(
            key=due.key,
            channel=due.channel,
            event=due.event,
            level=due.level_name,
            at=now,
            outcome=_outcome(outcome),
            attempts=max(0, attempts),
            message=clip(message) if message else None,
        )
        if due.key not in known and _outcome(outcome) is not NotificationOutcome.PENDING:
            notified.append(due.key)
            known.add(due.key)
        if due.level is not None and (level is None or due.level > level):
            level, level_name = due.level, due.level_name
    return status.model_copy(
        update={
            "notifications": list(records.values())[-NOTIFICATIONS_CAP:],
            "escalation": cursor.model_copy(
                update={"notified": notified[-NOTIFIED_CAP:], "level": level, "level_name": level_name}
            ),
            "timeline": timeline.append(status.timeline, _delivery_entries(deliveries, now)),
        }
    )
