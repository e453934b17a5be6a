"""Least privilege, shown right by right: every (API group, resource, verb) the chart's rendered
ClusterRole and Role grant is taken away in turn, and the e2e scenario that needs it is run against a
fresh control plane with the operator under the reduced role: it must fail, and its output must show the
API server's 403. With the full role the same scenarios pass in the rest of the suite.

The reduced role is the chart's own: a copy of the chart whose files/clusterrole.yaml (or files/role.yaml)
lacks the one right, which the e2e fixtures render with `helm template` and apply (INCIDENTOPS_E2E_CHART).

``GRANTS`` is the table (docs/security.md shows it); a unit test below holds it to the rendered roles, so a
right added without a scenario that needs it, or a row for a right that is gone, fails the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from incidentops.testing.install import operator_objects, render_chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "incidentops"
E2E = "tests/e2e/"


class Grant(NamedTuple):
    group: str
    resource: str
    verb: str
    scenario: str  # a pytest node id under tests/e2e/
    why: str


_OPERATOR = "test_operator.py::test_new_incident_gets_its_initial_status"
_POLICY = "test_operator.py::test_policy_ready_follows_its_channel_secret"
_ROLLBACK = "test_actions_workloads.py::test_rollback_returns_to_the_previous_revision_as_kubectl_does"
_MAINTENANCE = "test_actions_workloads.py::test_maintenance_switches_the_service_and_undo_restores_its_selector_exactly"
_INGRESS = "test_actions_workloads.py::test_maintenance_of_an_ingress_replaces_every_backend_and_undo_restores_them"
_QUARANTINE = "test_actions_workloads.py::test_quarantine_isolates_a_pod_that_keeps_running_and_release_deletes_it"
_EVIDENCE = "test_evidence.py::test_a_snapshot_stores_redacted_verifiable_evidence"
_EVENTS = "test_actions.py::test_a_rollback_remediation_takes_evidence_first_and_rolls_back_once"
_FINALIZER = "test_actions.py::test_deleting_an_incident_in_maintenance_sets_the_service_back_first"
_INTAKE = "test_intake.py::test_two_receivers_and_concurrent_posts_make_one_incident"
_TAKEOVER = "test_leader.py::test_only_the_leader_pages_and_the_standby_takes_over"
_WATCHED = "test_operator.py::test_an_incident_declared_while_the_operator_runs_is_seen_at_once"
_SCALE = "test_actions_workloads.py::test_scale_and_undo_to_the_original_count"
_STATEFULSET = "test_evidence.py::test_a_snapshot_reads_a_statefulset_as_a_pods_owner_and_as_a_target"
_STALE_POLICY = "test_operator.py::test_a_policy_checked_on_a_stale_copy_is_read_again_and_its_status_written"

GRANTS: tuple[Grant, ...] = (
    Grant("", "events", "create", _EVENTS, "an Event on every incident transition"),
    Grant("incidentops.dev", "incidents", "get", _OPERATOR, "each look reads the incident fresh"),
    Grant("incidentops.dev", "incidents", "list", _OPERATOR, "Kopf lists incidents"),
    Grant("incidentops.dev", "incidents", "watch", _WATCHED, "Kopf sees a new incident at once"),
    Grant("incidentops.dev", "incidents", "patch", _FINALIZER, "Kopf's finalizer on an incident awaiting undo"),
    Grant("incidentops.dev", "escalationpolicies", "list", _POLICY, "policies are listed for selection"),
    Grant("incidentops.dev", "escalationpolicies", "watch", _POLICY, "Kopf watches policies"),
    Grant("incidentops.dev", "incidents", "create", _INTAKE, "the receiver opens incidents"),
    Grant("incidentops.dev", "incidents/status", "update", _OPERATOR, "status written under resourceVersion"),
    Grant("incidentops.dev", "escalationpolicies/status", "update", _POLICY, "Ready written"),
    Grant("incidentops.dev", "escalationpolicies", "get", _STALE_POLICY, "a conflicted status write reads it again"),
    Grant("", "secrets", "get", _POLICY, "a channel's Secret, to judge Ready and to send"),
    Grant("apps", "deployments", "get", _ROLLBACK, "the Deployment to roll back"),
    Grant("apps", "deployments", "patch", _ROLLBACK, "the rollback itself"),
    Grant("apps", "deployments", "list", _SCALE, "the Deployments a target selects by labels"),
    Grant("apps", "replicasets", "list", _ROLLBACK, "the rollout history"),
    Grant("", "configmaps", "get", _ROLLBACK, "ConfigMaps the template uses, changed since (metadata)"),
    Grant("", "services", "get", _MAINTENANCE, "the Service to switch"),
    Grant("", "services", "patch", _MAINTENANCE, "the switch itself"),
    Grant("networking.k8s.io", "ingresses", "get", _INGRESS, "the Ingress to switch"),
    Grant("networking.k8s.io", "ingresses", "patch", _INGRESS, "the switch itself"),
    Grant("", "pods", "list", _MAINTENANCE, "the maintenance backend's ready Pods"),
    Grant("discovery.k8s.io", "endpointslices", "list", _MAINTENANCE, "verify: the slices list the backend"),
    Grant("", "pods", "get", _QUARANTINE, "the Pod an incident names"),
    Grant("apps", "replicasets", "get", _QUARANTINE, "the Pod's ReplicaSet: the labels it selects by"),
    Grant("", "pods", "patch", _QUARANTINE, "the quarantine label, the selected labels off"),
    Grant("", "pods", "delete", _QUARANTINE, "release deletes the quarantined Pod"),
    Grant("", "services", "list", _QUARANTINE, "the Services that select the Pod"),
    Grant("networking.k8s.io", "networkpolicies", "get", _QUARANTINE, "the deny-all NetworkPolicy, once"),
    Grant("networking.k8s.io", "networkpolicies", "create", _QUARANTINE, "the deny-all NetworkPolicy"),
    Grant("networking.k8s.io", "networkpolicies", "delete", _QUARANTINE, "release removes it"),
    Grant(
        "", "configmaps", "create", _EVIDENCE, "the evidence ConfigMaps (post-mortem drafts are written the same way)"
    ),
    Grant("", "events", "list", _EVIDENCE, "evidence: the Events of the namespace and of the targets"),
    Grant("", "pods/log", "get", _EVIDENCE, "evidence: the containers' logs, current and previous"),
    Grant("apps", "statefulsets", "get", _STATEFULSET, "evidence: a Pod's StatefulSet, up its owners"),
    Grant("apps", "statefulsets", "list", _STATEFULSET, "evidence: the StatefulSets a target selects"),
    Grant("coordination.k8s.io", "leases", "get", _OPERATOR, "leader election"),
    Grant("coordination.k8s.io", "leases", "create", _OPERATOR, "leader election, the first time"),
    Grant("coordination.k8s.io", "leases", "update", _TAKEOVER, "leader election: renew, take over"),
)

# Rights the role grants that no scenario has yet been shown to need (the proof ran and the scenario
# passed without them), each with what is known. Listed, not hidden: docs/security.md shows them too.
NOT_SHOWN: dict[tuple[str, str, str], str] = {}


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role.get("rules") or []
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def without(role: dict[str, Any], group: str, resource: str, verb: str) -> dict[str, Any]:
    """``role`` with one (group, resource, verb) taken away from every rule that grants it."""
    rules: list[dict[str, Any]] = []
    for rule in role.get("rules") or []:
        if (group, resource, verb) not in granted({"rules": [rule]}):
            rules.append(rule)
            continue
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                verbs = [v for v in rule["verbs"] if (g, r, v) != (group, resource, verb)]
                if verbs:
                    rules.append({"apiGroups": [g], "resources": [r], "verbs": verbs})
    return {**role, "rules": rules}


def _roles(chart: Path = CHART) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ClusterRole and the Role bound to the operator's ServiceAccount, as the chart renders them."""
    identity = operator_objects(render_chart(chart, "incidentops")).identity
    (clusterrole,) = (o for o in identity if o["kind"] == "ClusterRole")
    (role,) = (o for o in identity if o["kind"] == "Role")
    return clusterrole, role


