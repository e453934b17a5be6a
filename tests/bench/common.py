"""What every benchmark shares: the environment, the receivers, the measuring code.

- :func:`environment` brings up the local control plane (or ``USE_EXISTING_CLUSTER``),
  our CRDs, an operator namespace with the chart's ClusterRole bound to a
  ServiceAccount, and hands out operators that run under that ServiceAccount,
  exactly as the e2e tests do. Everything it started is stopped on the way
  out, also when the benchmark fails.
- :class:`ReceiverProcess` runs the e2e receivers (``tests/e2e/receivers.py``)
  in a child process of their own, so the benchmark's own CPU (creating a
  thousand objects through the Python client) does not delay the receive
  timestamps; the deliveries are fetched over a pipe.
- Statistics (percentiles by linear interpolation, Prometheus histogram
  quantiles), process memory and CPU from ``/proc``, API server request
  counts, machine facts, and the JSON result file.

All traffic stays on 127.0.0.1: the control plane, the operator's metrics and
receiver ports, and the receivers listen on loopback only.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "incidentops"
RESULTS = ROOT / "bench" / "results"
MIB = 1024 * 1024


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to; the message says what and why."""


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], quantiles: Sequence[int] = (50, 90, 99)) -> dict[str, Any]:
    """count, min, the percentiles, max and mean of ``values`` (seconds, 0.1 ms resolution)."""
    out: dict[str, Any] = {"count": len(values), "min": _round(min(values)) if values else None}
    for q in quantiles:
        out[f"p{q}"] = _round(percentile(values, q))
    out["max"] = _round(max(values)) if values else None
    out["mean"] = _round(statistics.fmean(values)) if values else None
    return out


def median_figures(runs: Sequence[Mapping[str, Any]]) -> Any:
    """The median of every numeric leaf across runs (booleans: all true); other leaves from the first run."""
    if not runs:
        return {}
    first = runs[0]
    if isinstance(first, Mapping):
        keys = list(dict.fromkeys(k for r in runs if isinstance(r, Mapping) for k in r))
        return {k: median_figures([r[k] for r in runs if isinstance(r, Mapping) and k in r]) for k in keys}
    if isinstance(first, bool):
        return all(bool(r) for r in runs)
    numbers = [r for r in runs if isinstance(r, int | float) and not isinstance(r, bool)]
    if numbers and len(numbers) == len(runs):
        value = statistics.median(numbers)
        return round(value, 4) if isinstance(value, float) else value
    return first


# -- Prometheus histograms -------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative (upper bound, count) buckets, the last one +Inf."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made between ``earlier`` and this scrape (same bucket layout)."""
        before = dict(earlier.buckets)
        return Histogram(
            tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
            self.sum - earlier.sum,
            self.count - earlier.count,
        )

    def quantile(self, q: float) -> float | None:
        """Like PromQL's ``histogram_quantile``: linear within the bucket; in +Inf, the largest finite bound."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower
                if cumulative == below:
                    return le
                return lower + (le - lower) * (rank - below) / (cumulative - below)
            lower, below = le, cumulative
        return lower

    def share_at_most(self, bound: float) -> float | None:
        """The fraction of observations at most ``bound`` (a bucket bound)."""
        if self.count <= 0:
            return None
        for le, cumulative in self.buckets:
            if le == bound:
                return cumulative / self.count
        return None

    def describe(self, within: float = 2.0) -> dict[str, Any]:
        return {
            "count": int(self.count),
            "mean": _round(self.sum / self.count) if self.count else None,
            "p50": _round(self.quantile(0.5)),
            "p99": _round(self.quantile(0.99)),
            "max_bucket": self.max_bucket(),
            f"share_within_{within:g}s": _round(self.share_at_most(within)),
        }

    def max_bucket(self) -> float | str | None:
        """The upper bound of the highest non-empty bucket: the histogram's bound on the maximum."""
        previous = 0.0
        highest: float | None = None
        for le, cumulative in self.buckets:
            if cumulative > previous:
                highest = le
            previous = cumulative
        if highest is not None and math.isinf(highest):
            return "+Inf"
        return highest


