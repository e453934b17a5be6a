"""High availability: two replicas, one Lease; only the leader pages, the other takes over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from incidentops.testing import controlplane
from incidentops.testing.operator import OperatorProcess
from tests.e2e.conftest import FAST_OPERATOR_ENV, eventually, get_json
from tests.e2e.receivers import Receivers
from tests.e2e.test_escalation import declare, install_policy, wait_event, webhook_events


@pytest.fixture
def standby(
    crds: None, operator_kubeconfig: Path, operator_namespace: str, tmp_path: Path, operator: OperatorProcess
) -> Iterator[OperatorProcess]:
    """A second replica, started after the first (which therefore leads)."""
    proc = OperatorProcess(operator_kubeconfig, operator_namespace, tmp_path / "standby.log", env=FAST_OPERATOR_ENV)
    proc.start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()[-4000:]


def test_only_the_leader_pages_and_the_standby_takes_over(
    cluster: controlplane.ControlPlane,
    operator: OperatorProcess,
    standby: OperatorProcess,
    namespace: str,
    operator_namespace: str,
    receivers: Receivers,
) -> None:
    assert "standby" in standby.output()
    lease = get_json(cluster, "lease", "incidentops-leader", "-n", operator_namespace)
    assert lease["spec"]["holderIdentity"].endswith(f"-{operator.popen.pid}")

    install_policy(
        cluster,
        namespace,
        receivers,
        levels=[
            {"name": "on-call", "after": "0s", "notify": ["hook"]},
            {"name": "second", "after": "12s", "notify": ["hook"]},
        ],
    )
    t0 = declare(cluster, namespace, "ha", severity="P1")
    wait_event(receivers, "ha", "triggered", "on-call")

    operator.kill()  # the leader dies without releasing the Lease
    second = wait_event(receivers, "ha", "escalated", "second", timeout=60)
    assert second >= t0 + 12 - 1, "the standby kept the level's delay, it did not page at takeover"
    holder = eventually(
        "the standby holds the Lease",
        lambda: (
            (
                h := get_json(cluster, "lease", "incidentops-leader", "-n", operator_namespace)["spec"].get(
                    "holderIdentity"
                )
            )
            and h.endswith(f"-{standby.popen.pid}")
            and h
        ),
    )
    assert holder
    pages = [(e, lvl) for e, lvl, _ in webhook_events(receivers, "ha") if e in ("triggered", "escalated")]
    assert pages == [("triggered", "on-call"), ("escalated", "second")], pages
    keys = receivers.keys("webhook", incident="ha")
    assert len(keys) == len(set(keys)), "two replicas never both sent"
