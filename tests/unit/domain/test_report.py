"""The incident report (domain/report.py, report_text.py): which incidents count where, and how.

Properties over generated incidents (Hypothesis) and examples for each section of the report.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api.policy import EscalationPolicy
from incidentops.domain import report
from incidentops.domain.report_text import markdown

from .builders import examples

UTC = datetime.UTC
NOVEMBER = report.month_period(2026, 11)
NOW = datetime.datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
FAST = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body(
    name: str,
    opened: datetime.datetime,
    *,
    severity: str = "P2",
    type_: str | None = "availability",
    tta: int | None = None,
    ttr: int | None = None,
    breaches: tuple[str, ...] = (),
    closed: list[dict[str, Any]] | None = None,
    drill: bool = False,
    labels: dict[str, str] | None = None,
    postmortem: dict[str, Any] | None = None,
    action_items: list[dict[str, Any]] | None = None,
    policy: str | None = None,
    namespace: str = "team",
    current_start: datetime.datetime | None = None,
    extra_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Incident object as the API server returns it, with the status the operator would have written."""
    closed = closed or []
    episode = len(closed) + 1
    metrics = {k: v for k, v in (("timeToAcknowledgeSeconds", tta), ("timeToResolveSeconds", ttr)) if v is not None}
    status: dict[str, Any] = {
        "severity": severity,
        "episode": episode,
        "episodeStartedAt": iso(current_start or opened),
        "episodes": closed,
        "sla": {
            "breaches": [{"kind": b, "deadline": iso(opened), "at": iso(opened)} for b in breaches],
        },
        **({"metrics": metrics} if metrics else {}),
        **({"type": type_} if type_ else {}),
        **({"escalationPolicy": policy} if policy else {}),
        **({"postmortem": postmortem} if postmortem else {}),
        **(extra_status or {}),
    }
    spec: dict[str, Any] = {"title": f"{name} is failing", "severity": severity}
    if drill:
        spec["drill"] = True
    if labels:
        spec["source"] = {"kind": "alertmanager", "labels": labels}
    if action_items is not None:
        spec["postmortem"] = {"completed": False, "actionItems": action_items}
    return {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": iso(opened)},
        "spec": spec,
        "status": status,
    }


# --- properties -----------------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime.datetime(2026, 9, 1), max_value=datetime.datetime(2027, 1, 31), timezones=st.just(UTC)
)


@st.composite
def incidents(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=0, max_value=12))):
        opened = draw(moments)
        tta = draw(st.none() | st.integers(min_value=0, max_value=7200))
        ttr = draw(st.none() | st.integers(min_value=tta or 0, max_value=86400))
        reopens = draw(st.integers(min_value=0, max_value=2))
        closed = []
        start = opened
        for n in range(reopens):
            closed.append(
                {
                    "episode": n + 1,
                    "startedAt": iso(start),
                    "timeToResolveSeconds": 600,
                    "breaches": draw(st.lists(st.sampled_from(["Acknowledge", "Resolve", "Update"]), unique=True)),
                }
            )
            start = start + datetime.timedelta(hours=draw(st.integers(min_value=1, max_value=800)))
        out.append(
            body(
                f"inc-{i}",
                opened,
                severity=draw(st.sampled_from(["P1", "P2", "P3", "P4"])),
                type_=draw(st.sampled_from(["availability", "security", "data", None])),
                tta=tta,
                ttr=ttr,
                breaches=tuple(draw(st.lists(st.sampled_from(["Acknowledge", "Resolve"]), unique=True))),
                closed=closed,
                current_start=start,
                drill=draw(st.booleans()),
                labels={"alertname": draw(st.sampled_from(["HighLatency", "Down"])), "team": "a"},
            )
        )
    return out


