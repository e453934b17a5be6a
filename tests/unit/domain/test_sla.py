"""The SLA clock: the defaults table, breaches (once), update reminders, regulatory clocks."""

from __future__ import annotations

import datetime

import pytest

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.incident import BreachKind
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, Simulation, at, incident, level, mark, policy

H = 60  # minutes


@pytest.mark.parametrize(
    ("severity", "acknowledge", "resolve", "update"),
    [
        ("P1", 15, 4 * H, 15),
        ("P2", 1 * H, 24 * H, 1 * H),
        ("P3", 4 * H, 72 * H, 4 * H),
        ("P4", 24 * H, 168 * H, 24 * H),
    ],
)
def test_defaults_table(severity: str, acknowledge: int, resolve: int, update: int) -> None:
    for policies in ([policy(levels=[level("a")])], []):  # with a policy that sets nothing, and with none
        inc = incident(severity=severity)
        result = plan(inc, select_policy(inc, policies, OPERATOR_NS), at(0))
        sla = result.status.sla
        assert sla is not None
        assert (sla.acknowledge_by, sla.resolve_by, sla.next_update_by) == (at(acknowledge), at(resolve), at(update))
        assert sla.next_deadline == min(at(acknowledge), at(update))
        assert result.wake_at == at(min(acknowledge, update))


def test_policy_values_override_the_defaults_field_by_field() -> None:
    p = policy(levels=[level("a")], severities={"P1": {"acknowledgeWithin": "5m"}})
    inc = incident(severity="P1")
    sla = plan(inc, select_policy(inc, [p], OPERATOR_NS), at(0)).status.sla
    assert sla is not None
    assert (sla.acknowledge_by, sla.resolve_by) == (at(5), at(4 * H))


def test_a_missed_acknowledge_deadline_breaches_once() -> None:
    p = policy(levels=[level("on-call", notify=["pager", "chat"])])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    breach = sim.step(at(15))
    sla = sim.status.sla
    assert sla is not None
    assert [(b.kind, b.deadline, b.at) for b in sla.breaches] == [(BreachKind.ACKNOWLEDGE, at(15), at(15))]
    assert ("Warning", reasons.ACKNOWLEDGE_DEADLINE_MISSED) in [(t.type, t.reason) for t in breach.transitions]
    condition = cond.get_condition(sim.status.conditions, cond.SLA_BREACHED)
    assert condition is not None and condition.status.value == "True" and condition.reason == reasons.SLA_BREACHED
    assert condition.message == "acknowledge deadline 2025-01-01T10:15:00Z missed"
    # notifyOnBreach defaults to the first level's channels.
    assert [(d.channel, d.detail) for _, d in sim.events("sla-breached")] == [
        ("pager", "Acknowledge"),
        ("chat", "Acknowledge"),
    ]
    sim.run([at(16), at(20), at(29)])
    assert len(sim.status.sla.breaches) == 1  # type: ignore[union-attr]
    assert len(sim.events("sla-breached")) == 2


def test_breach_notices_go_to_notify_on_breach() -> None:
    p = policy(levels=[level("on-call")], notify_on_breach=["managers"])
    sim = Simulation(incident(severity="P1"), [p])
    sim.run([at(0), at(16)])
    assert [d.channel for _, d in sim.events("sla-breached")] == ["managers"]


def test_acknowledged_in_time_means_no_breach_and_no_acknowledge_deadline() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(10))
    sim.run([at(11), at(16)])
    sla = sim.status.sla
    assert sla is not None and sla.breaches == []
    assert sla.next_deadline == at(30)  # the update deadline at 15m passed; the next is at 30m
    assert not cond.is_true(sim.status.conditions, cond.SLA_BREACHED)


def test_a_late_acknowledgement_learned_afterwards_is_recorded_not_announced() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(20))
    sim.step(at(21))  # the operator was away at 15m
    sla = sim.status.sla
    assert sla is not None and [b.kind for b in sla.breaches] == [BreachKind.ACKNOWLEDGE]
    assert sim.events("sla-breached") == []


def test_a_missed_resolve_deadline_breaches() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1))
    sim.run_until(at(4 * H), start=at(2))
    sla = sim.status.sla
    assert sla is not None and [b.kind for b in sla.breaches] == [BreachKind.RESOLVE]
    assert [d.detail for _, d in sim.events("sla-breached")] == ["Resolve"]


def test_a_missed_update_deadline_reminds_and_rolls_on() -> None:
    p = policy(levels=[level("on-call", notify=["pager", "chat"]), level("lead", "20m", notify=["lead"])])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1))
    sim.step(at(2))
    sim.step(at(15))
    assert [(d.channel, d.scheduled_at) for _, d in sim.events("update-due")] == [("pager", at(15)), ("chat", at(15))]
    assert sim.status.sla is not None and sim.status.sla.next_update_by == at(30)
    sim.step(at(16))
    assert len(sim.events("update-due")) == 2  # once per deadline
    sim.step(at(30))
    assert [d.scheduled_at for _, d in sim.events("update-due")][2:] == [at(30), at(30)]
    assert sim.status.sla.breaches == []  # a reminder, not a breach


