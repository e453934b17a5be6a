"""Leader election on a coordination.k8s.io Lease: one replica runs Kopf and the scheduler.

Where it sits: ``runtime.py`` runs the receiver and the metrics server on every
replica, and asks :class:`LeaseElector` to run the leader's parts (Kopf and
the scheduler) only while this replica holds the Lease.

The rules follow client-go's leader election, for the same reasons:

- A Lease is taken over only when its record has not changed for a whole
  ``lease_duration`` *as observed by this replica's own monotonic clock*, so
  clock skew between nodes cannot make two leaders.
- The leader renews every ``retry_period``; if it cannot renew within
  ``renew_deadline`` (shorter than the lease duration) it stops leading at once,
  before anyone else may take over. The process then exits, as
  controller-runtime's managers do, and starts again clean as a candidate.
- Every write carries the resourceVersion it read: two candidates racing for an
  expired Lease cannot both win.
- On a clean shutdown the leader releases the Lease, so a rolling update fails
  over in seconds, not a lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

logger = logging.getLogger("incidentops.leader")

LeaderParts = Callable[[asyncio.Event], Awaitable[None]]


async def _call(parts: LeaderParts, stop: asyncio.Event) -> None:
    await parts(stop)


class LeadershipLost(RuntimeError):
    """The Lease could not be renewed in time: this replica stopped leading."""


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    # A Lease's times are MicroTime: Python drops the fraction when it is zero,
    # which the API server would refuse, so it never is.
    return now if now.microsecond else now.replace(microsecond=1)


class LeaseElector:
    def __init__(
        self, api: client.ApiClient, settings: ElectionSettings, *, on_standby: Callable[[], None] | None = None
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.settings = settings
        self._on_standby = on_standby
        self._observed: tuple[str | None, object, object] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self.leading = False

    async def run(self, parts: LeaderParts, stop: asyncio.Event) -> None:
        """Campaign until elected, run ``parts`` while leading; raise LeadershipLost if the Lease slips."""
        s = self.settings
        while not stop.is_set():
            if await self._try_acquire_or_renew():
                break
            if self._on_standby is not None:
                self._on_standby()
                self._on_standby = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=s.retry_period)
        if stop.is_set():
            return
        logger.info("%s leads (Lease %s/%s)", s.identity, s.namespace, s.name)
        self.leading = True
        leader_stop = asyncio.Event()
        leader_task: asyncio.Task[None] = asyncio.create_task(_call(parts, leader_stop), name="leader-parts")
        last_renewal = time.monotonic()
        lost = False
        try:
            while not stop.is_set() and not leader_task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=s.retry_period)
                if stop.is_set():
                    break
                if await self._try_acquire_or_renew():
                    last_renewal = time.monotonic()
                elif time.monotonic() - last_renewal > s.renew_deadline:
                    lost = True
                    break
        finally:
            leader_stop.set()
            # Stop leading first: nothing of ours may act once another replica can take over.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(
                    asyncio.shield(leader_task), timeout=max(1.0, s.lease_duration - s.renew_deadline)
                )
            if not leader_task.done():
                leader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await leader_task
            self.leading = False
            if not lost:
                await self._release()
        if lost:
            raise LeadershipLost(f"could not renew Lease {s.namespace}/{s.name} within {s.renew_deadline:.0f}s")
        if leader_task.done() and not leader_task.cancelled() and leader_task.exception() is not None:
            raise leader_task.exception()  # type: ignore[misc]

    async def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = _now()
        try:
            lease = await self.coordination.read_namespaced_lease(s.name, s.namespace)
        except ApiException as exc:
            if exc.status != 404:
                logger.warning("reading Lease %s/%s failed: %s %s", s.namespace, s.name, exc.status, exc.reason)
                return False
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=s.name, namespace=s.namespace),
                spec=self._spec(now, acquired=now, transitions=0),
            )
            try:
                await self.coordination.create_namespaced_lease(s.namespace, body)
            except ApiException as create_exc:
                if create_exc.status != 409:  # another candidate created it first
                    logger.warning("creating Lease failed: %s %s", create_exc.status, create_exc.reason)
                return False
            return True

        spec = lease.spec or client.V1LeaseSpec()
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        held_by_other = spec.holder_identity not in (None, "", s.identity)
        duration = spec.lease_duration_seconds or s.lease_duration
        if held_by_other and time.monotonic() - self._observed_at < duration:
            return False  # somebody else leads and is alive (by our own clock)
        transitions = (spec.lease_transitions or 0) + (1 if spec.holder_identity != s.identity else 0)
        acquired = spec.acquire_time if spec.holder_identity == s.identity else now
        lease.spec = self._spec(now, acquired=acquired, transitions=transitions)
        try:
            # The read's resourceVersion travels in lease.metadata: a racing writer gets 409.
            await self.coordination.replace_namespaced_lease(s.name, s.namespace, lease)
        except ApiException as exc:
            if exc.status != 409:
                logger.warning("renewing Lease failed: %s %s", exc.status, exc.reason)
            return False
        return True

    async def _release(self) -> None:
        s = self.settings
        with contextlib.suppress(ApiException):
            lease = await self.coordination.read_namespaced_lease(s.name, s.namespace)
            if lease.spec and lease.spec.holder_identity == s.identity:
                lease.spec.holder_identity = None  # type: ignore[assignment]
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = _now()
                await self.coordination.replace_namespaced_lease(s.name, s.namespace, lease)
                logger.info("%s released the Lease", s.identity)

    def _spec(self, now: datetime.datetime, *, acquired: datetime.datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.settings.identity,
            lease_duration_seconds=int(self.settings.lease_duration),
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )
