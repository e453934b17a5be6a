"""The one scheduler task: every open incident's next deadline in a priority queue.

Where it sits: fed by Kopf's watch events (``registry.py`` pokes it whenever an
Incident or a policy changes) and rebuilt from the cluster at start, it wakes
at the earliest deadline and hands the incident to ``reconciler.py``, which
asks the domain, sends what is due, and writes status. What it keeps in memory
is only *when* to look at an incident next; *what* to do is always recomputed
from status, so a restart or a failover loses nothing.

Why not a Kopf daemon or timer per incident: each adds a finalizer (deletes
hang while the operator is down) and a task per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

from incidentops import metrics

logger = logging.getLogger("incidentops.scheduler")

Key = tuple[str, str]  # (namespace, name)
# Processes one incident; returns when to look at it next (None: nothing scheduled).
Processor = Callable[[Key], Awaitable[datetime.datetime | None]]
Clock = Callable[[], datetime.datetime]


class Scheduler:
    def __init__(self, process: Processor, clock: Clock, *, concurrency: int = 8, retry_delay: float = 5.0) -> None:
        self._process = process
        self._clock = clock
        self._heap: list[tuple[datetime.datetime, int, Key]] = []
        self._next: dict[Key, datetime.datetime] = {}  # the earliest wake-up per incident
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # poked while being processed: look again right after
        self._slots = asyncio.Semaphore(concurrency)
        self._retry_delay = retry_delay
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self, key: Key, at: datetime.datetime | None = None) -> None:
        """Look at the incident at ``at`` (now when None), unless an earlier look is queued."""
        when = at or self._clock()
        if key in self._running and when <= self._clock():
            self._again.add(key)
            return
        current = self._next.get(key)
        if current is not None and current <= when:
            return
        self._next[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        metrics.SCHEDULER_QUEUE.set(len(self._next))
        self._changed.set()

    def forget(self, key: Key) -> None:
        """The incident is gone or Closed: nothing more to do for it."""
        self._next.pop(key, None)
        metrics.SCHEDULER_QUEUE.set(len(self._next))

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
        metrics.SCHEDULER_QUEUE.set(len(self._next))
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
                next_at = await self._process(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Errors are retried, never swallowed: the incident is looked at again soon.
            logger.exception("processing incident %s/%s failed; retrying in %.0fs", *key, self._retry_delay)
            next_at = self._clock() + datetime.timedelta(seconds=self._retry_delay)
        finally:
            self._running.discard(key)
        if key in self._again:
            self._again.discard(key)
            next_at = self._clock()
        if next_at is not None:
            self.poke(key, next_at)
