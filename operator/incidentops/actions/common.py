"""What the workload actions share: their targets, the GitOps guard, annotations, writes under a precondition.

Where it sits: under ``rollback.py``, ``maintenance.py``, ``quarantine.py`` and ``scale.py``, on
``incidentops.kube``'s generic access. Objects are the API server's JSON (dicts), as ``kube`` returns them.

The rules every workload action follows here:

- A write is a JSON patch whose first operation tests the resourceVersion the plan read
  (:func:`patch_read`); a failed test or a 409 raises :class:`~incidentops.actions.base.Conflict`, and the
  runner plans again on a fresh read.
- Every object an action changes carries the action's key and incident (:func:`stamp`), written by the
  same patch as the change itself, so the key on an object proves the change happened.
- Objects Argo CD or Flux manage are left alone unless the policy allows it (:func:`gitops_manager`):
  their controllers would put back what the action changed.
- Undo data and what verify needs go into ``Planned.undo`` as compact JSON texts (:func:`dump`) and are
  read back from the record alone (:func:`recorded`): the request may be gone from spec and policy.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from incidentops import kube
from incidentops.actions.base import (
    INCIDENT_ANNOTATION,
    KEY_ANNOTATION,
    Conflict,
    Context,
    Executed,
    Planned,
    Progress,
    Skip,
)
from incidentops.api import reasons
from incidentops.api.common import LabelSelector
from incidentops.api.incident import PlannedChange
from incidentops.domain.common import clip

__all__ = [
    "CHANGES_LIMIT",
    "DEFAULT_PROGRESS_DEADLINE",
    "DEPLOYMENTS_UNDO",
    "PROGRESS_DEADLINE_GRACE",
    "UNDO_TEXT_LIMIT",
    "Change",
    "EachDeployment",
    "Found",
    "Obj",
    "Ref",
    "all_carry_key",
    "annotate_ops",
    "annotations_of",
    "carries_key",
    "caught_up",
    "combined",
    "condition",
    "deployments_for",
    "dump",
    "gitops_guard",
    "gitops_manager",
    "is_ready_pod",
    "labels_of",
    "named_targets",
    "patch_read",
    "plan_of",
    "progress_window",
    "recorded",
    "selector_matches",
    "skip_all",
    "stamp",
    "target_selectors",
    "unannotate_ops",
    "undo_decision",
    "write_all",
]

Obj = dict[str, Any]

UNDO_TEXT_LIMIT: Final = 4096
"""The longest text one entry of ``status.actions[].undo`` holds (the CRD's bound)."""
CHANGES_LIMIT: Final = 16
"""The most changes ``status.actions[].changes`` holds (the CRD's bound)."""

DEPLOYMENTS_UNDO: Final = "deployments"
"""The key of ``Planned.undo`` of an action on Deployments: each one changed, as verify and undo need it."""

DEFAULT_PROGRESS_DEADLINE: Final = 600
"""Seconds: the API server's default ``progressDeadlineSeconds`` of a Deployment."""
PROGRESS_DEADLINE_GRACE: Final = datetime.timedelta(seconds=30)
"""Verification of a Deployment lasts this much longer than its progress deadline, so that its own condition
(``ProgressDeadlineExceeded``, with its message) is what fails a stuck rollout, rather than a time-out."""

# Argo CD and Flux mark what they manage; their controllers put back what anyone else changes.
_GITOPS_ANNOTATIONS: Final = {
    "argocd.argoproj.io/tracking-id": "Argo CD",  # annotation tracking (Argo CD's default since 3.0)
}
_GITOPS_LABELS: Final = {
    "argocd.argoproj.io/instance": "Argo CD",  # the instance label Argo CD's docs recommend setting
    "kustomize.toolkit.fluxcd.io/name": "Flux (Kustomization)",
    "helm.toolkit.fluxcd.io/name": "Flux (HelmRelease)",
}
# Argo CD's label tracking (its default before 3.0) uses the well-known instance label, which Helm charts set
# too; a Helm release carries its own annotation, so the label alone on an object Helm did not install is
# taken for Argo CD's: when in doubt, the action is not taken.
_ARGO_LEGACY_LABEL: Final = "app.kubernetes.io/instance"
_HELM_RELEASE_ANNOTATION: Final = "meta.helm.sh/release-name"
# Flux leaves an object alone that says so: it no longer reverts changes to it.
_FLUX_RECONCILE_ANNOTATIONS: Final = ("kustomize.toolkit.fluxcd.io/reconcile", "helm.toolkit.fluxcd.io/reconcile")


@dataclass(frozen=True, order=True)
class Ref:
    """An object as people name it: ``Deployment shop/cart``."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any], kind: str | None = None) -> Ref:
        meta = obj.get("metadata") or {}
        return cls(kind or str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name")))

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def path(self) -> str:
        """Where the object's files go in the evidence: ``Kind/namespace/name``."""
        return f"{self.kind}/{self.namespace}/{self.name}"


# --- reading objects ------------------------------------------------------------------------------


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def carries_key(obj: Mapping[str, Any], key: str) -> bool:
    """Whether ``obj`` was changed by the action of this key (the key is written with the change)."""
    return annotations_of(obj).get(KEY_ANNOTATION) == key


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of type ``kind`` ({} when there is none)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == kind), {})


