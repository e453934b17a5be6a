"""A real Kubernetes control plane on loopback, for the tests and ``incidentops dev``.

Where it sits: the e2e fixtures and ``incidentops dev`` create a
:class:`ControlPlane` (or, with ``USE_EXISTING_CLUSTER=true``, an
:class:`ExistingCluster` over ``KUBECONFIG``) and hand its admin kubeconfig to
the operator and to kubectl. The binaries come from ``build.py``.

What runs, as kind would give it: etcd (temporary data dir), kube-apiserver
(generated certificates, ``Node,RBAC`` authorization, ServiceAccount token
signing), kube-controller-manager (deployments, replica sets, garbage
collection, namespaces, service accounts and their tokens, endpoint slices),
kube-scheduler, and kwok playing the kubelets of a few fake nodes, so Pods are
scheduled and become Running and Ready and Services get endpoints.

kwok also serves what a kubelet serves the API server: container logs. Its
server listens on loopback; the fake nodes give 127.0.0.1 as their InternalIP
and kwok's port as their kubelet port, and kube-apiserver reaches kubelets by
InternalIP, so ``kubectl logs`` (and ``--previous``) reach kwok, which answers
from two files in the work directory (:meth:`ControlPlane.write_pod_log`),
for every container of every Pod: there are no real containers to tell apart.

Every process is started in its own session with a parent-death signal, its
output kept in a log file for failure reports, and stopped by pid: no orphans,
also on Ctrl-C, a failed test, or a killed test runner.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from incidentops.testing import build, pki

_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the process logs."""


def free_port() -> int:
    """A free TCP port on loopback (for the components, the operator and test peers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the test runner or `incidentops dev` is killed outright (SIGKILL), the
    # kernel sends SIGTERM to the component, so nothing is left behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _poll(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def kubeconfig_document(
    server: str,
    ca: Path | None,
    *,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded, so it can be copied around)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = b64(ca)
    creds: dict[str, Any] = {}
    if client_cert and client_key:
        creds = {"client-certificate-data": b64(client_cert), "client-key-data": b64(client_key)}
    if token:
        creds["token"] = token
    context: dict[str, Any] = {"cluster": "incidentops-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "incidentops-local", "cluster": cluster}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }


@dataclasses.dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class _Cluster:
    """What the tests and ``dev`` need of a cluster, local or existing."""

    kubeconfig: Path
    workdir: Path
    kubectl_path: Path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_path), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def apply(self, manifest: str | dict[str, Any] | Sequence[dict[str, Any]], **kwargs: Any) -> str:
        """``kubectl apply`` of a YAML string or of objects; returns kubectl's output."""
        if not isinstance(manifest, str):
            docs = [manifest] if isinstance(manifest, dict) else list(manifest)
            manifest = yaml.safe_dump_all(docs)
        return self.kubectl("apply", "-f", "-", input=manifest, **kwargs).stdout

    def service_account_kubeconfig(self, namespace: str, name: str, *, duration: str = "24h") -> Path:
        """A kubeconfig that authenticates as the given ServiceAccount (a bound token)."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        current = yaml.safe_load(self.kubeconfig.read_text())
        ctx_name = current["current-context"]
        ctx = next(c["context"] for c in current["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in current["clusters"] if c["name"] == ctx["cluster"])
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": cluster}],
            "users": [{"name": f"system:serviceaccount:{namespace}:{name}", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "sa",
                    "context": {"cluster": "cluster", "user": f"system:serviceaccount:{namespace}:{name}"},
                }
            ],
            "current-context": "sa",
        }
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def logs(self, tail: int = 60) -> str:
        return ""

    serves_pod_logs = False
    """Whether :meth:`write_pod_log` sets what ``kubectl logs`` answers (kwok's nodes; not a real cluster)."""

    def write_pod_log(self, lines: Sequence[str], *, previous: bool = False) -> None:
        raise NotImplementedError("only the local control plane's kwok nodes serve logs from a file")

    def stop(self) -> None:
        pass

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExistingCluster(_Cluster):
    """``USE_EXISTING_CLUSTER=true``: the cluster of ``KUBECONFIG`` (kind, k3d, a real one)."""

    existing = True

    def __init__(self, kubeconfig: Path | None = None, workdir: Path | None = None) -> None:
        path = kubeconfig or Path(os.environ.get("KUBECONFIG", "") or Path.home() / ".kube" / "config")
        if not path.is_file():
            raise ControlPlaneError(f"USE_EXISTING_CLUSTER is set but the kubeconfig {path} does not exist")
        self.kubeconfig = path
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="incidentops-cluster-"))
        found = os.environ.get("TEST_ASSET_KUBECTL") or shutil.which("kubectl")
        self.kubectl_path = Path(found) if found else build.resolve_binaries(names=("kubectl",))["kubectl"]

    def start(self, timeout: float = 60) -> None:
        self.kubectl("version", timeout=timeout)


