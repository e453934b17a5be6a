"""Per-destination pacing: queue sends to a destination instead of having them refused.

Where it sits: the operator's delivery queue (``incidentops.handlers.queue``)
asks :class:`Lanes` for the :class:`Lane` of a channel's
:attr:`~incidentops.notify.base.Channel.destination` and holds a turn of it
around every attempt; the channels only declare their service's
:class:`~incidentops.notify.base.RateLimit`.

A lane lets an attempt start when all of these hold:

- fewer than ``concurrency`` attempts of the destination are in flight;
- fewer than ``events`` attempts ended in the last ``seconds`` (a sliding
  window, counted from when each attempt *ended*: the service saw it no later
  than that, so a window measured by the service never holds more than
  ``events``), in-flight attempts counted too;
- the destination is not paused: a 429, or a ``Retry-After``, pauses it for
  everyone, not only for the notification that was refused.

Waiters are served in arrival order (an ``asyncio.Lock`` is fair), so a storm
of pages through one routing key is delivered in the order it was planned,
none dropped. Nothing here sleeps longer than needed: a waiter wakes when its
window opens, when the pause ends, or when an attempt ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import AsyncIterator, Callable

from incidentops.notify.base import RateLimit

__all__ = ["Lane", "Lanes"]

Clock = Callable[[], float]
_KEEP = 64  # lanes kept before idle ones are dropped (a lane only remembers a window and a pause)


class Lane:
    """The turns of one destination."""

    def __init__(self, limit: RateLimit, clock: Clock | None = None) -> None:
        self.limit = limit
        self._clock = clock
        self._ended: collections.deque[float] = collections.deque()  # end times within the window
        self._in_flight = 0
        self._paused_until = 0.0
        self._fifo = asyncio.Lock()
        self._changed = asyncio.Event()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def idle(self) -> bool:
        """Nothing in flight, nobody waiting, no window or pause to remember: the lane may be dropped."""
        now = self._now()
        self._expire(now)
        return not self._in_flight and not self._fifo.locked() and not self._ended and self._paused_until <= now

    def _expire(self, now: float) -> None:
        while self._ended and self._ended[0] <= now - self.limit.seconds:
            self._ended.popleft()

    def wait_seconds(self) -> float:
        """How long an attempt asking now would wait at least (``inf``: until an attempt ends)."""
        now = self._now()
        self._expire(now)
        wait = max(0.0, self._paused_until - now)
        if self._in_flight >= self.limit.concurrency:
            return math.inf
        events = self.limit.events
        if events is not None and len(self._ended) + self._in_flight >= events:
            # Full: the oldest end leaving the window frees a place; with none ended, an end must come first.
            wait = max(wait, self._ended[0] + self.limit.seconds - now if self._ended else math.inf)
        return wait

    async def acquire(self) -> None:
        """Wait for a turn; pair with :meth:`release`."""
        async with self._fifo:
            while (wait := self.wait_seconds()) > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), None if math.isinf(wait) else wait)
            self._in_flight += 1

    def release(self, *, attempted: bool) -> None:
        """End a turn. ``attempted``: a request went out (it counts against the rate limit)."""
        self._in_flight -= 1
        if attempted:
            self._ended.append(self._now())
        self._changed.set()

    def pause(self, seconds: float) -> None:
        """No attempt starts for ``seconds`` (the server said so: a 429, a ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self._now() + max(0.0, seconds))
        self._changed.set()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[_Turn]:
        """``async with lane.turn() as turn:`` an attempt; ``turn.skip()`` if no request went out."""
        await self.acquire()
        turn = _Turn()
        try:
            yield turn
        finally:
            self.release(attempted=turn.attempted)


class _Turn:
    def __init__(self) -> None:
        self.attempted = True

    def skip(self) -> None:
        """No request went out in this turn: it does not count against the rate limit."""
        self.attempted = False


class Lanes:
    """One :class:`Lane` per destination, made on first use, dropped once idle."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock
        self._lanes: dict[str, Lane] = {}

    def get(self, destination: str, limit: RateLimit) -> Lane:
        """The lane of ``destination`` (``limit`` applies when it is made: a destination's limit is its kind's)."""
        lane = self._lanes.get(destination)
        if lane is None:
            if len(self._lanes) >= _KEEP:
                self._drop_idle()
            lane = self._lanes[destination] = Lane(limit, self._clock)
        return lane

    def _drop_idle(self) -> None:
        for destination, lane in list(self._lanes.items()):
            if lane.idle:
                del self._lanes[destination]

    def __len__(self) -> int:
        return len(self._lanes)
