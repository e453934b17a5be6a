"""Quarantine: Pods taken out of their ReplicaSet and Services, isolated, and kept running for analysis.

Where it sits: an action module (``incidentops.actions.base``), run by the action runner after the evidence
snapshot the domain puts before it. Undone only when a person asks (``kubectl incident release``): the
release deletes the quarantined Pods (their ReplicaSet replaced them long ago) and the NetworkPolicy.

The rules:

- The Pods are those of the request's ``selector`` (in the incident's namespace), else the incident's Pod
  targets (by selector or by name). An empty selector (every Pod of the namespace) is refused, and so is
  more than :data:`MAX_PODS` Pods at once (``TooManyTargets``): a typo must not isolate a namespace.
  The Pods are chosen once: a plan of a record that lists Pods already (after a conflict) keeps to them,
  so the replacements of quarantined Pods, which match the same selector, are never taken for suspects.
- First a NetworkPolicy named after the incident (one per incident and namespace, :func:`policy_name`)
  denies all ingress and egress of the Pods labelled :data:`QUARANTINE_LABEL` ``=<incident>``; only then
  are the Pods labelled, so no Pod is out of its Service and still on the network.
- Each Pod gets the quarantine label and loses every label its ReplicaSet's selector and its Services'
  selectors match on (:func:`labels_to_drop`): the ReplicaSet lets go of it and starts a replacement, the
  Services drop it, and it keeps running. One JSON patch per Pod, under the resourceVersion planned on;
  the labels dropped and the ReplicaSet left are kept in annotations on the Pod, for people.
- Refused per Pod (named in the plan's warnings; the whole action when no Pod is left): Pods of a
  controller other than a ReplicaSet (a StatefulSet's replacement would need the same name), and Pods whose
  selectors cannot be made not to match by removing labels.
- Verified when no EndpointSlice of the namespace lists a quarantined Pod, the NetworkPolicy exists, and
  each ReplicaSet they left has its ready replicas back.
- The release deletes only Pods that still carry this action's key, with their uid as precondition, and
  a NetworkPolicy only when no other quarantined Pod of the incident is left in its namespace.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from incidentops import kube
from incidentops.actions.base import Context, Executed, Planned, Progress, Skip
from incidentops.actions.common import (
    UNDO_TEXT_LIMIT,
    Change,
    Obj,
    Ref,
    annotate_ops,
    carries_key,
    dump,
    labels_of,
    named_targets,
    recorded,
    selector_matches,
    skip_all,
    stamp,
    target_selectors,
    write_all,
)
from incidentops.api import reasons
from incidentops.api.common import GROUP
from incidentops.api.incident import ActionType, PlannedChange, QuarantineAction
from incidentops.domain.common import clip

__all__ = [
    "MAX_PODS",
    "QUARANTINE_LABEL",
    "Quarantine",
    "label_value",
    "labels_to_drop",
    "network_policy",
    "policy_name",
    "quarantine_ops",
]

QUARANTINE_LABEL: Final = f"{GROUP}/quarantine"
"""On a quarantined Pod, with the incident's name: what the NetworkPolicy selects."""
DROPPED_LABELS: Final = f"{GROUP}/quarantine-dropped-labels"
"""On a quarantined Pod: the labels it lost, as JSON (what it was selected by)."""
LEFT_OWNER: Final = f"{GROUP}/quarantined-from"
"""On a quarantined Pod: the ReplicaSet it left."""
MAX_PODS: Final = 8
"""The most Pods one quarantine isolates (and what the ledger's record can list, with their policies)."""
VERIFY_WITHIN: Final = datetime.timedelta(minutes=5)
"""How long replacements may take to be Ready (scheduling, image pulls, readiness probes)."""

PODS_UNDO: Final = "pods"
POLICIES_UNDO: Final = "networkPolicies"
LABEL_UNDO: Final = "label"

_LABEL_VALUE_MAX: Final = 63
_NAME_MAX: Final = 253


