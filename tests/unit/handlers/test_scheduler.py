"""The scheduler wakes at the earliest deadline, never processes one incident twice at once,
and retries failures by their kind; fast loop time (looptime), no real waiting."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging

import pytest

from incidentops import metrics
from incidentops.handlers.scheduler import Backoff, Key, Scheduler
from tests.unit.kubefake import api_error

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

    scheduler = Scheduler(process, clock, draw=lambda: 0.0)
    scheduler.poke(("ns", "a"), at(1))
    await _run_until(scheduler, 20)
    assert calls == [1, 2]
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


# --- failures, by kind ------------------------------------------------------------------------------


def errors_of(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("incidentops_reconcile_errors_total", {"kind": kind}) or 0.0


def test_backoff_doubles_from_one_second_to_five_minutes_with_jitter() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, 0.0) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff.delay(1000, 0.0) == 300
    assert backoff.delay(3, 0.5) == 3  # 4s cut by a quarter
    assert 2.0 < backoff.delay(3, 0.999) < 2.01  # never less than half


@pytest.mark.looptime
async def test_temporary_errors_are_retried_with_backoff_until_a_success_ends_the_streak() -> None:
    calls: list[float] = []
    outage = 5

    async def process(key: Key) -> datetime.datetime | None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= outage:
            raise api_error(503, "Service Unavailable")
        return None

    before = errors_of("temporary")
    draws = iter([0.0, 1.0, 0.5, 0.0, 0.0, 0.0])
    scheduler = Scheduler(process, clock, draw=lambda: next(draws))
    scheduler.poke(("ns", "a"), at(1))
    await _run_until(scheduler, 100)
    assert [b - a for a, b in itertools.pairwise(calls)] == [1, 1, 3, 8, 16]
    assert errors_of("temporary") - before == outage

    outage = 7  # a new streak starts from one second again
    scheduler.poke(("ns", "a"))
    await _run_until(scheduler, 10)
    assert calls[-1] - calls[-2] == 1


@pytest.mark.looptime
async def test_retry_after_is_honoured_even_when_a_watch_event_pokes() -> None:
    calls: list[float] = []

    async def process(key: Key) -> datetime.datetime | None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise api_error(429, "Too Many Requests", retry_after=30)
        return None

    scheduler = Scheduler(process, clock, draw=lambda: 0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    scheduler.poke(("ns", "a"), at(1))
    await asyncio.sleep(5)
    scheduler.poke(("ns", "a"))  # the incident changed: the server still asked us to wait
    await asyncio.sleep(60)
    stop.set()
    await task
    assert calls == [1, 31]


@pytest.mark.looptime
async def test_permanent_errors_are_shown_retried_slowly_and_at_once_on_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []
    shown: list[tuple[Key, int, str]] = []
    forbidden = True

    async def process(key: Key) -> datetime.datetime | None:
        calls.append(asyncio.get_running_loop().time())
        if forbidden:
            raise api_error(403, "Forbidden", message='secrets "pager" is forbidden')
        return None

    async def show(key: Key, exc: BaseException, retry: str) -> None:
        shown.append((key, exc.status, retry))  # type: ignore[attr-defined]

    caplog.set_level(logging.INFO, logger="incidentops.scheduler")
    before = errors_of("permanent")
    scheduler = Scheduler(process, clock, permanent_delay=600, on_refusal=show)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    scheduler.poke(("ns", "a"), at(1))
    await asyncio.sleep(1300)
    assert calls == [1, 601, 1201]  # slowly
    scheduler.poke(("ns", "a"))  # the incident changed: at once
    await asyncio.sleep(1)
    assert calls[-1] == 1300
    forbidden = False  # RBAC fixed
    scheduler.poke(("ns", "a"))
    await asyncio.sleep(1)
    stop.set()
    await task
    assert len(calls) == 5
    assert errors_of("permanent") - before == 4
    assert shown[0] == (("ns", "a"), 403, "every 600s and when the incident changes")
    assert len(shown) == 4
    assert "Traceback" not in caplog.text
    assert "processed again after 4 failed looks" in caplog.text


@pytest.mark.looptime
async def test_a_bugs_traceback_is_logged_once_per_streak(caplog: pytest.LogCaptureFixture) -> None:
    failing = {1, 2, 3, 5}
    calls = 0

    async def process(key: Key) -> datetime.datetime | None:
        nonlocal calls
        calls += 1
        if calls in failing:
            raise KeyError("escalation")
        return at(asyncio.get_running_loop().time() + 1) if calls == 4 else None

    before = errors_of("other")
    scheduler = Scheduler(process, clock, draw=lambda: 0.0)
    scheduler.poke(("ns", "a"), at(1))
    with caplog.at_level(logging.ERROR, logger="incidentops.scheduler"):
        await _run_until(scheduler, 60)
    assert calls == 6
    assert errors_of("other") - before == 4
    tracebacks = [r for r in caplog.records if r.exc_info]
    short = [r for r in caplog.records if "failed again" in r.getMessage()]
    assert len(tracebacks) == 2, "one for each streak (failures 1-3, then 5)"
    assert len(short) == 2


@pytest.mark.looptime
async def test_a_failing_refusal_hook_does_not_drop_the_incident() -> None:
    calls: list[float] = []

    async def process(key: Key) -> datetime.datetime | None:
        calls.append(asyncio.get_running_loop().time())
        raise api_error(422, "Unprocessable Entity")

    async def show(key: Key, exc: BaseException, retry: str) -> None:
        raise RuntimeError("the hook has a bug")

    scheduler = Scheduler(process, clock, permanent_delay=600, on_refusal=show)
    scheduler.poke(("ns", "a"), at(1))
    await _run_until(scheduler, 1300)
    assert calls == [1, 601, 1201]
