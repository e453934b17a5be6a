"""Install what the operator needs into a cluster, as the chart renders it: CRDs, ServiceAccount, RBAC.

Where it sits: used by ``incidentops dev``, the e2e fixtures and the benchmarks after the control plane
is up. :func:`render_chart` runs the pinned helm's ``helm template`` on ``charts/incidentops`` with the
operator's namespace as the release namespace; :func:`operator_objects` picks out of the result the
CRDs (``templates/crds.yaml``), the ServiceAccount, and the roles and bindings that name that
ServiceAccount. Nothing else is applied: the Deployment, Services and the rest of the release are the
chart's, and the suite runs the operator as a local process with the ServiceAccount's token instead.
So the operator is tested under exactly the objects a ``helm install`` creates for it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

OPERATOR_SERVICE_ACCOUNT = "incidentops"
_BINDINGS = ("ClusterRoleBinding", "RoleBinding")


class OperatorObjects(NamedTuple):
    crds: list[dict[str, Any]]
    identity: list[dict[str, Any]]  # the ServiceAccount, the roles bound to it and their bindings


def render_chart(chart: Path, namespace: str) -> list[dict[str, Any]]:
    """The objects ``helm template`` renders for a release in ``namespace``, with the default values.

    The release is named after the namespace, so the cluster-scoped names (the ClusterRole and its
    binding) of two installs in one cluster never collide; the ServiceAccount keeps its usual name.
    """
    from incidentops.testing import build

    cmd = [
        str(build.helm()), "template", namespace, str(chart), "--namespace", namespace,
        "--set", f"serviceAccount.name={OPERATOR_SERVICE_ACCOUNT}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def operator_objects(objects: Iterable[dict[str, Any]]) -> OperatorObjects:
    """The CRDs, and the ServiceAccount with every role bound to it and the bindings, of a rendering."""
    objects = list(objects)
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    if len(accounts) != 1:
        raise ValueError(f"expected one ServiceAccount in the rendered chart, found {len(accounts)}")
    account = accounts[0]
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }
    bindings = [o for o in objects if o["kind"] in _BINDINGS and subject in (o.get("subjects") or [])]

    def role_of(binding: dict[str, Any]) -> tuple[str, str, str | None]:
        # A Role is the one of the binding's namespace; a ClusterRole has none.
        kind, name = binding["roleRef"]["kind"], binding["roleRef"]["name"]
        return kind, name, binding["metadata"].get("namespace") if kind == "Role" else None

    bound = {role_of(b) for b in bindings}
    roles = [
        o for o in objects if o["kind"] in ("ClusterRole", "Role")
        and (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) in bound
    ]  # fmt: skip
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    return OperatorObjects(crds, [account, *roles, *bindings])


def install_operator(cluster: Any, namespace: str, chart: Path) -> Path:
    """Apply the chart's CRDs, ServiceAccount and RBAC for ``namespace``; returns the SA's kubeconfig.

    ``namespace`` must exist. The CRDs are served before this returns (the operator needs them at
    start-up: it does not follow CRDs that appear later).
    """
    found = operator_objects(render_chart(chart, namespace))
    install_crds(cluster, found.crds)
    return install_identity(cluster, found)


def install_identity(cluster: Any, found: OperatorObjects) -> Path:
    """Apply the ServiceAccount, its roles and bindings; returns a kubeconfig with the SA's token."""
    cluster.apply(found.identity)
    account = found.identity[0]["metadata"]
    path: Path = cluster.service_account_kubeconfig(account["namespace"], account["name"])
    return path


def install_crds(cluster: Any, crds: list[dict[str, Any]] | None = None) -> None:
    """Apply ``crds`` (default: generated from the API models) and wait until they are served."""
    if crds is None:
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
