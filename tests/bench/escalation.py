"""The escalation benchmark (issue 3): N open incidents, two levels, real webhooks.

One EscalationPolicy pages a webhook at the first level (``after: 0s``) and
again at the second (``after: T``); N incidents (default 1,000) are created
through the API as fast as a bounded pool of concurrent calls allows, and the
local receivers time every page. Per run:

(a) creation-to-first-page latency: webhook receive time minus the time the
    create call returned to the client (not ``creationTimestamp``, which has
    one-second resolution);
(b) scheduler lateness: receive time of the second-level page minus (the
    client-side create time + T); beside it the same against the operator's
    own deadline (``creationTimestamp`` + T), and the operator's
    ``incidentops_scheduler_lateness_seconds`` histogram, split into the
    first-level and the second-level observations by a scrape in between;
(c) operator RSS idle, at the end with N open incidents, and its peak (VmHWM);
(d) incidents created per second (and first pages sent per second);
(e) delivery accounting: every incident exactly one first and one second page;
    missing pages, keys delivered twice and extra pages must all be 0, or the
    run fails.

T defaults to a value computed from the API server's create rate measured
before the operator starts, so that every incident exists before the first
second-level deadline; ``--second-after`` sets it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import math
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.bench import common
from tests.bench.common import BenchError, Environment, Hit, log

NAME = "escalation"
DEFAULT_INCIDENTS = 1000
POLICY = "bench"
FIRST, SECOND = "first", "second"
LATENESS = "incidentops_scheduler_lateness_seconds"
HMAC_SECRET = "bench-hmac-secret"
CALIBRATION_INCIDENTS = 100


def default_runs(incidents: int) -> int:
    return 3 if incidents <= 200 else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("escalation")
    group.add_argument(
        "--second-after",
        type=int,
        default=None,
        metavar="T",
        help="seconds of the second level's `after` (default: computed from the measured create rate)",
    )
    group.add_argument(
        "--concurrency", type=int, default=16, help="create calls in flight at once (default: %(default)s)"
    )
    group.add_argument(
        "--create-rate",
        type=float,
        default=None,
        metavar="R",
        help="pace creation at R incidents per second (default: as fast as --concurrency allows); "
        "spreads the second-level deadlines out instead of bunching them",
    )
    group.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the operator, e.g. INCIDENTOPS_SCHEDULER_CONCURRENCY=32 (repeatable)",
    )
    group.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds to wait for pages past their due time before calling them missing (default: max(60, N/10))",
    )


def operator_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("INCIDENTOPS_"):
            raise BenchError(f"--operator-env takes INCIDENTOPS_NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


def budget(args: argparse.Namespace) -> float:
    """An upper bound of the whole benchmark's duration, for the overall alarm."""
    n, runs = args.incidents or DEFAULT_INCIDENTS, args.runs or default_runs(args.incidents or DEFAULT_INCIDENTS)
    creation = n / args.create_rate if args.create_rate else 0.0
    t = args.second_after or max(60, n * 0.12, creation + 30)
    grace = args.grace or max(60.0, n / 10)
    return 600 + runs * (180 + n * 0.3 + creation + t + 2 * grace + 240)


# -- objects -------------------------------------------------------------------------------------


def policy_objects(namespace: str, base_url: str, second_after: int) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "bench-hook",
            "namespace": namespace,
            "labels": {"incidentops.dev/channel-secret": "true"},
        },
        "data": {"hmac": base64.b64encode(HMAC_SECRET.encode()).decode()},
    }
    policy = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": POLICY, "namespace": namespace},
        "spec": {
            "levels": [
                {"name": FIRST, "after": "0s", "notify": ["hook"]},
                {"name": SECOND, "after": f"{second_after}s", "notify": ["hook"]},
            ],
            "channels": [
                {
                    "name": "hook",
                    "webhook": {
                        "url": f"{base_url}/webhook/hook",
                        "hmacSecretRef": {"name": "bench-hook", "key": "hmac"},
                    },
                }
            ],
        },
    }
    return [secret, policy]


