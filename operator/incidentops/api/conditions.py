"""Condition types of both kinds, and pure helpers to read and set conditions.

Where it sits: ``incidentops.api`` (pure). The domain decides each condition's
status, reason and message; :func:`set_condition` applies that to a status's
``conditions`` list the way Argo Rollouts' ``SetRolloutCondition`` does:
``lastTransitionTime`` only moves when the status changes, and the caller learns
whether anything changed (so an unchanged status is not written).

Condition types are adjectives or past participles; what True, False and
Unknown mean for each is documented on the constant. Reasons live in
``incidentops.api.reasons``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from incidentops.api import reasons
from incidentops.api.common import Condition, ConditionStatus

__all__ = [
    "ACKNOWLEDGED",
    "ALERTS_RESOLVED",
    "CONTAINED",
    "ESCALATION_EXHAUSTED",
    "INCIDENT_CONDITION_TYPES",
    "POLICY_CONDITION_TYPES",
    "READY",
    "RESOLVED",
    "SLA_BREACHED",
    "get_condition",
    "initial_conditions",
    "is_false",
    "is_true",
    "set_condition",
]

READY = "Ready"
"""Incident: True when a policy is in effect and the incident is classified; False with the reason (e.g.
NoEscalationPolicy, PolicyRefOutOfScope) otherwise. Policy: True when every channel's Secret exists, is
labelled and has its key; False with the reason (SecretNotFound, SecretNotLabelled, SecretKeyMissing)."""

ACKNOWLEDGED = "Acknowledged"
"""Incident: True when someone acknowledged in the current episode (reason AcknowledgedBy); False while
awaiting acknowledgement (AwaitingAcknowledgement)."""

CONTAINED = "Contained"
"""Incident: True when the impact is contained in the current episode (ContainedBy); False while not."""

RESOLVED = "Resolved"
"""Incident: True when resolved in the current episode, by a person (ResolvedBy) or because the alerts
resolved (AlertsResolved); False while open."""

ALERTS_RESOLVED = "AlertsResolved"
"""Incident: True when every alert of the group has resolved; False while any fires; Unknown for incidents
without alerts (NoAlerts)."""

SLA_BREACHED = "SLABreached"
"""Incident: True once a deadline of the current episode was missed (the reason says which); False while
every deadline is met (NotBreached)."""

ESCALATION_EXHAUSTED = "EscalationExhausted"
"""Incident: True when every level and round has been notified without acknowledgement and the last people
paged had the time the policy gives (acknowledgeWithin after the last page, at least until the last round
would repeat); False while escalation goes on (EscalationInProgress) or was stopped by acknowledgement."""

INCIDENT_CONDITION_TYPES: tuple[str, ...] = (
    READY,
    ACKNOWLEDGED,
    CONTAINED,
    RESOLVED,
    ALERTS_RESOLVED,
    SLA_BREACHED,
    ESCALATION_EXHAUSTED,
)
"""Every condition type of an Incident, each set from the first visit."""

POLICY_CONDITION_TYPES: tuple[str, ...] = (READY,)
"""Every condition type of an EscalationPolicy."""


def get_condition(conditions: Iterable[Condition], type: str) -> Condition | None:
    """The condition of ``type``, or None."""
    return next((condition for condition in conditions if condition.type == type), None)


def is_true(conditions: Iterable[Condition], type: str) -> bool:
    """Whether the condition of ``type`` is present and True."""
    condition = get_condition(conditions, type)
    return condition is not None and condition.status is ConditionStatus.TRUE


def is_false(conditions: Iterable[Condition], type: str) -> bool:
    """Whether the condition of ``type`` is present and False."""
    condition = get_condition(conditions, type)
    return condition is not None and condition.status is ConditionStatus.FALSE


def set_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus | bool | str | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    observed_generation: int | None,
) -> bool:
    """Set the condition of ``type`` in ``conditions`` (in place); return whether anything changed.

    ``status`` may be a ConditionStatus, its text, a bool, or None for Unknown.
    ``lastTransitionTime`` becomes ``now`` when the condition is new or its status
    changes, and is kept when only the reason, message or generation change.
    """
    new_status = ConditionStatus.of(status)
    for index, current in enumerate(conditions):
        if current.type != type:
            continue
        if current.status is new_status:
            if (current.reason, current.message, current.observed_generation) == (
                reason,
                message,
                observed_generation,
            ):
                return False
            transition = current.last_transition_time
        else:
            transition = now
        conditions[index] = Condition(
            type=type,
            status=new_status,
            reason=reason,
            message=message,
            last_transition_time=transition,
            observed_generation=observed_generation,
        )
        return True
    conditions.append(
        Condition(
            type=type,
            status=new_status,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=observed_generation,
        )
    )
    return True


def initial_conditions(types: Iterable[str], now: datetime.datetime, generation: int | None) -> list[Condition]:
    """Every condition of ``types`` as Unknown, reason Initializing: what the first visit writes."""
    return [
        Condition(
            type=type,
            status=ConditionStatus.UNKNOWN,
            reason=reasons.INITIALIZING,
            message="",
            last_transition_time=now,
            observed_generation=generation,
        )
        for type in types
    ]
