"""Rollback: a Deployment back to an earlier ReplicaSet revision, exactly as ``kubectl rollout undo`` does.

Where it sits: an action module (``incidentops.actions.base``), run by the action runner after the evidence
snapshot the domain puts first. It reads the Deployment and the ReplicaSets it controls, and changes only
the Deployment: its ``spec.template`` and ``metadata.annotations``, in one JSON patch under the
resourceVersion it planned on. The Deployment controller then reuses the ReplicaSet of that template and
gives it the next revision number (revision 1 of 2 comes back as revision 3).

The rules, kubectl's and ours:

- The target is ``toRevision``, else the highest revision below the current one, among the ReplicaSets
  whose controller is the Deployment (``deployment.kubernetes.io/revision``).
- Its template loses the ``pod-template-hash`` label; the annotations are rebuilt as kubectl rebuilds
  them (the Deployment keeps its own last-applied, revision, revision-history, desired/max-replicas and
  rollbackTo; everything else comes from the ReplicaSet), plus a ``kubernetes.io/change-cause`` naming the
  incident, the action's key and incident, and the template hash rolled back to (:data:`ROLLED_BACK_TO`).
- Skipped, with a reason: Argo CD or Flux manage it (unless the policy allows it), it is paused, the
  template already is the target's, an incidentops rollback put the current template in (rolling back
  again would deploy what it rolled back from), the target revision is gone, or with ``ifChangedWithin``
  the current revision was created outside that window before the incident started (the rollout was not
  the cause; after the start, it may be someone's fix). Several Deployments are several changes in one
  action; the ones skipped are named in the plan's warnings.
- Only the template comes back: the plan warns when ConfigMaps the target template uses changed since
  that revision was created (their metadata is read, never their data), and names the Secrets it uses as
  not checked (Secrets are never read).
- Verified when the new ReplicaSet is available (kubectl's ``rollout status``), within the Deployment's
  ``progressDeadlineSeconds``; its own ``ProgressDeadlineExceeded`` is the failure, in its own words.
- Never undone: that would deploy the bad version again.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from incidentops import kube
from incidentops.actions.base import INCIDENT_ANNOTATION, KEY_ANNOTATION, Context, Progress, Skip
from incidentops.actions.common import (
    Change,
    EachDeployment,
    Obj,
    Ref,
    annotations_of,
    carries_key,
    caught_up,
    condition,
    gitops_guard,
    stamp,
)
from incidentops.api import reasons
from incidentops.api.common import GROUP, format_duration, parse_duration
from incidentops.api.incident import ActionType, PlannedChange, RollbackAction
from incidentops.domain.common import clip, utc

__all__ = [
    "CHANGE_CAUSE",
    "ROLLED_BACK_TO",
    "Rollback",
    "choose_revision",
    "config_references",
    "current_replica_set",
    "rollback_annotations",
    "rollout_progress",
    "same_template",
    "when_changed",
    "without_hash",
]

REVISION: Final = "deployment.kubernetes.io/revision"
TEMPLATE_HASH: Final = "pod-template-hash"
CHANGE_CAUSE: Final = "kubernetes.io/change-cause"
ROLLED_BACK_TO: Final = f"{GROUP}/rolled-back-to"
"""On a Deployment an incidentops rollback changed: the ``pod-template-hash`` of the template it restored."""

# kubectl's annotationsToSkip: the Deployment keeps its own values of these, the rest comes from the ReplicaSet.
KEPT_FROM_DEPLOYMENT: Final = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)
# --- decisions on JSON, no cluster --------------------------------------------------------------


def revision_of(obj: Mapping[str, Any]) -> int | None:
    """The ``deployment.kubernetes.io/revision`` of a Deployment or ReplicaSet; None when unset or not a number."""
    value = annotations_of(obj).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def controlled_by(replica_set: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment is the ReplicaSet's controller (its ownerReference with ``controller: true``)."""
    uid = deployment["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in replica_set["metadata"].get("ownerReferences") or []
    )


