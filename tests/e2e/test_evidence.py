"""Evidence on the real control plane: the snapshot action (driven directly through a ``base.Context``,
under the chart's ClusterRole, as the runner will drive it), what it stores, and ``kubectl incident
evidence`` verifying and extracting it, and failing once a chunk is replaced.

Planted in the cluster: a Secret whose value a Pod takes as an env var (never read: it must appear
nowhere), a literal env var with a credential-looking name, a bearer token in a Pod annotation (and so in
kubectl's last-applied-configuration), tokens in an Event's message, and tokens in the container's current
and previous logs (kwok serves the logs the test writes). None may appear in any stored ConfigMap.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import gzip
import hashlib
import json
import secrets
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from incidentops import kube
from incidentops.actions import archive, base
from incidentops.actions.snapshot import SNAPSHOT
from incidentops.api import reasons
from incidentops.api.incident import (
    ActionPhase,
    ActionRecord,
    ActionTemplate,
    ActionType,
    Incident,
    SnapshotAction,
)
from incidentops.domain.actions import action_key
from incidentops.testing import controlplane
from tests.e2e.conftest import eventually, get_json

CONSOLE_SCRIPT = Path(sys.executable).parent / "kubectl-incident"


def random_token(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:  # the documented high-entropy class: upper, lower and a digit
        token = "".join(secrets.choice(alphabet) for _ in range(n))
        if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
            return token


def jwt() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': random_token(12)})}.{signature}"


SECRET_VALUE = random_token(24)  # only in the Secret object
LITERAL_TOKEN = "pw-" + random_token(12)  # an env var's literal value, under a credential-looking name
ANNOTATION_TOKEN = random_token(40)  # Bearer <this> in a Pod annotation
EVENT_TOKEN = jwt()  # in an Event's message
LOG_TOKEN = random_token(40)  # Bearer <this> in the current log
PREVIOUS_TOKEN = jwt()  # in the previous container's log
PLANTED = {
    "the Secret's value": SECRET_VALUE,
    "the literal env value": LITERAL_TOKEN,
    "the annotation's bearer token": ANNOTATION_TOKEN,
    "the Event's JWT": EVENT_TOKEN,
    "the log's bearer token": LOG_TOKEN,
    "the previous log's JWT": PREVIOUS_TOKEN,
}


def workload(namespace: str) -> list[dict[str, Any]]:
    container = {
        "name": "app",
        "image": "registry.invalid/shop/cart:1.4.2",
        "env": [
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "cart-db", "key": "password"}}},
            {"name": "PAYMENT_API_TOKEN", "value": LITERAL_TOKEN},
            {"name": "LOG_LEVEL", "value": "debug"},
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cart-db", "namespace": namespace},
            "stringData": {"password": SECRET_VALUE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "cart", "namespace": namespace, "labels": {"app": "cart"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "cart"}},
                "template": {
                    "metadata": {
                        "labels": {"app": "cart"},
                        "annotations": {"example.com/debug-header": f"Authorization: Bearer {ANNOTATION_TOKEN}"},
                    },
                    "spec": {"containers": [container]},
                },
            },
        },
    ]


def ready_pod(cluster: controlplane.ControlPlane, namespace: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=cart")["items"]
        return next((p for p in pods if p["status"].get("phase") == "Running"), None)

    pod: dict[str, Any] = eventually("the cart Pod Running", running, timeout=60)
    return pod


def patch_status(cluster: controlplane.ControlPlane, namespace: str, what: str, status: dict[str, Any]) -> None:
    """Write status as its owner would (the kubelet for a Pod; the runner for an Incident's evidence)."""
    patch = json.dumps({"status": status})
    cluster.kubectl("patch", what, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)


def restarted(cluster: controlplane.ControlPlane, namespace: str, pod: str) -> None:
    """What a kubelet reports after the container crashed once: kwok plays no crashes, the test does."""
    status = get_json(cluster, "pod", pod, "-n", namespace)["status"]
    for container in status["containerStatuses"]:
        container["restartCount"] = 1
        container["lastState"] = {
            "terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2024-05-01T11:59:00Z"}
        }
    patch_status(cluster, namespace, f"pod/{pod}", {"containerStatuses": status["containerStatuses"]})


def event(cluster: controlplane.ControlPlane, namespace: str, pod: dict[str, Any]) -> None:
    meta = pod["metadata"]
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.oom", "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": meta["name"], "uid": meta["uid"]},
            "reason": "BackOff",
            "type": "Warning",
            "message": f"Back-off restarting failed container app; it last logged token={EVENT_TOKEN}",
            "source": {"component": "kubelet"},
            "firstTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 3,
        }
    )


