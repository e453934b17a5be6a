"""Builders for domain tests: policies, incidents and a fast clock that drives plan/record.

Times are passed in (``at(minutes)``); nothing sleeps. :class:`Simulation` plays
the scheduler: plan, "send" everything due, record, and repeat, checking the
guarantees of ``incidentops.domain.plan`` at every step.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import settings

from incidentops.api.incident import Incident, IncidentStatus
from incidentops.api.policy import EscalationPolicy
from incidentops.domain.plan import Due, Plan, plan, record_deliveries
from incidentops.domain.selection import Selection, select_policy

OPERATOR_NS = "incidentops"
T0 = datetime.datetime(2025, 1, 1, 10, 0, tzinfo=datetime.UTC)


def examples(n: int) -> int:
    """``n`` examples for a property under Hypothesis's default profile (100 examples), proportionally fewer
    under a lighter one (``make mutation``'s, see tests/conftest.py); read when the test module is imported."""
    return max(1, n * settings.default.max_examples // 100)


def at(minutes: float = 0, seconds: float = 0) -> datetime.datetime:
    """T0 plus ``minutes`` and ``seconds``."""
    return T0 + datetime.timedelta(minutes=minutes, seconds=seconds)


def level(
    name: str,
    after: str | None = None,
    *,
    by_severity: dict[str, str] | None = None,
    until: str = "acknowledged",
    notify: Sequence[str] = ("pager",),
    during: str | None = None,
) -> dict[str, Any]:
    """A level; ``after`` defaults to ``0s`` unless ``by_severity`` is given."""
    out: dict[str, Any] = {"name": name, "until": until, "notify": list(notify)}
    if during is not None:
        out["during"] = during
    if by_severity is not None:
        out["afterBySeverity"] = by_severity
    else:
        out["after"] = after or "0s"
    return out


def policy(
    name: str = "default",
    namespace: str = OPERATOR_NS,
    *,
    levels: Iterable[dict[str, Any]] = (),
    repeat: dict[str, Any] | None = None,
    priority: int = 0,
    selector: dict[str, Any] | None = None,
    severities: dict[str, Any] | None = None,
    notify_on_breach: Sequence[str] | None = None,
    classification: dict[str, Any] | None = None,
    alerts: dict[str, Any] | None = None,
    channels: Iterable[dict[str, Any]] | None = None,
    business_hours: dict[str, Any] | None = None,
    communications: Sequence[str] | None = None,
) -> EscalationPolicy:
    """A policy; every channel a level, notifyOnBreach or communications names is defined as a plain webhook."""
    levels = list(levels)
    spec: dict[str, Any] = {"priority": priority, "levels": levels}
    names = [c for lvl in levels for c in lvl["notify"]] + list(notify_on_breach or []) + list(communications or [])
    spec["channels"] = (
        list(channels)
        if channels is not None
        else [{"name": n, "webhook": {"url": f"http://hooks.test/{n}"}} for n in dict.fromkeys(names)]
    )
    for key, value in (
        ("repeat", repeat),
        ("selector", selector),
        ("severities", severities),
        ("notifyOnBreach", list(notify_on_breach) if notify_on_breach is not None else None),
        ("classification", classification),
        ("alerts", alerts),
        ("businessHours", business_hours),
        ("communications", {"notify": list(communications)} if communications else None),
    ):
        if value is not None:
            spec[key] = value
    return EscalationPolicy.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def mark(minutes: float, by: str = "alice", **extra: Any) -> dict[str, Any]:
    """An acknowledgement/containment/resolution/statusUpdate body at T0 + ``minutes``."""
    return {"by": by, "at": at(minutes).isoformat(), **extra}


def incident(
    name: str = "inc",
    namespace: str = "team",
    *,
    severity: str | None = "P1",
    type: str | None = None,
    labels: dict[str, str] | None = None,
    source_labels: dict[str, str] | None = None,
    ref: dict[str, str] | None = None,
    created: datetime.datetime = T0,
    uid: str = "uid-1",
    generation: int = 1,
    status: IncidentStatus | None = None,
    **spec: Any,
) -> Incident:
    """An incident; extra keyword arguments go into the spec (camelCase keys)."""
    body: dict[str, Any] = {"title": "Checkout is down", **spec}
    if severity is not None:
        body["severity"] = severity
    if type is not None:
        body["type"] = type
    if source_labels is not None:
        body["source"] = {"kind": "alertmanager", "labels": source_labels}
    if ref is not None:
        body["escalationPolicyRef"] = ref
    meta = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": generation,
        "creationTimestamp": created.isoformat(),
        "labels": labels or {},
    }
    out = Incident.model_validate({"metadata": meta, "spec": body})
    return out if status is None else out.model_copy(update={"status": status})


def with_spec(inc: Incident, **changes: Any) -> Incident:
    """``inc`` with spec fields replaced (camelCase keys, as in YAML)."""
    body = inc.spec.to_dict()
    body.update(changes)
    return inc.model_copy(update={"spec": type(inc.spec).model_validate(body)})


def with_status(inc: Incident, status: IncidentStatus) -> Incident:
    return inc.model_copy(update={"status": status})


def delivered(due: Sequence[Due], outcome: str = "Delivered") -> list[tuple[Due, str, int, str]]:
    return [(d, outcome, 1, "" if outcome == "Delivered" else "boom") for d in due]


class Simulation:
    """Plays the scheduler against the domain with a fast clock."""

    def __init__(
        self,
        inc: Incident,
        policies: Sequence[EscalationPolicy],
        *,
        operator_namespace: str = OPERATOR_NS,
        outcome: str = "Delivered",
    ) -> None:
        self.incident = inc
        self.policies = list(policies)
        self.operator_namespace = operator_namespace
        self.outcome = outcome
        self.sent: list[tuple[datetime.datetime, Due]] = []
        self.plans: list[Plan] = []

    @property
    def status(self) -> IncidentStatus:
        return self.incident.status

    def selection(self) -> Selection:
        return select_policy(self.incident, self.policies, self.operator_namespace)

    def step(self, now: datetime.datetime) -> Plan:
        """Plan at ``now``, send everything due, record it; check the guarantees."""
        selection = self.selection()
        result = plan(self.incident, selection, now)
        again = plan(self.incident, selection, now)
        assert again == result, "asking twice must give the same answer"
        own = plan(with_status(self.incident, result.status), selection, now)
        assert own.transitions == (), f"planning on the plan's own status made transitions: {own.transitions}"
        assert own.due == result.due
        assert own.status == result.status
        status = record_deliveries(result.status, delivered(result.due, self.outcome), now)
        self.incident = with_status(self.incident, status)
        after = plan(self.incident, selection, now)
        assert after.due == (), f"due again after recording: {after.due}"
        assert after.wake_at is None or after.wake_at > now, "wake-up in the past after the due work"
        self.sent += [(now, d) for d in result.due]
        self.plans.append(result)
        return result

    def run(self, times: Iterable[datetime.datetime]) -> list[Plan]:
        return [self.step(t) for t in times]

    def run_until(self, end: datetime.datetime, start: datetime.datetime = T0) -> list[Plan]:
        """Step at ``start`` and then at every ``wake_at`` until ``end``: what the scheduler does."""
        plans = [self.step(start)]
        while plans[-1].wake_at is not None and plans[-1].wake_at <= end:
            plans.append(self.step(plans[-1].wake_at))
        return plans

    def edit(self, **spec: Any) -> None:
        self.incident = with_spec(self.incident, **spec)

    def pages(self) -> list[tuple[datetime.datetime, str, str, int]]:
        """(time, level, channel, round) of every page sent."""
        return [
            (t, d.level_name or "", d.channel, d.round) for t, d in self.sent if d.event in ("triggered", "escalated")
        ]

    def events(self, event: str) -> list[tuple[datetime.datetime, Due]]:
        return [(t, d) for t, d in self.sent if d.event == event]
