"""What the people paged get, case by case: reopening only on a real re-fire and from its moment, one start
time whoever writes first, clocks ahead of ours, containment as acknowledgement, nothing after "resolved",
one breach per (episode, kind), breach notices and reminders to the right people, metrics per episode.

Each test is a decision the escalation engine used to get wrong for the person paged; the properties of the
whole run are in ``test_properties.py``.
"""

from __future__ import annotations

import datetime

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.incident import AlertsStatus, BreachKind, ClampedTimeField, Phase
from incidentops.domain.alertgroups import with_fired_at
from incidentops.domain.common import stamp
from incidentops.domain.escalation import notification_key
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, Simulation, at, incident, level, mark, policy, with_spec, with_status


def alerts(firing: int, minutes: float) -> AlertsStatus:
    return AlertsStatus(firing=firing, resolved=0 if firing else 1, last_received_at=at(minutes))


def receive(sim: Simulation, firing: int, minutes: float) -> None:
    """What the receiver writes: the snapshot, with the group's transition to firing."""
    snapshot = with_fired_at(sim.status.alerts, alerts(firing, minutes))
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))


def alert_sim(**policy_args: object) -> Simulation:
    p = policy(levels=[level("on-call", notify=["pager"])], **policy_args)  # type: ignore[arg-type]
    sim = Simulation(incident(severity="P2", source_labels={"alertname": "Down"}), [p])
    receive(sim, 1, 0)
    return sim


# --- reopening -------------------------------------------------------------------------------------


def test_a_resend_of_a_group_that_never_stopped_firing_does_not_reopen_a_manual_resolution() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(resolution=mark(10, by="bob"))
    sim.step(at(10))
    assert sim.status.phase is Phase.RESOLVED
    # Alertmanager re-sends the still-firing group every repeat_interval.
    receive(sim, 1, 20)
    result = sim.step(at(20))
    assert (sim.status.episode, sim.status.phase) == (1, Phase.RESOLVED)
    assert not [d for d in result.due if d.level_name]
    # When the group resolves and then fires again, that is a new episode.
    receive(sim, 0, 30)
    sim.step(at(30))
    receive(sim, 1, 40)
    sim.step(at(41))
    assert (sim.status.episode, sim.status.episode_started_at) == (2, at(40))


def test_the_episode_starts_when_the_group_fired_again_so_an_acknowledgement_in_between_counts() -> None:
    sim = alert_sim()
    sim.step(at(0))
    receive(sim, 0, 10)
    sim.step(at(10))
    receive(sim, 1, 20)
    # Someone acknowledges at 20m30s, before the operator's next look at 21m.
    sim.edit(acknowledgement=mark(20.5, by="carol"))
    result = sim.step(at(21))
    assert (sim.status.episode, sim.status.episode_started_at) == (2, at(20))
    assert cond.is_true(sim.status.conditions, cond.ACKNOWLEDGED)
    assert not [d for d in result.due if d.level_name], "the acknowledged episode paged anyway"
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 30


def test_a_resolved_incident_records_when_its_reopen_window_ends() -> None:
    sim = alert_sim(alerts={"reopenWindow": "30m"})
    sim.step(at(0))
    assert sim.status.reopen_until is None
    receive(sim, 0, 10)
    sim.step(at(10))
    assert sim.status.reopen_until == at(40)
    receive(sim, 1, 41)  # after the window: not this incident's any more (the receiver opens a new one)
    sim.step(at(41))
    assert sim.status.episode == 1


# --- one start time -----------------------------------------------------------------------------------


def test_started_at_is_one_function_of_the_object_whoever_writes_first() -> None:
    inc = incident(severity="P2", source_labels={"alertname": "Down"})
    inc = inc.model_copy(
        update={
            "spec": inc.spec.model_copy(update={"source": inc.spec.source.model_copy(update={"started_at": at(-7)})})
        }  # type: ignore[union-attr]
    )
    selection_policies = [policy(levels=[level("on-call")])]
    from incidentops.domain.selection import select_policy

    selection = select_policy(inc, selection_policies, OPERATOR_NS)
    operator_first = plan(inc, selection, at(0)).status
    # The receiver wrote its status first (counts, and a start of its own reading): the same start results.
    receiver_first = inc.model_copy(
        update={"status": inc.status.model_copy(update={"alerts": alerts(1, 0), "started_at": at(-3)})}
    )
    assert operator_first.started_at == plan(receiver_first, selection, at(0)).status.started_at == at(-7)
    # The first episode (deadlines, escalation) starts when the incident was opened, not 7 minutes before.
    assert operator_first.episode_started_at == at(0)
    assert operator_first.sla is not None and operator_first.sla.acknowledge_by == at(60)  # P2: 1h


