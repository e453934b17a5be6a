"""The delivery queue: due notifications are delivered apart from the look that planned them.

Where it sits: the reconciler's look at an incident plans it, hands the
notifications due to :meth:`DeliveryQueue.submit`, writes the incident's status
and returns, so the incident's state is written within a second of its cause
however slow a channel is. The queue makes the attempts, one task per
notification, each isolated (one channel that fails or raises disturbs no
other), each recorded in the incident's status by its own write (through the
:class:`View`, i.e. the reconciler: ``kube.write_status`` with a
resourceVersion precondition, recomputed from a fresh read on conflict). What
is delivered within :data:`QUICK` of the look is handed back to the look instead
(:class:`Batch`), so it goes into the same write as the status it follows.

Retries: a transient failure is recorded Pending and tried again under the same
key after a backoff (``incidentops.domain.delivery`` decides how long, and
when to give up); the task waits on a timer, holding no scheduler slot and no
connection. Before every retry the incident is planned afresh: a notification
no longer due (acknowledged, resolved, a later round) is recorded Skipped and
dropped. Sends to one destination take turns of its
:class:`~incidentops.notify.ratelimit.Lane` (its service's rate limit; a 429 or
``Retry-After`` pauses it for everyone), so a storm is queued, not dropped.

What lives here is only work in progress: which keys are being delivered or
wait for a retry, so a later look does not start them a second time. What was
delivered is in status. After a crash (or a failover) a key not yet recorded is
planned again by the next look and sent again under the same key: at least
once, never under two keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from incidentops import metrics, notify
from incidentops.api import Incident
from incidentops.domain import delivery
from incidentops.domain.delivery import Attempted, Result, RetryRules, Verdict
from incidentops.domain.plan import Due, Plan
from incidentops.domain.selection import Selection
from incidentops.handlers import delivery as channels
from incidentops.handlers.delivery import ChannelProblem, Deliverer
from incidentops.handlers.scheduler import Key
from incidentops.notify.ratelimit import Lanes

logger = logging.getLogger("incidentops.deliveries")

QUICK: Final = 0.5
"""Seconds a look waits for its deliveries' first attempts, to record them in its own write."""
FRESH: Final = 1.0
"""A plan older than this (seconds) is looked at again before an attempt: the notification may be moot."""
_RECENT: Final = 30.0
"""Seconds a finished key still counts as busy: a look that read the incident before the key was
recorded must not start it again."""
_RECORD_RETRY_MAX: Final = 30.0


@dataclass(frozen=True)
class Look:
    """An incident as it was just read, and its plan now."""

    body: dict[str, Any]
    incident: Incident
    selection: Selection
    plan: Plan
    now: datetime.datetime
    recent: int = 0
    """The policy's actions of the last hour, which the plan was made with (its rate limit)."""

    @property
    def planned(self) -> Incident:
        """The incident as this look is about to write it. A message describes that (the severity once
        classified, the phase, the episode), not the state the look started from."""
        return self.incident.model_copy(update={"status": self.plan.status})


class View(Protocol):
    """How the queue sees and records incidents (the reconciler)."""

    async def current(self, key: Key) -> Look | None:
        """The incident planned afresh; None when it is gone or cannot be processed."""
        ...

    async def record(self, key: Key, uid: str, results: Sequence[Result]) -> None:
        """Write ``results`` into the status of the incident ``key`` (if it still has ``uid``)."""
        ...


class Health(Protocol):
    """Where every attempt's result goes, for the policy's channel health (``policies.PolicyMonitor``)."""

    def observe(
        self,
        policy: Key,
        channel: str,
        *,
        delivered: bool,
        permanent: bool,
        message: str,
        secret_problem: bool = False,
    ) -> None: ...


