"""Collecting evidence: what a snapshot reads, in which order, and how each item is named.

Where it sits: ``snapshot.py`` calls :func:`resolve` to plan (which objects a snapshot covers) and
:func:`collect` to execute; ``archive.py`` then stores the items. Every read goes through
``incidentops.kube``; every item passes through ``redact.py`` before it exists, so nothing unredacted is
hashed or stored. Secret objects are never read: only the kinds in :data:`KINDS` are, and a target of
any other kind is noted, not followed.

The order, because Events expire an hour after they were last seen:

1. the Events of the incident's namespace and of every other namespace a target names, read first and
   all at once; they become ``events/namespace.json`` (the incident's namespace, the newest
   :data:`MAX_EVENTS`) and ``events/<Kind>/<namespace>/<name>.json`` for each object below with any;
2. the manifests of the targets (``spec.targets``: named objects, or what a selector picks, in the
   incident's namespace unless the target names another), of their owners up the controller chain
   (a Pod -> its ReplicaSet -> its Deployment) and of their Pods, ``managedFields`` dropped:
   ``manifests/<Kind>/<namespace>/<name>.json``;
3. each Deployment's rollout history, its ReplicaSets' revisions and templates:
   ``history/Deployment/<namespace>/<name>.json``;
4. the Pods' logs, current and (for a container that restarted) previous, since ``sinceSeconds``:
   ``logs/<namespace>/<pod>/<container>.current.log`` and ``.previous.log``;
5. the alert data the incident holds (``spec.source``, ``status.alerts``): ``incident/alerts.json``;
6. ``snapshot.json``: what was asked, what was found, and what was not collected and why.

A read the API refuses (a Pod's log on a node that does not answer, an object gone or forbidden) becomes
an item of its own, ``<the item's name>.error.json``, with the API's answer, and the snapshot goes on;
a failure to reach the API server at all is raised (the runner tries again later).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from incidentops import kube
from incidentops.actions import redact
from incidentops.actions.archive import Item
from incidentops.actions.common import Ref
from incidentops.api.incident import Incident, SnapshotAction

__all__ = [
    "KINDS",
    "LOG_BUDGET",
    "LOG_LIMIT_BYTES",
    "MAX_EVENTS",
    "MAX_PODS",
    "Ref",
    "Scope",
    "collect",
    "resolve",
]

Body = dict[str, Any]

KINDS: Final[Mapping[str, kube.Kind]] = {
    k.kind: k for k in (kube.PODS, kube.REPLICASETS, kube.DEPLOYMENTS, kube.STATEFULSETS, kube.SERVICES)
}
"""The kinds evidence reads (and the chart's ClusterRole lets it read): workloads, their Pods, Services."""

MAX_EVENTS: Final = 1000
"""``events/namespace.json`` keeps the newest this many (an object's own Events are all kept)."""

MAX_PODS: Final = 20
"""Pods whose manifests and logs are collected, at most: those a target names, then by namespace and name."""

MAX_OWNER_DEPTH: Final = 4

LOG_LIMIT_BYTES: Final = 1024 * 1024
"""One log, at most (the kubelet's ``limitBytes``), of its newest :data:`LOG_TAIL_LINES` lines."""

LOG_TAIL_LINES: Final = 10_000

LOG_BUDGET: Final = 16 * 1024 * 1024
"""All logs of a snapshot, at most; logs past it are noted, not read."""


@dataclass
class Scope:
    """What a snapshot covers: the objects read (the targets, their Pods, then the owners of both), the
    Pods whose logs are read, the reads the API refused (by item name), and what was not followed and why."""

    objects: dict[Ref, Body] = field(default_factory=dict)
    targets: list[Ref] = field(default_factory=list)
    pods: list[Ref] = field(default_factory=list)
    errors: dict[str, Body] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, body: Body) -> Ref:
        ref = Ref.of(body)
        self.objects.setdefault(ref, body)
        return ref


def _api_answer(exc: BaseException) -> Body:
    """What the API said, for an ``.error.json`` item (redacted like everything else)."""
    if isinstance(exc, kube.ApiError):
        status = kube.api_status(exc)
        return {
            "status": exc.status,
            "reason": status.get("reason") or exc.reason,
            "message": kube.server_message(exc),
        }
    return {"error": kube.describe(exc)}


