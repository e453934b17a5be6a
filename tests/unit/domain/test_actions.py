"""Which actions an incident gets and the guards on each: requests, approval, the rate limit, protected
namespaces, dry runs, moot requests, undo, and who is told when an action did not happen."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incidentops.api import reasons
from incidentops.api.incident import ActionPhase, ActionRecord, ActionType, IncidentStatus, TimelineEntry
from incidentops.domain import actions as acting
from incidentops.domain.plan import plan
from incidentops.domain.selection import select_policy

from .builders import OPERATOR_NS, Simulation, at, examples, incident, level, mark, policy, with_spec, with_status

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


# --- which remediation rules apply ----------------------------------------------------------------------


@settings(max_examples=examples(60), deadline=None)
@given(
    severity=st.sampled_from(["P1", "P2", "P3", "P4"]),
    kind=st.none() | st.sampled_from(["availability", "security", "data"]),
    team=st.sampled_from(["cart", "search"]),
    severities=st.lists(st.sampled_from(["P1", "P2", "P3", "P4"]), max_size=2, unique=True),
    types=st.lists(st.sampled_from(["availability", "security", "data"]), max_size=2, unique=True),
    labels=st.none() | st.sampled_from([{"team": "cart"}, {"team": "search"}, {"team": "cart", "tier": "web"}]),
)
def test_a_remediation_rule_applies_exactly_when_each_of_its_conditions_holds(
    severity: str,
    kind: str | None,
    team: str,
    severities: list[str],
    types: list[str],
    labels: dict[str, str] | None,
) -> None:
    when: dict[str, Any] = {"severities": severities, "types": types}
    if labels is not None:
        when["labels"] = labels
    p = with_remediation({"when": when, "actions": [SCALE]})
    inc = incident(severity=severity, type=kind, labels={"team": team})
    expected = (
        (not severities or severity in severities)
        and (not types or kind in types)
        and all({"team": team}.get(k) == v for k, v in (labels or {}).items())
    )
    requested = acting.requests(inc, select_policy(inc, [p], OPERATOR_NS))
    assert [r.name for r in requested] == (["scale-up"] if expected else [])


def test_a_rule_for_other_severities_types_or_labels_does_not_apply() -> None:
    for when in (
        {"severities": ["P3"]},
        {"types": ["security"]},
        {"labels": {"team": "search"}},
        {"severities": ["P1"], "types": ["security"]},
    ):
        p = with_remediation({"when": when, "actions": [SCALE]})
        inc = incident(severity="P1", type="availability", labels={"team": "cart"})
        assert acting.requests(inc, select_policy(inc, [p], OPERATOR_NS)) == [], when
    # A rule for some types does not apply to an incident of no type.
    p = with_remediation({"when": {"types": ["availability"]}, "actions": [SCALE]})
    untyped = incident(severity="P1")
    assert acting.requests(untyped, select_policy(untyped, [p], OPERATOR_NS)) == []
    typed = incident(severity="P1", type="availability")
    assert [r.name for r in acting.requests(typed, select_policy(typed, [p], OPERATOR_NS))] == ["scale-up"]


def test_the_ledger_says_where_each_action_came_from() -> None:
    p = with_remediation({"actions": [ROLLBACK]})
    inc = incident(severity="P1", actions=[SCALE])
    origins = {r.name: r.origin.value if r.origin else None for r in ledger_of(inc, p).records}
    assert origins == {acting.EVIDENCE_FIRST: "remediation", "scale-up": "spec", "roll-back": "remediation"}
    selection = select_policy(inc, [p], OPERATOR_NS)
    assert set(acting.templates(inc, selection)) == set(origins)
    assert acting.templates(inc, selection)["roll-back"].type is ActionType.ROLLBACK


# --- the idempotency key ----------------------------------------------------------------------------------


def test_the_key_is_the_documented_hash_so_every_version_and_replica_agrees() -> None:
    # Known answer: sha256 of "incidentops/action/v1", the uid and the name joined by U+001F. A key
    # already written by another replica or an earlier release must be found again.
    assert acting.action_key("uid-1", "scale-up") == (
        "e4490c760bd4ed6d6d77829013e2a2677439dcfb9133009bac5815aa47be33f6"
    )
    assert acting.action_key("uid-1", "scale-up") != acting.action_key("uid-2", "scale-up")
    assert acting.action_key("uid-1", "scale-up") != acting.action_key("uid-1", "roll-back")


# --- approval ------------------------------------------------------------------------------------------------


def _approved(inc: Any, *names: str) -> Any:
    """``inc`` with ``spec.approvals`` for ``names``, by bob."""
    approvals = [_approval(name, "bob") for name in names]
    return inc.model_copy(update={"spec": inc.spec.model_copy(update={"approvals": approvals})})


def test_approval_is_by_name_the_approval_of_another_action_approves_nothing() -> None:
    inc = incident(
        severity="P1",
        actions=[{**SCALE, "approval": "required"}, {**ROLLBACK, "approval": "required", "approved": True}],
    )
    got = ledger_of(inc, with_remediation(evidence={"beforeActions": False}))
    by_name = {r.name: r for r in got.records}
    assert by_name["scale-up"].phase is ActionPhase.AWAITING_APPROVAL
    assert by_name["roll-back"].phase is ActionPhase.PENDING
    # The approved_by of a spec approval says where the approval is (the audit log says who wrote it).
    assert by_name["roll-back"].approved_by == "spec.actions[].approved"
    assert acting.approval_of(inc, "scale-up") is None


def test_an_approval_given_before_the_first_look_is_recorded_with_who() -> None:
    inc = _approved(incident(severity="P1", actions=[{**SCALE, "approval": "required"}]), "scale-up")
    [record] = ledger_of(inc, with_remediation()).records
    assert (record.phase, record.approved_by) == (ActionPhase.PENDING, "bob")


def test_events_are_warnings_for_refusals_and_normal_for_approval() -> None:
    p = with_remediation(guards={"maxActionsPerHour": 0, "protectedNamespaces": ["payments"]})
    inc = incident(
        severity="P1",
        targets=[{"kind": "Deployment", "name": "pay", "namespace": "payments"}],
        actions=[
            {"name": "scale-all", "scale": {"replicas": 3}},  # the targets' namespaces: protected
            SCALE,  # this namespace's cart: rate limited
            {**MAINTENANCE, "approval": "required"},
        ],
    )
    decision = ledger_of(inc, p)
    kinds = {(t.reason, t.type) for t in decision.transitions}
    assert kinds == {
        (reasons.ACTION_SKIPPED, "Warning"),
        (reasons.ACTION_RATE_LIMITED, "Warning"),
        (reasons.ACTION_AWAITING_APPROVAL, "Normal"),
    }
    skipped = next(t for t in decision.transitions if t.reason == reasons.ACTION_SKIPPED)
    assert "scale-all" in skipped.message and "payments" in skipped.message
    approved = _approved(inc, "maintenance")
    again = ledger_of(with_status(approved, IncidentStatus(actions=decision.records)), p.model_copy())
    [told] = [t for t in again.transitions if t.reason == reasons.ACTION_APPROVED]
    assert told.type == "Normal" and "maintenance" in told.message and "bob" in told.message


def test_an_approval_does_not_bypass_the_rate_limit_and_a_record_says_why_it_did_not_run() -> None:
    p = with_remediation(guards={"maxActionsPerHour": 1})
    inc = incident(severity="P1", actions=[{**SCALE, "approval": "required"}])
    waiting = ledger_of(inc, p).records
    assert waiting[0].message and "scale-up" in waiting[0].message
    approved = _approved(inc, "scale-up")
    later = with_status(approved, IncidentStatus(actions=waiting))
    [limited] = ledger_of(later, p, recent=1, now=at(5)).records
    assert (limited.phase, limited.reason, limited.finished_at) == (ActionPhase.SKIPPED, reasons.RATE_LIMITED, at(5))
    assert limited.message and "scale-up" in limited.message
    [admitted] = ledger_of(later, p, recent=0, now=at(5)).records
    # Admitted: the waiting message is gone, so the record does not say it still waits.
    assert (admitted.phase, admitted.reason, admitted.message) == (ActionPhase.PENDING, None, None)
    assert admitted.approved_by == "bob"


def test_without_a_policy_no_change_is_admitted_but_evidence_is_taken() -> None:
    # No policy, no guards to hold a change to: the budget is zero; a snapshot changes nothing.
    inc = incident(severity="P1", actions=[{"name": "logs", "snapshot": {}}, SCALE])
    assert phases(ledger_of(inc, None)) == {
        "logs": (ActionPhase.PENDING, None),
        "scale-up": (ActionPhase.SKIPPED, reasons.RATE_LIMITED),
    }


# --- the namespaces an action changes ----------------------------------------------------------------------


def test_an_action_touches_its_own_namespace_and_the_targets_unless_it_names_its_object() -> None:
    inc = incident(
        severity="P1",
        namespace="team",
        targets=[
            {"kind": "Deployment", "name": "a", "namespace": "edge"},
            {"kind": "Deployment", "name": "b"},
        ],
    )
    touched = {
        name: acting.namespaces_touched(inc, acting.ActionTemplate.model_validate({"name": "x", **body}))
        for name, body in {
            "rollback-named": {"rollback": {"deployment": "cart"}},
            "rollback-targets": {"rollback": {}},
            "scale-named": {"scale": {"deployment": "cart", "replicas": 1}},
            "scale-targets": {"scale": {"replicas": 1}},
            "quarantine-named": {"quarantine": {"selector": {"matchLabels": {"app": "cart"}}}},
            "quarantine-targets": {"quarantine": {}},
            "maintenance": {"maintenance": {"service": "cart", "backend": {"selector": {"app": "sorry"}}}},
            "snapshot": {"snapshot": {}},
        }.items()
    }
    assert touched == {
        "rollback-named": {"team"},
        "rollback-targets": {"team", "edge"},
        "scale-named": {"team"},
        "scale-targets": {"team", "edge"},
        "quarantine-named": {"team"},
        "quarantine-targets": {"team", "edge"},
        "maintenance": {"team"},
        "snapshot": set(),
    }


def test_a_target_in_a_protected_namespace_refuses_only_the_actions_that_reach_it() -> None:
    p = with_remediation(guards={"protectedNamespaces": ["edge"]}, evidence={"beforeActions": False})
    inc = incident(
        severity="P1",
        targets=[{"kind": "Deployment", "name": "a", "namespace": "edge"}],
        actions=[{"name": "roll-targets", "rollback": {}}, ROLLBACK, MAINTENANCE],
    )
    assert phases(ledger_of(inc, p)) == {
        "roll-targets": (ActionPhase.SKIPPED, reasons.PROTECTED_NAMESPACE),
        "roll-back": (ActionPhase.PENDING, None),
        "maintenance": (ActionPhase.PENDING, None),
    }


# --- resolution ------------------------------------------------------------------------------------------------


def _resolve(inc: Any, now: datetime.datetime) -> acting.LedgerDecision:
    selection = select_policy(inc, [with_remediation()], OPERATOR_NS)
    return acting.ledger(inc, selection, resolved=True, operator_namespace=OPERATOR_NS, recent=0, now=now)


def test_resolution_supersedes_what_did_not_run_keeps_history_and_evidence() -> None:
    snap = {"name": "logs", "snapshot": {}}
    inc = incident(severity="P1", actions=[snap, SCALE, ROLLBACK, MAINTENANCE])
    first = ledger_of(inc, with_remediation()).records
    done = [r.model_copy(update={"phase": ActionPhase.SUCCEEDED}) if r.name == "roll-back" else r for r in first]
    late = {"name": "late", "scale": {"deployment": "cart", "replicas": 1}}  # asked for after the resolution
    resolved = with_status(
        with_spec(inc, actions=[snap, SCALE, ROLLBACK, MAINTENANCE, late]), IncidentStatus(actions=done)
    )
    decision = _resolve(resolved, at(9))
    by_name = {r.name: r for r in decision.records}
    assert phases(decision) == {
        "logs": (ActionPhase.PENDING, None),
        "scale-up": (ActionPhase.SKIPPED, reasons.SUPERSEDED),
        "roll-back": (ActionPhase.SUCCEEDED, None),
        "maintenance": (ActionPhase.SKIPPED, reasons.SUPERSEDED),
        "late": (ActionPhase.SKIPPED, reasons.SUPERSEDED),
    }
    for name in ("scale-up", "maintenance", "late"):
        assert by_name[name].finished_at == at(9)
        assert by_name[name].message and name in by_name[name].message
    assert by_name["late"].key == acting.action_key("uid-1", "late")


# --- undo on resolve, as the ledger records it -------------------------------------------------------------------


def test_a_record_undoes_on_resolve_exactly_for_maintenance_and_a_restoring_scale() -> None:
    templates = {
        "maintenance": MAINTENANCE,
        "scale-restore": {
            "name": "scale-restore",
            "scale": {"deployment": "cart", "replicas": 6, "restoreOnResolve": True},
        },
        "scale-up": SCALE,
        "roll-back": ROLLBACK,
        "quarantine": {"name": "quarantine", "quarantine": {"selector": {"matchLabels": {"app": "cart"}}}},
    }
    inc = incident(severity="P1", actions=[{**t, "name": n} for n, t in templates.items()])
    records = ledger_of(inc, with_remediation(evidence={"beforeActions": False})).records
    succeeded = [r.model_copy(update={"phase": ActionPhase.SUCCEEDED}) for r in records]
    due = {r.name for r in succeeded if acting.undo_due(inc, r, resolved=True)}
    assert due == {"maintenance", "scale-restore"}
    assert {r.name for r in succeeded if acting.undo_on_delete(r)} == {"maintenance", "scale-restore", "quarantine"}


# --- the budget's window -------------------------------------------------------------------------------------------


def test_the_budget_counts_pending_ones_and_what_started_in_the_last_hour_only() -> None:
    now = at(120)

    def rec(name: str, phase: ActionPhase, started: float | None) -> ActionRecord:
        return ActionRecord(
            name=name,
            type=ActionType.ROLLBACK,
            phase=phase,
            key="k",
            started_at=at(started) if started is not None else None,
        )

    def count(*records: ActionRecord) -> int:
        return acting.recent_actions([IncidentStatus(actions=list(records))], now)

    assert count(rec("p", ActionPhase.PENDING, None)) == 1
    for phase in (ActionPhase.SUCCEEDED, ActionPhase.FAILED, ActionPhase.SKIPPED, ActionPhase.RUNNING):
        assert count(rec("old", phase, 59)) == 0, phase
        assert count(rec("new", phase, 61)) == 1, phase
    assert count(rec("never", ActionPhase.SKIPPED, None)) == 0
    assert count(rec("edge", ActionPhase.SUCCEEDED, 60)) == 0  # an hour ago exactly: out of the window


@settings(max_examples=examples(50), deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=119), max_size=4), min_size=1, max_size=4))
def test_the_budget_counts_every_incident_of_the_policy(starts: list[list[int]]) -> None:
    now = at(120)
    statuses = [
        IncidentStatus(
            actions=[
                ActionRecord(
                    name=f"a{i}", type=ActionType.SCALE, phase=ActionPhase.SUCCEEDED, key="k", started_at=at(s)
                )
                for i, s in enumerate(one)
            ]
        )
        for one in starts
    ]
    assert acting.recent_actions(statuses, now) == sum(1 for one in starts for s in one if s > 60)
    assert acting.recent_actions(statuses, now) == sum(acting.recent_actions([s], now) for s in statuses)


# --- when the budget must be read ------------------------------------------------------------------------------


def test_an_action_may_start_on_a_new_request_or_an_approval_that_came_only() -> None:
    p = with_remediation(evidence={"beforeActions": False})
    inc = incident(severity="P1", actions=[{**SCALE, "approval": "required"}, ROLLBACK])
    selection = select_policy(inc, [p], OPERATOR_NS)
    assert acting.may_start(inc, selection)  # nothing in the ledger yet
    records = ledger_of(inc, p).records
    seen = with_status(inc, IncidentStatus(actions=records))
    assert not acting.may_start(seen, selection)  # one waits without approval, the other is admitted
    approved = _approved(seen, "scale-up")
    assert acting.may_start(approved, selection)
    # An approval for a record that no longer waits starts nothing.
    moved = [r.model_copy(update={"phase": ActionPhase.SUCCEEDED}) for r in records]
    assert not acting.may_start(with_status(approved, IncidentStatus(actions=moved)), selection)
    # A request added later may start.
    more = with_spec(seen, actions=[{**SCALE, "approval": "required"}, ROLLBACK, MAINTENANCE])
    assert acting.may_start(more, selection)


@settings(max_examples=examples(60), deadline=None)
@given(
    asked=st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
    known=st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(
            [ActionPhase.PENDING, ActionPhase.AWAITING_APPROVAL, ActionPhase.SUCCEEDED, ActionPhase.SKIPPED]
        ),
    ),
    approved=st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
    limit=st.integers(min_value=0, max_value=3),
)
def test_when_no_action_may_start_the_budget_makes_no_difference(
    asked: list[str], known: dict[str, ActionPhase], approved: list[str], limit: int
) -> None:
    # The reconciler counts the policy's recent actions only when may_start says so (else passes 0): a
    # look that may not start anything must come out the same whatever the count.
    p = with_remediation(guards={"maxActionsPerHour": limit}, evidence={"beforeActions": False})
    actions = [{"name": n, "scale": {"deployment": "cart", "replicas": 1}, "approval": "required"} for n in asked]
    records = [
        ActionRecord(name=n, type=ActionType.SCALE, phase=phase, key=acting.action_key("uid-1", n))
        for n, phase in known.items()
    ]
    inc = with_status(incident(severity="P1", actions=actions), IncidentStatus(actions=records))
    inc = _approved(inc, *approved)
    selection = select_policy(inc, [p], OPERATOR_NS)
    free, spent = ledger_of(inc, p, recent=0), ledger_of(inc, p, recent=limit)
    if not acting.may_start(inc, selection):
        assert free == spent
    else:
        new = [n for n in asked if n not in known]
        came = [n for n in asked if known.get(n) is ActionPhase.AWAITING_APPROVAL and n in approved]
        assert new or came


# --- the runner's steps ------------------------------------------------------------------------------------------


def test_event_reasons_are_specific_where_one_exists_generic_otherwise() -> None:
    assert acting.event_reason(ActionType.ROLLBACK, "succeeded") == reasons.ROLLBACK_SUCCEEDED
    assert acting.event_reason(ActionType.MAINTENANCE, "succeeded") == reasons.MAINTENANCE_ENTERED
    assert acting.event_reason(ActionType.SCALE, "undone") == reasons.SCALE_RESTORED
    assert acting.event_reason(ActionType.SCALE, "started") == reasons.ACTION_STARTED
    assert acting.event_reason(ActionType.SNAPSHOT, "failed") == reasons.ACTION_FAILED
    assert acting.event_reason(ActionType.ROLLBACK, "planned") == reasons.ACTION_PLANNED


def _ledger_status() -> IncidentStatus:
    return IncidentStatus(
        timeline=[TimelineEntry(at=at(1), kind=reasons.ACTION_SUCCEEDED, message="logs collected")],
        actions=[
            ActionRecord(name="logs", type=ActionType.SNAPSHOT, phase=ActionPhase.SUCCEEDED, key="a"),
            ActionRecord(name="scale-up", type=ActionType.SCALE, phase=ActionPhase.PENDING, key="b"),
        ],
    )


def test_a_step_changes_only_its_record_and_only_from_an_expected_phase() -> None:
    status = _ledger_status()
    entry = TimelineEntry(at=at(3), kind=reasons.ACTION_STARTED, message="scale-up started")
    moved = acting.step(
        status,
        "scale-up",
        expect=[ActionPhase.PENDING, ActionPhase.RUNNING],
        update={"phase": ActionPhase.RUNNING, "started_at": at(3)},
        entry=entry,
    )
    assert moved is not None
    assert [(r.name, r.phase) for r in moved.actions] == [
        ("logs", ActionPhase.SUCCEEDED),
        ("scale-up", ActionPhase.RUNNING),
    ]
    assert moved.actions[1].started_at == at(3) and moved.actions[1].key == "b"
    assert moved.timeline == [*status.timeline, entry]
    # Without an entry the timeline is left as it was.
    quiet = acting.step(status, "scale-up", expect=[ActionPhase.PENDING], update={"phase": ActionPhase.RUNNING})
    assert quiet is not None and quiet.timeline == status.timeline
    assert status.actions[1].phase is ActionPhase.PENDING  # the given status is not changed


def test_a_step_is_not_written_over_a_record_someone_else_moved_or_removed() -> None:
    status = _ledger_status()
    update = {"phase": ActionPhase.RUNNING}
    assert acting.step(status, "scale-up", expect=[ActionPhase.RUNNING], update=update) is None
    assert acting.step(status, "gone", expect=[ActionPhase.PENDING], update=update) is None
    assert acting.step(status, "logs", expect=[ActionPhase.PENDING], update=update) is None
