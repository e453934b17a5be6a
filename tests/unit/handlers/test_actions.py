"""The action runner against an in-memory ledger and a scripted module, in loop time: the order of its steps
(Running recorded before any change), dry runs, skips, a crash resumed without doing it twice, conflicts,
verification that times out, undo, and a record moved by someone else."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from incidentops.actions import base
from incidentops.api import Incident, reasons
from incidentops.api import conditions as cond
from incidentops.api.incident import ActionPhase, ActionRecord, ActionType, IncidentStatus, PlannedChange
from incidentops.domain import actions as acting
from incidentops.domain.decisions import Transition
from incidentops.domain.selection import select_policy
from incidentops.handlers.actions import ActionRunner, Seen, UndoFailed
from tests.unit.domain.builders import OPERATOR_NS, at, incident, policy, with_status

KEY = ("team", "inc")
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def clock() -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=asyncio.get_running_loop().time())


@dataclass
class MemoryLedger:
    """The reconciler's side: an incident, and every status write as it happened."""

    incident: Incident
    writes: list[IncidentStatus] = field(default_factory=list)
    events: list[Transition] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    async def seen(self, key: Any) -> Seen | None:
        selection = select_policy(self.incident, [policy(levels=[])], OPERATOR_NS)
        return Seen(self.incident, selection)

    async def change(
        self,
        key: Any,
        uid: str,
        compute: Callable[[Incident], IncidentStatus | None],
        transitions: Sequence[Transition] = (),
    ) -> Incident | None:
        status = compute(self.incident)
        if status is None:
            return None
        self.incident = with_status(self.incident, status)
        self.writes.append(status)
        self.events += transitions
        record = status.actions[0] if status.actions else None
        self.log.append(f"write {record.phase.value if record else '-'}")
        return self.incident

    def record(self) -> ActionRecord:
        return self.incident.status.actions[0]


@dataclass
class Scripted:
    """A module whose answers the test sets; it logs every call."""

    log: list[str]
    type: ActionType = ActionType.SCALE
    skip: base.Skip | None = None
    applied_: bool = False
    conflicts: int = 0
    verify_after: int = 0
    verify_fails: bool = False
    undo_fails: bool = False
    verifies: int = 0

    async def plan(self, ctx: base.Context) -> base.Planned | base.Skip:
        self.log.append("plan")
        if self.skip is not None:
            return self.skip
        change = PlannedChange(object="Deployment team/cart", field="spec.replicas", old="2", new="6")
        return base.Planned(
            target="Deployment team/cart",
            summary="scale Deployment team/cart from 2 to 6 replicas",
            changes=(change,),
            undo={"replicas": "2"},
            verify_within=datetime.timedelta(seconds=30),
        )

    async def applied(self, ctx: base.Context) -> bool:
        self.log.append("applied?")
        return self.applied_

    async def execute(self, ctx: base.Context, planned: base.Planned) -> base.Executed:
        assert ctx.record.phase is ActionPhase.RUNNING, "executed before Running was recorded"
        if self.conflicts:
            self.conflicts -= 1
            self.log.append("execute: conflict")
            raise base.Conflict("changed")
        self.log.append("execute")
        return base.Executed(message="replicas set to 6")

    async def verify(self, ctx: base.Context) -> base.Progress:
        self.verifies += 1
        self.log.append("verify")
        if self.verify_fails:
            return base.Progress.waiting("2 of 6 ready")
        if self.verifies > self.verify_after:
            return base.Progress.ok("6 of 6 ready")
        return base.Progress.waiting(f"{self.verifies} of 6 ready")

    async def undo(self, ctx: base.Context) -> base.Progress:
        self.log.append("undo")
        if self.undo_fails:
            return base.Progress.failure(reasons.UNDO_SKIPPED, "the Deployment was scaled by someone else since")
        return base.Progress.ok("replicas back to 2")


def pending(**record: Any) -> Incident:
    inc = incident(severity="P1", actions=[{"name": "scale-up", "scale": {"deployment": "cart", "replicas": 6}}])
    values: dict[str, Any] = {
        "name": "scale-up",
        "type": ActionType.SCALE,
        "phase": ActionPhase.PENDING,
        "key": acting.action_key("uid-1", "scale-up"),
        **record,
    }
    return with_status(inc, IncidentStatus(actions=[ActionRecord(**values)]))


async def run(ledger: MemoryLedger, module: Scripted) -> None:
    runner = ActionRunner("api", ledger, clock, lambda _: module, operator_namespace=OPERATOR_NS)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(0)
    runner.submit(KEY, ledger.incident)
    await runner.drain()
    stop.set()
    await task


