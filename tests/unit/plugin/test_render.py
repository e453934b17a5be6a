"""What the plugin prints: the list table, describe, JSON/YAML."""

from __future__ import annotations

import datetime
import json

import yaml

from incidentops.plugin import render

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


def incident(name: str = "checkout-down", namespace: str = "payments", **status: object) -> dict:
    return {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2024-05-01T11:40:00Z"},
        "spec": {"title": "Checkout returns 502 for every payment", "severity": "P1", "type": "availability"},
        "status": dict(status),
    }


FULL = incident(
    phase="Acknowledged",
    severity="P1",
    episode=1,
    episodeStartedAt="2024-05-01T11:40:00Z",
    escalationPolicy="payments/payments",
    conditions=[
        {
            "type": "Ready",
            "status": "True",
            "reason": "PolicySelected",
            "message": "policy payments/payments",
            "lastTransitionTime": "2024-05-01T11:40:00Z",
        },
        {
            "type": "Acknowledged",
            "status": "True",
            "reason": "Acknowledged",
            "message": "by alice",
            "lastTransitionTime": "2024-05-01T11:45:00Z",
        },
    ],
    sla={
        "acknowledgeBy": "2024-05-01T11:55:00Z",
        "resolveBy": "2024-05-01T15:40:00Z",
        "nextUpdateBy": "2024-05-01T11:55:00Z",
        "nextDeadline": "2024-05-01T11:55:00Z",
        "breaches": [{"kind": "Update", "deadline": "2024-05-01T11:55:00Z", "at": "2024-05-01T11:55:01Z"}],
    },
    escalation={
        "round": 0,
        "level": 1,
        "levelName": "team-lead",
        "nextAt": "2024-05-01T12:10:00Z",
        "notified": ["k1", "k2"],
        "exhausted": False,
    },
    notifications=[
        {
            "key": f"k{i}",
            "channel": "pager",
            "event": "Triggered",
            "level": "on-call",
            "at": f"2024-05-01T11:{i:02d}:00Z",
            "outcome": "Sent",
            "attempts": 1,
        }
        for i in range(15)
    ],
    timeline=[
        {"at": "2024-05-01T11:40:00Z", "kind": "Triggered", "message": "incident opened", "actor": "alice"},
        {"at": "2024-05-01T11:45:00Z", "kind": "Acknowledged", "message": "acknowledged", "actor": "alice"},
    ],
    metrics={"timeToAcknowledgeSeconds": 300},
)
FULL["spec"]["acknowledgement"] = {"by": "alice", "at": "2024-05-01T11:45:00Z", "note": "looking"}


def test_table_aligns_columns() -> None:
    text = render.table(("A", "BB"), [["xxx", "y"], ["z", ""]])
    assert text.splitlines() == ["A     BB", "xxx   y", "z"]


def test_list_table() -> None:
    other = incident("api-slow", phase="Triggered")
    other["spec"] = {"title": "API is slow", "severity": "P3"}
    lines = render.incident_table([FULL, other], NOW).splitlines()
    assert lines[0].split() == ["NAME", "SEVERITY", "PHASE", "LEVEL", "ACKED-BY", "AGE", "TITLE"]
    assert lines[1].split()[:6] == ["api-slow", "P3", "Triggered", "-", "-", "20m"]  # sorted by name
    assert lines[2].split()[:6] == ["checkout-down", "P1", "Acknowledged", "team-lead", "alice", "20m"]
    assert lines[2].endswith("Checkout returns 502 for every payment")


def test_list_table_all_namespaces_and_wide() -> None:
    lines = render.incident_table([FULL], NOW, all_namespaces=True, wide=True).splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "SEVERITY",
        "PHASE",
        "LEVEL",
        "ACKED-BY",
        "AGE",
        "TITLE",
        "POLICY",
        "NEXT-DEADLINE",
    ]
    assert lines[1].split()[:2] == ["payments", "checkout-down"]
    assert lines[1].endswith("payments/payments   overdue 5m")


