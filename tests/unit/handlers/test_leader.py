"""Leader election against a fake of kube's Lease functions, in loop time (looptime).

The property under test is client-go's: a leader that cannot renew stops its
parts before a standby, waiting a whole lease duration of its own clock since
the last renewal it saw, may take over; so two replicas never lead at once,
however the API server fails (refusing, frozen, or cut off from one replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from incidentops import metrics
from incidentops.handlers import runtime
from incidentops.handlers.leader import ElectionSettings, Fence, LeadershipLost, LeaseElector
from tests.unit.kubefake import FakeKube, api_error

SETTINGS = {"namespace": "ops", "name": "leader", "lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}


def now() -> float:
    return asyncio.get_running_loop().time()


def leads(replica: Replica) -> bool:
    """What this replica's incidentops_leader says now."""
    return replica.reported[-1][1]


class RecordingFence(Fence):
    """A fence that records, in loop time, until when the parts may run, instead of ending the process."""

    def __init__(self) -> None:
        super().__init__(on_breach=lambda why: None)
        self.until: float | None = None
        self.breaches: list[float] = []

    def hold(self, seconds: float) -> None:
        self.until = now() + seconds

    def release(self) -> None:
        self.until = None

    def breach(self, why: str) -> None:
        self.breaches.append(now())


class Parts:
    """Leader parts that record when they ran; they stop when asked, or (stubborn) not even when cancelled."""

    def __init__(self, fence: RecordingFence, *, ignore_stop: bool = False, ignore_cancel: bool = False) -> None:
        self.fence = fence
        self.ignore_stop = ignore_stop
        self.ignore_cancel = ignore_cancel
        self.let_go = asyncio.Event()  # a stubborn part gives in once this is set
        self.started: float | None = None
        self.stopped: float | None = None
        self.cancelled = False
        self.outside_fence: list[float] = []  # moments the parts ran with no fence held over them

    async def __call__(self, stop: asyncio.Event) -> None:
        self.started = now()
        try:
            while self.ignore_stop or not stop.is_set():
                if self.fence.until is None or now() > self.fence.until:
                    self.outside_fence.append(now())
                if self.ignore_stop:
                    await asyncio.sleep(0.5)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.CancelledError:
            self.cancelled = True
            while self.ignore_cancel and not self.let_go.is_set():
                try:
                    await self.let_go.wait()
                except asyncio.CancelledError:
                    continue
            raise
        finally:
            self.stopped = now()


class Replica:
    def __init__(self, kube: FakeKube, identity: str, **parts: Any) -> None:
        self.fence = RecordingFence()
        self.parts = Parts(self.fence, **parts)
        self.reported: list[tuple[float, bool]] = []  # what this replica's incidentops_leader said, and when
        self.elector = LeaseElector(
            identity,  # type: ignore[arg-type]
            ElectionSettings(identity=identity, **SETTINGS),
            fence=self.fence,
            report=lambda leading: self.reported.append((now(), leading)),
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.kube = kube

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.elector.run(self.parts, self.stop))
        return self

    def last_renewal(self) -> float:
        """When the Lease was last written by this replica (loop time)."""
        return max(w.at for w in self.kube.lease_writes if w.client == self.elector.settings.identity)


async def until(what: str, check: Callable[[], object], within: float = 120) -> None:
    """Poll in loop time until ``check`` holds."""
    deadline = now() + within
    while not check():
        if now() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    return FakeKube().install(monkeypatch)


@pytest.mark.looptime
async def test_a_lone_candidate_creates_the_lease_leads_and_releases_it_on_stop(kube: FakeKube) -> None:
    a = Replica(kube, "a").start()
    await until("a leads", lambda: a.parts.started is not None)
    assert kube.leases[("ops", "leader")].holder == "a"
    assert kube.leases[("ops", "leader")].duration_seconds == 15
    await asyncio.sleep(60)
    assert len(kube.lease_writes) >= 60 // 2  # renewed every retry period
    a.stop.set()
    await a.task  # type: ignore[misc]
    assert a.parts.stopped is not None and not a.parts.cancelled
    assert kube.leases[("ops", "leader")].holder is None, "released on a clean stop"
    assert a.fence.until is None and not a.parts.outside_fence


