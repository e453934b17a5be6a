"""domain.alertgroups: names, namespaces, status.alerts and the spec of alert-born incidents."""

from __future__ import annotations

import datetime
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.api import reasons
from incidentops.api.incident import Incident, Target
from incidentops.domain import alertgroups
from incidentops.intake.payload import WebhookPayload
from tests.unit.intake.payloads import ZERO_TIME, alert, body, payload, starts_at_values, valid_payloads

from .builders import examples

UTC = datetime.UTC
NOW = datetime.datetime(2025, 1, 31, 14, 5, tzinfo=UTC)
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


def test_a_groups_identity_never_changes_across_releases() -> None:
    """The incidents of groups still firing during an upgrade must keep their names: the hash is fixed."""
    group_key = '{}:{alertname="HighErrorRate"}'
    assert alertgroups.group_id("incidentops", group_key) == "3a4a257528f28a3247f84cc7b639fad43e92a81a"
    assert alertgroups.incident_name("incidentops", group_key, {"alertname": "HighErrorRate"}) == (
        "higherrorrate-3a4a257528f2"
    )


def test_the_prefix_is_the_alertname_made_dns_safe_without_dashes_at_its_ends() -> None:
    name = alertgroups.incident_name("r", "g", {"alertname": "--High Error_Rate!--"})
    assert name.startswith("high-error-rate-") and name.count("--") == 0
    # Cut to 40 characters, and a dash left at the cut goes too.
    cut = alertgroups.incident_name("r", "g", {"alertname": "a" * 39 + "-b" + "c" * 30})
    assert cut.startswith("a" * 39 + "-") and not cut.startswith("a" * 39 + "--")
    long = alertgroups.incident_name("r", "g", {"alertname": "!" + "a" * 45})
    assert long.startswith("a" * 40 + "-"), "40 characters of the alertname, not of the text before it is cleaned"


def test_the_longest_name_is_63_characters() -> None:
    name = alertgroups.incident_name("r", "g", {"alertname": "x" * 80}, 999_999_999)
    assert len(name) == 63 and DNS_LABEL.fullmatch(name)


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
    longest = {"namespace": "n" * 63}
    assert alertgroups.namespace_for(longest, "ops", allow_alert_namespace=True) == "n" * 63
    assert alertgroups.namespace_for({"namespace": "n" * 64}, "ops", allow_alert_namespace=True) == "ops"


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


def test_the_sample_is_the_firing_fingerprints_then_the_resolved_ones_never_more_never_twice() -> None:
    firing = [alert(pod=f"f{i}") for i in range(5)]
    resolved = [alert("resolved", pod=f"r{i}") for i in range(30)]
    smallest = min(resolved, key=lambda a: a["fingerprint"])
    status = alertgroups.alerts_status(parsed(payload([*firing, *resolved, smallest])), NOW)
    assert status.sample[:5] == sorted(a["fingerprint"] for a in firing)
    assert status.sample[5:] == sorted(a["fingerprint"] for a in resolved)[:15]
    assert len(status.sample) == alertgroups.MAX_SAMPLE == len(set(status.sample))


def test_last_fired_at_is_the_receipt_of_the_post_that_fires_again_after_one_that_did_not() -> None:
    firing, resolved = parsed(payload([alert()])), parsed(payload([alert("resolved")]))
    later = NOW + datetime.timedelta(minutes=10)
    opened = alertgroups.alerts_status(firing, NOW)
    assert opened.last_fired_at is None, "the POST that opened the incident is no re-fire"
    stopped = alertgroups.alerts_status(resolved, NOW + datetime.timedelta(minutes=5), opened)
    stopped_again = alertgroups.alerts_status(resolved, NOW + datetime.timedelta(minutes=7), stopped)
    assert stopped.last_fired_at is None and stopped_again.last_fired_at is None
    again = alertgroups.alerts_status(firing, later, stopped_again)
    assert again.last_fired_at == later
    resent = alertgroups.alerts_status(firing, later + datetime.timedelta(minutes=4), again)
    assert resent.last_fired_at == later, "a re-send of a group still firing is no re-fire"


def test_status_round_trips_through_the_api_model() -> None:
    status = alertgroups.alerts_status(parsed(payload()), NOW)
    assert status.to_dict()["lastReceivedAt"] == "2025-01-31T14:05:00Z"


