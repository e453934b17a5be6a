"""domain.alertgroups: names, namespaces, status.alerts and the spec of alert-born incidents."""

from __future__ import annotations

import datetime
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api.incident import Incident
from incidentops.domain import alertgroups
from incidentops.intake.payload import WebhookPayload
from tests.unit.intake.payloads import alert, body, payload, valid_payloads

from .builders import examples

NOW = datetime.datetime(2025, 1, 31, 14, 5, tzinfo=datetime.UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parsed(value: dict) -> WebhookPayload:
    return WebhookPayload.model_validate_json(body(value))


# --- names --------------------------------------------------------------------------------------


def test_name_is_alertname_prefix_and_hash_of_receiver_and_group_key() -> None:
    name = alertgroups.incident_name("incidentops", '{}:{alertname="HighErrorRate"}', {"alertname": "HighErrorRate"})
    assert re.fullmatch(r"higherrorrate-[0-9a-f]{12}", name), name
    assert name.endswith(alertgroups.group_id("incidentops", '{}:{alertname="HighErrorRate"}')[:12])


def test_name_depends_on_receiver_and_group_key_only_through_the_hash() -> None:
    a = alertgroups.incident_name("r1", "g", {"alertname": "X"})
    b = alertgroups.incident_name("r2", "g", {"alertname": "X"})
    c = alertgroups.incident_name("r1", "g2", {"alertname": "X"})
    assert len({a, b, c}) == 3
    assert alertgroups.incident_name("r1", "g", {"alertname": "X"}) == a  # stable


def test_receiver_and_group_key_are_not_confused_by_concatenation() -> None:
    assert alertgroups.group_id("ab", "c") != alertgroups.group_id("a", "bc")


def test_later_incidents_of_a_group_get_a_sequence_suffix() -> None:
    first = alertgroups.incident_name("r", "g", {"alertname": "Disk Full!"})
    assert first.startswith("disk-full-")
    assert alertgroups.incident_name("r", "g", {"alertname": "Disk Full!"}, 2) == f"{first}-2"
    assert alertgroups.incident_name("r", "g", {"alertname": "Disk Full!"}, 123456789).endswith("-123456789")


def test_without_an_alertname_group_label_the_receiver_is_the_prefix() -> None:
    assert alertgroups.incident_name("Team-Pager", "g", {"namespace": "shop"}).startswith("team-pager-")
    assert alertgroups.incident_name("!!!", "g", {}).startswith("alerts-")


@given(
    receiver=st.text(min_size=1, max_size=300),
    group_key=st.text(max_size=300),
    alertname=st.text(max_size=300),
    sequence=st.integers(1, 999_999_999),
)
def test_names_are_dns_labels_of_at_most_63_characters(
    receiver: str, group_key: str, alertname: str, sequence: int
) -> None:
    name = alertgroups.incident_name(receiver, group_key, {"alertname": alertname}, sequence)
    assert len(name) <= 63
    assert DNS_LABEL.fullmatch(name), name


@given(receiver=st.text(max_size=50), group_key=st.text(max_size=50))
def test_group_ids_are_label_values(receiver: str, group_key: str) -> None:
    gid = alertgroups.group_id(receiver, group_key)
    assert re.fullmatch(r"[0-9a-f]{40}", gid)


# --- namespace --------------------------------------------------------------------------------------


def test_namespace_is_the_operators_unless_allowed() -> None:
    labels = {"namespace": "shop"}
    assert alertgroups.namespace_for(labels, "ops", allow_alert_namespace=False) == "ops"
    assert alertgroups.namespace_for(labels, "ops", allow_alert_namespace=True) == "shop"
    assert alertgroups.namespace_for({}, "ops", allow_alert_namespace=True) == "ops"
    assert alertgroups.namespace_for({"namespace": "Not_Valid"}, "ops", allow_alert_namespace=True) == "ops"
    assert alertgroups.namespace_for(labels, "ops", allow_alert_namespace=True, watched=["other"]) == "ops"
    assert alertgroups.namespace_for(labels, "ops", allow_alert_namespace=True, watched=["shop"]) == "shop"


# --- status.alerts ---------------------------------------------------------------------------------


def test_status_counts_come_from_the_post_alone() -> None:
    alerts = [alert(pod=f"p{i}") for i in range(3)] + [alert("resolved", pod="old")]
    status = alertgroups.alerts_status(parsed(payload(alerts, truncated=7)), NOW)
    assert (status.firing, status.resolved, status.truncated) == (3, 1, 7)
    assert status.last_received_at == NOW
    assert len(status.sample) == 4
    firing = sorted(a["fingerprint"] for a in alerts[:3])
    assert status.sample[:3] == firing, "firing fingerprints first, sorted"


def test_sample_is_capped_and_independent_of_order() -> None:
    alerts = [alert(pod=f"p{i}") for i in range(500)]
    a = alertgroups.alerts_status(parsed(payload(alerts)), NOW)
    b = alertgroups.alerts_status(parsed(payload(list(reversed(alerts)))), NOW)
    assert len(a.sample) == alertgroups.MAX_SAMPLE
    assert a == b, "the same group in another order gives the same status (no write)"
    assert a.firing == 500


def test_status_round_trips_through_the_api_model() -> None:
    status = alertgroups.alerts_status(parsed(payload()), NOW)
    assert status.to_dict()["lastReceivedAt"] == "2025-01-31T14:05:00Z"


def test_earliest_start_ignores_go_zero_time() -> None:
    alerts = [alert(starts_at="2025-01-31T13:00:00Z", pod="a"), alert(starts_at="2025-01-31T12:00:00Z", pod="b")]
    assert alertgroups.earliest_start(parsed(payload(alerts))) == datetime.datetime(
        2025, 1, 31, 12, tzinfo=datetime.UTC
    )
    assert alertgroups.earliest_start(parsed(payload([alert(starts_at="0001-01-01T00:00:00Z")]))) is None


# --- spec ---------------------------------------------------------------------------------------------


def test_title_and_description_prefer_common_annotations() -> None:
    alerts = [alert(annotations={"summary": "first", "description": "first d"}, pod="a"), alert(pod="b")]
    group = parsed(payload(alerts, common_annotations={"summary": "Errors  above\n5%", "description": "long"}))
    assert alertgroups.title(group) == "Errors above 5%"
    assert alertgroups.description(group) == "long"


def test_title_falls_back_to_the_first_firing_alert_then_the_alertname() -> None:
    alerts = [
        alert("resolved", annotations={"summary": "resolved one"}, pod="a"),
        alert(annotations={"summary": "firing one", "description": "d"}, pod="b"),
    ]
    group = parsed(payload(alerts))
    assert alertgroups.title(group) == "firing one"
    assert alertgroups.description(group) == "d"
    bare = parsed(payload([alert(pod="c")]))
    assert alertgroups.title(bare) == "HighErrorRate"
    assert alertgroups.description(bare) is None


def test_title_and_description_are_cut_to_the_schema() -> None:
    group = parsed(payload(common_annotations={"summary": "x" * 1000, "description": "y" * 10_000}))
    assert len(alertgroups.title(group)) == alertgroups.MAX_TITLE
    assert len(alertgroups.description(group) or "") == alertgroups.MAX_DESCRIPTION


def test_targets_from_workload_labels() -> None:
    alerts = [
        alert(namespace="shop", deployment="checkout", pod="checkout-1"),
        alert(namespace="shop", deployment="checkout", pod="checkout-2"),
        alert(namespace="shop", pod="cart-7d9f-x2"),
        alert(namespace="db", statefulset="postgres"),
        alert(namespace="Bad_NS", deployment="x"),
        alert(namespace="shop", deployment="Not A Name"),
        alert(service="no-workload"),
    ]
    targets = alertgroups.targets(parsed(payload(alerts)))
    assert [(t.kind, t.name, t.namespace) for t in targets] == [
        ("Deployment", "checkout", "shop"),
        ("Pod", "cart-7d9f-x2", "shop"),
        ("StatefulSet", "postgres", "db"),
    ]


def test_targets_are_capped() -> None:
    alerts = [alert(namespace="shop", deployment=f"d{i}") for i in range(50)]
    assert len(alertgroups.targets(parsed(payload(alerts)))) == alertgroups.MAX_TARGETS


def test_source_records_the_group_and_fits_the_schema() -> None:
    labels = {f"l{i:03d}": "v" for i in range(100)}
    labels |= {"severity": "critical", "huge": "z" * 2000}
    group = parsed(payload([alert(**labels)]))
    source = alertgroups.source(group)
    assert source.kind == "alertmanager"
    assert source.receiver == "incidentops"
    assert source.group_key == group.group_key
    assert source.labels is not None
    assert len(source.labels) == alertgroups.MAX_SOURCE_LABELS
    assert source.labels["alertname"] == "HighErrorRate" and source.labels["severity"] == "critical"
    assert "huge" not in source.labels, "a value too long is left out, not cut"


def test_new_incident_is_a_valid_incident_with_its_group_labels() -> None:
    group = parsed(
        payload(
            [alert(severity="critical", namespace="shop", deployment="checkout")],
            common_annotations={"summary": "Checkout errors"},
        )
    )
    incident = alertgroups.new_incident(group, namespace="ops", sequence=2)
    assert incident.metadata.name == alertgroups.incident_name(group.receiver, group.group_key, group.group_labels, 2)
    assert incident.metadata.labels == {
        alertgroups.ALERT_GROUP_LABEL: alertgroups.group_id(group.receiver, group.group_key),
        alertgroups.ALERT_GROUP_SEQUENCE_LABEL: "2",
    }
    assert incident.spec.severity is None, "left to the policy's classification"
    assert incident.spec.title == "Checkout errors"
    # What the receiver sends is what the API models accept back.
    again = Incident.model_validate(incident.to_dict())
    assert again.spec.source == incident.spec.source
    assert alertgroups.sequence_of(incident.to_dict()) == 2


def test_closed_and_sequence_read_from_json() -> None:
    assert alertgroups.is_closed({"status": {"phase": "Closed"}})
    assert not alertgroups.is_closed({"status": {"phase": "Resolved"}})
    assert not alertgroups.is_closed({})
    assert alertgroups.sequence_of({}) == 1
    assert alertgroups.sequence_of({"metadata": {"labels": {alertgroups.ALERT_GROUP_SEQUENCE_LABEL: "x"}}}) == 1
    assert alertgroups.sequence_of({"metadata": {"labels": {alertgroups.ALERT_GROUP_SEQUENCE_LABEL: "7"}}}) == 7


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(valid_payloads(), st.integers(1, 10_000))
def test_every_valid_payload_makes_a_valid_incident(value: dict, sequence: int) -> None:
    group = parsed(value)
    incident = alertgroups.new_incident(group, namespace="ops", sequence=sequence)
    again = Incident.model_validate(incident.to_dict())
    assert again.spec.title and len(again.spec.title) <= alertgroups.MAX_TITLE
    assert again.metadata.name is not None and DNS_LABEL.fullmatch(again.metadata.name)
    status = alertgroups.alerts_status(group, NOW)
    assert status.firing + status.resolved == len(group.alerts)
    assert type(status).model_validate(status.to_dict()) == status
