"""The post-mortem draft and the drill assessment as Markdown: every section filled from a real record (a
simulated incident with pages, an acknowledgement, an action, evidence), a policy's own template, and its
fall-back when that template fails."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from incidentops.api.incident import ActionPhase, ActionRecord, ActionType, EvidenceRecord, PlannedChange
from incidentops.domain import postmortem as pm
from incidentops.domain.lifecycle import episode_facts
from incidentops.notify.postmortem import TEMPLATE_LIMIT, render
from tests.unit.domain.builders import Simulation, at, incident, level, mark, policy, with_status

SECTIONS = (
    "## Summary",
    "## Impact",
    "## Timeline",
    "### Pages and notifications",
    "### Actions",
    "## Root Cause",
    "## Resolution",
    "## Response Times",
    "## Evidence",
    "## Roles",
    "## What Went Well",
    "## What Went Poorly",
    "## Action Items",
    "## Lessons Learned",
)


def record(drill: bool = False, **spec: Any) -> dict[str, Any]:
    p = policy(levels=[level("on-call", notify=["pager", "chat"])])
    sim = Simulation(
        incident(severity="P1", drill=drill, impact={"usersAffected": 1200, "services": ["checkout"]}, **spec), [p]
    )
    sim.step(at(0))
    rollback = ActionRecord(
        name="rollback-checkout",
        type=ActionType.ROLLBACK,
        phase=ActionPhase.SKIPPED if drill else ActionPhase.SUCCEEDED,
        key="k" * 64,
        dry_run=drill,
        plan="roll Deployment payments/checkout back from revision 2 to revision 1",
        changes=[PlannedChange(object="Deployment payments/checkout", field="spec.template", old="rev 2", new="rev 1")],
        finished_at=at(4),
    )
    evidence = EvidenceRecord(
        name="snapshot", ref="incidentops-evidence-0123", sha256="a" * 64, bytes=2048, items=7, collected_at=at(3)
    )
    status = sim.status.model_copy(update={"evidence": [evidence]})
    sim.incident = with_status(sim.incident, status)
    sim.edit(
        acknowledgement=mark(2), resolution=mark(20, summary="rolled back the | 14:05 deploy", rootCause="bad flag")
    )
    sim.step(at(20))
    status = sim.status.model_copy(update={"actions": [rollback]})
    inc = with_status(sim.incident, status)
    selection = sim.selection()
    assert selection.policy is not None
    return pm.draft_facts(inc, selection.policy.spec.sla_for(selection.severity), episode_facts(inc.spec, inc.status))


def test_the_draft_has_every_section_filled_from_the_record() -> None:
    text = render("postmortem", record()).text
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert text.startswith("# Incident Post-Mortem: Checkout is down\n")
    assert "- **Users affected**: 1200" in text and "- **Services**: checkout" in text
    assert "| Acknowledge | 2m | 15m | yes |" in text and "| Resolve | 20m | 4h | yes |" in text
    assert "Triggered: P1 incident triggered" in text and "Acknowledged: acknowledged by alice" in text
    assert "| pager | triggered | on-call | Sent |" in text
    assert "**rollback-checkout** (rollback): Succeeded" in text
    assert "Plan: roll Deployment payments/checkout back from revision 2 to revision 1" in text
    assert "Deployment payments/checkout `spec.template`: rev 2 -> rev 1" in text
    assert "bad flag" in text and "rolled back the | 14:05 deploy" in text
    assert "| snapshot | incidentops-evidence-0123 | 7 | 2048 | `" + "a" * 64 + "` |" in text
    assert "- **Acknowledged by**: alice" in text
    assert "Due by 2025-01-03 10:20:00 UTC" in text
    assert "\n\n\n" not in text and all(line == line.rstrip() for line in text.splitlines())


def test_a_pipe_in_a_timeline_message_does_not_break_the_table() -> None:
    facts = record()
    facts["timeline"].append({"at": "2025-01-01T10:30:00Z", "kind": "Note", "message": "a | b\nc", "actor": None})
    assert "| Note: a \\| b c |  |" in render("postmortem", facts).text


def test_the_assessment_says_pass_or_fail_per_target_and_what_would_have_run() -> None:
    facts = record(drill=True, drillTargets={"acknowledge": "1m"})
    facts["assessment"] = {
        "passed": False,
        "results": [
            {
                "target": "Acknowledge",
                "within": "1m",
                "source": "drill",
                "measured": {"seconds": 120, "text": "2m"},
                "passed": False,
            },
            {
                "target": "Resolve",
                "within": "4h",
                "source": "policy",
                "measured": {"seconds": 1200, "text": "20m"},
                "passed": True,
            },
        ],
    }
    text = render("assessment", facts).text
    assert text.startswith("# Drill Assessment: Checkout is down - 2025-01-01 10:00:00 UTC")
    assert "**Result: FAILED**" in text
    assert "| Acknowledge | 2m | 1m | drill | FAIL |" in text and "| Resolve | 20m | 4h | policy | PASS |" in text
    assert "| pager | triggered (DRILL) | on-call | Sent |" in text
    assert "**rollback-checkout** (rollback): would roll Deployment payments/checkout back" in text


def test_a_policys_template_is_used() -> None:
    rendered = render(
        "postmortem", record(), "# {{ pm.incident.title }} ({{ pm.incident.severity }}) {{ pm.resolution.at | ts }}"
    )
    assert (rendered.text, rendered.problem) == ("# Checkout is down (P1) 2025-01-01 10:20:00 UTC\n", None)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{% for %}", "TemplateSyntaxError"),
        ("{{ pm.nope.deeper }}", "UndefinedError"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "the policy's template failed"),
        ("{{ pm.timeline.append(1) }}", "SecurityError"),
        ("x" * (TEMPLATE_LIMIT + 1), "more than"),
    ],
)
def test_a_failing_policy_template_falls_back_to_the_shipped_one(template: str, problem: str) -> None:
    rendered = render("postmortem", record(), template)
    assert rendered.text.startswith("# Incident Post-Mortem: Checkout is down")
    assert rendered.problem is not None and problem in rendered.problem


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown document"):
        render("minutes", {})


def test_times_render_in_utc() -> None:
    facts = record()
    facts["incident"]["startedAt"] = datetime.datetime(
        2025, 1, 1, 11, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    ).isoformat()
    assert "- **Date**: 2025-01-01 10:00:00 UTC" in render("postmortem", facts).text
