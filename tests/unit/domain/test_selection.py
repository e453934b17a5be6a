"""Policy selection and classification (DESIGN.md "EscalationPolicy", selection order)."""

from __future__ import annotations

import pytest

from incidentops.api import reasons
from incidentops.api.common import IncidentType, Severity
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, incident, level, policy


def test_ref_wins_over_selection() -> None:
    chosen = policy("chosen", "team", levels=[level("a")])
    better = policy("better", "team", levels=[level("a")], priority=100)
    selection = select_policy(incident(ref={"name": "chosen"}), [better, chosen], OPERATOR_NS)
    assert selection.policy is chosen
    assert selection.ref == "team/chosen"
    assert selection.reason == reasons.POLICY_SELECTED
    assert selection.message == "EscalationPolicy team/chosen (escalationPolicyRef)"


def test_ref_to_the_operator_namespace() -> None:
    shared = policy("shared", OPERATOR_NS)
    selection = select_policy(incident(ref={"name": "shared", "namespace": OPERATOR_NS}), [shared], OPERATOR_NS)
    assert selection.ref == f"{OPERATOR_NS}/shared"


def test_ref_out_of_scope_is_refused() -> None:
    elsewhere = policy("p", "other")
    selection = select_policy(incident(ref={"name": "p", "namespace": "other"}), [elsewhere], OPERATOR_NS)
    assert selection.policy is None
    assert selection.reason == reasons.POLICY_REF_OUT_OF_SCOPE
    assert "other/p" in selection.message


def test_ref_to_a_missing_policy() -> None:
    selection = select_policy(incident(ref={"name": "gone"}), [policy("default")], OPERATOR_NS)
    assert selection.policy is None
    assert selection.reason == reasons.POLICY_NOT_FOUND
    assert "team/gone" in selection.message


def test_ref_policy_classifies() -> None:
    ref = policy("mine", "team", classification={"rules": [{"match": {"labels": {"x": "y"}}, "severity": "P2"}]})
    inc = incident(severity=None, ref={"name": "mine"}, labels={"x": "y"})
    selection = select_policy(inc, [ref], OPERATOR_NS)
    assert (selection.severity, selection.severity_source) == (Severity.P2, "classification")
    assert selection.classified_by == "team/mine", "the timeline says which policy classified it"


@pytest.mark.parametrize(
    ("incident_labels", "source_labels", "expected"),
    [
        ({"team": "payments"}, None, "team/payments"),
        (None, {"team": "payments"}, "team/payments"),  # alert labels count too
        ({"team": "search"}, {"team": "payments"}, "incidentops/default"),  # the incident's own labels win
        ({"team": "payments", "environment": "staging"}, None, "incidentops/default"),  # matchExpressions
        (None, None, "incidentops/default"),
    ],
)
def test_label_candidates(
    incident_labels: dict[str, str] | None, source_labels: dict[str, str] | None, expected: str
) -> None:
    payments = policy(
        "payments",
        "team",
        priority=10,
        selector={
            "matchLabels": {"team": "payments"},
            "matchExpressions": [{"key": "environment", "operator": "NotIn", "values": ["staging"]}],
        },
    )
    inc = incident(labels=incident_labels, source_labels=source_labels)
    assert select_policy(inc, [payments, policy("default")], OPERATOR_NS).ref == expected


def test_source_labels_may_be_any_string() -> None:
    p = policy("p", "team", selector={"matchLabels": {"summary": "disk 95% full / on node-1"}})
    inc = incident(source_labels={"summary": "disk 95% full / on node-1"})
    assert select_policy(inc, [p], OPERATOR_NS).ref == "team/p"


def test_policies_of_other_namespaces_are_ignored() -> None:
    assert select_policy(incident(), [policy("p", "elsewhere", priority=999)], OPERATOR_NS).policy is None


def test_highest_priority_then_name() -> None:
    low = policy("a-low", "team", priority=1)
    high_b = policy("b-high", "team", priority=5)
    high_a = policy("a-high", "team", priority=5)
    assert select_policy(incident(), [low, high_b, high_a], OPERATOR_NS).ref == "team/a-high"


def test_same_name_and_priority_prefers_the_incident_namespace() -> None:
    own = policy("p", "team", priority=1)
    shared = policy("p", OPERATOR_NS, priority=1)
    assert select_policy(incident(), [shared, own], OPERATOR_NS).ref == "team/p"


def test_operator_namespace_policies_apply_to_every_namespace() -> None:
    shared = policy("shared", OPERATOR_NS, priority=3)
    assert select_policy(incident(namespace="anything"), [shared], OPERATOR_NS).ref == f"{OPERATOR_NS}/shared"