def test_an_alert_that_fired_long_before_it_reached_us_does_not_page_every_level_at_once() -> None:
    p = policy(
        levels=[level("on-call", "0s"), level("lead", "10m", notify=["lead"]), level("cto", "1h", notify=["cto"])]
    )
    inc = incident(severity="P1", source_labels={"alertname": "Down"})
    source = inc.spec.source.model_copy(update={"started_at": at(-3 * 24 * 60)})  # type: ignore[union-attr]
    sim = Simulation(inc.model_copy(update={"spec": inc.spec.model_copy(update={"source": source})}), [p])
    first = sim.step(at(0))
    assert [d.level_name for d in first.due if d.level_name] == ["on-call"]
    assert sim.status.sla is not None and not sim.status.sla.breaches
    assert sim.status.started_at == at(-3 * 24 * 60)


def test_a_start_later_than_the_creation_is_the_creation() -> None:
    inc = incident(severity="P2", source_labels={"alertname": "Down"})
    source = inc.spec.source.model_copy(update={"started_at": at(30)})  # type: ignore[union-attr]
    inc = inc.model_copy(update={"spec": inc.spec.model_copy(update={"source": source})})
    from incidentops.domain.selection import select_policy

    status = plan(inc, select_policy(inc, [], OPERATOR_NS), at(31)).status
    assert status.started_at == at(0)


# --- clocks ahead of ours -------------------------------------------------------------------------------


def test_an_acknowledgement_from_the_future_counts_as_received_and_says_so() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(acknowledgement=mark(600, by="dave"))  # a laptop ten hours ahead
    sim.step(at(5))
    [clamped] = sim.status.clamped_times
    assert (clamped.field, clamped.at, clamped.received_at) == (ClampedTimeField.ACKNOWLEDGEMENT, at(600), at(5))
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 300
    assert [e.kind for e in sim.status.timeline].count(reasons.TIME_CLAMPED) == 1
    sim.step(at(6))  # the same on every later look
    assert [e.kind for e in sim.status.timeline].count(reasons.TIME_CLAMPED) == 1
    assert sim.status.metrics.time_to_acknowledge_seconds == 300
    # The next episode is not "acknowledged" by that time from the future: it pages.
    receive(sim, 0, 10)
    sim.step(at(10))
    receive(sim, 1, 20)
    result = sim.step(at(20))
    assert sim.status.episode == 2
    assert [d.level_name for d in result.due if d.level_name] == ["on-call"]
    assert not cond.is_true(sim.status.conditions, cond.ACKNOWLEDGED)


def test_a_time_that_is_exactly_now_is_not_ahead_of_the_clock() -> None:
    inc = incident(severity="P1", acknowledgement=mark(5))
    status = plan(inc, select_policy(inc, [], OPERATOR_NS), at(5)).status
    assert status.clamped_times == []
    assert reasons.TIME_CLAMPED not in [e.kind for e in status.timeline]


def test_a_new_time_replaces_the_clamp() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(acknowledgement=mark(600))
    sim.step(at(5))
    sim.edit(acknowledgement=mark(7))
    sim.step(at(8))
    assert sim.status.clamped_times == []
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 420


# --- containment -----------------------------------------------------------------------------------------


