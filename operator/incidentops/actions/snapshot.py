"""The snapshot action: evidence of the incident's targets, stored as immutable ConfigMaps.

Where it sits: the action runner finds :data:`SNAPSHOT` for ``ActionType.SNAPSHOT`` and drives it
through the steps of ``base.Action``; the domain puts a snapshot before every rollback and quarantine
(policy ``evidence.beforeActions``). ``evidence.py`` collects (Events first), ``redact.py`` makes every
item safe to keep, ``archive.py`` stores and reads back.

The steps:

- plan: which objects the snapshot covers (the targets, their owners and Pods, read now) and the
  manifest ConfigMap it will write; nothing is changed, so a dry run stops here with the plan.
- applied: the manifest ConfigMap exists (it is written last, after every chunk: it exists only once the
  evidence is complete).
- execute: collect, redact, pack and store; the chunks and the manifest are created, never updated
  (immutable), under names that follow from the action's key. Returns ``Executed(evidence=(record,))``,
  the :class:`EvidenceRecord` the runner appends to ``status.evidence``. Run again after a crash, it finds
  the stored manifest and returns its record without collecting again.
- verify: every chunk the manifest lists is there, and every chunk's and item's digest is the manifest's.
- undo: nothing to undo; evidence is kept (with the policy's ``evidence.retainOnDelete``, the default,
  even after the incident is deleted; otherwise the ConfigMaps are owned by the Incident and go with it).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from incidentops.actions import archive, evidence, redact
from incidentops.actions.base import Context, Executed, Planned, Progress, Skip
from incidentops.api import reasons
from incidentops.api.common import API_VERSION
from incidentops.api.incident import ActionType, EvidenceRecord, PlannedChange, SnapshotAction

__all__ = ["SNAPSHOT", "Snapshot"]

_TARGET_MAX: Final = 512


def _request(ctx: Context) -> SnapshotAction:
    if ctx.template is not None and ctx.template.snapshot is not None:
        return ctx.template.snapshot
    return SnapshotAction()


def _what(request: SnapshotAction) -> str:
    parts = [p for p, on in (("events", request.events), ("manifests", request.manifests)) if on]
    if request.logs:
        parts.append(f"logs of the last {request.since_seconds}s")
    return ", ".join([*parts, "alert data"])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _owner(ctx: Context) -> dict[str, Any] | None:
    """The Incident as the ConfigMaps' owner, unless the policy keeps evidence after the incident is gone."""
    retain = ctx.policy is None or ctx.policy.spec.evidence.retain_on_delete
    meta = ctx.incident.metadata
    if retain or not meta.uid:
        return None
    return {"apiVersion": API_VERSION, "kind": "Incident", "name": meta.name, "uid": meta.uid}


def record_of(name: str, ref: str, manifest: dict[str, Any]) -> EvidenceRecord:
    """The ``status.evidence`` entry of a stored manifest."""
    return EvidenceRecord(
        name=name,
        ref=ref,
        sha256=manifest["sha256"],
        bytes=manifest["bytes"],
        items=len(manifest.get("items") or []),
        collected_at=datetime.datetime.fromisoformat(manifest["collectedAt"]),
    )


class Snapshot:
    """``snapshot: {events, logs, manifests, sinceSeconds}`` (see the module doc)."""

    type = ActionType.SNAPSHOT

    async def plan(self, ctx: Context) -> Planned | Skip:
        request = _request(ctx)
        scope = await evidence.resolve(ctx.api, ctx.incident)
        ref = f"ConfigMap {ctx.namespace}/{archive.manifest_name(ctx.key)}"
        covered = ", ".join(str(r) for r in scope.objects) or "no objects (the incident names no targets)"
        summary = f"collect {_what(request)} of {covered} into {ref}"
        return Planned(
            target=_clip(", ".join(str(r) for r in scope.targets) or ref, _TARGET_MAX),
            summary=_clip(summary, 1024),
            changes=(
                PlannedChange(
                    object=ref,
                    field="data",
                    new=_clip(f"immutable, gzip'd evidence of {len(scope.objects)} object(s), with its chunks", 1024),
                ),
            ),
            warnings=tuple(scope.notes),
        )

    async def applied(self, ctx: Context) -> bool:
        return await archive.find(ctx.api, ctx.namespace, ctx.key) is not None

    async def evidence(self, ctx: Context) -> EvidenceRecord | None:
        """The record of the evidence already stored for this action, None when there is none: what a
        runner that finds the action applied after a crash appends to ``status.evidence`` if it is not
        there yet."""
        manifest = await archive.find(ctx.api, ctx.namespace, ctx.key)
        if manifest is None:
            return None
        return record_of(ctx.record.name, archive.manifest_name(ctx.key), manifest)

    async def execute(self, ctx: Context, planned: Planned) -> Executed:
        ref = archive.manifest_name(ctx.key)
        manifest = await archive.find(ctx.api, ctx.namespace, ctx.key)
        if manifest is None:
            items = await evidence.collect(ctx.api, ctx.incident, _request(ctx), action=ctx.record.name, now=ctx.now)
            packed = archive.pack(items)
            meta = {
                "incident": {
                    "namespace": ctx.incident.metadata.namespace,
                    "name": ctx.incident.metadata.name,
                    "uid": ctx.incident.metadata.uid,
                },
                "action": {"name": ctx.record.name, "key": ctx.key},
                "collectedAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "redaction": redact.RULES_VERSION,
            }
            manifest = await archive.store(ctx.api, ctx.namespace, ctx.key, packed, meta, _owner(ctx))
        record = record_of(ctx.record.name, ref, manifest)
        chunks = len(manifest.get("chunks") or [])
        message = (
            f"evidence stored in ConfigMap {ctx.namespace}/{ref} and {chunks} chunk(s):"
            f" {record.items} items, {record.bytes} bytes, sha256 {record.sha256}"
        )
        return Executed(message=message, evidence=(record,))

    async def verify(self, ctx: Context) -> Progress:
        ref = archive.manifest_name(ctx.key)
        try:
            loaded = await archive.load(ctx.api, ctx.namespace, ref)
        except ValueError as exc:
            return Progress.failure(reasons.EVIDENCE_INCOMPLETE, str(exc))
        problems = archive.check(loaded)
        if problems:
            return Progress.failure(reasons.EVIDENCE_INCOMPLETE, _clip("; ".join(map(str, problems)), 1024))
        items = len(loaded.manifest.get("items") or [])
        return Progress.ok(f"evidence in {ctx.namespace}/{ref}: {items} items, sha256 {loaded.manifest['sha256']}")

    async def undo(self, ctx: Context) -> Progress:
        return Progress.failure(
            reasons.UNDO_SKIPPED,
            "a snapshot changes nothing to set back: its evidence is kept"
            f" (ConfigMap {ctx.namespace}/{archive.manifest_name(ctx.key)})",
        )


SNAPSHOT: Final = Snapshot()
"""The snapshot action, for the runner's registry."""