def _refused(exc: BaseException) -> bool:
    """A refusal to record (and go on), rather than the API server being unreachable or overloaded."""
    return isinstance(exc, kube.ApiError) and kube.error_kind(exc) is kube.ErrorKind.PERMANENT


def _selector(selector: Mapping[str, Any]) -> str:
    """A ``metav1.LabelSelector`` as the API's ``labelSelector`` query (empty: everything)."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(expr.get("values") or [])
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": str(key)}.get(
                str(op), f"!{key}"
            )
        )
    return ",".join(terms)


async def _get(api: kube.ApiClient, scope: Scope, ref: Ref) -> Body | None:
    try:
        body = await kube.get_object(api, KINDS[ref.kind], ref.namespace, ref.name)
    except kube.ApiError as exc:
        if not _refused(exc):
            raise
        scope.errors[f"manifests/{ref.path}"] = _api_answer(exc)
        return None
    if body is None:
        scope.notes.append(f"{ref} does not exist")
        return None
    body.setdefault("kind", ref.kind)
    return body


async def _list(
    api: kube.ApiClient, scope: Scope, kind: kube.Kind, namespace: str, selector: str, item: str
) -> list[Body]:
    """The objects ``selector`` picks; a refusal is recorded as the item ``item`` would have been."""
    try:
        return await kube.list_of(api, kind, namespace, label_selector=selector or None)
    except kube.ApiError as exc:
        if not _refused(exc):
            raise
        scope.errors[item] = _api_answer(exc)
        return []


async def _owners(api: kube.ApiClient, scope: Scope, body: Body) -> None:
    """The controller chain above ``body`` (a Pod -> ReplicaSet -> Deployment), in its namespace."""
    for _ in range(MAX_OWNER_DEPTH):
        meta = body.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
        if owner is None:
            return
        ref = Ref(str(owner.get("kind")), str(meta.get("namespace") or ""), str(owner.get("name")))
        if ref in scope.objects:
            return
        if ref.kind not in KINDS:
            note = f"owner {ref} not collected: evidence does not read {ref.kind}"
            if note not in scope.notes:
                scope.notes.append(note)
            return
        found = await _get(api, scope, ref)
        if found is None:
            return
        scope.add(found)
        body = found


def _pod_selector(body: Body) -> str | None:
    """The Pods of a workload or a Service, as a label selector; None: it has no Pods of its own."""
    kind, spec = body.get("kind"), body.get("spec") or {}
    if kind == "Service":
        return _selector({"matchLabels": spec["selector"]}) if spec.get("selector") else None
    if kind in ("ReplicaSet", "Deployment", "StatefulSet") and spec.get("selector"):
        return _selector(spec["selector"])
    return None


def _namespaces(incident: Incident) -> list[str]:
    """The incident's namespace and every other one its targets name, in that order."""
    own = incident.metadata.namespace or ""
    return list(dict.fromkeys([own, *(t.namespace or own for t in incident.spec.targets)]))