def choose_revision(replica_sets: Iterable[Mapping[str, Any]], current: int | None, to_revision: int | None) -> Any:
    """The ReplicaSet to roll back to: the one of ``to_revision``, else the highest revision below
    ``current`` (below the highest there is, when the Deployment names none); None when there is none."""
    numbered = [(revision_of(rs), rs) for rs in replica_sets]
    known = [(number, rs) for number, rs in numbered if number is not None]
    if to_revision is not None:
        return next((rs for number, rs in known if number == to_revision), None)
    ceiling = current if current is not None else max((number for number, _ in known), default=None)
    earlier = [(number, rs) for number, rs in known if ceiling is not None and number < ceiling]
    return max(earlier, key=lambda pair: pair[0])[1] if earlier else None


def without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    """A Pod template without the ``pod-template-hash`` label the controller puts on a ReplicaSet's."""
    out = copy.deepcopy(dict(template))
    out.get("metadata", {}).get("labels", {}).pop(TEMPLATE_HASH, None)
    return out


def _normalized(value: Any) -> Any:
    # As the API machinery's semantic equality: an empty (or null) map or list is the same as none.
    if isinstance(value, Mapping):
        items = {key: _normalized(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two Pod templates are the same but for ``pod-template-hash`` (kubectl's EqualIgnoreHash)."""
    return bool(_normalized(without_hash(a)) == _normalized(without_hash(b)))


def current_replica_set(deployment: Mapping[str, Any], replica_sets: Iterable[Mapping[str, Any]]) -> Any:
    """The ReplicaSet of the Deployment's template as it is now (the controller's new ReplicaSet); None
    before the controller has made it."""
    template = deployment["spec"]["template"]
    matching = [rs for rs in replica_sets if same_template(rs["spec"]["template"], template)]
    # Two ReplicaSets of one template happen only in races; the controller takes the oldest.
    return min(matching, key=lambda rs: rs["metadata"].get("creationTimestamp") or "", default=None)


def rollback_annotations(
    deployment_annotations: Mapping[str, str], replica_set_annotations: Mapping[str, str], ours: Mapping[str, str]
) -> dict[str, str]:
    """The Deployment's annotations after the rollback: kubectl's rebuild, then ``ours``."""
    out = {key: deployment_annotations[key] for key in KEPT_FROM_DEPLOYMENT if key in deployment_annotations}
    out.update({key: value for key, value in replica_set_annotations.items() if key not in KEPT_FROM_DEPLOYMENT})
    out.update(ours)
    return out


def when_changed(
    changed_at: datetime.datetime, started_at: datetime.datetime, within: datetime.timedelta
) -> str | None:
    """Why a change at ``changed_at`` did not cause an incident that started at ``started_at``: too long
    before it (``NotChangedRecently``), or after it (``ChangedAfterStart``); None when within ``within``
    before the start."""
    changed, started = utc(changed_at), utc(started_at)
    if changed > started:
        return reasons.CHANGED_AFTER_START
    if started - changed > within:
        return reasons.NOT_CHANGED_RECENTLY
    return None


@dataclass(frozen=True)
class ConfigReferences:
    """What a Pod template reads its configuration from, by name."""

    config_maps: tuple[str, ...]
    secrets: tuple[str, ...]


def config_references(template: Mapping[str, Any]) -> ConfigReferences:
    """The ConfigMaps and Secrets a Pod template uses: env ``valueFrom``, ``envFrom``, volumes and projected
    volumes, of every container and init container."""
    spec = template.get("spec") or {}
    config_maps: list[str] = []
    secrets: list[str] = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            config_maps.append((source.get("configMapKeyRef") or {}).get("name", ""))
            secrets.append((source.get("secretKeyRef") or {}).get("name", ""))
        for env_from in container.get("envFrom") or []:
            config_maps.append((env_from.get("configMapRef") or {}).get("name", ""))
            secrets.append((env_from.get("secretRef") or {}).get("name", ""))
    for volume in spec.get("volumes") or []:
        config_maps.append((volume.get("configMap") or {}).get("name", ""))
        secrets.append((volume.get("secret") or {}).get("secretName", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            config_maps.append((source.get("configMap") or {}).get("name", ""))
            secrets.append((source.get("secret") or {}).get("name", ""))
    return ConfigReferences(
        tuple(sorted({name for name in config_maps if name})), tuple(sorted({name for name in secrets if name}))
    )


def _timestamp(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text else None


def last_changed(metadata: Mapping[str, Any]) -> datetime.datetime | None:
    """When an object last changed, from its metadata: the latest ``managedFields[].time``, else its creation."""
    times = [_timestamp(entry.get("time")) for entry in metadata.get("managedFields") or []]
    times.append(_timestamp(metadata.get("creationTimestamp")))
    known = [time for time in times if time is not None]
    return max(known) if known else None


def images(template: Mapping[str, Any]) -> str:
    """The template's containers and images, for people: ``web=registry/web:2``."""
    containers = (template.get("spec") or {}).get("containers") or []
    return ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers)


def rollout_progress(deployment: Mapping[str, Any]) -> Progress:
    """Where a Deployment's rollout is, as ``kubectl rollout status`` judges it: done when the new
    ReplicaSet is available, failed when the Deployment says its progress deadline passed."""
    ref = Ref.of(deployment, "Deployment")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if not caught_up(deployment):
        return Progress.waiting(f"{ref}: the controller has not seen the rollback yet")
    progressing = condition(deployment, "Progressing")
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        message = progressing.get("message") or "progress deadline exceeded"
        return Progress.failure(reasons.ROLLBACK_FAILED, f"{ref}: {message}")
    wanted = spec.get("replicas", 1)
    updated, replicas, available = (status.get(k) or 0 for k in ("updatedReplicas", "replicas", "availableReplicas"))
    if updated == replicas == available == wanted and progressing.get("reason") == "NewReplicaSetAvailable":
        return Progress.ok(f"{ref}: {available}/{wanted} replicas of the rolled-back template available")
    return Progress.waiting(f"{ref}: {updated}/{wanted} replicas updated, {available} available, {replicas} in all")


# --- the action -------------------------------------------------------------------------------------


class Rollback(EachDeployment):
    """Roll Deployments back to an earlier revision (see the module doc)."""

    type = ActionType.ROLLBACK
    done_reason = reasons.ALREADY_AT_REVISION
    failure_reason = reasons.ROLLBACK_FAILED

    def deployment_name(self, ctx: Context) -> str | None:
        return _request(ctx).deployment

    async def plan_one(self, ctx: Context, deployment: Obj) -> Change | Skip:
        return await _plan_one(ctx, _request(ctx), deployment)

    async def verify_one(self, ctx: Context, entry: Mapping[str, Any]) -> Progress:
        return await _verify_one(ctx, entry)

    async def undo(self, ctx: Context) -> Progress:
        return Progress.failure(
            reasons.UNDO_SKIPPED,
            "a rollback is not undone: that would deploy again the version it rolled back from "
            "(roll forward through your usual deployment)",
        )


def _request(ctx: Context) -> RollbackAction:
    if ctx.template is None or ctx.template.rollback is None:
        raise ValueError("a rollback is planned from its request (ctx.template.rollback)")
    return ctx.template.rollback


async def _plan_one(ctx: Context, request: RollbackAction, deployment: Obj) -> Change | Skip:
    """One Deployment's rollback, or why not (the checks in the module doc's order)."""
    ref = Ref.of(deployment, "Deployment")
    replica_sets = await _replica_sets(ctx, deployment)
    current_rs = current_replica_set(deployment, replica_sets)
    current = revision_of(deployment)
    earlier = _after_incidentops_rollback(ctx, request, ref, deployment, current_rs)
    if earlier is not None:
        return earlier
    refusal = gitops_guard(ctx, deployment, ref) or _paused(deployment, ref)
    if refusal is None and request.if_changed_within is not None:
        refusal = _not_the_cause(ctx, ref, current_rs, parse_duration(request.if_changed_within))
    if refusal is not None:
        return refusal
    target = choose_revision(replica_sets, current, request.to_revision)
    if target is None:
        wanted = f"revision {request.to_revision}" if request.to_revision else "an earlier revision"
        return Skip(
            reasons.REVISION_NOT_FOUND,
            f"{ref} has no ReplicaSet of {wanted} (current revision {current}; "
            "older ones are gone past revisionHistoryLimit)",
        )
    if same_template(target["spec"]["template"], deployment["spec"]["template"]):
        return Skip(
            reasons.ALREADY_AT_REVISION, f"{ref}: the current template already matches revision {revision_of(target)}"
        )
    return await _rollback_to(ctx, ref, deployment, target)


def _after_incidentops_rollback(
    ctx: Context, request: RollbackAction, ref: Ref, deployment: Obj, current_rs: Mapping[str, Any] | None
) -> Change | Skip | None:
    """When the current template is one an incidentops rollback restored: this action's (nothing to write),
    or another's (rolling back again would deploy what it replaced, unless a toRevision says where to)."""
    notes = annotations_of(deployment)
    if current_rs is None or KEY_ANNOTATION not in notes or notes.get(ROLLED_BACK_TO) != _hash(current_rs):
        return None
    current = revision_of(deployment)
    if carries_key(deployment, ctx.key):
        return Change(
            ref,
            deployment,
            None,
            f"{ref} runs the template this action rolled it back to (now revision {current})",
            _entry(ref, _hash(current_rs), current, current),
            PlannedChange(object=str(ref), field="spec.template", new=f"revision {current} (rolled back)"),
        )
    if request.to_revision is not None:
        return None
    return Skip(
        reasons.ALREADY_ROLLED_BACK,
        f"{ref} runs the template an incidentops rollback restored (incident {notes.get(INCIDENT_ANNOTATION)}); "
        "rolling back again would deploy what that rollback replaced (name a toRevision to go further back)",
    )


async def _rollback_to(ctx: Context, ref: Ref, deployment: Obj, target: Mapping[str, Any]) -> Change:
    """The patch that rolls ``deployment`` back to the template of ``target``, as kubectl builds it."""
    current, target_revision = revision_of(deployment), revision_of(target)
    template = without_hash(target["spec"]["template"])
    cause = f"incidentops: rolled back to revision {target_revision} for incident {ctx.incident_ref}"
    cause += f" (action {ctx.record.name})"
    ours = {**stamp(ctx), CHANGE_CAUSE: cause, ROLLED_BACK_TO: _hash(target)}
    new_annotations = rollback_annotations(annotations_of(deployment), annotations_of(target), ours)
    operations = [
        {"op": "replace", "path": "/spec/template", "value": template},
        # `add` replaces the map when there is one, and works when there is none.
        {"op": "add", "path": "/metadata/annotations", "value": new_annotations},
    ]
    return Change(
        ref,
        deployment,
        operations,
        f"roll back {ref} from revision {current} to revision {target_revision}",
        _entry(ref, _hash(target), current, target_revision),
        PlannedChange(
            object=str(ref),
            field="spec.template",
            old=clip(f"revision {current}: {images(deployment['spec']['template'])}"),
            new=clip(f"revision {target_revision}: {images(template)}"),
        ),
        tuple(await _config_warnings(ctx, ref, target, target_revision)),
    )


def _hash(replica_set: Mapping[str, Any]) -> str:
    return str(((replica_set["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(TEMPLATE_HASH, ""))


def _entry(ref: Ref, template_hash: str, from_revision: int | None, to_revision: int | None) -> dict[str, Any]:
    return {
        "namespace": ref.namespace,
        "name": ref.name,
        "fromRevision": from_revision,
        "toRevision": to_revision,
        "templateHash": template_hash,
    }


def _paused(deployment: Mapping[str, Any], ref: Ref) -> Skip | None:
    if deployment["spec"].get("paused"):
        return Skip(reasons.DEPLOYMENT_PAUSED, f"{ref} is paused (kubectl rollout resume it first)")
    return None


def _not_the_cause(
    ctx: Context, ref: Ref, current_rs: Mapping[str, Any] | None, within: datetime.timedelta
) -> Skip | None:
    """A Skip when the current revision was created outside ``within`` before the incident started."""
    started = ctx.incident.status.started_at or ctx.incident.metadata.creation_timestamp or ctx.now
    changed = _timestamp(((current_rs or {}).get("metadata") or {}).get("creationTimestamp"))
    if changed is None:
        return None  # the controller has not made the current ReplicaSet yet: it is as recent as can be
    why = when_changed(changed, started, within)
    if why == reasons.CHANGED_AFTER_START:
        return Skip(
            why,
            f"{ref}'s current revision was created at {changed.isoformat()}, after the incident started "
            f"({utc(started).isoformat()}): not its cause, perhaps someone's fix",
        )
    if why == reasons.NOT_CHANGED_RECENTLY:
        return Skip(
            why,
            f"{ref} last changed at {changed.isoformat()}, more than {format_duration(within)} before the "
            f"incident started ({utc(started).isoformat()}): the rollout was not the cause",
        )
    return None


async def _replica_sets(ctx: Context, deployment: Mapping[str, Any]) -> list[Obj]:
    """The ReplicaSets the Deployment controls (kubectl's way: by its selector, then the controller reference)."""
    selector = kube.label_selector(deployment["spec"].get("selector") or {})
    if not selector:
        return []
    namespace = deployment["metadata"]["namespace"]
    listed = await kube.list_of(ctx.api, kube.REPLICASETS, namespace, label_selector=selector)
    return [rs for rs in listed if controlled_by(rs, deployment)]


async def _config_warnings(ctx: Context, ref: Ref, target: Mapping[str, Any], revision: int | None) -> list[str]:
    """What the rollback does not bring back: ConfigMaps changed since the target revision was created
    (their metadata is read, never their data), and Secrets (never read at all)."""
    namespace = ref.namespace
    created = _timestamp(target["metadata"].get("creationTimestamp"))
    used = config_references(target["spec"]["template"])
    warnings: list[str] = []
    for name in used.config_maps:
        metadata = await kube.get_metadata(ctx.api, kube.CONFIGMAPS, namespace, name)
        if metadata is None:
            warnings.append(f"ConfigMap {namespace}/{name}, which revision {revision} uses, does not exist")
            continue
        changed = last_changed(metadata.get("metadata") or {})
        if changed is not None and created is not None and changed > created:
            warnings.append(
                f"ConfigMap {namespace}/{name} changed at {changed.isoformat()}, after revision {revision} was "
                f"created ({created.isoformat()}): the rollback restores {ref}'s Pod template, not the ConfigMap"
            )
    if used.secrets:
        warnings.append(
            f"Secrets {', '.join(f'{namespace}/{name}' for name in used.secrets)}, which revision {revision} uses: "
            "not checked (incidentops does not read Secrets); the rollback does not restore them"
        )
    return warnings


async def _verify_one(ctx: Context, entry: Mapping[str, Any]) -> Progress:
    ref = Ref("Deployment", entry["namespace"], entry["name"])
    deployment = await kube.get_object(ctx.api, kube.DEPLOYMENTS, ref.namespace, ref.name)
    if deployment is None:
        return Progress.failure(reasons.ROLLBACK_FAILED, f"{ref} is gone")
    current_rs = current_replica_set(deployment, await _replica_sets(ctx, deployment))
    if current_rs is not None and _hash(current_rs) != entry["templateHash"]:
        return Progress.failure(
            reasons.TARGET_CHANGED, f"{ref} changed since the rollback: it no longer runs the rolled-back template"
        )
    progress = rollout_progress(deployment)
    if progress.done and current_rs is not None:
        return Progress.ok(f"{progress.message} (now revision {revision_of(current_rs)})")
    return progress
