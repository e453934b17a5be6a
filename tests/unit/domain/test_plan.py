"""The entry point: idempotence, record_deliveries, and the bounds that keep an Incident small."""

from __future__ import annotations

import pytest

from incidentops.api import reasons
from incidentops.api.incident import NotificationOutcome
from incidentops.domain.plan import (
    NOTIFICATIONS_CAP,
    NOTIFIED_CAP,
    Due,
    plan,
    record_deliveries,
)
from incidentops.domain.selection import select_policy
from incidentops.domain.timeline import TIMELINE_CAP

from .builders import OPERATOR_NS, Simulation, at, delivered, incident, level, mark, policy, with_status


def first_plan(**incident_args: object) -> tuple[object, object]:
    p = policy(levels=[level("on-call", notify=["pager", "chat"]), level("lead", "5m", notify=["lead"])])
    inc = incident(**incident_args)  # type: ignore[arg-type]
    selection = select_policy(inc, [p], OPERATOR_NS)
    return inc, selection


def test_asking_twice_gives_the_same_answer() -> None:
    inc, selection = first_plan()
    assert plan(inc, selection, at(7)) == plan(inc, selection, at(7))  # type: ignore[arg-type]


def test_planning_on_its_own_status_changes_nothing() -> None:
    inc, selection = first_plan()
    first = plan(inc, selection, at(7))  # type: ignore[arg-type]
    again = plan(with_status(inc, first.status), selection, at(7))  # type: ignore[arg-type]
    assert again.status == first.status
    assert again.due == first.due  # not recorded yet: still due, under the same keys
    assert again.transitions == ()


def test_record_deliveries() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(6))  # type: ignore[arg-type]
    assert [d.level_name for d in result.due] == ["on-call", "on-call", "lead"]
    outcomes = [
        (result.due[0], "Delivered", 1, "202 Accepted"),
        (result.due[1], "Failed", 3, "HTTP 500"),
        (result.due[2], "Skipped", 0, "Secret missing"),
    ]
    status = record_deliveries(result.status, outcomes, at(6))
    assert status.escalation is not None
    assert status.escalation.notified == [d.key for d in result.due]
    assert (status.escalation.level, status.escalation.level_name) == (1, "lead")
    assert [(r.channel, r.level, r.outcome, r.attempts, r.message) for r in status.notifications] == [
        ("pager", "on-call", NotificationOutcome.SENT, 1, "202 Accepted"),
        ("chat", "on-call", NotificationOutcome.FAILED, 3, "HTTP 500"),
        ("lead", "lead", NotificationOutcome.SKIPPED, 0, "Secret missing"),
    ]
    kinds = [e.kind for e in status.timeline[-2:]]
    assert kinds == [reasons.NOTIFICATION_FAILED, reasons.NOTIFICATION_SKIPPED]
    # One entry per event and level, saying what became of each channel (and why, unless it was sent).
    assert [e.message for e in status.timeline[-2:]] == [
        "triggered (on-call): pager sent, chat failed (HTTP 500)",
        "escalated (lead): lead skipped (Secret missing)",
    ]
    # Nothing is due again, whatever the outcome.
    assert plan(with_status(inc, status), selection, at(6)).due == ()  # type: ignore[arg-type]


def test_an_announcement_is_recorded_under_its_event_and_a_breach_notice_under_its_kind() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.step(at(15))
    sim.edit(resolution=mark(16))
    sim.step(at(16))
    messages = [e.message for e in sim.status.timeline if e.kind == reasons.NOTIFICATION_SENT]
    assert messages == [
        "triggered (on-call): pager sent",
        "sla-breached (Acknowledge): pager sent",
        "update-due: pager sent",
        "resolved: pager sent",
    ]


