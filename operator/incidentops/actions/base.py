"""The one interface every action implements: plan, applied, execute, verify, undo.

Where it sits: the action runner (``incidentops.handlers.actions``) takes a ledger record the domain left
Pending (``incidentops.domain.actions``), and drives its module through these steps; each module
(``rollback.py``, ``maintenance.py``, ``quarantine.py``, ``scale.py``, ``snapshot.py``) knows one kind of
change and talks to the cluster only through ``incidentops.kube``. The runner writes every step into the
ledger; a module writes nothing of the incident.

The steps, and what each promises:

- :meth:`Action.plan` reads the cluster and answers the exact change (:class:`Planned`: the objects,
  fields, old and new values, what undo needs, how long verification may take), or why not
  (:class:`Skip`: a guard or a check such as a paused Deployment). It changes nothing: a dry run stops
  here and records the plan.
- :meth:`Action.applied` says whether the cluster already carries this action's change (every object an
  action changes is annotated with the action's key, :data:`KEY_ANNOTATION`, in the same write). After a
  crash the runner finds the record Running and asks: applied -> verify; not applied -> execute. So an
  action is done at most once.
- :meth:`Action.execute` makes the change, each write under a resourceVersion precondition (a JSON patch
  that tests it, or a replace/delete that carries it): a write based on a stale read raises
  :class:`Conflict`, and the runner plans again (the change may no longer be needed).
- :meth:`Action.verify` looks once whether the change worked, not merely whether the API accepted it (the
  rollout is available, the EndpointSlices list the maintenance Pods, the replicas are ready), and
  answers :class:`Progress`; the runner asks again until it is done, failed, or ``verify_within`` ran out.
- :meth:`Action.undo` sets the change back from the record alone (its ``undo`` data: the template may be
  gone from spec and policy), only if the object still carries this action's change; someone else's
  later change is left as it is (:class:`Progress` failed with :data:`incidentops.api.reasons.UNDO_SKIPPED`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from incidentops.api.common import GROUP
from incidentops.api.incident import ActionRecord, ActionTemplate, ActionType, EvidenceRecord, Incident, PlannedChange
from incidentops.api.policy import EscalationPolicy
from incidentops.kube import ApiClient

__all__ = [
    "INCIDENT_ANNOTATION",
    "KEY_ANNOTATION",
    "Action",
    "Collects",
    "Conflict",
    "Context",
    "Executed",
    "Planned",
    "Progress",
    "Skip",
]

KEY_ANNOTATION: Final = f"{GROUP}/action-key"
"""On every object an action changes: the action's key, written with the change (the proof it happened)."""

INCIDENT_ANNOTATION: Final = f"{GROUP}/incident"
"""On every object an action changes or creates: ``namespace/name`` of the incident, for people."""


@dataclass(frozen=True)
class Context:
    """What a step of an action knows: the incident as read now, its policy, its ledger record."""

    api: ApiClient
    incident: Incident
    policy: EscalationPolicy | None
    record: ActionRecord
    template: ActionTemplate | None
    """The request (from spec or remediation); None when only the record is left (an undo)."""
    now: datetime.datetime
    operator_namespace: str

    @property
    def key(self) -> str:
        """The action's idempotency key (``status.actions[].key``)."""
        return self.record.key

    @property
    def namespace(self) -> str:
        """The incident's namespace: where an action acts unless a target says otherwise."""
        return self.incident.metadata.namespace or ""

    @property
    def incident_ref(self) -> str:
        """``namespace/name`` of the incident (:data:`INCIDENT_ANNOTATION`)."""
        return f"{self.incident.metadata.namespace}/{self.incident.metadata.name}"


@dataclass(frozen=True)
class Planned:
    """The exact change an action will make (or, in a dry run, would make)."""

    target: str
    """The object(s) it changes, ``Kind namespace/name`` (comma-separated for several)."""
    summary: str
    """One sentence for people: ``roll back Deployment shop/cart from revision 3 to revision 2``."""
    changes: tuple[PlannedChange, ...]
    """Field by field: object, field, old value, new value (short texts, not whole templates)."""
    undo: dict[str, str] = field(default_factory=dict)
    """What undo needs, as JSON texts (the original selector, the original replica count)."""
    verify_within: datetime.timedelta = datetime.timedelta(minutes=2)
    """How long verification may take before the action is Failed (a rollback: progressDeadlineSeconds)."""
    warnings: tuple[str, ...] = ()
    """What people should know (a rollback restores the template only, not ConfigMaps that changed)."""
    state: Any = None
    """The module's own data for :meth:`Action.execute` (the reads it planned on); never recorded."""


@dataclass(frozen=True)
class Skip:
    """Why an action does not run: a reason constant (``incidentops.api.reasons``) and a message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Executed:
    """What :meth:`Action.execute` did."""

    message: str
    evidence: tuple[EvidenceRecord, ...] = ()
    """For a snapshot: the collections stored (``status.evidence``)."""


@dataclass(frozen=True)
class Progress:
    """One look at whether a change (or its undo) has worked."""

    done: bool = False
    failed: bool = False
    message: str = ""
    reason: str | None = None
    """For a failure: a reason constant (e.g. RollbackFailed, UndoSkipped)."""

    @classmethod
    def ok(cls, message: str) -> Progress:
        return cls(done=True, message=message)

    @classmethod
    def waiting(cls, message: str) -> Progress:
        return cls(message=message)

    @classmethod
    def failure(cls, reason: str, message: str) -> Progress:
        return cls(failed=True, message=message, reason=reason)


class Conflict(Exception):
    """An object changed between the plan and the write (409, or a failed resourceVersion test): plan again."""


@runtime_checkable
class Collects(Protocol):
    """An action whose outcome is evidence (the snapshot): what it stored, found again after a crash."""

    async def evidence(self, ctx: Context) -> EvidenceRecord | None:
        """The record of what this action stored already (None: nothing yet)."""
        ...


class Action(Protocol):
    """One kind of action (see the module doc for what each step promises)."""

    type: ActionType

    async def plan(self, ctx: Context) -> Planned | Skip: ...

    async def applied(self, ctx: Context) -> bool: ...

    async def execute(self, ctx: Context, planned: Planned) -> Executed: ...

    async def verify(self, ctx: Context) -> Progress: ...

    async def undo(self, ctx: Context) -> Progress: ...
