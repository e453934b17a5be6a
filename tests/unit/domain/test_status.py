"""What people read on the Incident: its conditions and their times, the Events and the timeline, and the
rules at the edges (a closed incident, the end of the reopen window, a tie between acknowledgement and
containment) that decide what they read. Found missing by mutation testing (``make mutation``)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import IncidentType
from incidentops.api.incident import AlertsStatus, Phase
from incidentops.domain.alertgroups import with_fired_at
from incidentops.domain.common import MESSAGE_LIMIT, clip, stamp, utc
from incidentops.domain.escalation import notification_key

from .builders import Simulation, at, incident, level, mark, policy, with_status


def condition(status: Any, type_: str) -> tuple[str, str]:
    found = cond.get_condition(status.conditions, type_)
    assert found is not None, f"{type_} missing"
    return found.status.value, found.reason


def receive(sim: Simulation, firing: bool, minutes: float) -> None:
    snapshot = AlertsStatus(firing=int(firing), resolved=int(not firing), last_received_at=at(minutes))
    snapshot = with_fired_at(sim.status.alerts, snapshot)
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))


def alert_sim(*policies: Any) -> Simulation:
    sim = Simulation(incident(severity="P3", source_labels={"alertname": "Down"}), list(policies))
    receive(sim, True, 0)
    return sim


def transitions(sim: Simulation, reason: str) -> list[tuple[str, str]]:
    return [(t.type, t.message) for plan_ in sim.plans for t in plan_.transitions if t.reason == reason]


# --- conditions ------------------------------------------------------------------------------------------


def test_a_new_incident_is_neither_contained_nor_resolved() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    assert condition(sim.status, cond.CONTAINED) == ("False", reasons.NOT_CONTAINED)
    assert condition(sim.status, cond.RESOLVED) == ("False", reasons.UNRESOLVED)


def test_conditions_change_at_the_moment_people_acted_not_when_the_operator_looked() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(4), containment=mark(6, by="erin"), resolution=mark(8, by="bob"))
    sim.step(at(10))
    for type_, moment in ((cond.ACKNOWLEDGED, at(4)), (cond.CONTAINED, at(6)), (cond.RESOLVED, at(8))):
        found = cond.get_condition(sim.status.conditions, type_)
        assert found is not None and found.last_transition_time == moment, type_
    resolved = cond.get_condition(sim.status.conditions, cond.RESOLVED)
    assert resolved is not None and resolved.message == "by bob"
    assert transitions(sim, reasons.CONTAINED) == [("Normal", "contained by erin")]


def test_containment_alone_is_an_acknowledgement_and_a_tie_goes_to_the_acknowledgement() -> None:
    contained = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    contained.edit(containment=mark(3, by="erin"))
    contained.step(at(5))
    assert condition(contained.status, cond.ACKNOWLEDGED) == ("True", reasons.ACKNOWLEDGED_BY_CONTAINMENT)
    acknowledged = cond.get_condition(contained.status.conditions, cond.ACKNOWLEDGED)
    assert acknowledged is not None and acknowledged.last_transition_time == at(3)
    both = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    both.edit(acknowledgement=mark(3, by="alice"), containment=mark(3, by="erin"))
    both.step(at(5))
    assert condition(both.status, cond.ACKNOWLEDGED) == ("True", reasons.ACKNOWLEDGED_BY)
    assert both.status.acknowledged_by == "alice"


# --- closing and reopening -------------------------------------------------------------------------------


def test_closed_is_final_even_if_the_resolution_is_taken_back() -> None:
    sim = Simulation(incident(severity="P3"), [policy(levels=[level("on-call")], alerts={"reopenWindow": "10m"})])
    sim.step(at(0))
    sim.edit(resolution=mark(5))
    sim.run([at(5), at(15)])
    assert sim.status.phase is Phase.CLOSED
    sim.edit(resolution=None)
    sim.step(at(20))
    assert sim.status.phase is Phase.CLOSED


def test_a_policy_that_makes_the_postmortem_optional_lets_a_p1_close() -> None:
    p = policy(levels=[level("on-call")], severities={"P1": {"postmortem": "optional"}}, alerts={"reopenWindow": "10m"})
    sim = Simulation(incident(severity="P1"), [p])
    sim.step(at(0))
    sim.edit(resolution=mark(5))
    sim.run([at(5), at(15)])
    assert sim.status.phase is Phase.CLOSED


def test_the_group_firing_again_at_the_last_moment_of_the_window_reopens() -> None:
    """The receiver still writes a group's alerts to the incident at ``reopenUntil`` itself
    (``alertgroups.takes_alerts``): the operator must reopen it then, or the page is lost."""
    sim = alert_sim(policy(levels=[level("on-call")], alerts={"reopenWindow": "30m"}))
    sim.step(at(0))
    receive(sim, False, 10)
    sim.step(at(10))
    assert sim.status.reopen_until == at(40)
    receive(sim, True, 40)
    sim.step(at(40))
    assert (sim.status.episode, sim.status.phase) == (2, Phase.TRIGGERED)
    assert transitions(sim, reasons.REOPENED) == [("Warning", "the alerts fire again: episode 2 started")]


def test_a_reopened_episode_resolves_when_its_alerts_resolve() -> None:
    sim = alert_sim(policy(levels=[level("on-call")]))
    sim.step(at(0))
    receive(sim, False, 10)
    sim.step(at(10))
    receive(sim, True, 20)
    sim.step(at(20))
    receive(sim, False, 30)
    sim.step(at(30))
    assert (sim.status.episode, sim.status.phase) == (2, Phase.RESOLVED)


def test_without_any_policy_the_alerts_resolving_still_resolve_the_incident_as_they_say() -> None:
    sim = alert_sim()
    sim.step(at(0))
    receive(sim, False, 10)
    sim.step(at(12))  # the operator looks a little after the receiver wrote
    assert condition(sim.status, cond.RESOLVED) == ("True", reasons.ALERTS_RESOLVED)
    resolved = cond.get_condition(sim.status.conditions, cond.RESOLVED)
    assert resolved is not None and resolved.last_transition_time == at(10)


# --- the policy, the severity and the type -----------------------------------------------------------------


def test_a_policy_taking_over_is_an_event_and_a_lost_policy_stops_the_schedule() -> None:
    team = policy("team-policy", "team", levels=[level("on-call"), level("lead", "5m", notify=["lead"])])
    sim = Simulation(incident(severity="P1"), [team])
    sim.step(at(0))
    assert sim.status.escalation is not None and sim.status.escalation.next_at == at(5)
    better = policy("better", "team", levels=[level("on-call")], priority=10)
    sim.policies = [team, better]
    sim.step(at(1))
    assert transitions(sim, reasons.POLICY_CHANGED) == [
        ("Normal", "EscalationPolicy team/better now applies (was team/team-policy)")
    ]
    lost = Simulation(incident(severity="P1"), [team])
    lost.step(at(0))
    lost.policies = []
    lost.step(at(2))
    assert lost.status.escalation is not None and lost.status.escalation.next_at is None
    assert lost.status.escalation.notified, "what was sent is remembered for when a policy applies again"


def test_a_policy_problem_that_changes_is_announced_again() -> None:
    sim = Simulation(incident(severity="P1"), [])
    sim.step(at(0))
    sim.edit(escalationPolicyRef={"name": "gone"})
    sim.step(at(1))
    assert [type_ for type_, _ in transitions(sim, reasons.POLICY_NOT_FOUND)] == ["Warning"]


def test_the_triggered_event_says_drill_and_which_policy_applies() -> None:
    drill = Simulation(incident(severity="P2", drill=True), [policy(levels=[level("on-call")])])
    drill.step(at(0))
    assert transitions(drill, reasons.TRIGGERED) == [
        ("Normal", "DRILL: P2 incident triggered: Checkout is down (policy incidentops/default)")
    ]
    alone = Simulation(incident(severity="P2"), [])
    alone.step(at(0))
    assert transitions(alone, reasons.TRIGGERED) == [
        ("Normal", "P2 incident triggered: Checkout is down (no escalation policy)")
    ]


def test_the_timeline_says_how_the_severity_was_decided() -> None:
    classified = Simulation(incident(severity=None, source_labels={"severity": "error"}), [policy()])
    classified.step(at(0))
    assert transitions(classified, reasons.CLASSIFIED) == [("Normal", "classified P2 by policy incidentops/default")]
    unmatched = Simulation(incident(severity=None), [policy()])
    unmatched.step(at(0))
    assert transitions(unmatched, reasons.DEFAULT_SEVERITY) == [
        ("Normal", "no classification rule matched: P3 by policy incidentops/default")
    ]
    alone = Simulation(incident(severity=None), [])
    alone.step(at(0))
    assert transitions(alone, reasons.DEFAULT_SEVERITY) == [("Normal", "no classification rule matched: P3")]
    given = Simulation(incident(severity="P1"), [policy()])
    given.step(at(0))
    assert not transitions(given, reasons.CLASSIFIED) and not transitions(given, reasons.DEFAULT_SEVERITY)
    given.edit(severity="P2")
    given.step(at(1))
    assert transitions(given, reasons.SEVERITY_CHANGED) == [
        ("Normal", "severity P1 -> P2 (spec): deadlines and levels re-evaluated")
    ]


def test_the_effective_type_is_in_the_status() -> None:
    rules = {"rules": [{"match": {"labels": {"team": "security"}}, "type": "security"}]}
    sim = Simulation(incident(labels={"team": "security"}), [policy(classification=rules)])
    sim.step(at(0))
    assert sim.status.type is IncidentType.SECURITY


# --- escalation --------------------------------------------------------------------------------------------


def test_a_new_round_says_which_round_it_is() -> None:
    p = policy(levels=[level("on-call", "0s")], repeat={"times": 2, "every": "10m"})
    sim = Simulation(incident(severity="P4"), [p])
    sim.run_until(at(25))
    assert [message for _, message in transitions(sim, reasons.ESCALATION_ROUND_STARTED)] == [
        "round 2: nobody acknowledged, paging the chain again",
        "round 3: nobody acknowledged, paging the chain again",
    ]


def test_a_channel_of_a_paging_and_a_stakeholder_level_is_a_responder() -> None:
    p = policy(
        levels=[
            level("on-call", "0s", notify=["pager", "chat"]),
            level("cto", "0s", until="resolved", notify=["cto", "chat"]),
        ]
    )
    sim = Simulation(incident(severity="P1"), [p])
    sim.run_until(at(16))
    assert [d.channel for _, d in sim.events("update-due")] == ["pager", "chat"]


def test_a_channel_added_to_a_level_after_it_paged_does_not_hide_those_it_paged() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call", notify=["pager"])])])
    sim.step(at(0))
    sim.policies = [policy(levels=[level("on-call", notify=["sms", "pager"])])]
    sim.edit(resolution=mark(2))
    sim.step(at(2))
    assert [d.channel for _, d in sim.events("resolved")] == ["pager"]


def test_notification_keys_never_change_across_releases() -> None:
    """Receivers deduplicate on them (PagerDuty's dedup_key): a release that changed them would page
    every open incident again."""
    assert notification_key("uid", 1, 0, "on-call", "pager", "page") == (
        "eb493dd9b02663089683437afcea48d5e79fdbcdf5dcd14df0273e8ed0253ce7"
    )
    assert notification_key("uid", 1, 0, None, "pager", "resolved") == (
        "7f30669d8c8bea6cb78fc88b6225d00be59c88acf24252ec1d6bff78795a0b3c"
    )


# --- bounds and clocks -------------------------------------------------------------------------------------


def test_text_is_cut_to_the_apis_bound_with_an_ellipsis_and_text_that_fits_is_kept() -> None:
    assert clip("x" * MESSAGE_LIMIT) == "x" * MESSAGE_LIMIT
    cut = clip("y" * (MESSAGE_LIMIT + 10))
    assert len(cut) == MESSAGE_LIMIT and cut == "y" * (MESSAGE_LIMIT - 1) + "…"


def test_times_and_keys_are_the_same_on_a_replica_whose_clock_is_not_in_utc(monkeypatch: Any) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        berlin_noon = datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        assert stamp(berlin_noon) == "2025-01-01T11:00:00.000000Z"
        assert utc(datetime.datetime(2025, 1, 1, 12)) == datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)
        assert utc(berlin_noon).utcoffset() == datetime.timedelta(0)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_chain_stopped_by_the_resolution_is_not_exhausted_and_says_why() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert exhausted is not None and (exhausted.status.value, exhausted.message) == ("False", "round 1 in progress")
    sim.edit(resolution=mark(5))
    sim.step(at(5))
    exhausted = cond.get_condition(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert exhausted is not None
    assert (exhausted.status.value, exhausted.reason, exhausted.message) == (
        "False",
        reasons.ESCALATION_STOPPED,
        "resolved",
    )