@pytest.mark.looptime
async def test_running_is_recorded_before_any_change_then_verified_to_success() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(), log=log)
    module = Scripted(log, verify_after=2)
    await run(ledger, module)
    assert log[:5] == ["plan", "write Running", "applied?", "plan", "execute"]
    record = ledger.record()
    assert record.phase is ActionPhase.SUCCEEDED
    assert record.plan == "scale Deployment team/cart from 2 to 6 replicas"
    assert record.changes[0].new == "6" and record.undo == {"replicas": "2"}
    assert record.started_at is not None and record.verify_by == record.started_at + datetime.timedelta(seconds=30)
    assert log.count("verify") == 3
    assert [e.reason for e in ledger.events] == [reasons.ACTION_STARTED, reasons.SCALED]
    assert [e.kind for e in ledger.incident.status.timeline] == [reasons.ACTION_STARTED, reasons.SCALED]


@pytest.mark.looptime
async def test_a_dry_run_records_the_plan_and_changes_nothing() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(dry_run=True), log=log)
    await run(ledger, Scripted(log))
    assert "execute" not in log and "applied?" not in log
    record = ledger.record()
    assert (record.phase, record.reason, record.dry_run) == (ActionPhase.SKIPPED, reasons.DRY_RUN, True)
    assert record.plan and record.changes and "would scale" in (record.message or "")
    assert [e.reason for e in ledger.events] == [reasons.ACTION_PLANNED]


@pytest.mark.looptime
async def test_a_skip_is_recorded_with_its_reason() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(), log=log)
    await run(ledger, Scripted(log, skip=base.Skip(reasons.DEPLOYMENT_PAUSED, "Deployment team/cart is paused")))
    record = ledger.record()
    assert (record.phase, record.reason) == (ActionPhase.SKIPPED, reasons.DEPLOYMENT_PAUSED)
    assert "execute" not in log


@pytest.mark.looptime
async def test_after_a_crash_a_change_already_made_is_not_made_again() -> None:
    log: list[str] = []
    ledger = MemoryLedger(
        pending(phase=ActionPhase.RUNNING, started_at=at(0), verify_by=EPOCH + datetime.timedelta(hours=1)), log=log
    )
    await run(ledger, Scripted(log, applied_=True))
    assert "execute" not in log
    assert ledger.record().phase is ActionPhase.SUCCEEDED


@pytest.mark.looptime
async def test_after_a_crash_before_the_change_it_is_made_once() -> None:
    log: list[str] = []
    ledger = MemoryLedger(
        pending(phase=ActionPhase.RUNNING, started_at=at(0), verify_by=EPOCH + datetime.timedelta(hours=1)), log=log
    )
    await run(ledger, Scripted(log, applied_=False))
    assert log.count("execute") == 1
    assert ledger.record().phase is ActionPhase.SUCCEEDED


@pytest.mark.looptime
async def test_a_conflict_plans_again_and_too_many_fail() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(), log=log)
    await run(ledger, Scripted(log, conflicts=2))
    assert log.count("execute: conflict") == 2 and log.count("execute") == 1
    assert ledger.record().phase is ActionPhase.SUCCEEDED
    log2: list[str] = []
    ledger2 = MemoryLedger(pending(), log=log2)
    await run(ledger2, Scripted(log2, conflicts=99))
    assert (ledger2.record().phase, ledger2.record().reason) == (ActionPhase.FAILED, reasons.CONFLICT)


@pytest.mark.looptime
async def test_verification_that_never_succeeds_fails_at_its_deadline() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(), log=log)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run(ledger, Scripted(log, verify_fails=True))
    record = ledger.record()
    assert (record.phase, record.reason) == (ActionPhase.FAILED, reasons.VERIFY_TIMED_OUT)
    assert "2 of 6 ready" in (record.message or "")
    assert 30 <= loop.time() - started <= 45  # verifyWithin 30s, looked at with backoff up to 10s
    assert ledger.events[-1].type == "Warning"


@pytest.mark.looptime
async def test_undo_on_resolve_and_an_undo_that_finds_the_object_changed_is_not_tried_again() -> None:
    resolved = with_status(
        pending().model_copy(),
        IncidentStatus(
            conditions=[],
            actions=[
                ActionRecord(
                    name="scale-up",
                    type=ActionType.SCALE,
                    phase=ActionPhase.SUCCEEDED,
                    key="k",
                    undo={acting.UNDO_ON_RESOLVE: "true", "replicas": "2"},
                )
            ],
        ),
    )
    conditions: list[Any] = []
    cond.set_condition(conditions, cond.RESOLVED, True, reasons.RESOLVED_BY, "by bob", EPOCH, 1)
    resolved = with_status(resolved, resolved.status.model_copy(update={"conditions": conditions}))
    log: list[str] = []
    ledger = MemoryLedger(resolved, log=log)
    await run(ledger, Scripted(log))
    record = ledger.record()
    assert record.phase is ActionPhase.UNDONE and record.undone_at is not None
    assert [e.reason for e in ledger.events] == [reasons.SCALE_RESTORED]

    log2: list[str] = []
    ledger2 = MemoryLedger(resolved, log=log2)
    await run(ledger2, Scripted(log2, undo_fails=True))
    record = ledger2.record()
    assert (record.phase, record.reason) == (ActionPhase.SUCCEEDED, reasons.UNDO_SKIPPED)
    assert not acting.undo_due(ledger2.incident, record, resolved=True)