# --- decisions on JSON, no cluster --------------------------------------------------------------


def _shortened(text: str, limit: int) -> str:
    """``text`` if it fits ``limit``, else a prefix and a hash of all of it (stable, and still unique)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: limit - len(digest) - 1].rstrip('-.')}-{digest}"


def label_value(incident_name: str) -> str:
    """The quarantine label's value for an incident: its name (a DNS subdomain, so valid label characters),
    shortened to a label value's 63 characters."""
    return _shortened(incident_name, _LABEL_VALUE_MAX)


def policy_name(incident_name: str) -> str:
    """The NetworkPolicy of an incident's quarantine (one per incident and namespace)."""
    return _shortened(f"incidentops-quarantine-{incident_name}", _NAME_MAX)


def network_policy(namespace: str, name: str, label: Mapping[str, str], ours: Mapping[str, str]) -> Obj:
    """A NetworkPolicy that denies all ingress and egress of the Pods with ``label``: both policy types,
    no rule allowing anything."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(label), "annotations": dict(ours)},
        "spec": {"podSelector": {"matchLabels": dict(label)}, "policyTypes": ["Ingress", "Egress"]},
    }


def labels_to_drop(pod_labels: Mapping[str, str], selectors: Iterable[Mapping[str, Any]]) -> set[str] | None:
    """The labels to remove from a Pod so that none of ``selectors`` (``metav1.LabelSelector`` JSON; a
    Service's selector as ``{"matchLabels": ...}``) selects it any more: for each selector that selects it,
    the keys its ``matchLabels`` and its ``In`` / ``Exists`` requirements need. None when a selector that
    selects the Pod needs no label (``NotIn`` / ``DoesNotExist`` only): removing labels cannot free it."""
    drop: set[str] = set()
    for selector in selectors:
        if not selector or not selector_matches(selector, pod_labels):
            continue
        needed = set(selector.get("matchLabels") or {})
        needed |= {r["key"] for r in selector.get("matchExpressions") or [] if r.get("operator") in ("In", "Exists")}
        needed &= set(pod_labels)
        if not needed:
            return None
        drop |= needed
    return drop


def quarantine_ops(
    pod: Mapping[str, Any], drop: Iterable[str], label: Mapping[str, str], notes: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The JSON patch (after the resourceVersion test) that quarantines a Pod: ``drop`` removed, ``label``
    added, ``notes`` (the key, the incident, what it lost) among its annotations."""
    operations: list[dict[str, Any]] = [
        {"op": "remove", "path": kube.json_pointer("metadata", "labels", key)} for key in sorted(drop)
    ]
    if not labels_of(pod):
        operations.append({"op": "add", "path": "/metadata/labels", "value": dict(label)})
    else:
        operations += [
            {"op": "add", "path": kube.json_pointer("metadata", "labels", key), "value": value}
            for key, value in label.items()
        ]
    return [*operations, *annotate_ops(pod, notes)]


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def _in_endpoint_slices(uid: str, slices: Sequence[Mapping[str, Any]]) -> list[str]:
    """The EndpointSlices that list the Pod of ``uid``."""
    return [
        piece["metadata"]["name"]
        for piece in slices
        if any((endpoint.get("targetRef") or {}).get("uid") == uid for endpoint in piece.get("endpoints") or [])
    ]


# --- the action -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    policies: list[Obj]
    pods: list[Change]


class Quarantine:
    """Quarantine Pods (see the module doc)."""

    type = ActionType.QUARANTINE

    async def plan(self, ctx: Context) -> Planned | Skip:
        request = _request(ctx)
        label = {QUARANTINE_LABEL: label_value(ctx.incident.metadata.name or "")}
        pods = await _pods(ctx, request)
        if isinstance(pods, Skip):
            return pods
        outcomes = [await _plan_pod(ctx, pod, label) for pod in pods]
        changes = [outcome for outcome in outcomes if isinstance(outcome, Change)]
        skips = [outcome for outcome in outcomes if isinstance(outcome, Skip)]
        if not changes:
            return skip_all(skips)
        if all(change.operations is None for change in changes):
            return Skip(reasons.ALREADY_DONE, f"{len(changes)} Pod(s) quarantined by this action already")
        return await _planned(ctx, label, changes, skips)

    async def applied(self, ctx: Context) -> bool:
        for policy in recorded(ctx, POLICIES_UNDO) or []:
            if await kube.get_object(ctx.api, kube.NETWORKPOLICIES, policy["namespace"], policy["name"]) is None:
                return False
        for entry in recorded(ctx, PODS_UNDO) or []:
            pod = await kube.get_object(ctx.api, kube.PODS, entry["namespace"], entry["name"])
            if pod is not None and pod["metadata"]["uid"] == entry["uid"] and not carries_key(pod, ctx.key):
                return False
        return bool(recorded(ctx, PODS_UNDO))

    async def execute(self, ctx: Context, planned: Planned) -> Executed:
        state: _State = planned.state
        # Isolation first: no Pod leaves its Service while it can still talk to the network.
        for policy in state.policies:
            await _ensure_policy(ctx, policy)
        written = await write_all(ctx, kube.PODS, state.pods)
        names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in state.policies)
        return Executed(clip(f"NetworkPolicy {names} in place; {written.message}"))

    async def verify(self, ctx: Context) -> Progress:
        for policy in recorded(ctx, POLICIES_UNDO) or []:
            if await kube.get_object(ctx.api, kube.NETWORKPOLICIES, policy["namespace"], policy["name"]) is None:
                ref = Ref("NetworkPolicy", policy["namespace"], policy["name"])
                return Progress.failure(reasons.QUARANTINE_FAILED, f"{ref} is gone: the Pods are not isolated")
        entries = recorded(ctx, PODS_UNDO) or []
        looks = await _pods_out_of_rotation(ctx, entries, recorded(ctx, LABEL_UNDO) or {})
        if isinstance(looks, Progress):
            return looks
        looks += await _replica_sets_back(ctx, entries)
        waiting = [message for done, message in looks if not done]
        if waiting:
            return Progress.waiting(clip("; ".join(waiting)))
        done = [message for _, message in looks]
        return Progress.ok(clip("; ".join(done) + "; the quarantined Pods keep running for analysis"))

    async def undo(self, ctx: Context) -> Progress:
        released: list[str] = []
        left: list[str] = []
        for entry in recorded(ctx, PODS_UNDO) or []:
            ref = Ref("Pod", entry["namespace"], entry["name"])
            pod = await kube.get_object(ctx.api, kube.PODS, ref.namespace, ref.name)
            if pod is None or pod["metadata"]["uid"] != entry["uid"]:
                released.append(f"{ref} is gone")
            elif not carries_key(pod, ctx.key):
                left.append(f"{ref} no longer carries this quarantine: left as it is")
            elif pod["metadata"].get("deletionTimestamp"):
                released.append(f"{ref} is being deleted")
            else:
                released.append(await _delete_pod(ctx, ref, entry["uid"]))
        label = recorded(ctx, LABEL_UNDO) or {}
        for policy in recorded(ctx, POLICIES_UNDO) or []:
            released.append(await _release_policy(ctx, policy, label))
        message = clip("; ".join(left + released))
        if left:
            return Progress.failure(reasons.UNDO_SKIPPED, message)
        return Progress.ok(message)


