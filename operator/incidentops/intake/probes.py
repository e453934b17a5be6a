"""Whether the Kubernetes API answers this replica, for the receiver's ``/readyz``.

Where it sits: ``server.run_receiver`` builds an :class:`ApiCheck` around
``kube.server_version`` on the operator's client and hands it to
``make_app``, whose ``/readyz`` asks it (unit tests hand in any coroutine
function instead). A replica that cannot reach the API server cannot record
an alert group (it would answer 503), so it is better out of the receiver's
Service until it can: the other replica takes the POSTs.

Each ask is bounded by ``timeout`` (below the probe's own ``timeoutSeconds``,
so a frozen API server gives a 503 with a reason rather than a probe timeout)
and its answer is kept for ``ttl`` seconds, so kubelet's probes, however
often they come, cost the API server one request per ``ttl`` per replica.
Probes that arrive while an ask is under way wait for it instead of asking again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from incidentops import kube

__all__ = ["ApiCheck"]


class ApiCheck:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        ttl: float = 5.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``probe()`` is one request to the API server; it raises when the server does not answer."""
        self._probe = probe
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._answer: str | None = None
        self._asked_at: float | None = None

    async def problem(self) -> str | None:
        """None when the API server answered within the last ``ttl`` seconds, else why not (one line)."""
        async with self._lock:
            if self._asked_at is None or self._clock() - self._asked_at >= self._ttl:
                self._answer = await self._ask()
                self._asked_at = self._clock()
            return self._answer

    async def _ask(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._probe()
        except TimeoutError:
            return f"the Kubernetes API did not answer within {self._timeout:g}s"
        except Exception as exc:
            # Whatever it is (refused, 401, 5xx, a bug in the client), this replica cannot use the API.
            return f"the Kubernetes API is not reachable: {kube.describe(exc)}"
        return None
