"""Properties of the escalation engine (issue 3), proved with generated policies and event times.

Every simulation step (see :class:`builders.Simulation`) already checks that
asking twice gives the same answer, that planning on the plan's own status
changes nothing, and that after the due work is recorded nothing is due and
the wake-up is not in the past. The tests here add what needs the whole run.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api import conditions as cond
from incidentops.api.common import Severity, parse_duration
from incidentops.api.incident import AlertsStatus
from incidentops.api.policy import EscalationPolicy, Until
from incidentops.domain.alertgroups import with_fired_at

from .builders import Simulation, at, examples, incident, level, policy, with_status

CHANNELS = ("c0", "c1", "c2", "c3")
SEVERITIES = ("P1", "P2", "P3", "P4")
HORIZON = 6 * 3600  # seconds simulated

FAST = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])

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
            snapshot = with_fired_at(sim.status.alerts, snapshot)
            sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))
        sim.step(seconds(t))
        statuses.append((t, sim.status))
    assert_no_key_twice(sim)
    assert_cursor_never_goes_back(statuses)
    episodes = [status.episode for _, status in statuses]
    assert episodes == sorted(episodes)


# --- liveness: every page that is due goes out at its time, once ------------------------------------------
#
# The oracle below re-states the rules of DESIGN.md ("EscalationPolicy", "Incident") on its own, without
# the domain's code: episodes from the alert snapshots (a resolved episode reopens when the group starts
# firing again within the window; the new one starts then), what stops paging (an acknowledgement or a
# containment or a resolution that counts in the episode), what stops stakeholders (a resolution), the
# rounds, and the severity in force. The simulation plays the scheduler: it looks at the incident at every
# wake-up the plan asks for and whenever something changes, and never else.

WINDOW = 3600  # seconds: the policies' default reopen window


@st.composite
def scripts(draw: st.DrawFn, severity_changes: int = 0) -> list[tuple[int, str, Any]]:
    """What happens, in time order: people's marks, severity changes (at least ``severity_changes``),
    alert snapshots (firing or not, and how long the operator takes to look)."""
    events: list[tuple[int, str, Any]] = []
    for kind in ("acknowledgement", "containment", "resolution"):
        for t in draw(st.lists(moments, max_size=2, unique=True)):
            events.append((t, kind, None))
    for t in draw(st.lists(moments, min_size=severity_changes, max_size=max(2, severity_changes), unique=True)):
        events.append((t, "severity", draw(st.sampled_from(SEVERITIES))))
    for t in draw(st.lists(moments, max_size=6, unique=True)):
        # The receiver writes the snapshot at t; the operator looks (its watch event) a little later.
        events.append((t, "alerts", (draw(st.booleans()), draw(st.integers(min_value=0, max_value=120)))))
    return sorted(events, key=lambda e: e[0])


def drive(sim: Simulation, script: list[tuple[int, str, Any]], horizon: int = HORIZON) -> list[int]:
    """The scheduler: look at every wake-up the plan asks for and whenever something changes (the look after
    a snapshot may lag behind its write); everything that changed by a look is on the object it reads.
    Returns the seconds it looked at."""
    # A snapshot is looked at before the next one replaces it (the operator's watch sees every write; a
    # resolution that lasts less than one look is absorbed, which this model leaves out).
    snapshots = [t for t, kind, _ in script if kind == "alerts"]

    def look_after(t: int, lag: int) -> int:
        later = [u for u in snapshots if u > t]
        return min(t + lag, later[0] - 1) if later else t + lag

    pokes = {0} | {look_after(t, value[1]) if kind == "alerts" else t for t, kind, value in script}
    applied = 0
    looks: list[int] = []
    wake: int | None = None
    while True:
        candidates = pokes | ({wake} if wake is not None else set())
        if not candidates or min(candidates) > horizon:
            return looks
        now = min(candidates)
        pokes = {t for t in pokes if t > now}
        while applied < len(script) and script[applied][0] <= now:
            _apply(sim, *script[applied])
            applied += 1
        looks.append(now)
        result = sim.step(seconds(now))
        if result.wake_at is None:
            wake = None
        else:
            delta = (result.wake_at - at()).total_seconds()
            wake = int(delta) if delta == int(delta) else int(delta) + 1  # the simulated clock ticks in seconds


def _apply(sim: Simulation, t: int, kind: str, value: Any) -> None:
    """One change to the object, made at second ``t``."""
    if kind == "severity":
        sim.edit(severity=value)
    elif kind == "alerts":
        firing = value[0]
        snapshot = AlertsStatus(firing=int(firing), resolved=int(not firing), last_received_at=seconds(t))
        snapshot = with_fired_at(sim.status.alerts, snapshot)
        sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": snapshot}))
    else:
        sim.edit(**{kind: person(t)})


@dataclass
class Episode:
    start: int
    end: int | None = None  # when the next episode started
    paging_stops: int | None = None
    resolved: int | None = None


def oracle_episodes(script: list[tuple[int, str, Any]], horizon: int) -> list[Episode]:
    """Episodes from the script alone (the rules, not the code): marks count in an episode from its start."""
    episodes = [Episode(start=0)]
    marks: dict[str, int] = {}
    firing = True  # alert-born incidents start with their group firing
    for t, kind, value in [*script, (horizon + 1, "end", None)]:
        ep = episodes[-1]
        # Resolution by the alerts: the latest snapshot resolved, received in this episode.
        if kind in ("acknowledgement", "containment", "resolution"):
            marks[kind] = t
        if kind == "alerts":
            now_firing = value[0]
            if not now_firing and t >= ep.start and ep.resolved is None:
                ep.resolved = t
            if now_firing and not firing and ep.resolved is not None and ep.resolved < t <= ep.resolved + WINDOW:
                ep.end = t
                episodes.append(Episode(start=t))
                ep = episodes[-1]
            firing = now_firing
        first = len(episodes) == 1
        counting = {k: m for k, m in marks.items() if first or m >= ep.start}
        if "resolution" in counting and ep.resolved is None:
            ep.resolved = counting["resolution"]
        stops = [m for k, m in counting.items()]
        if ep.resolved is not None:
            stops.append(ep.resolved)
        if stops:
            ep.paging_stops = min(stops) if ep.paging_stops is None else min(ep.paging_stops, *stops)
    return episodes


def severity_segments(script: list[tuple[int, str, Any]], initial: str) -> list[tuple[int, str]]:
    """(from, severity) in force, in order."""
    out = [(0, initial)]
    for t, kind, value in script:
        if kind == "severity":
            out.append((t, value))
    return out


def expected_pages(
    p: EscalationPolicy, initial: str, script: list[tuple[int, str, Any]], horizon: int, looks: list[int]
) -> dict[tuple[int, str, int, str], int]:
    """(episode, level, round, channel) -> the second it goes out: at its time, or, for an episode the
    operator learns of only at its first look after the group fired again, at that look."""
    repeat = p.spec.repeat
    times, every = (repeat.times, int(parse_duration(repeat.every).total_seconds())) if repeat else (0, None)
    segments = severity_segments(script, initial)
    out: dict[tuple[int, str, int, str], int] = {}
    for number, ep in enumerate(oracle_episodes(script, horizon), start=1):
        end = min(x for x in (ep.end, horizon + 1) if x is not None)
        known = min((t for t in looks if t >= ep.start), default=horizon + 1)
        for lvl in p.spec.levels:
            paging = lvl.until is Until.ACKNOWLEDGED
            stop = ep.paging_stops if paging else ep.resolved
            for k in range(times + 1) if paging else (0,):
                round_start = ep.start + (k * every if every else 0)
                round_end = ep.start + (k + 1) * every if (paging and every and k < times) else end
                when = None
                for i, (since, severity) in enumerate(segments):
                    until = segments[i + 1][0] if i + 1 < len(segments) else horizon + 1
                    delay = lvl.delay_for(Severity(severity))
                    if delay is None:
                        continue
                    t = max(since, known, round_start + int(delay.total_seconds()))
                    if t < until:
                        when = t
                        break
                if when is None or when >= end or when >= round_end or (stop is not None and when >= stop):
                    continue
                for channel in lvl.notify:
                    out[(number, lvl.name, k, channel)] = when
    return out


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=policies(), severity=st.sampled_from(SEVERITIES), script=scripts())
def test_every_due_page_goes_out_at_its_time_once(
    p: EscalationPolicy, severity: str, script: list[tuple[int, str, Any]]
) -> None:
    sim = Simulation(incident(severity=severity, source_labels={"alertname": "Down"}), [p])
    firing = AlertsStatus(firing=1, last_received_at=at())
    sim.incident = with_status(sim.incident, sim.status.model_copy(update={"alerts": with_fired_at(None, firing)}))
    looks = drive(sim, script)
    sent: dict[tuple[int, str, int, str], int] = {}
    episode = 1
    for t, due in sim.sent:
        if due.event not in ("triggered", "escalated"):
            continue
        assert due.level_name is not None
        # The episode a page belongs to is in its key; the simulation knows it from the plan's status.
        key = (episode_of(sim, t, due), due.level_name, due.round, due.channel)
        assert key not in sent, f"sent twice: {key}"
        sent[key] = int((t - at()).total_seconds())
        episode = max(episode, key[0])
    assert sent == expected_pages(p, severity, script, HORIZON, looks)
    # The operator learns of a new episode at most two minutes after the group fired again (the lag);
    # an episode that starts within the lag of the simulation's end may have its look after it.
    for ep in oracle_episodes(script, HORIZON)[1:]:
        if ep.start + 120 <= HORIZON:
            assert min(t for t in looks if t >= ep.start) <= ep.start + 120


def episode_of(sim: Simulation, t: datetime.datetime, due: Any) -> int:
    """The episode of the plan that sent ``due`` at ``t``."""
    for result in sim.plans:
        if due in result.due:
            assert result.status.episode is not None
            return result.status.episode
    raise AssertionError("a sent notification that no plan made")


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=policies(), severity=st.sampled_from(SEVERITIES), script=scripts(severity_changes=2))
def test_a_breach_is_counted_once_per_episode_and_kind(
    p: EscalationPolicy, severity: str, script: list[tuple[int, str, Any]]
) -> None:
    sim = Simulation(incident(severity=severity, source_labels={"alertname": "Down"}), [p])
    drive(sim, script)
    per_episode: dict[int, list[str]] = {}
    for result in sim.plans:
        assert result.status.sla is not None and result.status.episode is not None
        kinds = [b.kind.value for b in result.status.sla.breaches]
        assert len(kinds) == len(set(kinds)), f"a kind breached twice in one episode: {kinds}"
        per_episode[result.status.episode] = kinds
    notices = [(episode_of(sim, t, d), d.detail, d.channel) for t, d in sim.events("sla-breached")]
    assert len(notices) == len(set(notices)), "a breach was announced twice to one channel"


@FAST
@given(p=policies(), severity=st.sampled_from(SEVERITIES), script=scripts())
def test_nothing_but_resolved_is_announced_once_an_episode_is_resolved(
    p: EscalationPolicy, severity: str, script: list[tuple[int, str, Any]]
) -> None:
    sim = Simulation(incident(severity=severity, source_labels={"alertname": "Down"}), [p])
    drive(sim, script)
    resolved_in: set[int] = set()
    for result in sim.plans:
        episode = result.status.episode
        assert episode is not None
        if episode in resolved_in:
            assert {d.event for d in result.due} <= {"resolved"}, f"announced after resolution: {result.due}"
        if cond.is_true(result.status.conditions, cond.RESOLVED):
            assert {d.event for d in result.due} <= {"resolved"}, f"sent with the resolution: {result.due}"
            resolved_in.add(episode)