def _request(ctx: Context) -> QuarantineAction:
    if ctx.template is None or ctx.template.quarantine is None:
        raise ValueError("a quarantine is planned from its request (ctx.template.quarantine)")
    return ctx.template.quarantine


async def _planned(ctx: Context, label: Mapping[str, str], changes: list[Change], skips: list[Skip]) -> Planned | Skip:
    """The plan: the incident's NetworkPolicy in each namespace, then each Pod's relabelling."""
    namespaces = sorted({change.ref.namespace for change in changes})
    name = policy_name(ctx.incident.metadata.name or "")
    policies = [network_policy(namespace, name, label, stamp(ctx)) for namespace in namespaces]
    undo = {
        PODS_UNDO: dump([change.entry for change in changes]),
        POLICIES_UNDO: dump([{"namespace": namespace, "name": name} for namespace in namespaces]),
        LABEL_UNDO: dump(label),
    }
    if len(undo[PODS_UNDO]) > UNDO_TEXT_LIMIT:
        return Skip(reasons.TOO_MANY_TARGETS, "the Pods' names are too long to record: narrow the selector")
    isolation = PlannedChange(
        object=", ".join(f"NetworkPolicy {namespace}/{name}" for namespace in namespaces),
        field="(created)",
        new=f"deny all ingress and egress of Pods labelled {kube.label_selector({'matchLabels': label})}",
    )
    warnings = [warning for change in changes for warning in change.warnings]
    warnings += await _capacity_warnings(ctx, changes)
    warnings += [f"skipped: {skip.message}" for skip in skips]
    return Planned(
        target=", ".join(str(change.ref) for change in changes),
        summary=clip(
            f"quarantine {len(changes)} Pod(s) ({', '.join(c.ref.name for c in changes)}): out of their "
            f"ReplicaSets and Services, isolated by NetworkPolicy {name}"
        ),
        changes=(isolation, *(change.planned for change in changes)),
        undo=undo,
        verify_within=VERIFY_WITHIN,
        warnings=tuple(dict.fromkeys(clip(warning) for warning in warnings)),
        state=_State(policies, changes),
    )