def caught_up(obj: Mapping[str, Any]) -> bool:
    """Whether the object's controller has seen its latest spec (``status.observedGeneration``)."""
    observed = (obj.get("status") or {}).get("observedGeneration") or 0
    return bool(observed >= ((obj.get("metadata") or {}).get("generation") or 0))


def is_ready_pod(pod: Mapping[str, Any]) -> bool:
    """Running, Ready and not being deleted: a Pod that can take traffic."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return condition(pod, "Ready").get("status") == "True"


def selector_matches(selector: Mapping[str, Any], pod_labels: Mapping[str, str]) -> bool:
    """Whether a ``metav1.LabelSelector`` (as JSON) selects ``pod_labels``; an empty one selects everything."""
    return LabelSelector.model_validate(dict(selector)).matches(dict(pod_labels))


# --- the GitOps guard -----------------------------------------------------------------------------


def gitops_manager(obj: Mapping[str, Any]) -> str | None:
    """Who reverts changes to ``obj`` (Argo CD, Flux), and by which mark; None when no GitOps tool does."""
    notes, marks = annotations_of(obj), labels_of(obj)
    if any(notes.get(flag) == "disabled" for flag in _FLUX_RECONCILE_ANNOTATIONS):
        return None
    for key, tool in _GITOPS_ANNOTATIONS.items():
        if key in notes:
            return f"{tool} (annotation {key})"
    for key, tool in _GITOPS_LABELS.items():
        if key in marks:
            return f"{tool} (label {key}={marks[key]})"
    if _ARGO_LEGACY_LABEL in marks and _HELM_RELEASE_ANNOTATION not in notes:
        return f"Argo CD's label tracking, it seems (label {_ARGO_LEGACY_LABEL}={marks[_ARGO_LEGACY_LABEL]})"
    return None


def gitops_guard(ctx: Context, obj: Mapping[str, Any], ref: Ref) -> Skip | None:
    """A Skip when GitOps manages ``obj`` and the policy does not allow acting on such objects."""
    manager = gitops_manager(obj)
    allowed = ctx.policy is not None and ctx.policy.spec.guards.allow_git_ops_managed
    if manager is None or allowed:
        return None
    return Skip(
        reasons.GITOPS_MANAGED,
        f"{ref} is managed by {manager}, which would revert the change; "
        "change it in Git, or set the policy's guards.allowGitOpsManaged",
    )


# --- targets ---------------------------------------------------------------------------------------


def target_selectors(ctx: Context, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The incident's selector targets of ``kind`` (a selector target's kind defaults to Pod), as
    ``(namespace, selector JSON)``."""
    out = []
    for target in ctx.incident.spec.targets:
        if target.selector is not None and (target.kind or "Pod").lower() == kind.lower():
            selector = target.selector.model_dump(by_alias=True, exclude_none=True)
            out.append((target.namespace or ctx.namespace, selector))
    return out