def test_earliest_start_is_the_earliest_starts_at_in_utc() -> None:
    alerts = [alert(starts_at="2025-01-31T13:00:00Z", pod="a"), alert(starts_at="2025-01-31T13:30:00+01:30", pod="b")]
    started = alertgroups.earliest_start(parsed(payload(alerts)), NOW)
    assert started == datetime.datetime(2025, 1, 31, 12, tzinfo=datetime.UTC)
    assert started.utcoffset() == datetime.timedelta(0)


def test_earliest_start_ignores_alertmanagers_zero_time() -> None:
    alerts = [alert(starts_at=ZERO_TIME, pod="a"), alert(starts_at="2025-01-31T13:00:00Z", pod="b")]
    assert alertgroups.earliest_start(parsed(payload(alerts)), NOW) == datetime.datetime(
        2025, 1, 31, 13, tzinfo=datetime.UTC
    )
    only_zero = [alert(starts_at=ZERO_TIME, pod="a"), alert(starts_at="0001-01-01T00:00:00+01:00", pod="b")]
    assert alertgroups.earliest_start(parsed(payload(only_zero)), NOW) == NOW, "no usable start: the receipt"


def test_a_start_in_the_future_is_the_receipt() -> None:
    ahead = [alert(starts_at="2025-01-31T14:06:00Z", pod="a"), alert(starts_at="9999-12-31T23:59:59-23:59", pod="b")]
    assert alertgroups.earliest_start(parsed(payload(ahead)), NOW) == NOW


RECEIPTS = st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1), timezones=st.just(datetime.UTC))
YEAR_2 = datetime.datetime(2, 1, 1, tzinfo=datetime.UTC)


@given(starts=st.lists(starts_at_values, min_size=1, max_size=6), received=RECEIPTS)
def test_the_start_is_never_year_1_and_never_after_the_receipt(starts: list[str], received: datetime.datetime) -> None:
    group = parsed(payload([alert(starts_at=s, pod=f"p{i}") for i, s in enumerate(starts)]))
    started = alertgroups.earliest_start(group, received)
    assert started <= received
    assert started >= YEAR_2
    assert started.utcoffset() == datetime.timedelta(0)
    assert started == received or started in [a.starts_at for a in group.alerts]
    for a in group.alerts:
        if YEAR_2 <= a.starts_at <= received:
            assert started <= a.starts_at, "no usable start before the receipt is passed over"


def test_the_start_is_the_earliest_firing_alert_never_later_than_its_receipt() -> None:
    resolved_earlier = alert("resolved", starts_at="2025-01-31T11:00:00Z", pod="c")
    alerts = [alert(starts_at="2025-01-31T13:00:00Z", pod="a"), resolved_earlier]
    assert alertgroups.started_at(parsed(payload(alerts)), NOW) == (
        datetime.datetime(2025, 1, 31, 13, tzinfo=UTC),
        False,
    )
    # A sender's clock ahead of ours: the receipt, and the receiver says it clamped.
    ahead = parsed(payload([alert(starts_at="2025-01-31T15:00:00Z")]))
    assert alertgroups.started_at(ahead, NOW) == (NOW, True)
    assert alertgroups.started_at(parsed(payload([alert(starts_at=ZERO_TIME)])), NOW) == (NOW, False)
    exactly = parsed(payload([alert(starts_at="2025-01-31T14:05:00Z")]))
    assert alertgroups.started_at(exactly, NOW) == (NOW, False)
    assert alertgroups.source(ahead, NOW).started_at == NOW
    assert alertgroups.source(ahead).started_at is None


def test_a_clamped_start_is_said_on_the_timeline_by_alertmanager() -> None:
    ahead = parsed(payload([alert(starts_at="2025-01-31T15:00:00Z")]))
    entry = alertgroups.clamped_start_entry(ahead, NOW)
    assert entry is not None
    assert (entry.at, entry.kind, entry.actor) == (NOW, reasons.TIME_CLAMPED, "alertmanager")
    assert entry.message == (
        "the alerts' startsAt is ahead of the receiver's clock: the incident starts when they were received,"
        " 2025-01-31T14:05:00Z"
    )
    for starts_at in ("2025-01-31T14:05:00Z", "2025-01-31T13:00:00Z", ZERO_TIME):
        assert alertgroups.clamped_start_entry(parsed(payload([alert(starts_at=starts_at)])), NOW) is None


