"""The chart installed with helm into the real control plane: every object accepted by the API server
(with all its admission plugins), the pods scheduled and Ready on kwok's nodes, the generated token kept
across an upgrade, the CRDs kept after an uninstall, the people's roles aggregated into view and edit, and
the admission policy holding `by` to the requesting user (two users, alice and bob).

The objects of other operators (ServiceMonitor, PrometheusRules, AlertmanagerConfig, the receiver's
Certificate) are checked against the real CRDs of prometheus-operator and cert-manager (the `peer_crds`
fixture; incidentops.testing.peer_crds pins them), strictly: a field their schema does not know is an error,
not silently pruned.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from incidentops.testing import controlplane
from incidentops.testing.install import wait_until_listed
from incidentops.testing.peer_crds import crd_files, load
from tests.e2e.conftest import eventually, get_json
from tests.unit.chart.helm import CHART, FULL_VALUES, helm, one, template

pytestmark = pytest.mark.e2e

CRDS = ("incidents.incidentops.dev", "escalationpolicies.incidentops.dev")


class Release:
    def __init__(self, cluster: controlplane.ControlPlane, name: str, namespace: str) -> None:
        self.cluster, self.name, self.namespace = cluster, name, namespace

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return helm(*args, "--kubeconfig", str(self.cluster.kubeconfig), "--namespace", self.namespace, check=check)

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The session's CRDs were applied without helm (the `crds` fixture): a release adopts them, as a
        # platform team adopts CRDs it applied by hand, through helm's ownership metadata.
        for crd in CRDS:
            self.cluster.kubectl("label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            self.cluster.kubectl(
                "annotate",
                "crd",
                crd,
                f"meta.helm.sh/release-name={self.name}",
                f"meta.helm.sh/release-namespace={self.namespace}",
                "--overwrite",
            )
        return self.helm("install", self.name, str(CHART), *args)

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm("get", "manifest", self.name).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def token(self) -> str:
        secret = get_json(self.cluster, "secret", f"{self.name}-receiver-token", "-n", self.namespace)
        return base64.b64decode(secret["data"]["token"]).decode()


@pytest.fixture
def release(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> Iterator[Release]:
    rel = Release(cluster, f"io-{uuid.uuid4().hex[:6]}", namespace)
    yield rel
    rel.helm("uninstall", rel.name, "--wait", "--timeout", "60s", check=False)


@pytest.fixture(scope="session")
def peer_crds(cluster: controlplane.ControlPlane) -> None:
    """prometheus-operator's and cert-manager's CRDs on the cluster, from their pinned Go modules.

    Created, not applied: client-side apply keeps a copy of each in an annotation, over its 256 KiB for the
    AlertmanagerConfig's. A CRD the cluster already has (on USE_EXISTING_CLUSTER, its operator's) is left as
    it is.
    """
    crds = {path: load(path) for path in crd_files()}
    missing = [
        p for p, crd in crds.items() if cluster.kubectl("get", "crd", crd["metadata"]["name"], check=False).returncode
    ]
    if missing:
        # All in one kubectl call, then waited for: the six are served in 9 s here, 15 s one after the other.
        cluster.kubectl("create", *(arg for path in missing for arg in ("-f", str(path))))
    for crd in crds.values():
        # Served once listed; not `kubectl wait --for=condition=Established`, which fails, not waits, on a CRD
        # that has no conditions yet (as a large one may have for a moment).
        wait_until_listed(cluster, crd)


def _strict_dry_run(
    cluster: controlplane.ControlPlane, objects: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """The objects sent to the API server as a server-side apply, a dry run, strictly validated.

    helm creates objects with a plain POST, for which the API server drops a field a CRD's schema does not
    know and says so in a warning only, and helm goes on: a misspelt ServiceMonitor field would be lost
    without a word. A server-side apply cannot name such a field ("field not declared in schema"); strict
    validation also refuses a field given twice.
    """
    return cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "--validate=strict",
        "--field-manager=incidentops-tests", "-f", "-", input=yaml.safe_dump_all(objects), check=False,
    )  # fmt: skip


def _all_exist(cluster: controlplane.ControlPlane, objects: list[dict[str, Any]]) -> None:
    """Every object the release holds is on the API server, and helm's (`kubectl get -f` fails on a missing one)."""
    found = json.loads(cluster.kubectl("get", "-f", "-", "-o", "json", input=yaml.safe_dump_all(objects)).stdout)
    items = found["items"] if found.get("kind") == "List" else [found]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in objects
    )
    for obj in items:
        assert obj["metadata"]["annotations"]["meta.helm.sh/release-name"], obj["metadata"]["name"]


