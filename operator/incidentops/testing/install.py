"""Install what the operator needs into a cluster: CRDs, RBAC, a ServiceAccount.

Where it sits: used by ``incidentops dev`` and the e2e fixtures after the
control plane is up. The CRDs come from the API models (the same generator that
writes ``crds/``); the ClusterRole is the chart's own file, so the operator is
tested under exactly the rights the chart grants.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

OPERATOR_SERVICE_ACCOUNT = "incidentops"


def install_crds(cluster: Any) -> None:
    from incidentops.api import crdgen

    crds = crdgen.generate()
    cluster.apply(crds)
    for crd in crds:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
    for crd in crds:
        wait_until_listed(cluster, crd)


def wait_until_listed(cluster: Any, crd: dict[str, Any], timeout: float = 60) -> None:
    """Poll until the API server answers a LIST of the CRD's resource, as Kopf's first one.

    Established is not served: for a few hundred milliseconds after it, the new
    resource's watch cache is still filling and the API server answers 429
    "storage is (re)initializing", which Kopf logs at ERROR before retrying. The
    operator must not start (and log that) before its resources are served.
    """
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
    deadline = time.monotonic() + timeout
    while cluster.kubectl("get", "--raw", path, check=False, timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for the API server to list {path}")
        time.sleep(0.2)


def install_operator_rbac(cluster: Any, namespace: str, clusterrole: Path) -> Path:
    """The chart's ClusterRole and Role, a ServiceAccount and bindings; returns the SA's kubeconfig.

    The Role (``role.yaml`` beside the ClusterRole file) is bound in ``namespace``,
    the operator's own, as the chart does.
    """
    role = yaml.safe_load(clusterrole.read_text())
    name = role["metadata"]["name"]
    namespaced: list[dict[str, Any]] = []
    role_file = clusterrole.with_name("role.yaml")
    if role_file.exists():
        local = yaml.safe_load(role_file.read_text())
        local["metadata"]["namespace"] = namespace
        namespaced = [
            local,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": local["metadata"]["name"], "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": local["metadata"]["name"]},
                "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace}],
            },
        ]
    cluster.apply(
        [
            *namespaced,
            role,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name}-{namespace}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace}],
            },
        ]
    )
    path: Path = cluster.service_account_kubeconfig(namespace, OPERATOR_SERVICE_ACCOUNT)
    return path
