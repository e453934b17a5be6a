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
  the plan). Dry runs do not count against the rate limit.
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
)
from incidentops.api.policy import EscalationPolicy, Remediation
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
    "is_dry_run",
    "ledger",
    "namespaces_touched",
    "protected_namespaces",
    "recent_actions",
    "requests",
    "runnable",
    "templates",
    "undo_due",
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
    """How many actions (dry runs aside) the given incidents started in the hour before ``now``."""
    since = utc(now) - _RATE_WINDOW
    return sum(
        1
        for status in statuses
        for record in status.actions
        if record.started_at is not None and utc(record.started_at) > since and not record.dry_run
    )


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
        if not record.dry_run and started >= limit:
            message = f"{request.name}: the policy allows {limit} action(s) an hour and {started} ran"
            transitions.append(Transition("Warning", reasons.ACTION_RATE_LIMITED, message))
            return skip(record, reasons.RATE_LIMITED, message)
        if not record.dry_run:
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


def undo_due(incident: Incident, record: ActionRecord, resolved: bool) -> bool:
    """Whether the runner should undo ``record`` now: a Succeeded change that is undoable, when the incident
    resolved (and it undoes on resolve) or a person asked (``spec.undo``)."""
    if record.phase is not ActionPhase.SUCCEEDED or record.dry_run or record.type not in _UNDOABLE:
        return False
    asked = any(request.action == record.name for request in incident.spec.undo)
    on_resolve = resolved and (record.undo or {}).get(UNDO_ON_RESOLVE) == "true"
    return asked or on_resolve


def runnable(incident: Incident, resolved: bool) -> list[ActionRecord]:
    """The records the runner has work for: Pending, Running (a crash may have interrupted them), and
    Succeeded with an undo due; in ledger order (evidence first)."""
    return [
        record
        for record in incident.status.actions
        if record.phase in (ActionPhase.PENDING, ActionPhase.RUNNING) or undo_due(incident, record, resolved)
    ]


def templates(incident: Incident, selection: Selection) -> Mapping[str, ActionTemplate]:
    """Every requested action's template by name (what the runner plans with)."""
    return {request.name: request.template for request in requests(incident, selection)}
