"""A look at an incident that fails, end to end through the scheduler, the reconciler and the refusal
reporter, wired as ``runtime.py`` wires them, against a fake of kube's functions, in loop time."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incidentops.domain.delivery import RetryRules
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.policies import PolicyMonitor
from incidentops.handlers.reconciler import Reconciler
from incidentops.handlers.refusals import RefusalReporter
from incidentops.handlers.scheduler import Scheduler
from incidentops.kube import INCIDENTS
from incidentops.settings import Settings
from tests.unit.kubefake import FakeKube, api_error

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
KEY = ("shop", "db")


def clock() -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=asyncio.get_running_loop().time())


def ready(kube: FakeKube) -> dict[str, Any]:
    conditions = kube.get(INCIDENTS, *KEY).get("status", {}).get("conditions", [])
    return next(c for c in conditions if c["type"] == "Ready")


class Operator:
    """The scheduler's path of the operator, running in the test's loop."""

    def __init__(self, kube: FakeKube) -> None:
        deps = Dependencies(settings=Settings(namespace="incidentops"), api="operator", clock=clock)  # type: ignore[arg-type]
        # No policy: nothing is sent, so no deliverer and no channel health are needed.
        self.reconciler = Reconciler(deps, None, PolicyMonitor(deps), RetryRules())  # type: ignore[arg-type]
        refusals = RefusalReporter(deps, self.reconciler.written)
        self.scheduler = Scheduler(self.reconciler.process, clock, on_refusal=refusals.show, draw=lambda: 0.0)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.scheduler.run(self.stop))

    def watch_event(self, body: dict[str, Any]) -> None:
        """What registry.py does with an Incident's watch event: a poke, unless it is our own write."""
        if not self.reconciler.is_own_write(KEY, body["metadata"]["resourceVersion"]):
            self.scheduler.poke(KEY)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube().install(monkeypatch)
    fake.add(
        INCIDENTS,
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "db", "namespace": "shop", "generation": 1},
            "spec": {"title": "the database is down", "severity": "P2"},
        },
    )
    return fake


@pytest.fixture
async def operator(kube: FakeKube) -> AsyncIterator[Operator]:
    op = Operator(kube)
    yield op
    op.stop.set()
    await op.task


@pytest.mark.looptime
async def test_a_forbidden_request_is_shown_on_the_incident_and_cleared_when_allowed(
    kube: FakeKube, operator: Operator
) -> None:
    message = (
        'escalationpolicies.incidentops.dev is forbidden: User "system:serviceaccount:ops:incidentops" cannot list'
    )
    kube.fail("list_objects", *(api_error(403, "Forbidden", message=message) for _ in range(3)))
    operator.scheduler.poke(KEY)
    await asyncio.sleep(1)
    condition = ready(kube)
    assert (condition["status"], condition["reason"]) == ("False", "APIForbidden")
    assert message in condition["message"] and "every 600s" in condition["message"]
    assert [(e.type, e.reason) for e in kube.events] == [("Warning", "APIForbidden")]
    operator.watch_event(kube.get(INCIDENTS, *KEY))  # of the refusal's own write: no look for it
    await asyncio.sleep(1)
    assert kube.calls.count("list_objects") == 1

    kube.edit_spec(INCIDENTS, *KEY, description="primary lost its disk")
    operator.watch_event(kube.get(INCIDENTS, *KEY))  # somebody changed it: looked at once, still forbidden
    await asyncio.sleep(1)
    assert kube.calls.count("list_objects") == 2
    assert len(kube.events) == 1, "the same refusal is announced once"

    await asyncio.sleep(600)  # the slow retry: still forbidden
    assert kube.calls.count("list_objects") == 3
    await asyncio.sleep(600)  # RBAC fixed meanwhile: the next look clears the reason
    condition = ready(kube)
    assert (condition["status"], condition["reason"]) == ("False", "NoEscalationPolicy")
    assert (kube.events[-1].type, kube.events[-1].reason) == ("Warning", "NoEscalationPolicy")


@pytest.mark.looptime
async def test_a_rejected_status_write_is_shown_when_the_reason_can_be_written(
    kube: FakeKube, operator: Operator
) -> None:
    kube.fail("write_status", api_error(422, "Unprocessable Entity", message="status.timeline: Too many: 201"))
    operator.scheduler.poke(KEY)
    await asyncio.sleep(1)
    condition = ready(kube)
    assert (condition["reason"], condition["status"]) == ("APIRejected", "False")
    assert "422 Unprocessable Entity: status.timeline: Too many: 201" in condition["message"]


@pytest.mark.looptime
async def test_an_api_server_outage_is_ridden_out_with_backoff_and_shows_nothing(
    kube: FakeKube, operator: Operator
) -> None:
    kube.fail("read", api_error(503, "Service Unavailable"), TimeoutError(), ConnectionRefusedError(111, "refused"))
    operator.scheduler.poke(KEY)
    await asyncio.sleep(30)
    assert kube.calls.count("read") == 4  # at 0, 1, 3 and 7 seconds
    condition = ready(kube)
    assert condition["reason"] == "NoEscalationPolicy", "a temporary failure is not the incident's to show"
    assert not [e for e in kube.events if e.reason.startswith("API")]


@pytest.mark.looptime
async def test_a_refusal_that_cannot_be_written_is_only_logged(
    kube: FakeKube, operator: Operator, caplog: pytest.LogCaptureFixture
) -> None:
    kube.fail("write_status", api_error(403, "Forbidden"), api_error(403, "Forbidden"))
    operator.scheduler.poke(KEY)
    await asyncio.sleep(1)
    assert "status" not in kube.get(INCIDENTS, *KEY)
    assert "the refusal cannot be shown on it either: 403 Forbidden" in caplog.text
    assert "Traceback" not in caplog.text