@FAST
@given(incidents())
def test_counts_by_severity_and_by_type_add_up_to_the_total(bodies: list[dict[str, Any]]) -> None:
    r = report.build(bodies, NOVEMBER, NOW)
    assert sum(line.count for line in r.by_severity) == r.totals.incidents
    assert sum(line.count for line in r.by_type) == r.totals.incidents
    assert sum(line.episodes for line in r.by_severity) == r.totals.episodes
    assert r.totals.incidents == sum(
        1
        for b in bodies
        if not b["spec"].get("drill")
        and NOVEMBER.start <= datetime.datetime.fromisoformat(b["metadata"]["creationTimestamp"]) < NOVEMBER.end
    )


@FAST
@given(incidents())
def test_each_incident_counts_in_exactly_one_of_consecutive_periods(bodies: list[dict[str, Any]]) -> None:
    months = [report.month_period(y, m) for y, m in ((2026, 9), (2026, 10), (2026, 11), (2026, 12), (2027, 1))]
    reports = [report.build(bodies, month, NOW) for month in months]
    assert sum(r.totals.incidents for r in reports) == sum(1 for b in bodies if not b["spec"].get("drill"))
    assert sum(len(r.drills) for r in reports) == sum(1 for b in bodies if b["spec"].get("drill"))


@FAST
@given(incidents())
def test_an_incident_in_no_period_counts_nowhere(bodies: list[dict[str, Any]]) -> None:
    outside = report.month_period(2025, 6)  # every generated incident is later
    r = report.build(bodies, outside, NOW)
    assert r.totals.incidents == r.totals.episodes == 0
    assert not r.drills and not r.reopened and not r.top_alerts and not r.top_labels
    assert not r.postmortems and not r.action_items
    assert sum(r.breaches.values()) == 0


@given(st.integers(min_value=0, max_value=10_000))
def test_the_trend_of_a_count_against_itself_is_zero(count: int) -> None:
    t = report.trend(count, count)
    assert t.change == 0
    assert t.percent == (None if count == 0 else 0.0)


@FAST
@given(incidents())
def test_the_trend_counts_the_previous_month_and_the_breaches_the_episodes(bodies: list[dict[str, Any]]) -> None:
    r = report.build(bodies, NOVEMBER, NOW)
    october = report.build(bodies, report.month_period(2026, 10), NOW)
    assert r.totals.trend.previous == october.totals.incidents
    assert r.totals.trend.change == r.totals.incidents - october.totals.incidents
    breaches = sum(r.breaches.values())
    assert breaches <= 5 * r.totals.episodes


@FAST
@given(incidents())
def test_the_markdown_renders_every_report(bodies: list[dict[str, Any]]) -> None:
    text = markdown(report.build(bodies, NOVEMBER, NOW))
    assert text.startswith("# Monthly Incident Report - November 2026\n")


# --- examples ---------------------------------------------------------------------------------------------


