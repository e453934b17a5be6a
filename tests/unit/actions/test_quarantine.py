"""Quarantine's decisions on JSON: which labels go, the patch, the names, the deny-all NetworkPolicy."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incidentops.actions.common import selector_matches
from incidentops.actions.quarantine import (
    QUARANTINE_LABEL,
    label_value,
    labels_to_drop,
    network_policy,
    policy_name,
    quarantine_ops,
)

from .jsonpatch import apply

keys = st.sampled_from(["app", "tier", "pod-template-hash", "app.kubernetes.io/name", "team", "version"])
values = st.sampled_from(["web", "front", "abc123", "shop", "v1"])
label_maps = st.dictionaries(keys, values, min_size=1, max_size=6)


@st.composite
def selectors_of(draw: st.DrawFn, labels: dict[str, str]) -> dict[str, Any]:
    """A selector that selects ``labels`` by at least one label it has (as ReplicaSets' and Services' do)."""
    chosen = draw(st.lists(st.sampled_from(sorted(labels)), min_size=1, max_size=len(labels), unique=True))
    selector: dict[str, Any] = {"matchLabels": {key: labels[key] for key in chosen}}
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(labels)))
        selector["matchExpressions"] = [
            draw(
                st.sampled_from(
                    [
                        {"key": key, "operator": "In", "values": [labels[key], "other"]},
                        {"key": key, "operator": "Exists"},
                        {"key": "absent", "operator": "DoesNotExist"},
                    ]
                )
            )
        ]
    return selector


@given(st.data(), label_maps)
def test_after_the_drop_no_selector_selects_the_pod_and_other_labels_stay(data: st.DataObject, labels: dict) -> None:
    selectors = data.draw(st.lists(selectors_of(labels), min_size=1, max_size=3))
    elsewhere = {"matchLabels": {"app": "something-else"}}
    drop = labels_to_drop(labels, [*selectors, elsewhere])
    assert drop is not None
    left = {key: value for key, value in labels.items() if key not in drop}
    assert not any(selector_matches(selector, left) for selector in selectors)
    needed = {key for selector in selectors for key in selector["matchLabels"]}
    needed |= {r["key"] for s in selectors for r in s.get("matchExpressions", []) if r["operator"] != "DoesNotExist"}
    assert drop == needed & set(labels), "only the labels the selectors match on"


def test_a_selector_that_does_not_select_the_pod_costs_no_label() -> None:
    assert labels_to_drop({"app": "web", "team": "a"}, [{"matchLabels": {"app": "api"}}]) == set()
    assert labels_to_drop({"app": "web"}, [{}]) == set(), "an empty selector (a Service without one) selects nothing"


def test_a_selector_by_absent_labels_only_cannot_be_escaped_by_removing_labels() -> None:
    selector = {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}
    assert labels_to_drop({"app": "web"}, [selector]) is None


@given(label_maps, st.booleans())
def test_the_patch_drops_the_labels_adds_the_quarantine_label_and_notes(labels: dict, annotated: bool) -> None:
    meta: dict[str, Any] = {"name": "web-1", "labels": dict(labels)}
    if annotated:
        meta["annotations"] = {"team": "checkout"}
    pod = {"metadata": meta}
    drop = set(sorted(labels)[:1])
    label = {QUARANTINE_LABEL: "checkout-down"}
    notes = {"incidentops.dev/action-key": "k"}
    after = apply(pod, quarantine_ops(pod, drop, label, notes))
    assert after["metadata"]["labels"] == {**{k: v for k, v in labels.items() if k not in drop}, **label}
    assert after["metadata"]["annotations"] == {**({"team": "checkout"} if annotated else {}), **notes}


def test_a_pod_without_labels_gets_the_quarantine_label() -> None:
    pod = {"metadata": {"name": "bare"}}
    after = apply(pod, quarantine_ops(pod, set(), {QUARANTINE_LABEL: "x"}, {"k": "v"}))
    assert after["metadata"] == {"name": "bare", "labels": {QUARANTINE_LABEL: "x"}, "annotations": {"k": "v"}}


@given(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", fullmatch=True))
def test_names_fit_their_limits_and_stay_apart(incident: str) -> None:
    value, name = label_value(incident), policy_name(incident)
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
    assert len(name) <= 253
    if len(incident) <= 63:
        assert value == incident, "the incident's own name when it fits"
    assert label_value(incident + "x") != value


def test_the_network_policy_denies_all_ingress_and_egress_of_the_quarantined() -> None:
    policy = network_policy("shop", "incidentops-quarantine-x", {QUARANTINE_LABEL: "x"}, {"k": "v"})
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {QUARANTINE_LABEL: "x"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert policy["metadata"]["annotations"] == {"k": "v"}