def incident_body(name: str, with_policy: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"title": f"{name} is failing", "severity": "P2", "type": "availability"}
    if with_policy:
        spec["escalationPolicyRef"] = {"name": POLICY}
    return {"apiVersion": "incidentops.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


def incident_names(n: int) -> list[str]:
    return [f"inc-{i:05d}" for i in range(n)]


# -- creating incidents fast -------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    name: str
    started: float  # time.time() before the create call
    returned: float  # time.time() when it returned
    created_at: float  # metadata.creationTimestamp (one-second resolution)
    uid: str


@dataclass
class Creation:
    created: list[Created]
    failures: list[str]
    seconds: float  # from the first call's start to the last call's return

    @property
    def rate(self) -> float:
        return len(self.created) / self.seconds if self.seconds > 0 else 0.0


def _timestamp(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def _create_all(
    kubeconfig: Path,
    namespace: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    within: float,
    rate: float | None = None,
) -> Creation:
    from kubernetes_asyncio import client

    from incidentops.api import GROUP, VERSION

    api = await common.api_client(kubeconfig, concurrency)
    custom = client.CustomObjectsApi(api)
    slots = asyncio.Semaphore(concurrency)

    async def create(index: int, body: dict[str, Any]) -> Created:
        if rate:
            await asyncio.sleep(max(0.0, begin + index / rate - time.time()))
        async with slots:
            started = time.time()
            obj = await custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "incidents", body, _request_timeout=60
            )
            returned = time.time()
        meta = obj["metadata"]
        return Created(meta["name"], started, returned, _timestamp(meta["creationTimestamp"]), meta["uid"])

    begin = time.time()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(create(i, b) for i, b in enumerate(bodies)), return_exceptions=True), timeout=within
        )
    finally:
        await api.close()
    created = [r for r in results if isinstance(r, Created)]
    failures = [
        f"{b['metadata']['name']}: {r!r}"[:300]
        for b, r in zip(bodies, results, strict=True)
        if not isinstance(r, Created)
    ]
    end = max((c.returned for c in created), default=time.time())
    return Creation(created, failures, end - begin)


def create_incidents(
    kubeconfig: Path,
    namespace: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    timeout: float,
    rate: float | None = None,
) -> Creation:
    return asyncio.run(_create_all(kubeconfig, namespace, bodies, concurrency, within=timeout, rate=rate))


def calibrate(env: Environment, concurrency: int) -> dict[str, Any]:
    """The API server's create rate for Incidents with no operator running (they are deleted again).

    A few creates first, untimed: the first writes of a new CRD (its storage, the
    client's connections and TLS) are much slower than the rest.
    """
    namespace = env.create_namespace("bench-calibrate")
    warm = [incident_body(f"warm-{i}", with_policy=False) for i in range(5)]
    create_incidents(env.cluster.kubeconfig, namespace, warm, concurrency, timeout=120)
    bodies = [incident_body(name, with_policy=False) for name in incident_names(CALIBRATION_INCIDENTS)]
    creation = create_incidents(env.cluster.kubeconfig, namespace, bodies, concurrency, timeout=120)
    if creation.failures:
        raise BenchError(f"calibration: {len(creation.failures)} creates failed, e.g. {creation.failures[0]}")
    env.cluster.kubectl("delete", "incidents", "--all", "-n", namespace, "--wait=true", timeout=120)
    gone = env.delete_namespace(namespace)
    return {
        "incidents": len(bodies),
        "seconds": round(creation.seconds, 3),
        "per_second": round(creation.rate, 1),
        "namespace_deleted_in": gone,
    }


def second_after_for(n: int, create_rate: float, paced: float | None = None) -> int:
    """T, in whole 5 s, at least 20 s: long enough for creation and the first pages to be over.

    Creation: four times its calibrated duration (with the operator running it
    competes for the same CPUs), or its paced duration plus 10 s. First pages:
    at no less than 15 per second. ``split_clean`` in the results says whether
    that held.
    """
    seconds = max(4 * n / max(create_rate, 1.0), n / paced + 10 if paced else 0, n / 15) + 10
    return max(20, int(math.ceil(seconds / 5) * 5))


# -- one run -----------------------------------------------------------------------------------------


