"""The identity admission policy (charts/incidentops/files/identity-policy.yaml) on the real API server,
with two people: each may write records in their own name only, and records already there stand.

alice and bob are ServiceAccounts (bound tokens) with the rights of people who answer incidents: get,
list, create and patch Incidents in the test's namespace. The policy is bound to that namespace only, so
the other tests are unaffected.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops.testing import controlplane
from tests.e2e.conftest import eventually, get_json

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "charts" / "incidentops" / "files" / "identity-policy.yaml"


def person(cluster: controlplane.ControlPlane, namespace: str, name: str) -> tuple[str, Path]:
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    account = f"--serviceaccount={namespace}:{name}"
    cluster.kubectl("create", "rolebinding", f"{name}-answers", "-n", namespace, "--role=answers", account)
    return f"system:serviceaccount:{namespace}:{name}", cluster.service_account_kubeconfig(namespace, name)


@pytest.fixture
def people(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> dict[str, tuple[str, Path]]:
    rights = ("--verb=get,list,create,patch", "--resource=incidents.incidentops.dev")
    cluster.kubectl("create", "role", "answers", "-n", namespace, *rights)
    return {name: person(cluster, namespace, name) for name in ("alice", "bob")}


@pytest.fixture
def policy(cluster: controlplane.ControlPlane, namespace: str) -> Any:
    policy, binding = [doc for doc in yaml.safe_load_all(POLICY.read_text()) if doc]
    name = f"incidentops-identity-{namespace}"
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    binding = copy.deepcopy(binding)
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    cluster.apply([policy, binding])
    yield name
    cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, check=False)


def incident(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"title": f"{name} is failing", "severity": "P2", **spec},
    }


def record(by: str, at: str = "2026-12-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"by": by, "at": at, **extra}


def as_(
    kubeconfig: Path, cluster: controlplane.ControlPlane, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(*args, input=input, check=False, kubeconfig=kubeconfig)


def patch(
    cluster: controlplane.ControlPlane, who: Path, namespace: str, name: str, spec: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"spec": spec})
    return as_(who, cluster, "patch", "incident", name, "-n", namespace, "--type=merge", "-p", body)


def test_each_person_writes_in_their_own_name_only(
    cluster: controlplane.ControlPlane, namespace: str, people: dict[str, tuple[str, Path]], policy: str
) -> None:
    (alice, alice_kc), (bob, bob_kc) = people["alice"], people["bob"]
    # A policy takes a moment to be enforced: probe with a dry run until it refuses.
    forged = incident(namespace, "probe", acknowledgement=record(bob))
    eventually(
        "the policy to be enforced",
        lambda: (
            "must be the requesting user"
            in as_(alice_kc, cluster, "create", "--dry-run=server", "-f", "-", input=json.dumps(forged)).stderr
        ),
        timeout=60,
    )

    # Creating an incident with a record in someone else's name is refused; in one's own, accepted.
    refused = as_(
        alice_kc, cluster, "create", "-f", "-", input=json.dumps(incident(namespace, "db", acknowledgement=record(bob)))
    )
    assert (
        refused.returncode != 0
        and f"spec.acknowledgement.by must be the requesting user ({alice}), not {bob}" in refused.stderr
    )
    created = as_(
        alice_kc,
        cluster,
        "create",
        "-f",
        "-",
        input=json.dumps(incident(namespace, "db", acknowledgement=record(alice))),
    )
    assert created.returncode == 0, created.stderr

    # bob cannot acknowledge again as alice, nor rewrite alice's record; he resolves as himself, and
    # alice's acknowledgement, unchanged, stands.
    spoof = patch(cluster, bob_kc, namespace, "db", {"acknowledgement": record(alice, "2026-12-01T10:05:00Z")})
    assert spoof.returncode != 0 and f"must be the requesting user ({bob}), not {alice}" in spoof.stderr
    resolved = patch(cluster, bob_kc, namespace, "db", {"resolution": record(bob, summary="restarted the primary")})
    assert resolved.returncode == 0, resolved.stderr
    for field, who in (("containment", alice), ("statusUpdate", alice)):
        extra = {"message": "x"} if field == "statusUpdate" else {}
        refused = patch(cluster, bob_kc, namespace, "db", {field: record(who, **extra)})
        assert refused.returncode != 0 and f"spec.{field}.by must be the requesting user ({bob})" in refused.stderr, (
            field
        )
    spec = get_json(cluster, "incident", "db", "-n", namespace)["spec"]
    assert spec["acknowledgement"]["by"] == alice and spec["resolution"]["by"] == bob
    assert "containment" not in spec and "statusUpdate" not in spec


def test_approvals_and_undo_are_in_ones_own_name_and_approved_true_only_at_creation(
    cluster: controlplane.ControlPlane, namespace: str, people: dict[str, tuple[str, Path]], policy: str
) -> None:
    (alice, alice_kc), (bob, bob_kc) = people["alice"], people["bob"]
    actions = [{"name": "scale-up", "scale": {"deployment": "web", "replicas": 4}, "approval": "required"}]
    body = incident(namespace, "web", actions=actions)
    eventually(
        "the policy to be enforced",
        lambda: "must name the requesting user" in as_(
            bob_kc, cluster, "create", "--dry-run=server", "-f", "-",
            input=json.dumps(incident(namespace, "probe", approvals=[{"action": "x", **record(alice)}])),
        ).stderr,
        timeout=60,
    )  # fmt: skip
    created = as_(bob_kc, cluster, "create", "-f", "-", input=json.dumps(body))
    assert created.returncode == 0, created.stderr

    forged = patch(cluster, bob_kc, namespace, "web", {"approvals": [{"action": "scale-up", **record(alice)}]})
    assert (
        forged.returncode != 0
        and f"a new entry of spec.approvals must name the requesting user ({bob}) in by" in forged.stderr
    )
    own = patch(cluster, bob_kc, namespace, "web", {"approvals": [{"action": "scale-up", **record(bob)}]})
    assert own.returncode == 0, own.stderr
    # alice adds hers; bob's, carried over as it was, stands.
    both = [{"action": "scale-up", **record(bob)}, {"action": "other", **record(alice)}]
    assert patch(cluster, alice_kc, namespace, "web", {"approvals": both}).returncode == 0

    undo = patch(cluster, alice_kc, namespace, "web", {"undo": [{"action": "scale-up", **record(bob)}]})
    assert (
        undo.returncode != 0
        and f"a new entry of spec.undo must name the requesting user ({alice}) in by" in undo.stderr
    )

    approved = patch(cluster, alice_kc, namespace, "web", {"actions": [{**actions[0], "approved": True}]})
    assert approved.returncode != 0 and "kubectl incident approve" in approved.stderr
    spec = get_json(cluster, "incident", "web", "-n", namespace)["spec"]
    assert [(a["action"], a["by"]) for a in spec["approvals"]] == [("scale-up", bob), ("other", alice)]
    assert "undo" not in spec and not spec["actions"][0].get("approved")