def _ready_addresses(cluster: controlplane.ControlPlane, namespace: str, service: str) -> list[str]:
    slices = get_json(cluster, "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}")
    return [
        address
        for s in slices["items"]
        for endpoint in s.get("endpoints") or []
        if endpoint.get("conditions", {}).get("ready")
        for address in endpoint["addresses"]
    ]


def test_the_default_install_runs_two_ready_replicas_and_keeps_its_token_and_crds(
    cluster: controlplane.ControlPlane, release: Release
) -> None:
    if not isinstance(cluster, controlplane.ControlPlane):
        pytest.skip("the image is not published: only kwok's nodes make the pods Ready without it")
    release.install("--wait", "--timeout", "120s")
    objects = release.manifest()
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Deployment", "PodDisruptionBudget", "Service", "Secret"} <= kinds
    _all_exist(cluster, objects)

    # kwok's nodes play the kubelet: both replicas are scheduled, Running and Ready.
    deployment = get_json(cluster, "deployment", release.name, "-n", release.namespace)
    assert deployment["status"]["readyReplicas"] == 2
    pods = get_json(cluster, "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}")
    assert len(pods["items"]) == 2
    assert len({p["spec"]["nodeName"] for p in pods["items"]}) == 2, "spread over the nodes"

    def budget() -> dict[str, Any] | None:
        pdb: dict[str, Any] = get_json(cluster, "pdb", release.name, "-n", release.namespace)
        return pdb if pdb.get("status", {}).get("currentHealthy") == 2 else None

    pdb = eventually("the budget counts both replicas healthy", budget)
    assert pdb["spec"]["minAvailable"] == 1 and pdb["status"]["disruptionsAllowed"] == 1
    endpoints = eventually(
        "the receiver's Service has both pods as ready endpoints",
        lambda: _ready_addresses(cluster, release.namespace, f"{release.name}-receiver"),
    )
    assert len(endpoints) == 2

    # An upgrade keeps the generated token (lookup finds the Secret), so Alertmanager's stays valid.
    token = release.token()
    assert len(token) == 48
    release.helm("upgrade", release.name, str(CHART), "--reuse-values", "--set", "replicaCount=3")
    assert get_json(cluster, "deployment", release.name, "-n", release.namespace)["spec"]["replicas"] == 3
    assert release.token() == token

    # Uninstalling removes the operator but keeps the CRDs (and so every incident).
    release.helm("uninstall", release.name, "--wait", "--timeout", "60s")
    gone = cluster.kubectl("get", "deployment", release.name, "-n", release.namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    for crd in CRDS:
        kept = get_json(cluster, "crd", crd)
        assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        established = {c["type"]: c["status"] for c in kept["status"]["conditions"]}
        assert established["Established"] == "True"


def test_people_may_view_and_edit_incidents_through_the_aggregated_roles(
    cluster: controlplane.ControlPlane, release: Release, namespace: str
) -> None:
    release.install()
    viewer, editor = f"viewer-{uuid.uuid4().hex[:6]}", f"editor-{uuid.uuid4().hex[:6]}"
    for user, role in ((viewer, "view"), (editor, "edit")):
        cluster.kubectl("create", "rolebinding", f"{user}", f"--clusterrole={role}", f"--user={user}", "-n", namespace)

    def can(user: str, verb: str, resource: str = "incidents.incidentops.dev", *flags: str) -> bool:
        result = cluster.kubectl("auth", "can-i", verb, resource, *flags, "-n", namespace, f"--as={user}", check=False)
        return result.stdout.strip() == "yes"

    # The controller-manager aggregates the chart's roles into Kubernetes' own.
    eventually("edit includes incidentops-edit", lambda: can(editor, "patch"))
    assert can(editor, "create") and can(editor, "get")
    assert not can(editor, "patch", "incidents.incidentops.dev", "--subresource=status"), "the operator owns status"
    eventually("view includes incidentops-view", lambda: can(viewer, "list"))
    assert not can(viewer, "patch")
    assert can(viewer, "get", "escalationpolicies.incidentops.dev")


def test_the_full_values_are_accepted_by_the_api_server(
    cluster: controlplane.ControlPlane, peer_crds: None, release: Release
) -> None:
    watched = [f"w-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for ns in watched:
        cluster.kubectl("create", "namespace", ns)
    try:
        cluster.kubectl(
            "create", "secret", "generic", "alertmanager-token", "--from-literal=bearer=s3cret", "-n", release.namespace
        )
        # The receiver's certificate from cert-manager rather than the full values' existing Secret, so the
        # Certificate goes to the API server too. No cert-manager runs: the issuer is never Ready and the
        # Secret never written, which kwok's pods, running no container, do not mind.
        cluster.apply(
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Issuer",
                "metadata": {"name": "receiver-ca", "namespace": release.namespace},
                "spec": {"selfSigned": {}},
            }
        )
        installed = release.install(
            "-f",
            str(FULL_VALUES),
            "--set",
            f"watchNamespaces={{{','.join(watched)}}}",
            # The other tests of the session need the CRDs after this release is gone.
            "--set",
            "crds.keep=true",
            "--set",
            "receiver.tls.existingSecret=",
            "--set",
            "receiver.tls.certManager.issuerRef.kind=Issuer",
            "--set",
            "receiver.tls.certManager.issuerRef.name=receiver-ca",
        )
        objects = release.manifest()
        kinds = {o["kind"] for o in objects}
        assert {"NetworkPolicy", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget"} <= kinds
        assert {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "Certificate"} <= kinds
        rules = [o["metadata"]["name"] for o in objects if o["kind"] == "PrometheusRule"]
        examples = list((CHART / "files" / "prometheusrules").glob("*.yaml"))
        assert len(rules) == 1 + len(examples) > 1, f"the operator's alerts and the thresholds' examples: {rules}"
        _all_exist(cluster, objects)
        strict = _strict_dry_run(cluster, objects)
        assert strict.returncode == 0, strict.stderr
        # And so helm's POSTs kept every field: the API server warns of those it drops, and helm goes on.
        assert "unknown field" not in installed.stderr
        roles = {
            o["metadata"]["namespace"]
            for o in objects
            if o["kind"] == "Role" and o["metadata"]["name"] == f"{release.name}-ops"
        }
        assert roles == {*watched, release.namespace}
        deployment = f"{release.name}-ops"
        pods = eventually(
            "the three replicas are created",
            lambda: (
                len(
                    get_json(
                        cluster, "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}"
                    )["items"]
                )
                == 3
            ),
        )
        assert pods
        spec = get_json(cluster, "deployment", deployment, "-n", release.namespace)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["INCIDENTOPS_WATCH_NAMESPACES"] == ",".join([*watched, release.namespace])
        # The existing token Secret, mounted for the token and for the previous one of a rotation (optional).
        mounted = {
            v["name"]: v["secret"]
            for v in spec["volumes"]
            if v.get("secret", {}).get("secretName") == "alertmanager-token"
        }
        assert {name: s.get("optional", False) for name, s in mounted.items()} == {
            "receiver-token": False,
            "receiver-previous-token": True,
        }
        assert spec["containers"][0]["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    finally:
        release.helm("uninstall", release.name, "--wait", "--timeout", "60s", check=False)
        for ns in watched:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# A field in the wrong place or misspelt, as one writes them: where the CRD's schema has no such field.
WRONG_FIELDS = {
    "ServiceMonitor": (("metrics.serviceMonitor.enabled=true",), ("spec", "endpoints", 0), "scrapeTimeoutSeconds"),
    "PrometheusRule": (("metrics.prometheusRule.enabled=true",), ("spec", "groups", 0, "rules", 0), "severity"),
    "AlertmanagerConfig": (("alertmanagerConfig.enabled=true",), ("spec", "route"), "group_by"),
    "Certificate": (
        ("receiver.tls.enabled=true", "receiver.tls.certManager.issuerRef.name=receiver-ca"),
        ("spec", "issuerRef"),
        "namespace",
    ),
}


@pytest.mark.parametrize("kind", WRONG_FIELDS)
def test_a_field_the_peer_crds_do_not_know_is_refused_not_dropped(
    cluster: controlplane.ControlPlane, peer_crds: None, namespace: str, kind: str
) -> None:
    values, where, field = WRONG_FIELDS[kind]
    obj = one(template(*(a for v in values for a in ("--set", v)), namespace=namespace), kind)
    as_rendered = _strict_dry_run(cluster, [obj])
    assert as_rendered.returncode == 0, as_rendered.stderr
    parent: Any = obj
    for key in where:
        parent = parent[key]
    parent[field] = "5m"
    refused = _strict_dry_run(cluster, [obj])
    assert refused.returncode != 0
    assert f"Kind={kind}" in refused.stderr and f".{field}: field not declared in schema" in refused.stderr
    # What strict validation saves us from: the structural schema prunes the field, and the object is taken.
    taken = json.loads(
        cluster.kubectl(
            "create", "--dry-run=server", "--validate=false", "-o", "json", "-f", "-", input=yaml.safe_dump(obj)
        ).stdout
    )
    kept: Any = taken
    for key in where:
        kept = kept[key]
    assert field not in kept


def test_the_admission_policy_refuses_acknowledging_or_approving_in_another_name(
    cluster: controlplane.ControlPlane, release: Release, namespace: str
) -> None:
    release.install(
        "--set",
        "admissionPolicy.enabled=true",
        "--set",
        f"admissionPolicy.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name={namespace}",
    )
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    for user in (alice, bob):
        cluster.kubectl("create", "rolebinding", user, "--clusterrole=edit", f"--user={user}", "-n", namespace)
    incident = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "checkout-down", "namespace": namespace},
        "spec": {"title": "Checkout is down", "severity": "P2"},
    }

    def patch(user: str, spec: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            "patch", "incident", "checkout-down", "-n", namespace, "--type=merge", f"--as={user}",
            "-p", json.dumps({"spec": spec}), *flags, check=False,
        )  # fmt: skip

    at = "2026-01-01T10:00:00Z"
    cluster.kubectl("create", "-f", "-", f"--as={alice}", input=yaml.safe_dump(incident))
    # The policy is compiled and enforced within moments of its creation: a dry run goes through admission.
    refused = eventually(
        "bob's acknowledgement in alice's name is refused",
        lambda: (
            (r := patch(bob, {"acknowledgement": {"by": alice, "at": at}}, "--dry-run=server")).returncode != 0 and r
        ),
    )
    assert f"spec.acknowledgement.by must be the requesting user ({bob}), not {alice}" in refused.stderr
    assert patch(bob, {"acknowledgement": {"by": alice, "at": at}}).returncode != 0
    assert patch(alice, {"acknowledgement": {"by": alice, "at": at}}).returncode == 0
    # Alice's acknowledgement stays hers when bob changes another field under his own name.
    update = patch(bob, {"statusUpdate": {"message": "rolling back", "by": bob, "at": at}})
    assert update.returncode == 0, update.stderr
    forged = patch(bob, {"approvals": [{"action": "rollback", "by": alice, "at": at}]})
    assert forged.returncode != 0
    assert f"a new entry of spec.approvals must name the requesting user ({bob}) in by" in forged.stderr
    own = patch(bob, {"approvals": [{"action": "rollback", "by": bob, "at": at}]})
    assert own.returncode == 0, own.stderr
    spec = get_json(cluster, "incident", "checkout-down", "-n", namespace)["spec"]
    assert spec["acknowledgement"]["by"] == alice and spec["statusUpdate"]["by"] == bob
    assert spec["approvals"] == [{"action": "rollback", "by": bob, "at": at}]