@dataclass
class Pages:
    first: dict[str, Hit]  # incident name -> its earliest first-level page
    second: dict[str, Hit]
    keys: Counter[str]  # every Idempotency-Key received, with how often
    distinct: dict[tuple[str, str], set[str]]  # (incident, level) -> distinct keys
    unexpected: list[Hit]
    problems: int

    @classmethod
    def of(cls, hits: list[Hit], namespace: str, names: set[str]) -> Pages:
        first: dict[str, Hit] = {}
        second: dict[str, Hit] = {}
        keys: Counter[str] = Counter()
        distinct: dict[tuple[str, str], set[str]] = defaultdict(set)
        unexpected: list[Hit] = []
        problems = 0
        for hit in hits:
            problems += hit.problems
            if hit.kind != "webhook" or hit.namespace != namespace or hit.incident not in names:
                unexpected.append(hit)
                continue
            keys[hit.key or ""] += 1
            if hit.event == "triggered" and hit.level_name == FIRST:
                table = first
            elif hit.event == "escalated" and hit.level_name == SECOND:
                table = second
            else:
                unexpected.append(hit)
                continue
            distinct[(hit.incident, hit.level_name)].add(hit.key or "")
            if hit.incident not in table or hit.at < table[hit.incident].at:
                table[hit.incident] = hit
        return cls(first, second, keys, distinct, unexpected, problems)


def _histogram(operator: Any) -> common.Histogram:
    return common.parse_histogram(common.scrape(operator.metrics_url), LATENESS)


