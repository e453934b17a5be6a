from __future__ import annotations

from datetime import timedelta
from importlib import resources

import jinja2
import pytest

from incidentops.notify import templates
from incidentops.notify.base import EVENTS
from incidentops.notify.templates import DETAILS, format_duration, render

from .conftest import EVENT_DETAILS, T0, make_incident, make_notification


def test_one_template_per_event_shipped_as_package_data() -> None:
    folder = resources.files("incidentops.notify") / "templates"
    names = {p.name for p in folder.iterdir()}
    for event in EVENTS:
        assert f"{event}.txt.j2" in names
    assert "_base.txt.j2" in names and "_layout.html.j2" in names


def test_missing_variables_are_errors() -> None:
    assert templates._environment.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        templates._environment.from_string("{{ nowhere }}").render()


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("full", [True, False], ids=["all-details", "bare"])
def test_every_event_renders(event: str, full: bool) -> None:
    incident = (
        make_incident(acknowledged_by="alice", summary="Rolled back to r41.", root_cause="A bad config push.")
        if full
        else make_incident(type=None, description=None, started_at=None, url=None)
    )
    n = make_notification(event, incident=incident, details=EVENT_DETAILS[event] if full else {})
    m = render(event, n)
    assert m.subject and "\n" not in m.subject
    assert m.subject.startswith("[P1]")
    assert "Checkout returns 5xx" in m.subject and "Checkout returns 5xx" in m.text
    assert n.key in m.text
    assert "[DRILL]" not in m.text + m.subject
    assert "\n\n\n" not in m.text
    assert m.html is not None and "<html" in m.html


@pytest.mark.parametrize("event", EVENTS)
def test_drill_subject_and_text_start_with_marker(event: str) -> None:
    n = make_notification(event, incident=make_incident(drill=True), details=EVENT_DETAILS[event])
    m = render(event, n)
    assert m.subject.startswith("[DRILL] ")
    assert m.text.startswith("[DRILL] This is a drill")
    assert m.html is not None and "[DRILL]" in m.html


def test_initial_alert_carries_what_the_plans_ask_for() -> None:
    m = render("triggered", make_notification("triggered", details=EVENT_DETAILS["triggered"]))
    for expected in (
        "What: Checkout returns 5xx",
        "Severity: P1 (Critical)",
        "Impact: checkout unavailable for all users",
        "Started: 2025-01-31 14:00 UTC",
        "Responding: on-call",
        "Next update by: 2025-01-31 14:15 UTC",
        "every 15m",
    ):
        assert expected in m.text


def test_escalation_says_level_and_why() -> None:
    n = make_notification("escalated", level=1, level_name="team-lead", details={"after": "30m"})
    m = render("escalated", n)
    assert "Escalation level: team-lead (level 1)" in m.text
    assert "Why: not acknowledged within 30m" in m.text
    assert "team-lead" in m.subject


def test_sla_breach_names_the_deadline() -> None:
    m = render("sla-breached", make_notification("sla-breached", details={"breach": "resolve", "deadline": T0}))
    assert "resolution deadline of 2025-01-31 14:00 UTC has passed" in m.text
    assert "SLA breached (resolution)" in m.subject


def test_status_update_and_acknowledgement() -> None:
    inc = make_incident(summary="Rollback in progress, error rate falling.", acknowledged_by="alice")
    m = render("status-update", make_notification("status-update", incident=inc, details={"author": "bob"}))
    assert "Update: Rollback in progress, error rate falling." in m.text and "From: bob" in m.text
    m = render("acknowledged", make_notification("acknowledged", incident=inc))
    assert "Acknowledged by: alice" in m.text and "Time to acknowledge: 20m" in m.text


def test_resolution_has_summary_root_cause_and_duration() -> None:
    inc = make_incident(phase="Resolved", summary="Rolled back to r41.", root_cause="A bad config push.")
    n = make_notification("resolved", incident=inc, details={"resolved_at": T0 + timedelta(hours=1, minutes=5)})
    m = render("resolved", n)
    assert "Resolution summary: Rolled back to r41." in m.text
    assert "Root cause: A bad config push." in m.text
    assert "Duration: 1h 05m" in m.text


def test_text_is_not_escaped_html_is() -> None:
    inc = make_incident(title="<script>alert(1)</script> & co")
    m = render("triggered", make_notification("triggered", incident=inc))
    assert "<script>alert(1)</script> & co" in m.text
    assert m.html is not None and "<script>" not in m.html and "&lt;script&gt;" in m.html


def test_subject_is_one_line_whatever_the_title() -> None:
    m = render("triggered", make_notification("triggered", incident=make_incident(title="two\r\nlines\x00")))
    assert m.subject == "[P1] Incident: two lines"


def test_unknown_details_are_refused() -> None:
    with pytest.raises(TypeError, match="next_update"):
        render("triggered", make_notification("triggered"), next_update="soon")
    assert set(EVENT_DETAILS["triggered"]) <= set(DETAILS)


def test_keywords_override_details() -> None:
    n = make_notification("triggered", details={"impact": "some"})
    assert "Impact: all" in render("triggered", n, impact="all").text


def test_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        make_notification("exploded")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45, "45s"), (720, "12m"), (3900, "1h 05m"), (2 * 86400 + 3 * 3600, "2d 3h")]
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
