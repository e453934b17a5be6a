"""The read caches: reuse within the TTL, one load for concurrent askers, invalidation wins."""

from __future__ import annotations

import asyncio

import pytest

from incidentops.handlers.caches import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_values_are_reused_within_the_ttl_and_reloaded_after() -> None:
    clock, loads = Clock(), []

    async def load() -> int:
        loads.append(clock.now)
        return len(loads)

    cache: TTLCache[int] = TTLCache(5, clock)
    assert await cache.get(("a",), load) == 1
    clock.now = 4.9
    assert await cache.get(("a",), load) == 1
    clock.now = 5.0
    assert await cache.get(("a",), load) == 2
    assert loads == [0.0, 5.0]


async def test_concurrent_askers_share_one_load() -> None:
    release = asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return "policies"

    cache: TTLCache[str] = TTLCache(5, Clock())
    askers = [asyncio.create_task(cache.get(("ns",), load)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*askers) == ["policies"] * 10
    assert loads == 1


async def test_invalidation_forces_a_fresh_read_even_within_the_ttl() -> None:
    version = 0

    async def load() -> int:
        return version

    cache: TTLCache[int] = TTLCache(60, Clock())
    assert await cache.get(("ns",), load) == 0
    version = 1
    cache.invalidate(("ns",))
    assert await cache.get(("ns",), load) == 1


async def test_a_load_raced_by_an_invalidation_is_not_kept() -> None:
    cache: TTLCache[int] = TTLCache(60, Clock())
    version = 0

    async def load() -> int:
        cache.invalidate(("ns",))  # a policy changed while we were listing
        return version

    assert await cache.get(("ns",), load) == 0
    version = 1
    assert await cache.get(("ns",), load) == 1, "the stale value was not kept"


async def test_errors_are_not_cached() -> None:
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("API server down")
        return 7

    cache: TTLCache[int] = TTLCache(60, Clock())
    with pytest.raises(RuntimeError):
        await cache.get(("ns",), load)
    assert await cache.get(("ns",), load) == 7