def at(day: int, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(2026, 11, day, hour, tzinfo=UTC)


def test_response_times_against_the_targets_by_severity() -> None:
    bodies = [
        body("a", at(2), severity="P1", tta=300, ttr=3600),
        body("b", at(3), severity="P1", tta=1200, ttr=7200, breaches=("Acknowledge",)),
        body("c", at(4), severity="P1"),  # still open: counted, not averaged
        body("d", at(5), severity="P3", tta=60, ttr=None),
    ]
    r = report.build(bodies, NOVEMBER, NOW)
    p1 = r.by_severity[0]
    assert (p1.count, p1.resolved, p1.episodes, p1.acknowledged, p1.acknowledged_within_target) == (3, 2, 3, 2, 1)
    assert p1.mtta_seconds == 750.0 and p1.mttr_seconds == 5400.0 and p1.average_duration_seconds == 5400.0
    assert (p1.acknowledge_target_seconds, p1.resolve_target_seconds) == (900, 4 * 3600)
    assert (p1.resolved_episodes, p1.resolved_within_target) == (2, 2)
    assert r.totals.mtta_seconds == pytest.approx((300 + 1200 + 60) / 3, abs=0.1)
    assert r.breaches["Acknowledge"] == 1 and r.breaches["Resolve"] == 0


def test_targets_come_from_the_policy_in_effect_and_vary_when_policies_differ() -> None:
    fast = EscalationPolicy.model_validate(
        {"metadata": {"name": "fast", "namespace": "team"}, "spec": {"severities": {"P2": {"acknowledgeWithin": "5m"}}}}
    )
    one = report.build([body("a", at(2), policy="team/fast")], NOVEMBER, NOW, policies={"team/fast": fast})
    assert one.by_severity[1].acknowledge_target_seconds == 300
    both = report.build(
        [body("a", at(2), policy="team/fast"), body("b", at(3), policy="team/other")],
        NOVEMBER,
        NOW,
        policies={"team/fast": fast},
    )
    assert both.by_severity[1].acknowledge_target_seconds is None
    assert "varies" in markdown(both)


def test_episodes_count_in_the_period_they_started_and_reopened_incidents_are_listed() -> None:
    october = datetime.datetime(2026, 10, 30, tzinfo=UTC)
    closed = [{"episode": 1, "startedAt": iso(october), "timeToResolveSeconds": 100, "breaches": ["Resolve"]}]
    old = body("old", october, closed=closed, current_start=at(2), tta=30, ttr=60)
    new_closed = [{"episode": 1, "startedAt": iso(at(10)), "timeToResolveSeconds": 100}]
    new = body("new", at(10), closed=new_closed, current_start=at(11), tta=10, ttr=50)
    r = report.build([old, new], NOVEMBER, NOW)
    assert r.totals.incidents == 1  # opened in October: October's incident
    assert r.totals.episodes == 3  # old's second episode, new's two
    assert r.breaches["Resolve"] == 0  # old's breach was in its October episode
    assert [x.name for x in r.reopened] == ["new"]
    assert r.by_severity[1].average_duration_seconds == 150.0  # new's two episodes, 100 + 50


def test_drills_are_reported_apart_with_their_assessment() -> None:
    bodies = [
        body("drill-a", at(2), drill=True, tta=60, ttr=600, extra_status={"assessment": {"passed": True}}),
        body(
            "drill-b",
            at(3),
            drill=True,
            tta=2000,
            breaches=("Acknowledge",),
            extra_status={"assessment": {"result": "Fail"}},
        ),
        body("drill-c", at(4), drill=True),
        body("real", at(5)),
    ]
    r = report.build(bodies, NOVEMBER, NOW)
    assert r.totals.incidents == 1 and r.totals.episodes == 1
    assert [(d.name, d.result) for d in r.drills] == [("drill-a", "Passed"), ("drill-b", "Failed"), ("drill-c", None)]
    assert (r.drills_passed, r.drills_failed, r.drills_unassessed) == (1, 1, 1)
    assert r.drills[1].breaches == ["Acknowledge"] and r.breaches["Acknowledge"] == 0


def test_open_and_overdue_postmortems_and_action_items_including_the_backlog_and_unknown_states() -> None:
    september = datetime.datetime(2026, 9, 3, tzinfo=UTC)
    bodies = [
        body("pending", at(2), postmortem={"state": "Pending", "dueBy": iso(NOW + datetime.timedelta(days=2))}),
        body("overdue", at(3), postmortem={"state": "Overdue", "dueBy": iso(at(5))}),
        body("draft-late", september, postmortem={"state": "Draft", "dueBy": iso(at(1))}),  # backlog
        body("done", at(4), postmortem={"state": "Done"}, action_items=[{"title": "x", "owner": "a", "done": True}]),
        body("future-state", at(6), postmortem={"state": "InReview"}),  # a state this version does not know
        body(
            "items",
            at(7),
            action_items=[
                {"title": "Add an alert on queue depth", "owner": "ana", "dueBy": iso(at(20))},
                {
                    "title": "Write the runbook",
                    "owner": "bo",
                    "dueBy": iso(datetime.datetime(2026, 12, 20, tzinfo=UTC)),
                },
                {"title": "Fix the retry", "owner": "cy", "state": "Done"},
            ],
        ),
        body("december", datetime.datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), postmortem={"state": "Pending"}),
    ]
    r = report.build(bodies, NOVEMBER, NOW)
    assert sorted(p.name for p in r.postmortems) == ["draft-late", "future-state", "overdue", "pending"]
    assert (r.postmortems_open, r.postmortems_overdue) == (4, 2)
    assert [(a.title, a.overdue) for a in r.action_items] == [
        ("Add an alert on queue depth", True),
        ("Write the runbook", False),
    ]
    assert (r.action_items_open, r.action_items_overdue) == (2, 1)
    assert "Add an alert on queue depth - ana" in markdown(r)


