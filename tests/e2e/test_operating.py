"""What docs/operating.md promises of a running operator: its metrics and its readiness, on two replicas.

The leader reports ``incidentops_leader`` 1 and the standby 0 (until the leader
dies and it takes over), the receiver's histogram counts each answer by route and
code, and ``/readyz`` fails on the replica that cannot reach the API server while
the other stays ready. That replica reaches the API server through a TCP link
the test cuts and mends, as a network partition between one node and the
control plane looks to it (connections reset, new ones refused), without
touching the API server the other tests use.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from incidentops.intake import ALERTS_PATH, server
from incidentops.testing import controlplane
from incidentops.testing.controlplane import free_port
from incidentops.testing.operator import OperatorProcess
from tests.e2e import alertmanager as am
from tests.e2e.conftest import FAST_OPERATOR_ENV, eventually
from tests.e2e.test_intake import post
from tests.unit.intake.payloads import alert, payload

TOKEN = "e2e-token-current"  # test_intake.post's default


class Link:
    """A TCP link from a local port to ``target`` that can be cut (every connection closed, new ones refused)
    and mended (the same port accepts again)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._acceptor: threading.Thread | None = None

    def mend(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port again
        listener.settimeout(0.1)
        self._open.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True, name="link-accept")
        self._acceptor.start()

    def cut(self) -> None:
        self._open.clear()
        if self._acceptor is not None:
            self._acceptor.join()  # the listener is closed: new connections are refused from here on
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._open.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    self._sockets |= {client, upstream}
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True, name="link-pipe").start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def link(cluster: controlplane.ControlPlane, operator_kubeconfig: Path) -> Iterator[tuple[Link, Path]]:
    """A link to the API server and a copy of the operator's kubeconfig that goes through it."""
    if cluster.existing:
        pytest.skip("the link stands in front of the local control plane's API server")
    config = yaml.safe_load(operator_kubeconfig.read_text())
    [entry] = config["clusters"]
    host, _, port = entry["cluster"]["server"].removeprefix("https://").rpartition(":")
    assert host == "127.0.0.1", entry["cluster"]["server"]  # the API server's certificate names this address
    link = Link((host, int(port)))
    link.mend()
    entry["cluster"]["server"] = f"https://127.0.0.1:{link.port}"
    path = operator_kubeconfig.with_name(f"linked-{link.port}.kubeconfig")
    path.write_text(yaml.safe_dump(config))
    yield link, path
    link.cut()


def metric(proc: OperatorProcess, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of what the process serves on /metrics, None when it has none."""
    with urllib.request.urlopen(proc.metrics_url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def probe(proc: OperatorProcess, path: str) -> tuple[int, Any]:
    return am.http_json("GET", proc.alerts_url.removesuffix(ALERTS_PATH) + path, timeout=5)


@contextlib.contextmanager
def running(proc: OperatorProcess) -> Iterator[OperatorProcess]:
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        assert "Traceback" not in proc.output(), proc.output()[-4000:]


def test_leader_gauge_receiver_histogram_and_readiness_when_the_api_server_is_out_of_reach(
    crds: None,
    operator_kubeconfig: Path,
    operator_namespace: str,
    namespace: str,
    tmp_path: Path,
    link: tuple[Link, Path],
) -> None:
    cut, linked_kubeconfig = link
    (tmp_path / "token").write_text(TOKEN + "\n")
    env = {
        **FAST_OPERATOR_ENV,
        "INCIDENTOPS_TOKEN_FILE": str(tmp_path / "token"),
        "INCIDENTOPS_ALERT_NAMESPACE_LABEL": "true",  # the incident goes to the test's namespace
    }
    first = OperatorProcess(operator_kubeconfig, operator_namespace, tmp_path / "leader.log", env=env)
    second = OperatorProcess(linked_kubeconfig, operator_namespace, tmp_path / "standby.log", env=env)
    with running(first) as leader, running(second) as standby:
        assert "standby" in standby.output()
        assert metric(leader, "incidentops_leader") == 1
        assert metric(standby, "incidentops_leader") == 0

        # The receiver counts every answer, by route and code.
        good = payload([alert(namespace=namespace)], group_labels={"alertname": "Observed", "namespace": namespace})
        assert post(leader.alerts_url, good, token=None)[0] == 401
        status, data = post(leader.alerts_url, good)
        assert status == 200 and data["created"] is True, data
        count = "incidentops_receiver_request_duration_seconds_count"
        assert metric(leader, count, path=ALERTS_PATH, code="401") == 1
        assert metric(leader, count, path=ALERTS_PATH, code="200") == 1
        assert metric(standby, count, path=ALERTS_PATH, code="200") is None, "the standby answered nothing"

        # Ready while the API server answers; the cut-off replica is not, and says why; it stays alive.
        assert probe(leader, "/readyz") == (200, {"status": "ok"})
        assert probe(standby, "/readyz") == (200, {"status": "ok"})
        cut_at = time.monotonic()
        cut.cut()
        status, data = eventually(
            "the cut-off replica is not ready", lambda: (r := probe(standby, "/readyz"))[0] == 503 and r
        )
        not_ready = time.monotonic() - cut_at
        assert data["error"].startswith("the Kubernetes API "), data
        assert probe(standby, "/healthz") == (200, {"status": "ok"})
        assert probe(leader, "/readyz") == (200, {"status": "ok"}), "the other replica stays ready"
        assert metric(standby, count, path="/readyz", code="503") >= 1  # type: ignore[operator]
        mended_at = time.monotonic()
        cut.mend()
        eventually("ready again once the API server answers", lambda: probe(standby, "/readyz")[0] == 200)
        print(
            f"readiness: cut -> 503 {not_ready:.2f}s ({data['error']}), "
            f"mended -> 200 {time.monotonic() - mended_at:.2f}s (ttl {server.READY_API_TTL_SECONDS:g}s)"
        )

        # The leader dies without releasing the Lease: the standby takes over and says so.
        leader.kill()
        eventually("the standby leads", lambda: metric(standby, "incidentops_leader") == 1, timeout=30)
