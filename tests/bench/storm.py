"""The paging-storm benchmark: N P1 incidents at once, all paging through one PagerDuty routing key.

PagerDuty's Events v2 accepts about 120 events a minute per routing key and
answers 429 beyond that. The receivers' PagerDuty peer enforces exactly that
(a sliding 60 s window per routing key, 429 with ``Retry-After`` past it), so
a sender that ignored the limit would see its events refused. One policy pages
one PagerDuty channel at once (``after: 0s``); N incidents (default 200) are
created as fast as a bounded pool of calls allows. Per run:

(a) time to deliver all: from the first create call to the last trigger the
    peer accepted; the floor set by the limit is (ceil(N / 120) - 1) x 60 s;
(b) the 120th trigger's time, and how many triggers came in the first minute;
(c) refusals: how many 429s the peer answered (the operator keeps to the
    limit, so 0 is expected; any it gets it must honour and retry);
(d) state latency: from each create call's return to the incident's phase
    being visible (polled every 0.25 s), while its page may still be queued;
(e) delivery accounting: every incident exactly one trigger, under one key;
    missing, duplicate keys and payload problems must be 0, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.bench import common
from tests.bench.common import BenchError, Environment, Hit, log
from tests.bench.escalation import Created, _create_all, _wait_pages, operator_env

NAME = "storm"
DEFAULT_INCIDENTS = 200
POLICY = "storm"
ROUTING_KEY = "ST0RMR0UT1NGKEY0123456789abcdefA"
LIMIT = (120, 60.0)  # PagerDuty Events v2: events per routing key per 60 s
POLL = 0.25


def default_runs(incidents: int) -> int:
    return 3 if incidents <= 200 else 1


def floor_seconds(n: int) -> float:
    """The least time N events can take through one routing key: full windows before the last one."""
    events, seconds = LIMIT
    return (math.ceil(n / events) - 1) * seconds


def budget(args: argparse.Namespace) -> float:
    n = args.incidents or DEFAULT_INCIDENTS
    runs = args.runs or default_runs(n)
    return 600 + runs * (240 + floor_seconds(n) + n * 0.5)


def policy_objects(namespace: str, base_url: str) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "storm-pd", "namespace": namespace, "labels": {"incidentops.dev/channel-secret": "true"}},
        "data": {"routing-key": base64.b64encode(ROUTING_KEY.encode()).decode()},
    }
    policy = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": POLICY, "namespace": namespace},
        "spec": {
            "levels": [{"name": "on-call", "after": "0s", "notify": ["pager"]}],
            "channels": [
                {
                    "name": "pager",
                    "pagerduty": {
                        "routingKeySecretRef": {"name": "storm-pd", "key": "routing-key"},
                        "url": f"{base_url}/pagerduty/v2/enqueue",
                    },
                }
            ],
        },
    }
    return [secret, policy]


def incident_body(name: str) -> dict[str, Any]:
    spec = {
        "title": f"{name} is down",
        "severity": "P1",
        "type": "availability",
        "escalationPolicyRef": {"name": POLICY},
    }
    return {"apiVersion": "incidentops.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


async def _create_and_watch(
    kubeconfig: Path, namespace: str, names: list[str], concurrency: int, within: float
) -> tuple[list[Created], list[str], float, dict[str, float]]:
    """Create the incidents, and poll until each shows a phase; (created, failures, seconds, phase seen at)."""
    from kubernetes_asyncio import client

    from incidentops.api import GROUP, VERSION

    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        api = await common.api_client(kubeconfig, 2)
        custom = client.CustomObjectsApi(api)
        try:
            while len(seen) < len(names) and not done.is_set():
                listed = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "incidents")
                now = time.time()
                for item in listed.get("items", []):
                    if (item.get("status") or {}).get("phase"):
                        seen.setdefault(item["metadata"]["name"], now)
                await asyncio.sleep(POLL)
        finally:
            await api.close()

    watcher = asyncio.create_task(watch())
    creation = await _create_all(kubeconfig, namespace, [incident_body(x) for x in names], concurrency, within)
    try:
        await asyncio.wait_for(watcher, timeout=60)
    except TimeoutError:
        done.set()
    return creation.created, creation.failures, creation.seconds, seen


# --concurrency, --operator-env and --grace are the escalation benchmark's flags and mean the same here.


def _concurrency(args: argparse.Namespace) -> int:
    return int(getattr(args, "concurrency", 16))


def run_once(env: Environment, index: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from incidentops.testing.operator import OperatorProcess

    names = [f"p1-{i:04d}" for i in range(n)]
    problems: list[str] = []
    namespace = env.create_namespace(f"bench-storm-{index}")
    operator_log = env.workdir / f"operator-storm-run{index}.log"
    receivers = common.ReceiverProcess(pagerduty_limit=LIMIT)
    operator = OperatorProcess(
        env.operator_kubeconfig,
        env.operator_namespace,
        operator_log,
        env=operator_env(getattr(args, "operator_env", [])),
    )
    result: dict[str, Any] = {"run": index, "namespace": namespace, "operator_log": str(operator_log)}
    try:
        receivers.start()
        env.cluster.apply(policy_objects(namespace, receivers.base_url))
        result["operator_source"] = common.operator_source()
        operator.start(timeout=120)
        assert operator.popen is not None
        common.wait_policy_ready(env.cluster, namespace, POLICY)
        log(f"run {index}: creating {n} P1 incidents paging one routing key")
        created_list, failures, creation_seconds, phase_seen = asyncio.run(
            _create_and_watch(env.cluster.kubeconfig, namespace, names, _concurrency(args), within=max(120.0, n))
        )
        created = {c.name: c for c in created_list}
        if failures:
            problems.append(f"{len(failures)} incidents could not be created, e.g. {failures[0]}")
        if not created:
            raise BenchError(f"no incident could be created: {failures[:1]}")
        first_started = min(c.started for c in created.values())
        grace = getattr(args, "grace", None) or 120.0

        def mine(hits: list[Hit]) -> list[Hit]:
            return [h for h in hits if h.kind == "pagerduty" and h.namespace == namespace and h.event == "trigger"]

        _wait_pages(
            receivers,
            operator,
            lambda hits: len({h.incident for h in mine(hits)}) >= len(created),
            first_started + floor_seconds(n) + grace,
            "every trigger",
        )
        time.sleep(3)  # a duplicate would show now
        triggers = sorted(mine(receivers.fetch()), key=lambda h: h.at)
        refused = [h for h in receivers.refused() if h.namespace == namespace]
        metrics_text = common.scrape(operator.metrics_url)
    finally:
        result["operator_exit_code"] = operator.stop()
        receivers.stop()
        result["namespace_deleted_in_seconds"] = env.delete_namespace(namespace)

    # -- figures --
    keys = Counter(h.key for h in triggers)
    by_incident = {h.incident for h in triggers}
    missing = sorted(set(created) - by_incident)
    delivery = {
        "incidents": len(created),
        "triggers_accepted": len(triggers),
        "missing": len(missing),
        "duplicate_keys": sum(c - 1 for c in keys.values() if c > 1),
        "keys_per_incident_over_one": len(triggers) - len(by_incident),
        "payload_problems": sum(h.problems for h in triggers),
        "create_failures": len(failures),
    }
    for key in ("missing", "duplicate_keys", "keys_per_incident_over_one", "payload_problems"):
        if delivery[key]:
            problems.append(f"{key.replace('_', ' ')}: {delivery[key]}")
    if missing:
        result["missing_examples"] = missing[:10]
    offsets = [h.at - first_started for h in triggers]
    state = [phase_seen[x] - created[x].returned for x in created if x in phase_seen]
    if len(state) < len(created):
        problems.append(f"{len(created) - len(state)} incidents showed no phase within 60 s of their creation")
    events, window = LIMIT
    result.update(
        {
            "ok": not problems,
            "problems": problems,
            "figures": {
                "time_to_deliver_all_seconds": round(offsets[-1], 2) if offsets else None,
                "floor_seconds": floor_seconds(len(created)),
                "over_floor_seconds": round(offsets[-1] - floor_seconds(len(created)), 2) if offsets else None,
                "trigger_120_at_seconds": round(offsets[events - 1], 2) if len(offsets) >= events else None,
                "triggers_in_first_minute": sum(1 for x in offsets if x < window),
                "refused_by_peer_429": len(refused),
                "state_latency_seconds": common.summary(state),
                "creation_seconds": round(creation_seconds, 2),
                "delivery": delivery,
                "operator_notifications": _notification_counts(metrics_text),
            },
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "operator_log_digest": common.log_digest(operator_log.read_text(errors="replace")),
        }
    )
    return result


def _notification_counts(text: str) -> dict[str, float]:
    """``incidentops_notifications_total`` of PagerDuty triggers, by outcome."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "incidentops_notifications":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels.get("channel_type") == "pagerduty":
                out[labels["outcome"]] = out.get(labels["outcome"], 0) + sample.value
    return out


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.incidents or DEFAULT_INCIDENTS
    runs = args.runs or default_runs(n)
    operator_env(getattr(args, "operator_env", []))
    results: list[dict[str, Any]] = []
    with common.environment(workdir) as env:
        machine = common.machine_facts(env.cluster)
        for index in range(1, runs + 1):
            try:
                results.append(run_once(env, index, n, args))
            except BenchError as exc:
                log(f"run {index} failed: {exc}")
                results.append({"run": index, "ok": False, "problems": [str(exc)]})
            r = results[-1]
            log(f"run {index}: {'ok' if r['ok'] else 'FAILED: ' + '; '.join(r['problems'])}")
    measured = [r["figures"] for r in results if "figures" in r]
    return {
        "ok": bool(results) and all(r["ok"] for r in results),
        "machine": machine,
        "parameters": {
            "incidents": n,
            "runs": runs,
            "severity": "P1",
            "channel": "PagerDuty Events v2, one routing key, receivers in a child process",
            "peer_rate_limit": {"events": LIMIT[0], "seconds": LIMIT[1], "answer": "429 with Retry-After"},
            "create_concurrency": _concurrency(args),
            "operator_env": operator_env(getattr(args, "operator_env", [])),
            "phase_poll_seconds": POLL,
        },
        "figures": common.median_figures(measured),
        "runs": results,
    }
