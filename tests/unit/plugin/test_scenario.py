"""plugin.scenario: the drill scenario file, its errors (file, line, field), and what it becomes: the
Incident of a declared drill, and the Alertmanager payload of one opened by its alerts (which the real
receiver's parser and the real intake turn into a drill incident)."""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import pytest

from incidentops.api import Incident
from incidentops.domain import alertgroups
from incidentops.intake.payload import parse as parse_payload
from incidentops.plugin import logic, scenario
from incidentops.plugin.scenario import ScenarioError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "drills").glob("*.yaml"))
NOW = datetime.datetime(2026, 11, 3, 14, 5, tzinfo=datetime.UTC)

MINIMAL = "title: Checkout is down\nseverity: P1\n"
WITH_ALERTS = """\
title: Checkout is down
severity: P1
description: Game day.
targets: {detect: 2m, acknowledge: 5m}
alerts:
  groupBy: [alertname]
  firing:
    - labels: {alertname: CheckoutDown, severity: critical, deployment: checkout}
      startsAt: -2m
    - labels: {alertname: CheckoutDown, severity: critical, deployment: checkout, pod: checkout-1}
      annotations: {summary: Checkout returns 502}
"""


def errors_of(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        scenario.parse(text, "drill.yaml")
    message = str(caught.value)
    assert "Traceback" not in message
    return message


# --- the examples --------------------------------------------------------------------------------


def test_there_are_example_drills_with_and_without_alerts() -> None:
    loaded = [scenario.load(path) for path in EXAMPLES]
    assert len(loaded) >= 3
    assert any(s.alerts for s in loaded) and any(s.alerts is None for s in loaded)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_scenario_that_makes_a_valid_drill(path: Path) -> None:
    drill = scenario.load(path)
    assert drill.targets.to_dict(), "an example drill says what it is measured against"
    if drill.alerts is None:
        body = logic.declare_body(
            "drill-x",
            drill.namespace or "default",
            title=drill.title,
            severity=drill.severity.value,
            drill=True,
            policy=drill.policy,
            extra=scenario.declare_extra(drill),
        )
        assert Incident.model_validate(body).spec.drill is True
        return
    payload = scenario.webhook_payload(drill, NOW, "bcdfg", drill.namespace)
    parsed = parse_payload(json.dumps(payload).encode())
    incident = alertgroups.new_incident(parsed, namespace=drill.namespace or "incidentops", received_at=NOW)
    assert incident.spec.drill is True
    if drill.namespace:
        assert parsed.group_labels["namespace"] == drill.namespace


# --- errors ----------------------------------------------------------------------------------------


def test_the_minimal_scenario() -> None:
    drill = scenario.parse(MINIMAL)
    assert (drill.title, drill.severity.value, drill.alerts, drill.targets.to_dict()) == (
        "Checkout is down",
        "P1",
        None,
        {},
    )


def test_errors_name_the_file_the_line_and_the_field() -> None:
    message = errors_of(
        "title: Checkout is down\n"
        "severity: P5\n"
        "targets:\n"
        "  acknowledge: 5 minutes\n"
        "  detct: 2m\n"
        "alerts:\n"
        "  firing:\n"
        "    - labels: {alertname: A, flag: true}\n"
        "      startsAt: 2m\n"
    )
    assert message.splitlines() == [
        "drill.yaml is not a valid drill scenario:",
        "  line 2: severity: Input should be 'P1', 'P2', 'P3' or 'P4'",
        "  line 4: targets.acknowledge: not a duration (use h, m, s or ms, e.g. 90s, 15m, 1h30m)",
        "  line 5: targets.detct: unknown field",
        "  line 8: alerts.firing[0].labels.flag: Input should be a valid string"
        ' (YAML reads true, 5 or 1.0 as no string: quote it, "true")',
        "  line 9: alerts.firing[0].startsAt: '2m' is in the future: startsAt is an offset into the past,"
        " such as -2m (or 0s for now)",
    ]


def test_a_missing_field_points_at_the_mapping_that_lacks_it() -> None:
    assert "line 1: title: Field required" in errors_of("severity: P2\n")
    assert "line 5: alerts.firing[0].labels: Field required" in errors_of(
        MINIMAL + "alerts:\n  firing:\n    - startsAt: -1m\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: [unclosed\n", "drill.yaml:2:1: not valid YAML"),
        ("", "holds one YAML document, this one holds nothing"),
        (MINIMAL + "---\n" + MINIMAL, "this one holds 2 documents"),
        ("- title: x\n", "drill.yaml:1: a scenario is a mapping"),
    ],
)
def test_what_is_not_a_scenario_at_all(text: str, expected: str) -> None:
    assert expected in errors_of(text)


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"cannot read the scenario .*missing.yaml: No such file"):
        scenario.load(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe title")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        scenario.load(tmp_path / "binary.yaml")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("policy: a/b/c\n", "is not NAME or NAMESPACE/NAME"),
        ("actions: [{name: a, scale: {replicas: 1}}, {name: a, scale: {replicas: 2}}]\n", "same name"),
        ("actions: [{name: a, scale: {replicas: 1}, rollback: {}}]\n", "line 3: actions[0]"),
        ("alerts: {firing: [{labels: {severity: critical}}]}\n", "has no alertname label"),
        (
            "alerts: {firing: [{labels: {alertname: A, incidentops_drill_run: x}}]}\n",
            "the label incidentops_drill_run is the drill's own",
        ),
        (
            "alerts: {firing: [{labels: {alertname: A, incidentops_drill: 'false'}}]}\n",
            "the label incidentops_drill is the drill's own",
        ),
        (
            "alerts: {groupBy: [alertname, service], firing: [{labels: {alertname: A, service: a}},"
            " {labels: {alertname: A, service: b}}]}\n",
            "every alert of a group has the same 'service' label",
        ),
        ("policy: p\nalerts: {firing: [{labels: {alertname: A}}]}\n", "policy: not with alerts"),
        (
            "workloads: [{kind: Deployment, name: x}]\nalerts: {firing: [{labels: {alertname: A}}]}\n",
            "workloads: not with alerts",
        ),
        (
            "namespace: shop\nalerts: {firing: [{labels: {alertname: A, namespace: other}}]}\n",
            "its namespace label 'other' is not the scenario's namespace 'shop'",
        ),
    ],
)
def test_inconsistent_scenarios_are_refused(extra: str, expected: str) -> None:
    assert expected in errors_of(MINIMAL + extra)


