"""The one scheduler task: every open incident's next deadline in a priority queue.

Where it sits: fed by Kopf's watch events (``registry.py`` pokes it whenever an
Incident or a policy changes) and rebuilt from the cluster at start, it wakes
at the earliest deadline and hands the incident to ``reconciler.py``, which
asks the domain, hands what is due to the delivery queue (``queue.py``) and
writes status. What it keeps in memory
is only *when* to look at an incident next; *what* to do is always recomputed
from status, so a restart or a failover loses nothing.

Why not a Kopf daemon or timer per incident: each adds a finalizer (deletes
hang while the operator is down) and a task per object.

A failed look is retried by the kind of its error (``kube.error_kind``, Kopf's
three kinds), per incident, and a success ends the streak:

- temporary (5xx, 429, time-outs, lost connections): exponential backoff with
  jitter, never sooner than the server's ``Retry-After``; a poke from a watch
  event waits for it too (the server does not come back sooner for it);
- permanent (403, 422, 400 ...): shown on the incident (``refusals.py``), retried
  slowly, and at once when the incident changes;
- other (a bug): backoff, with its traceback logged once per streak and a short
  line for every retry after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from incidentops import kube, metrics

logger = logging.getLogger("incidentops.scheduler")

Key = tuple[str, str]  # (namespace, name)
# Processes one incident; returns when to look at it next (None: nothing scheduled).
Processor = Callable[[Key], Awaitable[datetime.datetime | None]]
Clock = Callable[[], datetime.datetime]
# Shows a permanent error on the incident; the text says when it is retried.
RefusalHook = Callable[[Key, BaseException, str], Awaitable[object]]


@dataclass(frozen=True)
class Backoff:
    """``initial`` seconds doubling up to ``maximum``; each delay cut by up to ``jitter`` of it at random,
    so incidents that failed together (an API server outage) do not all retry together."""

    initial: float = 1.0
    maximum: float = 300.0
    jitter: float = 0.5

    def delay(self, failures: int, draw: float) -> float:
        """The delay after the ``failures``-th failure in a row, for a ``draw`` in [0, 1)."""
        base = min(self.maximum, self.initial * 2.0 ** min(failures - 1, 64))
        return base * (1 - self.jitter * draw)


@dataclass
class _Streak:
    """Failures in a row of one incident, of one kind."""

    kind: kube.ErrorKind
    failures: int = 0
    traceback_logged_for: type[BaseException] | None = None


class Scheduler:
    def __init__(
        self,
        process: Processor,
        clock: Clock,
        *,
        concurrency: int = 8,
        backoff: Backoff = Backoff(),
        permanent_delay: float = 600.0,
        on_refusal: RefusalHook | None = None,
        draw: Callable[[], float] = random.random,
        noun: str = "incident",
        metered: bool = True,
    ) -> None:
        """``noun`` names what the keys are in log lines; ``metered``: this is the incidents' queue, whose size
        and failed looks are the scheduler's metrics (a queue of other things, such as the policies' monthly
        reports, keeps out of them)."""
        self._noun = noun
        self._metered = metered
        self._process = process
        self._clock = clock
        self._heap: list[tuple[datetime.datetime, int, Key]] = []
        self._next: dict[Key, datetime.datetime] = {}  # the earliest wake-up per incident
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # poked while being processed: look again right after
        self._slots = asyncio.Semaphore(concurrency)
        self._backoff = backoff
        self._permanent_delay = permanent_delay
        self._on_refusal = on_refusal
        self._draw = draw
        self._streaks: dict[Key, _Streak] = {}
        self._not_before: dict[Key, datetime.datetime] = {}  # temporary errors: no look before the backoff ends
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self, key: Key, at: datetime.datetime | None = None) -> None:
        """Look at the incident at ``at`` (now when None), unless an earlier look is queued."""
        when = at or self._clock()
        hold = self._not_before.get(key)
        if hold is not None and when < hold:
            when = hold
        if key in self._running and when <= self._clock():
            self._again.add(key)
            return
        current = self._next.get(key)
        if current is not None and current <= when:
            return
        self._next[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._gauge()
        self._changed.set()

    def _gauge(self) -> None:
        if self._metered:
            metrics.SCHEDULER_QUEUE.set(len(self._next))

    def forget(self, key: Key) -> None:
        """The incident is gone or Closed: nothing more to do for it."""
        self._next.pop(key, None)
        self._streaks.pop(key, None)
        self._not_before.pop(key, None)
        self._gauge()

    def scheduled(self, key: Key) -> datetime.datetime | None:
        return self._next.get(key)

    def _pop_due(self, now: datetime.datetime) -> list[Key]:
        due: list[Key] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._next.get(key) != when:
                continue  # superseded by an earlier or a later entry
            del self._next[key]
            due.append(key)
        self._gauge()
        return due

    def _seconds_to_next(self, now: datetime.datetime) -> float | None:
        while self._heap and self._next.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # drop stale entries so they cannot wake us for nothing
        if not self._heap:
            return None
        return max(0.0, (self._heap[0][0] - now).total_seconds())

    async def run(self, stop: asyncio.Event) -> None:
        """Wake at the earliest deadline (or when poked), process what is due, until ``stop``."""
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                now = self._clock()
                for key in self._pop_due(now):
                    if key in self._running:
                        self._again.add(key)
                        continue
                    self._running.add(key)
                    task = asyncio.create_task(self._handle(key), name=f"incident:{key[0]}/{key[1]}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                timeout = self._seconds_to_next(self._clock())
                self._changed.clear()
                changed = asyncio.create_task(self._changed.wait())
                try:
                    await asyncio.wait([changed, stopper], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
        finally:
            stopper.cancel()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _handle(self, key: Key) -> None:
        next_at: datetime.datetime | None
        try:
            async with self._slots:
                try:
                    next_at = await self._process(key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Errors are retried, never swallowed: when depends on their kind.
                    next_at = await self._failed(key, exc)
                else:
                    self._succeeded(key)
        finally:
            self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            next_at = self._clock()
        if next_at is not None:
            self.poke(key, next_at)

    def _succeeded(self, key: Key) -> None:
        self._not_before.pop(key, None)
        streak = self._streaks.pop(key, None)
        if streak is not None:
            logger.info("%s %s/%s processed again after %d failed looks", self._noun, *key, streak.failures)

    async def _failed(self, key: Key, exc: Exception) -> datetime.datetime:
        """Count, log and maybe show the failure; when to look again."""
        namespace, name = key
        kind = kube.error_kind(exc)
        if self._metered:
            metrics.RECONCILE_ERRORS.labels(kind.value).inc()
        streak = self._streaks.get(key)
        if streak is None or streak.kind is not kind:
            streak = self._streaks[key] = _Streak(kind)
        streak.failures += 1
        self._not_before.pop(key, None)
        if kind is kube.ErrorKind.PERMANENT:
            delay = self._permanent_delay
            retry = f"every {delay:g}s and when the incident changes"
            logger.warning("%s %s/%s: %s; retried %s", self._noun, namespace, name, kube.describe(exc), retry)
            if self._on_refusal is not None:
                try:
                    await self._on_refusal(key, exc, retry)
                except Exception:
                    # Never lose the incident from the queue over how its error is shown.
                    logger.exception("%s %s/%s: showing the refusal failed", self._noun, namespace, name)
            return self._clock() + datetime.timedelta(seconds=delay)
        delay = self._backoff.delay(streak.failures, self._draw())
        if kind is kube.ErrorKind.TEMPORARY:
            delay = max(delay, min(kube.retry_after(exc) or 0.0, self._backoff.maximum))
            logger.warning(
                "%s %s/%s: %s (temporary, failure %d); retrying in %.1fs",
                self._noun,
                namespace,
                name,
                kube.describe(exc),
                streak.failures,
                delay,
            )
            retry_at = self._clock() + datetime.timedelta(seconds=delay)
            self._not_before[key] = retry_at
            return retry_at
        if streak.traceback_logged_for is not type(exc):
            streak.traceback_logged_for = type(exc)
            logger.error(
                "processing %s %s/%s failed; retrying in %.1fs", self._noun, namespace, name, delay, exc_info=exc
            )
        else:
            logger.error(
                "processing %s %s/%s failed again (failure %d): %s (traceback logged at the first); retrying in %.1fs",
                self._noun,
                namespace,
                name,
                streak.failures,
                kube.describe(exc),
                delay,
            )
        return self._clock() + datetime.timedelta(seconds=delay)