class ControlPlane(_Cluster):
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

    >>> with ControlPlane() as cp:        # doctest: +SKIP
    ...     cp.start()
    ...     cp.kubectl("get", "nodes")
    """

    existing = False
    serves_pod_logs = True

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        nodes: int = 2,
        binaries: dict[str, Path] | None = None,
        attach_output: bool | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="incidentops-cp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        self._binaries = binaries
        self._attach = (
            _truthy(os.environ.get("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT"))
            if attach_output is None
            else attach_output
        )
        self._processes: list[_Process] = []
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.kubectl_path = Path("kubectl")
        self.pod_logs = self.workdir / "pod-logs"

    def write_pod_log(self, lines: Sequence[str], *, previous: bool = False) -> None:
        """Set what every kwok container's log says (``--previous``: its previous instance's), replacing it.

        kwok reads the file as a kubelet reads a container runtime's (the CRI
        format: timestamp, stream, tag, text), so ``sinceSeconds`` and
        ``limitBytes`` work; each line is stamped now, on stdout.
        """
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = self.pod_logs / ("previous.log" if previous else "current.log")
        self.pod_logs.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{stamp} stdout F {line}\n" for line in lines))
        tmp.replace(path)  # kwok opens the file per request: it sees the old text or the new, never half

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        timeout = timeout or float(os.environ.get("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "120").rstrip("s"))
        bins = self._binaries or build.resolve_binaries(names=build.CONTROL_PLANE)
        self.kubectl_path = bins["kubectl"]
        try:
            self._start(bins, timeout)
        except BaseException as exc:
            logs = self.logs()
            self.stop()
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ControlPlaneError(f"the local control plane did not start: {exc}\n{logs}") from exc

    def _start(self, bins: dict[str, Path], timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        pkidir = self.workdir / "pki"
        pkidir.mkdir(exist_ok=True)
        ca = pki.Authority(pkidir)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            server_ips=("127.0.0.1", "10.0.0.1"),
        )
        sa = pki.service_account_keys(pkidir)

        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        data = self.workdir / "etcd-data"
        self._spawn(
            "etcd",
            [
                str(bins["etcd"]),
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _poll("etcd", lambda: self._http_ok(f"http://127.0.0.1:{etcd_port}/health"), left())

        self._spawn(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={pkidir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # The `kubernetes` Service's endpoints would point at loopback, which
                # the reconciler refuses; nothing in the cluster needs to reach us.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # kwok's nodes are reached on loopback, at their InternalIP (the Hostname does not resolve).
                "--kubelet-preferred-address-types=InternalIP",
                "--v=0",
            ],
        )
        admin = ca.issue("admin", "incidentops-admin", organizations=("system:masters",))
        self._write_kubeconfig(self.kubeconfig, ca.cert, "admin", admin)
        _poll("kube-apiserver /readyz", lambda: self._api_ok("/readyz"), left())

        cm = ca.issue("controller-manager", "system:kube-controller-manager")
        cm_kc = self._write_kubeconfig(self.workdir / "controller-manager.kubeconfig", ca.cert, "cm", cm)
        cm_port = free_port()
        self._spawn(
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                f"--kubeconfig={cm_kc}",
                f"--authentication-kubeconfig={cm_kc}",
                f"--authorization-kubeconfig={cm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--cert-dir={self.workdir / 'cm-certs'}",
                "--controllers=deployment,replicaset,garbagecollector,namespace,serviceaccount,"
                "serviceaccount-token,endpointslice,endpoint,root-ca-cert-publisher,podgc,nodelifecycle,"
                "disruption,clusterrole-aggregation",
                # Each controller acts as its own ServiceAccount, as in kubeadm clusters,
                # so RBAC is exercised as in production.
                # nodelifecycle lifts the not-ready taint that admission puts on new nodes;
                # disruption keeps PodDisruptionBudgets' status and clusterrole-aggregation
                # fills aggregated ClusterRoles (the chart's view and edit roles), as in any cluster.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                "--leader-elect=false",
                "--v=0",
            ],
        )
        sched = ca.issue("scheduler", "system:kube-scheduler")
        sched_kc = self._write_kubeconfig(self.workdir / "scheduler.kubeconfig", ca.cert, "scheduler", sched)
        sched_port = free_port()
        self._spawn(
            "kube-scheduler",
            [
                str(bins["kube-scheduler"]),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
                "--v=0",
            ],
        )
        # kwok plays kubelets: it needs to update any node and pod status.
        kwok_cert = ca.issue("kwok", "kwok-controller", organizations=("system:masters",))
        kwok_kc = self._write_kubeconfig(self.workdir / "kwok.kubeconfig", ca.cert, "kwok", kwok_cert)
        # kwok's server plays every fake node's kubelet server (TLS with a certificate of its own, which
        # kube-apiserver does not check without --kubelet-certificate-authority, as with kubeadm's default).
        kubelet_port = free_port()
        self._spawn(
            "kwok",
            [
                str(bins["kwok"]),
                f"--kubeconfig={kwok_kc}",
                f"--config={Path(__file__).with_name('kwok-stages.yaml')}",
                f"--config={self._kwok_logs_config()}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1",
                f"--node-port={kubelet_port}",
                f"--server-address=127.0.0.1:{kubelet_port}",
                "--node-lease-duration-seconds=40",
            ],
            env={"HOME": str(self.workdir)},
        )
        self.apply([self._node(i) for i in range(self.nodes)], timeout=left())
        _poll("controller-manager /healthz", lambda: self._http_ok(f"https://127.0.0.1:{cm_port}/healthz"), left())
        _poll("scheduler /healthz", lambda: self._http_ok(f"https://127.0.0.1:{sched_port}/healthz"), left())
        _poll("fake nodes Ready", self._nodes_ready, left())
        # The default ServiceAccount appears once the controller-manager works;
        # Pods cannot be created in a namespace before it.
        _poll(
            "the default ServiceAccount",
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
            left(),
        )

    def stop(self) -> None:
        """Stop every process this control plane started (by pid), newest first."""
        timeout = float(os.environ.get("KUBEBUILDER_CONTROLPLANE_STOP_TIMEOUT", "20").rstrip("s"))
        for proc in reversed(self._processes):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)  # a frozen process could not handle SIGTERM
                    proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in reversed(self._processes):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self._processes.clear()
        if self._own_workdir and not _truthy(os.environ.get("INCIDENTOPS_KEEP_CONTROLPLANE")):
            shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def frozen(self, name: str = "kube-apiserver") -> Iterator[None]:
        """The component ``name`` stopped (SIGSTOP) for the block, continued (SIGCONT) after it.

        What a hung or partitioned API server looks like to its clients: the
        kernel still accepts their connections, nothing answers, and whatever
        was sent is served once it thaws. For failover tests: only a deadline
        on the client side gets a caller out.
        """
        proc = next(p for p in self._processes if p.name == name)
        proc.popen.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            proc.popen.send_signal(signal.SIGCONT)

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._processes}

    def logs(self, tail: int = 60) -> str:
        """The last lines of every component's log, for failure reports."""
        parts = []
        for proc in self._processes:
            with contextlib.suppress(OSError):
                lines = proc.log.read_text(errors="replace").splitlines()[-tail:]
                state = "running" if proc.popen.poll() is None else f"exited {proc.popen.returncode}"
                parts.append(f"--- {proc.name} ({state}), last {len(lines)} lines of {proc.log}:\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{name}.log"
        out = None if self._attach else open(log, "ab")  # noqa: SIM115 - owned by the child
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the components
                preexec_fn=die_with_parent,
            )
        finally:
            if out:
                out.close()
        self._processes.append(_Process(name, popen, log))

    def _kwok_logs_config(self) -> Path:
        """kwok's ClusterLogs: every container of every Pod logs what :meth:`write_pod_log` wrote."""
        self.pod_logs.mkdir(exist_ok=True)
        doc = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "incidentops-pod-logs"},
            "spec": {
                "logs": [
                    {
                        "logsFile": str(self.pod_logs / "current.log"),
                        "previousLogsFile": str(self.pod_logs / "previous.log"),
                    }
                ]
            },
        }
        path = self.workdir / "kwok-logs.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def _write_kubeconfig(self, path: Path, ca: Path, user: str, pair: pki.KeyPair) -> Path:
        doc = kubeconfig_document(self.server, ca, user=user, client_cert=pair.cert, client_key=pair.key)
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def _check_alive(self) -> None:
        for proc in self._processes:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(f"{proc.name} exited with {proc.popen.returncode}")

    def _http_ok(self, url: str) -> bool:
        self._check_alive()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # components' self-signed serving certs; readiness only
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _api_ok(self, path: str) -> bool:
        self._check_alive()
        return self.kubectl("get", "--raw", path, check=False, timeout=10).returncode == 0

    def _nodes_ready(self) -> bool:
        self._check_alive()
        out = self.kubectl("get", "nodes", "-o", "json", check=False).stdout
        if not out:
            return False
        items = json.loads(out)["items"]
        ready = [
            n
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        ]
        return len(ready) >= self.nodes

    @staticmethod
    def _node(index: int) -> dict[str, Any]:
        name = f"kwok-node-{index}"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }


def from_environment(workdir: Path | None = None, **kwargs: Any) -> ControlPlane | ExistingCluster:
    """A local control plane, or the existing cluster when ``USE_EXISTING_CLUSTER`` is true."""
    if _truthy(os.environ.get("USE_EXISTING_CLUSTER")):
        return ExistingCluster(workdir=workdir)
    return ControlPlane(workdir, **kwargs)
