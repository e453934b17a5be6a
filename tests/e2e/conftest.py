"""Fixtures of the e2e tests: a real control plane, our CRDs, RBAC, the operator.

The control plane is started once per session (etcd, kube-apiserver with RBAC,
controller-manager, scheduler, kwok nodes; or the cluster of KUBECONFIG with
USE_EXISTING_CLUSTER=true). The chart is rendered with `helm template` for the
operator's namespace, and its CRDs, ServiceAccount and the roles bound to it are
applied; the operator runs as its own process with that ServiceAccount's token,
so RBAC is what a `helm install` gives it. Each test works in a namespace of its own.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from incidentops.testing import controlplane
from incidentops.testing.install import (
    OperatorObjects,
    install_crds,
    install_identity,
    operator_objects,
    render_chart,
)
from incidentops.testing.operator import OperatorProcess
from tests.e2e.receivers import Receivers

ROOT = Path(__file__).resolve().parents[2]
# Short periods so tests see rechecks and failovers in seconds, not minutes.
FAST_OPERATOR_ENV = {
    "INCIDENTOPS_POLICY_RECHECK_SECONDS": "1",
    "INCIDENTOPS_LEASE_DURATION_SECONDS": "4",
    "INCIDENTOPS_LEASE_RENEW_DEADLINE_SECONDS": "3",
    "INCIDENTOPS_LEASE_RETRY_PERIOD_SECONDS": "1",
    "INCIDENTOPS_DELIVERY_INITIAL_DELAY_SECONDS": "0.2",
}
# The chart the operator's objects are rendered from; test_rbac_minimal points this at copies whose
# files/clusterrole.yaml or files/role.yaml has one right taken away, to show the scenario that needs it fail.
CHART = Path(os.environ.get("INCIDENTOPS_E2E_CHART") or ROOT / "charts" / "incidentops")


def eventually(what: str, check: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until `check` returns something truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    """Local Slack, PagerDuty, webhook and SMTP peers that keep a ledger of what they got."""
    peers = Receivers()
    peers.start()
    yield peers
    peers.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    cp = controlplane.from_environment(tmp_path_factory.mktemp("controlplane"))
    cp.start()
    try:
        yield cp  # type: ignore[misc]
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def operator_namespace(cluster: controlplane.ControlPlane) -> str:
    name = f"incidentops-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="session")
def chart_objects(operator_namespace: str) -> OperatorObjects:
    """The operator's objects of the chart rendered for a release in the operator's namespace."""
    return operator_objects(render_chart(CHART, operator_namespace))


@pytest.fixture(scope="session")
def crds(cluster: controlplane.ControlPlane, chart_objects: OperatorObjects) -> None:
    """The chart's CRDs (templates/crds.yaml), served."""
    install_crds(cluster, chart_objects.crds)


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: controlplane.ControlPlane, chart_objects: OperatorObjects) -> Path:
    """A kubeconfig with the token of the chart's ServiceAccount, bound to the chart's ClusterRole and Role."""
    return install_identity(cluster, chart_objects)


@pytest.fixture
def namespace(cluster: controlplane.ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(
    crds: None,
    operator_kubeconfig: Path,
    operator_namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        operator_kubeconfig,
        operator_namespace,
        tmp_path / "operator.log",
        env=FAST_OPERATOR_ENV,
    )
    proc.start()
    try:
        yield proc
    finally:
        code = proc.stop()
        output = proc.output()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- operator log (exit {code}) ---\n{output[-8000:]}")
        # Whatever the test checked, the operator must never crash on its input.
        assert "Traceback" not in output, f"the operator logged a traceback:\n{output[-8000:]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def get_json(cluster: controlplane.ControlPlane, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
