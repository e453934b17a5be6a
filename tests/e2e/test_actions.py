"""Containment actions through the real operator: the README's first example, remediation with evidence
first, guards (drill, approval, the rate limit, protected namespaces), undo on resolve and on deletion, and
a SIGKILL in the middle of a rollback and of a maintenance switch.

The operator runs as its own process under the chart's ServiceAccount; the controller-manager makes the
ReplicaSets, kwok's nodes make the Pods Ready, the EndpointSlice controller fills the slices. Pages go to
the real local receivers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_actions_workloads import deployed, endpoint_pods, ready_pods, rollout, service, workload
from tests.e2e.test_escalation import declare, install_policy, plugin, wait_event

ROOT = Path(__file__).resolve().parents[2]


def incident_of(cluster: controlplane.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "incident", name, "-n", namespace)  # type: ignore[no-any-return]


def actions_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in (obj.get("status") or {}).get("actions") or []}


def settled(cluster: controlplane.ControlPlane, namespace: str, name: str, *actions: str, timeout: float = 120) -> dict:
    """Poll until every named action has left Pending/Running (and AwaitingApproval): the incident then."""

    def look() -> dict[str, Any] | None:
        obj = incident_of(cluster, namespace, name)
        ledger = actions_of(obj)
        done = all(
            a in ledger and ledger[a]["phase"] not in ("Pending", "Running", "AwaitingApproval") for a in actions
        )
        return obj if done else None

    return eventually(f"actions {', '.join(actions)} of {name} to finish", look, timeout=timeout)  # type: ignore[no-any-return]


def phase(obj: dict[str, Any], action: str) -> tuple[str, str | None]:
    record = actions_of(obj)[action]
    return record["phase"], record.get("reason")


def two_revisions(cluster: controlplane.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    """A Deployment at revision 2; revision 1's ReplicaSet, as it was."""
    deployed(cluster, namespace, name, replicas=2)
    first = get_json(cluster, "replicasets", "-n", namespace, "-l", f"app={name}")["items"][0]
    cluster.kubectl("set", "image", f"deployment/{name}", f"web=registry.invalid/{name}:2", "-n", namespace)
    rollout(cluster, namespace, name)
    return first  # type: ignore[no-any-return]


def revisions(cluster: controlplane.ControlPlane, namespace: str, name: str) -> list[str]:
    items = get_json(cluster, "replicasets", "-n", namespace, "-l", f"app={name}")["items"]
    return sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in items)