def _settled(operator: Any, base: common.Histogram, expected: int, timeout: float = 15) -> common.Histogram:
    """The histogram once it holds ``expected`` observations more than ``base`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        current = _histogram(operator)
        if current.count - base.count >= expected or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def _wait_pages(
    receivers: common.ReceiverProcess,
    operator: Any,
    done: Any,
    deadline: float,
    what: str,
) -> bool:
    """Poll the receivers until ``done(hits)``; False at ``deadline`` (epoch seconds). Fails if the operator died."""
    last_report = time.time()
    while True:
        hits = receivers.fetch()
        if done(hits):
            return True
        if operator.popen.poll() is not None:
            raise BenchError(f"the operator exited with {operator.popen.returncode} while waiting for {what}")
        now = time.time()
        if now > deadline:
            return False
        if now - last_report > 15:
            log(f"  waiting for {what}: {len(hits)} deliveries so far, {deadline - now:.0f}s left")
            last_report = now
        time.sleep(0.25)


def run_once(env: Environment, index: int, n: int, second_after: int, args: argparse.Namespace) -> dict[str, Any]:
    from incidentops.testing.operator import OperatorProcess

    grace = args.grace if args.grace is not None else max(60.0, n / 10)
    names = incident_names(n)
    nameset = set(names)
    problems: list[str] = []
    namespace = env.create_namespace(f"bench-esc-{index}")
    operator_log = env.workdir / f"operator-run{index}.log"
    receivers = common.ReceiverProcess()
    operator = OperatorProcess(
        env.operator_kubeconfig, env.operator_namespace, operator_log, env=operator_env(args.operator_env)
    )
    result: dict[str, Any] = {"run": index, "namespace": namespace, "operator_log": str(operator_log)}
    timings: dict[str, float] = {}
    try:
        receivers.start()
        env.cluster.apply(policy_objects(namespace, receivers.base_url, second_after))
        log(f"run {index}: starting the operator under the chart's ServiceAccount")
        result["operator_source"] = common.operator_source()
        operator.start(timeout=120)
        assert operator.popen is not None
        pid = operator.popen.pid
        common.wait_policy_ready(env.cluster, namespace, POLICY)
        time.sleep(2)  # let the start-up settle before the idle reading
        idle = common.memory_mib(pid)
        cpu_idle = common.cpu_seconds(pid)
        before = _histogram(operator)
        requests_before = common.apiserver_requests(env.cluster)
        pids = {
            "operator": pid,
            "bench": os.getpid(),
            "receivers": receivers.pid,
            **{k: v for k, v in (getattr(env.cluster, "pids", None) or {}).items() if k in ("kube-apiserver", "etcd")},
        }
        samples = {"start": common.CpuSample.take(pids)}

        log(
            f"run {index}: creating {n} incidents ({args.concurrency} calls in flight), "
            f"second level after {second_after}s"
        )
        creation = create_incidents(
            env.cluster.kubeconfig,
            namespace,
            [incident_body(x) for x in names],
            args.concurrency,
            timeout=max(120.0, n, 1.5 * n / args.create_rate + 60 if args.create_rate else 0),
            rate=args.create_rate,
        )
        created = {c.name: c for c in creation.created}
        if creation.failures:
            problems.append(f"{len(creation.failures)} incidents could not be created, e.g. {creation.failures[0]}")
        if not created:
            raise BenchError(f"no incident could be created: {creation.failures[:1]}")
        log(f"run {index}: created {len(created)} in {creation.seconds:.1f}s ({creation.rate:.0f}/s)")
        first_created = min(c.created_at for c in created.values())
        last_returned = max(c.returned for c in created.values())
        earliest_second_deadline = first_created + second_after
        if last_returned > earliest_second_deadline:
            problems.append(
                f"creation took until {last_returned - earliest_second_deadline:.1f}s past the first second-level "
                f"deadline: raise --second-after"
            )

        # First pages, then a scrape that splits the lateness histogram between the two levels.
        all_first = _wait_pages(
            receivers,
            operator,
            lambda hits: len(Pages.of(hits, namespace, nameset).first) >= len(created),
            last_returned + grace,
            "the first-level pages",
        )
        timings["first_pages_done"] = time.time()
        samples["first_pages_done"] = common.CpuSample.take(pids)
        # The operator observes lateness after the receiver has answered: let it catch up.
        middle = _settled(operator, before, len(Pages.of(receivers.hits, namespace, nameset).first))
        middle_at = time.time()
        # Clean: every first page was counted and no second-level deadline had passed.
        split_clean = all_first and middle_at < earliest_second_deadline
        requests_middle = common.apiserver_requests(env.cluster)
        if not split_clean:
            log(f"run {index}: first pages still going out at the split; the histogram split is not clean")

        # Idle until the second level is due: measure the CPU of the second level from there.
        time.sleep(max(0.0, min(earliest_second_deadline - 0.2 - time.time(), second_after)))
        samples["second_level_due"] = common.CpuSample.take(pids)
        last_second_deadline = max(c.created_at for c in created.values()) + second_after
        _wait_pages(
            receivers,
            operator,
            lambda hits: len(Pages.of(hits, namespace, nameset).second) >= len(created),
            last_second_deadline + grace,
            "the second-level pages",
        )
        timings["second_pages_done"] = time.time()
        samples["second_pages_done"] = common.CpuSample.take(pids)
        time.sleep(3)  # a duplicate would show up now
        hits = receivers.fetch()
        pages = Pages.of(hits, namespace, nameset)
        end = _settled(operator, middle, len(pages.second))
        memory = common.memory_mib(pid)
        cpu_end = common.cpu_seconds(pid)
        requests_end = common.apiserver_requests(env.cluster)
    finally:
        result["operator_exit_code"] = operator.stop()
        receivers.stop()
        # Gone before the next run, whose operator watches the whole cluster.
        result["namespace_deleted_in_seconds"] = env.delete_namespace(namespace)

    # -- figures --
    first_latency = [pages.first[x].at - created[x].returned for x in created if x in pages.first]
    lateness = [pages.second[x].at - (created[x].returned + second_after) for x in created if x in pages.second]
    lateness_deadline = [
        pages.second[x].at - (created[x].created_at + second_after) for x in created if x in pages.second
    ]
    duplicates = sum(count - 1 for count in pages.keys.values() if count > 1)
    extra = sum(len(keys) - 1 for keys in pages.distinct.values() if len(keys) > 1)
    missing_first = sorted(set(created) - set(pages.first))
    missing_second = sorted(set(created) - set(pages.second))
    last_first_page = max((h.at for h in pages.first.values()), default=None)
    first_started = min(c.started for c in created.values())
    delivery = {
        "incidents": len(created),
        "first_pages": len(pages.first),
        "second_pages": len(pages.second),
        "missing_first": len(missing_first),
        "missing_second": len(missing_second),
        "duplicate_keys": duplicates,
        "extra_pages": extra,
        "unexpected_deliveries": len(pages.unexpected),
        "payload_problems": pages.problems,
        "create_failures": len(creation.failures),
    }
    for key in (
        "missing_first",
        "missing_second",
        "duplicate_keys",
        "extra_pages",
        "unexpected_deliveries",
        "payload_problems",
    ):
        if delivery[key]:
            problems.append(f"{key.replace('_', ' ')}: {delivery[key]}")
    if missing_first or missing_second:
        result["missing_examples"] = {"first": missing_first[:10], "second": missing_second[:10]}
    if pages.unexpected:
        result["unexpected_examples"] = [asdict(h) for h in pages.unexpected[:5]]

    second_hist = end.minus(middle)
    figures = {
        "first_page_latency_seconds": common.summary(first_latency),
        "second_page_lateness_seconds": common.summary(lateness),
        "second_page_lateness_vs_creation_timestamp_seconds": common.summary(lateness_deadline),
        "operator_lateness_histogram": {
            "all": end.minus(before).describe(),
            "first_level": middle.minus(before).describe(),
            "second_level": second_hist.describe(),
            "split_clean": split_clean,
        },
        "operator_memory_mib": {
            "idle_rss": idle["rss"],
            "end_rss": memory["rss"],
            "peak_hwm": memory["hwm"],
            "end_minus_idle": round(memory["rss"] - idle["rss"], 1),
        },
        "operator_cpu_seconds": round(cpu_end - cpu_idle, 2),
        "cpu_while_paging": {
            "first_level": common.CpuSample.usage(samples["start"], samples["first_pages_done"]),
            "second_level": common.CpuSample.usage(samples["second_level_due"], samples["second_pages_done"]),
        },
        "created_per_second": round(creation.rate, 1),
        "creation_seconds": round(creation.seconds, 2),
        "first_pages_per_second": round(len(pages.first) / (last_first_page - first_started), 1)
        if last_first_page and last_first_page > first_started
        else None,
        "delivery": delivery,
    }
    per_incident = len(created) or 1
    first_phase = common.request_delta(
        requests_before, requests_middle, ("incidents", "escalationpolicies", "secrets", "events")
    )
    second_phase = common.request_delta(
        requests_middle, requests_end, ("incidents", "escalationpolicies", "secrets", "events")
    )
    if first_phase is not None and second_phase is not None:
        figures["api_requests_per_incident"] = {
            "creation_and_first_level": {k: round(v / per_incident, 2) for k, v in first_phase.items()},
            "second_level": {k: round(v / per_incident, 2) for k, v in second_phase.items()},
        }
    result.update(
        {
            "ok": not problems,
            "problems": problems,
            "second_after_seconds": second_after,
            "figures": figures,
            "timeline_seconds": {
                "creation": round(creation.seconds, 2),
                "first_pages_done_after_first_create": round(timings["first_pages_done"] - first_started, 2),
                "first_second_level_deadline_after_first_create": round(earliest_second_deadline - first_started, 2),
                "second_pages_done_after_first_create": round(timings["second_pages_done"] - first_started, 2),
            },
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "operator_log_digest": common.log_digest(operator_log.read_text(errors="replace")),
        }
    )
    return result


# -- the benchmark -------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.incidents or DEFAULT_INCIDENTS
    runs = args.runs or default_runs(n)
    operator_env(args.operator_env)  # refuse a malformed setting before anything starts
    results: list[dict[str, Any]] = []
    with common.environment(workdir) as env:
        machine = common.machine_facts(env.cluster)
        calibration = None
        if args.second_after:
            second_after = args.second_after
        else:
            calibration = calibrate(env, args.concurrency)
            second_after = second_after_for(n, calibration["per_second"], args.create_rate)
            log(f"calibration: {calibration['per_second']}/s without the operator; second level after {second_after}s")
        for index in range(1, runs + 1):
            try:
                results.append(run_once(env, index, n, second_after, args))
            except BenchError as exc:
                log(f"run {index} failed: {exc}")
                results.append(
                    {
                        "run": index,
                        "ok": False,
                        "problems": [str(exc)],
                        "operator_log": str(workdir / f"operator-run{index}.log"),
                    }
                )
            r = results[-1]
            log(f"run {index}: {'ok' if r['ok'] else 'FAILED: ' + '; '.join(r['problems'])}")
    measured = [r["figures"] for r in results if "figures" in r]
    totals: Counter[str] = Counter()
    for figures in measured:
        totals.update(figures["delivery"])
    return {
        # Paced runs measure something else (deadlines spread out): a file of their own.
        "result_name": f"{NAME}-paced-{args.create_rate:g}" if args.create_rate else NAME,
        "ok": bool(results) and all(r["ok"] for r in results),
        "machine": machine,
        "parameters": {
            "incidents": n,
            "runs": runs,
            "levels": [{"name": FIRST, "after": "0s"}, {"name": SECOND, "after": f"{second_after}s"}],
            "second_after_seconds": second_after,
            "second_after_from": "--second-after" if args.second_after else "calibration",
            "create_concurrency": args.concurrency,
            "create_rate_limit": args.create_rate,
            "operator_env": operator_env(args.operator_env),
            "grace_seconds": args.grace if args.grace is not None else max(60.0, n / 10),
            "channel": "webhook with HMAC signature (Secret read per delivery), receivers in a child process",
            "severity": "P2",
            "calibration": calibration,
        },
        "figures": common.median_figures(measured),
        "delivery_totals": dict(totals),
        "runs": results,
    }
