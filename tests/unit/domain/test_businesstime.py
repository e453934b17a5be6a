"""Business hours: the arithmetic (across a weekend and the changes of summer time, with zoneinfo), and what
it does to levels ``during: businessHours`` and to ``clock: business`` response times (the seeds' P3 "during
business hours only" and P4 "next business day")."""

from __future__ import annotations

import datetime
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from incidentops.api import conditions as cond
from incidentops.api.common import Severity
from incidentops.api.policy import BusinessHours
from incidentops.domain import businesstime

from .builders import Simulation, examples, incident, level, mark, policy

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
HOURS = BusinessHours(time_zone="Europe/Berlin")  # Mon-Fri 09:00-17:00
UTC = datetime.UTC


def local(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(y, m, d, h, minute, tzinfo=BERLIN).astimezone(UTC)


# 2026-03-29 is the Sunday Europe/Berlin moves to summer time (UTC+1 -> UTC+2); 2026-10-25 back.
FRIDAY_BEFORE_DST = datetime.date(2026, 3, 27)


def test_open_and_closed() -> None:
    assert businesstime.is_open(HOURS, local(2026, 3, 27, 9))
    assert businesstime.is_open(HOURS, local(2026, 3, 27, 16, 59))
    assert not businesstime.is_open(HOURS, local(2026, 3, 27, 17))
    assert not businesstime.is_open(HOURS, local(2026, 3, 28, 12))  # Saturday


def test_next_open_skips_the_weekend_and_follows_the_wall_clock_across_summer_time() -> None:
    friday_evening = local(2026, 3, 27, 18)
    monday_nine = businesstime.next_open(HOURS, friday_evening)
    assert monday_nine == local(2026, 3, 30, 9)
    # 09:00 in Berlin is 08:00 UTC on Friday (winter) but 07:00 UTC on Monday (summer).
    assert local(2026, 3, 27, 9).hour == 8 and monday_nine.hour == 7
    assert businesstime.next_open(HOURS, local(2026, 3, 30, 10)) == local(2026, 3, 30, 10)


def test_closing_time_is_closed_and_a_page_due_then_waits_for_the_next_opening() -> None:
    friday_five = local(2026, 3, 27, 17)
    assert not businesstime.is_open(HOURS, friday_five)
    assert businesstime.next_open(HOURS, friday_five) == local(2026, 3, 30, 9)
    assert businesstime.next_open(HOURS, local(2026, 3, 27, 9)) == local(2026, 3, 27, 9)


def test_add_counts_only_working_time_across_a_weekend_and_a_change_of_time() -> None:
    # Friday 15:00 + 4h of work: 2h on Friday, 2h on Monday -> Monday 11:00 local.
    assert businesstime.add(HOURS, local(2026, 3, 27, 15), datetime.timedelta(hours=4)) == local(2026, 3, 30, 11)
    # Back to winter time: Friday 16:00 + 1h30 -> Monday 09:30.
    assert businesstime.add(HOURS, local(2026, 10, 23, 16), datetime.timedelta(minutes=90)) == local(
        2026, 10, 26, 9, 30
    )
    # Starting outside the hours counts from the next opening.
    assert businesstime.add(HOURS, local(2026, 3, 28, 3), datetime.timedelta(hours=1)) == local(2026, 3, 30, 10)
    assert businesstime.add(HOURS, local(2026, 3, 28, 3), datetime.timedelta(0)) == local(2026, 3, 28, 3)


def test_elapsed_is_the_inverse_of_add() -> None:
    start = local(2026, 3, 27, 15)
    assert businesstime.elapsed(HOURS, start, local(2026, 3, 30, 11)) == datetime.timedelta(hours=4)
    assert businesstime.elapsed(HOURS, local(2026, 3, 28, 0), local(2026, 3, 29, 23)) == datetime.timedelta(0)
    assert businesstime.elapsed(HOURS, start, start - datetime.timedelta(hours=1)) == datetime.timedelta(0)


moments = st.datetimes(
    min_value=datetime.datetime(2026, 1, 1), max_value=datetime.datetime(2027, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=200 * 3600).map(lambda s: datetime.timedelta(seconds=s))
hours_strategy = (
    st.fixed_dictionaries(
        {
            "timeZone": st.sampled_from(
                ["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC", "Asia/Kolkata"]
            ),
            "days": st.lists(
                st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]), min_size=1, unique=True
            ),
            "start": st.sampled_from(["00:00", "01:30", "06:30", "09:00", "13:00"]),
            "end": st.sampled_from(["02:30", "14:00", "17:00", "23:59"]),
        }
    )
    .filter(lambda h: h["start"] < h["end"])
    .map(BusinessHours.model_validate)
)


