"""Maintenance: a Service's traffic (or an Ingress's) switched to a maintenance backend, and back.

Where it sits: an action module (``incidentops.actions.base``), run by the action runner; undone when the
incident resolves (the domain's ``undo_due``) or when a person asks. It changes one object in the incident's
namespace: a Service's ``spec.selector``, or an Ingress's backends.

The rules (the prior art's trap is a merged selector, which sends traffic to both or to nothing):

- A Service's selector is *replaced* by the maintenance selector (a JSON patch ``replace`` of
  ``/spec/selector``), never merged. The original is kept in the record's undo data and in an annotation
  on the Service (:data:`ORIGINAL`), and undo puts it back exactly as it was.
- An Ingress's every backend (each rule's paths, and the default backend if it has one) is replaced by the
  maintenance Service and port; a default backend is never added (on some controllers an Ingress's default
  backend catches the traffic of every host). The original rules and default backend are kept as for a
  Service.
- Never switch traffic to nothing: refused (``BackendNotReady``) when no ready Pod matches the maintenance
  selector, or the maintenance Service of an Ingress has no ready endpoint or no such port. Also refused:
  Argo CD or Flux manage the object (unless the policy allows it: they would switch it back), a Service
  without a selector (its endpoints are not chosen by labels), an original too large for the record.
- Verified when the Service's EndpointSlices list only the maintenance Pods, all ready (for an Ingress: the
  maintenance Service has a ready endpoint). If that has not happened by shortly before the record's
  ``verifyBy``, verify switches back by itself and fails (safe when wrong): the runner's time-out must not
  leave traffic on a backend that never took it.
- Undo restores only while the object still carries this action's change (its selector or backends and
  its key); someone else's later change is left as it is (``UndoSkipped``). An object that has its
  original back already is done, so a second undo changes nothing.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Final

from incidentops import kube
from incidentops.actions.base import INCIDENT_ANNOTATION, KEY_ANNOTATION, Context, Executed, Planned, Progress, Skip
from incidentops.actions.common import (
    UNDO_TEXT_LIMIT,
    Change,
    Obj,
    Ref,
    annotate_ops,
    carries_key,
    dump,
    gitops_guard,
    is_ready_pod,
    patch_read,
    recorded,
    stamp,
    unannotate_ops,
    undo_decision,
    write_all,
)
from incidentops.api import reasons
from incidentops.api.common import GROUP
from incidentops.api.incident import ActionType, MaintenanceAction, PlannedChange
from incidentops.domain.common import clip

__all__ = [
    "ORIGINAL",
    "Maintenance",
    "endpoints_check",
    "ingress_backends",
    "ingress_restore_ops",
    "ingress_switch_ops",
    "maintenance_backends",
    "service_restore_ops",
    "service_switch_ops",
]

ORIGINAL: Final = f"{GROUP}/maintenance-original"
"""On the switched Service or Ingress: its original selector (or rules and default backend), as JSON."""
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
"""The label that ties an EndpointSlice to its Service."""
VERIFY_WITHIN: Final = datetime.timedelta(seconds=90)
"""How long the EndpointSlice controller may take to list the maintenance Pods."""
SWITCH_BACK_MARGIN: Final = datetime.timedelta(seconds=15)
"""Verify switches back this long before the record's ``verifyBy``, so it is still asked when it does."""
_OURS: Final = (KEY_ANNOTATION, INCIDENT_ANNOTATION, ORIGINAL)

# The record's undo data: which object, what it had, what this action gave it.
TARGET_UNDO: Final = "target"
ORIGINAL_UNDO: Final = "original"
MAINTENANCE_UNDO: Final = "maintenance"


# --- decisions on JSON, no cluster --------------------------------------------------------------


def service_switch_ops(service: Mapping[str, Any], selector: Mapping[str, str], ours: Mapping[str, str]) -> list[Any]:
    """The JSON patch (after the resourceVersion test) that switches a Service to ``selector``: the selector
    replaced whole, the original kept in :data:`ORIGINAL`, ``ours`` (the key, the incident) stamped."""
    original = service["spec"]["selector"]
    return [
        {"op": "replace", "path": "/spec/selector", "value": dict(selector)},
        *annotate_ops(service, {**ours, ORIGINAL: dump(original)}),
    ]


def service_restore_ops(service: Mapping[str, Any], original: Mapping[str, str]) -> list[Any]:
    """The JSON patch that puts a switched Service back: its original selector, none of our annotations."""
    return [{"op": "replace", "path": "/spec/selector", "value": dict(original)}, *unannotate_ops(service, _OURS)]


