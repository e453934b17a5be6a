"""A reconciler, its delivery queue and the policy monitor over the fake kube seam, with real channels.

The channels talk HTTP to a real local server (the notify tests' ``http_peer``);
only the Kubernetes API is an in-memory fake (``tests/unit/kubefake.py``). Time is
looptime's: the loop's clock, fast-forwarded whenever nothing is runnable,
drives the operator's clock too, so an hour of retries takes no real time.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from incidentops import notify
from incidentops.api import Incident
from incidentops.api.incident import NotificationRecord
from incidentops.domain.delivery import RetryRules
from incidentops.handlers.delivery import Deliverer
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.policies import PolicyMonitor
from incidentops.handlers.reconciler import Reconciler
from incidentops.kube import INCIDENTS, POLICIES
from incidentops.settings import Settings
from tests.unit.kubefake import FakeKube
from tests.unit.notify.conftest import HttpPeer, http_peer, session

__all__ = ["EPOCH", "Harness", "harness", "http_peer", "session"]

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
OPERATOR_NS = "incidentops"
NS = "team"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
SLACK_PATH = "/slack/T000/B000/SLACKSECRETPATH0123"


def clock() -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=asyncio.get_running_loop().time())


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class Harness:
    kube: FakeKube
    peer: HttpPeer
    reconciler: Reconciler
    monitor: PolicyMonitor
    deps: Dependencies

    @property
    def queue(self) -> Any:
        return self.reconciler.queue

    def policy(self, levels: list[dict[str, Any]], *, name: str = "paging", **spec: Any) -> None:
        channels = [
            {"name": "hook", "webhook": {"url": self.peer.url("/hook")}},
            {"name": "other", "webhook": {"url": self.peer.url("/other")}},
            {"name": "chat", "slack": {"webhookSecretRef": {"name": "channels", "key": "slack"}}},
            {
                "name": "pager",
                "pagerduty": {
                    "routingKeySecretRef": {"name": "channels", "key": "routing-key"},
                    "url": self.peer.url("/v2/enqueue"),
                },
            },
        ]
        body = {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"levels": levels, "channels": channels, **spec},
        }
        self.monitor.seen(self.kube.add(POLICIES, body))

    def secret(self, *, labelled: bool = True) -> None:
        self.kube.add_secret(
            NS, "channels", {"slack": self.peer.url(SLACK_PATH), "routing-key": ROUTING_KEY}, labelled=labelled
        )

    def declare(self, name: str, **spec: Any) -> tuple[str, str]:
        body = {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": clock().isoformat()},
            "spec": {"title": f"{name} is down", "severity": "P1", "escalationPolicyRef": {"name": "paging"}, **spec},
        }
        self.kube.add(INCIDENTS, body)
        return (NS, name)

    def incident(self, name: str) -> Incident:
        return Incident.model_validate(self.kube.get(INCIDENTS, NS, name))

    def records(self, name: str, channel: str | None = None) -> list[NotificationRecord]:
        return [r for r in self.incident(name).status.notifications if channel in (None, r.channel)]

    def notified(self, name: str) -> list[str]:
        escalation = self.incident(name).status.escalation
        return list(escalation.notified) if escalation is not None else []

    def ack(self, name: str) -> None:
        self.kube.edit_spec(INCIDENTS, NS, name, acknowledgement={"by": "alice", "at": clock().isoformat()})

    async def look(self, name: str) -> float:
        """One look at the incident (as the scheduler would); the loop time it took."""
        started = now()
        await self.reconciler.process((NS, name))
        return now() - started


async def until(what: str, check: Callable[[], Any], within: float = 600.0, step: float = 0.05) -> Any:
    """Poll ``check`` in loop time until it is truthy; fail after ``within`` loop seconds."""
    deadline = now() + within
    while True:
        value = check()
        if value:
            return value
        if now() > deadline:
            raise AssertionError(f"{what}: not within {within}s of loop time (last: {value!r})")
        await asyncio.sleep(step)


RULES = RetryRules(initial_delay=1.0, max_delay=60.0, jitter=0.0, max_age=datetime.timedelta(hours=1))


@pytest.fixture
def rules() -> RetryRules:
    return RULES


@pytest.fixture
def fake_kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    yield FakeKube().install(monkeypatch)


@pytest.fixture
async def harness(
    fake_kube: FakeKube, http_peer: HttpPeer, session: aiohttp.ClientSession, rules: RetryRules
) -> AsyncIterator[Harness]:
    settings = Settings(namespace=OPERATOR_NS, cache_seconds=0, policy_recheck_seconds=30)
    deps = Dependencies(settings=settings, api=None, clock=clock)  # type: ignore[arg-type]
    monitor = PolicyMonitor(deps)
    deliverer = Deliverer(deps, session, notify.RetryPolicy(attempts=1, timeout=10.0))
    reconciler = Reconciler(deps, deliverer, monitor, rules)
    stop = asyncio.Event()
    parts = [asyncio.create_task(reconciler.queue.run(stop)), asyncio.create_task(monitor.run(stop))]
    try:
        yield Harness(fake_kube, http_peer, reconciler, monitor, deps)
    finally:
        stop.set()
        await asyncio.gather(*parts)