def template_without_hash(replica_set: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(replica_set["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    return template  # type: ignore[no-any-return]


def events(cluster: controlplane.ControlPlane, namespace: str, name: str) -> list[str]:
    items = get_json(cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e["reason"] for e in items]


# --- the README's first example -----------------------------------------------------------------------


def test_the_manual_p1_example_does_what_it_says(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    # The README's steps: the example workloads, the "bad deploy", the policy, the incident.
    workloads = [doc for doc in yaml.safe_load_all((ROOT / "examples/workloads/checkout.yaml").read_text()) if doc]
    for doc in workloads:
        doc["metadata"]["namespace"] = namespace
    cluster.apply(workloads)
    rollout(cluster, namespace, "checkout")
    first = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=checkout")["items"][0]
    bad_deploy = "web=registry.example/checkout:1.4.1"
    cluster.kubectl("-n", namespace, "set", "image", "deployment/checkout", bad_deploy)
    rollout(cluster, namespace, "checkout")
    ready_pods(cluster, namespace, "app=maintenance-page", 1)
    original = get_json(cluster, "service/checkout", "-n", namespace)["spec"]

    policy = yaml.safe_load((ROOT / "examples/policies/payments.yaml").read_text())
    policy["metadata"]["namespace"] = namespace
    example = yaml.safe_load((ROOT / "examples/incidents/manual-p1.yaml").read_text())
    example["metadata"]["namespace"] = namespace
    cluster.apply([policy, example])

    obj = settled(cluster, namespace, "checkout-down", "evidence", "rollback-checkout", "maintenance-page")
    assert phase(obj, "evidence") == ("Succeeded", None)
    assert phase(obj, "rollback-checkout") == ("Succeeded", None)
    assert phase(obj, "maintenance-page") == ("Succeeded", None)
    # The policy's own remediation (its rollback needs approval) waits for a person.
    assert phase(obj, "rollback") == ("AwaitingApproval", "ApprovalRequired")
    [evidence] = obj["status"]["evidence"]
    assert evidence["items"] > 0 and len(evidence["sha256"]) == 64
    ledger = actions_of(obj)
    assert ledger["evidence"]["finishedAt"] <= ledger["rollback-checkout"]["startedAt"], "evidence first"

    deployment = get_json(cluster, "deployment/checkout", "-n", namespace)
    assert deployment["spec"]["template"] == template_without_hash(first)
    assert "checkout-down" in deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
    switched = get_json(cluster, "service/checkout", "-n", namespace)
    assert switched["spec"]["selector"] == {"app": "maintenance-page"}
    page = {p["metadata"]["name"] for p in ready_pods(cluster, namespace, "app=maintenance-page", 1)}
    eventually(
        "the EndpointSlices to list the maintenance page", lambda: endpoint_pods(cluster, namespace, "checkout") == page
    )

    resolved = plugin(cluster, "resolve", "checkout-down", "-n", namespace, "--summary", "rolled back")
    assert resolved.returncode == 0, resolved.stderr
    obj = eventually(
        "maintenance to be undone on resolve",
        lambda: (
            (o := incident_of(cluster, namespace, "checkout-down"))
            and phase(o, "maintenance-page")[0] == "Undone"
            and o
        ),
        timeout=60,
    )
    assert get_json(cluster, "service/checkout", "-n", namespace)["spec"] == original, "the selector byte for byte"
    assert "MaintenanceExited" in events(cluster, namespace, "checkout-down")
    shown = plugin(cluster, "actions", "checkout-down", "-n", namespace)
    assert shown.returncode == 0 and "rollback-checkout" in shown.stdout and "Undone" in shown.stdout


# --- remediation, evidence first, once ---------------------------------------------------------------------


def test_a_rollback_remediation_takes_evidence_first_and_rolls_back_once(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    first = two_revisions(cluster, namespace, "cart")
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        remediation=[{"when": {"severities": ["P1"]}, "actions": [{"name": "rollback-cart", "rollback": {}}]}],
    )
    declare(cluster, namespace, "cart-down", severity="P1", targets=[{"kind": "Deployment", "name": "cart"}])
    obj = settled(cluster, namespace, "cart-down", "evidence-first", "rollback-cart")
    ledger = actions_of(obj)
    assert phase(obj, "evidence-first") == ("Succeeded", None)
    assert phase(obj, "rollback-cart") == ("Succeeded", None)
    assert ledger["evidence-first"]["finishedAt"] <= ledger["rollback-cart"]["startedAt"]
    assert ledger["rollback-cart"]["origin"] == "remediation"
    assert revisions(cluster, namespace, "cart") == ["2", "3"]
    deployment = get_json(cluster, "deployment/cart", "-n", namespace)
    assert deployment["spec"]["template"] == template_without_hash(first)
    assert "cart-down" in deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
    assert deployment["metadata"]["annotations"]["incidentops.dev/action-key"] == ledger["rollback-cart"]["key"]
    generation = deployment["metadata"]["generation"]

    # A second look changes nothing: the operator acknowledges a spec change, the ledger stands.
    cluster.kubectl("label", "incident", "cart-down", "-n", namespace, "look=again")
    cluster.kubectl("annotate", "incident", "cart-down", "-n", namespace, "look=again")
    update = {
        "spec": {"statusUpdate": {"by": "alice", "at": ledger["rollback-cart"]["finishedAt"], "message": "rolled back"}}
    }
    cluster.kubectl("patch", "incident", "cart-down", "-n", namespace, "--type=merge", "-p", json.dumps(update))
    eventually(
        "the operator's look after the change",
        lambda: (
            (o := incident_of(cluster, namespace, "cart-down"))["status"].get("observedGeneration")
            == o["metadata"]["generation"]
        ),
    )
    assert actions_of(incident_of(cluster, namespace, "cart-down")) == ledger
    assert get_json(cluster, "deployment/cart", "-n", namespace)["metadata"]["generation"] == generation
    assert events(cluster, namespace, "cart-down").count("RollbackStarted") == 1
    assert events(cluster, namespace, "cart-down").count("RollbackSucceeded") == 1


# --- guards ----------------------------------------------------------------------------------------


def test_a_drill_plans_and_changes_nothing(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    two_revisions(cluster, namespace, "cart")
    before = get_json(cluster, "deployment/cart", "-n", namespace)
    install_policy(cluster, namespace, receivers, levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}])
    declare(
        cluster,
        namespace,
        "gameday",
        severity="P1",
        drill=True,
        actions=[
            {"name": "rollback-cart", "rollback": {"deployment": "cart"}},
            {"name": "scale-cart", "scale": {"deployment": "cart", "replicas": 5}},
        ],
    )
    obj = settled(cluster, namespace, "gameday", "rollback-cart", "scale-cart", "evidence-first")
    for name in ("rollback-cart", "scale-cart"):
        record = actions_of(obj)[name]
        assert (record["phase"], record["reason"], record["dryRun"]) == ("Skipped", "DryRun", True)
        assert record["plan"] and record["changes"], record
    assert "revision 2 to revision 1" in actions_of(obj)["rollback-cart"]["plan"]
    after = get_json(cluster, "deployment/cart", "-n", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "a drill changed the Deployment"
    assert after["spec"] == before["spec"]


def test_an_action_needing_approval_waits_until_approved_by_the_caller(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    deployed(cluster, namespace, "cart", replicas=1)
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        remediation=[
            {
                "when": {"severities": ["P2"]},
                "actions": [{"name": "scale-cart", "scale": {"deployment": "cart", "replicas": 3}}],
                "approval": "required",
            }
        ],
    )
    declare(cluster, namespace, "slow-cart", severity="P2")
    obj = eventually(
        "the action to wait for approval",
        lambda: (o := incident_of(cluster, namespace, "slow-cart")) and "scale-cart" in actions_of(o) and o,
    )
    assert phase(obj, "scale-cart") == ("AwaitingApproval", "ApprovalRequired")
    assert get_json(cluster, "deployment/cart", "-n", namespace)["spec"]["replicas"] == 1
    approved = plugin(cluster, "approve", "slow-cart", "scale-cart", "-n", namespace)
    assert approved.returncode == 0, approved.stderr
    obj = settled(cluster, namespace, "slow-cart", "scale-cart")
    assert phase(obj, "scale-cart") == ("Succeeded", None)
    [approval] = obj["spec"]["approvals"]
    assert approval["action"] == "scale-cart" and approval["by"]  # the caller, as the API server knows them
    assert actions_of(obj)["scale-cart"]["approvedBy"] == approval["by"]
    assert get_json(cluster, "deployment/cart", "-n", namespace)["spec"]["replicas"] == 3
    again = plugin(cluster, "approve", "slow-cart", "scale-cart", "-n", namespace)
    assert again.returncode == 1 and "does not wait for an approval" in again.stderr


def test_the_hourly_limit_skips_and_tells_the_paged_and_a_protected_namespace_is_refused(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    deployed(cluster, namespace, "cart", replicas=1)
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        guards={"maxActionsPerHour": 1},
    )
    declare(
        cluster,
        namespace,
        "first",
        severity="P2",
        actions=[{"name": "scale", "scale": {"deployment": "cart", "replicas": 2}}],
    )
    settled(cluster, namespace, "first", "scale")
    declare(
        cluster,
        namespace,
        "second",
        severity="P2",
        actions=[{"name": "scale", "scale": {"deployment": "cart", "replicas": 4}}],
    )
    obj = settled(cluster, namespace, "second", "scale")
    assert phase(obj, "scale") == ("Skipped", "RateLimited")
    assert get_json(cluster, "deployment/cart", "-n", namespace)["spec"]["replicas"] == 2
    assert "ActionRateLimited" in events(cluster, namespace, "second")
    wait_event(receivers, "second", "action")  # the paged are told it did not happen

    install_policy(
        cluster,
        namespace,
        receivers,
        name="guarded",
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        guards={"protectedNamespaces": [namespace]},
    )
    body = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "guarded", "namespace": namespace},
        "spec": {
            "title": "guarded",
            "severity": "P3",
            "escalationPolicyRef": {"name": "guarded"},
            "actions": [{"name": "scale", "scale": {"deployment": "cart", "replicas": 9}}],
        },
    }
    cluster.apply(body)
    obj = settled(cluster, namespace, "guarded", "scale")
    assert phase(obj, "scale") == ("Skipped", "ProtectedNamespace")
    assert get_json(cluster, "deployment/cart", "-n", namespace)["spec"]["replicas"] == 2


# --- quarantine and release ----------------------------------------------------------------------


def test_quarantine_keeps_the_pod_for_analysis_until_released(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    deployed(cluster, namespace, "cart", replicas=2)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("cart", {"app": "cart"}))
    [suspect, _] = ready_pods(cluster, namespace, "app=cart", 2)
    name = suspect["metadata"]["name"]
    install_policy(cluster, namespace, receivers, levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}])
    declare(
        cluster,
        namespace,
        "compromised",
        severity="P1",
        type="security",
        actions=[{"name": "isolate", "quarantine": {"selector": {"matchLabels": {"app": "cart"}}}}],
        targets=[{"kind": "Pod", "name": name}],
    )
    obj = settled(cluster, namespace, "compromised", "evidence-first", "isolate", timeout=180)
    assert phase(obj, "evidence-first") == ("Succeeded", None)
    assert phase(obj, "isolate")[0] == "Succeeded", actions_of(obj)["isolate"]
    policies = get_json(cluster, "networkpolicies", "-n", namespace)["items"]
    assert len(policies) == 1 and set(policies[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    release = plugin(cluster, "release", "compromised", "-n", namespace)
    assert release.returncode == 0, release.stderr
    obj = eventually(
        "the release",
        lambda: (o := incident_of(cluster, namespace, "compromised")) and phase(o, "isolate")[0] == "Undone" and o,
        timeout=60,
    )
    eventually("the NetworkPolicy to go", lambda: not get_json(cluster, "networkpolicies", "-n", namespace)["items"])


# --- undo on deletion --------------------------------------------------------------------------------


def test_deleting_an_incident_in_maintenance_sets_the_service_back_first(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    deployed(cluster, namespace, "cart", replicas=1)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("cart", {"app": "cart"}))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    ready_pods(cluster, namespace, "app=sorry", 1)
    original = get_json(cluster, "service/cart", "-n", namespace)["spec"]
    install_policy(cluster, namespace, receivers, levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}])
    maintenance = {"name": "sorry-page", "maintenance": {"service": "cart", "backend": {"selector": {"app": "sorry"}}}}
    declare(cluster, namespace, "cart-broken", severity="P2", actions=[maintenance])
    declare(cluster, namespace, "unrelated", severity="P4")
    settled(cluster, namespace, "cart-broken", "sorry-page")
    obj = eventually(
        "the finalizer on the incident with a change to undo",
        lambda: (o := incident_of(cluster, namespace, "cart-broken"))["metadata"].get("finalizers") and o,
    )
    assert obj["metadata"]["finalizers"] == ["incidentops.dev/finalizer"]
    assert not incident_of(cluster, namespace, "unrelated")["metadata"].get("finalizers")
    cluster.kubectl("delete", "incident", "unrelated", "-n", namespace, "--timeout=10s")  # never waits
    cluster.kubectl("delete", "incident", "cart-broken", "-n", namespace, "--timeout=60s")
    assert get_json(cluster, "service/cart", "-n", namespace)["spec"] == original


# --- SIGKILL in the middle ----------------------------------------------------------------------------


def cart_and_a_sorry_page(cluster: controlplane.ControlPlane, namespace: str) -> tuple[dict[str, Any], int]:
    """Deployment cart at revision 2 behind Service cart, and a ready maintenance page `sorry`: revision 1's
    ReplicaSet and cart's generation before any action."""
    first = two_revisions(cluster, namespace, "cart")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("cart", {"app": "cart"}))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    ready_pods(cluster, namespace, "app=sorry", 1)
    return first, get_json(cluster, "deployment/cart", "-n", namespace)["metadata"]["generation"]


def test_a_sigkill_in_the_middle_of_a_rollback_and_a_maintenance_switch_does_each_once(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    first, generation = cart_and_a_sorry_page(cluster, namespace)
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        evidence={"beforeActions": False},
    )
    declare(
        cluster,
        namespace,
        "cart-crash",
        severity="P1",
        actions=[
            {"name": "rollback-cart", "rollback": {"deployment": "cart"}},
            {"name": "sorry-page", "maintenance": {"service": "cart", "backend": {"selector": {"app": "sorry"}}}},
        ],
    )

    def restart() -> None:
        operator.kill()
        operator.start()

    killed_mid_rollback(cluster, namespace, "cart-crash", restart)
    obj = settled(cluster, namespace, "cart-crash", "rollback-cart", "sorry-page")
    each_done_once(cluster, namespace, obj, first, generation)