async def _pods(ctx: Context, request: QuarantineAction) -> list[Obj] | Skip:
    """The Pods to quarantine: those a plan of this action recorded already (a plan after a conflict must not
    take the replacements of the Pods it quarantined for more suspects), else the request's or the
    incident's; at most :data:`MAX_PODS`."""
    earlier = recorded(ctx, PODS_UNDO)
    if earlier:
        return await _recorded_pods(ctx, earlier)
    if request.selector is not None:
        selectors = [(ctx.namespace, request.selector.model_dump(by_alias=True, exclude_none=True))]
        named: list[tuple[str, str]] = []
    else:
        selectors, named = target_selectors(ctx, "Pod"), named_targets(ctx, "Pod")
    if not selectors and not named:
        return Skip(reasons.NO_TARGET, "no Pods named: neither the action's selector nor the incident's Pod targets")
    if any(not selector for _, selector in selectors):
        return Skip(reasons.TOO_MANY_TARGETS, "an empty selector selects every Pod of the namespace: refused")
    found: dict[Ref, Obj] = {}
    for namespace, selector in selectors:
        for listed in await kube.list_of(ctx.api, kube.PODS, namespace, label_selector=kube.label_selector(selector)):
            found[Ref.of(listed, "Pod")] = listed
    for namespace, name in named:
        pod = await kube.get_object(ctx.api, kube.PODS, namespace, name)
        if pod is not None:
            found[Ref.of(pod, "Pod")] = pod
    pods = [found[ref] for ref in sorted(found) if not found[ref]["metadata"].get("deletionTimestamp")]
    if not pods:
        return Skip(reasons.TARGET_NOT_FOUND, "no Pod matches the quarantine's selector or the incident's Pod targets")
    if len(pods) > MAX_PODS:
        return Skip(
            reasons.TOO_MANY_TARGETS,
            f"{len(pods)} Pods match; a quarantine isolates at most {MAX_PODS} at once: narrow the selector",
        )
    return pods


async def _recorded_pods(ctx: Context, entries: Sequence[Mapping[str, Any]]) -> list[Obj] | Skip:
    """The recorded Pods that are still there (the same Pod: its uid) and not being deleted."""
    pods = []
    for entry in entries:
        pod = await kube.get_object(ctx.api, kube.PODS, entry["namespace"], entry["name"])
        if pod is not None and pod["metadata"]["uid"] == entry["uid"] and not pod["metadata"].get("deletionTimestamp"):
            pods.append(pod)
    return pods or Skip(reasons.TARGET_NOT_FOUND, "the Pods this quarantine planned on are gone")