@pytest.mark.parametrize(
    ("label", "severity", "source"),
    [
        ("critical", Severity.P1, "classification"),
        ("error", Severity.P2, "classification"),
        ("warning", Severity.P3, "classification"),
        ("info", Severity.P4, "classification"),
        ("weird", Severity.P3, "default"),
    ],
)
def test_default_classification_rules(label: str, severity: Severity, source: str) -> None:
    inc = incident(severity=None, source_labels={"severity": label})
    selection = select_policy(inc, [policy("default")], OPERATOR_NS)
    assert (selection.severity, selection.severity_source) == (severity, source)


def test_spec_severity_and_type_win_over_classification() -> None:
    inc = incident(severity="P4", type="data", source_labels={"severity": "critical"})
    selection = select_policy(inc, [policy("default")], OPERATOR_NS)
    assert (selection.severity, selection.severity_source, selection.type) == (Severity.P4, "spec", IncidentType.DATA)


def test_classification_by_the_highest_priority_candidate() -> None:
    """The first candidate classifies, and may then itself be filtered out by severity."""
    classifier = policy(
        "classifier",
        "team",
        priority=10,
        selector={"severities": ["P1"]},
        classification={
            "rules": [{"match": {"labels": {"alertname": "Disk"}}, "severity": "P2", "type": "performance"}],
            "defaultSeverity": "P4",
        },
    )
    other = policy("other", "team", priority=1)
    inc = incident(severity=None, source_labels={"alertname": "Disk"})
    selection = select_policy(inc, [other, classifier], OPERATOR_NS)
    assert selection.severity is Severity.P2
    assert selection.type is IncidentType.PERFORMANCE
    assert selection.classified_by == "team/classifier"
    assert selection.ref == "team/other"  # the classifier admits only P1


def test_classifier_default_severity() -> None:
    p = policy("p", "team", classification={"rules": [], "defaultSeverity": "P2"})
    selection = select_policy(incident(severity=None, source_labels={"severity": "critical"}), [p], OPERATOR_NS)
    assert (selection.severity, selection.severity_source) == (Severity.P2, "default")


def test_first_matching_rule_wins_per_field() -> None:
    p = policy(
        "p",
        "team",
        classification={
            "rules": [
                {"match": {"labels": {"a": "1"}}, "type": "security"},
                {"match": {"labels": {"a": "1"}}, "severity": "P1", "type": "data"},
                {"match": {"labels": {"a": "1"}}, "severity": "P4"},
            ]
        },
    )
    selection = select_policy(incident(severity=None, labels={"a": "1"}), [p], OPERATOR_NS)
    assert (selection.severity, selection.type) == (Severity.P1, IncidentType.SECURITY)


@pytest.mark.parametrize(
    ("severity", "type", "expected"),
    [
        ("P1", "security", "team/security-p1"),
        ("P2", "security", "team/security"),
        ("P1", "availability", "incidentops/default"),
        ("P1", None, "incidentops/default"),  # a type filter needs a type
    ],
)
def test_severity_and_type_filters(severity: str, type: str | None, expected: str) -> None:
    policies = [
        policy("security-p1", "team", priority=10, selector={"severities": ["P1"], "types": ["security"]}),
        policy("security", "team", priority=5, selector={"types": ["security"]}),
        policy("default"),
    ]
    assert select_policy(incident(severity=severity, type=type), policies, OPERATOR_NS).ref == expected


def test_default_fallback_ignores_its_own_selector() -> None:
    fallback = policy("default", selector={"severities": ["P1"]})
    selection = select_policy(incident(severity="P4"), [fallback], OPERATOR_NS)
    assert selection.ref == f"{OPERATOR_NS}/default"
    assert selection.reason == reasons.POLICY_SELECTED
    assert "no other policy" in selection.message
    unclassified = select_policy(incident(severity=None), [fallback], OPERATOR_NS)
    assert unclassified.ref == unclassified.classified_by == f"{OPERATOR_NS}/default"


def test_a_default_outside_the_operator_namespace_is_no_fallback() -> None:
    selection = select_policy(
        incident(severity="P4"), [policy("default", "team", selector={"severities": ["P1"]})], OPERATOR_NS
    )
    assert selection.policy is None


def test_no_policy_at_all() -> None:
    selection = select_policy(incident(severity=None, source_labels={"severity": "critical"}), [], OPERATOR_NS)
    assert selection.policy is None
    assert selection.ref is None
    assert selection.reason == reasons.NO_ESCALATION_POLICY
    assert (selection.severity, selection.severity_source) == (Severity.P3, "default")
