"""After the incident, end to end: a resolved P1's post-mortem draft written from its real record (its pages,
its acknowledgement, the rollback it ran, the evidence), overdue at a short ``postmortemWithin`` with one
reminder to the receivers (across SIGKILLs), closed once completed; and a drill's assessment with pass or fail
per target, declared, or started from a scenario file whose synthetic alert group goes through the receiver.

The real operator, the real control plane, the real receivers; every wait polls with a deadline.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e import test_drill as drill
from tests.e2e.conftest import eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_actions import events, incident_of, settled, two_revisions
from tests.e2e.test_drill import receiving_operator  # noqa: F401 (the fixture, by its name)
from tests.e2e.test_escalation import declare, install_policy, plugin, scrape, wait_event, webhook_events
from tests.unit.notify.test_postmortem import SECTIONS


def postmortem_of(cluster: controlplane.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return (incident_of(cluster, namespace, name).get("status") or {}).get("postmortem") or {}


def rollback_policy(
    cluster: controlplane.ControlPlane,
    namespace: str,
    receivers: Receivers,
    severity: str,
    notify: tuple[str, ...] = ("hook",),
    **spec: Any,
) -> None:
    """The Deployment `cart` at revision 2, and a policy that pages ``notify`` at once and rolls `cart` back."""
    two_revisions(cluster, namespace, "cart")
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": list(notify)}],
        remediation=[{"when": {"severities": [severity]}, "actions": [{"name": "rollback-cart", "rollback": {}}]}],
        **spec,
    )


def overdue_gauge(operator: OperatorProcess) -> float:
    return scrape(operator).get(("incidentops_postmortems_overdue", ""), -1.0)


def test_a_resolved_p1_gets_its_draft_goes_overdue_is_reminded_once_and_closes_when_completed(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    rollback_policy(
        cluster,
        namespace,
        receivers,
        "P1",
        severities={"P1": {"postmortemWithin": "20s"}},
        alerts={"reopenWindow": "2s"},
    )
    impact = {"usersAffected": 1200, "services": ["cart"]}
    declare(
        cluster, namespace, "cart-down", severity="P1", targets=[{"kind": "Deployment", "name": "cart"}], impact=impact
    )
    wait_event(receivers, "cart-down", "triggered", "on-call")
    ran = settled(cluster, namespace, "cart-down", "evidence-first", "rollback-cart")
    assert {a["name"]: a["phase"] for a in ran["status"]["actions"]} == {
        "evidence-first": "Succeeded",
        "rollback-cart": "Succeeded",
    }
    acked = plugin(cluster, "ack", "cart-down", "-n", namespace, "--note", "rolling back")
    assert acked.returncode == 0, acked.stderr
    wait_event(receivers, "cart-down", "acknowledged")
    resolved = plugin(
        cluster,
        "resolve",
        "cart-down",
        "-n",
        namespace,
        "--summary",
        "rolled back the bad deploy",
        "--root-cause",
        "image 2 crashes",
    )
    assert resolved.returncode == 0, resolved.stderr

    # The draft, once, in a ConfigMap labelled to the incident; the status names it.
    state = eventually("the draft", lambda: (pm := postmortem_of(cluster, namespace, "cart-down")).get("ref") and pm)
    assert state["state"] in ("Draft", "Overdue")
    obj = incident_of(cluster, namespace, "cart-down")
    resolved_at = obj["spec"]["resolution"]["at"]
    assert state["dueBy"] > resolved_at
    drafts = get_json(
        cluster, "configmaps", "-n", namespace, "-l", "incidentops.dev/incident=cart-down,incidentops.dev/postmortem"
    )["items"]
    assert [d["metadata"]["name"] for d in drafts] == [state["ref"]]
    [draft] = drafts
    assert draft["immutable"] is True
    assert "ownerReferences" not in draft["metadata"], "evidence.retainOnDelete (the default) keeps the record"
    text = draft["data"]["postmortem.md"]
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions), text
    assert "# Incident Post-Mortem: cart-down is failing" in text
    assert "- **Users affected**: 1200" in text and "- **Services**: cart" in text
    assert "| hook | triggered | on-call | Sent |" in text  # the page
    assert "Acknowledged: acknowledged by" in text and "| hook | acknowledged |" in text
    assert "**rollback-cart** (rollback): Succeeded" in text
    assert "Plan: " in text and "Deployment " + namespace + "/cart" in text
    assert "image 2 crashes" in text and "rolled back the bad deploy" in text
    evidence = obj["status"]["evidence"][0]
    assert f"| {evidence['name']} | {evidence['ref']} |" in text and evidence["sha256"] in text
    assert "| Acknowledge |" in text and "| 15m | yes |" in text
    facts = json.loads(draft["data"]["facts.json"])
    assert facts["incident"]["name"] == "cart-down" and facts["kind"] == "postmortem"

    shown = plugin(cluster, "postmortem", "cart-down", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == text

    # The operator is down (SIGKILL) when the post-mortem falls due; the next one finds it overdue from status.
    operator.kill()
    due_by = datetime.datetime.fromisoformat(state["dueBy"].replace("Z", "+00:00"))
    eventually("dueBy to pass", lambda: datetime.datetime.now(datetime.UTC) > due_by, timeout=60, interval=0.5)
    operator.start()
    # Overdue: one reminder to the channel told of the incident, an Event, the gauge.
    eventually("overdue", lambda: postmortem_of(cluster, namespace, "cart-down").get("state") == "Overdue", timeout=60)
    wait_event(receivers, "cart-down", "postmortem-due")
    assert "PostmortemOverdue" in events(cluster, namespace, "cart-down")
    eventually("the overdue gauge", lambda: overdue_gauge(operator) == 1.0)
    eventually(
        "the reminder recorded",
        lambda: any(
            n["event"] == "postmortem-due" and n["outcome"] == "Sent"
            for n in incident_of(cluster, namespace, "cart-down")["status"]["notifications"]
        ),
    )
    # Killed and started again, and another look (a spec change: the look writes its observedGeneration):
    # no second reminder today, the gauge counts it again.
    operator.kill()
    operator.start()
    eventually("the overdue gauge after the restart", lambda: overdue_gauge(operator) == 1.0)
    cluster.kubectl(
        "patch",
        "incident",
        "cart-down",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"roles":{"commander":"carol"}}}',
    )
    eventually(
        "the look after the change",
        lambda: (
            (o := incident_of(cluster, namespace, "cart-down"))["status"].get("observedGeneration")
            == o["metadata"]["generation"]
        ),
    )
    reminders = [e for e in webhook_events(receivers, "cart-down") if e[0] == "postmortem-due"]
    assert len(reminders) == 1, reminders
    keys = receivers.keys("webhook", incident="cart-down")
    assert len(keys) == len(set(keys))

    # Completed: Done, and (the reopen window long passed) Closed.
    completing = plugin(
        cluster, "postmortem", "cart-down", "-n", namespace, "--complete", "--url", "https://wiki.example/pm/cart-down"
    )
    assert completing.returncode == 0, completing.stderr
    closed = eventually(
        "closed", lambda: (o := incident_of(cluster, namespace, "cart-down"))["status"].get("phase") == "Closed" and o
    )
    assert closed["status"]["postmortem"]["state"] == "Done"
    assert "PostmortemDone" in events(cluster, namespace, "cart-down")
    eventually("the overdue gauge back to 0", lambda: overdue_gauge(operator) == 0.0)
    assert len([e for e in webhook_events(receivers, "cart-down") if e[0] == "postmortem-due"]) == 1


def test_a_resolved_drill_gets_its_assessment_with_pass_or_fail_per_target(
    cluster: controlplane.ControlPlane, operator: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    rollback_policy(cluster, namespace, receivers, "P2")
    declare(
        cluster,
        namespace,
        "cart-drill",
        severity="P2",
        drill=True,
        targets=[{"kind": "Deployment", "name": "cart"}],
        drillTargets={"acknowledge": "10m", "contain": "10m"},
    )
    wait_event(receivers, "cart-drill", "triggered", "on-call")
    settled(cluster, namespace, "cart-drill", "rollback-cart")
    assert plugin(cluster, "ack", "cart-drill", "-n", namespace).returncode == 0
    assert plugin(cluster, "resolve", "cart-drill", "-n", namespace, "--summary", "drill over").returncode == 0

    assessment = eventually(
        "the assessment",
        lambda: (
            (a := (incident_of(cluster, namespace, "cart-drill")["status"].get("assessment") or {})).get("ref") and a
        ),
    )
    results = {r["target"]: (r["within"], r["source"], r["passed"]) for r in assessment["results"]}
    assert results == {
        "Acknowledge": ("10m", "drill", True),
        "Contain": ("10m", "drill", False),  # nobody contained it
        "Resolve": ("24h", "policy", True),  # P2's resolveWithin
    }
    assert assessment["passed"] is False
    obj = incident_of(cluster, namespace, "cart-drill")
    assert "postmortem" not in obj["status"], "a drill is assessed instead"
    configmap = get_json(cluster, "configmap", assessment["ref"], "-n", namespace)
    text = configmap["data"]["assessment.md"]
    assert "**Result: FAILED**" in text
    assert "| Acknowledge |" in text and "| 10m | drill | PASS |" in text
    assert "| Contain | never | 10m | drill | FAIL |" in text
    assert "| hook | triggered (DRILL) | on-call | Sent |" in text
    assert "**rollback-cart** (rollback): would " in text
    shown = plugin(cluster, "postmortem", "cart-drill", "-n", namespace)
    assert shown.returncode == 0 and shown.stdout == text
    assert "DrillAssessed" in events(cluster, namespace, "cart-drill")


def test_a_drill_from_a_scenario_with_alerts_through_the_receiver_is_assessed_per_target(
    cluster: controlplane.ControlPlane,
    receiving_operator: tuple[OperatorProcess, Path],  # noqa: F811 (the fixture imported above)
    namespace: str,
    receivers: Receivers,
    tmp_path: Path,
) -> None:
    operator, token = receiving_operator
    rollback_policy(cluster, namespace, receivers, "P1", notify=("hook", "chat", "pager"))
    _, name = drill.start_gameday(cluster, namespace, operator, token, tmp_path)
    obj = drill.started_drill(cluster, namespace, name, receivers, "evidence-first", "rollback-cart", "scale-cart")
    assert obj["spec"]["drillTargets"] == drill.TARGETS
    assert plugin(cluster, "ack", name, "-n", namespace).returncode == 0
    assert plugin(cluster, "resolve", name, "-n", namespace, "--summary", "game day over").returncode == 0

    assessment = eventually(
        "the assessment",
        lambda: (a := (incident_of(cluster, namespace, name)["status"].get("assessment") or {})).get("ref") and a,
    )
    results = {r["target"]: (r["within"], r["source"], r["passed"]) for r in assessment["results"]}
    assert results == {
        "Detect": ("5m", "drill", True),  # the alert started 2m before it reached the receiver
        "Acknowledge": ("5m", "drill", True),
        "Contain": ("15m", "drill", False),  # nobody contained it
        "Resolve": ("1h", "drill", True),
    }
    detect = next(r for r in assessment["results"] if r["target"] == "Detect")
    assert 100 <= detect["seconds"] <= 180
    text = get_json(cluster, "configmap", assessment["ref"], "-n", namespace)["data"]["assessment.md"]
    assert "**Result: FAILED**" in text and "| Detect | 2m" in text
    assert "(alert CartDown)" in text
    assert "**scale-cart** (scale): would " in text and "**rollback-cart** (rollback): would " in text
    for channel in ("hook", "chat", "pager"):
        assert f"| {channel} | triggered (DRILL) | on-call | Sent |" in text