def named_targets(ctx: Context, kind: str) -> list[tuple[str, str]]:
    """The incident's targets of ``kind`` named one by one, as ``(namespace, name)``."""
    return [
        (target.namespace or ctx.namespace, target.name)
        for target in ctx.incident.spec.targets
        if target.name is not None and (target.kind or "").lower() == kind.lower()
    ]


@dataclass(frozen=True)
class Found:
    """The objects an action acts on, and the names that were asked for but do not exist."""

    objects: list[Obj]
    missing: list[Ref]


async def deployments_for(ctx: Context, name: str | None) -> Found | Skip:
    """The Deployments an action acts on: ``name`` in the incident's namespace, else each Deployment among
    the incident's targets (by name, or by selector)."""
    named = [(ctx.namespace, name)] if name else named_targets(ctx, "Deployment")
    selectors = [] if name else target_selectors(ctx, "Deployment")
    if not named and not selectors:
        return Skip(reasons.NO_TARGET, "no Deployment named: neither the action nor the incident's targets name one")
    found: dict[Ref, Obj] = {}
    missing: list[Ref] = []
    for namespace, deployment in named:
        obj = await kube.get_object(ctx.api, kube.DEPLOYMENTS, namespace, deployment)
        ref = Ref("Deployment", namespace, deployment)
        if obj is None:
            missing.append(ref)
        else:
            found[ref] = obj
    for namespace, selector in selectors:
        if not selector:
            continue  # an empty selector selects everything: never a target by itself
        text = kube.label_selector(selector)
        for obj in await kube.list_of(ctx.api, kube.DEPLOYMENTS, namespace, label_selector=text):
            found.setdefault(Ref.of(obj, "Deployment"), obj)
    if not found:
        names = ", ".join(str(ref) for ref in missing) or "no Deployment matches the incident's target selectors"
        return Skip(reasons.TARGET_NOT_FOUND, f"not found: {names}")
    return Found([found[ref] for ref in sorted(found)], missing)


def progress_window(deployments: Iterable[Mapping[str, Any]]) -> datetime.timedelta:
    """How long verifying a change to these Deployments may take: their longest progress deadline, and grace."""
    deadline = max(
        ((d.get("spec") or {}).get("progressDeadlineSeconds") or DEFAULT_PROGRESS_DEADLINE for d in deployments),
        default=DEFAULT_PROGRESS_DEADLINE,
    )
    return datetime.timedelta(seconds=deadline) + PROGRESS_DEADLINE_GRACE


def skip_all(skips: Sequence[Skip]) -> Skip:
    """One Skip for an action none of whose objects needs the change: the first reason, every message."""
    return Skip(skips[0].reason, clip("; ".join(skip.message for skip in skips)))


# --- writing ----------------------------------------------------------------------------------------


def stamp(ctx: Context) -> dict[str, str]:
    """The annotations every changed object carries: the action's key and the incident."""
    return {KEY_ANNOTATION: ctx.key, INCIDENT_ANNOTATION: ctx.incident_ref}


def annotate_ops(obj: Mapping[str, Any], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """JSON patch operations that set ``values`` among ``obj``'s annotations, keeping the others."""
    if not annotations_of(obj):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(values)}]
    return [
        {"op": "add", "path": kube.json_pointer("metadata", "annotations", key), "value": value}
        for key, value in values.items()
    ]