# --- which incident takes a group's alerts --------------------------------------------------------


def resolved_body(**status: object) -> dict[str, object]:
    return {"status": {"phase": "Resolved", **status}}


def test_an_open_incident_takes_its_groups_alerts_a_closed_one_never() -> None:
    assert alertgroups.takes_alerts({"status": {"phase": "Triggered"}}, NOW)
    assert alertgroups.takes_alerts({}, NOW)
    assert not alertgroups.takes_alerts({"status": {"phase": "Closed", "reopenUntil": "2999-01-01T00:00:00Z"}}, NOW)


def test_a_resolved_incident_takes_alerts_until_its_reopen_window_ends_and_not_after() -> None:
    until = "2025-01-31T14:05:00Z"  # NOW
    assert alertgroups.takes_alerts(resolved_body(reopenUntil=until), NOW)
    assert alertgroups.takes_alerts(resolved_body(reopenUntil="2025-01-31T14:05:00+00:00"), NOW)
    assert not alertgroups.takes_alerts(resolved_body(reopenUntil=until), NOW + datetime.timedelta(seconds=1))
    assert alertgroups.reopen_until(resolved_body(reopenUntil=until)) == NOW
    assert alertgroups.reopen_until({"status": {"phase": "Triggered", "reopenUntil": until}}) is None


def test_a_status_without_reopen_until_gets_the_default_window_from_the_resolution() -> None:
    """A status an older operator wrote: the Resolved condition's time plus the default hour."""
    conditions = [
        {"type": "Acknowledged", "status": "True", "lastTransitionTime": "2025-01-31T12:00:00Z"},
        {"type": "Resolved", "status": "True", "lastTransitionTime": "2025-01-31T13:05:00Z"},
    ]
    assert alertgroups.reopen_until(resolved_body(conditions=conditions)) == NOW
    assert alertgroups.takes_alerts(resolved_body(conditions=conditions), NOW)
    assert not alertgroups.takes_alerts(resolved_body(conditions=conditions), NOW + datetime.timedelta(seconds=1))
    # What cannot be read as a moment is no moment: the incident keeps taking its alerts.
    for odd in ("yesterday", "2025-01-31T13:05:00", 1738328700, None):
        broken = [{"type": "Resolved", "status": "True", "lastTransitionTime": odd}]
        assert alertgroups.reopen_until(resolved_body(reopenUntil=odd, conditions=broken)) is None
        assert alertgroups.takes_alerts(resolved_body(reopenUntil=odd, conditions=broken), NOW)
    assert alertgroups.reopen_until(resolved_body()) is None


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
    exact = parsed(payload(common_annotations={"summary": "x" * alertgroups.MAX_TITLE}))
    assert alertgroups.title(exact) == "x" * alertgroups.MAX_TITLE, "a title that fits is not cut"


def test_without_a_summary_the_title_is_the_common_alertname_else_the_group_key() -> None:
    by_namespace = parsed(payload([alert(namespace="shop", pod="a")], group_labels={"namespace": "shop"}))
    assert alertgroups.title(by_namespace) == "HighErrorRate"
    mixed = [alert(pod="a"), {**alert(pod="b"), "labels": {"pod": "b"}}]
    anonymous = parsed(payload(mixed, group_labels={}, group_key="{}:{}"))
    assert alertgroups.title(anonymous) == "Alert group {}:{}"
    # A group whose every alert resolved still has its first alert's summary.
    gone = parsed(
        payload([alert("resolved", annotations={"summary": "was down"}, pod="a"), alert("resolved", pod="b")])
    )
    assert alertgroups.title(gone) == "was down"


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