@pytest.mark.looptime
async def test_a_record_someone_else_moved_is_left_to_them() -> None:
    log: list[str] = []
    ledger = MemoryLedger(pending(), log=log)

    class Racing(Scripted):
        async def plan(self, ctx: base.Context) -> base.Planned | base.Skip:
            planned = await super().plan(ctx)
            # Another replica recorded it Running in between.
            ledger.incident = with_status(
                ledger.incident,
                ledger.incident.status.model_copy(
                    update={"actions": [ledger.record().model_copy(update={"phase": ActionPhase.RUNNING})]}
                ),
            )
            return planned

    await run(ledger, Racing(log))
    assert "execute" not in log
    assert ledger.writes == []


@pytest.mark.looptime
async def test_deletion_undoes_what_is_in_place_and_says_when_it_cannot_yet() -> None:
    inc = with_status(
        pending(),
        IncidentStatus(
            actions=[
                ActionRecord(name="scale-up", type=ActionType.SCALE, phase=ActionPhase.SUCCEEDED, key="k",
                             undo={acting.UNDO_ON_RESOLVE: "true"}),
            ]
        ),
    )  # fmt: skip
    log: list[str] = []
    module = Scripted(log)
    ledger = MemoryLedger(inc, log=log)
    runner = ActionRunner("api", ledger, clock, lambda _: module, operator_namespace=OPERATOR_NS)  # type: ignore[arg-type]
    seen = await ledger.seen(KEY)
    assert seen is not None
    await runner.undo_for_deletion(KEY, seen)
    assert log == ["undo"]

    class Slow(Scripted):
        async def undo(self, ctx: base.Context) -> base.Progress:
            return base.Progress.waiting("the Service is being updated")

    slow = ActionRunner("api", ledger, clock, lambda _: Slow(log), operator_namespace=OPERATOR_NS)  # type: ignore[arg-type]
    with pytest.raises(UndoFailed):
        await slow.undo_for_deletion(KEY, seen)


@pytest.mark.looptime
async def test_evidence_stored_before_a_crash_is_recorded_after_it() -> None:
    from incidentops.api.incident import EvidenceRecord

    stored = EvidenceRecord(name="scale-up", ref="incidentops-evidence-abc", sha256="0" * 64, bytes=10, items=2,
                            collected_at=EPOCH)  # fmt: skip

    class Snapshotting(Scripted):
        async def evidence(self, ctx: base.Context) -> EvidenceRecord | None:
            self.log.append("evidence")
            return stored

    log: list[str] = []
    ledger = MemoryLedger(
        pending(phase=ActionPhase.RUNNING, started_at=at(0), verify_by=EPOCH + datetime.timedelta(hours=1)), log=log
    )
    await run(ledger, Snapshotting(log, applied_=True))
    assert "execute" not in log and "evidence" in log
    assert [e.ref for e in ledger.incident.status.evidence] == ["incidentops-evidence-abc"]
    assert ledger.record().phase is ActionPhase.SUCCEEDED


@pytest.mark.looptime
async def test_what_waited_for_the_evidence_starts_once_it_is_recorded_without_another_look() -> None:
    inc = incident(
        severity="P1",
        actions=[
            {"name": "evidence", "snapshot": {}},
            {"name": "scale-up", "scale": {"deployment": "cart", "replicas": 6}},
        ],
    )
    records = [
        ActionRecord(name=name, type=type_, phase=ActionPhase.PENDING, key=acting.action_key("uid-1", name))
        for name, type_ in (("evidence", ActionType.SNAPSHOT), ("scale-up", ActionType.SCALE))
    ]
    log: list[str] = []
    ledger = MemoryLedger(with_status(inc, IncidentStatus(actions=records)), log=log)
    modules = {ActionType.SNAPSHOT: Scripted(log, type=ActionType.SNAPSHOT), ActionType.SCALE: Scripted(log)}
    runner = ActionRunner("api", ledger, clock, modules.__getitem__, operator_namespace=OPERATOR_NS)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.sleep(0)
    runner.submit(KEY, ledger.incident)  # the only look
    await runner.drain()
    stop.set()
    await task
    phases = {r.name: r.phase for r in ledger.incident.status.actions}
    assert phases == {"evidence": ActionPhase.SUCCEEDED, "scale-up": ActionPhase.SUCCEEDED}
    evidence, scale = ledger.incident.status.actions
    assert evidence.finished_at is not None and scale.started_at is not None
    assert evidence.finished_at <= scale.started_at
