"""The escalation plan: levels in order and on time, acknowledgement, stakeholders, repeat rounds,
exhaustion, announcements, and keys."""

from __future__ import annotations

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.domain.escalation import notification_key, page_key
from incidentops.domain.plan import plan, record_deliveries
from incidentops.domain.selection import select_policy

from .builders import (
    OPERATOR_NS,
    Simulation,
    at,
    delivered,
    incident,
    level,
    mark,
    policy,
    with_status,
)


def three_levels(**extra: object) -> object:
    return policy(
        levels=[
            level("on-call", "0s", notify=["pager", "chat"]),
            level("team-lead", "5m", notify=["lead"]),
            level("manager", "10m", notify=["manager"]),
        ],
        **extra,  # type: ignore[arg-type]
    )


def test_p1_levels_fire_in_order_at_their_delays() -> None:
    sim = Simulation(incident(severity="P1"), [three_levels()])
    sim.run_until(at(12))
    assert sim.pages() == [
        (at(0), "on-call", "pager", 0),
        (at(0), "on-call", "chat", 0),
        (at(5), "team-lead", "lead", 0),
        (at(10), "manager", "manager", 0),
    ]
    events = [d.event for _, d in sim.sent if d.level_name is not None]
    assert events == ["triggered", "triggered", "escalated", "escalated"]
    cursor = sim.status.escalation
    assert cursor is not None
    assert (cursor.level, cursor.level_name) == (2, "manager")
    # Each level reached is an Event, in the plan that pages it.
    assert [(t.type, t.message) for plan_ in sim.plans for t in plan_.transitions if t.reason == reasons.ESCALATED] == [
        ("Normal", "level on-call reached: notifying pager, chat"),
        ("Normal", "level team-lead reached: notifying lead"),
        ("Normal", "level manager reached: notifying manager"),
    ]


def test_a_late_scheduler_catches_up_without_skipping_a_level() -> None:
    sim = Simulation(incident(severity="P1"), [three_levels()])
    sim.run([at(0), at(11)])
    assert [p[1] for p in sim.pages()] == ["on-call", "on-call", "team-lead", "manager"]
    assert all(t == at(11) for t, *_ in sim.pages()[2:])


def test_p3_follows_the_p3_delays() -> None:
    p = policy(
        levels=[
            level("first", by_severity={"P1": "0s", "P3": "2m"}),
            level("p1-only", by_severity={"P1": "1m"}, notify=["boss"]),
            level("second", by_severity={"P1": "5m", "P3": "30m"}, notify=["lead"]),
        ]
    )
    sim = Simulation(incident(severity="P3"), [p])
    sim.run_until(at(60))
    assert sim.pages() == [(at(2), "first", "pager", 0), (at(30), "second", "lead", 0)]
    assert sim.pages()[0][0] == at(2)
    assert [d.event for _, d in sim.sent if d.level_name] == ["triggered", "escalated"]