async def resolve(api: kube.ApiClient, incident: Incident) -> Scope:
    """The objects a snapshot of ``incident`` covers (its targets, their owners and Pods), read now."""
    scope = Scope()
    own = incident.metadata.namespace or ""
    for index, target in enumerate(incident.spec.targets):
        namespace = target.namespace or own
        kind = target.kind or "Pod"
        if kind not in KINDS:
            never = " (Secrets are never read)" if kind == "Secret" else ""
            scope.notes.append(f"target {kind} {namespace}/{target.name or '<selector>'} not collected{never}")
            continue
        if target.name is not None:
            found = await _get(api, scope, Ref(kind, namespace, target.name))
            bodies = [found] if found is not None else []
        else:
            selector = _selector(target.selector.to_dict() if target.selector else {})
            bodies = await _list(api, scope, KINDS[kind], namespace, selector, f"targets/{index}")
            if not bodies:
                scope.notes.append(f"target {kind} in {namespace} selected by {selector!r}: none found")
        for body in bodies:
            ref = scope.add(body)
            if ref not in scope.targets:
                scope.targets.append(ref)
    # The Pods of the workloads and Services among the targets; Pods a target names come first.
    named = [r for r in scope.targets if r.kind == "Pod"]
    selected: dict[Ref, Body] = {}
    for ref in list(scope.targets):
        pod_selector = _pod_selector(scope.objects[ref])
        if pod_selector is not None:
            for pod in await _list(api, scope, kube.PODS, ref.namespace, pod_selector, f"manifests/{ref.path}.pods"):
                pod.setdefault("kind", "Pod")
                selected.setdefault(Ref.of(pod), pod)
    pods = named + sorted(r for r in selected if r not in named)
    scope.pods = pods[:MAX_PODS]
    if len(pods) > MAX_PODS:
        skipped = ", ".join(str(r) for r in pods[MAX_PODS:])
        scope.notes.append(f"{len(pods) - MAX_PODS} Pod(s) past the first {MAX_PODS} not collected: {skipped}")
    for ref in scope.pods:
        if ref in selected:
            scope.add(selected[ref])
    for ref in [*scope.targets, *scope.pods]:
        await _owners(api, scope, scope.objects[ref])
    return scope


# --- items ------------------------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return (json.dumps(redact.redact_object(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _without_managed_fields(body: Body) -> Body:
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**body, "metadata": meta}


def _event_time(event: Body) -> str:
    meta = event.get("metadata") or {}
    return str(event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or "")


def _about(event: Body, ref: Ref, uid: str | None) -> bool:
    involved = event.get("involvedObject") or {}
    if uid and involved.get("uid"):
        return bool(involved.get("uid") == uid)
    return (involved.get("kind"), involved.get("namespace"), involved.get("name")) == (
        ref.kind,
        ref.namespace,
        ref.name,
    )


async def _read_events(api: kube.ApiClient, namespaces: Sequence[str]) -> dict[str, list[Body] | Body]:
    """Each namespace's Events, oldest first, or the API's answer when it refused."""
    out: dict[str, list[Body] | Body] = {}
    for namespace in namespaces:
        try:
            events = await kube.list_of(api, kube.EVENTS, namespace)
        except kube.ApiError as exc:
            if not _refused(exc):
                raise
            out[namespace] = _api_answer(exc)
            continue
        out[namespace] = sorted((_without_managed_fields(e) for e in events), key=_event_time)
    return out


def _event_items(own: str, read: Mapping[str, list[Body] | Body], scope: Scope) -> list[Item]:
    items: list[Item] = []
    for namespace, events in read.items():
        if isinstance(events, dict):
            name = "events/namespace" if namespace == own else f"events/namespace/{namespace}"
            items.append(Item(f"{name}.error.json", _json(events)))
        elif namespace == own:
            items.append(Item("events/namespace.json", _json(events[-MAX_EVENTS:])))
    for ref, body in scope.objects.items():
        in_namespace = read.get(ref.namespace)
        if not isinstance(in_namespace, list):
            continue
        uid = (body.get("metadata") or {}).get("uid")
        mine = [e for e in in_namespace if _about(e, ref, uid)]
        if mine:
            items.append(Item(f"events/{ref.path}.json", _json(mine)))
    return items


def _history(deployment: Body, replica_sets: Iterable[Body]) -> Body:
    uid = (deployment.get("metadata") or {}).get("uid")
    revisions = []
    for rs in replica_sets:
        meta = rs.get("metadata") or {}
        if not any(o.get("uid") == uid for o in meta.get("ownerReferences") or []):
            continue
        annotations = meta.get("annotations") or {}
        revision = str(annotations.get("deployment.kubernetes.io/revision"))
        revisions.append(
            {
                "revision": int(revision) if revision.isdigit() else revision,
                "replicaSet": meta.get("name"),
                "createdAt": meta.get("creationTimestamp"),
                "changeCause": annotations.get("kubernetes.io/change-cause"),
                "replicas": (rs.get("status") or {}).get("replicas", 0),
                "template": (rs.get("spec") or {}).get("template"),
            }
        )
    revisions.sort(key=lambda r: (not isinstance(r["revision"], int), r["revision"] or 0))
    meta = deployment.get("metadata") or {}
    current = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    return {"deployment": meta.get("name"), "currentRevision": current, "revisions": revisions}


