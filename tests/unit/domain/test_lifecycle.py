"""The lifecycle: first visit, conditions and phases, metrics, closing, episodes and reopening."""

from __future__ import annotations

from typing import Any

import pytest

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import ConditionStatus, Severity
from incidentops.api.incident import AlertsStatus, Phase, PostmortemState
from incidentops.domain.alertgroups import with_fired_at
from incidentops.domain.lifecycle import episode_facts, postmortem_outstanding, start_episode
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, Simulation, at, incident, level, mark, policy, with_status


def condition(status: Any, type_: str) -> tuple[str, str]:
    found = cond.get_condition(status.conditions, type_)
    assert found is not None, f"{type_} missing"
    return found.status.value, found.reason


def test_first_visit() -> None:
    p = policy(levels=[level("on-call")])
    inc = incident(severity=None, source_labels={"severity": "error"}, created=at(-3), generation=4)
    result = plan(inc, select_policy(inc, [p], OPERATOR_NS), at(0))
    status = result.status
    assert status.observed_generation == 4
    assert status.started_at == at(-3) and status.episode_started_at == at(-3)
    assert (status.episode, status.reopen_count, status.phase) == (1, 0, Phase.TRIGGERED)
    assert (status.severity, status.escalation_policy) == (Severity.P2, "incidentops/default")
    assert [c.type for c in status.conditions] == list(cond.INCIDENT_CONDITION_TYPES)
    assert all(c.observed_generation == 4 for c in status.conditions)
    assert condition(status, cond.READY) == ("True", reasons.POLICY_SELECTED)
    assert condition(status, cond.ACKNOWLEDGED) == ("False", reasons.AWAITING_ACKNOWLEDGEMENT)
    assert condition(status, cond.ALERTS_RESOLVED) == ("Unknown", reasons.NO_ALERTS)
    assert condition(status, cond.ESCALATION_EXHAUSTED) == ("False", reasons.ESCALATION_IN_PROGRESS)
    assert [t.reason for t in result.transitions][:2] == [reasons.TRIGGERED, reasons.CLASSIFIED]
    assert [e.kind for e in status.timeline][:2] == [reasons.TRIGGERED, reasons.CLASSIFIED]


def test_first_visit_without_a_creation_timestamp_starts_now() -> None:
    inc = incident()
    inc = inc.model_copy(update={"metadata": inc.metadata.model_copy(update={"creation_timestamp": None})})
    status = plan(inc, select_policy(inc, [], OPERATOR_NS), at(7)).status
    assert status.started_at == at(7) == status.episode_started_at


def test_no_policy_is_ready_false_with_a_warning() -> None:
    inc = incident()
    result = plan(inc, select_policy(inc, [], OPERATOR_NS), at(0))
    assert condition(result.status, cond.READY) == ("False", reasons.NO_ESCALATION_POLICY)
    assert condition(result.status, cond.ESCALATION_EXHAUSTED) == ("Unknown", reasons.NO_ESCALATION_POLICY)
    assert ("Warning", reasons.NO_ESCALATION_POLICY) in [(t.type, t.reason) for t in result.transitions]
    assert result.due == ()
    assert result.status.escalation_policy is None


def test_a_policy_appearing_later_is_announced() -> None:
    sim = Simulation(incident(), [])
    sim.step(at(0))
    sim.policies = [policy(levels=[level("on-call")])]
    result = sim.step(at(1))
    assert condition(sim.status, cond.READY) == ("True", reasons.POLICY_SELECTED)
    assert reasons.POLICY_SELECTED in [t.reason for t in result.transitions]
    assert [x[1] for x in sim.pages()] == ["on-call"]


