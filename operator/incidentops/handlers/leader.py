"""Leader election on a coordination.k8s.io Lease: one replica runs Kopf and the scheduler.

Where it sits: ``runtime.py`` runs the receiver and the metrics server on every
replica, and asks :class:`LeaseElector` to run the leader's parts (Kopf and
the scheduler) only while this replica holds the Lease. The Lease itself is
read and written through ``kube`` (``kube/lease.py``).

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
import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from incidentops import kube

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
        self, api: kube.ApiClient, settings: ElectionSettings, *, on_standby: Callable[[], None] | None = None
    ) -> None:
        self.api = api
        self.settings = settings
        self._on_standby = on_standby
        self._observed: tuple[str | None, object, object] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self.leading = False

    async def run(self, parts: LeaderParts, stop: asyncio.Event) -> None:
        """Campaign until elected, run ``parts`` while leading; raise LeadershipLost if the Lease slips."""
        s = self.settings
        while not stop.is_set():
            if await self._attempt():
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
                if await self._attempt():
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

    async def _attempt(self) -> bool:
        s = self.settings
        try:
            return await self._try_acquire_or_renew()
        except kube.ApiError as exc:
            logger.warning("the Lease %s/%s: %s", s.namespace, s.name, kube.describe(exc))
            return False

    async def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = _now()
        lease = await kube.read_lease(self.api, s.namespace, s.name)
        if lease is None:
            return await kube.create_lease(
                self.api, s.namespace, s.name, self._record(now, acquired=now, transitions=0)
            )
        record = (lease.holder, lease.renewed_at, lease.transitions)
        observed_now = asyncio.get_running_loop().time()
        if record != self._observed:
            self._observed, self._observed_at = record, observed_now
        held_by_other = lease.holder not in (None, s.identity)
        duration = lease.duration_seconds or s.lease_duration
        if held_by_other and observed_now - self._observed_at < duration:
            return False  # somebody else leads and is alive (by our own clock)
        transitions = (lease.transitions or 0) + (1 if lease.holder != s.identity else 0)
        acquired = lease.acquired_at if lease.holder == s.identity else now
        # The read's resourceVersion goes with the write: a racing writer gets 409 (False).
        ours = dataclasses.replace(
            self._record(now, acquired=acquired, transitions=transitions), resource_version=lease.resource_version
        )
        return await kube.replace_lease(self.api, s.namespace, s.name, ours)

    async def _release(self) -> None:
        s = self.settings
        try:
            async with asyncio.timeout(s.renew_deadline):
                lease = await kube.read_lease(self.api, s.namespace, s.name)
                if lease is None or lease.holder != s.identity:
                    return
                released = dataclasses.replace(lease, holder=None, duration_seconds=1, renewed_at=_now())
                if await kube.replace_lease(self.api, s.namespace, s.name, released):
                    logger.info("%s released the Lease", s.identity)
        except Exception as exc:
            if kube.error_kind(exc) is kube.ErrorKind.OTHER:
                raise
            logger.warning("releasing Lease %s/%s failed: %s", s.namespace, s.name, kube.describe(exc))

    def _record(
        self, now: datetime.datetime, *, acquired: datetime.datetime | None, transitions: int
    ) -> kube.LeaseRecord:
        return kube.LeaseRecord(
            holder=self.settings.identity,
            # Rounded up: a standby waits what the Lease says, which must not be less than ours.
            duration_seconds=math.ceil(self.settings.lease_duration),
            acquired_at=acquired,
            renewed_at=now,
            transitions=transitions,
        )
