"""Benchmark of the alert intake: an Alertmanager storm against the real operator and control plane.

Run: ``python -m tests.bench.intake [--groups 50] [--alerts 100] [--flushes 4] [--replicas 3]``.
Writes ``bench/results/intake.json`` and prints it.

The storm is shaped like Alertmanager's traffic: one POST per group per flush,
each POST the whole group as it stands (a group grows from flush to flush
until it carries all its alerts). Every flush is delivered ``--replicas``
times at once, as several Alertmanager peers (or retries) would. 50 groups of
100 alerts is 5,000 alerts. At the end there must be exactly one Incident per
group, each with ``status.alerts.firing`` equal to what the last flush sent.

Figures: alerts per second ingested (alerts in all POSTs / wall time), webhook
latency p50/p99/max as the sender sees it, the receiver's API writes per
Incident (creates and status replacements it committed, from its answers),
operator RSS (current and peak), and, in the same run, the raw create
throughput of the API server from a plain client (Incidents created with
kubernetes_asyncio, 50 at a time) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from incidentops import kube
from incidentops.domain import alertgroups
from incidentops.testing import controlplane
from incidentops.testing.install import install_operator
from incidentops.testing.operator import OperatorProcess
from tests.unit.intake.payloads import alert, payload

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "intake.json"
TOKEN = "bench-token"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def storm(groups: int, alerts: int, flushes: int, namespace: str) -> list[list[dict[str, Any]]]:
    """flush -> the POST bodies of that flush (one per group)."""
    out = []
    for flush in range(1, flushes + 1):
        size = max(1, alerts * flush // flushes)
        bodies = []
        for g in range(groups):
            labels = {"alertname": f"Storm{g:03d}", "namespace": namespace}
            members = [
                alert(namespace=namespace, service=f"svc-{g}", pod=f"svc-{g}-{i:04d}", severity="warning")
                for i in range(size)
            ]
            for member in members:
                member["labels"]["alertname"] = labels["alertname"]
                member["fingerprint"] = f"{g:04x}{int(member['labels']['pod'].rsplit('-', 1)[1]):012x}"
            bodies.append(payload(members, group_labels=labels))
        out.append(bodies)
    return out


async def raw_creates(kubeconfig: Path, namespace: str, count: int, concurrency: int = 50) -> dict[str, float]:
    """Plain Incident creates: the API server's own limit for the objects the receiver writes."""
    api = await kube.api_client(kubeconfig)
    custom = client.CustomObjectsApi(api)
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def create(i: int) -> None:
        body = {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": f"raw-{i:05d}"},
            "spec": {"title": f"raw create {i}"},
        }
        async with semaphore:
            start = time.perf_counter()
            await custom.create_namespaced_custom_object("incidentops.dev", "v1alpha1", namespace, "incidents", body)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(create(i) for i in range(count)))
    finally:
        await api.close()
    elapsed = time.perf_counter() - start
    return {
        "creates": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "createsPerSecond": round(count / elapsed, 1),
        "latencyP50Ms": round(percentile(latencies, 50) * 1000, 1),
        "latencyP99Ms": round(percentile(latencies, 99) * 1000, 1),
    }


class WriteCounter:
    """Watches the Incidents during the storm and counts the receiver's writes.

    A create is an ADDED event; a status replacement by the receiver always
    changes ``status.alerts`` (``lastReceivedAt`` at least), while the
    operator's own status writes leave it alone, so receiver writes = ADDED +
    MODIFIED events whose ``status.alerts`` changed. Every event is counted
    too (all writers).
    """

    def __init__(self, kubeconfig: Path, namespace: str, expected_firing: int, groups: int) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.expected_firing = expected_firing
        self.groups = groups
        self.receiver_writes = 0
        self.all_writes = 0
        self.alerts: dict[str, Any] = {}
        self.settled = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> None:
        from kubernetes_asyncio import watch

        api = await kube.api_client(self.kubeconfig)
        custom = client.CustomObjectsApi(api)
        try:
            listed = await custom.list_namespaced_custom_object(
                "incidentops.dev", "v1alpha1", self.namespace, "incidents"
            )
            stream = watch.Watch().stream(
                custom.list_namespaced_custom_object,
                "incidentops.dev",
                "v1alpha1",
                self.namespace,
                "incidents",
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=600,
            )
            self.started.set()
            async for event in stream:
                obj = event["object"]
                name = obj["metadata"]["name"]
                alerts = (obj.get("status") or {}).get("alerts")
                self.all_writes += 1
                if event["type"] == "ADDED" or (event["type"] == "MODIFIED" and alerts != self.alerts.get(name)):
                    self.receiver_writes += 1
                self.alerts[name] = alerts
                done = [a for a in self.alerts.values() if a and a.get("firing") == self.expected_firing]
                if len(done) == self.groups:
                    self.settled.set()
        finally:
            await api.close()