@pytest.mark.looptime
async def test_a_standby_waits_while_the_leader_renews(kube: FakeKube) -> None:
    a = Replica(kube, "a").start()
    await until("a leads", lambda: a.parts.started is not None)
    b = Replica(kube, "b").start()
    await asyncio.sleep(120)
    assert b.parts.started is None
    a.stop.set()
    await a.task  # type: ignore[misc]
    await until("b leads after a released the Lease", lambda: b.parts.started is not None, within=10)
    b.stop.set()
    await b.task  # type: ignore[misc]


@pytest.mark.looptime
@pytest.mark.parametrize("cut_off", ["the leader only", "every replica"])
async def test_a_leader_that_cannot_renew_stops_before_a_standby_may_take_over(kube: FakeKube, cut_off: str) -> None:
    a = Replica(kube, "a").start()
    await until("a leads", lambda: a.parts.started is not None)
    b = Replica(kube, "b").start()
    await asyncio.sleep(7)
    kube.freeze("a" if cut_off == "the leader only" else FakeKube.ALL)  # its calls hang: no answer, ever
    with pytest.raises(LeadershipLost):
        await a.task  # type: ignore[misc]
    last = a.last_renewal()
    assert a.parts.stopped is not None and a.parts.stopped <= last + 10 + 0.1, "stopped at the renew deadline"
    assert not a.parts.outside_fence and not a.fence.breaches
    if cut_off == "every replica":
        await asyncio.sleep(30)
        assert b.parts.started is None
        thawed = now()
        kube.thaw()
        await until("b leads", lambda: b.parts.started is not None)
        assert b.parts.started >= thawed  # type: ignore[operator]
    else:
        await until("b leads", lambda: b.parts.started is not None)
    assert b.parts.started >= last + 15, "b waited a whole lease duration since the last renewal it saw"  # type: ignore[operator]
    assert b.parts.started > a.parts.stopped, "never two leaders"  # type: ignore[operator]
    b.stop.set()
    await b.task  # type: ignore[misc]


@pytest.mark.looptime
async def test_parts_that_do_not_stop_are_cancelled_before_the_lease_may_expire(kube: FakeKube) -> None:
    a = Replica(kube, "a", ignore_stop=True).start()
    await until("a leads", lambda: a.parts.started is not None)
    await asyncio.sleep(5)
    kube.freeze("a")
    with pytest.raises(LeadershipLost):
        await a.task  # type: ignore[misc]
    last = a.last_renewal()
    assert a.parts.cancelled
    assert last + 10 < a.parts.stopped < last + 15  # type: ignore[operator]
    assert not a.parts.outside_fence and not a.fence.breaches


@pytest.mark.looptime
async def test_parts_that_survive_cancellation_breach_the_fence_when_the_lease_may_expire(kube: FakeKube) -> None:
    a = Replica(kube, "a", ignore_stop=True, ignore_cancel=True).start()
    try:
        await until("a leads", lambda: a.parts.started is not None)
        kube.freeze("a")
        with pytest.raises(LeadershipLost):
            await a.task  # type: ignore[misc]
        last = a.last_renewal()
        assert len(a.fence.breaches) == 1 and a.fence.breaches[0] <= last + 15
    finally:
        a.parts.let_go.set()  # else it would outlive the test, swallowing its teardown too
    await until("the stubborn part ends", lambda: a.parts.stopped is not None)