@pytest.mark.parametrize(
    ("spec", "phase"),
    [
        ({}, Phase.TRIGGERED),
        ({"acknowledgement": mark(5)}, Phase.ACKNOWLEDGED),
        ({"acknowledgement": mark(5), "containment": mark(9)}, Phase.CONTAINED),
        ({"containment": mark(9)}, Phase.CONTAINED),
        ({"acknowledgement": mark(5), "resolution": mark(30)}, Phase.RESOLVED),
    ],
)
def test_phases(spec: dict[str, Any], phase: Phase) -> None:
    inc = incident(severity="P1", **spec)
    status = plan(inc, select_policy(inc, [], OPERATOR_NS), at(40)).status
    assert status.phase is phase


def test_transitions_and_metrics() -> None:
    sim = Simulation(incident(severity="P2"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(acknowledgement=mark(4, by="bob", note="on it"))
    ack = sim.step(at(5))
    assert [(t.reason, t.message) for t in ack.transitions] == [(reasons.ACKNOWLEDGED, "acknowledged by bob")]
    assert sim.status.timeline[-2].actor == "bob" and sim.status.timeline[-2].at == at(4)
    sim.edit(containment=mark(10))
    sim.step(at(11))
    sim.edit(resolution=mark(20, summary="rolled back"))
    sim.step(at(21))
    metrics = sim.status.metrics
    assert metrics is not None
    assert (
        metrics.time_to_acknowledge_seconds,
        metrics.time_to_contain_seconds,
        metrics.time_to_resolve_seconds,
    ) == (240, 600, 1200)
    assert condition(sim.status, cond.RESOLVED) == ("True", reasons.RESOLVED_BY)
    assert condition(sim.status, cond.ESCALATION_EXHAUSTED) == ("False", reasons.ESCALATION_STOPPED)


def test_closed_after_the_reopen_window_without_a_required_postmortem() -> None:
    sim = Simulation(incident(severity="P3"), [policy(levels=[level("on-call")], alerts={"reopenWindow": "30m"})])
    sim.step(at(0))
    sim.edit(resolution=mark(10))
    resolved = sim.step(at(11))
    assert sim.status.phase is Phase.RESOLVED
    assert resolved.wake_at == at(40)
    closed = sim.step(at(40))
    assert sim.status.phase is Phase.CLOSED
    assert closed.wake_at is None
    assert reasons.CLOSED in [t.reason for t in closed.transitions]
    sim.step(at(500))
    assert sim.status.phase is Phase.CLOSED


def test_a_required_postmortem_keeps_it_open_until_done() -> None:
    sim = Simulation(incident(severity="P1"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.edit(resolution=mark(10))
    sim.step(at(200))
    assert sim.status.phase is Phase.RESOLVED
    assert postmortem_outstanding(sim.incident, sim.selection().policy)
    sim.edit(postmortem={"completed": True, "url": "https://wiki.example/pm/1"})
    assert not postmortem_outstanding(sim.incident, sim.selection().policy)
    sim.step(at(201))
    assert sim.status.phase is Phase.CLOSED
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.DONE


def test_a_drill_never_waits_for_a_postmortem() -> None:
    assert not postmortem_outstanding(incident(severity="P1", drill=True), None)


@pytest.mark.parametrize(("severity", "outstanding"), [("P1", True), ("P2", True), ("P3", False), ("P4", False)])
def test_postmortem_hook_follows_the_sla(severity: str, outstanding: bool) -> None:
    assert postmortem_outstanding(incident(severity=severity), None) is outstanding
    p = policy(severities={severity: {"postmortem": "optional" if outstanding else "required"}})
    assert postmortem_outstanding(incident(severity=severity), p) is not outstanding


def alerts(firing: int, resolved: int, minutes: float) -> AlertsStatus:
    return AlertsStatus(firing=firing, resolved=resolved, last_received_at=at(minutes))


def alert_snapshot(sim: Simulation, snapshot: AlertsStatus) -> None:
    """What the intake does: write the latest snapshot into status, with the group's transition to firing."""
    snapshot = with_fired_at(sim.status.alerts, snapshot)
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))


def alert_sim(**policy_args: Any) -> Simulation:
    p = policy(levels=[level("on-call", notify=["pager", "chat"])], **policy_args)
    sim = Simulation(incident(severity="P3", source_labels={"alertname": "Down"}), [p])
    alert_snapshot(sim, alerts(1, 0, 0))
    return sim


def test_alerts_resolving_resolve_the_incident() -> None:
    sim = alert_sim()
    sim.step(at(0))
    assert condition(sim.status, cond.ALERTS_RESOLVED) == ("False", reasons.ALERTS_FIRING)
    alert_snapshot(sim, alerts(0, 1, 20))
    result = sim.step(at(20))
    assert condition(sim.status, cond.ALERTS_RESOLVED) == ("True", reasons.ALERTS_RESOLVED)
    assert condition(sim.status, cond.RESOLVED) == ("True", reasons.ALERTS_RESOLVED)
    assert sim.status.phase is Phase.RESOLVED
    assert [d.channel for _, d in sim.events("resolved")] == ["pager", "chat"]
    assert [t.message for t in result.transitions if t.reason == reasons.RESOLVED] == [
        "resolved every alert of the group resolved"
    ]


def test_truncated_alerts_do_not_resolve_the_incident() -> None:
    sim = alert_sim()
    sim.step(at(0))
    alert_snapshot(sim, AlertsStatus(firing=0, resolved=5, truncated=1, last_received_at=at(20)))
    sim.step(at(20))
    assert condition(sim.status, cond.ALERTS_RESOLVED) == ("Unknown", reasons.ALERTS_FIRING)
    assert sim.status.phase is Phase.TRIGGERED
    assert not sim.events("resolved")


def test_one_alert_still_firing_keeps_the_incident_open() -> None:
    sim = alert_sim()
    sim.step(at(0))
    alert_snapshot(sim, AlertsStatus(firing=1, resolved=4, last_received_at=at(20)))
    sim.step(at(20))
    assert condition(sim.status, cond.RESOLVED) == ("False", reasons.UNRESOLVED)
    assert sim.status.phase is Phase.TRIGGERED
    assert not sim.events("resolved")


def test_auto_resolve_off_leaves_the_incident_open() -> None:
    sim = alert_sim(alerts={"autoResolve": False})
    sim.step(at(0))
    alert_snapshot(sim, alerts(0, 1, 20))
    sim.step(at(20))
    assert condition(sim.status, cond.ALERTS_RESOLVED) == ("True", reasons.ALERTS_RESOLVED)
    assert sim.status.phase is Phase.TRIGGERED


def test_a_resolved_condition_set_by_the_intake_is_kept() -> None:
    sim = alert_sim(alerts={"autoResolve": False})
    sim.step(at(0))
    conditions = [c.model_copy() for c in sim.status.conditions]
    cond.set_condition(conditions, cond.RESOLVED, True, reasons.ALERTS_RESOLVED, "", at(30), 1)
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"conditions": conditions}))
    sim.step(at(31))
    assert sim.status.phase is Phase.RESOLVED
    assert condition(sim.status, cond.RESOLVED) == ("True", reasons.ALERTS_RESOLVED)