def ingress_backends(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What maintenance changes of an Ingress, and keeps to restore: its rules and default backend."""
    return {field: copy.deepcopy(spec[field]) for field in ("rules", "defaultBackend") if field in spec}


def maintenance_backends(original: Mapping[str, Any], service: str, port: int) -> dict[str, Any]:
    """The rules and default backend of :func:`ingress_backends` with every backend replaced by
    ``service:port`` (hosts, paths and path types kept; a default backend only where there was one)."""
    backend = {"service": {"name": service, "port": {"number": port}}}
    out = copy.deepcopy(dict(original))
    for rule in out.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            path["backend"] = copy.deepcopy(backend)
    if "defaultBackend" in out:
        out["defaultBackend"] = copy.deepcopy(backend)
    return out


def _backend_ops(backends: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": f"/spec/{field}", "value": value} for field, value in backends.items()]


def ingress_switch_ops(ingress: Mapping[str, Any], service: str, port: int, ours: Mapping[str, str]) -> list[Any]:
    """The JSON patch that sends every backend of an Ingress to ``service:port``, the original kept."""
    original = ingress_backends(ingress["spec"])
    return [
        *_backend_ops(maintenance_backends(original, service, port)),
        *annotate_ops(ingress, {**ours, ORIGINAL: dump(original)}),
    ]


def ingress_restore_ops(ingress: Mapping[str, Any], original: Mapping[str, Any]) -> list[Any]:
    """The JSON patch that puts an Ingress's original rules and default backend back."""
    return [*_backend_ops(original), *unannotate_ops(ingress, _OURS)]


def _endpoints(slices: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [endpoint for piece in slices for endpoint in piece.get("endpoints") or []]


def _ready(endpoint: Mapping[str, Any]) -> bool:
    # EndpointSlice: an unset `ready` is unknown, which consumers are to take as ready.
    return (endpoint.get("conditions") or {}).get("ready") is not False


def endpoints_check(slices: Sequence[Mapping[str, Any]], pod_uids: set[str]) -> tuple[bool, str]:
    """Whether the EndpointSlices of a Service list only the Pods of ``pod_uids``, every one ready, and at
    least one; and what they list, for people."""
    endpoints = _endpoints(slices)
    others = [e for e in endpoints if (e.get("targetRef") or {}).get("uid") not in pod_uids]
    not_ready = [e for e in endpoints if not _ready(e)]
    if endpoints and not others and not not_ready:
        return True, f"{len(endpoints)} ready endpoint(s), all maintenance Pods"
    return False, (
        f"{len(endpoints)} endpoint(s): {len(others)} not maintenance Pods, {len(not_ready)} not ready"
        if endpoints
        else "no endpoints yet"
    )


# --- the action -------------------------------------------------------------------------------------


class Maintenance:
    """Switch a Service or an Ingress to a maintenance backend (see the module doc)."""

    type = ActionType.MAINTENANCE

    async def plan(self, ctx: Context) -> Planned | Skip:
        request = _request(ctx)
        if request.service is not None:
            return await _plan_service(ctx, request.service, dict(request.backend.selector or {}))
        assert request.ingress is not None and request.backend.service is not None  # the model's validation
        return await _plan_ingress(ctx, request.ingress, request.backend.service.name, request.backend.service.port)

    async def applied(self, ctx: Context) -> bool:
        target = recorded(ctx, TARGET_UNDO)
        if target is None:
            return False
        obj = await kube.get_object(ctx.api, _kind(target["kind"]), target["namespace"], target["name"])
        return obj is not None and carries_key(obj, ctx.key)

    async def execute(self, ctx: Context, planned: Planned) -> Executed:
        changes: list[Change] = planned.state
        return await write_all(ctx, _kind(changes[0].ref.kind), changes)

    async def verify(self, ctx: Context) -> Progress:
        target, switched = recorded(ctx, TARGET_UNDO), recorded(ctx, MAINTENANCE_UNDO)
        kind = _kind(target["kind"])
        ref = Ref(kind.kind, target["namespace"], target["name"])
        obj = await kube.get_object(ctx.api, kind, ref.namespace, ref.name)
        if obj is None or not carries_key(obj, ctx.key) or _switchable_part(kind, obj) != switched:
            return Progress.failure(
                reasons.TARGET_CHANGED,
                f"{ref} changed since the switch (not by this action): it is theirs now, left as it is",
            )
        if kind is kube.SERVICES:
            took, seen = await _service_took_traffic(ctx, obj, switched)
        else:
            took, seen = await _backend_service_ready(ctx, ref.namespace, target["backend"])
        if took:
            return Progress.ok(f"{ref} sends its traffic to the maintenance backend: {seen}")
        deadline = _switch_back_at(ctx)
        if deadline is None or ctx.now < deadline:
            return Progress.waiting(f"{ref}: {seen}")
        back = await self.undo(ctx)
        return Progress.failure(
            reasons.MAINTENANCE_FAILED,
            clip(f"the maintenance backend did not take {ref}'s traffic ({seen}); switched back: {back.message}"),
        )

    async def undo(self, ctx: Context) -> Progress:
        target = recorded(ctx, TARGET_UNDO)
        original, switched = recorded(ctx, ORIGINAL_UNDO), recorded(ctx, MAINTENANCE_UNDO)
        kind = _kind(target["kind"])
        ref = Ref(kind.kind, target["namespace"], target["name"])
        obj = await kube.get_object(ctx.api, kind, ref.namespace, ref.name)
        if obj is None:
            return Progress.failure(reasons.UNDO_SKIPPED, f"{ref} is gone: nothing to switch back")
        decision = undo_decision(_switchable_part(kind, obj), original, switched, carries_key(obj, ctx.key))
        if decision == "leave":
            return Progress.failure(
                reasons.UNDO_SKIPPED, f"{ref} changed since the switch (not by this action): left as it is"
            )
        if decision == "restore":
            restore = service_restore_ops if kind is kube.SERVICES else ingress_restore_ops
            await patch_read(ctx, kind, obj, restore(obj, original))
            return Progress.ok(f"{ref} switched back to its original {_what(kind)}")
        if carries_key(obj, ctx.key):
            await patch_read(ctx, kind, obj, unannotate_ops(obj, _OURS))
        return Progress.ok(f"{ref} has its original {_what(kind)}")


def _request(ctx: Context) -> MaintenanceAction:
    if ctx.template is None or ctx.template.maintenance is None:
        raise ValueError("maintenance is planned from its request (ctx.template.maintenance)")
    return ctx.template.maintenance


def _kind(name: str) -> kube.Kind:
    return kube.SERVICES if name == "Service" else kube.INGRESSES


def _what(kind: kube.Kind) -> str:
    return "selector" if kind is kube.SERVICES else "backends"


def _switchable_part(kind: kube.Kind, obj: Mapping[str, Any]) -> Any:
    """What maintenance changes of the object: a Service's selector, an Ingress's backends."""
    spec = obj.get("spec") or {}
    return spec.get("selector") if kind is kube.SERVICES else ingress_backends(spec)


def _switch_back_at(ctx: Context) -> datetime.datetime | None:
    """When verify stops waiting and switches back: shortly before the runner would give up."""
    if ctx.record.verify_by is not None:
        return ctx.record.verify_by - SWITCH_BACK_MARGIN
    if ctx.record.started_at is not None:
        return ctx.record.started_at + VERIFY_WITHIN - SWITCH_BACK_MARGIN
    return None


def _planned(
    kind: kube.Kind, obj: Obj, operations: list[Any], original: Any, switched: Any, extra: Mapping[str, Any]
) -> Planned | Skip:
    ref = Ref.of(obj, kind.kind)
    undo = {
        TARGET_UNDO: dump({"kind": kind.kind, "namespace": ref.namespace, "name": ref.name, **extra}),
        ORIGINAL_UNDO: dump(original),
        MAINTENANCE_UNDO: dump(switched),
    }
    if any(len(text) > UNDO_TEXT_LIMIT for text in undo.values()):
        return Skip(
            reasons.UNDO_DATA_TOO_LARGE,
            f"{ref}'s original {_what(kind)} is too large for the record ({UNDO_TEXT_LIMIT} characters): "
            "not switched, as it could not be switched back",
        )
    summary = f"switch {ref} to the maintenance backend"
    field = "spec.selector" if kind is kube.SERVICES else "spec.rules, spec.defaultBackend"
    change = PlannedChange(object=str(ref), field=field, old=clip(dump(original)), new=clip(dump(switched)))
    entry = {"namespace": ref.namespace, "name": ref.name}
    return Planned(
        target=str(ref),
        summary=summary,
        changes=(change,),
        undo=undo,
        verify_within=VERIFY_WITHIN,
        state=[Change(ref, obj, operations, summary, entry, change)],
    )


async def _switchable(ctx: Context, kind: kube.Kind, name: str) -> Obj | Skip:
    """The Service or Ingress to switch, or why not: not there, switched by this action already, GitOps."""
    ref = Ref(kind.kind, ctx.namespace, name)
    obj = await kube.get_object(ctx.api, kind, ctx.namespace, name)
    if obj is None:
        return Skip(reasons.TARGET_NOT_FOUND, f"{ref} not found")
    if carries_key(obj, ctx.key):
        return Skip(reasons.ALREADY_DONE, f"{ref} was switched to the maintenance backend by this action already")
    return gitops_guard(ctx, obj, ref) or obj


async def _plan_service(ctx: Context, name: str, selector: dict[str, str]) -> Planned | Skip:
    ref = Ref("Service", ctx.namespace, name)
    service = await _switchable(ctx, kube.SERVICES, name)
    if isinstance(service, Skip):
        return service
    original = (service.get("spec") or {}).get("selector")
    if not original:
        return Skip(
            reasons.UNSUPPORTED_TARGET,
            f"{ref} has no selector (its endpoints are not chosen by Pod labels): nothing to switch",
        )
    if original == selector:
        return Skip(reasons.NOTHING_TO_DO, f"{ref} selects the maintenance Pods already")
    pods = await kube.list_of(ctx.api, kube.PODS, ctx.namespace, label_selector=_text(selector))
    ready = [pod for pod in pods if is_ready_pod(pod)]
    if not ready:
        return Skip(
            reasons.BACKEND_NOT_READY,
            f"no ready Pod matches the maintenance selector {_text(selector)} ({len(pods)} Pod(s) match): "
            f"{ref} keeps its traffic",
        )
    operations = service_switch_ops(service, selector, stamp(ctx))
    return _planned(kube.SERVICES, service, operations, original, selector, {})


async def _plan_ingress(ctx: Context, name: str, backend_service: str, port: int) -> Planned | Skip:
    ref = Ref("Ingress", ctx.namespace, name)
    ingress = await _switchable(ctx, kube.INGRESSES, name)
    if isinstance(ingress, Skip):
        return ingress
    original = ingress_backends(ingress["spec"])
    switched = maintenance_backends(original, backend_service, port)
    if not _has_backends(original):
        return Skip(reasons.UNSUPPORTED_TARGET, f"{ref} has no backend (no rule with paths, no default backend)")
    if switched == original:
        return Skip(reasons.NOTHING_TO_DO, f"{ref} sends all its traffic to the maintenance Service already")
    backend = {"service": backend_service, "port": port}
    took, seen = await _backend_service_ready(ctx, ctx.namespace, backend)
    if not took:
        return Skip(reasons.BACKEND_NOT_READY, f"{seen}: {ref} keeps its traffic")
    operations = ingress_switch_ops(ingress, backend_service, port, stamp(ctx))
    return _planned(kube.INGRESSES, ingress, operations, original, switched, {"backend": backend})


def _has_backends(backends: Mapping[str, Any]) -> bool:
    paths = [path for rule in backends.get("rules") or [] for path in (rule.get("http") or {}).get("paths") or []]
    return bool(paths) or "defaultBackend" in backends


def _text(selector: Mapping[str, str]) -> str:
    return kube.label_selector({"matchLabels": dict(selector)})


async def _service_took_traffic(
    ctx: Context, service: Mapping[str, Any], selector: Mapping[str, str]
) -> tuple[bool, str]:
    namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
    pods = await kube.list_of(ctx.api, kube.PODS, namespace, label_selector=_text(selector))
    slices = await kube.list_of(ctx.api, kube.ENDPOINTSLICES, namespace, label_selector=f"{SERVICE_NAME_LABEL}={name}")
    return endpoints_check(slices, {pod["metadata"]["uid"] for pod in pods})


async def _backend_service_ready(ctx: Context, namespace: str, backend: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether an Ingress's maintenance Service exists, has the port, and a ready endpoint."""
    ref = Ref("Service", namespace, backend["service"])
    service = await kube.get_object(ctx.api, kube.SERVICES, namespace, backend["service"])
    if service is None:
        return False, f"the maintenance {ref} does not exist"
    if backend["port"] not in {port.get("port") for port in service["spec"].get("ports") or []}:
        return False, f"the maintenance {ref} has no port {backend['port']}"
    slices = await kube.list_of(
        ctx.api, kube.ENDPOINTSLICES, namespace, label_selector=f"{SERVICE_NAME_LABEL}={backend['service']}"
    )
    ready = [endpoint for endpoint in _endpoints(slices) if _ready(endpoint)]
    if not ready:
        return False, f"the maintenance {ref} has no ready endpoint"
    return True, f"the maintenance {ref} has {len(ready)} ready endpoint(s)"