@pytest.mark.looptime
async def test_refusals_within_the_renew_deadline_keep_the_lease(kube: FakeKube) -> None:
    a = Replica(kube, "a").start()
    await until("a leads", lambda: a.parts.started is not None)
    # Three failed attempts, 2s apart: the fourth, 8s after the last renewal, is within the 10s.
    kube.fail("replace_lease", *(api_error(500, "Internal Server Error") for _ in range(2)))
    kube.fail("read_lease", ConnectionResetError("reset by peer"))
    await asyncio.sleep(60)
    assert a.parts.stopped is None and a.elector.leading
    a.stop.set()
    await a.task  # type: ignore[misc]


@pytest.mark.looptime
async def test_a_bug_is_not_taken_for_a_failed_renewal(kube: FakeKube) -> None:
    a = Replica(kube, "a").start()
    await until("a leads", lambda: a.parts.started is not None)
    kube.fail("read_lease", KeyError("holderIdentity"))
    with pytest.raises(KeyError):
        await a.task  # type: ignore[misc]
    assert a.parts.stopped is not None and not a.parts.outside_fence


def test_the_fence_ends_the_process_only_when_held_past_its_time() -> None:
    breaches: list[float] = []
    breached = threading.Event()

    def on_breach(why: str) -> None:
        breaches.append(time.monotonic())
        breached.set()

    fence = Fence(on_breach=on_breach)
    fence.hold(5)
    fence.release()  # stopped in time: no breach
    held = time.monotonic()
    fence.hold(0.2)
    assert breached.wait(timeout=10), "the fence did not fire"
    assert len(breaches) == 1 and breaches[0] >= held + 0.2


@pytest.mark.looptime
async def test_the_leader_gauge_is_1_while_leading_and_0_on_a_standby_and_after_a_loss(kube: FakeKube) -> None:
    a = Replica(kube, "a")
    assert a.reported and not leads(a), "0 from the start"
    a.start()
    await until("a leads", lambda: a.parts.started is not None)
    assert leads(a)
    b = Replica(kube, "b").start()
    await asyncio.sleep(30)
    assert not leads(b), "a standby says 0"
    kube.freeze("a")
    with pytest.raises(LeadershipLost):
        await a.task  # type: ignore[misc]
    assert not leads(a)
    assert a.reported[-1][0] >= a.parts.stopped  # type: ignore[operator]
    assert a.reported[-1][0] <= a.last_renewal() + 15, "0 before the Lease may be taken over"
    await until("b leads", lambda: b.parts.started is not None)
    assert leads(b)
    assert [leading for _, leading in b.reported] == [False, True]
    b.stop.set()
    await b.task  # type: ignore[misc]
    assert [leading for _, leading in b.reported] == [False, True, False]


async def test_the_leader_gauge_is_the_metric_incidentops_exports(kube: FakeKube) -> None:
    stop = asyncio.Event()
    metrics.LEADER.set(1)  # left over from an earlier leader in this process: a new elector starts at 0
    elector = LeaseElector(object(), ElectionSettings(identity="a", **SETTINGS))  # type: ignore[arg-type]
    assert metrics.REGISTRY.get_sample_value("incidentops_leader") == 0
    seen: list[float | None] = []

    async def parts(leader_stop: asyncio.Event) -> None:
        seen.append(metrics.REGISTRY.get_sample_value("incidentops_leader"))
        stop.set()
        await leader_stop.wait()

    await elector.run(parts, stop)
    assert seen == [1]
    assert metrics.REGISTRY.get_sample_value("incidentops_leader") == 0


async def test_without_leader_election_the_process_reports_leading_while_its_parts_run() -> None:
    seen: list[float | None] = []

    async def parts(stop: asyncio.Event) -> None:
        seen.append(metrics.REGISTRY.get_sample_value("incidentops_leader"))
        raise RuntimeError("a part failed")

    metrics.LEADER.set(0)
    with pytest.raises(RuntimeError, match="a part failed"):
        await runtime._sole_leader(parts)(asyncio.Event())
    assert seen == [1]
    assert metrics.REGISTRY.get_sample_value("incidentops_leader") == 0, "0 once the parts stopped, failed or not"