def _reduced_chart(directory: Path, group: str, resource: str, verb: str) -> Path:
    """A copy of the chart whose role files lack (group, resource, verb)."""
    chart = directory / "incidentops"
    shutil.copytree(CHART, chart)
    for name in ("clusterrole.yaml", "role.yaml"):
        path = chart / "files" / name
        path.write_text(yaml.safe_dump(without(yaml.safe_load(path.read_text()), group, resource, verb)))
    return chart


def test_every_right_has_a_scenario_and_every_row_a_right() -> None:
    clusterrole, role = _roles()
    rights = granted(clusterrole) | granted(role)
    rows = {(g.group, g.resource, g.verb) for g in GRANTS}
    assert not rows & NOT_SHOWN.keys(), rows & NOT_SHOWN.keys()
    listed = rows | NOT_SHOWN.keys()
    assert rights == listed, {"without a scenario": rights - listed, "not granted": listed - rights}
    for grant in GRANTS:
        path, _, name = grant.scenario.partition("::")
        assert f"def {name}(" in (ROOT / E2E / path).read_text(), grant.scenario


def test_taking_one_right_away_keeps_every_other() -> None:
    clusterrole, _ = _roles()
    for group, resource, verb in granted(clusterrole):
        reduced = granted(without(clusterrole, group, resource, verb))
        assert reduced == granted(clusterrole) - {(group, resource, verb)}