def parse_histogram(text: str, name: str) -> Histogram:
    """The histogram ``name`` from a Prometheus text exposition, summed over its label sets."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
            elif sample.name == f"{name}_count":
                count += sample.value
    return Histogram(tuple(sorted(buckets.items())), total, count)


def scrape(url: str, timeout: float = 10) -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise BenchError(f"refusing to scrape {url}: benchmarks talk to 127.0.0.1 only")
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


# -- processes -------------------------------------------------------------------------------


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (the resident peak) of a process, in MiB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) * 1024 / MIB, 1)  # the kernel reports kB
    return {"rss": fields.get("VmRSS", float("nan")), "hwm": fields.get("VmHWM", float("nan"))}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


def _machine_jiffies() -> tuple[int, int]:
    """Busy and total jiffies of all CPUs since boot (``/proc/stat``)."""
    with open("/proc/stat") as f:
        jiffies = [int(x) for x in f.readline().split()[1:]]
    total = sum(jiffies[:8])  # guest time is already counted in user
    return total - jiffies[3] - jiffies[4], total  # minus idle and iowait


@dataclass(frozen=True)
class CpuSample:
    """CPU time of some processes (by name) and the machine's busy and total jiffies, at one moment."""

    wall: float
    processes: dict[str, float]
    busy: int
    total: int

    @classmethod
    def take(cls, pids: Mapping[str, int | None]) -> CpuSample:
        used: dict[str, float] = {}
        for name, pid in pids.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                used[name] = cpu_seconds(pid)  # type: ignore[arg-type]
        busy, total = _machine_jiffies()
        return cls(time.time(), used, busy, total)

    @staticmethod
    def usage(start: CpuSample, end: CpuSample) -> dict[str, Any]:
        """Each process's CPU in cores over the interval, and the share of all the machine's CPUs busy."""
        wall = end.wall - start.wall
        ticks = end.total - start.total
        cores = {
            name: round((end.processes[name] - start.processes[name]) / wall, 2)
            for name in start.processes
            if name in end.processes and wall > 0
        }
        return {
            "seconds": round(wall, 2),
            "cores": cores,
            "machine_busy": round((end.busy - start.busy) / ticks, 2) if ticks > 0 else None,
        }


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def wait_policy_ready(cluster: Any, namespace: str, name: str, timeout: float = 60) -> None:
    """Until the EscalationPolicy ``name`` is Ready (its channels' Secrets checked by the operator)."""
    wait_until(
        f"the {name} policy to be Ready",
        lambda: (
            "True"
            in cluster.kubectl(
                "get",
                "escalationpolicy",
                name,
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            ).stdout
        ),
        timeout=timeout,
    )


def log_digest(text: str, top: int = 8) -> dict[str, Any]:
    """Counts of the operator log's warnings, errors and tracebacks, and its most frequent messages."""
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    pattern = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\s+\[([^\]]+)\] (.*)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            levels[m.group(1)] += 1
            # Names and numbers vary per incident; the shape of the message is what repeats.
            shape = re.sub(r"\d+(\.\d+)?", "N", m.group(3))
            shape = re.sub(r"inc-N|bench-[\w-]+", "…", shape)
            messages[f"{m.group(1)} [{m.group(2)}] {shape[:200]}"] += 1
    return {
        "lines": text.count("\n"),
        "warnings": levels["WARNING"],
        "errors": levels["ERROR"] + levels["CRITICAL"],
        "tracebacks": text.count("Traceback (most recent call last)"),
        "frequent": [{"count": n, "message": msg} for msg, n in messages.most_common(top)],
    }


# -- the API server's own counts -----------------------------------------------------------------


def apiserver_requests(cluster: Any) -> Counter[tuple[str, str, str]] | None:
    """``apiserver_request_total`` by (verb, resource, subresource); None when not readable."""
    from prometheus_client.parser import text_string_to_metric_families

    result = cluster.kubectl("get", "--raw", "/metrics", check=False, timeout=60)
    if result.returncode != 0:
        return None
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(result.stdout):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                labels = sample.labels
                key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
                counts[key] += int(sample.value)
    return counts


def request_delta(
    before: Counter[tuple[str, str, str]] | None,
    after: Counter[tuple[str, str, str]] | None,
    resources: Sequence[str],
) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    out: dict[str, int] = {}
    for (verb, resource, sub), n in sorted((after - before).items()):
        if resource in resources and n:
            out[f"{verb} {resource}{'/' + sub if sub else ''}"] = n
    return out


# -- receivers in a process of their own ------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One delivery as the receivers saw it, reduced to what the benchmarks match on."""

    kind: str
    at: float  # time.time() when received
    event: str | None
    level_name: str | None
    incident: str | None
    namespace: str | None
    key: str | None
    problems: int
    status: int = 200  # what the receiver answered (429 when its rate limit refused it)