def create_incident(cluster: controlplane.ControlPlane, namespace: str) -> dict[str, Any]:
    cluster.apply(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "cart-down", "namespace": namespace},
            "spec": {
                "title": "cart returns 502",
                "severity": "P2",
                "source": {"kind": "manual"},
                "targets": [{"kind": "Deployment", "name": "cart"}, {"kind": "Secret", "name": "cart-db"}],
            },
        }
    )
    body: dict[str, Any] = get_json(cluster, "incident", "cart-down", "-n", namespace)
    return body


def context(api: kube.ApiClient, incident: Incident, name: str) -> base.Context:
    key = action_key(incident.metadata.uid or "", name)
    return base.Context(
        api=api,
        incident=incident,
        policy=None,
        record=ActionRecord(name=name, type=ActionType.SNAPSHOT, phase=ActionPhase.RUNNING, key=key),
        template=ActionTemplate(name=name, snapshot=SnapshotAction(since_seconds=600)),
        now=datetime.datetime.now(datetime.UTC),
        operator_namespace="incidentops",
    )


async def _snapshot(kubeconfig: Path, incident: Incident, name: str) -> dict[str, Any]:
    """Plan, execute and verify one snapshot as the operator's ServiceAccount (the chart's ClusterRole)."""
    api = await kube.api_client(kubeconfig)
    try:
        ctx = context(api, incident, name)
        planned = await SNAPSHOT.plan(ctx)
        assert isinstance(planned, base.Planned)
        before = await SNAPSHOT.applied(ctx)
        executed = await SNAPSHOT.execute(ctx, planned)
        return {
            "planned": planned,
            "applied before": before,
            "applied after": await SNAPSHOT.applied(ctx),
            "executed": executed,
            "verified": await SNAPSHOT.verify(ctx),
        }
    finally:
        await api.close()


async def _verify(kubeconfig: Path, incident: Incident, name: str) -> base.Progress:
    api = await kube.api_client(kubeconfig)
    try:
        return await SNAPSHOT.verify(context(api, incident, name))
    finally:
        await api.close()


