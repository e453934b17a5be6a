"""Which actions an incident gets, the guards on each, and the ledger's moves that need no cluster.

Where it sits: ``plan`` calls :func:`ledger` on every look with the incident, the policy in effect and how
many actions the policy's incidents started in the last hour; it writes the ledger (``status.actions``)
and posts the Events. The action runner (``incidentops.handlers.actions``) then takes the records this
module left ``Pending`` (and the ``Running`` ones a crash interrupted, and the ``Succeeded`` ones whose
undo is due, :func:`undo_due`), plans each against the cluster with its module in
``incidentops.actions``, records ``Running`` with its key and plan before changing anything, and records
the outcome. Nothing here reads the cluster.

The rules (DESIGN.md "Actions", the issue's "Guards"):

- Requests: the incident's ``spec.actions`` first, then the actions of every policy ``remediation`` rule
  whose ``when`` matches (a spec action of the same name wins). With the policy's ``evidence.beforeActions``
  (default true) a snapshot of the targets comes first whenever a rollback or a quarantine is requested:
  evidence before anything is touched.
- An action is done at most once per incident: its key is a hash of (incident uid, action name), stable
  across looks, restarts and failovers, and a name once in the ledger never starts again.
- Guards, in this order: the namespaces it would touch must not be protected (the policy's
  ``guards.protectedNamespaces`` and always the operator's own) -> Skipped ``ProtectedNamespace``; an
  approval it needs and does not have -> AwaitingApproval; the policy's ``guards.maxActionsPerHour``,
  counted over the ledgers of all its incidents -> Skipped ``RateLimited``; a drill or
  ``guards.dryRun`` -> planned and recorded, nothing changed (the runner records Skipped ``DryRun`` with
  the plan). Dry runs and snapshots (they change nothing) do not count against the rate limit.
- A request that went away before it ran (a spec action removed, a remediation rule that no longer
  matches), and any action still waiting when the incident resolves (a snapshot excepted: evidence is
  still worth having), is Skipped ``Superseded``.
- Undo: a maintenance switch is set back when the incident resolves, a scale only with
  ``restoreOnResolve``; any undoable action when a person asks (``spec.undo``; a quarantine's undo is its
  release). A rollback is never undone: that would deploy the bad version again.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from incidentops.api import reasons
from incidentops.api.incident import (
    ActionOrigin,
    ActionPhase,
    ActionRecord,
    ActionTemplate,
    ActionType,
    Approval,
    Incident,
    IncidentStatus,
    SnapshotAction,
    TimelineEntry,
)
from incidentops.api.policy import EscalationPolicy, Remediation
from incidentops.domain import timeline
from incidentops.domain.common import clip, utc
from incidentops.domain.decisions import Transition
from incidentops.domain.selection import Selection, incident_labels

__all__ = [
    "ACTIONS_CAP",
    "EVIDENCE_FIRST",
    "KEY_SCHEME",
    "UNDO_ON_RESOLVE",
    "LedgerDecision",
    "Request",
    "action_key",
    "approval_of",
    "awaits_undo",
    "event_reason",
    "is_dry_run",
    "ledger",
    "may_start",
    "namespaces_touched",
    "protected_namespaces",
    "recent_actions",
    "requests",
    "runnable",
    "step",
    "templates",
    "undo_due",
    "undo_on_delete",
]

KEY_SCHEME: Final = "incidentops/action/v1"
"""Versions the inputs of an action key."""

ACTIONS_CAP: Final = 32
"""``status.actions`` holds at most this many records (the model's maximum)."""

EVIDENCE_FIRST: Final = "evidence-first"
"""The name of the snapshot taken before a rollback or a quarantine (policy ``evidence.beforeActions``)."""

UNDO_ON_RESOLVE: Final = "onResolve"
"""The key of ``ActionRecord.undo`` saying the action is set back when the incident resolves."""

_RATE_WINDOW: Final = datetime.timedelta(hours=1)
_TOUCHED_BEFORE_EVIDENCE: Final = (ActionType.ROLLBACK, ActionType.QUARANTINE)
_UNDOABLE: Final = (ActionType.MAINTENANCE, ActionType.SCALE, ActionType.QUARANTINE)
_WAITING: Final = (ActionPhase.PENDING, ActionPhase.AWAITING_APPROVAL)


@dataclass(frozen=True)
class Request:
    """An action the incident asks for, from its spec or its policy's remediation."""

    name: str
    template: ActionTemplate
    origin: ActionOrigin
    needs_approval: bool


def action_key(uid: str, name: str) -> str:
    """The idempotency key of the action ``name`` of the incident ``uid``: 64 hex characters."""
    return hashlib.sha256("\x1f".join((KEY_SCHEME, uid, name)).encode()).hexdigest()


def _remediation_matches(rule: Remediation, incident: Incident, selection: Selection) -> bool:
    when = rule.when
    if when.severities and selection.severity not in when.severities:
        return False
    if when.types and (selection.type is None or selection.type not in when.types):
        return False
    labels = incident_labels(incident)
    return all(labels.get(key) == value for key, value in (when.labels or {}).items())


def requests(incident: Incident, selection: Selection) -> list[Request]:
    """The actions the incident asks for, in the order they run (see the module doc)."""
    out: dict[str, Request] = {}
    for action in incident.spec.actions:
        out[action.name] = Request(action.name, action, ActionOrigin.SPEC, action.approval is Approval.REQUIRED)
    policy = selection.policy
    if policy is not None:
        for rule in policy.spec.remediation:
            if not _remediation_matches(rule, incident, selection):
                continue
            for template in rule.actions:
                if template.name not in out:
                    out[template.name] = Request(
                        template.name, template, ActionOrigin.REMEDIATION, rule.approval is Approval.REQUIRED
                    )
    ordered = list(out.values())
    wants_evidence = policy is None or policy.spec.evidence.before_actions
    touches = any(r.template.type in _TOUCHED_BEFORE_EVIDENCE for r in ordered)
    has_snapshot = any(r.template.type is ActionType.SNAPSHOT for r in ordered)
    if wants_evidence and touches and not has_snapshot:
        snapshot = ActionTemplate(name=EVIDENCE_FIRST, snapshot=SnapshotAction())
        ordered.insert(0, Request(EVIDENCE_FIRST, snapshot, ActionOrigin.REMEDIATION, False))
    # Evidence first: snapshots keep their order among themselves, and go before everything else.
    return [r for r in ordered if r.template.type is ActionType.SNAPSHOT] + [
        r for r in ordered if r.template.type is not ActionType.SNAPSHOT
    ]


def approval_of(incident: Incident, name: str) -> str | None:
    """Who approved the action ``name``: an entry of ``spec.approvals``, else ``approved: true`` on the
    spec action of that name (by whoever wrote the spec: the audit log says who)."""
    for approval in incident.spec.approvals:
        if approval.action == name:
            return approval.by
    for action in incident.spec.actions:
        if action.name == name and action.approved:
            return "spec.actions[].approved"
    return None


def protected_namespaces(policy: EscalationPolicy | None, operator_namespace: str) -> frozenset[str]:
    """Namespaces no action touches: the policy's ``guards.protectedNamespaces`` and the operator's own."""
    listed = policy.spec.guards.protected_namespaces if policy is not None else []
    return frozenset([operator_namespace, *listed])


def namespaces_touched(incident: Incident, template: ActionTemplate) -> frozenset[str]:
    """The namespaces an action would change objects in: the incident's, and for an action that defaults to
    the incident's targets, theirs. A snapshot changes nothing it reads (its ConfigMaps go next to the
    incident)."""
    own = incident.metadata.namespace or ""
    if template.type is ActionType.SNAPSHOT:
        return frozenset()
    names = {own}
    named = {
        ActionType.ROLLBACK: template.rollback is not None and template.rollback.deployment is not None,
        ActionType.SCALE: template.scale is not None and template.scale.deployment is not None,
        ActionType.QUARANTINE: template.quarantine is not None and template.quarantine.selector is not None,
        ActionType.MAINTENANCE: True,
    }[template.type]
    if not named:
        names |= {t.namespace for t in incident.spec.targets if t.namespace}
    return frozenset(names)


def is_dry_run(incident: Incident, policy: EscalationPolicy | None) -> bool:
    """A drill, or the policy's ``guards.dryRun``: plan and record, change nothing."""
    return bool(incident.spec.drill) or (policy is not None and policy.spec.guards.dry_run)


def recent_actions(statuses: Iterable[IncidentStatus], now: datetime.datetime) -> int:
    """How many changes (dry runs and snapshots aside) the given incidents started in the hour before ``now``, or are
    about to (Pending: admitted, not started yet), so two incidents planned at once share one budget."""
    since = utc(now) - _RATE_WINDOW

    def counts(record: ActionRecord) -> bool:
        if record.dry_run or record.type is ActionType.SNAPSHOT:
            return False
        if record.phase is ActionPhase.PENDING:
            return True
        return record.started_at is not None and utc(record.started_at) > since

    return sum(1 for status in statuses for record in status.actions if counts(record))


@dataclass(frozen=True)
class LedgerDecision:
    """The ledger as of this look, and what to announce."""

    records: list[ActionRecord]
    transitions: tuple[Transition, ...]


def _undo_on_resolve(template: ActionTemplate) -> bool:
    if template.type is ActionType.MAINTENANCE:
        return True
    return template.type is ActionType.SCALE and template.scale is not None and template.scale.restore_on_resolve


def ledger(
    incident: Incident,
    selection: Selection,
    *,
    resolved: bool,
    operator_namespace: str,
    recent: int,
    now: datetime.datetime,
) -> LedgerDecision:
    """The ledger after this look's decisions (see the module doc); ``recent`` is the policy's count of
    actions started in the last hour, this incident's included (:func:`recent_actions`)."""
    now = utc(now)
    policy = selection.policy
    uid = incident.metadata.uid or f"{incident.metadata.namespace}/{incident.metadata.name}"
    existing = {record.name: record for record in incident.status.actions}
    wanted = requests(incident, selection)
    protected = protected_namespaces(policy, operator_namespace)
    limit = policy.spec.guards.max_actions_per_hour if policy is not None else 0
    dry = is_dry_run(incident, policy)
    started = recent
    out: list[ActionRecord] = []
    transitions: list[Transition] = []

    def skip(record: ActionRecord, reason: str, message: str) -> ActionRecord:
        return record.model_copy(
            update={"phase": ActionPhase.SKIPPED, "reason": reason, "message": clip(message), "finished_at": now}
        )

    def admit(record: ActionRecord, request: Request) -> ActionRecord:
        """Pending, or Skipped RateLimited: the last guard, at the moment it would run."""
        nonlocal started
        counted = not record.dry_run and record.type is not ActionType.SNAPSHOT
        if counted and started >= limit:
            message = f"{request.name}: the policy allows {limit} action(s) an hour and {started} ran"
            transitions.append(Transition("Warning", reasons.ACTION_RATE_LIMITED, message))
            return skip(record, reasons.RATE_LIMITED, message)
        if counted:
            started += 1
        return record.model_copy(update={"phase": ActionPhase.PENDING, "reason": None, "message": None})

    for request in wanted:
        record = existing.pop(request.name, None)
        approver = approval_of(incident, request.name)
        if record is None:
            record = ActionRecord(
                name=request.name,
                type=request.template.type,
                origin=request.origin,
                phase=ActionPhase.PENDING,
                key=action_key(uid, request.name),
                dry_run=dry or None,
                undo={UNDO_ON_RESOLVE: "true"} if _undo_on_resolve(request.template) else None,
            )
            touched = namespaces_touched(incident, request.template) & protected
            if touched:
                message = f"{request.name} would change namespace {', '.join(sorted(touched))}, which is protected"
                transitions.append(Transition("Warning", reasons.ACTION_SKIPPED, message))
                record = skip(record, reasons.PROTECTED_NAMESPACE, message)
            elif resolved and request.template.type is not ActionType.SNAPSHOT:
                record = skip(record, reasons.SUPERSEDED, f"{request.name}: the incident resolved before it ran")
            elif request.needs_approval and approver is None:
                message = (
                    f"{request.name} waits for approval"
                    f" (kubectl incident approve {incident.metadata.name} {request.name})"
                )
                transitions.append(Transition("Normal", reasons.ACTION_AWAITING_APPROVAL, message))
                record = record.model_copy(
                    update={
                        "phase": ActionPhase.AWAITING_APPROVAL,
                        "reason": reasons.APPROVAL_REQUIRED,
                        "message": message,
                    }
                )
            else:
                record = admit(record.model_copy(update={"approved_by": approver}), request)
        elif record.phase is ActionPhase.AWAITING_APPROVAL:
            if resolved:
                record = skip(
                    record, reasons.SUPERSEDED, f"{request.name}: the incident resolved before it was approved"
                )
            elif approver is not None:
                transitions.append(
                    Transition("Normal", reasons.ACTION_APPROVED, f"{request.name} approved by {approver}")
                )
                record = admit(record.model_copy(update={"approved_by": approver}), request)
        elif record.phase is ActionPhase.PENDING and resolved and request.template.type is not ActionType.SNAPSHOT:
            record = skip(record, reasons.SUPERSEDED, f"{request.name}: the incident resolved before it ran")
        out.append(record)
    # Records whose request went away: waiting ones are moot; the rest is history.
    for record in existing.values():
        if record.phase in _WAITING:
            record = skip(record, reasons.SUPERSEDED, f"{record.name}: no longer requested")
        out.append(record)
    return LedgerDecision(records=out[-ACTIONS_CAP:], transitions=tuple(transitions))


def _undoable(record: ActionRecord) -> bool:
    """A change of ours still in place: Succeeded, not a dry run, of an undoable type, and not already
    found changed by someone else (an undo that said UndoSkipped is not tried again)."""
    return (
        record.phase is ActionPhase.SUCCEEDED
        and not record.dry_run
        and record.type in _UNDOABLE
        and record.reason != reasons.UNDO_SKIPPED
    )


def _undoes_on_resolve(record: ActionRecord) -> bool:
    return (record.undo or {}).get(UNDO_ON_RESOLVE) == "true"


def undo_due(incident: Incident, record: ActionRecord, resolved: bool) -> bool:
    """Whether the runner should undo ``record`` now: a change of ours still in place, when the incident
    resolved (and it undoes on resolve) or a person asked (``spec.undo``)."""
    if not _undoable(record):
        return False
    asked = any(request.action == record.name for request in incident.spec.undo)
    return asked or (resolved and _undoes_on_resolve(record))


def undo_on_delete(record: ActionRecord) -> bool:
    """Whether deleting the incident must first undo ``record``: a maintenance switch or a restorable scale
    still in place (traffic and capacity must not stay diverted once nobody can see why), and a
    quarantine (its Pods would otherwise be kept forever, with nobody left to release them)."""
    if not _undoable(record):
        return False
    return _undoes_on_resolve(record) or record.type is ActionType.QUARANTINE


def awaits_undo(incident: Incident) -> bool:
    """Whether the incident has a change that its deletion must undo first (Kopf's finalizer, only then)."""
    return any(undo_on_delete(record) for record in incident.status.actions)


def may_start(incident: Incident, selection: Selection) -> bool:
    """Whether this look may admit an action (a request not in the ledger yet, or an approval that came):
    only then is the policy's rate-limit count needed."""
    existing = {record.name: record for record in incident.status.actions}
    for request in requests(incident, selection):
        record = existing.get(request.name)
        if record is None:
            return True
        if record.phase is ActionPhase.AWAITING_APPROVAL and approval_of(incident, request.name) is not None:
            return True
    return False


def runnable(incident: Incident, resolved: bool) -> list[ActionRecord]:
    """The records the runner has work for now, in ledger order: Pending and Running ones (a crash may have
    interrupted a Running one), and Succeeded ones with an undo due. Evidence first: while a snapshot is
    still to finish, no other action starts (the runner starts them once it is recorded)."""
    active = (ActionPhase.PENDING, ActionPhase.RUNNING)
    undos = [record for record in incident.status.actions if undo_due(incident, record, resolved)]
    snapshots = [r for r in incident.status.actions if r.type is ActionType.SNAPSHOT and r.phase in active]
    if snapshots:
        return [*snapshots, *undos]
    return [r for r in incident.status.actions if r.phase in active or r in undos]


def templates(incident: Incident, selection: Selection) -> Mapping[str, ActionTemplate]:
    """Every requested action's template by name (what the runner plans with)."""
    return {request.name: request.template for request in requests(incident, selection)}


# --- the runner's steps, as changes of the ledger ---------------------------------------------------

_REASONS: Final[Mapping[tuple[ActionType, str], str]] = {
    (ActionType.ROLLBACK, "started"): reasons.ROLLBACK_STARTED,
    (ActionType.ROLLBACK, "succeeded"): reasons.ROLLBACK_SUCCEEDED,
    (ActionType.ROLLBACK, "failed"): reasons.ROLLBACK_FAILED,
    (ActionType.MAINTENANCE, "succeeded"): reasons.MAINTENANCE_ENTERED,
    (ActionType.MAINTENANCE, "failed"): reasons.MAINTENANCE_FAILED,
    (ActionType.MAINTENANCE, "undone"): reasons.MAINTENANCE_EXITED,
    (ActionType.QUARANTINE, "succeeded"): reasons.QUARANTINED,
    (ActionType.QUARANTINE, "undone"): reasons.QUARANTINE_RELEASED,
    (ActionType.SCALE, "succeeded"): reasons.SCALED,
    (ActionType.SCALE, "undone"): reasons.SCALE_RESTORED,
    (ActionType.SNAPSHOT, "succeeded"): reasons.EVIDENCE_COLLECTED,
}
_GENERIC: Final[Mapping[str, str]] = {
    "planned": reasons.ACTION_PLANNED,
    "started": reasons.ACTION_STARTED,
    "succeeded": reasons.ACTION_SUCCEEDED,
    "failed": reasons.ACTION_FAILED,
    "skipped": reasons.ACTION_SKIPPED,
    "undone": reasons.ACTION_UNDONE,
}


def event_reason(action_type: ActionType, step_name: str) -> str:
    """The Event (and timeline) reason of a step (``planned``, ``started``, ``succeeded``, ``failed``,
    ``skipped``, ``undone``) of an action of ``action_type``: specific where one exists (RollbackSucceeded,
    MaintenanceEntered), generic otherwise (ActionStarted)."""
    return _REASONS.get((action_type, step_name), _GENERIC[step_name])


def step(
    status: IncidentStatus,
    name: str,
    *,
    expect: Iterable[ActionPhase],
    update: Mapping[str, object],
    entry: TimelineEntry | None = None,
) -> IncidentStatus | None:
    """``status`` with the record ``name`` changed by ``update`` (ActionRecord fields), if it is in one of
    the ``expect``-ed phases; None otherwise: someone else moved it (another replica, a look that made it
    moot), so the step must not be written over it. ``entry`` goes on the timeline."""
    phases = frozenset(expect)
    records = list(status.actions)
    for index, record in enumerate(records):
        if record.name == name:
            if record.phase not in phases:
                return None
            records[index] = record.model_copy(update=dict(update))
            changed: dict[str, object] = {"actions": records}
            if entry is not None:
                changed["timeline"] = timeline.append(status.timeline, [entry])
            return status.model_copy(update=changed)
    return None