async def _plan_pod(ctx: Context, pod: Obj, label: Mapping[str, str]) -> Change | Skip:
    ref = Ref.of(pod, "Pod")
    entry: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name, "uid": pod["metadata"]["uid"]}
    if carries_key(pod, ctx.key):
        entry["owner"] = pod["metadata"].get("annotations", {}).get(LEFT_OWNER, "").removeprefix("ReplicaSet ")
        summary = f"{ref} was quarantined by this action already"
        return Change(ref, pod, None, summary, entry, PlannedChange(object=str(ref), field="metadata.labels"))
    owner = _controller(pod)
    selectors: list[Mapping[str, Any]] = []
    warnings: list[str] = []
    if owner is not None and owner.get("kind") != "ReplicaSet":
        return Skip(
            reasons.UNSUPPORTED_TARGET,
            f"{ref} belongs to {owner.get('kind')} {owner.get('name')}: only Pods of a ReplicaSet, or of none, are "
            "quarantined (a StatefulSet's replacement needs the quarantined Pod's name)",
        )
    if owner is not None:
        replica_set = await kube.get_object(ctx.api, kube.REPLICASETS, ref.namespace, owner["name"])
        if replica_set is not None:
            selectors.append(replica_set["spec"].get("selector") or {})
            entry["owner"] = owner["name"]
    else:
        warnings.append(f"{ref} belongs to no ReplicaSet: nothing replaces it")
    services = await kube.list_of(ctx.api, kube.SERVICES, ref.namespace)
    selectors += [{"matchLabels": s["spec"]["selector"]} for s in services if (s.get("spec") or {}).get("selector")]
    current = labels_of(pod)
    drop = labels_to_drop(current, selectors)
    if drop is None:
        return Skip(
            reasons.UNSUPPORTED_TARGET,
            f"{ref}: a selector picks it by absent labels only; removing labels cannot free it",
        )
    notes = {**stamp(ctx), DROPPED_LABELS: dump({key: current[key] for key in sorted(drop)})}
    if entry.get("owner"):
        notes[LEFT_OWNER] = f"ReplicaSet {entry['owner']}"
    planned = PlannedChange(
        object=str(ref),
        field="metadata.labels",
        old=clip(kube.label_selector({"matchLabels": {key: current[key] for key in sorted(drop)}})),
        new=clip(kube.label_selector({"matchLabels": dict(label)})),
    )
    summary = f"quarantine {ref}"
    return Change(ref, pod, quarantine_ops(pod, drop, label, notes), summary, entry, planned, tuple(warnings))


async def _pods_out_of_rotation(
    ctx: Context, entries: Sequence[Mapping[str, Any]], label: Mapping[str, str]
) -> list[tuple[bool, str]] | Progress:
    """For each quarantined Pod: whether it is out of every EndpointSlice of its namespace; a failure when
    someone took its quarantine label off."""
    looks: list[tuple[bool, str]] = []
    slices: dict[str, list[Obj]] = {}
    for entry in entries:
        ref = Ref("Pod", entry["namespace"], entry["name"])
        pod = await kube.get_object(ctx.api, kube.PODS, ref.namespace, ref.name)
        if pod is None or pod["metadata"]["uid"] != entry["uid"]:
            looks.append((True, f"{ref} is gone"))
            continue
        if any(labels_of(pod).get(key) != value for key, value in label.items()):
            return Progress.failure(reasons.TARGET_CHANGED, f"{ref} lost its quarantine label: released by hand")
        if ref.namespace not in slices:
            slices[ref.namespace] = await kube.list_of(ctx.api, kube.ENDPOINTSLICES, ref.namespace)
        listed = _in_endpoint_slices(entry["uid"], slices[ref.namespace])
        if listed:
            looks.append((False, f"{ref} is still in EndpointSlice {', '.join(listed)}"))
        else:
            looks.append((True, f"{ref} is out of every EndpointSlice"))
    return looks


