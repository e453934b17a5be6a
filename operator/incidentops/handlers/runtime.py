"""The operator process: one asyncio loop, Kopf embedded as a task.

Where it sits: ``incidentops run`` and ``incidentops dev`` call :func:`run`.
It logs in, builds the handler registry (``registry.py``) around the shared
dependencies, and runs ``kopf.operator()`` standalone (no peering: high
availability is a Lease, not Kopf's peering) beside the other long-running
tasks of the process: the Alertmanager receiver, the metrics server and the
leader's parts (Kopf, the escalation scheduler, the delivery queue, the action runner, the
policies' periodic recheck and their monthly reports) join the same loop as :class:`Task` entries.

When any task fails, all of them stop, so the process exits non-zero and is
restarted, instead of limping on with half its parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import kopf

from incidentops import kube, metrics, notify
from incidentops.domain.delivery import RetryRules
from incidentops.handlers import registry as registry_module
from incidentops.handlers.delivery import Deliverer
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.leader import ElectionSettings, LeadershipLost, LeaseElector
from incidentops.handlers.policies import PolicyMonitor
from incidentops.handlers.reconciler import Reconciler
from incidentops.handlers.refusals import RefusalReporter
from incidentops.handlers.reports import MonthlyReports
from incidentops.handlers.scheduler import Scheduler
from incidentops.settings import Settings

logger = logging.getLogger("incidentops")


@dataclass(frozen=True)
class Task:
    """A long-running part of the process, started beside Kopf."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


Receiver = Callable[[Settings, kube.ApiClient, asyncio.Event], Awaitable[None]]
"""``run_receiver(settings, api, stop)``: serves until ``stop`` is set."""


def _receiver_task(receiver: Receiver, settings: Settings, api: kube.ApiClient) -> Task:
    """The Alertmanager receiver as a part of the process, on the operator's API client."""
    return Task("receiver", lambda stop: receiver(settings, api, stop))


def _sole_leader(parts: Callable[[asyncio.Event], Awaitable[None]]) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Without leader election this process leads while its leader's parts run (``incidentops_leader``)."""

    async def run(stop: asyncio.Event) -> None:
        metrics.LEADER.set(1)
        try:
            await parts(stop)
        finally:
            metrics.LEADER.set(0)

    return run


async def _run_part(part: Task, stop: asyncio.Event) -> None:
    await part.run(stop)


def configure_kopf(settings: kopf.OperatorSettings, *, api_timeout: float = kube.DEFAULT_TIMEOUT) -> None:
    """Kopf's settings, applied once at start-up."""
    prefix = "incidentops.dev"
    # Progress and the last handled spec live in annotations: status is our API.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=prefix, key="last-handled")
    settings.persistence.finalizer = f"{prefix}/finalizer"
    # No observation of CRDs and namespaces (which would need list and watch on both, cluster-wide):
    # our CRDs are installed before the operator starts (the chart's templates, or `incidentops dev`),
    # and the namespaces watched are the whole cluster or the exact names of `watchNamespaces`.
    # Kopf then serves the resources it finds at start-up, in those namespaces.
    settings.scanning.disabled = True
    # Events for our transitions are posted by our handlers with specific reasons;
    # Kopf's own per-handler chatter stays in the logs.
    settings.posting.level = logging.WARNING
    # Watches that go silent (lost connections, proxies) are restarted (nolar/kopf#204).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Kopf's other requests (patches, lists, events) have the same deadline as ours.
    settings.networking.request_timeout = api_timeout
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # Our runtime, not Kopf, ends the process once every part has stopped (and
    # `incidentops dev` must still stop its control plane afterwards).
    settings.process.ultimate_exiting_timeout = None