@pytest.mark.e2e
@pytest.mark.timeout(300)
@pytest.mark.parametrize("grant", GRANTS, ids=lambda g: f"{g.group or 'core'}/{g.resource}/{g.verb}")
def test_the_scenario_that_needs_a_right_fails_without_it(grant: Grant, tmp_path: Path) -> None:
    right = (grant.group, grant.resource, grant.verb)
    chart = _reduced_chart(tmp_path, *right)
    full, reduced = (granted(a) | granted(b) for a, b in (_roles(), _roles(chart)))
    assert reduced == full - {right}, "the reduced chart renders the full rights but this one"
    env = {**os.environ, "INCIDENTOPS_E2E_CHART": str(chart)}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", E2E + grant.scenario, "-x", "-q", "-p", "no:cacheprovider",
         "--timeout", "90", "--basetemp", str(tmp_path / "run")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1, f"{grant.scenario} did not fail without {grant}:\n{output[-3000:]}"
    # A whole word: random namespace names and durations may hold "403".
    assert re.search(r"forbidden|\b403\b", output, re.IGNORECASE), (
        f"failed, but not for want of the right:\n{output[-3000:]}"
    )


def table() -> str:
    """The tables of docs/security.md."""
    rows = ["| API group | Resource | Verb | Why | Scenario that fails without it |", "|---|---|---|---|---|"]
    for g in GRANTS:
        rows.append(f"| `{g.group or 'core'}` | `{g.resource}` | `{g.verb}` | {g.why} | `{g.scenario}` |")
    if not NOT_SHOWN:
        return "\n".join([*rows, "", "Every right the roles grant is in this table, each with its scenario."])
    rows += [
        "",
        "Granted, not yet shown necessary:",
        "",
        "| API group | Resource | Verb | What is known |",
        "|---|---|---|---|",
    ]
    for (group, resource, verb), why in NOT_SHOWN.items():
        rows.append(f"| `{group or 'core'}` | `{resource}` | `{verb}` | {why} |")
    return "\n".join(rows)


def test_docs_security_shows_the_table() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    start = text.index("<!-- rbac-table")
    start = text.index("\n", start) + 1
    end = text.index("<!-- /rbac-table -->")
    assert text[start:end].strip() == table(), "docs/security.md: run `python -m tests.e2e.test_rbac_minimal`"


if __name__ == "__main__":
    # Writes the table into docs/security.md.
    path = ROOT / "docs" / "security.md"
    text = path.read_text()
    start = text.index("\n", text.index("<!-- rbac-table")) + 1
    end = text.index("<!-- /rbac-table -->")
    path.write_text(text[:start] + table() + "\n" + text[end:])