def _hit(delivery: Any) -> Hit:
    body: dict[str, Any] = delivery.body if isinstance(delivery.body, dict) else {}
    if delivery.kind == "pagerduty":
        # Events v2 carries our facts in the trigger's custom details ("namespace/name", the key).
        details = (body.get("payload") or {}).get("custom_details") or {}
        namespace, _, name = str(details.get("incident") or "").partition("/")
        return Hit(
            kind=delivery.kind,
            at=delivery.at,
            event=body.get("event_action"),
            level_name=details.get("levelName"),
            incident=name or None,
            namespace=namespace or None,
            key=details.get("key"),
            problems=len(delivery.problems),
            status=delivery.status,
        )
    incident: dict[str, Any] = body["incident"] if isinstance(body.get("incident"), dict) else {}
    return Hit(
        kind=delivery.kind,
        at=delivery.at,
        event=body.get("event"),
        level_name=body.get("levelName"),
        incident=incident.get("name"),
        namespace=incident.get("namespace"),
        key=delivery.headers.get("Idempotency-Key") or body.get("key"),
        problems=len(delivery.problems),
        status=delivery.status,
    )


def _serve_receivers(
    conn: Connection, pagerduty_limit: tuple[int, float] | None
) -> None:  # pragma: no cover - runs in the child process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    from tests.e2e.receivers import Receivers

    receivers = Receivers(pagerduty_limit=pagerduty_limit)
    receivers.start()
    conn.send(("ready", receivers.base_url, receivers.smtp_port))
    try:
        while True:
            if not conn.poll(5):
                continue
            command = conn.recv()  # EOFError when the parent is gone: we stop too
            if command[0] == "since":
                conn.send([_hit(d) for d in receivers.of()[command[1] :]])
            elif command[0] == "refused":
                conn.send([_hit(d) for d in receivers.of(refused=True)])
            elif command[0] == "stop":
                break
    except (EOFError, OSError):
        pass
    finally:
        receivers.stop()
        with contextlib.suppress(OSError):
            conn.send(("stopped",))


class ReceiverProcess:
    """``tests.e2e.receivers.Receivers`` in a child process; :meth:`fetch` returns what they got.

    ``pagerduty_limit`` (events, seconds) makes the PagerDuty peer refuse with 429 beyond that rate per
    routing key, as Events v2 does; :meth:`refused` returns what it refused.
    """

    def __init__(self, *, pagerduty_limit: tuple[int, float] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve_receivers, args=(child, pagerduty_limit), name="bench-receivers", daemon=True
        )
        self.hits: list[Hit] = []
        self.base_url = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self, timeout: float = 30) -> None:
        self._process.start()
        if not self._conn.poll(timeout):
            self.stop()
            raise BenchError(f"the receivers did not start within {timeout:.0f}s")
        try:
            _, self.base_url, _ = self._conn.recv()
        except EOFError:
            self.stop()
            raise BenchError(f"the receivers' process exited with {self._process.exitcode} while starting") from None
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise BenchError(f"the receivers listen on {self.base_url}, not on loopback")

    def fetch(self, timeout: float = 30) -> list[Hit]:
        """Every delivery so far (new ones appended to :attr:`hits`)."""
        if not self._process.is_alive():
            raise BenchError(f"the receivers' process exited with {self._process.exitcode}")
        self._conn.send(("since", len(self.hits)))
        if not self._conn.poll(timeout):
            raise BenchError(f"the receivers did not answer within {timeout:.0f}s")
        self.hits.extend(self._conn.recv())
        return self.hits

    def refused(self, timeout: float = 30) -> list[Hit]:
        """What the receivers refused (a rate limit's 429s)."""
        if not self._process.is_alive():
            raise BenchError(f"the receivers' process exited with {self._process.exitcode}")
        self._conn.send(("refused",))
        if not self._conn.poll(timeout):
            raise BenchError(f"the receivers did not answer within {timeout:.0f}s")
        refused: list[Hit] = self._conn.recv()
        return refused

    def stop(self, timeout: float = 15) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(("stop",))
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()


# -- the environment -----------------------------------------------------------------------------


