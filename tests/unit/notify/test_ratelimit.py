"""Per-destination lanes: a sliding window, a concurrency bound, pauses, arrival order; looptime."""

from __future__ import annotations

import asyncio

import pytest

from incidentops.notify.base import RateLimit
from incidentops.notify.ratelimit import Lane, Lanes


def now() -> float:
    return asyncio.get_running_loop().time()


async def _send(lane: Lane, started: list[float], took: float = 0.0, attempted: bool = True) -> None:
    async with lane.turn() as turn:
        started.append(now())
        if took:
            await asyncio.sleep(took)
        if not attempted:
            turn.skip()


@pytest.mark.looptime
async def test_at_most_events_per_window_counted_from_when_each_ended() -> None:
    lane = Lane(RateLimit(events=3, seconds=10))
    started: list[float] = []
    await asyncio.gather(*(_send(lane, started, took=1) for _ in range(7)))
    # Three at once; each place frees 10 s after the attempt holding it *ended* (at 1 s).
    assert started == [0, 0, 0, 11, 11, 11, 22]


@pytest.mark.looptime
async def test_in_flight_attempts_count_against_the_window() -> None:
    lane = Lane(RateLimit(events=1, seconds=1, concurrency=4))
    started: list[float] = []
    await asyncio.gather(*(_send(lane, started, took=3) for _ in range(3)))
    assert started == [0, 4, 8]


@pytest.mark.looptime
async def test_concurrency_bounds_attempts_in_flight() -> None:
    lane = Lane(RateLimit(concurrency=2))
    started: list[float] = []
    await asyncio.gather(*(_send(lane, started, took=5) for _ in range(5)))
    assert started == [0, 0, 5, 5, 10]


@pytest.mark.looptime
async def test_a_pause_holds_every_waiter() -> None:
    lane = Lane(RateLimit(concurrency=8))
    started: list[float] = []
    await _send(lane, started)
    lane.pause(7)
    await asyncio.gather(*(_send(lane, started) for _ in range(3)))
    assert started == [0, 7, 7, 7]


@pytest.mark.looptime
async def test_a_pause_while_waiting_is_honoured() -> None:
    lane = Lane(RateLimit(events=1, seconds=2))
    started: list[float] = []
    await _send(lane, started)
    waiter = asyncio.create_task(_send(lane, started))
    await asyncio.sleep(1)
    lane.pause(10)  # a 429 arrives for someone else meanwhile
    await waiter
    assert started == [0, 11]


@pytest.mark.looptime
async def test_waiters_take_turns_in_arrival_order() -> None:
    lane = Lane(RateLimit(events=1, seconds=1, concurrency=1))
    order: list[int] = []

    async def send(i: int) -> None:
        async with lane.turn():
            order.append(i)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.create_task(send(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == list(range(10))
    assert now() == 9


@pytest.mark.looptime
async def test_a_skipped_turn_does_not_count() -> None:
    lane = Lane(RateLimit(events=1, seconds=60))
    started: list[float] = []
    await _send(lane, started, attempted=False)  # e.g. moot when its turn came: nothing went out
    await _send(lane, started)
    await _send(lane, started)
    assert started == [0, 0, 60]


@pytest.mark.looptime
async def test_lanes_are_per_destination_and_idle_ones_are_dropped() -> None:
    lanes = Lanes()
    limit = RateLimit(events=1, seconds=1)
    a, b = lanes.get("slack:a", limit), lanes.get("slack:b", limit)
    assert a is not b and lanes.get("slack:a", limit) is a
    started: list[float] = []
    await asyncio.gather(_send(a, started), _send(b, started))
    assert started == [0, 0], "one destination's limit does not hold another"
    await asyncio.sleep(2)
    assert a.idle and b.idle
    for i in range(70):
        lanes.get(f"webhook:{i}", limit)
    assert len(lanes) <= 64 + 1