def unannotate_ops(obj: Mapping[str, Any], keys: Iterable[str]) -> list[dict[str, Any]]:
    """JSON patch operations that remove ``keys`` from ``obj``'s annotations (the map itself when nothing
    else is left, as it was before they were added)."""
    present = annotations_of(obj)
    gone = [key for key in keys if key in present]
    if not gone:
        return []
    if set(gone) == set(present):
        return [{"op": "remove", "path": "/metadata/annotations"}]
    return [{"op": "remove", "path": kube.json_pointer("metadata", "annotations", key)} for key in gone]


async def patch_read(
    ctx: Context, kind: kube.Kind, obj: Mapping[str, Any], operations: Sequence[Mapping[str, Any]]
) -> Obj:
    """Apply ``operations`` to ``obj`` only if it is still as it was read (its resourceVersion): a failed
    precondition raises :class:`Conflict`, so the runner plans again."""
    meta = obj["metadata"]
    namespace, name, version = meta.get("namespace"), meta["name"], meta["resourceVersion"]
    ref = Ref.of(obj, kind.kind)
    try:
        return await kube.json_patch(ctx.api, kind, namespace, name, [kube.test_resource_version(version), *operations])
    except kube.ApiError as exc:
        if not kube.precondition_failed(exc):
            raise
        if exc.status == 409:
            raise Conflict(f"{ref} changed since it was read") from exc
        # A patch that did not apply: the test failed if the object changed; if it did not, the patch is
        # wrong for the very object it was made from, which is a bug to show, not a race to retry.
        now = await kube.get_object(ctx.api, kind, namespace, name)
        if now is None or now["metadata"]["resourceVersion"] != version:
            raise Conflict(f"{ref} changed since it was read") from exc
        raise