def test_containment_stops_the_until_acknowledged_chain_and_is_the_time_to_acknowledge() -> None:
    p = policy(
        levels=[
            level("on-call", "0s"),
            level("lead", "10m", notify=["lead"]),
            level("cto", "20m", until="resolved", notify=["cto"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.run_until(at(4))
    sim.edit(containment=mark(5, by="erin"))
    sim.run_until(at(60), start=at(5))
    assert [name for _, name, *_ in sim.pages()] == ["on-call", "cto"]  # stakeholders still told
    ack = cond.get_condition(sim.status.conditions, cond.ACKNOWLEDGED)
    assert ack is not None and ack.reason == reasons.ACKNOWLEDGED_BY_CONTAINMENT
    assert sim.status.acknowledged_by == "erin"
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 300
    assert sim.status.sla is not None and not sim.status.sla.breaches
    assert [d.channel for _, d in sim.events("acknowledged")] == ["pager"]  # PagerDuty stops paging too


def test_an_earlier_acknowledgement_wins_over_a_later_containment() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(2, by="ann"), containment=mark(9, by="erin"))
    sim.step(at(10))
    assert sim.status.acknowledged_by == "ann"
    assert sim.status.metrics is not None
    assert (sim.status.metrics.time_to_acknowledge_seconds, sim.status.metrics.time_to_contain_seconds) == (120, 540)


# --- order of messages -----------------------------------------------------------------------------------


def test_nothing_but_resolved_goes_out_once_resolved() -> None:
    p = policy(levels=[level("on-call", "0s")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    # Acknowledged and resolved between two looks (or the "acknowledged" never made it out before).
    sim.edit(acknowledgement=mark(20), resolution=mark(21), statusUpdate={**mark(19), "message": "looking"})
    result = sim.step(at(22))
    assert [d.event for d in result.due] == ["resolved"]
    assert not sim.events("acknowledged") and not sim.events("sla-breached") and not sim.events("update-due")


# --- breaches --------------------------------------------------------------------------------------------


def test_a_missed_acknowledgement_is_one_breach_whatever_the_severity_does_afterwards() -> None:
    p = policy(levels=[level("on-call", "0s")])
    sim = Simulation(incident(severity="P1"), [p])
    sim.run_until(at(16))
    assert [b.kind for b in sim.status.sla.breaches] == [BreachKind.ACKNOWLEDGE]  # type: ignore[union-attr]
    sim.edit(severity="P2")  # acknowledge within 1h: the deadline moves to 60m, and passes too
    sim.run_until(at(70), start=at(17))
    assert sim.status.sla is not None and sim.status.sla.acknowledge_by == at(60)
    kinds = [b.kind for b in sim.status.sla.breaches]  # type: ignore[union-attr]
    assert kinds.count(BreachKind.ACKNOWLEDGE) == 1
    assert len([d for _, d in sim.events("sla-breached") if d.detail == "Acknowledge"]) == 1


def test_breach_notices_go_to_the_channels_reached_not_the_first_level_of_the_list() -> None:
    # The first level of the list does not apply to P2; the one that paged does.
    p = policy(
        levels=[
            level("p1-only", by_severity={"P1": "0s"}, notify=["p1-pager"]),
            level("on-call", "0s", notify=["pager"]),
            level("lead", "30m", notify=["lead"]),
        ]
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.run_until(at(61))
    told = {d.channel for _, d in sim.events("sla-breached")}
    assert told == {"pager", "lead"}


def test_without_any_page_yet_a_breach_goes_to_the_first_level_that_applies() -> None:
    p = policy(
        levels=[level("p1-only", by_severity={"P1": "0s"}, notify=["p1-pager"]), level("late", "2h")],
        severities={"P2": {"acknowledgeWithin": "10m"}},
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.run_until(at(11))
    assert {d.channel for _, d in sim.events("sla-breached")} == {"pager"}


def test_update_reminders_go_to_responders_and_communications_never_to_stakeholders() -> None:
    p = policy(
        levels=[level("on-call", "0s"), level("cto", "0s", until="resolved", notify=["cto"])],
        communications=["comms"],
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(1))
    sim.run_until(at(31), start=at(1))
    reminded = {d.channel for _, d in sim.events("update-due")}
    assert reminded == {"pager", "comms"}
    sim.edit(statusUpdate={**mark(32), "message": "rolling back"})
    sim.step(at(32))
    assert {d.channel for _, d in sim.events("status-update")} == {"pager", "cto"}
    sim.edit(resolution=mark(40))
    sim.step(at(40))
    assert {d.channel for _, d in sim.events("resolved")} == {"pager", "cto", "comms"}


# --- metrics per episode -----------------------------------------------------------------------------------


def test_response_times_describe_the_current_episode_and_the_record_keeps_the_closed_ones() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(acknowledgement=mark(2))
    sim.step(at(2))
    receive(sim, 0, 10)
    sim.step(at(10))
    assert sim.status.metrics is not None
    assert (sim.status.metrics.time_to_acknowledge_seconds, sim.status.metrics.time_to_resolve_seconds) == (120, 600)
    receive(sim, 1, 20)
    sim.step(at(20))
    assert sim.status.metrics is None  # nothing has happened in episode 2 yet
    sim.edit(acknowledgement=mark(25))
    sim.step(at(25))
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 300
    [first] = sim.status.episodes
    assert (first.episode, first.time_to_acknowledge_seconds, first.time_to_resolve_seconds) == (1, 120, 600)
    assert first.resolved_at == at(10)


def test_the_episode_record_is_bounded() -> None:
    sim = alert_sim()
    minute = 0
    sim.step(at(minute))
    for _ in range(25):
        minute += 5
        receive(sim, 0, minute)
        sim.step(at(minute))
        minute += 5
        receive(sim, 1, minute)
        sim.step(at(minute))
    assert sim.status.episode == 26
    assert len(sim.status.episodes) == 20
    assert [e.episode for e in sim.status.episodes] == list(range(6, 26))


def test_clamped_time_of_a_status_update_counts_for_the_update_clock() -> None:
    p = policy(levels=[level("on-call")])
    inc = with_spec(incident(severity="P1"), statusUpdate={**mark(100), "message": "from the future"})
    sim = Simulation(inc, [p])
    sim.step(at(1))
    assert sim.status.sla is not None and sim.status.sla.next_update_by == at(16)
    assert sim.status.clamped_times[0].field is ClampedTimeField.STATUS_UPDATE
    assert datetime.timedelta(0) < sim.status.sla.next_update_by - at(0) <= datetime.timedelta(minutes=16)


def test_a_reopened_episode_misses_its_own_deadlines_and_the_record_keeps_the_closed_ones() -> None:
    """Episode 2 starts with no breach: missing its acknowledgement is a breach and a page again, and the
    closed episode's record says what it missed and when it was contained and resolved."""
    sim = alert_sim(severities={"P2": {"acknowledgeWithin": "10m"}})
    sim.step(at(0))
    sim.step(at(10))  # nobody acknowledged: episode 1 breaches
    sim.edit(containment=mark(12))
    sim.step(at(12))
    sim.step(at(13))
    receive(sim, 0, 20)
    sim.step(at(20))
    receive(sim, 1, 50)
    sim.step(at(51))
    assert sim.status.episode == 2
    assert sim.status.sla is not None and sim.status.sla.breaches == []
    assert cond.get_condition(sim.status.conditions, cond.SLA_BREACHED).status.value == "False"  # type: ignore[union-attr]
    sim.step(at(60))
    assert [(b.kind, b.deadline) for b in sim.status.sla.breaches] == [(BreachKind.ACKNOWLEDGE, at(60))]
    assert [t for t, d in sim.events("sla-breached")] == [at(10), at(60)]
    [first] = sim.status.episodes
    assert (first.started_at, first.resolved_at) == (at(0), at(20))
    assert (first.time_to_acknowledge_seconds, first.time_to_contain_seconds) == (720, 720)
    assert first.time_to_resolve_seconds == 1200
    assert first.breaches == [BreachKind.ACKNOWLEDGE]


def test_an_acknowledgement_at_the_very_moment_the_episode_started_counts_for_it() -> None:
    sim = alert_sim()
    sim.step(at(0))
    receive(sim, 0, 10)
    sim.step(at(10))
    receive(sim, 1, 40)
    sim.edit(acknowledgement=mark(40, by="carol"))  # the pager went off as the group fired again
    result = sim.step(at(40))
    assert (sim.status.episode, sim.status.episode_started_at) == (2, at(40))
    assert sim.status.phase is Phase.ACKNOWLEDGED and sim.status.acknowledged_by == "carol"
    assert not [d for d in result.due if d.level_name]


# --- who hears what, under which key ---------------------------------------------------------------------


def test_announcements_are_keyed_per_episode_and_say_when_they_became_due() -> None:
    """Channels deduplicate on the key (PagerDuty's dedup_key, a webhook's idempotency key), across restarts
    and releases: every announcement follows the recipe of ``notification_key``, with the episode in it, so
    episode 2's "acknowledged" is not swallowed as a repeat of episode 1's."""
    p = policy(
        levels=[level("on-call", notify=["pager"])],
        severities={"P2": {"acknowledgeWithin": "10m", "updateEvery": "30m"}},
    )
    sim = Simulation(incident(severity="P2", source_labels={"alertname": "Down"}), [p])
    receive(sim, 1, 0)
    sim.step(at(0))
    sim.step(at(10))  # the acknowledge deadline passes
    sim.step(at(30))  # so does the first update
    sim.edit(statusUpdate={**mark(35, by="bob"), "message": "rolling back"})
    sim.step(at(35))
    sim.edit(acknowledgement=mark(40))
    sim.step(at(40))
    receive(sim, 0, 45)
    sim.step(at(45))
    receive(sim, 1, 50)
    sim.step(at(50))
    sim.edit(acknowledgement=mark(52, by="carol"))
    sim.step(at(52))
    told = [(episode_of(sim, d), d) for _, d in sim.sent if d.level_name is None]
    assert [(episode, d.event, d.scheduled_at) for episode, d in told] == [
        (1, "sla-breached", at(10)),
        (1, "update-due", at(30)),
        (1, "status-update", at(35)),
        (1, "acknowledged", at(40)),
        (1, "resolved", at(45)),
        (2, "acknowledged", at(52)),
    ]
    for episode, d in told:
        assert (d.channel, d.round, d.level) == ("pager", 0, None)
        assert d.scheduled_at is not None
        event = {
            "sla-breached": f"sla-breached:{d.detail}",
            "update-due": f"update-due@{stamp(d.scheduled_at)}",
            "status-update": f"status-update@{stamp(d.scheduled_at)}",
        }.get(d.event, d.event)
        assert d.key == notification_key("uid-1", episode, 0, None, "pager", event)
    assert stamp(at(30)) == "2025-01-01T10:30:00.000000Z"


def episode_of(sim: Simulation, due: object) -> int:
    return next(result.status.episode for result in sim.plans if due in result.due)  # type: ignore[misc]


def test_after_an_outage_the_missed_resolve_deadline_is_announced_though_the_late_acknowledgement_is_not() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(20))
    sim.step(at(4 * 60 + 1))  # the operator was away from before the acknowledge deadline to after the resolve one
    assert sim.status.sla is not None
    assert [b.kind for b in sim.status.sla.breaches] == [BreachKind.ACKNOWLEDGE, BreachKind.RESOLVE]
    assert [(d.detail, d.scheduled_at) for _, d in sim.events("sla-breached")] == [("Resolve", at(4 * 60))]


def test_an_acknowledgement_made_as_the_operator_looks_after_the_deadline_is_recorded_not_announced() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(16))
    sim.step(at(16))
    assert sim.status.sla is not None and [b.kind for b in sim.status.sla.breaches] == [BreachKind.ACKNOWLEDGE]
    assert sim.events("sla-breached") == []


def test_the_resolution_goes_to_whoever_heard_of_a_breach_and_to_communications_once_anyone_was_paged() -> None:
    p = policy(
        levels=[level("on-call", notify=["pager"])],
        notify_on_breach=["managers"],
        communications=["comms"],
        severities={"P2": {"acknowledgeWithin": "10m"}},
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.step(at(0))
    sim.step(at(10))
    assert [d.channel for _, d in sim.events("sla-breached")] == ["managers"]
    sim.edit(resolution=mark(20))
    sim.step(at(20))
    assert [(d.channel, d.scheduled_at) for _, d in sim.events("resolved")] == [
        ("pager", at(20)),
        ("managers", at(20)),
        ("comms", at(20)),
    ]
    # Resolved before anyone was paged or told of a breach: nobody is told it is over.
    quiet = Simulation(incident(severity="P2"), [policy(levels=[level("on-call", "5m")], communications=["comms"])])
    quiet.step(at(0))
    quiet.edit(resolution=mark(1))
    quiet.run_until(at(30), start=at(1))
    assert quiet.sent == []


def test_acknowledged_goes_to_the_stakeholders_reached_by_the_moment_of_the_acknowledgement() -> None:
    p = policy(
        levels=[
            level("on-call", notify=["pager"]),
            level("managers", "10m", until="resolved", notify=["managers"]),
            level("cto", "20m", until="resolved", notify=["cto"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.run([at(0), at(10)])
    sim.edit(acknowledgement=mark(10))  # as the managers were told
    sim.run_until(at(30), start=at(10))
    assert [d.channel for _, d in sim.events("acknowledged")] == ["pager", "managers"]


def test_before_any_page_a_breach_goes_to_the_level_that_pages_first_for_the_severity() -> None:
    p = policy(
        levels=[
            level("p1-only", by_severity={"P1": "0s"}, notify=["p1-pager"]),
            level("p2-first", by_severity={"P2": "1h"}, notify=["p2-pager"]),
            level("late", "2h", notify=["pager"]),
        ],
        severities={"P2": {"acknowledgeWithin": "10m"}},
    )
    sim = Simulation(incident(severity="P2"), [p])
    sim.run_until(at(11))
    assert [d.channel for _, d in sim.events("sla-breached")] == ["p2-pager"]