def test_targets_of_firing_alerts_come_first_and_a_bad_alert_skips_only_itself() -> None:
    alerts = [
        alert(namespace="Bad_NS", deployment="x"),
        alert("resolved", namespace="shop", deployment="old"),
        alert(namespace="shop", deployment="a"),
        alert(namespace="n" * 63, deployment="d" * 253),
        alert(namespace="n" * 64, deployment="too-long-namespace"),
        alert(namespace="shop", deployment="d" * 254),
        alert(namespace="shop", pod="p"),
        alert(namespace="a", pod="p"),
    ]
    targets = alertgroups.targets(parsed(payload(alerts)))
    assert [(t.name, t.namespace) for t in targets] == [
        ("a", "shop"),
        ("d" * 253, "n" * 63),
        ("p", "shop"),
        ("p", "a"),
        ("old", "shop"),
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
    longest = alertgroups.source(parsed(payload([alert(note="v" * alertgroups.MAX_SOURCE_LABEL_VALUE)])))
    assert longest.labels is not None and len(longest.labels["note"]) == alertgroups.MAX_SOURCE_LABEL_VALUE


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


def test_a_group_whose_every_alert_carries_the_drill_label_opens_a_drill() -> None:
    drill = {alertgroups.DRILL_LABEL: "true"}
    group = parsed(payload([alert(pod="a", **drill), alert(pod="b", **drill)]))
    assert alertgroups.is_drill(group)
    incident = alertgroups.new_incident(group, namespace="ops")
    assert incident.spec.drill is True
    assert incident.to_dict()["spec"]["drill"] is True
    assert incident.spec.source is not None and incident.spec.source.labels == {
        "alertname": "HighErrorRate",
        alertgroups.DRILL_LABEL: "true",
    }


def test_a_real_alert_in_the_group_or_another_value_keeps_it_real() -> None:
    mixed = parsed(payload([alert(pod="a", **{alertgroups.DRILL_LABEL: "true"}), alert(pod="b")]))
    assert not alertgroups.is_drill(mixed), "a real alert among drill alerts must page as real"
    for value in ("false", "True", "yes", ""):
        group = parsed(payload([alert(**{alertgroups.DRILL_LABEL: value})]))
        assert not alertgroups.is_drill(group), value
        assert "drill" not in alertgroups.new_incident(group, namespace="ops").to_dict()["spec"]
    assert alertgroups.new_incident(parsed(payload()), namespace="ops").spec.drill is None


def test_new_incident_carries_where_it_lives_when_it_started_its_predecessor_and_its_targets() -> None:
    firing = alert(starts_at="2025-01-31T13:00:00Z", namespace="shop", pod="checkout-1")
    group = parsed(payload([firing], common_annotations={"description": "5% of requests fail"}))
    chosen = [Target(kind="Deployment", name="checkout", namespace="shop")]
    incident = alertgroups.new_incident(
        group, namespace="ops", workload_targets=chosen, received_at=NOW, previous="higherrorrate-3a4a257528f2"
    )
    assert (incident.metadata.namespace, incident.metadata.name) == (
        "ops",
        alertgroups.incident_name(group.receiver, group.group_key, group.group_labels),
    )
    assert incident.metadata.labels[alertgroups.ALERT_GROUP_SEQUENCE_LABEL] == "1"
    assert incident.spec.description == "5% of requests fail"
    assert incident.spec.targets == chosen
    source = incident.spec.source
    assert source is not None and source.group_key == group.group_key
    assert source.started_at == datetime.datetime(2025, 1, 31, 13, tzinfo=UTC)
    assert source.previous == "higherrorrate-3a4a257528f2"
    # Without the receiver's mapping, the targets are the alerts' own.
    plain = alertgroups.new_incident(group, namespace="ops")
    assert [(t.kind, t.name) for t in plain.spec.targets] == [("Pod", "checkout-1")]
    assert plain.spec.source is not None and plain.spec.source.started_at is None


def test_closed_and_sequence_read_from_json() -> None:
    assert alertgroups.is_closed({"status": {"phase": "Closed"}})
    assert not alertgroups.is_closed({"status": {"phase": "Resolved"}})
    assert not alertgroups.is_closed({})
    assert alertgroups.sequence_of({}) == 1
    assert alertgroups.sequence_of({"metadata": {"labels": {alertgroups.ALERT_GROUP_SEQUENCE_LABEL: "x"}}}) == 1
    assert alertgroups.sequence_of({"metadata": {"labels": {alertgroups.ALERT_GROUP_SEQUENCE_LABEL: "7"}}}) == 7
    for odd in ("0", "1234567890"):
        assert alertgroups.sequence_of({"metadata": {"labels": {alertgroups.ALERT_GROUP_SEQUENCE_LABEL: odd}}}) == 1


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
