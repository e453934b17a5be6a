"""The operator, running under the chart's own ServiceAccount, sets status on incidents and policies."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from incidentops import kube
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.policies import PolicyMonitor
from incidentops.settings import Settings
from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import eventually, get_json

CONDITION_TYPES = {
    "Ready",
    "Acknowledged",
    "Contained",
    "Resolved",
    "AlertsResolved",
    "SLABreached",
    "EscalationExhausted",
}


def _condition(obj: dict[str, Any], type: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type), None)


def _incident(name: str, **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name},
            "spec": {"title": f"{name} is broken", **spec},
        }
    )


def test_new_incident_gets_its_initial_status(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_incident("db-down", severity="P1"))

    def settled() -> dict[str, Any] | None:
        obj = get_json(cluster, "incident", "db-down", "-n", namespace)
        return obj if (obj.get("status") or {}).get("phase") else None

    obj = eventually("the operator's first status", settled)
    status = obj["status"]
    assert status["phase"] == "Triggered"
    assert status["severity"] == "P1"
    assert status["episode"] == 1
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["startedAt"]
    assert {c["type"] for c in status["conditions"]} == CONDITION_TYPES
    ready = _condition(obj, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "NoEscalationPolicy"

    columns = cluster.kubectl("get", "inc", "db-down", "-n", namespace).stdout.splitlines()[1].split()
    assert columns[1:3] == ["P1", "Triggered"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=db-down")
    assert "Triggered" in events.stdout or "NoEscalationPolicy" in events.stdout


def test_an_incident_declared_while_the_operator_runs_is_seen_at_once(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    # The first incident may reach Kopf through its initial listing; once it has a status, that listing is
    # over, so the second can only come through the watch. It must be seen within seconds, not at some
    # later listing (without the watch Kopf retries the refused watch for a minute, seeing nothing new).
    def phase(name: str) -> str | None:
        phase: str | None = (get_json(cluster, "incident", name, "-n", namespace).get("status") or {}).get("phase")
        return phase

    for name in ("first", "second"):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_incident(name, severity="P2"))
        eventually(f"{name}'s first status", functools.partial(phase, name), timeout=10)


def test_unclassified_incident_is_classified_by_its_policy(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "team", "namespace": namespace},
            "spec": {
                "classification": {"rules": [{"match": {"labels": {"tier": "edge"}}, "severity": "P2"}]},
                "levels": [{"name": "on-call", "after": "1h", "notify": ["hook"]}],
                "channels": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/hook"}}],
            },
        }
    )
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input=_incident("edge-errors", source={"kind": "manual", "labels": {"tier": "edge"}}),
    )  # fmt: skip
    obj = eventually(
        "classification by the policy's rule",
        lambda: (
            (o := get_json(cluster, "incident", "edge-errors", "-n", namespace)).get("status", {}).get("severity") and o
        ),
    )
    assert obj["status"]["severity"] == "P2"
    assert obj["status"]["escalationPolicy"] == f"{namespace}/team"
    ready = _condition(obj, "Ready")
    assert ready is not None and ready["status"] == "True"


def test_unclassified_incident_without_policy_defaults_to_p3(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_incident("vague"))
    obj = eventually(
        "a default severity",
        lambda: (o := get_json(cluster, "incident", "vague", "-n", namespace)).get("status", {}).get("severity") and o,
    )
    assert obj["status"]["severity"] == "P3"


def _policy_with_secret(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": "paging", "namespace": namespace},
        "spec": {
            "levels": [{"name": "on-call", "after": "0s", "notify": ["chat"]}],
            "channels": [{"name": "chat", "slack": {"webhookSecretRef": {"name": "slack-hook", "key": "url"}}}],
        },
    }


def _secret(namespace: str, *, labelled: bool, key: str) -> dict[str, Any]:
    labels = {"incidentops.dev/channel-secret": "true"} if labelled else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "slack-hook", "namespace": namespace, "labels": labels},
        "stringData": {key: "http://127.0.0.1:9/services/T000/B000/XXXXSECRET"},
    }


def test_policy_ready_follows_its_channel_secret(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(_policy_with_secret(namespace))

    def ready_reason() -> tuple[str, str, str] | None:
        cond = _condition(get_json(cluster, "escalationpolicy", "paging", "-n", namespace), "Ready")
        return (cond["status"], cond["reason"], cond["message"]) if cond else None

    status, reason, message = eventually("Ready=False", ready_reason)
    assert (status, reason) == ("False", "SecretNotFound")
    assert "slack-hook" in message and "chat" in message

    cluster.apply(_secret(namespace, labelled=False, key="url"))
    eventually("SecretNotLabelled", lambda: (r := ready_reason()) and r[1] == "SecretNotLabelled")

    cluster.kubectl("delete", "secret", "slack-hook", "-n", namespace)
    cluster.apply(_secret(namespace, labelled=True, key="webhook"))
    _, _, message = eventually("SecretKeyMissing", lambda: (r := ready_reason()) and r[1] == "SecretKeyMissing" and r)
    assert "url" in message

    cluster.kubectl("delete", "secret", "slack-hook", "-n", namespace)
    cluster.apply(_secret(namespace, labelled=True, key="url"))
    eventually("Ready=True once the Secret is fixed", lambda: (r := ready_reason()) and r[0] == "True")

    policy = get_json(cluster, "escalationpolicy", "paging", "-n", namespace)
    assert policy["status"]["observedGeneration"] == policy["metadata"]["generation"]
    # The secret's value appears nowhere the operator writes.
    assert "XXXXSECRET" not in yaml.safe_dump(policy)
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert "SecretNotFound" in events and "XXXXSECRET" not in events
    assert "XXXXSECRET" not in operator.output()


async def test_a_policy_checked_on_a_stale_copy_is_read_again_and_its_status_written(
    cluster: controlplane.ControlPlane, crds: None, operator_kubeconfig: Path, namespace: str
) -> None:
    # The monitor checks the copy of a policy its watch last saw (its timer, a delivery's news). When a
    # person changed the policy since, the status write (under the copy's resourceVersion) conflicts: the
    # policy is read again and the status computed and written on what it is now.
    cluster.apply(_policy_with_secret(namespace))
    stale = get_json(cluster, "escalationpolicy", "paging", "-n", namespace)
    cluster.kubectl("label", "escalationpolicy", "paging", "-n", namespace, "team=payments")
    api = await kube.api_client(operator_kubeconfig)
    try:
        await PolicyMonitor(Dependencies(settings=Settings(), api=api)).check(stale)
    finally:
        await api.close()
    policy = get_json(cluster, "escalationpolicy", "paging", "-n", namespace)
    assert policy["metadata"]["labels"] == {"team": "payments"}
    ready = _condition(policy, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert policy["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]


def test_an_incident_without_policy_gets_one_as_soon_as_a_policy_appears(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_incident("orphan", severity="P2"))

    def ready() -> tuple[str, str] | None:
        cond = _condition(get_json(cluster, "incident", "orphan", "-n", namespace), "Ready")
        return (cond["status"], cond["reason"]) if cond and cond["reason"] != "Initializing" else None

    assert eventually("NoEscalationPolicy", ready) == ("False", "NoEscalationPolicy")
    cluster.apply(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "late", "namespace": namespace},
            "spec": {
                "levels": [{"name": "on-call", "after": "1h", "notify": ["hook"]}],
                "channels": [{"name": "hook", "webhook": {"url": "http://127.0.0.1:9/hook"}}],
            },
        }
    )
    assert eventually("re-evaluated with the new policy", lambda: (r := ready()) and r[0] == "True" and r) == (
        "True",
        "PolicySelected",
    )
    status = get_json(cluster, "incident", "orphan", "-n", namespace)["status"]
    assert status["escalationPolicy"] == f"{namespace}/late"