def configmaps(cluster: controlplane.ControlPlane, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get_json(
        cluster, "configmaps", "-n", namespace, "-l", "incidentops.dev/incident=cart-down"
    )["items"]
    return found


def stored_text(cms: list[dict[str, Any]]) -> str:
    """Everything the ConfigMaps hold, chunks decompressed."""
    parts = []
    for cm in cms:
        parts += list((cm.get("data") or {}).values())
        parts += [
            gzip.decompress(base64.b64decode(v)).decode(errors="replace") for v in (cm.get("binaryData") or {}).values()
        ]
        parts.append(json.dumps(cm["metadata"]))
    return "\n".join(parts)


def plugin(cluster: controlplane.ControlPlane, *argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), *argv, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def item(extracted: Path, name: str) -> str:
    """An item of an extracted snapshot; when it is missing, the failure names what the API answered instead
    (the ``.error.json`` items the snapshot stored: a refused read is on record, not fatal)."""
    path = extracted / name
    if not path.is_file():
        errors = {str(e.relative_to(extracted)): e.read_text() for e in sorted(extracted.rglob("*.error.json"))}
        raise AssertionError(f"{name} is not in the evidence; the API's refusals on record: {errors}")
    return path.read_text()


@pytest.fixture
def kwok(cluster: controlplane.ControlPlane, crds: None) -> controlplane.ControlPlane:
    """The session's cluster, with the CRDs; these tests plant log lines, which only kwok's nodes serve."""
    if not cluster.serves_pod_logs:
        pytest.skip("plants log lines through kwok, which only the local control plane runs")
    return cluster


def test_a_snapshot_stores_redacted_verifiable_evidence(
    kwok: controlplane.ControlPlane, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    cluster = kwok
    cluster.apply(workload(namespace))
    pod = ready_pod(cluster, namespace)
    pod_name = pod["metadata"]["name"]
    restarted(cluster, namespace, pod_name)
    event(cluster, namespace, pod)
    cluster.write_pod_log(
        [
            "listening on :8080",
            f"GET /api/cart 200 12ms Authorization: Bearer {LOG_TOKEN}",
            '{"level":"info","msg":"cart loaded","items":3}',
        ]
    )
    incident = Incident.model_validate(create_incident(cluster, namespace))

    # 1. The previous container's log cannot be read yet (kwok has no file for it): on record, and on.
    (cluster.pod_logs / "previous.log").unlink(missing_ok=True)
    first = asyncio.run(_snapshot(operator_kubeconfig, incident, "evidence-first"))
    assert first["applied before"] is False and first["applied after"] is True
    assert first["verified"].done, first["verified"]
    assert "Deployment " + namespace + "/cart" in first["planned"].summary
    assert any("Secrets are never read" in w for w in first["planned"].warnings)

    # 2. Now it can: a second snapshot has it.
    cluster.write_pod_log([f"fatal: out of memory; session={PREVIOUS_TOKEN}"], previous=True)
    second = asyncio.run(_snapshot(operator_kubeconfig, incident, "after-restart"))
    records = [first["executed"].evidence[0], second["executed"].evidence[0]]
    assert [r.name for r in records] == ["evidence-first", "after-restart"]

    patch_status(cluster, namespace, "incident/cart-down", {"evidence": [r.to_dict() for r in records]})

    cms = configmaps(cluster, namespace)
    assert len(cms) >= 4  # a manifest and at least one chunk per snapshot
    for cm in cms:
        assert cm["immutable"] is True
        labels = cm["metadata"]["labels"]
        assert labels["incidentops.dev/incident"] == "cart-down"
        assert labels["incidentops.dev/evidence"] in {r.ref.removeprefix("incidentops-evidence-") for r in records}
        assert "ownerReferences" not in cm["metadata"]  # evidence.retainOnDelete, the default
    everything = stored_text(cms)
    for what, planted in PLANTED.items():
        assert planted not in everything, f"{what} was stored"

    # What should be there is there.
    listed = plugin(cluster, "evidence", "cart-down", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert all(r.sha256 in listed.stdout and r.ref in listed.stdout for r in records)

    verified = plugin(cluster, "evidence", "cart-down", "-n", namespace, "--verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count(": verified,") == 2

    out = tmp_path / "extracted"
    extracted = plugin(cluster, "evidence", "cart-down", "-n", namespace, "--extract", str(out))
    assert extracted.returncode == 0, extracted.stderr
    first_dir, second_dir = out / "evidence-first", out / "after-restart"
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=first_dir, check=True)
    assert hashlib.sha256((first_dir / "SHA256SUMS").read_bytes()).hexdigest() == records[0].sha256
    logs = first_dir / "logs" / namespace / pod_name
    assert item(first_dir, f"logs/{namespace}/{pod_name}/app.current.log") == (
        "listening on :8080\n"
        "GET /api/cart 200 12ms Authorization: [REDACTED]\n"
        '{"level":"info","msg":"cart loaded","items":3}\n'
    )
    refused = json.loads((logs / "app.previous.error.json").read_text())
    assert refused["status"] == 400 and "previous.log" in refused["message"]
    previous = second_dir / "logs" / namespace / pod_name / "app.previous.log"
    assert previous.read_text() == "fatal: out of memory; session=[REDACTED]\n"
    manifests = first_dir / "manifests"
    deployment = json.loads((manifests / "Deployment" / namespace / "cart.json").read_text())
    assert "managedFields" not in deployment["metadata"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "cart-db"}}},
        {"name": "PAYMENT_API_TOKEN", "value": "[REDACTED]"},
        {"name": "LOG_LEVEL", "value": "debug"},
    ]
    assert (manifests / "Pod" / namespace / f"{pod_name}.json").exists()
    replica_set = pod["metadata"]["ownerReferences"][0]["name"]
    assert (manifests / "ReplicaSet" / namespace / f"{replica_set}.json").exists()
    assert not (manifests / "Secret").exists()
    history = json.loads((first_dir / "history" / "Deployment" / namespace / "cart.json").read_text())
    assert [r["replicaSet"] for r in history["revisions"]] == [replica_set]
    namespace_events = json.loads(item(first_dir, "events/namespace.json"))
    assert any(e["reason"] == "BackOff" and "token=[REDACTED]" in e["message"] for e in namespace_events)
    assert (first_dir / "events" / "Pod" / namespace / f"{pod_name}.json").exists()
    assert json.loads((first_dir / "incident" / "alerts.json").read_text())["source"] == {"kind": "manual"}

    # An attacker with rights over ConfigMaps replaces a chunk (immutable: deleted and created again) with
    # one byte changed: --verify fails, naming it, and so does the action's own verification.
    chunk = next(cm for cm in cms if cm["metadata"]["labels"]["incidentops.dev/evidence-part"] == "chunk")
    data = bytearray(base64.b64decode(chunk["binaryData"]["chunk.gz"]))
    data[len(data) // 2] ^= 0x01
    forged = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {k: chunk["metadata"][k] for k in ("name", "namespace", "labels", "annotations")},
        "immutable": True,
        "binaryData": {"chunk.gz": base64.b64encode(bytes(data)).decode()},
    }
    cluster.kubectl("delete", "configmap", chunk["metadata"]["name"], "-n", namespace)
    cluster.kubectl("create", "-f", "-", input=json.dumps(forged))
    tampered = plugin(cluster, "evidence", "cart-down", "-n", namespace, "--verify")
    assert tampered.returncode == 1
    assert "does not verify" in tampered.stderr and f"chunk {chunk['metadata']['name']}" in tampered.stderr
    owner = next(r.name for r in records if chunk["metadata"]["name"].startswith(r.ref))
    progress = asyncio.run(_verify(operator_kubeconfig, incident, owner))
    assert progress.failed and progress.reason == reasons.EVIDENCE_INCOMPLETE


