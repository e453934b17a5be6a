"""The post-mortem after resolution: its state, its due time, the overdue reminders (once per day, business days
with business hours), a reopen, and a drill's assessment; driven through ``plan`` with a fast clock."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api import reasons
from incidentops.api.incident import AssessedTarget, PostmortemState, TargetSource
from incidentops.domain import postmortem as pm
from incidentops.domain.decisions import POSTMORTEM_DUE
from incidentops.domain.lifecycle import postmortem_outstanding

from .builders import Simulation, at, examples, incident, level, mark, policy, with_status

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def sim_for(
    severity: str = "P1", within: str = "48h", business_hours: dict[str, Any] | None = None, **spec: Any
) -> Simulation:
    severities = {severity: {"postmortemWithin": within}} if within else None
    p = policy(
        levels=[level("on-call", notify=["pager", "chat"])], severities=severities, business_hours=business_hours
    )
    return Simulation(incident(severity=severity, **spec), [p])


def resolve(sim: Simulation, minutes: float = 10) -> None:
    sim.step(at(0))
    sim.edit(acknowledgement=mark(2), resolution=mark(minutes, summary="rolled back", rootCause="a bad deploy"))
    sim.step(at(minutes))


def draft(sim: Simulation, now: datetime.datetime) -> str:
    """What the writer does: the ConfigMap is stored, the status records it."""
    name = pm.draft_name("uid-1", sim.status.episode or 1, bool(sim.incident.spec.drill))
    recorded = pm.drafted(sim.status, name, now)
    assert recorded is not None
    sim.incident = with_status(sim.incident, recorded)
    return name


def reminders(sim: Simulation) -> list[tuple[datetime.datetime, str, str]]:
    return [(t, d.channel, d.detail or "") for t, d in sim.events(POSTMORTEM_DUE)]


def test_a_required_postmortem_is_pending_then_draft_due_postmortem_within_after_the_resolution() -> None:
    sim = sim_for()
    resolve(sim)
    state = sim.status.postmortem
    assert state is not None
    assert (state.state, state.due_by, state.ref, state.episode) == (
        PostmortemState.PENDING,
        at(10) + 48 * HOUR,
        None,
        1,
    )
    assert [t.reason for t in sim.plans[-1].transitions].count(reasons.POSTMORTEM_REQUIRED) == 1
    name = draft(sim, at(11))
    sim.step(at(12))
    assert sim.status.postmortem is not None
    assert (sim.status.postmortem.state, sim.status.postmortem.ref) == (PostmortemState.DRAFT, name)
    assert sim.status.timeline[-1].kind == reasons.POSTMORTEM_DRAFTED or any(
        e.kind == reasons.POSTMORTEM_DRAFTED for e in sim.status.timeline
    )
    assert pm.drafted(sim.status, name, at(13)) is None  # recorded once


def test_an_optional_postmortem_is_not_required_unless_asked_for_and_then_never_overdue() -> None:
    sim = sim_for("P3", within="")
    resolve(sim)
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.NOT_REQUIRED
    sim.edit(postmortem={"draft": True})
    sim.step(at(20))
    state = sim.status.postmortem
    assert state is not None and (state.state, state.due_by) == (PostmortemState.PENDING, None)
    draft(sim, at(21))
    sim.step(at(60 * 24 * 30))
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.DRAFT
    assert reminders(sim) == []


def test_overdue_at_due_by_a_reminder_to_each_channel_told_then_one_a_day_until_done() -> None:
    sim = sim_for(within="1h")
    resolve(sim)
    draft(sim, at(11))
    plans = sim.run_until(at(10) + 49 * HOUR, start=at(12))
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.OVERDUE
    due = at(70)
    assert reminders(sim) == [
        (due, "pager", "2025-01-01"),
        (due, "chat", "2025-01-01"),
        (due + DAY, "pager", "2025-01-02"),
        (due + DAY, "chat", "2025-01-02"),
        (due + 2 * DAY, "pager", "2025-01-03"),
        (due + 2 * DAY, "chat", "2025-01-03"),
    ]
    overdue = [t for p in plans for t in p.transitions if t.reason == reasons.POSTMORTEM_OVERDUE]
    assert len(overdue) == 3 and all(t.type == "Warning" for t in overdue)
    assert postmortem_outstanding(sim.incident, sim.selection().policy)
    sim.edit(postmortem={"completed": True, "url": "https://wiki.example/pm/1"})
    done = sim.step(due + 2 * DAY + HOUR)
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.DONE
    assert reasons.POSTMORTEM_DONE in [t.reason for t in done.transitions]
    assert sim.status.phase.value == "Closed"  # done, and the reopen window (1h) long passed
    sim.step(due + 5 * DAY)
    assert len(reminders(sim)) == 6


def test_with_business_hours_the_later_reminders_come_at_the_opening_of_working_days() -> None:
    hours = {"timeZone": "UTC", "days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00"}
    sim = sim_for(within="72h", business_hours=hours)  # T0 is Wed 2025-01-01: due Sat 2025-01-04 10:10
    resolve(sim)
    draft(sim, at(11))
    sim.run_until(datetime.datetime(2025, 1, 8, 12, tzinfo=datetime.UTC), start=at(12))
    days = sorted({(t, day) for t, _, day in reminders(sim)})
    assert days == [
        (datetime.datetime(2025, 1, 4, 10, 10, tzinfo=datetime.UTC), "2025-01-04"),  # Saturday: at dueBy
        (datetime.datetime(2025, 1, 6, 9, 0, tzinfo=datetime.UTC), "2025-01-06"),  # Monday's opening
        (datetime.datetime(2025, 1, 7, 9, 0, tzinfo=datetime.UTC), "2025-01-07"),
        (datetime.datetime(2025, 1, 8, 9, 0, tzinfo=datetime.UTC), "2025-01-08"),
    ]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    within_minutes=st.integers(min_value=1, max_value=5 * 24 * 60),
    done_after_hours=st.floats(min_value=0.01, max_value=24 * 9),
    business=st.booleans(),
)
def test_exactly_one_reminder_per_due_day_after_due_by_until_done(
    within_minutes: int, done_after_hours: float, business: bool
) -> None:
    hours = {"timeZone": "Europe/Berlin", "start": "09:00", "end": "17:00"} if business else None
    sim = sim_for(within=f"{within_minutes}m", business_hours=hours)
    resolve(sim)
    draft(sim, at(11))
    due_by = at(10 + within_minutes)
    done_at = at(12) + datetime.timedelta(hours=done_after_hours)
    plan = sim.step(at(12))
    while plan.wake_at is not None and plan.wake_at < done_at:
        plan = sim.step(plan.wake_at)
    sim.edit(postmortem={"completed": True, "actionItems": [{"title": "alert on 502s", "owner": "bob"}]})
    sim.step(done_at)
    sim.step(done_at + 3 * DAY)
    sent = reminders(sim)
    assert all(due_by <= t < done_at for t, _, _ in sent)  # none before dueBy, none after Done
    for channel in ("pager", "chat"):
        days = [day for _, c, day in sent if c == channel]
        assert len(days) == len(set(days))  # at most one a day
    # One for every reminder moment before Done, counted independently of the module: dueBy, then every 24h,
    # or with business hours the opening (09:00 Berlin) of each working day after dueBy's day.
    expected = 0
    if done_at > due_by:
        if not business:
            expected = 1 + int((done_at - due_by) / DAY - 1e-9)
        else:
            berlin = zoneinfo.ZoneInfo("Europe/Berlin")
            day = due_by.astimezone(berlin).date()
            expected = 1
            while True:
                day += DAY
                opening = datetime.datetime.combine(day, datetime.time(9), tzinfo=berlin)
                if opening >= done_at:
                    break
                expected += day.weekday() < 5
    assert len(sent) == 2 * expected


def test_a_reopen_clears_a_draft_not_done_and_the_next_resolution_drafts_again() -> None:
    p = policy(levels=[level("on-call")], alerts={"reopenWindow": "1h"})
    sim = Simulation(incident(severity="P1", source_labels={"alertname": "Down"}), [p])
    resolve(sim)
    first = draft(sim, at(11))
    # The group fires again within the window: episode 2.
    from incidentops.api.incident import AlertsStatus

    alerts = AlertsStatus(firing=1, resolved=0, last_received_at=at(20), last_fired_at=at(20))
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": alerts}))
    sim.step(at(20))
    assert sim.status.episode == 2 and sim.status.postmortem is None
    sim.edit(resolution=mark(30, summary="fixed for real"))
    sim.step(at(30))
    state = sim.status.postmortem
    assert state is not None and (state.state, state.episode, state.ref) == (PostmortemState.PENDING, 2, None)
    assert state.due_by == at(30) + 48 * HOUR
    assert pm.draft_name("uid-1", 2, False) != first


def test_a_done_postmortem_stays_done_across_a_reopen() -> None:
    sim = sim_for()
    resolve(sim)
    sim.edit(postmortem={"completed": True, "url": "https://wiki.example/pm/1"})
    sim.step(at(11))
    assert sim.status.postmortem is not None and sim.status.postmortem.state is PostmortemState.DONE
    decision = pm.decide(
        sim.incident,
        sim.status.model_copy(update={"episode": 2}),
        _open_facts(sim),
        _sla(sim),
        None,
        "uid-1",
        (),
        (),
        at(12),
    )
    assert decision.postmortem is not None and decision.postmortem.state is PostmortemState.DONE


def _sla(sim: Simulation) -> Any:
    selection = sim.selection()
    assert selection.policy is not None
    return selection.policy.spec.sla_for(selection.severity)


def _open_facts(sim: Simulation) -> Any:
    from incidentops.domain.lifecycle import EpisodeFacts

    return EpisodeFacts(2, at(11), None, None, None, None, False)


# --- drills ---------------------------------------------------------------------------------------------


def test_a_drill_is_assessed_against_its_targets_else_the_policys() -> None:
    sim = sim_for(drill=True, drillTargets={"acknowledge": "1m", "contain": "5m"})
    sim.step(at(0))
    sim.edit(acknowledgement=mark(2), resolution=mark(30, summary="drill over"))
    sim.step(at(30))
    assert sim.status.postmortem is None
    assessment = sim.status.assessment
    assert assessment is not None and assessment.ref is None and not assessment.passed
    results = {r.target: (r.within, r.source, r.seconds, r.passed) for r in assessment.results}
    assert results == {
        AssessedTarget.ACKNOWLEDGE: ("1m", TargetSource.DRILL, 120, False),
        AssessedTarget.CONTAIN: ("5m", TargetSource.DRILL, None, False),  # never contained: fails
        AssessedTarget.RESOLVE: ("4h", TargetSource.POLICY, 1800, True),  # P1's resolveWithin
    }
    assert not postmortem_outstanding(sim.incident, sim.selection().policy)
    name = draft(sim, at(31))
    assert name.startswith("incidentops-assessment-")
    sim.step(at(32))
    assert sim.status.assessment is not None and sim.status.assessment.ref == name


def test_detection_runs_from_the_earliest_alert_to_the_incident() -> None:
    sim = sim_for(drill=True, drillTargets={"detect": "2m"})
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"started_at": at(-3)}))
    sim.incident = sim.incident.model_copy(update={"spec": sim.incident.spec.model_copy(update={"source": None})})
    results = pm.assess(sim.incident.spec.drill_targets, _sla(sim), sim.status, _resolved_facts(), at(0))  # type: ignore[arg-type]
    detect = next(r for r in results if r.target is AssessedTarget.DETECT)
    assert (detect.seconds, detect.passed) == (180, False)


def _resolved_facts() -> Any:
    from incidentops.domain.lifecycle import EpisodeFacts, Mark

    return EpisodeFacts(1, at(0), Mark("a", at(1)), Mark("a", at(2)), Mark("a", at(3)), reasons.RESOLVED_BY, False)


# --- when to write the draft ---------------------------------------------------------------------------


def test_the_draft_waits_for_the_response_to_settle_but_not_longer_than_settle() -> None:
    sim = sim_for()
    resolve(sim)
    status = sim.status
    assert pm.draft_due(status, at(10), settled=True, now=at(10))
    assert not pm.draft_due(status, at(10), settled=False, now=at(10))
    assert pm.draft_due(status, at(10), settled=False, now=at(10) + pm.SETTLE)
    draft(sim, at(11))
    assert not pm.draft_due(sim.status, at(10), settled=True, now=at(12))
    assert sim.plans[-1].wake_at == at(10) + pm.SETTLE  # the look that lets it settle


def test_draft_facts_come_from_the_record() -> None:
    sim = sim_for(impact={"usersAffected": 120, "services": ["checkout"]}, roles={"commander": "carol"})
    resolve(sim)
    from incidentops.domain.lifecycle import episode_facts

    facts = pm.draft_facts(sim.incident, _sla(sim), episode_facts(sim.incident.spec, sim.status))
    assert facts["kind"] == "postmortem"
    assert facts["impact"]["usersAffected"] == 120 and facts["impact"]["services"] == ["checkout"]
    assert facts["resolution"] == {
        "by": "alice",
        "at": "2025-01-01T10:10:00Z",
        "summary": "rolled back",
        "rootCause": "a bad deploy",
    }
    assert facts["roles"]["commander"] == "carol" and facts["roles"]["acknowledgedBy"] == "alice"
    assert [r["name"] for r in facts["responseTimes"]] == ["Acknowledge", "Contain", "Resolve"]
    assert facts["responseTimes"][0] == {
        "name": "Acknowledge",
        "measured": {"seconds": 120, "text": "2m"},
        "target": "15m",
        "met": True,
    }
    kinds = [t["kind"] for t in facts["timeline"]]
    assert kinds[0] == reasons.TRIGGERED and reasons.ACKNOWLEDGED in kinds and reasons.RESOLVED in kinds
    assert {(n["channel"], n["event"]) for n in facts["notifications"]} >= {
        ("pager", "triggered"),
        ("chat", "resolved"),
    }
    assert facts["postmortem"]["dueBy"] == "2025-01-03T10:10:00Z"


@given(minutes=st.integers(min_value=-3000, max_value=3000))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_resolution_dated_before_the_start_still_drafts_with_a_duration_never_negative(minutes: int) -> None:
    # A person's `at` comes from their laptop's clock; a draft must be written whatever it says.
    from incidentops.domain.lifecycle import episode_facts

    sim = sim_for()
    sim.step(at(0))
    sim.edit(resolution=mark(minutes, summary="rolled back"))
    sim.step(at(max(minutes, 0) + 1))
    facts = pm.draft_facts(sim.incident, _sla(sim), episode_facts(sim.incident.spec, sim.status))
    duration = facts["incident"]["duration"]
    assert duration is not None and not duration.startswith("-")
    if minutes <= 0:
        assert duration == "0s"