def quiet_kopf_scan_leftovers(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The loop's exception handler: one line, not a traceback, for Kopf's resource scan cut short.

    Kopf's ``scan_resources`` reads ``/api`` and ``/apis`` in sibling tasks (``asyncio.as_completed``);
    when one fails, the other's failure is never retrieved, and asyncio prints its traceback when the
    task is collected. That happens when the API connection closes under a starting Kopf (a leader
    stopping as it starts): the operator copes (Kopf starts again with the next leadership), so it is
    worth a warning, not a traceback that reads like a crash. Everything else goes to the default handler.
    """
    exc = context.get("exception")
    task = context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    filename = getattr(getattr(coro, "cr_code", None), "co_filename", "")
    if isinstance(exc, aiohttp.ClientError) and filename.endswith(
        os.path.join("kopf", "_cogs", "clients", "scanning.py")
    ):
        logger.warning("Kopf's resource scan was cut short: %s: %s", type(exc).__name__, exc)
        return
    loop.default_exception_handler(context)


async def served(api: kube.ApiClient, stop: asyncio.Event, *, interval: float = 2.0) -> bool:
    """Wait until the API server serves our resources; False if ``stop`` came first.

    Kopf is told which resources exist once, as it starts (its scanning is off: see
    :func:`configure_kopf`), so it must not start before our CRDs are served, or it would serve
    nothing, silently. The chart installs them with the operator; a pod that starts first waits here.
    """
    logged = False
    while not stop.is_set():
        try:
            missing = await kube.unserved(api, [kube.INCIDENTS, kube.POLICIES])
        except Exception as exc:  # the API server unreachable: asked again, as Kopf would
            missing = [f"? ({kube.describe(exc)})"]
        if not missing:
            return True
        if not logged:
            logger.warning("waiting for the API server to serve %s (are the CRDs installed?)", ", ".join(missing))
            logged = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return False


async def run(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    receiver: Receiver | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set or a part fails.

    ``receiver`` is the Alertmanager receiver (``incidentops.intake.run_receiver``),
    passed in by the cli because handlers may not import intake (layers).
    """
    if settings.kubeconfig:
        # Kopf and our client read the same file, so both act as one identity.
        os.environ["KUBECONFIG"] = str(settings.kubeconfig)
    stop_flag = stop_flag or asyncio.Event()
    api = await kube.api_client(settings.kubeconfig, request_timeout=settings.api_timeout_seconds)
    deps = Dependencies(settings=settings, api=api)
    session = aiohttp.ClientSession()
    # One attempt per send: the delivery queue retries, without holding anything while it waits.
    retry = notify.RetryPolicy(attempts=1, timeout=settings.delivery_timeout_seconds)
    rules = RetryRules(
        initial_delay=settings.delivery_initial_delay_seconds,
        max_delay=settings.delivery_max_delay_seconds,
        max_age=datetime.timedelta(seconds=settings.delivery_max_age_seconds),
    )
    monitor = PolicyMonitor(deps)
    deliverer = Deliverer(deps, session, retry)
    reconciler = Reconciler(deps, deliverer, monitor, rules)
    reports = MonthlyReports(deps, deliverer, reconciler.queue.lanes, rules, monitor)
    refusals = RefusalReporter(deps, reconciler.written)
    scheduler = Scheduler(
        reconciler.process, deps.clock, concurrency=settings.scheduler_concurrency, on_refusal=refusals.show
    )
    registry = registry_module.build(deps, scheduler, reconciler, monitor, reports)
    stop_all = asyncio.Event()
    announced = asyncio.Event()

    def announce(role: str) -> None:
        # Kopf's own signal handlers fail on a second signal; ours stop every part,
        # Kopf included, and tolerate any number of signals. Kopf installs its own each
        # time it starts (after every takeover too), so ours are put back each time.
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop_flag.set)
        if announced.is_set():
            return
        announced.set()
        logger.info("incidentops is ready (%s)", role)  # tests and scripts wait for this line
        if ready_flag is not None:
            ready_flag.set()

    async def leader_parts(leader_stop: asyncio.Event) -> None:
        """Kopf, the scheduler, the delivery queue, the action runner and the policies' recheck: what only the
        leader runs."""
        if not await served(api, leader_stop):
            return
        kopf_settings = kopf.OperatorSettings()
        configure_kopf(kopf_settings, api_timeout=settings.api_timeout_seconds)
        kopf_ready = asyncio.Event()
        namespaces = settings.watch_namespaces
        inner = {
            "kopf": asyncio.create_task(
                kopf.operator(
                    registry=registry,
                    settings=kopf_settings,
                    standalone=True,
                    clusterwide=not namespaces,
                    namespaces=namespaces,
                    stop_flag=leader_stop,
                    ready_flag=kopf_ready,
                ),
                name="kopf",
            ),
            "scheduler": asyncio.create_task(scheduler.run(leader_stop), name="scheduler"),
            "deliveries": asyncio.create_task(reconciler.queue.run(leader_stop), name="deliveries"),
            "actions": asyncio.create_task(reconciler.actions.run(leader_stop), name="actions"),
            "postmortems": asyncio.create_task(reconciler.postmortems.run(leader_stop), name="postmortems"),
            "policies": asyncio.create_task(monitor.run(leader_stop), name="policies"),
            "reports": asyncio.create_task(reports.run(leader_stop), name="reports"),
        }
        ready_waiter = asyncio.create_task(kopf_ready.wait())
        stop_waiter = asyncio.create_task(leader_stop.wait())
        try:
            await asyncio.wait([ready_waiter, stop_waiter, *inner.values()], return_when=asyncio.FIRST_COMPLETED)
            if kopf_ready.is_set():
                announce("leading" if settings.leader_election else "no leader election")
            await asyncio.wait([stop_waiter, *inner.values()], return_when=asyncio.FIRST_COMPLETED)
        finally:
            leader_stop.set()
            ready_waiter.cancel()
            stop_waiter.cancel()
            try:
                # No time limit of our own: the elector (or, without one, the runtime) decides
                # how long the parts may take to stop, and cancels us when that is up.
                await asyncio.wait(inner.values())
            finally:
                # Cancelled or not, every part ends before we do: nothing of the leader may
                # outlive its "stopped leading".
                for task in inner.values():
                    task.cancel()
                await asyncio.wait(inner.values())
        for task in inner.values():
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} failed") from task.exception()

    if settings.leader_election:
        elector = LeaseElector(
            api,
            ElectionSettings(
                namespace=settings.namespace,
                name=settings.lease_name,
                identity=settings.identity,
                lease_duration=settings.lease_duration_seconds,
                renew_deadline=settings.lease_renew_deadline_seconds,
                retry_period=settings.lease_retry_period_seconds,
            ),
            on_standby=lambda: announce(f"standby: another replica holds Lease {settings.lease_name}"),
        )
        leader = Task("leader", lambda stop: elector.run(leader_parts, stop))
    else:
        leader = Task("leader", _sole_leader(leader_parts))
    parts = [
        leader,
        Task("metrics", lambda stop: metrics.serve(settings.bind_address, settings.metrics_port, stop)),
        *([_receiver_task(receiver, settings, api)] if receiver is not None else []),
    ]
    tasks = {part.name: asyncio.create_task(_run_part(part, stop_all), name=part.name) for part in parts}
    waiter = asyncio.create_task(stop_flag.wait(), name="stop-flag")
    try:
        done, _ = await asyncio.wait([waiter, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is waiter or task.cancelled() or task.exception() is None:
                continue
            if isinstance(task.exception(), LeadershipLost):
                # Expected when the API server is unreachable for too long: no bug, no traceback.
                logger.error("%s; stopping the operator (it starts again as a candidate)", task.exception())
            else:
                logger.error("%s failed; stopping the operator", task.get_name(), exc_info=task.exception())
    finally:
        stop_all.set()
        waiter.cancel()
        # Every part stops on its flag; a grace period, then they are cancelled.
        _, pending = await asyncio.wait(tasks.values(), timeout=15)
        for task in pending:
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()
        await api.close()
    failed = [t for t in tasks.values() if not t.cancelled() and t.exception() is not None]
    if failed and not stop_flag.is_set():
        lost = failed[0].exception()
        if isinstance(lost, LeadershipLost):
            raise lost
        raise RuntimeError(f"operator part {failed[0].get_name()!r} failed") from failed[0].exception()
