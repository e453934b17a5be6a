"""The snapshot action and its collection, against a stand-in for kube's functions (``fakecluster``):
the order of reads (Events first), item naming, what is never read, refusals on record, storage as
immutable labelled ConfigMaps, idempotence across crashes, verification, undo."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
from typing import Any

import pytest

from incidentops.actions import archive, base, evidence
from incidentops.actions.snapshot import SNAPSHOT
from incidentops.api import reasons
from incidentops.api.common import ObjectMeta
from incidentops.api.incident import (
    ActionPhase,
    ActionRecord,
    ActionTemplate,
    ActionType,
    AlertsStatus,
    Incident,
    IncidentSpec,
    IncidentStatus,
    SnapshotAction,
    Source,
    Target,
)
from incidentops.api.policy import EscalationPolicy
from tests.unit.actions.fakecluster import FakeCluster

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
KEY = "ab" * 32
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJpYXQiOjE3MTQ1NjQ4MDB9.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2"
LITERAL_PASSWORD = "hunter2-in-the-spec"
SECRET_VALUE = "the-secret-objects-value"


def owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}]


def pod(name: str, restarts: int) -> dict[str, Any]:
    env = [
        {"name": "DB_PASSWORD", "value": LITERAL_PASSWORD},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "cart-db", "key": "token"}}},
    ]
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": "cart"},
            "annotations": {"example.com/debug": f"Bearer {TOKEN}"},
            "ownerReferences": owner("ReplicaSet", "cart-7d"),
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/cart:2", "env": env}]},
        "status": {"containerStatuses": [{"name": "app", "restartCount": restarts}]},
    }


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster().install(monkeypatch)
    template = {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": [{"name": "app"}]}}
    fake.put(
        {
            "kind": "Deployment",
            "metadata": {
                "name": "cart",
                "namespace": "shop",
                "annotations": {"deployment.kubernetes.io/revision": "2"},
                "managedFields": [{"manager": "kube-controller-manager"}],
            },
            "spec": {"selector": {"matchLabels": {"app": "cart"}}, "template": template},
        }
    )
    for name, revision in (("cart-6f", "1"), ("cart-7d", "2")):
        fake.put(
            {
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": "shop",
                    "labels": {"app": "cart"},
                    "annotations": {"deployment.kubernetes.io/revision": revision},
                    "ownerReferences": owner("Deployment", "cart"),
                },
                "spec": {"selector": {"matchLabels": {"app": "cart"}}, "template": template},
            }
        )
    fake.put(pod("cart-7d-a", restarts=1))
    fake.put(pod("cart-7d-b", restarts=0))
    fake.put({"kind": "Secret", "metadata": {"name": "cart-db", "namespace": "shop"}, "data": {"token": SECRET_VALUE}})
    for i, (kind, name, message) in enumerate(
        (
            ("Pod", "cart-7d-a", f"Back-off restarting failed container; last said Authorization: Bearer {TOKEN}"),
            ("Deployment", "cart", "Scaled up replica set cart-7d from 0 to 2"),
            ("Pod", "other-1", "Pulled image"),
        )
    ):
        fake.put(
            {
                "kind": "Event",
                "metadata": {"name": f"e{i}", "namespace": "shop", "managedFields": [{}]},
                "involvedObject": {"kind": kind, "namespace": "shop", "name": name, "uid": f"uid-{name}"},
                "message": message,
                "lastTimestamp": f"2024-05-01T11:5{i}:00Z",
            }
        )
    fake.logs[("shop", "cart-7d-a", "app", False)] = f"started\nAuthorization: Bearer {TOKEN}\n".encode()
    fake.logs[("shop", "cart-7d-a", "app", True)] = b'{"level":"fatal","msg":"out of memory"}\n'
    return fake


def an_incident(**spec: Any) -> Incident:
    targets = [Target(kind="Deployment", name="cart"), Target(kind="Secret", name="cart-db")]
    return Incident(
        metadata=ObjectMeta(name="cart-down", namespace="shop", uid="inc-uid"),
        spec=IncidentSpec(
            title="cart is down",
            targets=targets,
            source=Source(kind="alertmanager", receiver="ops", labels={"alertname": "CartDown"}),
            **spec,
        ),
        status=IncidentStatus(alerts=AlertsStatus(firing=2, sample=["fp1", "fp2"])),
    )


def context(incident: Incident, policy: EscalationPolicy | None = None, **snapshot: Any) -> base.Context:
    record = ActionRecord(name="evidence-first", type=ActionType.SNAPSHOT, phase=ActionPhase.RUNNING, key=KEY)
    template = ActionTemplate(name="evidence-first", snapshot=SnapshotAction(**snapshot))
    return base.Context(
        api=None,  # type: ignore[arg-type]  # the fake needs no client
        incident=incident,
        policy=policy,
        record=record,
        template=template,
        now=NOW,
        operator_namespace="incidentops",
    )


def stored(cluster: FakeCluster) -> dict[str, Any]:
    return {b["metadata"]["name"]: b for b in cluster.of("configmaps", "shop")}


def unpacked(cluster: FakeCluster) -> dict[str, bytes]:
    configmaps = stored(cluster)
    manifest = json.loads(configmaps[archive.manifest_name(KEY)]["data"]["manifest.json"])
    chunks = {n: base64.b64decode(cm["binaryData"]["chunk.gz"]) for n, cm in configmaps.items() if "binaryData" in cm}
    loaded = archive.Loaded(archive.manifest_name(KEY), manifest, dict(chunks))
    return {name: data or b"" for name, data in archive.contents(loaded)}


# --- collection ---------------------------------------------------------------------------------------------


async def test_events_are_read_before_anything_else(cluster: FakeCluster) -> None:
    await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)  # type: ignore[arg-type]
    assert cluster.calls[0] == "list events shop"
    assert all(not c.startswith("list events") for c in cluster.calls[1:])


async def test_items_are_named_as_paths_in_collection_order(cluster: FakeCluster) -> None:
    items = await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)  # type: ignore[arg-type]
    assert [i.name for i in items] == [
        "events/namespace.json",
        "events/Deployment/shop/cart.json",
        "events/Pod/shop/cart-7d-a.json",
        "manifests/Deployment/shop/cart.json",
        "manifests/Pod/shop/cart-7d-a.json",
        "manifests/Pod/shop/cart-7d-b.json",
        "manifests/ReplicaSet/shop/cart-7d.json",
        "history/Deployment/shop/cart.json",
        "logs/shop/cart-7d-a/app.current.log",
        "logs/shop/cart-7d-a/app.previous.log",
        "logs/shop/cart-7d-b/app.current.error.json",
        "incident/alerts.json",
        "snapshot.json",
    ]


async def test_secrets_are_never_read_and_planted_values_never_stored(cluster: FakeCluster) -> None:
    items = await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)  # type: ignore[arg-type]
    assert not any("secrets" in call for call in cluster.calls)
    everything = b"".join(i.data for i in items)
    for planted in (TOKEN, LITERAL_PASSWORD, SECRET_VALUE):
        assert planted.encode() not in everything
    index = json.loads(next(i.data for i in items if i.name == "snapshot.json"))
    assert "target Secret shop/cart-db not collected (Secrets are never read)" in index["notes"]
    pod_a = json.loads(next(i.data for i in items if i.name == "manifests/Pod/shop/cart-7d-a.json"))
    assert "managedFields" not in pod_a["metadata"]
    assert pod_a["spec"]["containers"][0]["env"][1]["valueFrom"] == {
        "secretKeyRef": {"name": "cart-db", "key": "token"}
    }


async def test_a_log_the_kubelet_refuses_is_on_record_and_the_snapshot_goes_on(cluster: FakeCluster) -> None:
    items = {i.name: i.data for i in await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)}  # type: ignore[arg-type]
    answer = json.loads(items["logs/shop/cart-7d-b/app.current.error.json"])
    assert answer["status"] == 400 and 'container "app" in pod "cart-7d-b" not found' in answer["message"]
    # A log that is one JSON document is kept as the bytes the kubelet sent.
    assert items["logs/shop/cart-7d-a/app.previous.log"] == b'{"level":"fatal","msg":"out of memory"}\n'
    assert items["logs/shop/cart-7d-a/app.current.log"] == b"started\nAuthorization: [REDACTED]\n"


async def test_rollout_history_lists_revisions_with_their_templates(cluster: FakeCluster) -> None:
    items = {i.name: i.data for i in await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)}  # type: ignore[arg-type]
    history = json.loads(items["history/Deployment/shop/cart.json"])
    assert history["currentRevision"] == "2"
    assert [(r["revision"], r["replicaSet"]) for r in history["revisions"]] == [(1, "cart-6f"), (2, "cart-7d")]
    assert history["revisions"][0]["template"]["metadata"]["labels"] == {"app": "cart"}


async def test_alert_data_is_the_incidents_source_and_alerts(cluster: FakeCluster) -> None:
    items = {i.name: i.data for i in await evidence.collect(None, an_incident(), SnapshotAction(), action="a", now=NOW)}  # type: ignore[arg-type]
    alerts = json.loads(items["incident/alerts.json"])
    assert alerts["source"]["labels"] == {"alertname": "CartDown"}
    assert alerts["alerts"]["firing"] == 2 and alerts["alerts"]["sample"] == ["fp1", "fp2"]


async def test_only_what_is_asked_for_is_collected(cluster: FakeCluster) -> None:
    request = SnapshotAction(events=False, logs=False, manifests=True, since_seconds=60)
    items = await evidence.collect(None, an_incident(), request, action="a", now=NOW)  # type: ignore[arg-type]
    names = [i.name for i in items]
    assert not any(n.startswith(("events/", "logs/")) for n in names)
    assert "manifests/Deployment/shop/cart.json" in names and names[-1] == "snapshot.json"
    assert not any(c.startswith(("list events", "log ")) for c in cluster.calls)


async def test_a_selector_target_picks_pods_in_the_namespace_the_target_names(cluster: FakeCluster) -> None:
    other = pod("web-1", restarts=0)
    other["metadata"].update(namespace="web", labels={"app": "web"}, ownerReferences=[])
    cluster.put(other)
    incident = an_incident()
    incident.spec.targets = [Target.model_validate({"selector": {"matchLabels": {"app": "web"}}, "namespace": "web"})]
    items = [i.name for i in await evidence.collect(None, incident, SnapshotAction(), action="a", now=NOW)]  # type: ignore[arg-type]
    assert cluster.calls[:2] == ["list events shop", "list events web"]
    assert "manifests/Pod/web/web-1.json" in items and "logs/web/web-1/app.current.error.json" in items


# --- the action ---------------------------------------------------------------------------------------------


async def test_plan_says_what_it_will_collect_and_changes_nothing(cluster: FakeCluster) -> None:
    planned = await SNAPSHOT.plan(context(an_incident()))
    assert isinstance(planned, base.Planned)
    assert planned.target == "Deployment shop/cart"
    assert "events, manifests, logs of the last 3600s, alert data of Deployment shop/cart" in planned.summary
    assert f"ConfigMap shop/{archive.manifest_name(KEY)}" in planned.summary
    assert "target Secret shop/cart-db not collected (Secrets are never read)" in planned.warnings
    assert not any(c.startswith("create") for c in cluster.calls)
    assert not await SNAPSHOT.applied(context(an_incident()))


async def test_execute_stores_immutable_labelled_chunks_then_the_manifest(cluster: FakeCluster) -> None:
    ctx = context(an_incident())
    done = await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    creates = [c for c in cluster.calls if c.startswith("create")]
    assert creates[-1] == f"create configmaps shop/{archive.manifest_name(KEY)}"
    configmaps = stored(cluster)
    assert len(configmaps) == len(creates) >= 2
    for cm in configmaps.values():
        assert cm["immutable"] is True
        labels = cm["metadata"]["labels"]
        assert labels["incidentops.dev/incident"] == "cart-down"
        assert labels["incidentops.dev/evidence"] == KEY[:16]
        assert "ownerReferences" not in cm["metadata"]  # retainOnDelete, the default
    (record,) = done.evidence
    manifest = json.loads(configmaps[record.ref]["data"]["manifest.json"])
    assert (record.name, record.sha256, record.items, record.bytes) == (
        "evidence-first",
        manifest["sha256"],
        13,
        manifest["bytes"],
    )
    assert record.sha256 in done.message
    for planted in (TOKEN, LITERAL_PASSWORD, SECRET_VALUE):
        assert all(
            planted.encode() not in gzip.decompress(base64.b64decode(cm["binaryData"]["chunk.gz"]))
            for cm in configmaps.values()
            if "binaryData" in cm
        )
    assert unpacked(cluster)["logs/shop/cart-7d-a/app.current.log"] == b"started\nAuthorization: [REDACTED]\n"
    assert await SNAPSHOT.applied(ctx)
    assert (await SNAPSHOT.verify(ctx)).done


async def test_without_retain_on_delete_the_incident_owns_its_evidence(cluster: FakeCluster) -> None:
    policy = EscalationPolicy.model_validate(
        {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"evidence": {"retainOnDelete": False}}}
    )
    ctx = context(an_incident(), policy)
    await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    for cm in stored(cluster).values():
        assert cm["metadata"]["ownerReferences"] == [
            {"apiVersion": "incidentops.dev/v1alpha1", "kind": "Incident", "name": "cart-down", "uid": "inc-uid"}
        ]


async def test_execute_again_finds_the_stored_evidence_and_collects_nothing(cluster: FakeCluster) -> None:
    ctx = context(an_incident())
    first = await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    cluster.calls.clear()
    again = await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    assert again.evidence == first.evidence
    assert not any(c.startswith(("create", "log", "list events")) for c in cluster.calls)
    assert await SNAPSHOT.evidence(ctx) == first.evidence[0]


async def test_a_crash_before_the_manifest_leaves_chunks_a_retry_does_not_trip_over(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(an_incident())
    create = cluster.create_object

    async def crash_on_manifest(api: Any, kind: Any, namespace: Any, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] == archive.manifest_name(KEY):
            raise ConnectionError("operator killed")
        return await create(api, kind, namespace, body)

    monkeypatch.setattr("incidentops.kube.create_object", crash_on_manifest)
    with pytest.raises(ConnectionError):
        await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    leftovers = set(stored(cluster))
    assert leftovers and not await SNAPSHOT.applied(ctx)

    monkeypatch.setattr("incidentops.kube.create_object", create)
    cluster.logs[("shop", "cart-7d-a", "app", False)] += b"one more line since\n"  # collected again: new bytes
    done = await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    assert await SNAPSHOT.applied(ctx) and (await SNAPSHOT.verify(ctx)).done
    listed = {c["name"] for c in json.loads(stored(cluster)[done.evidence[0].ref]["data"]["manifest.json"])["chunks"]}
    assert not listed & leftovers  # the crashed attempt's chunks stay, unlisted


async def test_verify_fails_when_a_chunk_was_replaced(cluster: FakeCluster) -> None:
    ctx = context(an_incident())
    await SNAPSHOT.execute(ctx, await SNAPSHOT.plan(ctx))  # type: ignore[arg-type]
    chunk = next(cm for cm in stored(cluster).values() if "binaryData" in cm)
    content = bytearray(gzip.decompress(base64.b64decode(chunk["binaryData"]["chunk.gz"])))
    content[0] ^= 1
    chunk["binaryData"]["chunk.gz"] = base64.b64encode(gzip.compress(bytes(content))).decode()
    progress = await SNAPSHOT.verify(ctx)
    assert progress.failed and progress.reason == reasons.EVIDENCE_INCOMPLETE
    assert chunk["metadata"]["name"] in progress.message


async def test_there_is_nothing_to_undo(cluster: FakeCluster) -> None:
    progress = await SNAPSHOT.undo(context(an_incident()))
    assert progress.failed and progress.reason == reasons.UNDO_SKIPPED
    assert "evidence is kept" in progress.message
    assert SNAPSHOT.type is ActionType.SNAPSHOT


def test_label_selectors_become_the_apis_query() -> None:
    selector = {
        "matchLabels": {"tier": "web", "app": "cart"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]},
            {"key": "canary", "operator": "NotIn", "values": ["true"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert evidence._selector(selector) == "app=cart,tier=web,env in (prod,staging),canary notin (true),team,!legacy"
    assert evidence._selector({}) == ""
