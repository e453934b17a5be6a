"""A drill end to end: a scenario file with a synthetic alert group, started with ``kubectl incident drill
start`` (the installed console script), posted to the real receiver of the real operator on the real
control plane. The incident the receiver opens is a drill, its pages say DRILL, its actions (the policy's
remediation and the scenario's own) are dry runs that leave the Deployment as it was.

The operator runs as its own process under the chart's ServiceAccount, with a receiver token file and
INCIDENTOPS_ALERT_NAMESPACE_LABEL=true, so the drill lands in the test's namespace under the policy there.
:func:`started_drill` returns the incident once it has paged and its actions have settled: the place for
what a drill gets after that (its assessment, pass/fail per target).
"""

from __future__ import annotations

import datetime
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from incidentops.domain import alertgroups
from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e import alertmanager as am
from tests.e2e.conftest import FAST_OPERATOR_ENV, eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_actions import actions_of, settled, two_revisions
from tests.e2e.test_deliveries import policy_ready
from tests.e2e.test_escalation import install_policy, wait_event
from tests.e2e.test_plugin import run_script

TOKEN = "e2e-drill-token"
TARGETS = {"detect": "5m", "acknowledge": "5m", "contain": "15m", "resolve": "1h"}
SCENARIO = """\
title: "Game day: cart returns 502"
severity: P1
type: availability
namespace: {namespace}
description: Game day. The cart probe fails right after a deploy.
targets: {{detect: 5m, acknowledge: 5m, contain: 15m, resolve: 1h}}
actions:
  - name: scale-cart
    scale: {{deployment: cart, replicas: 5}}
alerts:
  groupBy: [alertname]
  firing:
    - labels: {{alertname: CartDown, severity: critical, deployment: cart}}
      annotations: {{summary: "Game day: cart returns 502"}}
      startsAt: -2m
"""


@pytest.fixture
def receiving_operator(
    crds: None, operator_kubeconfig: Path, operator_namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, Path]]:
    """The operator with its receiver on (a token file), placing incidents by the group's namespace label."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    proc = OperatorProcess(
        operator_kubeconfig,
        operator_namespace,
        tmp_path / "operator.log",
        env={**FAST_OPERATOR_ENV, "INCIDENTOPS_TOKEN_FILE": str(token), "INCIDENTOPS_ALERT_NAMESPACE_LABEL": "true"},
    )
    proc.start()
    try:
        health = proc.alerts_url.replace("/api/v1/alerts", "/healthz")
        eventually("the receiver to serve", lambda: _status(health) == 200, timeout=20)
        yield proc, token
    finally:
        code = proc.stop()
        output = proc.output()
        assert "Traceback" not in output, f"the operator logged a traceback (exit {code}):\n{output[-8000:]}"


def _status(url: str) -> int | None:
    try:
        return am.http_json("GET", url, timeout=2)[0]
    except OSError:
        return None


def start_gameday(
    cluster: controlplane.ControlPlane, namespace: str, operator: OperatorProcess, token: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``drill start`` of :data:`SCENARIO` through the operator's receiver: the command's result and the drill's
    name."""
    scenario = tmp_path / "gameday.yaml"
    scenario.write_text(SCENARIO.format(namespace=namespace))
    receiver_base = operator.alerts_url.removesuffix("/api/v1/alerts")  # the path is the plugin's default
    result = run_script(
        cluster, "drill", "start", "--scenario", str(scenario), "--receiver", receiver_base, "--token-file", str(token)
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r'drill "([^"]+)" started', result.stdout)
    assert match, result.stdout
    return result, match.group(1)


def started_drill(
    cluster: controlplane.ControlPlane, namespace: str, name: str, receivers: Receivers, *actions: str
) -> dict[str, Any]:
    """The drill incident once its first level has paged and ``actions`` have settled."""
    wait_event(receivers, name, "triggered")
    eventually("the Slack and PagerDuty pages", lambda: receivers.of("slack", incident=name))
    eventually("the PagerDuty page", lambda: receivers.of("pagerduty", incident=name))
    return settled(cluster, namespace, name, *actions)