# --- changes of several objects in one action -----------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One object's change as planned: the read it was planned on (the write's precondition), the patch
    (None: this action made the change already), what the record keeps of it and what people are told."""

    ref: Ref
    obj: Obj
    operations: list[dict[str, Any]] | None
    summary: str
    entry: dict[str, Any]
    """What verify and undo need of it (an item of the record's undo data)."""
    planned: PlannedChange
    warnings: tuple[str, ...] = ()


def plan_of(
    found: Found,
    outcomes: Sequence[Change | Skip],
    *,
    undo_key: str,
    done_reason: str,
    verify_within: datetime.timedelta,
) -> Planned | Skip:
    """The plan of an action over several objects: their changes in one Planned, the objects skipped named
    in its warnings; a Skip when nothing is left to write (every object skipped, or changed by this very
    action already, so that a second plan changes nothing)."""
    changes = [outcome for outcome in outcomes if isinstance(outcome, Change)]
    skips = [outcome for outcome in outcomes if isinstance(outcome, Skip)]
    if all(change.operations is None for change in changes):
        return skip_all([Skip(done_reason, change.summary) for change in changes] + skips)
    undo = dump([change.entry for change in changes])
    if len(changes) > CHANGES_LIMIT or len(undo) > UNDO_TEXT_LIMIT:
        return Skip(
            reasons.TOO_MANY_TARGETS,
            f"{len(changes)} objects to change: more than one action's record holds; name fewer targets",
        )
    warnings = [f"{ref} not found" for ref in found.missing]
    warnings += [warning for change in changes for warning in change.warnings]
    warnings += [f"skipped: {skip.message}" for skip in skips]
    return Planned(
        target=", ".join(str(change.ref) for change in changes),
        summary=clip("; ".join(change.summary for change in changes)),
        changes=tuple(change.planned for change in changes),
        undo={undo_key: undo},
        verify_within=verify_within,
        warnings=tuple(clip(warning) for warning in warnings),
        state=changes,
    )


async def write_all(ctx: Context, kind: kube.Kind, changes: Sequence[Change]) -> Executed:
    """Write each planned change, under the resourceVersion of the read it was planned on; an object that
    carries this action's key already is not written again (execute twice changes nothing)."""
    done: list[str] = []
    for change in changes:
        fresh = await kube.get_object(ctx.api, kind, change.ref.namespace, change.ref.name)
        if fresh is None:
            done.append(f"{change.ref} is gone")
            continue
        if change.operations is None or carries_key(fresh, ctx.key):
            done.append(f"{change.ref}: done by this action already")
            continue
        await patch_read(ctx, kind, change.obj, change.operations)
        done.append(change.summary)
    return Executed(clip("; ".join(done)))


async def all_carry_key(ctx: Context, kind: kube.Kind, entries: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every recorded object (``namespace``, ``name``) carries this action's key."""
    for entry in entries:
        obj = await kube.get_object(ctx.api, kind, entry["namespace"], entry["name"])
        if obj is None or not carries_key(obj, ctx.key):
            return False
    return bool(entries)


def undo_decision(current: Any, original: Any, changed_to: Any, ours: bool) -> str:
    """What an undo does with an object: ``done`` (it has its original value back), ``restore`` (it still
    has exactly the value this action gave it, and its key) or ``leave`` (someone changed it since: it is
    theirs now)."""
    if current == original:
        return "done"
    if current == changed_to and ours:
        return "restore"
    return "leave"


def combined(looks: Sequence[Progress], reason: str) -> Progress:
    """One look over several objects: failed if any failed (with its reason, else ``reason``), done when all
    are, waiting otherwise."""
    failed = [look for look in looks if look.failed]
    if failed:
        return Progress.failure(failed[0].reason or reason, clip("; ".join(look.message for look in failed)))
    message = clip("; ".join(look.message for look in looks))
    if looks and all(look.done for look in looks):
        return Progress.ok(message)
    return Progress.waiting(message or "nothing recorded to look at")


class EachDeployment:
    """The steps of an action that changes each Deployment it targets in the same way (rollback, scale):
    one :class:`Change` per Deployment in one plan, their entries under :data:`DEPLOYMENTS_UNDO`, each
    written and verified on its own. A module says how to plan and verify one Deployment."""

    done_reason: str
    """The Skip reason of a second plan that finds every Deployment changed by this action already."""
    failure_reason: str
    """The reason of a failed verification whose look names none."""

    def deployment_name(self, ctx: Context) -> str | None:
        """The Deployment the request names; None: the incident's targets."""
        raise NotImplementedError

    async def plan_one(self, ctx: Context, deployment: Obj) -> Change | Skip:
        raise NotImplementedError

    async def verify_one(self, ctx: Context, entry: Mapping[str, Any]) -> Progress:
        raise NotImplementedError

    async def plan(self, ctx: Context) -> Planned | Skip:
        found = await deployments_for(ctx, self.deployment_name(ctx))
        if isinstance(found, Skip):
            return found
        outcomes = [await self.plan_one(ctx, deployment) for deployment in found.objects]
        return plan_of(
            found,
            outcomes,
            undo_key=DEPLOYMENTS_UNDO,
            done_reason=self.done_reason,
            verify_within=progress_window(outcome.obj for outcome in outcomes if isinstance(outcome, Change)),
        )

    async def applied(self, ctx: Context) -> bool:
        return await all_carry_key(ctx, kube.DEPLOYMENTS, recorded(ctx, DEPLOYMENTS_UNDO) or [])

    async def execute(self, ctx: Context, planned: Planned) -> Executed:
        return await write_all(ctx, kube.DEPLOYMENTS, planned.state)

    async def verify(self, ctx: Context) -> Progress:
        looks = [await self.verify_one(ctx, entry) for entry in recorded(ctx, DEPLOYMENTS_UNDO) or []]
        return combined(looks, self.failure_reason)


# --- the record --------------------------------------------------------------------------------------


def dump(value: Any) -> str:
    """Compact JSON, as undo data is recorded (keys in their order: a selector comes back as it was)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def recorded(ctx: Context, name: str) -> Any:
    """The undo data ``name`` of the record (what plan put into ``Planned.undo``), parsed; None when absent."""
    text = (ctx.record.undo or {}).get(name)
    return None if text is None else json.loads(text)