def test_alerts_firing_again_within_the_window_reopen() -> None:
    sim = alert_sim()
    sim.step(at(0))
    first_keys = {d.key for _, d in sim.sent}
    alert_snapshot(sim, alerts(0, 1, 20))
    sim.step(at(20))
    alert_snapshot(sim, alerts(1, 0, 50))
    reopened = sim.step(at(51))
    status = sim.status
    # The episode starts when the receiver saw the group fire again, not when the operator looked.
    assert (status.episode, status.reopen_count, status.episode_started_at) == (2, 1, at(50))
    assert status.phase is Phase.TRIGGERED
    assert ("Warning", reasons.REOPENED) in [(t.type, t.reason) for t in reopened.transitions]
    [entry] = [e for e in status.timeline if e.kind == reasons.REOPENED]
    assert (entry.at, entry.actor) == (at(50), "alertmanager")
    assert entry.message == "reopened: the alerts fire again within the reopen window (episode 2)"
    # Paging starts again from the first level, under new keys.
    new_pages = [d for d in reopened.due if d.level_name]
    assert [(d.level_name, d.event, d.round) for d in new_pages] == [("on-call", "triggered", 0)] * 2
    assert first_keys.isdisjoint({d.key for d in new_pages})
    assert status.escalation is not None and status.escalation.round == 0
    assert status.sla is not None and status.sla.acknowledge_by == at(50 + 240)