def test_acknowledgement_stops_paging_levels_but_not_stakeholders() -> None:
    p = policy(
        levels=[
            level("on-call", "0s", notify=["pager"]),
            level("team-lead", "15m", notify=["lead"]),
            level("cto", "2h", until="resolved", notify=["cto"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.run([at(0), at(5)])
    sim.edit(acknowledgement=mark(6))
    sim.run_until(at(180), start=at(7))
    levels_paged = [p[1] for p in sim.pages()]
    assert levels_paged == ["on-call", "cto"]
    assert ("cto", at(120)) in [(d.level_name, t) for t, d in sim.sent]
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert exhausted is not None and exhausted.reason == reasons.ESCALATION_STOPPED


def test_a_stakeholder_reached_after_the_acknowledgement_at_its_severitys_delay_is_not_told_of_it() -> None:
    """The time a channel was reached is its level's delay for the incident's severity, not another's."""
    p = policy(
        levels=[
            level("on-call", "0s", notify=["pager"]),
            level("cto", by_severity={"P1": "30m", "P2": "5m"}, until="resolved", notify=["cto"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(20))
    sim.run_until(at(40), start=at(20))
    assert [(t, name) for t, name, *_ in sim.pages()] == [(at(0), "on-call"), (at(30), "cto")]
    assert [d.channel for _, d in sim.events("acknowledged")] == ["pager"]


def test_a_channel_paged_before_a_severity_change_still_hears_of_the_resolution() -> None:
    p = policy(
        levels=[
            level("p2-pager", by_severity={"P2": "0s"}, notify=["p2"]),
            level("on-call", "0s", notify=["pager"]),
        ]
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.step(at(0))
    sim.edit(severity="P1")  # the p2 level no longer applies, but it was paged
    sim.step(at(1))
    sim.edit(resolution=mark(2))
    sim.step(at(2))
    assert [d.channel for _, d in sim.events("resolved")] == ["p2", "pager"]


def test_a_channel_first_paged_in_a_later_round_is_told_of_the_acknowledgement() -> None:
    """The operator was away during round 1: its pages are not sent late, round 2's are, and those it
    reached hear that someone acknowledged."""
    p = policy(levels=[level("on-call", "0s")], repeat={"times": 2, "every": "10m"})
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(15))
    assert sim.pages() == [(at(15), "on-call", "pager", 1)]
    sim.edit(acknowledgement=mark(16))
    sim.step(at(16))
    assert [d.channel for _, d in sim.events("acknowledged")] == ["pager"]


def test_acknowledged_is_announced_to_the_channels_reached() -> None:
    p = policy(
        levels=[
            level("on-call", "0s", notify=["pager", "chat"]),
            level("team-lead", "15m", notify=["lead"]),
            level("cto", "2h", until="resolved", notify=["cto", "chat"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.run([at(0)])
    sim.edit(acknowledgement=mark(3))
    sim.run_until(at(121), start=at(4))
    acks = sim.events("acknowledged")
    assert [(t, d.channel) for t, d in acks] == [(at(4), "pager"), (at(4), "chat")]
    # The stakeholder reached after the acknowledgement is not told "acknowledged" late ...
    sim.edit(resolution=mark(130, summary="fixed"))
    sim.step(at(131))
    # ... but everyone reached is told "resolved", once.
    assert [d.channel for _, d in sim.events("resolved")] == ["pager", "chat", "cto"]
    sim.step(at(132))
    assert len(sim.events("resolved")) == 3


def test_resolution_stops_stakeholders_too() -> None:
    p = policy(levels=[level("on-call", "0s"), level("cto", "1h", until="resolved", notify=["cto"])])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(resolution=mark(30))
    sim.run_until(at(300), start=at(31))
    assert [p[1] for p in sim.pages()] == ["on-call"]


def test_repeat_rounds_re_page_while_unacknowledged() -> None:
    p = policy(
        levels=[
            level("on-call", "0s", notify=["pager"]),
            level("team-lead", "10m", notify=["lead"]),
            level("cto", "50m", until="resolved", notify=["cto"]),
        ],
        repeat={"times": 2, "every": "30m"},
    )
    sim = Simulation(incident(severity="P4"), [p])
    sim.run_until(at(200))
    assert sim.pages() == [
        (at(0), "on-call", "pager", 0),
        (at(10), "team-lead", "lead", 0),
        (at(30), "on-call", "pager", 1),
        (at(40), "team-lead", "lead", 1),
        (at(50), "cto", "cto", 0),  # stakeholders never repeat
        (at(60), "on-call", "pager", 2),
        (at(70), "team-lead", "lead", 2),
    ]
    assert [d.event for _, d in sim.sent if d.level_name == "on-call"] == ["triggered", "escalated", "escalated"]
    round_events = [t.reason for plan_ in sim.plans for t in plan_.transitions]
    assert round_events.count(reasons.ESCALATION_ROUND_STARTED) == 2


def test_acknowledgement_freezes_the_round() -> None:
    p = policy(levels=[level("on-call", "0s")], repeat={"times": 5, "every": "10m"})
    sim = Simulation(incident(severity="P4"), [p])
    sim.run([at(0), at(10)])
    sim.edit(acknowledgement=mark(12))
    plans = sim.run_until(at(100), start=at(13))
    assert sim.status.escalation is not None and sim.status.escalation.round == 1
    assert plans[-1].status.escalation is not None and plans[-1].status.escalation.next_at is None
    assert len(sim.pages()) == 2
    # Looked at long after the rounds would have run, it is still round 2, and nobody is told otherwise.
    later = sim.step(at(100))
    assert sim.status.escalation is not None and sim.status.escalation.round == 1
    assert reasons.ESCALATION_ROUND_STARTED not in [t.reason for t in later.transitions]
    assert len(sim.pages()) == 2


def test_exhausted_once_the_last_round_would_have_repeated() -> None:
    # P1: acknowledge within 15m; the last round starts at 10m, its last page at 15m, it would repeat at 20m.
    p = policy(
        levels=[level("on-call", "0s"), level("lead", "5m", notify=["lead"])], repeat={"times": 1, "every": "10m"}
    )
    sim = Simulation(incident(severity="P1"), [p])
    plans = sim.run_until(at(29))
    assert [(t, name) for t, name, *_ in sim.pages()][-1] == (at(15), "lead")
    # The people paged at 15m get the 15m anyone gets to acknowledge: exhausted at 30m, not at 15m or 20m.
    assert plans[-1].wake_at == at(30)
    assert not sim.status.escalation or not sim.status.escalation.exhausted
    last = sim.step(at(30))
    assert sim.status.escalation is not None and sim.status.escalation.exhausted
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert ("Warning", reasons.ESCALATION_EXHAUSTED) in [(t.type, t.reason) for t in last.transitions]
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert exhausted is not None and exhausted.message == "every level was paged (2 rounds) and nobody acknowledged"
    # Acknowledging afterwards does not unsay it.
    sim.edit(acknowledgement=mark(31))
    sim.step(at(32))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_a_round_longer_than_the_acknowledge_time_exhausts_when_it_would_repeat() -> None:
    p = policy(levels=[level("on-call", "0s")], repeat={"times": 1, "every": "40m"})
    sim = Simulation(incident(severity="P1"), [p])
    plans = sim.run_until(at(79))
    assert [t for t, *_ in sim.pages()] == [at(0), at(40)]
    assert plans[-1].wake_at == at(80)  # 40m + 15m would be 55m, but the round runs until 80m
    sim.step(at(80))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_without_repeat_the_last_page_gets_the_acknowledge_time() -> None:
    # The regression: the lead, paged at 30m, after the 15m deadline, must not be "exhausted" in the same breath.
    p = policy(levels=[level("on-call", "0s"), level("lead", "30m", notify=["lead"])])
    sim = Simulation(incident(severity="P1"), [p])
    sim.run_until(at(29))
    sending = sim.step(at(30))
    assert [d.level_name for d in sending.due if d.level_name] == ["lead"]
    assert not cond.is_true(sending.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    sim.step(at(44, 59))
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    sim.step(at(45))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_with_no_time_to_acknowledge_the_last_page_still_gets_a_moment() -> None:
    p = policy(levels=[level("on-call", "0s")], severities={"P1": {"acknowledgeWithin": "0s"}})
    sim = Simulation(incident(severity="P1"), [p])
    first = sim.step(at(0))
    assert [d.level_name for d in first.due if d.level_name] == ["on-call"]
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED), "never in the plan that pages"
    assert first.wake_at == at(0, 1)
    sim.step(at(0, 1))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_a_repeat_without_spacing_notifies_once_and_never_loops() -> None:
    p = policy(levels=[level("cto", "0s", until="resolved", notify=["cto"])], repeat={"times": 3, "every": "0s"})
    sim = Simulation(incident(severity="P1"), [p])
    plans = sim.run_until(at(300))
    assert [(t, name) for t, name, *_ in sim.pages()] == [(at(0), "cto")]
    assert all(plan_.status.escalation is not None and plan_.status.escalation.round == 0 for plan_ in plans)


def test_a_single_level_is_exhausted_after_the_acknowledge_time() -> None:
    p = policy(levels=[level("on-call", "0s")])
    sim = Simulation(incident(severity="P1"), [p])
    first = sim.step(at(0))
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert first.wake_at == at(15)
    sim.step(at(15))
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert (
        exhausted is not None and exhausted.status.value == "True" and exhausted.reason == reasons.ESCALATION_EXHAUSTED
    )
    assert exhausted.message == "every level was paged (1 round) and nobody acknowledged"


def test_no_level_for_the_severity_is_not_an_exhausted_chain() -> None:
    p = policy(levels=[level("p1-only", by_severity={"P1": "0s"})])
    sim = Simulation(incident(severity="P3"), [p])
    sim.run_until(at(24 * 60))
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert exhausted is not None
    assert (exhausted.status.value, exhausted.reason) == ("False", reasons.NO_LEVELS)
    assert sim.pages() == []


def test_failed_deliveries_count_as_done() -> None:
    sim = Simulation(incident(severity="P1"), [three_levels()], outcome="Failed")
    sim.run_until(at(12))
    assert [p[1] for p in sim.pages()] == ["on-call", "on-call", "team-lead", "manager"]
    assert {r.outcome.value for r in sim.status.notifications} == {"Failed"}
    assert any(e.kind == reasons.NOTIFICATION_FAILED and "boom" in e.message for e in sim.status.timeline)


def test_editing_the_policy_never_resends() -> None:
    before = three_levels()
    sim = Simulation(incident(severity="P1"), [before])
    sim.run([at(0), at(6)])
    sent = len(sim.pages())
    sim.policies = [
        policy(
            levels=[
                level("on-call", "1m", notify=["pager", "chat"]),
                level("team-lead", "2m", notify=["lead"]),
                level("manager", "30m", notify=["manager"]),
            ]
        )
    ]
    sim.run([at(7), at(20)])
    assert len(sim.pages()) == sent
    sim.step(at(30))
    assert [p[1] for p in sim.pages()][sent:] == ["manager"]


def test_severity_change_re_evaluates_the_levels() -> None:
    p = policy(
        levels=[
            level("on-call", "0s"),
            level("lead", by_severity={"P1": "5m", "P3": "1h"}, notify=["lead"]),
        ]
    )
    sim = Simulation(incident(severity="P3"), [p])
    sim.run([at(0), at(10)])
    assert [x[1] for x in sim.pages()] == ["on-call"]
    sim.edit(severity="P1")
    result = sim.step(at(11))
    assert [x[1] for x in sim.pages()] == ["on-call", "lead"]
    assert reasons.SEVERITY_CHANGED in [t.reason for t in result.transitions]
    sla = sim.status.sla
    assert sla is not None and sla.acknowledge_by == at(15)


def test_a_severity_change_does_not_resend_under_another_wording() -> None:
    """The first level's page says "triggered"; if a severity change makes another level first, the
    pages already sent are not sent again as "escalated"."""
    p = policy(
        levels=[
            level("p1-first", by_severity={"P1": "0s"}, notify=["boss"]),
            level("everyone", "0s"),
        ]
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.step(at(0))
    sim.edit(severity="P1")
    sim.step(at(1))
    assert [(x[1], x[2]) for x in sim.pages()] == [("everyone", "pager"), ("p1-first", "boss")]


def test_status_updates_are_announced_once_per_update() -> None:
    p = policy(levels=[level("on-call", "0s", notify=["pager", "chat"])])
    sim = Simulation(incident(severity="P3"), [p])
    sim.step(at(0))
    sim.edit(statusUpdate=mark(10, message="rolling back"))
    sim.run([at(11), at(12)])
    sim.edit(statusUpdate=mark(20, message="rolled back"))
    sim.run([at(21), at(22)])
    updates = sim.events("status-update")
    assert [(t, d.channel) for t, d in updates] == [
        (at(11), "pager"),
        (at(11), "chat"),
        (at(21), "pager"),
        (at(21), "chat"),
    ]


def test_no_policy_means_nothing_is_sent() -> None:
    sim = Simulation(incident(severity="P1"), [])
    plans = sim.run_until(at(600))
    assert sim.sent == []
    ready = cond.get_condition(sim.status.conditions, cond.READY)
    assert ready is not None and ready.reason == reasons.NO_ESCALATION_POLICY
    assert plans[0].status.phase is not None and plans[0].status.phase.value == "Triggered"
    # Deadlines still run (the defaults table), so the breach is on record.
    assert cond.is_true(sim.status.conditions, cond.SLA_BREACHED)


def test_keys_are_stable_and_distinct() -> None:
    key = notification_key("uid", 1, 0, "on-call", "pager", "page")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == page_key("uid", 1, 0, "on-call", "pager")
    others = {
        notification_key("uid2", 1, 0, "on-call", "pager", "page"),
        notification_key("uid", 2, 0, "on-call", "pager", "page"),
        notification_key("uid", 1, 1, "on-call", "pager", "page"),
        notification_key("uid", 1, 0, "lead", "pager", "page"),
        notification_key("uid", 1, 0, "on-call", "chat", "page"),
        notification_key("uid", 1, 0, "on-call", "pager", "resolved"),
        notification_key("uid", 1, 0, "on-callpager", "", "page"),  # no ambiguity from concatenation
    }
    assert key not in others and len(others) == 7


def test_keys_survive_a_status_round_trip() -> None:
    """A restarted operator reads status back from JSON and computes the same keys."""
    p = three_levels()
    inc = incident(severity="P1")
    selection = select_policy(inc, [p], OPERATOR_NS)
    first = plan(inc, selection, at(0))
    status = record_deliveries(first.status, delivered(first.due), at(0))
    reread = type(status).model_validate(status.to_dict())
    assert reread == status
    again = plan(with_status(inc, reread), selection, at(5))
    assert {d.key for d in again.due}.isdisjoint({d.key for d in first.due})
    assert [d.level_name for d in again.due if d.level_name] == ["team-lead"]


def test_the_level_that_pages_first_announces_triggered() -> None:
    p = policy(levels=[level("cto", "2h", until="resolved", notify=["cto"]), level("on-call", "0s")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.run([at(0), at(120)])
    assert [(d.level_name, d.event) for _, d in sim.sent if d.level_name] == [
        ("on-call", "triggered"),
        ("cto", "escalated"),
    ]