@settings(max_examples=examples(150), deadline=None)
@given(hours=hours_strategy, start=moments, duration=durations)
def test_add_and_elapsed_agree(hours: BusinessHours, start: datetime.datetime, duration: datetime.timedelta) -> None:
    end = businesstime.add(hours, start, duration)
    assert end >= start
    assert businesstime.elapsed(hours, start, end) == duration
    if duration:
        assert businesstime.is_open(hours, end - datetime.timedelta(microseconds=1))


@settings(max_examples=examples(150), deadline=None)
@given(hours=hours_strategy, moment=moments, edge=st.sampled_from([None, "opening", "closing"]))
def test_next_open_is_open_and_nothing_before_it_is(
    hours: BusinessHours, moment: datetime.datetime, edge: str | None
) -> None:
    if edge is not None:  # the moment the hours open or close that day, where an off-by-one would show
        wall = hours.opening() if edge == "opening" else hours.closing()
        moment = datetime.datetime.combine(moment.astimezone(hours.zone()).date(), wall, tzinfo=hours.zone())
        moment = moment.astimezone(UTC)
    opening = businesstime.next_open(hours, moment)
    assert opening >= moment
    assert businesstime.is_open(hours, opening)
    assert businesstime.elapsed(hours, moment, opening) == datetime.timedelta(0)


# --- what it does to escalation and the SLA --------------------------------------------------------------

WORK = {"timeZone": "Europe/Berlin"}
FRIDAY_18 = local(2026, 3, 27, 18)


def created_friday_evening(severity: str) -> object:
    return incident(severity=severity, created=FRIDAY_18)


def test_a_business_hours_level_waits_for_monday_and_an_always_level_does_not() -> None:
    p = policy(
        levels=[level("on-call", "0s", during="businessHours"), level("night", "0s", notify=["night"])],
        business_hours=WORK,
    )
    sim = Simulation(created_friday_evening("P3"), [p])  # type: ignore[arg-type]
    first = sim.step(FRIDAY_18)
    assert [d.level_name for d in first.due if d.level_name] == ["night"]
    assert first.wake_at is not None and first.wake_at <= local(2026, 3, 30, 9)
    sim.run_until(local(2026, 3, 30, 9), start=first.wake_at)
    pages = [(t, name) for t, name, *_ in sim.pages()]
    assert pages == [(FRIDAY_18, "night"), (local(2026, 3, 30, 9), "on-call")]


def test_p3_counts_business_time_by_default_when_the_policy_has_hours() -> None:
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK)
    sim = Simulation(created_friday_evening("P3"), [p])  # type: ignore[arg-type]
    sim.step(FRIDAY_18)
    sla = sim.status.sla
    assert sla is not None
    assert sla.acknowledge_by == local(2026, 3, 30, 13)  # 4 working hours from Monday 09:00 (summer time)
    assert sla.next_update_by == local(2026, 3, 30, 13)
    assert sla.resolve_by == FRIDAY_18 + datetime.timedelta(hours=72)  # resolve counts every hour


def test_p4_is_due_the_next_business_day() -> None:
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK)
    sim = Simulation(created_friday_evening("P4"), [p])  # type: ignore[arg-type]
    sim.step(FRIDAY_18)
    assert sim.status.sla is not None and sim.status.sla.acknowledge_by == local(2026, 3, 30, 17)
    assert p.spec.sla_for(Severity.P4).acknowledge_within == datetime.timedelta(hours=8)