def test_alerts_firing_after_the_window_do_not_reopen() -> None:
    sim = alert_sim(alerts={"reopenWindow": "10m"})
    sim.step(at(0))
    alert_snapshot(sim, alerts(0, 1, 20))
    sim.step(at(20))
    sim.step(at(30))
    assert sim.status.phase is Phase.CLOSED
    alert_snapshot(sim, alerts(1, 0, 35))
    sim.step(at(35))
    assert (sim.status.episode, sim.status.phase) == (1, Phase.CLOSED)


def test_an_acknowledgement_before_the_episode_is_ignored() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(acknowledgement=mark(5))
    sim.step(at(6))
    alert_snapshot(sim, alerts(0, 1, 20))
    sim.step(at(20))
    alert_snapshot(sim, alerts(1, 0, 50))
    sim.step(at(51))
    assert condition(sim.status, cond.ACKNOWLEDGED) == ("False", reasons.ACKNOWLEDGEMENT_OUTDATED)
    assert sim.status.phase is Phase.TRIGGERED
    sim.edit(acknowledgement=mark(60, by="carol"))
    sim.step(at(61))
    assert condition(sim.status, cond.ACKNOWLEDGED) == ("True", reasons.ACKNOWLEDGED_BY)
    assert sim.status.metrics is not None and sim.status.metrics.time_to_acknowledge_seconds == 10 * 60


def test_in_the_first_episode_an_acknowledgement_from_before_creation_counts() -> None:
    """A laptop clock behind the API server's, or an incident declared after the fact."""
    inc = incident(acknowledgement=mark(-1))
    status = plan(inc, select_policy(inc, [], OPERATOR_NS), at(0)).status
    assert status.phase is Phase.ACKNOWLEDGED
    assert status.metrics is not None and status.metrics.time_to_acknowledge_seconds == 0


def test_start_episode_moves_the_closing_episode_to_the_record() -> None:
    sim = alert_sim()
    sim.step(at(0))
    sim.edit(acknowledgement=mark(3))
    sim.step(at(3))
    alert_snapshot(sim, alerts(0, 1, 20))
    sim.step(at(20))
    assert sim.status.reopen_until == at(80)
    facts = episode_facts(sim.incident.spec, sim.status)
    reopened = start_episode(sim.status, facts, at(50), at(52))
    assert (reopened.episode, reopened.reopen_count, reopened.episode_started_at) == (2, 1, at(50))
    assert reopened.phase is Phase.TRIGGERED
    assert reopened.escalation is not None and reopened.escalation.notified == []
    assert condition(reopened, cond.RESOLVED) == ("False", reasons.UNRESOLVED)
    assert reopened.timeline[-1].kind == reasons.REOPENED
    assert reopened.metrics is None and reopened.reopen_until is None and reopened.acknowledged_by is None
    [closed] = reopened.episodes
    assert (closed.episode, closed.started_at, closed.resolved_at) == (1, at(0), at(20))
    assert (closed.time_to_acknowledge_seconds, closed.time_to_resolve_seconds) == (180, 1200)
    # A moment ahead of the operator's clock is never the start of an episode.
    assert start_episode(sim.status, facts, at(60), at(52)).episode_started_at == at(52)


def test_conditions_keep_their_transition_times() -> None:
    sim = Simulation(incident(severity="P3"), [policy(levels=[level("on-call")])])
    sim.step(at(0))
    sim.run([at(10), at(20)])
    ready = cond.get_condition(sim.status.conditions, cond.READY)
    assert ready is not None and ready.last_transition_time == at(0)
    assert ready.status is ConditionStatus.TRUE