@dataclass
class Environment:
    """A cluster with our CRDs, and the namespace and ServiceAccount the operator runs under."""

    cluster: Any
    operator_namespace: str
    operator_kubeconfig: Path
    workdir: Path
    _namespaces: list[str] = field(default_factory=list)

    def create_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.cluster.kubectl("create", "namespace", name)
        self._namespaces.append(name)
        return name

    def delete_namespace(self, name: str, timeout: float = 180) -> float | None:
        """Delete a namespace and wait until it is gone; seconds it took, None if it is still there."""
        started = time.monotonic()
        self.cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            result = self.cluster.kubectl(
                "wait",
                "--for=delete",
                f"namespace/{name}",
                f"--timeout={int(timeout)}s",
                check=False,
                timeout=timeout + 30,
            )
            if result.returncode == 0 or "not found" in result.stderr.lower():
                if name in self._namespaces:
                    self._namespaces.remove(name)
                return round(time.monotonic() - started, 1)
        return None


@contextlib.contextmanager
def environment(workdir: Path) -> Iterator[Environment]:
    """Bring up the cluster, install the CRDs and the chart's RBAC; tear down what we started."""
    from incidentops.testing import controlplane
    from incidentops.testing.install import install_operator

    cluster = controlplane.from_environment(workdir / "controlplane")
    log("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster.start()
    env: Environment | None = None
    try:
        namespace = f"incidentops-bench-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", namespace)
        kubeconfig = install_operator(cluster, namespace, CHART)
        env = Environment(cluster, namespace, kubeconfig, workdir, [namespace])
        yield env
    finally:
        if getattr(cluster, "existing", False) and env is not None:
            # Someone else's cluster: leave it as we found it (ours is simply stopped).
            for ns in list(env._namespaces):
                cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
        log("stopping the control plane")
        cluster.stop()


async def api_client(kubeconfig: Path, pool: int) -> Any:
    """A kubernetes_asyncio client from ``kubeconfig`` with ``pool`` connections."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    host = str(configuration.host or "")
    if not host.startswith(("https://127.0.0.1:", "http://127.0.0.1:")) and not os.environ.get("USE_EXISTING_CLUSTER"):
        raise BenchError(f"the API server is at {host}, not on loopback")
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


# -- bounds and results ------------------------------------------------------------------------------


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """End the benchmark (with its clean-ups) on SIGTERM, SIGHUP, or after ``seconds`` in all."""

    def stop(signum: int, _: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            raise BenchError(f"the benchmark ran past its overall limit of {seconds:.0f}s")
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)}
    signal.alarm(max(1, math.ceil(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _git(*args: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def operator_source() -> dict[str, Any]:
    """What operator code runs: HEAD, whether ``operator/`` differs from it, and a digest of its files.

    Others edit the same tree while benchmarks run, so the commit alone does
    not say which code was measured; the digest does (taken as the operator starts).
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "operator").rglob("*")):
        if (
            path.is_file()
            and path.suffix in (".py", ".yaml", ".j2", ".txt", ".json")
            and "__pycache__" not in path.parts
        ):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    changed = _git("status", "--porcelain", "--", "operator")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "operator_changed_since_commit": bool(changed) if changed is not None else None,
        "operator_sha256": digest.hexdigest()[:16],
    }


def machine_facts(cluster: Any) -> dict[str, Any]:
    """Where the figures come from: CPUs, memory, load, software versions, the commit."""
    cpu_model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    mem_total = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_total = next((round(int(line.split()[1]) / 1024) for line in f if line.startswith("MemTotal")), None)
    kube: dict[str, Any] = {}
    result = cluster.kubectl("version", "-o", "json", check=False)
    if result.returncode == 0:
        versions = json.loads(result.stdout)
        kube = {
            "server": versions.get("serverVersion", {}).get("gitVersion"),
            "kubectl": versions.get("clientVersion", {}).get("gitVersion"),
        }
    components: dict[str, str] = {}
    for name, pid in (getattr(cluster, "pids", None) or {}).items():
        with contextlib.suppress(OSError):
            components[name] = Path(os.readlink(f"/proc/{pid}/exe")).parent.name  # e.g. etcd-v3.6.16-<hash>
    status = _git("status", "--porcelain")
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_mib": mem_total,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {d: _version(d) for d in ("kopf", "kubernetes_asyncio", "aiohttp", "pydantic", "incidentops")},
        "kubernetes": kube,
        "control_plane": "existing cluster" if getattr(cluster, "existing", False) else "local (incidentops.testing)",
        "control_plane_binaries": components,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def write_result(out: Path, name: str, document: Mapping[str, Any]) -> Path:
    """Write ``<out>/<name>.json`` atomically (through a ``.tmp`` file, which git ignores)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = out / f"{name}.json.tmp"
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
