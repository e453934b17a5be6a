"""The operator as a real process, for e2e tests and benchmarks.

Where it sits: beside ``controlplane.py``. Unlike ``kopf.testing.KopfRunner``
(a thread in the test's process) this runs ``python -m incidentops run`` as its
own process, so tests can kill it with SIGKILL and restart it, exactly as a
node failure or an OOM kill would, and it runs under the kubeconfig it is given
(the chart's ServiceAccount in the e2e tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from incidentops.testing.controlplane import die_with_parent, free_port

READY_LINE = "incidentops is ready"


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = log
        self.args = list(args)
        self.env = dict(env or {})
        self.popen: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self.metrics_port = free_port()
        self.receiver_port = free_port()

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def alerts_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}/api/v1/alerts"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until Kopf is watching (the ready line in the log)."""
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        cmd = [sys.executable, "-m", "incidentops", "run", "--kubeconfig", str(self.kubeconfig)]
        cmd += ["--namespace", self.namespace, "--metrics-port", str(self.metrics_port)]
        cmd += ["--receiver-port", str(self.receiver_port), *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "INCIDENTOPS_BIND_ADDRESS": "127.0.0.1", **self.env}
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,  # a killed test runner leaves no operator behind
            )
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the operator was not ready within {timeout}s:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def output(self) -> str:
        """What this run of the process has logged so far."""
        with contextlib.suppress(FileNotFoundError), open(self.log, "rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")
        return ""

    def kill(self) -> None:
        """SIGKILL, no goodbye: the next start must carry on from status alone."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 20) -> int | None:
        if not self.popen:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode
