"""Proof that the local control plane is real: RBAC, controllers, scheduler, kwok nodes."""

from __future__ import annotations

import json

import pytest

from incidentops.testing import controlplane
from tests.e2e.conftest import eventually, get_json

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.invalid/web:1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_deployment_pods_become_ready_and_fill_the_endpointslice(
    cluster: controlplane.ControlPlane, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)

    def ready_pods() -> list[dict]:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
        ready = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        return ready if len(ready) == 2 else []

    pods = eventually("two Running and Ready pods", ready_pods, timeout=60)
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods), "scheduled onto kwok nodes"

    def endpoints() -> set[str]:
        slices = get_json(cluster, "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")["items"]
        return {
            addr
            for s in slices
            for ep in s.get("endpoints") or []
            if ep.get("conditions", {}).get("ready")
            for addr in ep["addresses"]
        }

    addresses = eventually("ready endpoints for both pods", lambda: endpoints() if len(endpoints()) == 2 else None)
    assert addresses == {p["status"]["podIP"] for p in pods}

    rollout = cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    assert "successfully rolled out" in rollout.stdout


def test_rbac_is_enforced(cluster: controlplane.ControlPlane, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    kubeconfig = cluster.service_account_kubeconfig(namespace, "nobody")
    denied = cluster.kubectl("get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    allowed = cluster.kubectl("auth", "can-i", "create", "deployments", "-n", namespace, check=False)
    assert allowed.stdout.strip() == "yes"


def test_api_server_reports_its_real_version(cluster: controlplane.ControlPlane) -> None:
    server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert server["gitVersion"].startswith("v1."), server
    assert int(server["major"]) == 1 and int(server["minor"].rstrip("+")) >= 34, server


def test_kubectl_logs_reach_kwok_as_a_kubelet(cluster: controlplane.ControlPlane, namespace: str) -> None:
    """kube-apiserver asks the node's kubelet (kwok's server, at the node's InternalIP) for a Pod's logs."""
    if not cluster.serves_pod_logs:
        pytest.skip("the logs of a real cluster's containers are not ours to write")
    cluster.kubectl("run", "talker", "--image=registry.invalid/talker:1", "-n", namespace)
    eventually(
        "the Pod Running",
        lambda: get_json(cluster, "pod", "talker", "-n", namespace)["status"].get("phase") == "Running",
        timeout=60,
    )
    cluster.write_pod_log(["started", "serving on :8080"])
    cluster.write_pod_log(["the instance before the restart"], previous=True)

    current = cluster.kubectl("logs", "talker", "-n", namespace)
    assert current.stdout == "started\nserving on :8080\n"
    previous = cluster.kubectl("logs", "talker", "-n", namespace, "--previous")
    assert previous.stdout == "the instance before the restart\n"
    # Lines carry their time (CRI format), so the kubelet's own filters apply.
    tail = cluster.kubectl("logs", "talker", "-n", namespace, "--tail=1", "--since=1h")
    assert tail.stdout == "serving on :8080\n"
