"""The scheduler wakes at the earliest deadline, never processes one incident twice at once,
and retries failures; fast loop time (looptime), no real waiting."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from incidentops.handlers.scheduler import Key, Scheduler

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def clock() -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=asyncio.get_running_loop().time())


def at(seconds: float) -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=seconds)


async def _run_until(scheduler: Scheduler, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


@pytest.mark.looptime
async def test_processes_at_each_deadline_in_order() -> None:
    seen: list[tuple[Key, float]] = []

    async def process(key: Key) -> datetime.datetime | None:
        seen.append((key, asyncio.get_running_loop().time()))
        return None

    scheduler = Scheduler(process, clock)
    scheduler.poke(("ns", "late"), at(20))
    scheduler.poke(("ns", "early"), at(5))
    scheduler.poke(("ns", "middle"), at(10))
    await _run_until(scheduler, 30)
    assert seen == [(("ns", "early"), 5), (("ns", "middle"), 10), (("ns", "late"), 20)]


@pytest.mark.looptime
async def test_an_earlier_poke_wins_and_a_later_one_does_not_delay() -> None:
    seen: list[float] = []

    async def process(key: Key) -> datetime.datetime | None:
        seen.append(asyncio.get_running_loop().time())
        return None

    scheduler = Scheduler(process, clock)
    scheduler.poke(("ns", "a"), at(10))
    scheduler.poke(("ns", "a"), at(30))  # later: ignored, 10 stays
    scheduler.poke(("ns", "a"), at(4))  # earlier: wins
    await _run_until(scheduler, 40)
    assert seen == [4]


@pytest.mark.looptime
async def test_the_next_wake_up_comes_from_the_processor() -> None:
    seen: list[float] = []

    async def process(key: Key) -> datetime.datetime | None:
        now = asyncio.get_running_loop().time()
        seen.append(now)
        return at(now + 7) if len(seen) < 3 else None

    scheduler = Scheduler(process, clock)
    scheduler.poke(("ns", "a"), at(1))
    await _run_until(scheduler, 60)
    assert seen == [1, 8, 15]


@pytest.mark.looptime
async def test_forget_drops_the_deadline() -> None:
    seen: list[Key] = []

    async def process(key: Key) -> datetime.datetime | None:
        seen.append(key)
        return None

    scheduler = Scheduler(process, clock)
    scheduler.poke(("ns", "gone"), at(5))
    scheduler.forget(("ns", "gone"))
    await _run_until(scheduler, 10)
    assert seen == []


@pytest.mark.looptime
async def test_failures_are_retried_not_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    async def process(key: Key) -> datetime.datetime | None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise RuntimeError("API server unavailable")
        return None

    scheduler = Scheduler(process, clock, retry_delay=5)
    scheduler.poke(("ns", "a"), at(1))
    await _run_until(scheduler, 20)
    assert calls == [1, 6]
    assert "API server unavailable" in caplog.text


@pytest.mark.looptime
async def test_one_incident_is_never_processed_twice_at_once() -> None:
    running = 0
    overlaps = 0
    calls = 0

    async def process(key: Key) -> datetime.datetime | None:
        nonlocal running, overlaps, calls
        calls += 1
        running += 1
        overlaps = max(overlaps, running)
        await asyncio.sleep(3)
        running -= 1
        return None

    scheduler = Scheduler(process, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    scheduler.poke(("ns", "a"))
    await asyncio.sleep(1)
    scheduler.poke(("ns", "a"))  # while it runs: looked at again right after, not in parallel
    scheduler.poke(("ns", "a"))
    await asyncio.sleep(10)
    stop.set()
    await task
    assert overlaps == 1
    assert calls == 2


@pytest.mark.looptime
async def test_concurrency_is_bounded() -> None:
    running = 0
    peak = 0

    async def process(key: Key) -> datetime.datetime | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(1)
        running -= 1
        return None

    scheduler = Scheduler(process, clock, concurrency=3)
    for i in range(10):
        scheduler.poke(("ns", f"i{i}"), at(1))
    await _run_until(scheduler, 10)
    assert peak == 3