def killed_mid_rollback(
    cluster: controlplane.ControlPlane, namespace: str, name: str, kill: Callable[[], None]
) -> None:
    """Call ``kill`` while the rollback of incident ``name`` is Running, waiting on its rollout, and its
    maintenance switch Running or just done. The nodes are cordoned meanwhile, so the rollback's new Pods
    cannot be scheduled: a kwok rollout is otherwise over before a poll could see it Running."""
    nodes = [n["metadata"]["name"] for n in get_json(cluster, "nodes")["items"]]
    try:
        for node in nodes:
            cluster.kubectl("cordon", node)
        eventually(
            "the rollback Running, waiting on its rollout",
            lambda: (
                (ledger := actions_of(incident_of(cluster, namespace, name)))
                and ledger.get("rollback-cart", {}).get("phase") == "Running"
                and ledger.get("sorry-page", {}).get("phase") in ("Running", "Succeeded")
            ),
            timeout=60,
        )
        kill()
    finally:
        for node in nodes:
            cluster.kubectl("uncordon", node)


def each_done_once(
    cluster: controlplane.ControlPlane, namespace: str, obj: dict[str, Any], first: dict[str, Any], generation: int
) -> None:
    """The rollback of cart and the switch to sorry, each done once after a crash, and recorded once."""
    name = obj["metadata"]["name"]
    assert phase(obj, "rollback-cart") == ("Succeeded", None)
    assert phase(obj, "sorry-page") == ("Succeeded", None)
    deployment = get_json(cluster, "deployment/cart", "-n", namespace)
    assert deployment["metadata"]["generation"] == generation + 1, "the rollback was written once"
    assert revisions(cluster, namespace, "cart") == ["2", "3"]
    assert deployment["spec"]["template"] == template_without_hash(first)
    switched = get_json(cluster, "service/cart", "-n", namespace)
    assert switched["spec"]["selector"] == {"app": "sorry"}
    assert switched["metadata"]["annotations"]["incidentops.dev/action-key"] == actions_of(obj)["sorry-page"]["key"]
    # The timeline is written with the ledger, so it holds each step once. Events are posted after the
    # status write: one may be lost when the operator dies in between, never posted twice.
    timeline = [entry["kind"] for entry in obj["status"]["timeline"]]
    posted = events(cluster, namespace, name)
    for step in ("RollbackStarted", "RollbackSucceeded", "MaintenanceEntered"):
        assert timeline.count(step) == 1, (step, timeline)
        assert posted.count(step) <= 1, (step, posted)
