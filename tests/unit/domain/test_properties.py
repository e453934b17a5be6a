"""Properties of the escalation engine (issue 3), proved with generated policies and event times.

Every simulation step (see :class:`builders.Simulation`) already checks that
asking twice gives the same answer, that planning on the plan's own status
changes nothing, and that after the due work is recorded nothing is due and
the wake-up is not in the past. The tests here add what needs the whole run.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api.common import Severity, parse_duration
from incidentops.api.incident import AlertsStatus
from incidentops.api.policy import EscalationPolicy, Until

from .builders import Simulation, at, incident, level, policy, with_status

CHANNELS = ("c0", "c1", "c2", "c3")
SEVERITIES = ("P1", "P2", "P3", "P4")
HORIZON = 6 * 3600  # seconds simulated

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

delays = st.integers(min_value=0, max_value=2 * 3600)


@st.composite
def levels(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=5))):
        until = draw(st.sampled_from(["acknowledged", "resolved"]))
        notify = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            out.append(level(f"l{i}", f"{draw(delays)}s", until=until, notify=notify))
        else:
            by = draw(st.dictionaries(st.sampled_from(SEVERITIES), delays.map(lambda s: f"{s}s"), min_size=1))
            out.append(level(f"l{i}", by_severity=by, until=until, notify=notify))
    return out


@st.composite
def policies(draw: st.DrawFn) -> EscalationPolicy:
    chain = draw(levels())
    paging_delays = [
        parse_duration(d).total_seconds()
        for lvl in chain
        if lvl["until"] == "acknowledged"
        for d in ([lvl["after"]] if "after" in lvl else lvl["afterBySeverity"].values())
    ]
    repeat = None
    if draw(st.booleans()):
        every = int(max(paging_delays, default=0)) + draw(st.integers(min_value=1, max_value=3600))
        repeat = {"times": draw(st.integers(min_value=1, max_value=3)), "every": f"{every}s"}
    breach = draw(st.none() | st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2, unique=True))
    return policy(levels=chain, repeat=repeat, notify_on_breach=breach)


moments = st.integers(min_value=0, max_value=HORIZON)
plan_times = st.lists(moments, min_size=1, max_size=14).map(lambda xs: sorted(set(xs)))


def seconds(s: int) -> datetime.datetime:
    return at(seconds=s)


def person(s: int) -> dict[str, Any]:
    return {"by": "alice", "at": seconds(s).isoformat()}


def run(
    sim: Simulation,
    times: list[int],
    *,
    ack: int | None = None,
    resolve: int | None = None,
    edit_at: int | None = None,
    edited: EscalationPolicy | None = None,
) -> list[tuple[int, Any]]:
    """Step at ``times``; people act at ``ack``/``resolve``; the policy is edited at ``edit_at``.
    Returns (time, status) after each step."""
    statuses = []
    for t in times:
        if ack is not None and t >= ack and sim.incident.spec.acknowledgement is None:
            sim.edit(acknowledgement=person(ack))
        if resolve is not None and t >= resolve and sim.incident.spec.resolution is None:
            sim.edit(resolution=person(resolve))
        if edit_at is not None and edited is not None and t >= edit_at:
            sim.policies = [edited]
        sim.step(seconds(t))
        statuses.append((t, sim.status))
    return statuses


def assert_no_key_twice(sim: Simulation) -> None:
    keys = [d.key for _, d in sim.sent]
    assert len(keys) == len(set(keys)), "a key was due twice"


def assert_cursor_never_goes_back(statuses: list[tuple[int, Any]]) -> None:
    previous = None
    for _, status in statuses:
        cursor = status.escalation
        point = (status.episode, cursor.round, -1 if cursor.level is None else cursor.level)
        if previous is not None and previous[0] == point[0]:
            assert point[1] >= previous[1], "the round went back"
            assert point[2] >= previous[2], "the level went back"
        previous = point


@FAST
@given(
    p=policies(),
    severity=st.sampled_from(SEVERITIES),
    times=plan_times,
    ack=st.none() | moments,
    resolve=st.none() | moments,
)
def test_a_key_is_never_due_twice_and_the_cursor_never_goes_back(
    p: EscalationPolicy, severity: str, times: list[int], ack: int | None, resolve: int | None
) -> None:
    sim = Simulation(incident(severity=severity), [p])
    statuses = run(sim, times, ack=ack, resolve=resolve)
    assert_no_key_twice(sim)
    assert_cursor_never_goes_back(statuses)


@FAST
@given(p=policies(), severity=st.sampled_from(SEVERITIES), start=moments, data=st.data())
def test_the_scheduler_loop_never_wakes_in_the_past(
    p: EscalationPolicy, severity: str, start: int, data: st.DataObject
) -> None:
    """Driven by its own wake-ups (and sometimes late), as the scheduler drives it."""
    sim = Simulation(incident(severity=severity), [p])
    now = seconds(start)
    for _ in range(12):
        result = sim.step(now)
        if result.wake_at is None:
            break
        assert result.wake_at > now
        late = data.draw(st.integers(min_value=0, max_value=900), label="lateness")
        now = result.wake_at + datetime.timedelta(seconds=late)
    assert_no_key_twice(sim)


@FAST
@given(p=policies(), severity=st.sampled_from(SEVERITIES), times=plan_times, ack=moments)
def test_acknowledgement_stops_every_until_acknowledged_level_and_no_other(
    p: EscalationPolicy, severity: str, times: list[int], ack: int
) -> None:
    sim = Simulation(incident(severity=severity), [p])
    run(sim, times, ack=ack)
    levels_ = p.spec.levels
    for t, due in sim.sent:
        if due.level is not None and levels_[due.level].until is Until.ACKNOWLEDGED:
            assert t < seconds(ack), f"{due.level_name} paged after the acknowledgement"
    # Stakeholder levels are not stopped: each one due by the last plan was notified.
    sent_levels = {due.level_name for _, due in sim.sent}
    last = seconds(times[-1])
    for lvl in levels_:
        delay = lvl.delay_for(Severity(severity))
        if lvl.until is Until.RESOLVED and delay is not None and at() + delay <= last:
            assert lvl.name in sent_levels, f"stakeholder level {lvl.name} was stopped by the acknowledgement"


@FAST
@given(
    before=policies(),
    after=policies(),
    severity=st.sampled_from(SEVERITIES),
    times=plan_times,
    edit_at=moments,
    ack=st.none() | moments,
)
def test_editing_a_policy_never_makes_a_sent_key_due_again(
    before: EscalationPolicy,
    after: EscalationPolicy,
    severity: str,
    times: list[int],
    edit_at: int,
    ack: int | None,
) -> None:
    sim = Simulation(incident(severity=severity), [before])
    statuses = run(sim, times, ack=ack, edit_at=edit_at, edited=after)
    assert_no_key_twice(sim)
    assert_cursor_never_goes_back(statuses)


@FAST
@given(p=policies(), severity=st.sampled_from(SEVERITIES), times=plan_times, new_severity=st.sampled_from(SEVERITIES))
def test_a_severity_change_never_resends(
    p: EscalationPolicy, severity: str, times: list[int], new_severity: str
) -> None:
    sim = Simulation(incident(severity=severity), [p])
    half = len(times) // 2
    run(sim, times[:half])
    sim.edit(severity=new_severity)
    run(sim, times[half:])
    assert_no_key_twice(sim)


@FAST
@given(
    p=policies(),
    severity=st.sampled_from(SEVERITIES),
    times=plan_times,
    snapshots=st.lists(st.tuples(moments, st.booleans()), max_size=6).map(sorted),
)
def test_episodes_from_alerts_keep_every_guarantee(
    p: EscalationPolicy, severity: str, times: list[int], snapshots: list[tuple[int, bool]]
) -> None:
    """Alerts resolving and firing again (new episodes): still no key twice, no cursor going back."""
    sim = Simulation(incident(severity=severity, source_labels={"alertname": "Down"}), [p])
    statuses = []
    pending = list(snapshots)
    for t in times:
        while pending and pending[0][0] <= t:
            received, firing = pending.pop(0)
            snapshot = AlertsStatus(firing=int(firing), resolved=int(not firing), last_received_at=seconds(received))
            sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))
        sim.step(seconds(t))
        statuses.append((t, sim.status))
    assert_no_key_twice(sim)
    assert_cursor_never_goes_back(statuses)
    episodes = [status.episode for _, status in statuses]
    assert episodes == sorted(episodes)
