"""Short-lived read caches of policies and Secrets, so 1,000 due incidents are not 2,000 LISTs.

Where it sits: the reconciler asks :class:`PolicyCache` for the policies of a
namespace, and the deliverer asks :class:`SecretCache` for a channel's Secret.
They are caches of the API server, never a memory of ours: an entry lives a few
seconds at most, and a policy's watch event drops its namespace's entry at
once, so an edited, added or deleted policy is seen by the very next look.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TTLCache(Generic[T]):
    """Values by key for ``ttl`` seconds; one load in flight per key (concurrent askers share it)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, T]] = {}
        self._loading: dict[tuple[str, ...], asyncio.Future[T]] = {}
        self._generation: dict[tuple[str, ...], int] = {}

    async def get(self, key: tuple[str, ...], load: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self.ttl:
            return entry[1]
        if key in self._loading:
            return await asyncio.shield(self._loading[key])
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation.get(key, 0)
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; askers waiting on it still get it
            raise
        finally:
            self._loading.pop(key, None)
        # An invalidation during the load means the value may be stale: hand it out, do not keep it.
        if self._generation.get(key, 0) == generation:
            self._entries[key] = (self._clock(), value)
        future.set_result(value)
        return value

    def invalidate(self, key: tuple[str, ...] | None = None) -> None:
        """Drop one key (or everything): the next ``get`` reads the API server again."""
        keys = list(self._entries) + list(self._loading) if key is None else [key]
        for k in keys:
            self._entries.pop(k, None)
            self._generation[k] = self._generation.get(k, 0) + 1