def test_a_status_update_resets_the_update_deadline() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1), statusUpdate=mark(10, message="investigating"))
    sim.step(at(11))
    assert sim.status.sla is not None and sim.status.sla.next_update_by == at(25)
    sim.step(at(16))
    assert sim.events("update-due") == []
    sim.step(at(25))
    assert [d.scheduled_at for _, d in sim.events("update-due")] == [at(25)]


def test_only_the_latest_missed_update_is_reminded_about() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1))
    sim.step(at(2))
    sim.step(at(50))  # three deadlines passed while the operator was away
    assert [d.scheduled_at for _, d in sim.events("update-due")] == [at(45)]
    assert sim.status.sla is not None and sim.status.sla.next_update_by == at(60)


def test_resolution_ends_every_deadline() -> None:
    p = policy(levels=[level("on-call")])
    sim = Simulation(incident(severity="P1"), [p], outcome="Delivered")
    sim.step(at(0))
    sim.edit(resolution=mark(5))
    result = sim.step(at(6))
    sla = sim.status.sla
    assert sla is not None
    assert (sla.next_update_by, sla.next_deadline) == (None, None)
    # P1 needs a post-mortem (defaults table, 48h): nothing left to wake up for but its due time.
    assert result.wake_at == at(5) + datetime.timedelta(hours=48)


@pytest.mark.parametrize(
    ("type_", "exposed", "expected"),
    [("security", True, True), ("security", False, False), ("data", True, False), (None, True, False)],
)
def test_regulatory_clocks(type_: str | None, exposed: bool, expected: bool) -> None:
    inc = incident(severity="P2", type=type_, impact={"dataExposed": exposed})
    sla = plan(inc, select_policy(inc, [], OPERATOR_NS), at(0)).status.sla
    assert sla is not None
    deadline = at(72 * H) if expected else None
    assert (sla.notify_users_by, sla.notify_regulator_by) == (deadline, deadline)


def test_regulatory_clock_runs_from_discovery_across_a_reopen() -> None:
    p = policy(levels=[level("on-call")])
    inc = incident(severity="P2", type="security", impact={"dataExposed": True})
    sim = Simulation(inc, [p])
    sim.step(at(0))
    sim.incident = sim.incident.model_copy(
        update={"status": sim.status.model_copy(update={"episode": 2, "episode_started_at": at(120)})}
    )
    sim.step(at(121))
    assert sim.status.sla is not None and sim.status.sla.notify_users_by == at(72 * H)


def test_next_deadline_is_the_earliest_open_one() -> None:
    p = policy(levels=[level("a")], severities={"P2": {"acknowledgeWithin": "2h", "updateEvery": "30m"}})
    inc = incident(severity="P2", type="security", impact={"dataExposed": True})
    result = plan(inc, select_policy(inc, [p], OPERATOR_NS), at(0))
    assert result.status.sla is not None
    assert result.status.sla.next_deadline == at(30)
    assert result.wake_at == at(30)


def test_a_severity_change_re_derives_deadlines() -> None:
    p = policy(levels=[level("a")])
    sim = Simulation(incident(severity="P3"), [p])
    sim.step(at(0))
    assert sim.status.sla is not None and sim.status.sla.acknowledge_by == at(4 * H)
    sim.edit(severity="P1")
    sim.step(at(20))
    sla = sim.status.sla
    assert sla is not None and sla.acknowledge_by == at(15)
    assert [b.deadline for b in sla.breaches] == [at(15)]
    assert sim.plans[-1].wake_at == at(30)


def test_zero_update_cadence_means_no_reminders() -> None:
    p = policy(levels=[level("a")], severities={"P1": {"updateEvery": "0s"}})
    inc = incident(severity="P1")
    result = plan(inc, select_policy(inc, [p], OPERATOR_NS), at(30))
    assert result.status.sla is not None and result.status.sla.next_update_by is None
    assert result.wake_at == at(4 * H)  # the resolve deadline: no update deadline to wake for


def test_acknowledging_at_the_deadline_itself_meets_it() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(15))
    sim.step(at(15))
    assert sim.status.sla is not None and sim.status.sla.breaches == []


def test_a_resolution_in_time_is_no_breach_however_late_the_operator_looks() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(5), resolution=mark(30))
    sim.step(at(5 * H))
    assert sim.status.sla is not None and sim.status.sla.breaches == []


def test_with_every_deadline_behind_it_there_is_no_next_deadline() -> None:
    p = policy(levels=[level("a")], severities={"P1": {"updateEvery": "0s"}})
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(5))
    sim.step(at(5 * H))
    assert sim.status.sla is not None and sim.status.sla.next_deadline is None
    assert [b.kind for b in sim.status.sla.breaches] == [BreachKind.RESOLVE]