async def send_storm(url: str, flushes: list[list[dict[str, Any]]], replicas: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    answers: list[dict[str, Any]] = []
    statuses: dict[int, int] = {}
    alerts_sent = 0
    bytes_sent = 0
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(raw: bytes) -> None:
            start = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as response:
                data = await response.json()
                latencies.append(time.perf_counter() - start)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    answers.append(data)

        start = time.perf_counter()
        for bodies in flushes:
            raws = [json.dumps(b).encode() for b in bodies]
            alerts_sent += replicas * sum(len(b["alerts"]) for b in bodies)
            bytes_sent += replicas * sum(len(r) for r in raws)
            # Every group flushes at once; each flush is delivered `replicas` times concurrently.
            await asyncio.gather(*(post(raw) for raw in raws for _ in range(replicas)))
        elapsed = time.perf_counter() - start
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "answers": answers,
        "statuses": statuses,
        "alerts": alerts_sent,
        "bytes": bytes_sent,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.intake", description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--alerts", type=int, default=100, help="alerts per group at the last flush")
    parser.add_argument("--flushes", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=3, help="deliveries of each flush, concurrent")
    parser.add_argument("--raw-creates", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="incidentops-bench-"))
    cluster = controlplane.from_environment(workdir / "controlplane")
    proc: OperatorProcess | None = None
    try:
        print("starting the control plane ...", file=sys.stderr)
        cluster.start()
        suffix = uuid.uuid4().hex[:6]
        ops, raw_ns = f"bench-ops-{suffix}", f"bench-raw-{suffix}"
        for name in (ops, raw_ns):
            cluster.kubectl("create", "namespace", name)
        kubeconfig = install_operator(cluster, ops, ROOT / "charts" / "incidentops")

        print(f"raw creates: {args.raw_creates} Incidents ...", file=sys.stderr)
        raw = asyncio.run(raw_creates(cluster.kubeconfig, raw_ns, args.raw_creates))

        token = workdir / "token"
        token.write_text(TOKEN)
        proc = OperatorProcess(
            kubeconfig,
            ops,
            workdir / "operator.log",
            args=["--watch-namespace", ops],  # the raw namespace is not the operator's business
            env={"INCIDENTOPS_TOKEN_FILE": str(token), "INCIDENTOPS_RECEIVER_MAX_BODY_BYTES": str(64 * 1024 * 1024)},
        )
        proc.start()
        assert proc.popen is not None
        rss_before = rss_kib(proc.popen.pid)

        flushes = storm(args.groups, args.alerts, args.flushes, ops)
        print(
            f"storm: {args.groups} groups x {args.alerts} alerts, {args.flushes} flushes x {args.replicas} ...",
            file=sys.stderr,
        )
        counter = WriteCounter(kubeconfig, ops, args.alerts, args.groups)

        async def measured() -> dict[str, Any]:
            watcher = asyncio.create_task(counter.run())
            await asyncio.wait_for(counter.started.wait(), 30)
            try:
                outcome = await send_storm(proc.alerts_url, flushes, args.replicas)
                await asyncio.wait_for(counter.settled.wait(), 30)
                await asyncio.sleep(5)  # late events of the operator's own writes
                return outcome
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

        result = asyncio.run(measured())
        rss_after = rss_kib(proc.popen.pid)

        items = json.loads(cluster.kubectl("get", "incidents", "-n", ops, "-o", "json").stdout)["items"]
        grouped = [i for i in items if alertgroups.ALERT_GROUP_LABEL in i["metadata"].get("labels", {})]
        firing = sorted({((i.get("status") or {}).get("alerts") or {}).get("firing") for i in grouped})
        writes = counter.receiver_writes
        posts = sum(result["statuses"].values())
        latencies = result["latencies"]
        report = {
            "benchmark": "intake",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "storm": {
                "groups": args.groups,
                "alertsPerGroup": args.alerts,
                "flushes": args.flushes,
                "deliveriesPerFlush": args.replicas,
                "posts": posts,
                "alertsInPosts": result["alerts"],
                "megabytesSent": round(result["bytes"] / 1e6, 2),
                "statuses": {str(k): v for k, v in sorted(result["statuses"].items())},
            },
            "outcome": {
                "incidents": len(grouped),
                "expectedIncidents": args.groups,
                "firingCounts": firing,
                "expectedFiring": args.alerts,
                "ok": len(grouped) == args.groups and firing == [args.alerts] and result["statuses"] == {200: posts},
            },
            "throughput": {
                "seconds": round(result["elapsed"], 3),
                "alertsPerSecond": round(result["alerts"] / result["elapsed"], 1),
                "postsPerSecond": round(posts / result["elapsed"], 1),
                "receiverWritesPerSecond": round(writes / result["elapsed"], 1),
            },
            "webhookLatencyMs": {
                "p50": round(percentile(latencies, 50) * 1000, 1),
                "p99": round(percentile(latencies, 99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
                "mean": round(statistics.fmean(latencies) * 1000, 1),
            },
            "apiWrites": {
                "receiverTotal": writes,
                "perIncident": round(writes / max(1, len(grouped)), 2),
                "postsPerIncident": round(posts / max(1, len(grouped)), 2),
                "allWritersPerIncident": round(counter.all_writes / max(1, len(grouped)), 2),
            },
            "operatorRssMiB": {
                "before": round(rss_before.get("VmRSS", 0) / 1024, 1),
                "after": round(rss_after.get("VmRSS", 0) / 1024, 1),
                "peak": round(rss_after.get("VmHWM", 0) / 1024, 1),
            },
            "rawApiServer": raw,
            "ratio": {
                "receiverWritesToRawCreates": round((writes / result["elapsed"]) / raw["createsPerSecond"], 3),
            },
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        code = proc.stop()
        if "Traceback" in proc.output():
            print(proc.output()[-4000:], file=sys.stderr)
            return 1
        proc = None
        return 0 if report["outcome"]["ok"] and code == 0 else 1
    finally:
        if proc is not None:
            proc.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
