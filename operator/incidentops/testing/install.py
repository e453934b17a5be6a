"""Install what the operator needs into a cluster: CRDs, RBAC, a ServiceAccount.

Where it sits: used by ``incidentops dev`` and the e2e fixtures after the
control plane is up. The CRDs come from the API models (the same generator that
writes ``crds/``); the ClusterRole is the chart's own file, so the operator is
tested under exactly the rights the chart grants.
"""

from __future__ import annotations

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