class Batch:
    """The first results of a look's deliveries, for the look to record in its own write.

    Open while the look waits (:meth:`collect`); a result offered then is the
    look's to record. Once closed, the jobs record their results themselves,
    but only after the look's write (:meth:`written`), so a result never lands
    on a status the look has not planned yet.
    """

    def __init__(self, size: int) -> None:
        self._left = size
        self._open = True
        self._results: list[Result] = []
        self._all = asyncio.Event()
        self._written = asyncio.Event()
        if size == 0:
            self._all.set()

    def offer(self, result: Result) -> bool:
        """Hand ``result`` to the look; False once it stopped waiting."""
        if not self._open:
            return False
        self._results.append(result)
        self._left -= 1
        if self._left <= 0:
            self._all.set()
        return True

    async def collect(self, within: float) -> list[Result]:
        """The results offered within ``within`` seconds; afterwards the jobs record their own."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all.wait(), within)
        self._open = False
        return list(self._results)

    def written(self) -> None:
        """The look's write is done (or failed): the jobs may write now."""
        self._open = False
        self._written.set()

    async def wait_written(self) -> None:
        await self._written.wait()


@dataclass(eq=False)
class _Job:
    """One notification in progress."""

    ref: Key
    uid: str
    episode: int
    due: Due
    incident: Incident
    selection: Selection
    attempts: int
    checked: float  # loop time of the latest plan that listed it as due
    batch: Batch | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    kind: str = "unknown"
    attempted: bool = False  # an attempt was made in this process (for the lateness metric)

    @property
    def policy(self) -> Key | None:
        policy = self.selection.policy
        if policy is None:
            return None
        return (policy.metadata.namespace or "", policy.metadata.name or "")

    def what(self) -> str:
        return f"{self.ref[0]}/{self.ref[1]}: {self.due.event} to channel {self.due.channel!r} ({self.due.key[:12]})"


class DeliveryQueue:
    def __init__(
        self,
        deliverer: Deliverer,
        rules: RetryRules,
        view: View,
        health: Health,
        clock: Callable[[], datetime.datetime],
        *,
        lanes: Lanes | None = None,
        jitter: Callable[[], float] = lambda: random.uniform(-1.0, 1.0),
    ) -> None:
        self.deliverer = deliverer
        self.rules = rules
        self.view = view
        self.health = health
        self.clock = clock
        self.lanes = lanes or Lanes()
        self._jitter = jitter
        self._jobs: dict[str, _Job] = {}
        self._by_incident: dict[Key, set[str]] = {}
        self._recent: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    # -- what the looks ask --------------------------------------------------------------------

    def busy(self, key: str) -> bool:
        """Whether ``key`` is being delivered, waits for a retry, or was recorded a moment ago."""
        if key in self._jobs:
            return True
        until = self._recent.get(key)
        return until is not None and until > self._loop_time()

    def __len__(self) -> int:
        return len(self._jobs)

    def submit(self, ref: Key, look: Look, dues: Sequence[Due]) -> Batch:
        """Start delivering ``dues`` (none of them :meth:`busy`); their first results go to the batch.

        Once the queue has stopped (this replica no longer leads), nothing starts: the notifications stay
        due in status, for the next leader."""
        if self._stopped:
            dues = ()
        batch = Batch(len(dues))
        uid = look.incident.metadata.uid or ""
        levels: set[tuple[int, str | None]] = set()
        for due in dues:
            if due.key in self._jobs:
                raise RuntimeError(f"notification {due.key} is already being delivered")
            job = _Job(
                ref=ref,
                uid=uid,
                episode=look.plan.status.episode or 1,
                due=due,
                incident=look.planned,
                selection=look.selection,
                attempts=delivery.attempts_so_far(look.incident.status, due.key),
                checked=self._loop_time(),
                batch=batch,
                kind=channels.channel_type(look.selection.policy, due),
            )
            self._jobs[due.key] = job
            self._by_incident.setdefault(ref, set()).add(due.key)
            metrics.NOTIFICATIONS_IN_PROGRESS.labels("sending").inc()
            task = asyncio.create_task(self._run(job), name=f"deliver:{ref[0]}/{ref[1]}:{due.key[:12]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if due.event in ("triggered", "escalated") and (due.round, due.level_name) not in levels:
                levels.add((due.round, due.level_name))
                metrics.ESCALATIONS.labels(due.level_name or "").inc()
        return batch

    def moot(self, ref: Key, due: set[str]) -> None:
        """A look planned ``ref`` and found ``due``: notifications of it waiting for a retry that are not
        among them are looked at now (and recorded Skipped), not at their next retry."""
        for key in self._by_incident.get(ref, ()):
            if key not in due:
                job = self._jobs[key]
                job.checked = float("-inf")  # its plan is out of date: look again before any attempt
                job.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: then every delivery in progress is cancelled. What was not recorded is planned
        again by the next leader's first look, under the same keys."""
        self._stopped = False
        try:
            await stop.wait()
        finally:
            self._stopped = True
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- one notification ----------------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        try:
            while True:
                retry_at: datetime.datetime
                try:
                    if self._loop_time() - job.checked > FRESH and not await self._refresh(job):
                        return
                    verdict = await self._attempt(job)
                    if verdict is None:
                        return
                    if not verdict.final and job.wake.is_set() and not await self._refresh(job):
                        return  # a look found it moot while it was being attempted: Skipped, not Pending
                    await self._report(job, verdict)
                    if verdict.final:
                        return
                    assert verdict.retry_at is not None
                    retry_at = verdict.retry_at
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Not the channel's doing (the API server, a bug): never lost, tried again later.
                    delay = delivery.backoff(self.rules, max(job.attempts, 1), None, self._jitter())
                    logger.exception("%s: delivery failed unexpectedly; trying again in %.1fs", job.what(), delay)
                    retry_at = self.clock() + datetime.timedelta(seconds=delay)
                await self._wait(job, retry_at)
        finally:
            self._forget(job)

    async def _wait(self, job: _Job, until: datetime.datetime) -> None:
        """Wait for the retry, or until a look finds the notification may be moot; either way the
        incident is planned afresh before the next attempt."""
        job.checked = float("-inf")
        if job.wake.is_set():
            return  # a look asked for it meanwhile
        metrics.NOTIFICATIONS_IN_PROGRESS.labels("sending").dec()
        metrics.NOTIFICATIONS_IN_PROGRESS.labels("retrying").inc()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.wake.wait(), max(0.0, (until - self.clock()).total_seconds()))
        finally:
            metrics.NOTIFICATIONS_IN_PROGRESS.labels("retrying").dec()
            metrics.NOTIFICATIONS_IN_PROGRESS.labels("sending").inc()

    def _forget(self, job: _Job) -> None:
        metrics.NOTIFICATIONS_IN_PROGRESS.labels("sending").dec()
        key = job.due.key
        if self._jobs.get(key) is job:
            del self._jobs[key]
        keys = self._by_incident.get(job.ref)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_incident[job.ref]
        now = self._loop_time()
        self._recent[key] = now + _RECENT
        if len(self._recent) > 4 * len(self._jobs) + 1024:
            self._recent = {k: t for k, t in self._recent.items() if t > now}

    async def _refresh(self, job: _Job) -> bool:
        """Plan the incident afresh: True if the notification is still due (with the incident as it is now)."""
        look = await self.view.current(job.ref)
        if look is None or (look.incident.metadata.uid or "") != job.uid:
            logger.info("%s: the incident is gone; dropped", job.what())
            return False
        moot = delivery.moot(look.plan, job.due, job.episode)
        if moot is not None:
            if not moot.recorded:
                logger.info("%s: moot (%s); recorded Skipped", job.what(), moot.reason)
                await self._report(job, Verdict(delivery.SKIPPED, f"moot: {moot.reason}"))
            return False
        job.incident, job.selection, job.checked = look.planned, look.selection, self._loop_time()
        job.wake.clear()
        return True

    async def _attempt(self, job: _Job) -> Verdict | None:
        """One attempt: make the channel, take a turn of its destination, send. None: moot meanwhile."""
        policy = job.policy
        try:
            channel = await self.deliverer.channel(job.incident, job.selection.policy, job.due)
        except ChannelProblem as problem:
            job.attempts += 1
            if policy is not None:
                self.health.observe(
                    policy,
                    job.due.channel,
                    delivered=False,
                    permanent=not problem.retryable,
                    message=str(problem),
                    secret_problem=problem.secret,
                )
            return self._judge(job, Attempted(False, str(problem), retryable=problem.retryable))
        job.kind = channel.kind
        lane = self.lanes.get(channel.destination, channel.rate_limit)
        async with lane.turn() as turn:
            if self._loop_time() - job.checked > FRESH:
                turn.skip()  # while we look, no request goes out
                if not await self._refresh(job):
                    return None  # waited for its turn, and became moot meanwhile
                turn.attempted = True
            self._observe_lateness(job)
            outcome = await channel.send(channels.notification(job.incident, job.due, self.clock()))
            if outcome.attempts == 0:
                turn.skip()  # nothing was sent (an event the service does not take)
            job.attempts += outcome.attempts
            verdict = self._judge(
                job, Attempted(outcome.delivered, outcome.reason, outcome.retryable, outcome.retry_after)
            )
            if _asks_to_wait(outcome) and verdict.retry_at is not None:
                # The destination is over its limit: nobody sends to it before this one's retry.
                lane.pause((verdict.retry_at - self.clock()).total_seconds())
        if policy is not None:
            self.health.observe(
                policy,
                job.due.channel,
                delivered=outcome.delivered,
                permanent=not outcome.delivered and not outcome.retryable,
                message=outcome.reason,
            )
        return verdict

    def _judge(self, job: _Job, attempt: Attempted) -> Verdict:
        due_at = job.due.at or self.clock()
        verdict = delivery.after_attempt(
            self.rules, attempt, attempts=job.attempts, due_at=due_at, now=self.clock(), jitter=self._jitter()
        )
        if verdict.outcome == delivery.PENDING:
            log = logger.warning if job.attempts == 1 else logger.info
            assert verdict.retry_at is not None
            wait = (verdict.retry_at - self.clock()).total_seconds()
            log("%s: attempt %d failed: %s; retrying in %.1fs", job.what(), job.attempts, verdict.message, wait)
        elif verdict.outcome == delivery.FAILED:
            logger.warning("%s: failed after %d attempt(s): %s", job.what(), job.attempts, verdict.message)
        elif job.attempts > 1:
            logger.info("%s: delivered on attempt %d", job.what(), job.attempts)
        return verdict

    def _observe_lateness(self, job: _Job) -> None:
        if job.attempted:
            return
        job.attempted = True
        if job.due.at is not None:
            lateness = (self.clock() - job.due.at).total_seconds()
            if lateness >= 0:
                metrics.SCHEDULER_LATENESS.observe(lateness)

    async def _report(self, job: _Job, verdict: Verdict) -> None:
        """Count the result and have it recorded: by the look if it still waits, else by our own write."""
        metrics.NOTIFICATIONS.labels(job.kind, job.due.event, verdict.outcome).inc()
        result: Result = (job.due, verdict.outcome, job.attempts, verdict.message)
        batch, job.batch = job.batch, None
        if batch is not None:
            if batch.offer(result):
                return
            await batch.wait_written()
        await self._record(job, result)

    async def _record(self, job: _Job, result: Result) -> None:
        """Write ``result`` until it is written (an API error is retried, never dropped)."""
        delay = 1.0
        while True:
            try:
                await self.view.record(job.ref, job.uid, [result])
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning(
                    "%s: recording %s failed; trying again in %.0fs", job.what(), result[1], delay, exc_info=True
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECORD_RETRY_MAX)


def _asks_to_wait(outcome: notify.Outcome) -> bool:
    """A 429, or any refusal that says when to come back: the destination, not only this message, waits."""
    return not outcome.delivered and (outcome.status_code == 429 or outcome.retry_after is not None)
