"""`incidentops dev` end to end: up without an ERROR line, usable with kubectl, its pages printed in the
console, and gone without orphans on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from incidentops.testing import build
from incidentops.testing.alertmanager import ALERTMANAGER, PROMETHEUS, find_binary
from tests.e2e.conftest import ROOT, eventually

# A log line at ERROR, as `dev` formats them: "2026-01-01 00:00:00,000 ERROR   [logger] ...".
ERROR_LINE = re.compile(r"^\S+ \S+ ERROR\s")


def _pids_using(workdir: Path) -> list[int]:
    """Processes whose command line mentions the control plane's work directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmdline:
            found.append(int(proc.name))
    return found


class Dev:
    """A real `incidentops dev` process; ``console`` is its output (stdout and stderr), line by line, as written."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.state = tmp_path / "state.json"
        self.workdir = tmp_path / "cp"
        exe = Path(sys.executable).with_name("incidentops")
        env = {k: v for k, v in os.environ.items() if k not in ("USE_EXISTING_CLUSTER",)}
        self.proc = subprocess.Popen(
            [str(exe), "dev", "--state-file", str(self.state), "--workdir", str(self.workdir), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.console: list[str] = []
        out = self.proc.stdout
        assert out is not None
        self.reader = threading.Thread(
            target=lambda: self.console.extend(line.decode(errors="replace") for line in out)
        )
        self.reader.start()

    def lines(self, prefix: str, containing: str = "") -> list[str]:
        return [line for line in list(self.console) if line.startswith(prefix) and containing in line]

    def assert_no_error_line(self) -> None:
        started = list(self.console)
        assert not [line for line in started if ERROR_LINE.match(line)], "".join(started)

    def stop(self) -> str:
        """SIGTERM; its output."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.reader.join(10)
        return "".join(self.console)

    def assert_stopped_cleanly(self, output: str) -> None:
        assert self.proc.returncode == 0, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
        deadline = time.monotonic() + 10
        while _pids_using(self.workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pids_using(self.workdir) == [], "no process of the control plane is left behind"
        assert not self.state.exists(), "the state file goes with the run"


def test_dev_runs_the_operator_and_stops_everything(tmp_path: Path) -> None:
    dev = Dev(tmp_path)
    state, workdir = dev.state, dev.workdir
    try:
        eventually("the state file", state.exists, timeout=120)
        info = json.loads(state.read_text())
        assert set(info) == {"kubeconfig", "namespace", "alertsURL", "alertsToken", "metricsURL"}
        kubectl = [str(build.resolve_binaries(build=False)["kubectl"]), "--kubeconfig", info["kubeconfig"]]

        incident = yaml.safe_load((ROOT / "examples/incidents/manual-p1.yaml").read_text())
        subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(incident), text=True, check=True)
        ns, name = incident["metadata"]["namespace"], incident["metadata"]["name"]

        def columns() -> list[str] | None:
            out = subprocess.run([*kubectl, "get", "inc", name, "-n", ns], capture_output=True, text=True).stdout
            lines = out.splitlines()
            return lines if len(lines) == 2 and "Triggered" in lines[1] else None

        header, row = eventually("the operator's status in the printer columns", columns, timeout=60)

        def page(channel: str) -> list[str]:
            return dev.lines(f"page  {channel}  triggered  level primary  {ns}/{name}  [P1] ")

        # The payments policy pages Slack and PagerDuty at once: the sinks print both.
        eventually("the Slack page in dev's console", lambda: page("payments/payments-slack"), timeout=60)
        eventually("the PagerDuty page in dev's console", lambda: page("payments/payments-pagerduty"), timeout=60)
        dev.assert_no_error_line()
        assert header.split() == ["NAME", "SEVERITY", "PHASE", "LEVEL", "ACKED-BY", "AGE"]
        assert row.split()[1:3] == ["P1", "Triggered"]
        policies = subprocess.run([*kubectl, "get", "escpol", "-A"], capture_output=True, text=True, check=True)
        assert "default" in policies.stdout
        assert _pids_using(workdir), "the control plane runs from the work directory"

        alert = {
            "version": "4",
            "groupKey": '{}:{alertname="DevCheck"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "incidentops",
            "groupLabels": {"alertname": "DevCheck"},
            "commonLabels": {"alertname": "DevCheck", "severity": "warning"},
            "commonAnnotations": {"summary": "the dev state file works"},
            "externalURL": "http://alertmanager.invalid",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "DevCheck", "severity": "warning"},
                    "annotations": {"summary": "the dev state file works"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.invalid/graph",
                    "fingerprint": "0123456789abcdef",
                }
            ],
        }
        request = urllib.request.Request(
            info["alertsURL"],
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {info['alertsToken']}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201)
        assert urllib.request.urlopen(info["metricsURL"], timeout=10).status == 200
    finally:
        output = dev.stop()
    dev.assert_stopped_cleanly(output)


def test_dev_with_alertmanager_shows_a_firing_rule_as_a_page(tmp_path: Path) -> None:
    for binary in (ALERTMANAGER, PROMETHEUS):
        if find_binary(*binary) is None:
            pytest.skip(f"{binary[1]} is not installed (make debs installs it)")
    # The whole chain: the checkout probe fails, the example rule fires, Alertmanager posts the group to the
    # operator's receiver, and the incident pages the default policy's on-call level.
    dev = Dev(tmp_path, "--with-alertmanager")
    try:
        eventually("the state file", dev.state.exists, timeout=120)
        eventually("dev saying how to make the example rule fire", lambda: dev.lines("  echo 'probe_success"))
        metrics = dev.workdir / "alerting" / "metrics.prom"
        assert metrics.read_text().startswith('probe_success{namespace="payments",service="checkout"} 1')
        metrics.write_text('probe_success{namespace="payments",service="checkout"} 0\n')
        # Classified P1 (the alert's severity) in the very look that pages, and the page says so.
        headlines = {
            "incidentops/slack": "[P1] Incident: checkout in payments: availability below 99%",
            "incidentops/pagerduty": "[P1] checkout in payments: availability below 99%",
        }
        for channel, headline in headlines.items():
            eventually(
                f"the {channel} page of the firing rule in dev's console",
                lambda channel=channel, headline=headline: dev.lines(
                    f"page  {channel}  triggered  level on-call  incidentops/availabilitybelow99percent-", headline
                ),
                timeout=90,
            )
        dev.assert_no_error_line()
    finally:
        output = dev.stop()
    dev.assert_stopped_cleanly(output)