def _containers(pod: Body) -> list[tuple[str, bool]]:
    """Each container of the Pod (init containers first) and whether it restarted (has a previous log)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = {
        s.get("name"): s
        for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    }
    out = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        s = statuses.get(container.get("name")) or {}
        restarted = bool(s.get("restartCount")) or bool((s.get("lastState") or {}).get("terminated"))
        out.append((str(container.get("name")), restarted))
    return out


def _log_text(data: bytes) -> bytes:
    # surrogateescape keeps bytes that are not UTF-8 exactly as they were wherever nothing is redacted.
    text = data.decode("utf-8", errors="surrogateescape")
    return redact.redact_text(text).encode("utf-8", errors="surrogateescape")


async def _log_items(api: kube.ApiClient, scope: Scope, since_seconds: int, notes: list[str]) -> list[Item]:
    items: list[Item] = []
    budget = LOG_BUDGET
    for ref in scope.pods:
        for container, restarted in _containers(scope.objects[ref]):
            for previous in (False, True) if restarted else (False,):
                name = f"logs/{ref.namespace}/{ref.name}/{container}.{'previous' if previous else 'current'}"
                if budget <= 0:
                    notes.append(f"{name}.log not read: the snapshot's {LOG_BUDGET} bytes of logs are used up")
                    continue
                limit = min(LOG_LIMIT_BYTES, budget)
                try:
                    data = await kube.read_pod_log(
                        api,
                        ref.namespace,
                        ref.name,
                        container,
                        previous=previous,
                        since_seconds=since_seconds,
                        tail_lines=LOG_TAIL_LINES,
                        limit_bytes=limit,
                    )
                except (kube.ApiError, TimeoutError) as exc:
                    # A node that does not answer, a container that never ran: on record, and on we go.
                    items.append(Item(f"{name}.error.json", _json(_api_answer(exc))))
                    continue
                budget -= len(data)
                if len(data) >= limit:
                    notes.append(f"{name}.log: cut at {limit} bytes")
                items.append(Item(f"{name}.log", _log_text(data)))
    return items


async def collect(
    api: kube.ApiClient,
    incident: Incident,
    request: SnapshotAction,
    *,
    action: str,
    now: datetime.datetime,
) -> list[Item]:
    """Everything a snapshot of ``incident`` holds, redacted, in the order of the module doc."""
    own = incident.metadata.namespace or ""
    events = await _read_events(api, _namespaces(incident)) if request.events else {}
    scope = await resolve(api, incident)
    items: list[Item] = _event_items(own, events, scope) if request.events else []
    notes = list(scope.notes)
    if request.manifests:
        for ref, body in scope.objects.items():
            items.append(Item(f"manifests/{ref.path}.json", _json(_without_managed_fields(body))))
        for ref, body in list(scope.objects.items()):
            if ref.kind != "Deployment" or (selector := _pod_selector(body)) is None:
                continue
            history = f"history/{ref.path}"
            replica_sets = await _list(api, scope, kube.REPLICASETS, ref.namespace, selector, history)
            if history not in scope.errors:
                items.append(Item(f"{history}.json", _json(_history(body, replica_sets))))
    # What the API refused while finding the objects, whatever was asked: it says what is missing.
    for name, answer in scope.errors.items():
        items.append(Item(f"{name}.error.json", _json(answer)))
    if request.logs:
        items += await _log_items(api, scope, request.since_seconds, notes)
    status = incident.status.alerts.to_dict() if incident.status.alerts else None
    source = incident.spec.source.to_dict() if incident.spec.source else None
    items.append(Item("incident/alerts.json", _json({"source": source, "alerts": status})))
    index = {
        "incident": f"{own}/{incident.metadata.name}",
        "action": action,
        "startedAt": now.isoformat(),
        "requested": request.to_dict(),
        "targets": [t.to_dict() for t in incident.spec.targets],
        "objects": [str(r) for r in scope.objects],
        "pods": [str(r) for r in scope.pods],
        "notes": notes,
        "redaction": redact.RULES_VERSION,
    }
    items.append(Item("snapshot.json", _json(index)))
    return items