@pytest.mark.parametrize(
    ("offset", "seconds"), [("-2m", -120), ("0s", 0), ("-1h30m", -5400), ("-250ms", -0.25), ("0", None)]
)
def test_offsets_go_into_the_past(offset: str, seconds: float | None) -> None:
    if seconds is None:
        with pytest.raises(ValueError, match="not a duration"):
            scenario.parse_offset(offset)
        return
    assert scenario.parse_offset(offset).total_seconds() == seconds


# --- what it becomes -------------------------------------------------------------------------------


def test_a_declared_drill_gets_its_targets_workloads_and_actions() -> None:
    drill = scenario.parse(
        MINIMAL
        + "targets: {acknowledge: 5m, resolve: 1h}\n"
        + "workloads: [{kind: Deployment, name: checkout}]\n"
        + "actions: [{name: scale-up, scale: {deployment: checkout, replicas: 4}}]\n"
    )
    assert scenario.declare_extra(drill) == {
        "drillTargets": {"acknowledge": "5m", "resolve": "1h"},
        "targets": [{"kind": "Deployment", "name": "checkout"}],
        "actions": [
            {
                "name": "scale-up",
                "scale": {"deployment": "checkout", "replicas": 4, "restoreOnResolve": False},
                "approval": "none",
            }
        ],
    }
    assert scenario.after_intake(scenario.parse(MINIMAL)) == {}


def test_the_payload_is_a_group_the_receiver_takes_and_opens_as_a_drill() -> None:
    drill = scenario.parse(WITH_ALERTS)
    payload = scenario.webhook_payload(drill, NOW, "bcdfg", "shop")
    group = parse_payload(json.dumps(payload).encode())  # the receiver's own strict parser
    assert group.group_labels == {"alertname": "CheckoutDown", "namespace": "shop", "incidentops_drill_run": "bcdfg"}
    assert group.common_labels == {
        "alertname": "CheckoutDown",
        "severity": "critical",
        "deployment": "checkout",
        "namespace": "shop",
        alertgroups.DRILL_LABEL: "true",
        scenario.DRILL_RUN_LABEL: "bcdfg",
    }
    assert [a.starts_at for a in group.alerts] == [NOW - datetime.timedelta(minutes=2), NOW]
    assert len({a.fingerprint for a in group.alerts}) == 2
    assert group.group_key.startswith('{}/{incidentops_drill="true"}:{')
    incident = alertgroups.new_incident(group, namespace="shop", received_at=NOW)
    assert incident.spec.drill is True
    # The first alert had no summary: it took the scenario's title, and the intake took the first one's.
    assert incident.spec.title == "Checkout is down"
    assert incident.spec.description == "Game day."
    assert incident.spec.source is not None and incident.spec.source.started_at == NOW - datetime.timedelta(minutes=2)
    assert [t.to_dict() for t in incident.spec.targets] == [
        {"kind": "Deployment", "name": "checkout", "namespace": "shop"}
    ]


def test_each_run_is_a_group_of_its_own() -> None:
    drill = scenario.parse(WITH_ALERTS)
    rng = random.Random(7)
    first, second = (scenario.webhook_payload(drill, NOW, scenario.run_id(rng)) for _ in range(2))
    assert first["groupKey"] != second["groupKey"]
    assert "namespace" not in first["groupLabels"], "no namespace: the receiver places the incident"
