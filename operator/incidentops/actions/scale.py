"""Scale: a Deployment's replica count set, the original kept to set it back.

Where it sits: an action module (``incidentops.actions.base``), run by the action runner; undone when the
incident resolves if the request says ``restoreOnResolve``, or when a person asks (``spec.undo``).

The rules:

- The Deployments are the request's ``deployment`` (in the incident's namespace), else each Deployment
  among the incident's targets; one JSON patch each, under the resourceVersion planned on, replaces
  ``spec.replicas`` and stamps the action's key, incident and the original count
  (:data:`ORIGINAL_REPLICAS`) on the Deployment.
- Skipped, with a reason: Argo CD or Flux manage it (unless the policy allows it: they would scale it
  back), or it already has that count (``NothingToDo``).
- Verified when the controller has seen the change and ``readyReplicas`` equals the count, within the
  Deployment's progress deadline; a Deployment whose count someone changed since (an autoscaler, a person)
  fails verification as theirs now.
- Undo sets the original count back only where the Deployment still has the count this action set and
  its key; otherwise it is left as it is (``UndoSkipped``). An undo that finds the original count back
  already is done, so a second undo changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from incidentops import kube
from incidentops.actions.base import INCIDENT_ANNOTATION, KEY_ANNOTATION, Context, Progress, Skip
from incidentops.actions.common import (
    DEPLOYMENTS_UNDO,
    Change,
    EachDeployment,
    Obj,
    Ref,
    annotate_ops,
    annotations_of,
    carries_key,
    caught_up,
    combined,
    gitops_guard,
    patch_read,
    recorded,
    stamp,
    unannotate_ops,
    undo_decision,
)
from incidentops.api import reasons
from incidentops.api.common import GROUP
from incidentops.api.incident import ActionType, PlannedChange, ScaleAction

__all__ = ["ORIGINAL_REPLICAS", "Scale", "replicas_of", "scale_progress"]

ORIGINAL_REPLICAS: Final = f"{GROUP}/original-replicas"
"""On a Deployment this action scaled: the replica count it had before (also in the record's undo data)."""
# --- decisions on JSON, no cluster --------------------------------------------------------------


def replicas_of(deployment: Mapping[str, Any]) -> int:
    """The Deployment's desired replica count (the API's default is 1)."""
    value = (deployment.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def scale_progress(deployment: Mapping[str, Any], wanted: int) -> Progress:
    """Whether the Deployment has ``wanted`` ready replicas, as its controller reports them."""
    ref = Ref.of(deployment, "Deployment")
    status = deployment.get("status") or {}
    if not caught_up(deployment):
        return Progress.waiting(f"{ref}: the controller has not seen the new count yet")
    ready, replicas = status.get("readyReplicas") or 0, status.get("replicas") or 0
    if ready == replicas == wanted:
        return Progress.ok(f"{ref}: {ready}/{wanted} replicas ready")
    return Progress.waiting(f"{ref}: {ready}/{wanted} replicas ready, {replicas} in all")


# --- the action -------------------------------------------------------------------------------------


class Scale(EachDeployment):
    """Scale Deployments (see the module doc)."""

    type = ActionType.SCALE
    done_reason = reasons.NOTHING_TO_DO
    failure_reason = reasons.TARGET_CHANGED

    def deployment_name(self, ctx: Context) -> str | None:
        return _request(ctx).deployment

    async def plan_one(self, ctx: Context, deployment: Obj) -> Change | Skip:
        return _plan_one(ctx, _request(ctx), deployment)

    async def verify_one(self, ctx: Context, entry: Mapping[str, Any]) -> Progress:
        return await _verify_one(ctx, entry)

    async def undo(self, ctx: Context) -> Progress:
        looks = [await _undo_one(ctx, entry) for entry in recorded(ctx, DEPLOYMENTS_UNDO) or []]
        return combined(looks, reasons.UNDO_SKIPPED)


def _request(ctx: Context) -> ScaleAction:
    if ctx.template is None or ctx.template.scale is None:
        raise ValueError("a scale is planned from its request (ctx.template.scale)")
    return ctx.template.scale


def _plan_one(ctx: Context, request: ScaleAction, deployment: Obj) -> Change | Skip:
    ref = Ref.of(deployment, "Deployment")
    current, wanted = replicas_of(deployment), request.replicas
    if carries_key(deployment, ctx.key) and current == wanted:
        # Scaled by this action already (a plan after a conflict): the original count is on the object.
        original = int(annotations_of(deployment).get(ORIGINAL_REPLICAS, current))
        summary = f"{ref} was scaled from {original} to {wanted} by this action already"
        return Change(ref, deployment, None, summary, _entry(ref, original, wanted), _planned(ref, original, wanted))
    refusal = gitops_guard(ctx, deployment, ref)
    if refusal is not None:
        return refusal
    if current == wanted:
        return Skip(reasons.NOTHING_TO_DO, f"{ref} has {current} replicas already")
    operations = [
        {"op": "replace", "path": "/spec/replicas", "value": wanted},
        *annotate_ops(deployment, {**stamp(ctx), ORIGINAL_REPLICAS: str(current)}),
    ]
    summary = f"scale {ref} from {current} to {wanted}"
    return Change(ref, deployment, operations, summary, _entry(ref, current, wanted), _planned(ref, current, wanted))


def _entry(ref: Ref, original: int, scaled_to: int) -> dict[str, Any]:
    return {"namespace": ref.namespace, "name": ref.name, "replicas": original, "scaledTo": scaled_to}


def _planned(ref: Ref, original: int, scaled_to: int) -> PlannedChange:
    return PlannedChange(object=str(ref), field="spec.replicas", old=str(original), new=str(scaled_to))


async def _verify_one(ctx: Context, entry: Mapping[str, Any]) -> Progress:
    ref = Ref("Deployment", entry["namespace"], entry["name"])
    deployment = await kube.get_object(ctx.api, kube.DEPLOYMENTS, ref.namespace, ref.name)
    if deployment is None:
        return Progress.failure(reasons.TARGET_CHANGED, f"{ref} is gone")
    current = replicas_of(deployment)
    if current != entry["scaledTo"]:
        return Progress.failure(
            reasons.TARGET_CHANGED,
            f"{ref} has {current} replicas, not the {entry['scaledTo']} this action set: someone (a person, an "
            "autoscaler) changed it since",
        )
    return scale_progress(deployment, entry["scaledTo"])


async def _undo_one(ctx: Context, entry: Mapping[str, Any]) -> Progress:
    ref = Ref("Deployment", entry["namespace"], entry["name"])
    original, scaled_to = entry["replicas"], entry["scaledTo"]
    deployment = await kube.get_object(ctx.api, kube.DEPLOYMENTS, ref.namespace, ref.name)
    if deployment is None:
        return Progress.failure(reasons.UNDO_SKIPPED, f"{ref} is gone: nothing to set back")
    decision = undo_decision(replicas_of(deployment), original, scaled_to, carries_key(deployment, ctx.key))
    ours = (KEY_ANNOTATION, INCIDENT_ANNOTATION, ORIGINAL_REPLICAS)
    if decision == "leave":
        return Progress.failure(
            reasons.UNDO_SKIPPED,
            f"{ref} has {replicas_of(deployment)} replicas, not the {scaled_to} this action set: left as it is",
        )
    if decision == "restore":
        operations = [{"op": "replace", "path": "/spec/replicas", "value": original}]
        await patch_read(ctx, kube.DEPLOYMENTS, deployment, [*operations, *unannotate_ops(deployment, ours)])
        return Progress.ok(f"{ref} set back from {scaled_to} to {original} replicas")
    if carries_key(deployment, ctx.key):
        await patch_read(ctx, kube.DEPLOYMENTS, deployment, unannotate_ops(deployment, ours))
    return Progress.ok(f"{ref} has its original {original} replicas")
