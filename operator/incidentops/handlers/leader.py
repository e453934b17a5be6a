"""Leader election on a coordination.k8s.io Lease: one replica runs Kopf and the scheduler.

Where it sits: ``runtime.py`` runs the receiver and the metrics server on every
replica, and asks :class:`LeaseElector` to run the leader's parts (Kopf and
the scheduler) only while this replica holds the Lease. The Lease itself is
read and written through ``kube`` (``kube/lease.py``).

The rules follow client-go's leader election, for the same reasons:

- A Lease is taken over only when its record has not changed for a whole
  ``lease_duration`` *as observed by this replica's own monotonic clock*, so
  clock skew between nodes cannot make two leaders.
- The leader renews every ``retry_period``. A renewal counts from the moment
  its attempt started (a standby cannot see the new record any earlier), and
  every attempt is bounded by the time left until ``renew_deadline`` (shorter
  than the lease duration), so a frozen API server cannot hold it. A leader
  that has not renewed by then stops leading: its parts are asked to stop,
  cancelled if they have not stopped shortly before the Lease may expire, and
  a :class:`Fence` on a thread of its own (it holds even when the event loop is
  blocked) ends the process if they still run once ``lease_duration`` has
  passed since the last renewal. A standby that waits a full lease duration of
  its own clock therefore never overlaps with it. The process then exits, as
  controller-runtime's managers do, and starts again clean as a candidate.
- Every write carries the resourceVersion it read: two candidates racing for an
  expired Lease cannot both win.
- On a clean shutdown the leader releases the Lease, so a rolling update fails
  over in seconds, not a lease duration.

Whether this replica leads is the gauge ``incidentops_leader`` (1 from the
acquisition until its parts have stopped, 0 otherwise), so a standby reports 0
and an alert can tell when no replica leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from incidentops import kube, metrics

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

    @property
    def stop_guard(self) -> float:
        """How long before the Lease may expire the parts are cancelled if they have not stopped."""
        return min(1.0, (self.lease_duration - self.renew_deadline) / 2)


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    # A Lease's times are MicroTime: Python drops the fraction when it is zero,
    # which the API server would refuse, so it never is.
    return now if now.microsecond else now.replace(microsecond=1)


def _report_leading(leading: bool) -> None:
    metrics.LEADER.set(1 if leading else 0)


def _exit_now(why: str) -> None:
    logger.critical("%s: exiting now", why)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(1)


class Fence:
    """Ends the process if the leader's parts may still run when another replica can take the Lease.

    :meth:`hold` says for how many more seconds they may run (until the Lease
    may expire), :meth:`release` that they stopped. It watches on a daemon
    thread with the monotonic clock, so a blocked event loop cannot keep a
    leader alive past its Lease; :meth:`breach` is the same end, called from
    the loop when the parts would not even stop when cancelled.
    """

    def __init__(self, on_breach: Callable[[str], None] = _exit_now) -> None:
        self._on_breach = on_breach
        self._deadline: float | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, seconds: float) -> None:
        with self._changed:
            self._deadline = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="lease-fence", daemon=True)
                self._thread.start()
            self._changed.notify()

    def release(self) -> None:
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def breach(self, why: str) -> None:
        self._on_breach(why)

    def _watch(self) -> None:
        with self._changed:
            while True:
                if self._deadline is None:
                    self._changed.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self._deadline, self._thread = None, None
                    break
                self._changed.wait(left)
        self.breach("the leader's parts still ran when its Lease could be taken over")


class LeaseElector:
    def __init__(
        self,
        api: kube.ApiClient,
        settings: ElectionSettings,
        *,
        on_standby: Callable[[], None] | None = None,
        fence: Fence | None = None,
        report: Callable[[bool], None] = _report_leading,
    ) -> None:
        self.api = api
        self.settings = settings
        self._on_standby = on_standby
        self._fence = fence or Fence()
        self._observed: tuple[str | None, object, object] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self._report = report
        self.leading = False
        report(False)

    async def run(self, parts: LeaderParts, stop: asyncio.Event) -> None:
        """Campaign until elected, run ``parts`` while leading; raise LeadershipLost if the Lease slips."""
        s = self.settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not stop.is_set():
            started = loop.time()
            if await self._attempt(s.renew_deadline):
                break
            if self._on_standby is not None:
                self._on_standby()
                self._on_standby = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=s.retry_period)
        if stop.is_set():
            return
        # Monotonic (loop) time for the rule, wall-clock time for people reading the log.
        renewed, renewed_wall = started, time.time()
        self._fence.hold(renewed + s.lease_duration - loop.time())
        logger.info("%s leads (Lease %s/%s)", s.identity, s.namespace, s.name)
        self.leading = True
        self._report(True)
        leader_stop = asyncio.Event()
        leader_task: asyncio.Task[None] = asyncio.create_task(_call(parts, leader_stop), name="leader-parts")
        stopped = asyncio.create_task(stop.wait())
        lost = False
        try:
            while not stop.is_set() and not leader_task.done():
                renew_by = renewed + s.renew_deadline
                pause = min(s.retry_period, max(0.0, renew_by - loop.time()))
                await asyncio.wait([stopped, leader_task], timeout=pause, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set() or leader_task.done():
                    break
                started, started_wall = loop.time(), time.time()
                left = renew_by - started
                if left > 0 and await self._attempt(left):
                    renewed, renewed_wall = started, started_wall
                    self._fence.hold(renewed + s.lease_duration - loop.time())
                elif loop.time() >= renew_by:
                    lost = True
                    logger.error(
                        "%s could not renew Lease %s/%s within %gs of its last renewal (at %s); stopping leading",
                        s.identity,
                        s.namespace,
                        s.name,
                        s.renew_deadline,
                        datetime.datetime.fromtimestamp(renewed_wall, datetime.UTC).isoformat(),
                    )
                    break
        finally:
            stopped.cancel()
            leader_stop.set()
            await self._stop_parts(leader_task, expires=renewed + s.lease_duration)
            self.leading = False
            self._report(False)
            logger.info("%s stopped leading", s.identity)  # tests match this line
            if not lost:
                await self._release()
        if lost:
            raise LeadershipLost(f"could not renew Lease {s.namespace}/{s.name} within {s.renew_deadline:g}s")
        if leader_task.done() and not leader_task.cancelled() and leader_task.exception() is not None:
            raise leader_task.exception()  # type: ignore[misc]

    async def _stop_parts(self, task: asyncio.Task[None], *, expires: float) -> None:
        """Stop the leader's parts (already asked to) before ``expires``, when another may take the Lease."""
        loop = asyncio.get_running_loop()
        await asyncio.wait([task], timeout=max(0.0, expires - self.settings.stop_guard - loop.time()))
        if not task.done():
            logger.warning("the leader's parts did not stop in time; cancelling them")
            task.cancel()
            await asyncio.wait([task], timeout=max(0.0, expires - loop.time()))
        if not task.done():
            self._fence.breach("the leader's parts did not stop when cancelled")
            return
        self._fence.release()

    async def _attempt(self, within: float) -> bool:
        """One try to take or renew the Lease, given at most ``within`` seconds; False if it failed."""
        s = self.settings
        try:
            async with asyncio.timeout(within):
                return await self._try_acquire_or_renew()
        except Exception as exc:
            # The API server's doing (refused, down, frozen): try again. A bug is not retried.
            if kube.error_kind(exc) is kube.ErrorKind.OTHER:
                raise
            what = "renewing" if self.leading else "acquiring"
            logger.warning("%s Lease %s/%s failed: %s", what, s.namespace, s.name, kube.describe(exc))
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