def test_list_row_of_a_fresh_incident_the_operator_has_not_seen() -> None:
    fresh = incident()
    fresh.pop("status")
    row = render.list_row(fresh, NOW)
    assert row == ["checkout-down", "P1", "-", "-", "-", "20m", "Checkout returns 502 for every payment"]


def test_acked_by_ignores_an_acknowledgement_of_an_earlier_episode() -> None:
    reopened = json.loads(json.dumps(FULL))
    reopened["status"].update(episode=2, episodeStartedAt="2024-05-01T11:50:00Z", phase="Triggered")
    assert render.list_row(reopened, NOW)[4] == "-"
    assert render.list_row(FULL, NOW)[4] == "alice"


def test_long_titles_are_shortened() -> None:
    long = incident()
    long["spec"]["title"] = "word " * 40
    cell = render.list_row(long, NOW)[-1]
    assert len(cell) == render.TITLE_WIDTH and cell.endswith("…")


def test_dump() -> None:
    listing = render.as_list([FULL])
    assert json.loads(render.dump(listing, "json"))["items"][0]["metadata"]["name"] == "checkout-down"
    assert yaml.safe_load(render.dump(listing, "yaml"))["kind"] == "List"


def test_deadline_state() -> None:
    assert render.deadline_state("2024-05-01T12:10:00Z", False, NOW) == "2024-05-01T12:10:00Z (10m left)"
    assert render.deadline_state("2024-05-01T11:55:00Z", False, NOW) == "2024-05-01T11:55:00Z (OVERDUE by 5m)"
    assert render.deadline_state("2024-05-01T11:55:00Z", True, NOW) == "2024-05-01T11:55:00Z (done)"
    assert render.deadline_state(None, False, NOW) == "-"


def test_describe_shows_everything() -> None:
    events = [
        {
            "type": "Normal",
            "reason": "Acknowledged",
            "message": "by alice",
            "lastTimestamp": "2024-05-01T11:45:00Z",
            "source": {"component": "incidentops"},
        }
    ]
    text = render.describe(FULL, NOW, events)
    for expected in (
        "Name:",
        "checkout-down",
        "Severity:",
        "Phase:",
        "Acknowledged",
        "by alice at 2024-05-01T11:45:00Z (15m ago)",
        "note: looking",
        "Conditions:",
        "PolicySelected",
        "SLA:",
        "Acknowledge by:",
        "2024-05-01T11:55:00Z (done)",  # acknowledged, so not overdue
        "Resolve by:",
        "(3h40m left)",
        "Next update by:",
        "(OVERDUE by 5m)",
        "Breaches:",
        "Escalation:",
        "team-lead (#1)",
        "2024-05-01T12:10:00Z (in 10m)",
        "Recent notifications:",
        "(5 older not shown)",
        "Timeline:",
        "incident opened",
        "Metrics (episode 1):",
        "Time to acknowledge:",
        "5m",
        "Events:",
        "incidentops",
    ):
        assert expected in text, expected
    # the ten newest notifications, in order
    assert "k14" not in text  # keys are not shown, times are
    assert text.index("Recent notifications:") < text.index("Timeline:")


def test_describe_of_a_fresh_incident() -> None:
    fresh = incident()
    fresh.pop("status")
    text = render.describe(fresh, NOW)
    assert "Phase:" in text and "Conditions:  <none>" in text and "SLA:  <none>" in text
    assert "Events:" not in text  # not read: not shown


def test_describe_shows_the_groups_earlier_incident_the_reopen_window_and_earlier_episodes() -> None:
    later = json.loads(json.dumps(FULL))
    later["spec"]["source"] = {"kind": "alertmanager", "receiver": "ops", "previous": "checkout-down-1"}
    later["status"].update(
        phase="Resolved",
        episode=2,
        reopenUntil="2024-05-01T13:00:00Z",
        episodes=[
            {
                "episode": 1,
                "startedAt": "2024-05-01T10:00:00Z",
                "resolvedAt": "2024-05-01T10:30:00Z",
                "timeToAcknowledgeSeconds": 240,
                "timeToResolveSeconds": 1800,
                "breaches": ["Acknowledge"],
            }
        ],
    )
    text = render.describe(later, NOW)
    assert "the group's earlier incident: checkout-down-1" in text
    assert "Reopens until:" in text and "2024-05-01T13:00:00Z" in text
    assert "Metrics (episode 2):" in text
    (row,) = [line for line in text.splitlines() if line.strip().startswith("1 ") and "10:30" in line]
    assert "4m" in row and "30m" in row and "Acknowledge" in row


def test_describe_marks_records_of_earlier_episodes() -> None:
    reopened = json.loads(json.dumps(FULL))
    reopened["status"].update(episode=2, episodeStartedAt="2024-05-01T11:50:00Z", reopenCount=1)
    text = render.describe(reopened, NOW)
    assert "[an earlier episode]" in text
    assert "reopened 1 time(s)" in text
    # the acknowledgement of episode 1 does not meet episode 2's deadline
    (line,) = [line for line in text.splitlines() if "Acknowledge by:" in line]
    assert line.endswith("2024-05-01T11:55:00Z (OVERDUE by 5m)")


def test_the_action_ledger_says_how_each_change_is_undone_in_commands_not_keys() -> None:
    def record(name: str, type_: str, **extra: object) -> dict[str, object]:
        return {"name": name, "type": type_, "phase": "Succeeded", "key": "k" * 64, "origin": "spec", **extra}

    body = {
        "metadata": {"name": "checkout-down", "namespace": "payments"},
        "status": {
            "actions": [
                record("rb", "rollback", undo={"deployments": "[...]"}),
                record("mp", "maintenance", undo={"onResolve": "true", "original": "{}", "target": "x"}),
                record("sc", "scale", undo={"replicas": "2"}),
                record("q", "quarantine", undo={"pods": "[]"}),
                record("dry", "maintenance", dryRun=True, undo={"onResolve": "true"}),
                record("done", "scale", undo={"replicas": "2"}, undoneAt="2024-05-01T11:58:00Z"),
                record("ev", "snapshot"),
            ]
        },
    }
    text = render.action_ledger(body, NOW)
    undo = {
        block.splitlines()[0].rstrip(":"): line.split("Undo:", 1)[1].strip()
        for block in text.split("\n\n")[1:]
        for line in block.splitlines()
        if "Undo:" in line
    }
    assert undo == {
        "rb": "never undone: roll forward with a new deploy",
        "mp": "on resolve, or now with kubectl incident undo checkout-down mp",
        "sc": "with kubectl incident undo checkout-down sc",
        "q": "only by a person: kubectl incident release checkout-down",
        "done": "undone 2024-05-01T11:58:00Z (2m ago)",
    }
    assert "original" not in text and "deployments" not in text


def test_describe_shows_a_drills_assessment_per_target() -> None:
    assessment = {
        "ref": "incidentops-assessment-0123",
        "assessedAt": "2024-05-01T11:30:00Z",
        "passed": False,
        "results": [
            {"target": "Acknowledge", "within": "10m", "source": "drill", "seconds": 120, "passed": True},
            {"target": "Contain", "within": "10m", "source": "drill", "passed": False},
        ],
    }
    text = render.describe(incident(assessment=assessment), NOW)
    section = text[text.index("Drill assessment:") :]
    assert "  Result:      failed\n" in section
    assert "  Acknowledge: pass: 120s (within 10m, drill)\n" in section
    assert "  Contain:     FAIL: never (within 10m, drill)\n" in section
    assert "  Ref:         incidentops-assessment-0123" in section
