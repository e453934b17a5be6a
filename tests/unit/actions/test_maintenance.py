"""Maintenance's decisions on JSON: the switch replaces (never merges), undo is its exact inverse, and the
EndpointSlices must list only the maintenance Pods."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incidentops.actions.base import KEY_ANNOTATION
from incidentops.actions.maintenance import (
    ORIGINAL,
    endpoints_check,
    ingress_backends,
    ingress_restore_ops,
    ingress_switch_ops,
    maintenance_backends,
    service_restore_ops,
    service_switch_ops,
)

from .jsonpatch import apply

OURS = {KEY_ANNOTATION: "k" * 64, "incidentops.dev/incident": "shop/checkout-down"}

label_keys = st.sampled_from(["app", "tier", "app.kubernetes.io/name", "team~x", "track"])
label_values = st.text(alphabet="abcdefghij0123456789-.", min_size=1, max_size=10)
selectors = st.dictionaries(label_keys, label_values, min_size=1, max_size=4)
other_annotations = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(["team", "a/b", "note"]), st.text(max_size=6), min_size=1, max_size=3)
)


def service(selector: dict[str, str], annotations: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "shop", "namespace": "shop", "resourceVersion": "7"}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Service", "metadata": meta, "spec": {"selector": selector, "ports": [{"port": 80}]}}


@given(selectors, selectors, other_annotations)
def test_the_switch_replaces_the_selector_and_undo_is_its_exact_inverse(
    original: dict[str, str], maintenance: dict[str, str], annotations: dict[str, str] | None
) -> None:
    before = service(original, annotations)
    switched = apply(before, service_switch_ops(before, maintenance, OURS))
    assert switched["spec"]["selector"] == maintenance, "replaced, never merged"
    assert json.loads(switched["metadata"]["annotations"][ORIGINAL]) == original
    assert switched["metadata"]["annotations"][KEY_ANNOTATION] == OURS[KEY_ANNOTATION]
    restored = apply(switched, service_restore_ops(switched, original))
    assert restored == before
    assert json.dumps(restored["spec"]["selector"]) == json.dumps(original), "byte for byte, keys in their order"


backend_refs = st.builds(
    lambda name, port: {"service": {"name": name, "port": port}},
    st.sampled_from(["shop", "api", "static"]),
    st.one_of(st.builds(lambda n: {"number": n}, st.integers(1, 65535)), st.just({"name": "http"})),
)
paths = st.lists(
    st.builds(
        lambda path, backend: {"path": path, "pathType": "Prefix", "backend": backend},
        st.sampled_from(["/", "/api", "/static"]),
        backend_refs,
    ),
    min_size=1,
    max_size=3,
)
rules = st.lists(
    st.one_of(
        st.builds(
            lambda host, p: {"host": host, "http": {"paths": p}}, st.sampled_from(["a.example", "b.example"]), paths
        ),
        st.builds(lambda host: {"host": host}, st.just("bare.example")),
    ),
    max_size=3,
)


@st.composite
def ingresses(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}]}
    drawn_rules = draw(rules)
    if drawn_rules or draw(st.booleans()):
        spec["rules"] = drawn_rules
    if draw(st.booleans()):
        spec["defaultBackend"] = draw(backend_refs)
    annotations = draw(other_annotations)
    meta: dict[str, Any] = {"name": "shop", "namespace": "shop"}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Ingress", "metadata": meta, "spec": spec}


@given(ingresses())
def test_every_backend_of_an_ingress_goes_to_maintenance_and_undo_is_its_exact_inverse(ingress: dict) -> None:
    switched = apply(ingress, ingress_switch_ops(ingress, "sorry", 8080, OURS))
    sorry = {"service": {"name": "sorry", "port": {"number": 8080}}}
    spec = switched["spec"]
    backends = [p["backend"] for r in spec.get("rules") or [] for p in (r.get("http") or {}).get("paths") or []]
    assert all(backend == sorry for backend in backends)
    assert spec.get("defaultBackend", sorry) == sorry
    assert ("defaultBackend" in spec) == ("defaultBackend" in ingress["spec"]), "a default backend is never added"
    assert [r.get("host") for r in spec.get("rules") or []] == [
        r.get("host") for r in ingress["spec"].get("rules") or []
    ]
    assert spec["tls"] == ingress["spec"]["tls"], "only backends change"
    original = json.loads(switched["metadata"]["annotations"][ORIGINAL])
    assert original == ingress_backends(ingress["spec"])
    assert apply(switched, ingress_restore_ops(switched, original)) == ingress


def test_maintenance_backends_keep_hosts_paths_and_path_types() -> None:
    original = {
        "rules": [
            {"host": "a.example", "http": {"paths": [{"path": "/x", "pathType": "Exact", "backend": {"resource": {}}}]}}
        ]
    }
    switched = maintenance_backends(original, "sorry", 80)
    assert switched == {
        "rules": [
            {
                "host": "a.example",
                "http": {
                    "paths": [
                        {
                            "path": "/x",
                            "pathType": "Exact",
                            "backend": {"service": {"name": "sorry", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    }
    assert original["rules"][0]["http"]["paths"][0]["backend"] == {"resource": {}}, "the original is not touched"


def endpoint(uid: str, ready: bool | None = True) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": ["10.0.0.1"], "conditions": conditions, "targetRef": {"kind": "Pod", "uid": uid}}


def test_the_endpoint_slices_must_list_only_maintenance_pods_all_ready() -> None:
    sorry = {"s1", "s2"}
    assert endpoints_check([{"endpoints": [endpoint("s1"), endpoint("s2")]}], sorry)[0]
    assert endpoints_check([{"endpoints": [endpoint("s1")]}, {"endpoints": None}], sorry)[0]
    assert endpoints_check([{"endpoints": [endpoint("s1", ready=None)]}], sorry)[0], "unknown is taken as ready"
    took, seen = endpoints_check([{"endpoints": [endpoint("s1"), endpoint("old")]}], sorry)
    assert not took and "1 not maintenance Pods" in seen
    took, seen = endpoints_check([{"endpoints": [endpoint("s1", ready=False)]}], sorry)
    assert not took and "1 not ready" in seen
    assert endpoints_check([], sorry) == (False, "no endpoints yet")
