"""The workload actions against a real API server: rollback, maintenance, quarantine, scale.

The modules are driven directly, as the action runner drives them (plan, record, execute, verify, undo),
through a Context built here, with a client of the operator's own ServiceAccount: the chart's ClusterRole
is what they run under, so a verb missing from it fails here. The controller-manager makes the
ReplicaSets, kwok's nodes make the Pods Running and Ready, and the EndpointSlice controller fills the
slices: what the modules read back is what a cluster would say.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops import kube
from incidentops.actions import base
from incidentops.actions.maintenance import SWITCH_BACK_MARGIN
from incidentops.actions.registry import module_for
from incidentops.api import reasons
from incidentops.api.incident import ActionPhase, ActionRecord, ActionTemplate, ActionType, Incident
from incidentops.testing import controlplane
from tests.e2e.conftest import eventually, get_json

INCIDENT = "checkout-down"


def workload(name: str, *, replicas: int = 2, image: str = "registry.invalid/web:1", labels: dict | None = None) -> str:
    labels = labels or {"app": name}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels, "annotations": {"team": "checkout"}},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": 60,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]},
                },
            },
        }
    )


def service(name: str, selector: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )


@pytest.fixture
async def api(operator_kubeconfig: Path) -> AsyncIterator[kube.ApiClient]:
    client = await kube.api_client(operator_kubeconfig)
    yield client
    await client.close()


def context(
    api: kube.ApiClient,
    namespace: str,
    template: dict[str, Any],
    *,
    targets: list[dict[str, Any]] | None = None,
    started_at: datetime.datetime | None = None,
) -> base.Context:
    """What the runner would hand a module: the incident as read, its record, the request."""
    now = datetime.datetime.now(datetime.UTC)
    incident = Incident.model_validate(
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": INCIDENT, "namespace": namespace, "uid": str(uuid.uuid4())},
            "spec": {"title": "Checkout is down", "targets": targets or []},
            "status": {"startedAt": (started_at or now).isoformat()},
        }
    )
    request = ActionTemplate.model_validate(template)
    record = ActionRecord(
        name=request.name, type=request.type, phase=ActionPhase.PENDING, key=uuid.uuid4().hex, started_at=now
    )
    return base.Context(
        api=api,
        incident=incident,
        policy=None,
        record=record,
        template=request,
        now=now,
        operator_namespace="incidentops",
    )


def running(ctx: base.Context, planned: base.Planned) -> base.Context:
    """The context after the runner recorded Running with the plan (its undo data) and a verify deadline."""
    now = datetime.datetime.now(datetime.UTC)
    record = ctx.record.model_copy(
        update={
            "phase": ActionPhase.RUNNING,
            "undo": dict(planned.undo),
            "started_at": now,
            "verify_by": now + planned.verify_within,
        }
    )
    return dataclasses.replace(ctx, record=record, now=now)


def later(ctx: base.Context) -> base.Context:
    """The same context, looked at now."""
    return dataclasses.replace(ctx, now=datetime.datetime.now(datetime.UTC))


async def until(what: str, look: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    """Poll ``look`` until it answers something truthy, within ``within`` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await look()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


async def verified(module: base.Action, ctx: base.Context, within: float = 90) -> base.Progress:
    """Ask verify, as the runner does, until it is done or failed."""

    async def look() -> base.Progress | None:
        progress = await module.verify(later(ctx))
        return progress if progress.done or progress.failed else None

    return await until("verification", look, within)  # type: ignore[no-any-return]


async def planned_and_done(module: base.Action, ctx: base.Context) -> tuple[base.Planned, base.Context]:
    planned = await module.plan(ctx)
    assert isinstance(planned, base.Planned), planned
    ctx = running(ctx, planned)
    await module.execute(ctx, planned)
    return planned, ctx


def rollout(cluster: controlplane.ControlPlane, namespace: str, name: str) -> None:
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=60s")


def deployed(cluster: controlplane.ControlPlane, namespace: str, name: str, *, replicas: int) -> None:
    """A Deployment, rolled out: planning before its controller is done would plan on a read its status
    writes are about to make stale."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload(name, replicas=replicas))
    rollout(cluster, namespace, name)


def ready_pods(cluster: controlplane.ControlPlane, namespace: str, selector: str, count: int) -> list[dict]:
    def look() -> list[dict]:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", selector)["items"]
        ready = [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        return ready if len(ready) == count else []

    return eventually(f"{count} ready pods {selector}", look, timeout=60)  # type: ignore[no-any-return]


def endpoint_pods(cluster: controlplane.ControlPlane, namespace: str, service_name: str) -> set[str]:
    slices = get_json(cluster, "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service_name}")
    return {
        (endpoint.get("targetRef") or {}).get("name")
        for piece in slices["items"]
        for endpoint in piece.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
    }


def changed_after(cluster: controlplane.ControlPlane, namespace: str, config_map: str, moment: str) -> None:
    """Change the ConfigMap until the API server's record of the change is later than ``moment`` (its times
    have whole seconds)."""
    attempts = iter(range(1000))

    def change() -> bool:
        cluster.kubectl("label", "--overwrite", "configmap", config_map, "-n", namespace, f"change={next(attempts)}")
        shown = get_json(cluster, f"configmap/{config_map}", "-n", namespace, "--show-managed-fields")
        fields = shown["metadata"]["managedFields"]
        return max(entry["time"] for entry in fields) > moment

    eventually(f"a change of ConfigMap {config_map} after {moment}", change)


# --- rollback --------------------------------------------------------------------------------------------


async def test_rollback_returns_to_the_previous_revision_as_kubectl_does(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    cluster.kubectl("create", "configmap", "web-config", "-n", namespace, "--from-literal=mode=v1")
    manifest = yaml.safe_load(workload("web"))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "web-config"}}, {"secretRef": {"name": "web-token"}}]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    rollout(cluster, namespace, "web")
    revision_1 = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"][0]
    cluster.kubectl("set", "image", "deployment/web", "web=registry.invalid/web:2", "-n", namespace)
    rollout(cluster, namespace, "web")
    changed_after(cluster, namespace, "web-config", revision_1["metadata"]["creationTimestamp"])

    module = module_for(ActionType.ROLLBACK)
    ctx = context(
        api, namespace, {"name": "undo-release", "rollback": {}}, targets=[{"kind": "Deployment", "name": "web"}]
    )
    planned, ctx = await planned_and_done(module, ctx)
    assert planned.summary == f"roll back Deployment {namespace}/web from revision 2 to revision 1"
    assert planned.changes[0].new == "revision 1: web=registry.invalid/web:1"
    assert any(f"ConfigMap {namespace}/web-config changed" in warning for warning in planned.warnings)
    assert any("web-token" in warning and "not checked" in warning for warning in planned.warnings)
    assert planned.verify_within == datetime.timedelta(seconds=90)  # progressDeadlineSeconds 60, and grace

    progress = await verified(module, ctx)
    assert progress.done, progress
    assert "now revision 3" in progress.message

    deployment = get_json(cluster, "deployment/web", "-n", namespace)
    expected = revision_1["spec"]["template"]
    del expected["metadata"]["labels"]["pod-template-hash"]
    assert deployment["spec"]["template"] == expected
    notes = deployment["metadata"]["annotations"]
    assert notes["deployment.kubernetes.io/revision"] == "3"
    assert f"incident {namespace}/{INCIDENT}" in notes["kubernetes.io/change-cause"]
    assert notes[base.KEY_ANNOTATION] == ctx.key
    assert notes[base.INCIDENT_ANNOTATION] == f"{namespace}/{INCIDENT}"
    assert notes["team"] == "checkout", "the ReplicaSet's annotations come back with the template"
    replica_sets = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"]
    reused = next(rs for rs in replica_sets if rs["metadata"]["uid"] == revision_1["metadata"]["uid"])
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    again = await module.plan(later(ctx))
    assert isinstance(again, base.Skip) and again.reason == reasons.ALREADY_AT_REVISION, again
    assert await module.applied(ctx)
    undone = await module.undo(ctx)
    assert undone.failed and undone.reason == reasons.UNDO_SKIPPED
    after = get_json(cluster, "deployment/web", "-n", namespace)
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"], "undo changed nothing"
    assert after["metadata"]["annotations"] == notes

    other = context(api, namespace, {"name": "another", "rollback": {"deployment": "web"}})
    refused = await module.plan(other)
    assert isinstance(refused, base.Skip) and refused.reason == reasons.ALREADY_ROLLED_BACK, refused


async def test_rollback_refuses_a_paused_a_gitops_and_a_single_revision_deployment(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    for name in ("paused", "argo", "young"):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload(name, replicas=1))
    cluster.kubectl("label", "deployment", "argo", "-n", namespace, "argocd.argoproj.io/instance=shop")
    cluster.kubectl("rollout", "pause", "deployment/paused", "-n", namespace)
    module = module_for(ActionType.ROLLBACK)

    async def refusal(name: str) -> base.Skip:
        outcome = await module.plan(context(api, namespace, {"name": "undo", "rollback": {"deployment": name}}))
        assert isinstance(outcome, base.Skip), outcome
        return outcome

    assert (await refusal("paused")).reason == reasons.DEPLOYMENT_PAUSED
    assert (await refusal("argo")).reason == reasons.GITOPS_MANAGED
    rollout(cluster, namespace, "young")
    assert (await refusal("young")).reason == reasons.REVISION_NOT_FOUND
    assert (await refusal("absent")).reason == reasons.TARGET_NOT_FOUND
    nothing = await module.plan(context(api, namespace, {"name": "undo", "rollback": {}}))
    assert isinstance(nothing, base.Skip) and nothing.reason == reasons.NO_TARGET


async def test_rollback_skips_a_deployment_that_changed_long_before_the_incident(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    deployed(cluster, namespace, "web", replicas=1)
    cluster.kubectl("set", "image", "deployment/web", "web=registry.invalid/web:2", "-n", namespace)
    rollout(cluster, namespace, "web")
    module = module_for(ActionType.ROLLBACK)
    started = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    request = {"name": "undo", "rollback": {"deployment": "web", "ifChangedWithin": "30m"}}
    outcome = await module.plan(context(api, namespace, request, started_at=started))
    assert isinstance(outcome, base.Skip) and outcome.reason == reasons.NOT_CHANGED_RECENTLY, outcome
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    outcome = await module.plan(context(api, namespace, request, started_at=before))
    assert isinstance(outcome, base.Skip) and outcome.reason == reasons.CHANGED_AFTER_START, outcome
    soon_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    assert isinstance(await module.plan(context(api, namespace, request, started_at=soon_after)), base.Planned)


async def test_a_write_on_a_stale_read_raises_conflict(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    deployed(cluster, namespace, "web", replicas=1)
    module = module_for(ActionType.SCALE)
    ctx = context(api, namespace, {"name": "more", "scale": {"deployment": "web", "replicas": 2}})
    planned = await module.plan(ctx)
    assert isinstance(planned, base.Planned), planned
    cluster.kubectl("annotate", "deployment", "web", "-n", namespace, "someone=else")
    with pytest.raises(base.Conflict):
        await module.execute(running(ctx, planned), planned)
    assert get_json(cluster, "deployment/web", "-n", namespace)["spec"]["replicas"] == 1


# --- maintenance ------------------------------------------------------------------------------------------


async def test_maintenance_switches_the_service_and_undo_restores_its_selector_exactly(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    selector = {"app": "shop", "tier": "frontend"}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("shop", labels=selector))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("shop", selector))
    ready_pods(cluster, namespace, "app=sorry", 1)
    eventually("the shop's endpoints", lambda: len(endpoint_pods(cluster, namespace, "shop")) == 2)
    original = get_json(cluster, "service/shop", "-n", namespace)

    module = module_for(ActionType.MAINTENANCE)
    request = {"name": "sorry-page", "maintenance": {"service": "shop", "backend": {"selector": {"app": "sorry"}}}}
    planned, ctx = await planned_and_done(module, context(api, namespace, request))
    assert json.loads(planned.undo["original"]) == selector
    assert (await verified(module, ctx)).done

    switched = get_json(cluster, "service/shop", "-n", namespace)
    assert switched["spec"]["selector"] == {"app": "sorry"}, "replaced, not merged"
    assert json.loads(switched["metadata"]["annotations"]["incidentops.dev/maintenance-original"]) == selector
    sorry = {p["metadata"]["name"] for p in ready_pods(cluster, namespace, "app=sorry", 1)}
    assert endpoint_pods(cluster, namespace, "shop") == sorry
    assert await module.applied(ctx)
    assert isinstance(await module.plan(later(ctx)), base.Skip)

    assert (await module.undo(ctx)).done
    restored = get_json(cluster, "service/shop", "-n", namespace)
    assert json.dumps(restored["spec"]) == json.dumps(original["spec"]), "byte for byte"
    assert restored["metadata"].get("annotations", {}).keys() == original["metadata"].get("annotations", {}).keys()
    again = await module.undo(ctx)
    assert again.done, again
    unchanged = get_json(cluster, "service/shop", "-n", namespace)["metadata"]["resourceVersion"]
    assert unchanged == restored["metadata"]["resourceVersion"], "a Service has no status to move on"
    eventually("the shop's own Pods back", lambda: len(endpoint_pods(cluster, namespace, "shop") - sorry) == 2)


async def test_maintenance_refuses_a_backend_with_no_ready_pod_and_leaves_a_changed_service(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("shop", {"app": "shop"}))
    module = module_for(ActionType.MAINTENANCE)
    request = {"name": "sorry-page", "maintenance": {"service": "shop", "backend": {"selector": {"app": "sorry"}}}}
    outcome = await module.plan(context(api, namespace, request))
    assert isinstance(outcome, base.Skip) and outcome.reason == reasons.BACKEND_NOT_READY, outcome
    assert get_json(cluster, "service/shop", "-n", namespace)["spec"]["selector"] == {"app": "shop"}

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    ready_pods(cluster, namespace, "app=sorry", 1)
    _, ctx = await planned_and_done(module, context(api, namespace, request))
    patch = json.dumps({"spec": {"selector": {"app": "someone-else"}}})
    cluster.kubectl("patch", "service", "shop", "-n", namespace, "--type=merge", "-p", patch)
    undone = await module.undo(ctx)
    assert undone.failed and undone.reason == reasons.UNDO_SKIPPED, undone
    assert get_json(cluster, "service/shop", "-n", namespace)["spec"]["selector"] == {"app": "someone-else"}


async def test_maintenance_that_does_not_take_the_traffic_switches_back_by_itself(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("shop", {"app": "shop"}))
    ready_pods(cluster, namespace, "app=sorry", 1)
    module = module_for(ActionType.MAINTENANCE)
    request = {"name": "sorry-page", "maintenance": {"service": "shop", "backend": {"selector": {"app": "sorry"}}}}
    ctx = context(api, namespace, request)
    planned = await module.plan(ctx)
    assert isinstance(planned, base.Planned), planned
    # The maintenance Pods vanish between the plan and the switch: nothing will serve the Service.
    cluster.kubectl("scale", "deployment/sorry", "--replicas=0", "-n", namespace)
    eventually(
        "the maintenance Pods gone", lambda: not get_json(cluster, "pods", "-n", namespace, "-l", "app=sorry")["items"]
    )
    ctx = running(ctx, planned)
    await module.execute(ctx, planned)
    soon = datetime.datetime.now(datetime.UTC) + SWITCH_BACK_MARGIN + datetime.timedelta(seconds=3)
    ctx = dataclasses.replace(ctx, record=ctx.record.model_copy(update={"verify_by": soon}))
    progress = await verified(module, ctx)
    assert progress.failed and progress.reason == reasons.MAINTENANCE_FAILED, progress
    assert "switched back" in progress.message
    assert get_json(cluster, "service/shop", "-n", namespace)["spec"]["selector"] == {"app": "shop"}
    assert json.loads(planned.undo["original"]) == {"app": "shop"}


async def test_maintenance_of_an_ingress_replaces_every_backend_and_undo_restores_them(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("sorry", replicas=1))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("sorry", {"app": "sorry"}))
    eventually("the sorry page's endpoint", lambda: len(endpoint_pods(cluster, namespace, "sorry")) == 1)
    backend = {"service": {"name": "shop", "port": {"number": 80}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "shop"},
        "spec": {
            "defaultBackend": backend,
            "rules": [
                {"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}},
                {
                    "host": "api.example",
                    "http": {
                        "paths": [
                            {
                                "path": "/v1",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "api", "port": {"name": "http"}}},
                            }
                        ]
                    },
                },
            ],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(ingress))
    original = get_json(cluster, "ingress/shop", "-n", namespace)

    module = module_for(ActionType.MAINTENANCE)
    request = {
        "name": "sorry-page",
        "maintenance": {"ingress": "shop", "backend": {"service": {"name": "sorry", "port": 80}}},
    }
    _, ctx = await planned_and_done(module, context(api, namespace, request))
    assert (await verified(module, ctx)).done
    switched = get_json(cluster, "ingress/shop", "-n", namespace)["spec"]
    sorry = {"service": {"name": "sorry", "port": {"number": 80}}}
    assert switched["defaultBackend"] == sorry
    assert [p["backend"] for r in switched["rules"] for p in r["http"]["paths"]] == [sorry, sorry]
    assert [r["host"] for r in switched["rules"]] == ["shop.example", "api.example"]

    assert (await module.undo(ctx)).done
    restored = get_json(cluster, "ingress/shop", "-n", namespace)
    assert json.dumps(restored["spec"]) == json.dumps(original["spec"])


# --- quarantine -------------------------------------------------------------------------------------------


async def test_quarantine_isolates_a_pod_that_keeps_running_and_release_deletes_it(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workload("web"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=service("web", {"app": "web"}))
    pods = ready_pods(cluster, namespace, "app=web", 2)
    eventually("both endpoints", lambda: len(endpoint_pods(cluster, namespace, "web")) == 2)
    suspect = pods[0]["metadata"]["name"]
    owner = pods[0]["metadata"]["ownerReferences"][0]["name"]

    module = module_for(ActionType.QUARANTINE)
    ctx = context(api, namespace, {"name": "isolate", "quarantine": {}}, targets=[{"kind": "Pod", "name": suspect}])
    planned, ctx = await planned_and_done(module, ctx)
    assert planned.target == f"Pod {namespace}/{suspect}"
    progress = await verified(module, ctx)
    assert progress.done, progress

    pod = get_json(cluster, f"pod/{suspect}", "-n", namespace)
    labels = pod["metadata"]["labels"]
    assert labels["incidentops.dev/quarantine"] == INCIDENT
    assert "app" not in labels and "pod-template-hash" not in labels
    assert pod["status"]["phase"] == "Running" and not pod["metadata"].get("deletionTimestamp")
    assert not pod["metadata"].get("ownerReferences"), "the ReplicaSet let go of it"
    assert suspect not in endpoint_pods(cluster, namespace, "web")
    replacements = ready_pods(cluster, namespace, "app=web", 2)
    assert suspect not in {p["metadata"]["name"] for p in replacements}
    assert get_json(cluster, f"replicaset/{owner}", "-n", namespace)["status"]["readyReplicas"] == 2
    policy = get_json(cluster, f"networkpolicy/incidentops-quarantine-{INCIDENT}", "-n", namespace)
    assert policy["spec"]["podSelector"] == {"matchLabels": {"incidentops.dev/quarantine": INCIDENT}}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not policy["spec"].get("ingress") and not policy["spec"].get("egress"), "deny all"
    assert await module.applied(ctx)
    again = await module.plan(later(ctx))
    assert isinstance(again, base.Skip) and again.reason == reasons.ALREADY_DONE, again

    released = await module.undo(ctx)
    assert released.done, released
    gone = cluster.kubectl("get", f"pod/{suspect}", "-n", namespace, "-o", "json", check=False)
    assert gone.returncode != 0 or json.loads(gone.stdout)["metadata"].get("deletionTimestamp")
    missing = cluster.kubectl("get", f"networkpolicy/incidentops-quarantine-{INCIDENT}", "-n", namespace, check=False)
    assert missing.returncode != 0
    assert (await module.undo(ctx)).done, "a second release changes nothing"
    assert len(ready_pods(cluster, namespace, "app=web", 2)) == 2


async def test_quarantine_refuses_an_empty_selector(namespace: str, api: kube.ApiClient) -> None:
    module = module_for(ActionType.QUARANTINE)
    outcome = await module.plan(context(api, namespace, {"name": "isolate", "quarantine": {"selector": {}}}))
    assert isinstance(outcome, base.Skip) and outcome.reason == reasons.TOO_MANY_TARGETS, outcome


# --- scale ------------------------------------------------------------------------------------------------


async def test_scale_and_undo_to_the_original_count(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    deployed(cluster, namespace, "web", replicas=1)
    module = module_for(ActionType.SCALE)
    by_selector = {"kind": "Deployment", "selector": {"matchLabels": {"app": "web"}}}
    ctx = context(api, namespace, {"name": "more", "scale": {"replicas": 3}}, targets=[by_selector])
    planned, ctx = await planned_and_done(module, ctx)
    assert json.loads(planned.undo["deployments"])[0]["replicas"] == 1
    progress = await verified(module, ctx)
    assert progress.done, progress
    assert get_json(cluster, "deployment/web", "-n", namespace)["status"]["readyReplicas"] == 3
    assert await module.applied(ctx)
    await module.execute(ctx, planned)  # a second run changes nothing
    assert isinstance(await module.plan(later(ctx)), base.Skip)

    assert (await module.undo(ctx)).done
    deployment = get_json(cluster, "deployment/web", "-n", namespace)
    assert deployment["spec"]["replicas"] == 1
    assert base.KEY_ANNOTATION not in deployment["metadata"].get("annotations", {})
    again = await module.undo(ctx)
    assert again.done and "has its original 1 replicas" in again.message, again
    after = get_json(cluster, "deployment/web", "-n", namespace)  # its status moves on as it scales down
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
    assert after["metadata"].get("annotations") == deployment["metadata"].get("annotations")


async def test_scale_undo_leaves_a_count_someone_changed(
    cluster: controlplane.ControlPlane, namespace: str, api: kube.ApiClient
) -> None:
    deployed(cluster, namespace, "web", replicas=1)
    module = module_for(ActionType.SCALE)
    _, ctx = await planned_and_done(
        module, context(api, namespace, {"name": "more", "scale": {"deployment": "web", "replicas": 2}})
    )
    cluster.kubectl("scale", "deployment/web", "--replicas=5", "-n", namespace)
    verdict = await module.verify(later(ctx))
    assert verdict.failed and verdict.reason == reasons.TARGET_CHANGED, verdict
    undone = await module.undo(ctx)
    assert undone.failed and undone.reason == reasons.UNDO_SKIPPED, undone
    assert get_json(cluster, "deployment/web", "-n", namespace)["spec"]["replicas"] == 5
