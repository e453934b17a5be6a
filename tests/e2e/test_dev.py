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

import yaml

from incidentops.testing import build
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


def test_dev_runs_the_operator_and_stops_everything(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    workdir = tmp_path / "cp"
    exe = Path(sys.executable).with_name("incidentops")
    env = {k: v for k, v in os.environ.items() if k not in ("USE_EXISTING_CLUSTER",)}
    proc = subprocess.Popen(
        [str(exe), "dev", "--state-file", str(state), "--workdir", str(workdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    console: list[str] = []  # dev's output, as it is written
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: console.extend(line.decode(errors="replace") for line in proc.stdout))
    reader.start()
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
            return [
                line
                for line in list(console)
                if line.startswith(f"page  {channel}  triggered  level primary  {ns}/{name}  [P1] ")
            ]

        # The payments policy pages Slack and PagerDuty at once: the sinks print both.
        eventually("the Slack page in dev's console", lambda: page("payments/payments-slack"), timeout=60)
        eventually("the PagerDuty page in dev's console", lambda: page("payments/payments-pagerduty"), timeout=60)
        started = list(console)
        assert not [line for line in started if ERROR_LINE.match(line)], "".join(started)
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
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(10)
        output = "".join(console)
    assert proc.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    deadline = time.monotonic() + 10
    while _pids_using(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_using(workdir) == [], "no process of the control plane is left behind"
    assert not state.exists(), "the state file goes with the run"