def test_a_log_bigger_than_a_chunk_spans_configmaps_the_api_accepts(
    kwok: controlplane.ControlPlane, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    cluster = kwok
    cluster.apply(workload(namespace))
    pod_name = ready_pod(cluster, namespace)["metadata"]["name"]
    # Hex digests are kept by redaction and compress to about half: a megabyte of them needs two chunks.
    lines = [secrets.token_hex(100) for _ in range(5000)]
    cluster.write_pod_log(lines)
    incident = Incident.model_validate(create_incident(cluster, namespace))
    done = asyncio.run(_snapshot(operator_kubeconfig, incident, "big-log"))
    assert done["verified"].done, done["verified"]
    record = done["executed"].evidence[0]
    chunks = [cm for cm in configmaps(cluster, namespace) if "binaryData" in cm]
    assert len(chunks) >= 2
    assert all(len(base64.b64decode(cm["binaryData"]["chunk.gz"])) <= archive.CHUNK_BYTES for cm in chunks)
    patch_status(cluster, namespace, "incident/cart-down", {"evidence": [record.to_dict()]})
    out = tmp_path / "extracted"
    extracted = plugin(cluster, "evidence", "cart-down", "-n", namespace, "--verify", "--extract", str(out))
    assert extracted.returncode == 0, extracted.stderr
    log = out / "big-log" / "logs" / namespace / pod_name / "app.current.log"
    assert log.read_text().splitlines() == lines


def test_a_snapshot_reads_a_statefulset_as_a_pods_owner_and_as_a_target(
    cluster: controlplane.ControlPlane, crds: None, operator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    # No StatefulSet controller runs here: the Pod is made as the controller would make it, owned by the set.
    labels = {"app": "db"}
    containers = [{"name": "db", "image": "registry.invalid/db"}]
    template = {"metadata": {"labels": labels}, "spec": {"containers": containers}}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": namespace, "labels": labels},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": labels}, "template": template},
        }
    )
    owner = get_json(cluster, "statefulset", "db", "-n", namespace)["metadata"]
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "db-0",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": "db",
                        "uid": owner["uid"],
                        "controller": True,
                    },
                ],
            },
            "spec": template["spec"],
        }
    )
    # The set as the owner of a Pod the incident names (get), and as a target given by a selector (list).
    for name, target in (
        ("db-pod", {"kind": "Pod", "name": "db-0"}),
        ("db-set", {"kind": "StatefulSet", "selector": {"matchLabels": labels}}),
    ):
        cluster.apply(
            {
                "apiVersion": "incidentops.dev/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"title": "db is down", "severity": "P2", "source": {"kind": "manual"}, "targets": [target]},
            }
        )
        incident = Incident.model_validate(get_json(cluster, "incident", name, "-n", namespace))
        done = asyncio.run(_snapshot(operator_kubeconfig, incident, "snap"))
        assert done["verified"].done, done["verified"]
        patch_status(cluster, namespace, f"incident/{name}", {"evidence": [done["executed"].evidence[0].to_dict()]})
        out = tmp_path / name
        extracted = plugin(cluster, "evidence", name, "-n", namespace, "--extract", str(out))
        assert extracted.returncode == 0, extracted.stderr
        stateful = json.loads(item(out / "snap", f"manifests/StatefulSet/{namespace}/db.json"))
        assert stateful["metadata"]["uid"] == owner["uid"], name
        pod = json.loads(item(out / "snap", f"manifests/Pod/{namespace}/db-0.json"))
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet", name
