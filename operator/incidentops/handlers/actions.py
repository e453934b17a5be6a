"""The action runner: the actions the domain admitted run apart from the look, each step in the ledger.

Where it sits: the reconciler's look plans an incident (``domain.actions`` decides which actions are
Pending, which wait for an approval, which the guards skip), writes the status, and hands the incident
to :meth:`ActionRunner.submit`. The runner starts one task per record that has work
(``domain.actions.runnable``: Pending, Running after a crash, Succeeded with an undo due) and drives its
module (``incidentops.actions``) through the steps of ``actions.base``:

1. plan against the cluster; a Skip, or a dry run, is recorded with the plan and stops there;
2. record Running with the key and the plan, before anything changes (a compare-and-swap on the record's
   phase, so two replicas or two tasks cannot both start it);
3. execute, unless the cluster already carries the change (``applied``: after a crash); a conflict plans
   again, a few times;
4. verify, looking again with backoff until done, failed, or the record's ``verifyBy`` passes; never
   holding the look, so paging and state changes go on meanwhile;
5. record Succeeded or Failed, with an Event and a timeline entry.

Undo (a maintenance switch on resolve, a scale with ``restoreOnResolve``, any on a person's ``spec.undo``)
runs the module's ``undo`` from the record alone and records Undone; an undo that finds the object changed
by someone else since leaves it, and says so. Deleting an incident with a change awaiting undo runs the
same undo from Kopf's delete handler (``registry.py``) before the finalizer goes.

Only work in progress lives here (which records have a task): a crash or a failover loses none, the next
leader's first look finds the records where this one left them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from incidentops import kube, metrics
from incidentops.actions import base
from incidentops.api import Incident, reasons
from incidentops.api import conditions as cond
from incidentops.api.incident import ActionPhase, ActionRecord, ActionType, IncidentStatus
from incidentops.domain import actions as acting
from incidentops.domain import timeline
from incidentops.domain.common import clip
from incidentops.domain.decisions import Transition
from incidentops.domain.selection import Selection
from incidentops.handlers.scheduler import Key

__all__ = ["ActionRunner", "Ledger", "Seen", "UndoFailed"]

logger = logging.getLogger("incidentops.actions")

_CONFLICT_ATTEMPTS: Final = 5
_VERIFY_FIRST: Final = 1.0
_VERIFY_MAX: Final = 10.0
_ERROR_FIRST: Final = 2.0
_ERROR_MAX: Final = 60.0
_EVIDENCE_CAP: Final = 32

ModuleFor = Callable[[ActionType], base.Action]


@dataclass(frozen=True)
class Seen:
    """An incident as just read, and its selection (what each step plans on)."""

    incident: Incident
    selection: Selection


class Ledger(Protocol):
    """How the runner reads and writes incidents (the reconciler)."""

    async def seen(self, key: Key) -> Seen | None:
        """The incident as it is now, and its selection; None when it is gone."""
        ...

    async def change(
        self,
        key: Key,
        uid: str,
        compute: Callable[[Incident], IncidentStatus | None],
        transitions: Sequence[Transition] = (),
    ) -> Incident | None:
        """Write the status ``compute`` makes of the incident as it is (again on conflict), then post the
        Events; the incident as written, or None when nothing was written (``compute`` said None, or the
        incident is gone or was replaced by another of the same name)."""
        ...


class UndoFailed(Exception):
    """An undo for a deletion could not be done now (the delete handler tries again)."""


class ActionRunner:
    def __init__(
        self,
        api: kube.ApiClient,
        ledger: Ledger,
        clock: Callable[[], datetime.datetime],
        modules: ModuleFor,
        *,
        operator_namespace: str,
    ) -> None:
        self.api = api
        self.ledger = ledger
        self.clock = clock
        self.modules = modules
        self.operator_namespace = operator_namespace
        self._busy: dict[tuple[Key, str], asyncio.Task[None]] = {}
        self._stopped = True  # until run(): the leader's part

    # -- the look's side ---------------------------------------------------------------------------

    def submit(self, key: Key, incident: Incident) -> None:
        """Start a task for every record of ``incident`` with work, unless one runs already."""
        if self._stopped:
            return
        for record in acting.runnable(incident, _resolved(incident)):
            job = (key, record.name)
            if job in self._busy:
                continue
            task = asyncio.create_task(self._run(key, record.name), name=f"action:{key[0]}/{key[1]}:{record.name}")
            self._busy[job] = task
            task.add_done_callback(functools.partial(self._done, job))

    def _done(self, job: tuple[Key, str], _: asyncio.Task[None]) -> None:
        self._busy.pop(job, None)

    def busy(self, key: Key, name: str) -> bool:
        return (key, name) in self._busy

    async def drain(self) -> None:
        """Wait until every task started so far has ended (shutdown, and tests)."""
        while self._busy:
            await asyncio.wait(list(self._busy.values()))

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` (leadership lost, or shutdown): then every task is cancelled, and the records stay
        where they are for the next leader (Running is resumed there: applied, or executed)."""
        self._stopped = False
        try:
            await stop.wait()
        finally:
            self._stopped = True
            tasks = list(self._busy.values())
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- one record -----------------------------------------------------------------------------------

    async def _run(self, key: Key, name: str) -> None:
        delay = _ERROR_FIRST
        while not self._stopped:
            try:
                type_ = await self._advance(key, name)
                if type_ is ActionType.SNAPSHOT:
                    await self._after_evidence(key)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The record stays where it is (Pending or Running) and is tried again: a transient API
                # failure must not lose the action, and a bug must not spin (its traceback is logged).
                kind = kube.error_kind(exc)
                logger.warning(
                    "action %s of %s/%s: %s (%s error); trying again in %.0fs",
                    name,
                    *key,
                    kube.describe(exc),
                    kind.value,
                    delay,
                    exc_info=kind is kube.ErrorKind.OTHER,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _ERROR_MAX)

    async def _after_evidence(self, key: Key) -> None:
        """Start what waited for the evidence. Nothing else brings the look back: the snapshot's own status
        write is the operator's, which the reconciler does not answer."""
        seen = await self.ledger.seen(key)
        if seen is not None:
            self.submit(key, seen.incident)

    async def _advance(self, key: Key, name: str) -> ActionType | None:
        """One record's next step; its type, or None when it is gone."""
        seen = await self.ledger.seen(key)
        record = _record(seen.incident, name) if seen is not None else None
        if seen is None or record is None:
            return None
        ctx = self._context(seen, record)
        module = self.modules(record.type)
        if acting.undo_due(seen.incident, record, _resolved(seen.incident)):
            await self._undo(key, ctx, module)
        elif record.phase is ActionPhase.PENDING:
            running = await self._start(key, ctx, module)
            if running is not None:
                await self._carry_out(key, running, module)
        elif record.phase is ActionPhase.RUNNING:
            await self._carry_out(key, ctx, module)
        return record.type

    def _context(self, seen: Seen, record: ActionRecord) -> base.Context:
        return base.Context(
            api=self.api,
            incident=seen.incident,
            policy=seen.selection.policy,
            record=record,
            template=acting.templates(seen.incident, seen.selection).get(record.name),
            now=self.clock(),
            operator_namespace=self.operator_namespace,
        )

    async def _start(self, key: Key, ctx: base.Context, module: base.Action) -> base.Context | None:
        """Plan. A skip or a dry run is recorded and stops here; otherwise record Running with the plan
        (nothing has changed yet) and answer the context to carry on with."""
        record = ctx.record
        if ctx.template is None:
            await self._finish(key, ctx, ActionPhase.SKIPPED, reasons.SUPERSEDED, "no longer requested")
            return None
        planned = await module.plan(ctx)
        if isinstance(planned, base.Skip):
            await self._finish(key, ctx, ActionPhase.SKIPPED, planned.reason, planned.message)
            return None
        fields = _plan_fields(record, planned)
        if record.dry_run:
            message = f"dry run, nothing changed: would {planned.summary}"
            await self._finish(
                key, ctx, ActionPhase.SKIPPED, reasons.DRY_RUN, message, fields, event=reasons.ACTION_PLANNED
            )
            return None
        now = self.clock()
        update: dict[str, Any] = {
            **fields,
            "phase": ActionPhase.RUNNING,
            "reason": None,
            "started_at": now,
            "verify_by": now + planned.verify_within,
            "message": clip(f"running: {planned.summary}" + "".join(f"; {w}" for w in planned.warnings)),
        }
        event = acting.event_reason(record.type, "started")
        written = await self._step(key, ctx, {ActionPhase.PENDING}, update, event, f"{record.name}: {planned.summary}")
        running = _record(written, record.name) if written is not None else None
        if written is None or running is None:
            return None  # moved by someone else (another replica, a look): theirs to carry on
        metrics.ACTIONS.labels(str(record.type), "started").inc()
        return dataclasses.replace(ctx, incident=written, record=running, now=self.clock())

    async def _carry_out(self, key: Key, ctx: base.Context, module: base.Action) -> None:
        """Execute (unless the cluster already carries this action's change), then verify."""
        if not await module.applied(ctx):
            executed = await self._execute(key, ctx, module)
            if executed is None:
                return
            await self._note(key, ctx, executed)
        elif isinstance(module, base.Collects):
            # Stored before a crash, maybe not recorded: the record goes into status.evidence now.
            stored = await module.evidence(ctx)
            if stored is not None:
                await self._note(key, ctx, base.Executed(message=f"stored {stored.ref}", evidence=(stored,)))
        await self._verify(key, ctx, module)

    async def _execute(self, key: Key, ctx: base.Context, module: base.Action) -> base.Executed | None:
        for _ in range(_CONFLICT_ATTEMPTS):
            planned = await module.plan(ctx) if ctx.template is not None else None
            if not isinstance(planned, base.Planned):
                # Between the Running record and the write the cluster moved (someone rolled back by
                # hand, the request went away): nothing of ours changed, and nothing needs to.
                reason, message = (
                    (planned.reason, planned.message) if planned else (reasons.SUPERSEDED, "no longer requested")
                )
                await self._finish(key, ctx, ActionPhase.SKIPPED, reason, message)
                return None
            try:
                return await module.execute(ctx, planned)
            except base.Conflict as exc:
                logger.info("action %s of %s/%s: %s; planning again", ctx.record.name, *key, exc)
        message = f"the object kept changing under the action ({_CONFLICT_ATTEMPTS} attempts)"
        await self._finish(key, ctx, ActionPhase.FAILED, reasons.CONFLICT, message)
        return None

    async def _note(self, key: Key, ctx: base.Context, executed: base.Executed) -> None:
        """What execute did, on the record (and a snapshot's evidence in ``status.evidence``)."""

        def compute(fresh: Incident) -> IncidentStatus | None:
            status = acting.step(
                fresh.status, ctx.record.name, expect={ActionPhase.RUNNING}, update={"message": clip(executed.message)}
            )
            if status is None or not executed.evidence:
                return status
            known = {e.ref for e in status.evidence}
            added = [e for e in executed.evidence if e.ref not in known]
            return status.model_copy(update={"evidence": [*status.evidence, *added][-_EVIDENCE_CAP:]})

        await self.ledger.change(key, ctx.incident.metadata.uid or "", compute)

    async def _verify(self, key: Key, ctx: base.Context, module: base.Action) -> None:
        delay = _VERIFY_FIRST
        while True:
            progress = await module.verify(ctx)
            if progress.done:
                await self._finish(key, ctx, ActionPhase.SUCCEEDED, None, progress.message)
                return
            if progress.failed:
                await self._finish(key, ctx, ActionPhase.FAILED, progress.reason, progress.message)
                return
            deadline = ctx.record.verify_by
            if deadline is not None and self.clock() >= deadline:
                message = "not in effect in time" + (f": {progress.message}" if progress.message else "")
                if ctx.record.type is ActionType.MAINTENANCE:
                    # Traffic that did not reach the maintenance backend must go back where it was: safe
                    # when wrong (the module switches back by itself before this; this is the last word).
                    undone = await self.undo_once(ctx, module)
                    message += f"; switched back: {undone.message}" if undone.done else f"; {undone.message}"
                await self._finish(key, ctx, ActionPhase.FAILED, reasons.VERIFY_TIMED_OUT, message)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _VERIFY_MAX)
            ctx = dataclasses.replace(ctx, now=self.clock())

    async def _undo(self, key: Key, ctx: base.Context, module: base.Action) -> Incident | None:
        progress = await self.undo_once(ctx, module)
        while not (progress.done or progress.failed):
            await asyncio.sleep(_VERIFY_FIRST)
            progress = await self.undo_once(dataclasses.replace(ctx, now=self.clock()), module)
        if progress.done:
            return await self._finish(
                key, ctx, ActionPhase.UNDONE, None, progress.message, {"undone_at": self.clock()},
                expect={ActionPhase.SUCCEEDED},
            )  # fmt: skip
        # Left as it is (someone changed the object since): the record stays Succeeded and says why, and
        # the undo is not due again (domain.actions.undo_due).
        reason = progress.reason or reasons.UNDO_SKIPPED
        update = {"reason": reasons.UNDO_SKIPPED, "message": clip(progress.message)}
        metrics.ACTIONS.labels(str(ctx.record.type), "undo-skipped").inc()
        return await self._step(
            key, ctx, {ActionPhase.SUCCEEDED}, update, reason, f"{ctx.record.name}: {progress.message}", warning=True
        )

    async def undo_once(self, ctx: base.Context, module: base.Action) -> base.Progress:
        """One undo, a conflict (the object changed between the read and the write) retried on a fresh read."""
        for _ in range(_CONFLICT_ATTEMPTS):
            try:
                return await module.undo(dataclasses.replace(ctx, now=self.clock()))
            except base.Conflict as exc:
                logger.info("undo of %s: %s; trying again", ctx.record.name, exc)
        return base.Progress.waiting(f"the object kept changing ({_CONFLICT_ATTEMPTS} attempts)")

    # -- deletion -------------------------------------------------------------------------------------

    async def undo_for_deletion(self, key: Key, seen: Seen) -> None:
        """Undo every change of a deleted incident that awaits one (Kopf's delete handler calls this
        before the finalizer goes); raise :class:`UndoFailed` to be tried again."""
        for record in seen.incident.status.actions:
            if not acting.undo_on_delete(record):
                continue
            ctx = self._context(seen, record)
            progress = await self.undo_once(ctx, self.modules(record.type))
            if not (progress.done or progress.failed):
                raise UndoFailed(f"{record.name}: {progress.message or 'not undone yet'}")
            logger.info("incident %s/%s deleted: %s %s", *key, record.name, progress.message)

    # -- writing the ledger ------------------------------------------------------------------------------

    async def _finish(
        self,
        key: Key,
        ctx: base.Context,
        phase: ActionPhase,
        reason: str | None,
        message: str,
        extra: Mapping[str, Any] | None = None,
        *,
        event: str | None = None,
        expect: set[ActionPhase] | None = None,
    ) -> Incident | None:
        record = ctx.record
        step_name = _STEP_OF[phase]
        update: dict[str, Any] = {
            **(extra or {}),
            "phase": phase,
            "reason": reason,
            "message": clip(message),
            "finished_at": self.clock(),
        }
        if event is None:
            event = (
                reasons.ACTION_RATE_LIMITED
                if reason == reasons.RATE_LIMITED
                else acting.event_reason(record.type, step_name)
            )
        expected = expect or {ActionPhase.PENDING, ActionPhase.RUNNING}
        warning = phase is ActionPhase.FAILED
        written = await self._step(key, ctx, expected, update, event, f"{record.name}: {message}", warning=warning)
        if written is not None:
            metrics.ACTIONS.labels(str(record.type), step_name).inc()
        return written

    async def _step(
        self,
        key: Key,
        ctx: base.Context,
        expect: set[ActionPhase],
        update: Mapping[str, Any],
        event: str,
        message: str,
        *,
        warning: bool = False,
    ) -> Incident | None:
        entry = timeline.entry(self.clock(), event, message)
        name = ctx.record.name

        def compute(fresh: Incident) -> IncidentStatus | None:
            return acting.step(fresh.status, name, expect=expect, update=update, entry=entry)

        transition = Transition("Warning" if warning else "Normal", event, clip(message))
        return await self.ledger.change(key, ctx.incident.metadata.uid or "", compute, (transition,))


_STEP_OF: Final = {
    ActionPhase.SKIPPED: "skipped",
    ActionPhase.RUNNING: "started",
    ActionPhase.SUCCEEDED: "succeeded",
    ActionPhase.FAILED: "failed",
    ActionPhase.UNDONE: "undone",
}


def _record(incident: Incident, name: str) -> ActionRecord | None:
    return next((r for r in incident.status.actions if r.name == name), None)


def _resolved(incident: Incident) -> bool:
    return cond.is_true(incident.status.conditions, cond.RESOLVED)


def _plan_fields(record: ActionRecord, planned: base.Planned) -> dict[str, Any]:
    # The domain's own undo marks (undo on resolve) stay; the module adds what its undo needs.
    undo = {**(record.undo or {}), **planned.undo}
    return {
        "target": planned.target[:512],
        "plan": clip(planned.summary, 4096),
        "changes": list(planned.changes)[:16],
        "undo": undo or None,
    }