def test_p1_keeps_the_wall_clock_and_a_policy_may_choose() -> None:
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK, severities={"P3": {"clock": "wall"}})
    assert not p.spec.sla_for(Severity.P1).business_clock
    assert not p.spec.sla_for(Severity.P3).business_clock
    assert p.spec.sla_for(Severity.P4).business_clock
    assert not policy(levels=[level("on-call")]).spec.sla_for(Severity.P3).business_clock


def test_update_reminders_count_business_time() -> None:
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK, severities={"P3": {"updateEvery": "1h"}})
    inc = incident(severity="P3", created=local(2026, 3, 27, 15, 30))
    sim = Simulation(inc, [p])
    sim.step(local(2026, 3, 27, 15, 30))
    sim.edit(acknowledgement=mark(0))
    sim.run_until(local(2026, 3, 27, 16, 45), start=local(2026, 3, 27, 15, 31))
    sim.step(local(2026, 3, 27, 16, 45))  # a look between two deadlines (someone edited the incident)
    sim.run_until(local(2026, 3, 30, 10, 45), start=local(2026, 3, 27, 16, 46))
    reminders = [(t, d.scheduled_at) for t, d in sim.events("update-due")]
    deadlines = [local(2026, 3, 27, 16, 30), local(2026, 3, 30, 9, 30), local(2026, 3, 30, 10, 30)]
    assert reminders == [(deadline, deadline) for deadline in deadlines]


def test_a_stakeholder_level_during_business_hours_waits_for_monday_and_hears_of_nothing_before() -> None:
    p = policy(
        levels=[
            level("on-call", "0s"),
            level("managers", "0s", until="resolved", notify=["managers"], during="businessHours"),
        ],
        business_hours=WORK,
    )
    sim = Simulation(created_friday_evening("P3"), [p])  # type: ignore[arg-type]
    sim.step(FRIDAY_18)
    sim.edit(acknowledgement={"by": "alice", "at": local(2026, 3, 28, 10).isoformat()})  # Saturday
    sim.run_until(local(2026, 3, 30, 9), start=local(2026, 3, 28, 10))
    pages = [(t, name) for t, name, *_ in sim.pages()]
    assert pages == [(FRIDAY_18, "on-call"), (local(2026, 3, 30, 9), "managers")]
    # Told of the page on Monday, after the acknowledgement: not told "acknowledged" late.
    assert [d.channel for _, d in sim.events("acknowledged")] == ["pager"]


def test_the_chain_runs_out_a_business_day_after_the_last_page() -> None:
    """P4 counts business time: paged Monday 16:00, its people have until Tuesday 16:00 to answer."""
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK)
    monday_four = local(2026, 3, 30, 16)
    sim = Simulation(incident(severity="P4", created=monday_four), [p])
    first = sim.step(monday_four)
    assert first.wake_at == local(2026, 3, 31, 16)
    sim.step(local(2026, 3, 31, 15, 59))
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    sim.step(local(2026, 3, 31, 16))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_a_page_that_waited_for_monday_gets_its_time_to_answer_from_monday() -> None:
    p = policy(levels=[level("on-call", "0s", during="businessHours")], business_hours=WORK)
    sim = Simulation(created_friday_evening("P1"), [p])  # type: ignore[arg-type]
    plans = sim.run_until(local(2026, 3, 30, 9, 14), start=FRIDAY_18)
    assert [t for t, *_ in sim.pages()] == [local(2026, 3, 30, 9)]
    assert not cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
    assert plans[-1].wake_at == local(2026, 3, 30, 9, 15)
    sim.step(local(2026, 3, 30, 9, 15))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)


def test_a_wall_clock_severity_runs_out_on_the_wall_clock_whatever_the_policys_hours() -> None:
    p = policy(levels=[level("on-call", "0s")], business_hours=WORK)
    sim = Simulation(created_friday_evening("P1"), [p])  # type: ignore[arg-type]
    first = sim.step(FRIDAY_18)
    assert first.wake_at == FRIDAY_18 + datetime.timedelta(minutes=15)
    sla = sim.status.sla
    assert sla is not None and sla.acknowledge_by == sla.next_update_by == FRIDAY_18 + datetime.timedelta(minutes=15)
    sim.step(FRIDAY_18 + datetime.timedelta(minutes=15))
    assert cond.is_true(sim.status.conditions, cond.ESCALATION_EXHAUSTED)