def test_most_frequent_alert_names_and_labels() -> None:
    bodies = [
        body("a", at(2), labels={"alertname": "Down", "service": "checkout", "severity": "critical"}),
        body("b", at(3), labels={"alertname": "Down", "service": "checkout"}),
        body("c", at(4), labels={"alertname": "Slow", "service": "search"}),
    ]
    r = report.build(bodies, NOVEMBER, NOW)
    assert [(a.name, a.count) for a in r.top_alerts] == [("Down", 2), ("Slow", 1)]
    assert (r.top_labels[0].label, r.top_labels[0].value, r.top_labels[0].count) == ("service", "checkout", 2)


def test_an_object_that_is_no_incident_is_counted_apart() -> None:
    r = report.build([{"metadata": {"name": "x"}, "spec": {}}, body("a", at(2))], NOVEMBER, NOW)
    assert r.unreadable == 1 and r.totals.incidents == 1


def test_the_trend_in_the_markdown() -> None:
    bodies = [body("a", at(2)), body("b", at(3)), body("o", datetime.datetime(2026, 10, 2, tzinfo=UTC))]
    text = markdown(report.build(bodies, NOVEMBER, NOW))
    assert "- **Total incidents**: 2 (↑ 100% from last month, 1)" in text
    assert "| P2 | 2 |" in text


# --- periods ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-11", "November", "2026-1", ""])
def test_a_bad_month_is_refused_clearly(text: str) -> None:
    with pytest.raises(ValueError, match="is not a month"):
        report.parse_month(text)


@pytest.mark.parametrize("text", ["30", "30m", "-3d", "d", "0h", "99999d"])
def test_a_bad_length_is_refused_clearly(text: str) -> None:
    with pytest.raises(ValueError):
        report.parse_since(text)


def test_lengths_and_the_previous_period() -> None:
    assert report.parse_since("30d") == datetime.timedelta(days=30)
    assert report.parse_since("2w") == datetime.timedelta(days=14)
    period = report.since_period(datetime.timedelta(days=30), NOW, "30d")
    before = period.previous()
    assert before.end == period.start and before.end - before.start == period.end - period.start
    assert report.month_period(2026, 1).previous().label == "2025-12"


def test_the_monthly_due_time_in_the_policy_time_zone() -> None:
    berlin = report.zone_of(
        EscalationPolicy.model_validate(
            {"spec": {"businessHours": {"timeZone": "Europe/Berlin", "start": "09:00", "end": "17:00"}}}
        )
    )
    assert berlin is not None
    due = report.monthly_due(datetime.datetime(2026, 11, 17, tzinfo=UTC), berlin, datetime.time(9))
    assert due == datetime.datetime(2026, 11, 1, 8, tzinfo=UTC)  # 09:00 CET
    after = report.next_monthly_due(due, berlin, datetime.time(9))
    assert after == datetime.datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert report.next_monthly_due(
        datetime.datetime(2026, 12, 31, 23, 59, tzinfo=UTC), None, None
    ) == datetime.datetime(2027, 1, 1, tzinfo=UTC)
    # In Berlin, 23:30 UTC on 31 October is already 1 November: that month's report is due.
    assert report.previous_month(datetime.datetime(2026, 10, 31, 23, 30, tzinfo=UTC), berlin).label == "2026-10"