def test_every_transition_is_an_event_kubernetes_takes() -> None:
    """Normal or Warning, with a reason and a message, whatever the plan went through."""
    p = policy(levels=[level("on-call"), level("lead", "5m", notify=["lead"])], repeat={"times": 1, "every": "10m"})
    sim = Simulation(incident(severity="P1"), [p])
    sim.run_until(at(30))
    sim.edit(acknowledgement=mark(31), containment=mark(32))
    sim.step(at(32))
    sim.edit(severity="P3", resolution=mark(40))
    sim.run_until(at(200), start=at(40))
    events = [t for plan_ in sim.plans for t in plan_.transitions]
    assert {t.type for t in events} == {"Normal", "Warning"}
    assert all(t.reason and t.message for t in events)
    assert {reasons.ESCALATED, reasons.ACKNOWLEDGED, reasons.RESOLVED, reasons.CLOSED} <= {t.reason for t in events}


def test_recording_a_key_again_replaces_its_record() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(0))  # type: ignore[arg-type]
    once = record_deliveries(result.status, delivered(result.due, "Failed"), at(0))
    twice = record_deliveries(once, delivered(result.due), at(1))
    assert len(twice.notifications) == len(result.due)
    assert {r.outcome for r in twice.notifications} == {NotificationOutcome.SENT}
    assert twice.escalation is not None and len(twice.escalation.notified) == len(result.due)


def test_a_pending_delivery_is_recorded_but_stays_due() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(0))  # type: ignore[arg-type]
    page = result.due[0]
    pending = record_deliveries(result.status, [(page, "Pending", 2, "HTTP 503")], at(0))
    assert pending.escalation is not None and page.key not in pending.escalation.notified
    record = next(r for r in pending.notifications if r.key == page.key)
    assert (record.outcome, record.attempts, record.message) == (NotificationOutcome.PENDING, 2, "HTTP 503")
    again = plan(with_status(inc, pending), selection, at(1))  # type: ignore[arg-type]
    assert page.key in {d.key for d in again.due}, "still due: a restart sends it again under its key"
    sent = record_deliveries(pending, [(page, "Delivered", 3, "")], at(1))
    assert sent.escalation is not None and page.key in sent.escalation.notified
    assert [r.outcome for r in sent.notifications if r.key == page.key] == [NotificationOutcome.SENT]


def test_record_nothing_is_the_same_status() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(0))  # type: ignore[arg-type]
    assert record_deliveries(result.status, [], at(0)) is result.status


def test_unknown_outcomes_are_refused() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown delivery outcome"):
        record_deliveries(result.status, [(result.due[0], "Maybe", 1, "")], at(0))


def test_due_at_is_when_it_became_due() -> None:
    inc, selection = first_plan()
    result = plan(inc, selection, at(9))  # type: ignore[arg-type]
    assert [d.at for d in result.due] == [at(0), at(0), at(5)]
    assert isinstance(result.due[0], Due)


def test_status_round_trips_through_json() -> None:
    """Everything written fits the API's schema (max lengths, patterns)."""
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call"), level("cto", "1h", until="resolved")])])
    sim.run_until(at(300))
    body = sim.status.to_dict()
    assert type(sim.status).model_validate(body) == sim.status


def test_a_long_incident_stays_within_bounds_and_never_resends() -> None:
    """Three days of a P1 with updates due every 15 minutes to seven channels: far more keys than
    ``notified`` may hold; the stale ones go, and nothing is sent twice."""
    channels = [f"c{i}" for i in range(5)]
    p = policy(
        levels=[
            level("on-call", notify=channels),
            level("cto", "2h", until="resolved", notify=["cto", "board"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1))
    sim.run_until(at(72 * 60), start=at(2))
    keys = [d.key for _, d in sim.sent]
    assert len(keys) == len(set(keys)) > NOTIFIED_CAP
    assert [x[1] for x in sim.pages()].count("cto") == 2
    assert len(sim.events("acknowledged")) == 5
    assert sim.status.escalation is not None and len(sim.status.escalation.notified) <= NOTIFIED_CAP
    assert len(sim.status.notifications) == NOTIFICATIONS_CAP
    assert len(sim.status.timeline) == TIMELINE_CAP
    assert len(sim.status.to_dict().__repr__()) < 64 * 1024
