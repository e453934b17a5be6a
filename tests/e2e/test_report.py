"""The incident report end to end: ``kubectl incident report`` over incidents the real operator handled,
and a policy's monthly report sent once across a SIGKILL at the moment it is due.

The first test makes incidents of every kind (severities, types, acknowledged, resolved, a reopened
alert-born one, a drill, one that misses its acknowledgement target), lets the operator process them, and
compares the plugin's JSON with what the test counts itself from what it created.

The second cannot wait for a month to end: it runs the operator under libfaketime (Debian's ``faketime``),
whose clock is the real one shifted so that the next month starts a few seconds after the operator does.
Only the wall clock moves (``FAKETIME_DONT_FAKE_MONOTONIC``: asyncio's timers run on real time); the
control plane's test certificates are valid for more than a month either way, and the operator gets a
Lease of its own so its clock cannot hold the session's Lease. The operator is SIGKILLed as it logs that
the report is due, started again, and must have sent the report once (one key per channel, however many
copies the crash caused) and recorded the month in the policy's status.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from incidentops.domain import alertgroups
from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import FAST_OPERATOR_ENV, eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_escalation import declare, install_policy
from tests.e2e.test_intake import TOKEN, _receiving_operator, _running, post
from tests.e2e.test_plugin import run_script
from tests.unit.intake.payloads import alert, payload

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
UTC = datetime.UTC


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def cluster_now(cluster: controlplane.ControlPlane, namespace: str) -> datetime.datetime:
    """The API server's clock, in whole seconds: a throwaway object's creation time."""
    stamp = cluster.kubectl(
        "create", "configmap", f"clock-{os.urandom(3).hex()}", "-n", namespace,
        "-o", "jsonpath={.metadata.creationTimestamp}",
    ).stdout  # fmt: skip
    return _time(stamp)


def incident(cluster: controlplane.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get_json(cluster, "incident", name, "-n", namespace)
    return result


def patch_spec(cluster: controlplane.ControlPlane, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "incident", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def _group(namespace: str, status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": "CartDown", "namespace": namespace, "severity": "critical", "service": "cart"}
    return payload([alert(status, **labels)], group_labels={"alertname": "CartDown", "namespace": namespace})


@pytest.fixture
def intake(
    crds: None, operator_kubeconfig: Path, operator_namespace: str, tmp_path: Path
) -> Any:  # an OperatorProcess with the receiver
    tokens = (tmp_path / "token", tmp_path / "previous")
    tokens[0].write_text(TOKEN + "\n")
    tokens[1].write_text("unused-previous-token\n")
    with _running(_receiving_operator(operator_kubeconfig, operator_namespace, tmp_path / "op.log", tokens)) as proc:
        yield proc


def test_the_report_json_is_the_count_of_the_incidents_made(
    cluster: controlplane.ControlPlane, intake: OperatorProcess, namespace: str, receivers: Receivers
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}],
        severities={"P4": {"acknowledgeWithin": "1s"}},
    )
    made = {
        "a": {"severity": "P1", "type": "availability"},
        "b": {"severity": "P1", "type": "security"},
        "c": {"severity": "P2", "type": "availability"},
        "d": {"severity": "P3", "type": "performance"},
        "g": {"severity": "P4", "type": "data"},
        "drill": {"severity": "P2", "type": "availability", "drill": True},
    }
    created = {name: declare(cluster, namespace, name, **spec) for name, spec in made.items()}
    # The alert-born one: fires, resolves, fires again within the reopen window (a second episode).
    assert post(intake.alerts_url, _group(namespace))[0] == 200
    assert post(intake.alerts_url, _group(namespace, "resolved"))[0] == 200

    def resolved_by_alerts() -> dict[str, Any] | None:
        found = get_json(cluster, "incidents", "-n", namespace, "-l", alertgroups.ALERT_GROUP_LABEL)["items"]
        return found[0] if found and (found[0].get("status") or {}).get("phase") == "Resolved" else None

    born = eventually("the alert-born incident resolved by its alerts", resolved_by_alerts, timeout=60)
    assert post(intake.alerts_url, _group(namespace))[0] == 200
    alert_name = born["metadata"]["name"]
    reopened = eventually(
        "a second episode",
        lambda: (i := incident(cluster, namespace, alert_name))["status"].get("episode") == 2 and i,
        timeout=60,
    )

    # People act at known moments (the API server's clock), so the test knows every response time.
    at = cluster_now(cluster, namespace)
    stamp = at.isoformat().replace("+00:00", "Z")
    for name in ("a", "b", "drill"):
        patch_spec(cluster, namespace, name, {"acknowledgement": {"by": "tester", "at": stamp}})
    for name in ("a", "d"):
        patch_spec(cluster, namespace, name, {"resolution": {"by": "tester", "at": stamp, "summary": "fixed"}})
    tta = {name: int((at - datetime.datetime.fromtimestamp(created[name], UTC)).total_seconds()) for name in made}

    def settled() -> bool:
        objs = {name: incident(cluster, namespace, name) for name in made}
        metrics = {name: (o.get("status") or {}).get("metrics") or {} for name, o in objs.items()}
        breaches = (objs["g"].get("status") or {}).get("sla", {}).get("breaches", [])
        return (
            all(metrics[n].get("timeToAcknowledgeSeconds") is not None for n in ("a", "b", "drill"))
            and all(metrics[n].get("timeToResolveSeconds") is not None for n in ("a", "d"))
            and any(b["kind"] == "Acknowledge" for b in breaches)
        )

    eventually("the operator to record every response and the P4's breach", settled, timeout=60)
    month = at.strftime("%Y-%m")
    result = run_script(cluster, "report", "--month", month, "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    # The test's own count of what it made.
    real = [n for n, s in made.items() if not s.get("drill")]
    severities = {**{n: made[n]["severity"] for n in real}, alert_name: "P1"}
    types = {**{n: made[n]["type"] for n in real}, alert_name: "unspecified"}
    assert report["period"] == month and report["scope"] == f"namespace {namespace}"
    assert report["totals"]["incidents"] == len(severities) == 6
    assert report["totals"]["trend"] == {"previous": 0, "change": 6, "percent": None}
    by_severity = {line["severity"]: line for line in report["bySeverity"]}
    for sev in ("P1", "P2", "P3", "P4"):
        assert by_severity[sev]["count"] == sum(1 for s in severities.values() if s == sev), sev
    assert {line["type"]: line["count"] for line in report["byType"]} == {
        t: sum(1 for x in types.values() if x == t) for t in set(types.values())
    }
    # Episodes: one per incident, two for the reopened one; MTTA/MTTR from the moments the test chose.
    born_first = reopened["status"]["episodes"][0]
    assert report["totals"]["episodes"] == len(real) + 2
    assert by_severity["P1"]["mttaSeconds"] == pytest.approx((tta["a"] + tta["b"]) / 2, abs=0.1)
    assert by_severity["P1"]["acknowledgeTargetSeconds"] == 900 and by_severity["P4"]["acknowledgeTargetSeconds"] == 1
    expected_ttr = [tta["a"], tta["d"], born_first["timeToResolveSeconds"]]
    assert report["totals"]["mttrSeconds"] == pytest.approx(sum(expected_ttr) / 3, abs=0.1)
    assert report["totals"]["mttaSeconds"] == pytest.approx((tta["a"] + tta["b"]) / 2, abs=0.1)
    assert by_severity["P4"]["acknowledged"] == 0 and report["breaches"]["Acknowledge"] == 1
    assert sum(report["breaches"].values()) == 1
    assert report["totals"]["resolved"] == 2  # a and d; the reopened one's second episode is open
    # The drill apart, with its own time to acknowledge.
    assert [(d["name"], d["timeToAcknowledgeSeconds"]) for d in report["drills"]] == [("drill", tta["drill"])]
    assert [r["name"] for r in report["reopened"]] == [alert_name]
    assert report["topAlerts"] == [{"name": "CartDown", "count": 1}]
    assert {"label": "service", "value": "cart", "count": 1} in report["topLabels"]

    markdown = run_script(cluster, "report", "--month", month, "-n", namespace)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith(f"# Monthly Incident Report - {at:%B %Y}\n")
    assert "- **Total incidents**: 6 (none last month)" in markdown.stdout

    bad = run_script(cluster, "report", "--month", "2026-13", "-n", namespace)
    assert bad.returncode == 2 and "'2026-13' is not a month" in bad.stderr


# --- the monthly send -----------------------------------------------------------------------------------


def next_month_start(moment: datetime.datetime) -> datetime.datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime.datetime(year, month, 1, tzinfo=UTC)


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs libfaketime (Debian package faketime, make install)")
@pytest.mark.timeout(240)  # the clock's lead, and a dead leader's lease to wait out
@pytest.mark.parametrize("kill_at", ["due", "sent"])
def test_the_monthly_report_goes_out_once_across_a_sigkill_at_the_moment_it_is_due(
    kill_at: str,
    cluster: controlplane.ControlPlane,
    crds: None,
    operator_kubeconfig: Path,
    operator_namespace: str,
    namespace: str,
    receivers: Receivers,
    tmp_path: Path,
) -> None:
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "1h", "notify": ["hook"]}],
        reports={"monthly": {"notify": ["hook", "mail"]}},
    )
    for name, severity in (("pay", "P1"), ("search", "P2"), ("batch", "P3")):
        declare(cluster, namespace, name, severity=severity)
    real_now = datetime.datetime.now(UTC)
    boundary = next_month_start(real_now)  # midnight UTC on the 1st: the policy has no business hours
    lead = 30.0  # seconds of the operator's clock before the month ends
    offset = int((boundary - real_now).total_seconds() - lead)
    due_real = boundary - datetime.timedelta(seconds=offset)  # the real moment the operator's clock says 00:00
    month = (boundary - datetime.timedelta(days=1)).strftime("%Y-%m")
    env = {
        **FAST_OPERATOR_ENV,
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": f"+{offset}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "INCIDENTOPS_WATCH_NAMESPACES": namespace,
        "INCIDENTOPS_LEASE_NAME": f"report-{namespace}",
        # Lease times nearer production's than the suite's (a 3s renew deadline proved too short on a loaded
        # machine); the restart below waits out the dead leader's 10s.
        "INCIDENTOPS_LEASE_DURATION_SECONDS": "10",
        "INCIDENTOPS_LEASE_RENEW_DEADLINE_SECONDS": "7",
        "INCIDENTOPS_LEASE_RETRY_PERIOD_SECONDS": "2",
    }
    log = tmp_path / "operator.log"
    proc = OperatorProcess(operator_kubeconfig, operator_namespace, log, env=env)
    proc.start()
    try:
        policy_ref = f"{namespace}/paging"
        eventually(
            "the operator to take the incidents",
            lambda: all((incident(cluster, namespace, n).get("status") or {}).get("escalationPolicy") == policy_ref
                        for n in ("pay", "search", "batch")),
            timeout=30,
        )  # fmt: skip
        assert datetime.datetime.now(UTC) < due_real, "the operator took longer to start than its clock's lead"
        assert not [d for d in receivers.of("webhook") if d.body.get("policy") == policy_ref]
        due_line = f"monthly report of {month} for policy {policy_ref} is due"
        eventually("the report to be due", lambda: due_line in proc.output(), timeout=lead + 30, interval=0.02)
        if kill_at == "sent":  # the webhook has it: the kill falls between its send and its record, or just after
            eventually(
                "the webhook to get the report",
                lambda: [d for d in receivers.of("webhook") if d.body.get("policy") == policy_ref],
                timeout=30,
                interval=0.01,
            )
        proc.kill()  # at the moment it is due (or sent)
        killed = datetime.datetime.now(UTC)
        assert killed >= due_real - datetime.timedelta(seconds=1)
        proc.start()

        def sent() -> dict[str, Any] | None:
            status = get_json(cluster, "escalationpolicy", "paging", "-n", namespace).get("status") or {}
            record = (status.get("reports") or {}).get("monthly") or {}
            return record if record.get("lastSent") == month and record.get("state") == "Sent" else None

        record = eventually("the month recorded Sent", sent, timeout=60)
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()
    assert record["period"] == month
    channels = {c["name"]: c for c in record["channels"]}
    assert {n: c["outcome"] for n, c in channels.items()} == {"hook": "Sent", "mail": "Sent"}

    hooks = [d for d in receivers.of("webhook") if d.body.get("event") == "report" and d.body["policy"] == policy_ref]
    mails = [d for d in receivers.of("email") if d.headers.get("X-Incidentops-Policy") == policy_ref]
    # Every copy a crash may have caused carries the one key of the month and channel: once per key.
    assert {d.headers["Idempotency-Key"] for d in hooks} == {channels["hook"]["key"]}
    assert {d.headers["Message-ID"] for d in mails} == {f"<{channels['mail']['key']}@incidentops>"}
    copies = {"webhook": len(hooks), "email": len(mails)}
    print(f"report copies received across the SIGKILL at {kill_at}: {copies}")
    body = hooks[-1].body
    assert body["period"] == month and body["policy"] == policy_ref
    assert body["report"]["totals"]["incidents"] == 3
    assert {line["severity"]: line["count"] for line in body["report"]["bySeverity"]} == {
        "P1": 1, "P2": 1, "P3": 1, "P4": 0,
    }  # fmt: skip
    assert body["message"].startswith(f"# Monthly Incident Report - {boundary - datetime.timedelta(days=1):%B %Y}")