def test_a_drill_from_a_scenario_with_alerts_through_the_real_receiver(
    cluster: controlplane.ControlPlane,
    receiving_operator: tuple[OperatorProcess, Path],
    namespace: str,
    receivers: Receivers,
    tmp_path: Path,
) -> None:
    operator, token = receiving_operator
    two_revisions(cluster, namespace, "cart")
    before = get_json(cluster, "deployment/cart", "-n", namespace)
    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[{"name": "on-call", "after": "0s", "notify": ["hook", "chat", "pager"]}],
        remediation=[{"when": {"severities": ["P1"]}, "actions": [{"name": "rollback-cart", "rollback": {}}]}],
    )
    eventually("the policy to be Ready", lambda: policy_ready(cluster, namespace).get("status") == "True")
    result, name = start_gameday(cluster, namespace, operator, token, tmp_path)
    assert f'drill "{name}" started in namespace "{namespace}"' in result.stdout, (
        "the receiver placed it by the group's namespace label"
    )
    assert "classified P1, as the scenario expects" in result.stdout
    assert TOKEN not in result.stdout + result.stderr

    incident = started_drill(cluster, namespace, name, receivers, "evidence-first", "rollback-cart", "scale-cart")

    # Opened by the receiver, as a drill, from the synthetic group.
    spec = incident["spec"]
    assert spec["drill"] is True
    assert spec["source"]["kind"] == "alertmanager"
    assert spec["source"]["labels"][alertgroups.DRILL_LABEL] == "true"
    assert spec["title"] == "Game day: cart returns 502"
    assert incident["status"]["severity"] == "P1"
    created = _time(incident["metadata"]["creationTimestamp"])
    started = _time(spec["source"]["startedAt"])
    assert datetime.timedelta(seconds=100) <= created - started <= datetime.timedelta(seconds=180), (
        "startsAt -2m: the drill's detection time is about two minutes"
    )
    assert spec["drillTargets"] == TARGETS
    assert "does not keep spec.drillTargets" not in result.stderr

    # Every page says DRILL.
    hooks = [d for d in receivers.of("webhook") if d.body.get("incident", {}).get("name") == name]
    assert hooks and all(d.body["drill"] is True and "DRILL" in d.body["message"] for d in hooks)
    assert all("DRILL" in d.body["text"] for d in receivers.of("slack", incident=name))
    assert all(d.body["payload"]["summary"].startswith("[DRILL]") for d in receivers.of("pagerduty", incident=name))

    # Every action, the policy's and the scenario's, is a dry run with its plan; nothing changed.
    ledger = actions_of(incident)
    assert set(ledger) == {"evidence-first", "rollback-cart", "scale-cart"}
    for record in ledger.values():
        assert (record["phase"], record.get("reason"), record.get("dryRun")) == ("Skipped", "DryRun", True), record
    assert "revision 2 to revision 1" in ledger["rollback-cart"]["plan"]
    assert ledger["scale-cart"]["plan"]
    after = get_json(cluster, "deployment/cart", "-n", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "a drill changed the Deployment"
    assert after["spec"] == before["spec"]

    listed = run_script(cluster, "drill", "list", "-n", namespace)
    assert listed.returncode == 0 and name in listed.stdout


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_drill_declared_from_a_scenario_without_alerts(
    cluster: controlplane.ControlPlane,
    receiving_operator: tuple[OperatorProcess, Path],
    namespace: str,
    receivers: Receivers,
    tmp_path: Path,
) -> None:
    install_policy(cluster, namespace, receivers, levels=[{"name": "on-call", "after": "0s", "notify": ["hook"]}])
    scenario = tmp_path / "tabletop.yaml"
    scenario.write_text(
        "title: 'Tabletop: leaked credentials'\nseverity: P2\ntype: security\npolicy: paging\n"
        "targets: {acknowledge: 10m, resolve: 2h}\n"
        "actions: [{name: evidence, snapshot: {sinceSeconds: 600}}]\n"
    )
    result = run_script(cluster, "drill", "start", "--scenario", str(scenario), "-n", namespace, "-o", "name")
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip().removeprefix("incident.incidentops.dev/")
    assert name.startswith("drill-tabletop-leaked-credentials-")

    wait_event(receivers, name, "triggered")
    incident = settled(cluster, namespace, name, "evidence")
    assert incident["spec"]["drill"] is True and incident["spec"]["source"] == {"kind": "manual"}
    assert incident["status"]["escalationPolicy"].endswith("/paging")
    assert incident["spec"]["drillTargets"] == {"acknowledge": "10m", "resolve": "2h"}
    hooks = [d for d in receivers.of("webhook") if d.body.get("incident", {}).get("name") == name]
    assert hooks and all(d.body["drill"] is True for d in hooks)
    record = actions_of(incident)["evidence"]
    assert (record["phase"], record.get("reason"), record.get("dryRun")) == ("Skipped", "DryRun", True), record
