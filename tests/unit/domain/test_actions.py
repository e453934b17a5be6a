"""Which actions an incident gets and the guards on each: requests, approval, the rate limit, protected
namespaces, dry runs, moot requests, undo, and who is told when an action did not happen."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incidentops.api import reasons
from incidentops.api.incident import ActionPhase, ActionRecord, ActionType, IncidentStatus
from incidentops.domain import actions as acting
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, Simulation, at, incident, level, mark, policy, with_status

ROLLBACK = {"name": "roll-back", "rollback": {"deployment": "cart"}}
SCALE = {"name": "scale-up", "scale": {"deployment": "cart", "replicas": 6}}
MAINTENANCE = {"name": "maintenance", "maintenance": {"service": "cart", "backend": {"selector": {"app": "sorry"}}}}


def with_remediation(*rules: dict[str, Any], **spec: Any) -> Any:
    p = policy(levels=[level("on-call")])
    body = p.spec.to_dict()
    body["remediation"] = list(rules)
    body.update(spec)
    return p.model_copy(update={"spec": type(p.spec).model_validate(body)})


def ledger_of(inc: Any, p: Any, *, recent: int = 0, now: datetime.datetime | None = None) -> acting.LedgerDecision:
    selection = select_policy(inc, [p] if p is not None else [], OPERATOR_NS)
    return acting.ledger(
        inc, selection, resolved=False, operator_namespace=OPERATOR_NS, recent=recent, now=now or at(1)
    )


def phases(decision: acting.LedgerDecision) -> dict[str, tuple[ActionPhase, str | None]]:
    return {r.name: (r.phase, r.reason) for r in decision.records}


# --- requests ---------------------------------------------------------------------------------------


def test_spec_actions_and_matching_remediation_with_evidence_first() -> None:
    p = with_remediation(
        {"when": {"severities": ["P1"]}, "actions": [ROLLBACK]},
        {"when": {"severities": ["P3"]}, "actions": [SCALE]},
        {"when": {"labels": {"team": "cart"}}, "actions": [MAINTENANCE], "approval": "required"},
    )
    inc = incident(severity="P1", labels={"team": "cart"}, actions=[{"name": "scale-up", "scale": {"replicas": 2}}])
    requested = acting.requests(inc, select_policy(inc, [p], OPERATOR_NS))
    assert [r.name for r in requested] == [acting.EVIDENCE_FIRST, "scale-up", "roll-back", "maintenance"]
    by_name = {r.name: r for r in requested}
    assert by_name["scale-up"].origin.value == "spec"  # the spec's wins over a remediation of the same name
    assert by_name["maintenance"].needs_approval and not by_name["roll-back"].needs_approval
    assert by_name[acting.EVIDENCE_FIRST].template.type is ActionType.SNAPSHOT


def test_no_evidence_first_when_the_policy_says_so_or_a_snapshot_is_asked_for() -> None:
    p = with_remediation({"actions": [ROLLBACK]}, evidence={"beforeActions": False})
    inc = incident(severity="P1")
    assert [r.name for r in acting.requests(inc, select_policy(inc, [p], OPERATOR_NS))] == ["roll-back"]
    snap = {"name": "logs", "snapshot": {"logs": True}}
    inc = incident(severity="P1", actions=[ROLLBACK, snap])
    p = with_remediation()
    assert [r.name for r in acting.requests(inc, select_policy(inc, [p], OPERATOR_NS))] == ["logs", "roll-back"]


# --- the ledger ---------------------------------------------------------------------------------------


def test_a_new_action_is_pending_once_with_a_stable_key() -> None:
    inc = incident(severity="P1", actions=[SCALE])
    first = ledger_of(inc, with_remediation())
    assert phases(first) == {"scale-up": (ActionPhase.PENDING, None)}
    again = ledger_of(with_status(inc, IncidentStatus(actions=first.records)), with_remediation())
    assert again.records == first.records and again.transitions == ()
    assert first.records[0].key == acting.action_key("uid-1", "scale-up")


def test_approval_required_waits_and_an_approval_lets_it_go_with_who() -> None:
    inc = incident(severity="P1", actions=[{**SCALE, "approval": "required"}])
    waiting = ledger_of(inc, with_remediation())
    assert phases(waiting) == {"scale-up": (ActionPhase.AWAITING_APPROVAL, reasons.APPROVAL_REQUIRED)}
    assert [t.reason for t in waiting.transitions] == [reasons.ACTION_AWAITING_APPROVAL]
    approved = inc.model_copy(
        update={"spec": inc.spec.model_copy(update={"approvals": [_approval("scale-up", "bob")]})}
    )
    after = ledger_of(with_status(approved, IncidentStatus(actions=waiting.records)), with_remediation())
    assert phases(after) == {"scale-up": (ActionPhase.PENDING, None)}
    assert after.records[0].approved_by == "bob"
    assert [t.reason for t in after.transitions] == [reasons.ACTION_APPROVED]


def _approval(action: str, by: str) -> Any:
    from incidentops.api.incident import ActionApproval

    return ActionApproval(action=action, by=by, at=at(2))


def test_a_protected_namespace_is_refused_whatever_else() -> None:
    inc = incident(severity="P1", namespace=OPERATOR_NS, actions=[SCALE])
    assert phases(ledger_of(inc, with_remediation())) == {
        "scale-up": (ActionPhase.SKIPPED, reasons.PROTECTED_NAMESPACE)
    }
    p = with_remediation(guards={"protectedNamespaces": ["team"]})
    inc = incident(severity="P1", actions=[SCALE])
    assert phases(ledger_of(inc, p)) == {"scale-up": (ActionPhase.SKIPPED, reasons.PROTECTED_NAMESPACE)}
    # A snapshot changes nothing where it reads: it runs in a protected namespace too.
    snap = incident(severity="P1", namespace=OPERATOR_NS, actions=[{"name": "logs", "snapshot": {}}])
    assert phases(ledger_of(snap, with_remediation())) == {"logs": (ActionPhase.PENDING, None)}


def test_the_rate_limit_counts_what_ran_and_what_this_look_admits() -> None:
    p = with_remediation(guards={"maxActionsPerHour": 2})
    inc = incident(severity="P1", actions=[SCALE, ROLLBACK, MAINTENANCE])
    decision = ledger_of(inc, p, recent=1)
    got = phases(decision)
    # evidence-first is a snapshot: it changes nothing, so it neither counts nor is limited.
    pending = [name for name, (phase, _) in got.items() if phase is ActionPhase.PENDING]
    assert pending == [acting.EVIDENCE_FIRST, "scale-up"]
    limited = [name for name, (_, reason) in got.items() if reason == reasons.RATE_LIMITED]
    assert limited == ["roll-back", "maintenance"]
    assert [t.reason for t in decision.transitions].count(reasons.ACTION_RATE_LIMITED) == 2


def test_dry_runs_are_planned_not_counted() -> None:
    p = with_remediation(guards={"dryRun": True, "maxActionsPerHour": 0})
    decision = ledger_of(incident(severity="P1", actions=[SCALE]), p)
    [record] = decision.records
    assert (record.phase, record.dry_run) == (ActionPhase.PENDING, True)
    drill = ledger_of(incident(severity="P1", drill=True, actions=[SCALE]), with_remediation())
    assert drill.records[0].dry_run is True


def test_waiting_requests_that_went_away_or_outlived_the_incident_are_superseded() -> None:
    inc = incident(severity="P1", actions=[{**SCALE, "approval": "required"}])
    waiting = ledger_of(inc, with_remediation()).records
    gone = with_status(
        inc.model_copy(update={"spec": inc.spec.model_copy(update={"actions": []})}), IncidentStatus(actions=waiting)
    )
    assert phases(ledger_of(gone, with_remediation())) == {"scale-up": (ActionPhase.SKIPPED, reasons.SUPERSEDED)}
    selection = select_policy(inc, [with_remediation()], OPERATOR_NS)
    resolved = acting.ledger(
        with_status(inc, IncidentStatus(actions=waiting)),
        selection,
        resolved=True,
        operator_namespace=OPERATOR_NS,
        recent=0,
        now=at(3),
    )
    assert phases(resolved) == {"scale-up": (ActionPhase.SKIPPED, reasons.SUPERSEDED)}


# --- undo --------------------------------------------------------------------------------------------


def _done(action_type: ActionType, **fields: Any) -> ActionRecord:
    return ActionRecord(name="a", type=action_type, phase=ActionPhase.SUCCEEDED, key="k", **fields)


def test_undo_on_resolve_on_request_and_never_twice() -> None:
    inc = incident(severity="P1")
    maintenance = _done(ActionType.MAINTENANCE, undo={acting.UNDO_ON_RESOLVE: "true", "selector": "{}"})
    assert acting.undo_due(inc, maintenance, resolved=True)
    assert not acting.undo_due(inc, maintenance, resolved=False)
    quarantine = _done(ActionType.QUARANTINE)
    assert not acting.undo_due(inc, quarantine, resolved=True)  # released by a person only
    asked = inc.model_copy(update={"spec": inc.spec.model_copy(update={"undo": [_undo("a")]})})
    assert acting.undo_due(asked, quarantine, resolved=False)
    assert not acting.undo_due(asked, _done(ActionType.ROLLBACK), resolved=True)  # a rollback is never undone
    skipped = maintenance.model_copy(update={"reason": reasons.UNDO_SKIPPED})
    assert not acting.undo_due(inc, skipped, resolved=True)
    assert not acting.undo_due(inc, maintenance.model_copy(update={"dry_run": True}), resolved=True)


def _undo(action: str) -> Any:
    from incidentops.api.incident import UndoRequest

    return UndoRequest(action=action, by="bob", at=at(2))


def test_deletion_waits_only_for_a_change_in_place() -> None:
    inc = incident(severity="P1")
    assert not acting.awaits_undo(inc)
    maintenance = _done(ActionType.MAINTENANCE, undo={acting.UNDO_ON_RESOLVE: "true"})
    assert acting.awaits_undo(with_status(inc, IncidentStatus(actions=[maintenance])))
    assert acting.awaits_undo(with_status(inc, IncidentStatus(actions=[_done(ActionType.QUARANTINE)])))
    undone = maintenance.model_copy(update={"phase": ActionPhase.UNDONE})
    scaled = _done(ActionType.SCALE)  # no restoreOnResolve: the new count stays
    assert not acting.awaits_undo(with_status(inc, IncidentStatus(actions=[undone, scaled])))


# --- the budget ---------------------------------------------------------------------------------------


def test_recent_actions_counts_the_last_hour_and_what_is_about_to_start() -> None:
    now = at(120)

    names = iter(f"a{i}" for i in range(100))

    def rec(phase: ActionPhase, started: float | None = None, dry: bool = False) -> ActionRecord:
        return ActionRecord(
            name=next(names),
            type=ActionType.SCALE,
            phase=phase,
            key="k",
            started_at=at(started) if started is not None else None,
            dry_run=dry or None,
        )

    statuses = [
        IncidentStatus(
            actions=[rec(ActionPhase.SUCCEEDED, 100), rec(ActionPhase.PENDING), rec(ActionPhase.FAILED, 30)]
        ),
        IncidentStatus(actions=[rec(ActionPhase.SUCCEEDED, 119, dry=True), rec(ActionPhase.RUNNING, 61)]),
    ]
    assert acting.recent_actions(statuses, now) == 3  # 100 and 61 (within the hour) and the Pending one


# --- through plan: Events and who is told -----------------------------------------------------------------


def test_a_failed_or_rate_limited_action_is_told_to_those_paged_once() -> None:
    p = with_remediation({"actions": [SCALE]}, guards={"maxActionsPerHour": 1})
    sim = Simulation(incident(severity="P1", actions=[{"name": "other", "scale": {"replicas": 3}}]), [p])
    result = sim.step(at(0))
    limited = [r for r in result.status.actions if r.reason == reasons.RATE_LIMITED]
    assert [r.name for r in limited] == ["scale-up"]
    told = [d for _, d in sim.events("action")]
    assert [(d.channel, d.detail) for d in told] == [("pager", "scale-up")]
    sim.run([at(1), at(2)])
    assert len(sim.events("action")) == 1  # once


def test_planning_keeps_the_ledger_idempotent_and_posts_its_events_once() -> None:
    p = with_remediation({"actions": [SCALE], "approval": "required"})
    inc = incident(severity="P1")
    selection = select_policy(inc, [p], OPERATOR_NS)
    first = plan(inc, selection, at(0))
    assert reasons.ACTION_AWAITING_APPROVAL in [t.reason for t in first.transitions]
    again = plan(with_status(inc, first.status), selection, at(1))
    assert reasons.ACTION_AWAITING_APPROVAL not in [t.reason for t in again.transitions]
    assert [e.kind for e in again.status.timeline].count(reasons.ACTION_AWAITING_APPROVAL) == 1


@settings(max_examples=80, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=4),
    recent=st.integers(min_value=0, max_value=6),
    count=st.integers(min_value=0, max_value=5),
)
def test_never_more_admitted_than_the_limit_allows(limit: int, recent: int, count: int) -> None:
    p = with_remediation(guards={"maxActionsPerHour": limit})
    actions = [{"name": f"s{i}", "scale": {"deployment": "cart", "replicas": i}} for i in range(count)]
    decision = ledger_of(incident(severity="P1", actions=actions), p, recent=recent)
    admitted = [r for r in decision.records if r.phase is ActionPhase.PENDING]
    assert len(admitted) == max(0, min(count, limit - recent))


def test_resolution_with_a_pending_snapshot_still_collects_evidence() -> None:
    inc = incident(severity="P1", actions=[{"name": "logs", "snapshot": {}}], resolution=mark(0))
    selection = select_policy(inc, [with_remediation()], OPERATOR_NS)
    decision = acting.ledger(inc, selection, resolved=True, operator_namespace=OPERATOR_NS, recent=0, now=at(1))
    assert phases(decision) == {"logs": (ActionPhase.PENDING, None)}


def test_evidence_first_nothing_else_starts_while_a_snapshot_is_to_finish() -> None:
    records = [
        ActionRecord(name="evidence-first", type=ActionType.SNAPSHOT, phase=ActionPhase.RUNNING, key="a"),
        ActionRecord(name="roll-back", type=ActionType.ROLLBACK, phase=ActionPhase.PENDING, key="b"),
        ActionRecord(name="old", type=ActionType.MAINTENANCE, phase=ActionPhase.SUCCEEDED, key="c",
                     undo={acting.UNDO_ON_RESOLVE: "true"}),
    ]  # fmt: skip
    inc = with_status(incident(severity="P1"), IncidentStatus(actions=records))
    assert [r.name for r in acting.runnable(inc, resolved=False)] == ["evidence-first"]
    assert [r.name for r in acting.runnable(inc, resolved=True)] == ["evidence-first", "old"]
    done = [records[0].model_copy(update={"phase": ActionPhase.SUCCEEDED}), *records[1:]]
    inc = with_status(inc, IncidentStatus(actions=done))
    assert [r.name for r in acting.runnable(inc, resolved=False)] == ["roll-back"]