async def _replica_sets_back(ctx: Context, entries: Sequence[Mapping[str, Any]]) -> list[tuple[bool, str]]:
    """For each ReplicaSet the quarantined Pods left: whether it has its ready replicas back."""
    owners = sorted({Ref("ReplicaSet", e["namespace"], e["owner"]) for e in entries if e.get("owner")})
    looks: list[tuple[bool, str]] = []
    for owner in owners:
        replica_set = await kube.get_object(ctx.api, kube.REPLICASETS, owner.namespace, owner.name)
        if replica_set is None:
            continue  # its Deployment replaced it in the meantime: nothing to wait for
        wanted = (replica_set.get("spec") or {}).get("replicas", 1)
        ready = (replica_set.get("status") or {}).get("readyReplicas") or 0
        if ready < wanted:
            looks.append((False, f"{owner} has {ready}/{wanted} replicas ready"))
        else:
            looks.append((True, f"{owner} has its {wanted} ready replicas back"))
    return looks


async def _capacity_warnings(ctx: Context, changes: Sequence[Change]) -> list[str]:
    """A warning for each ReplicaSet that would have no ready replica left until its replacements are Ready."""
    taken: dict[Ref, int] = {}
    for change in changes:
        if change.operations is not None and change.entry.get("owner"):
            owner = Ref("ReplicaSet", change.ref.namespace, change.entry["owner"])
            taken[owner] = taken.get(owner, 0) + 1
    warnings = []
    for owner, count in sorted(taken.items()):
        replica_set = await kube.get_object(ctx.api, kube.REPLICASETS, owner.namespace, owner.name)
        ready = ((replica_set or {}).get("status") or {}).get("readyReplicas") or 0
        if ready <= count:
            warnings.append(
                f"{owner} has {ready} ready replica(s) and {count} quarantined: its Services have no ready "
                "endpoint until the replacements are Ready"
            )
    return warnings


async def _ensure_policy(ctx: Context, policy: Mapping[str, Any]) -> None:
    """Create the incident's NetworkPolicy in a namespace; one that exists already (this incident's, by its
    name: another quarantine of it, or an earlier run of this one) is left as it is."""
    meta = policy["metadata"]
    try:
        await kube.create_object(ctx.api, kube.NETWORKPOLICIES, meta["namespace"], policy)
    except kube.ApiError as exc:
        if exc.status != 409:
            raise


async def _delete_pod(ctx: Context, ref: Ref, uid: str) -> str:
    """Delete a quarantined Pod, only if it still is the one quarantined (its uid)."""
    try:
        gone = not await kube.delete_object(ctx.api, kube.PODS, ref.namespace, ref.name, uid=uid)
    except kube.ApiError as exc:
        if not kube.precondition_failed(exc):
            raise
        return f"{ref} is another Pod of that name now: left as it is"
    return f"{ref} is gone" if gone else f"{ref} deleted"


async def _release_policy(ctx: Context, policy: Mapping[str, str], label: Mapping[str, str]) -> str:
    """Delete the incident's NetworkPolicy in a namespace, unless other quarantined Pods still need it."""
    ref = Ref("NetworkPolicy", policy["namespace"], policy["name"])
    text = kube.label_selector({"matchLabels": dict(label)})
    quarantined = await kube.list_of(ctx.api, kube.PODS, ref.namespace, label_selector=text)
    still = [pod for pod in quarantined if not pod["metadata"].get("deletionTimestamp")]
    if still:
        return f"{ref} kept: {len(still)} other quarantined Pod(s) of the incident need it"
    current = await kube.get_object(ctx.api, kube.NETWORKPOLICIES, ref.namespace, ref.name)
    if current is None:
        return f"{ref} is gone"
    await kube.delete_object(ctx.api, kube.NETWORKPOLICIES, ref.namespace, ref.name, uid=current["metadata"]["uid"])
    return f"{ref} deleted"
