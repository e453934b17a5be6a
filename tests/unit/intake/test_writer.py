"""intake.writer: create-or-update of a group's Incident, races, closed groups, coalescing."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.domain import alertgroups
from incidentops.intake.payload import WebhookPayload, parse
from incidentops.intake.writer import Coalescer, IncidentWriter, WriteError
from tests.unit.intake import fakekube
from tests.unit.intake.payloads import ZERO_TIME, alert, body, payload, starts_at_values

NOW = datetime.datetime(2025, 1, 31, 14, 5, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(seconds=30)


@pytest.fixture
def cluster() -> fakekube.FakeCluster:
    return fakekube.FakeCluster()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, cluster: fakekube.FakeCluster) -> Any:
    return fakekube.install(monkeypatch, cluster)


def writer(api: Any, **kwargs: Any) -> IncidentWriter:
    return IncidentWriter(api, operator_namespace="ops", **kwargs)


def p(value: dict[str, Any]) -> WebhookPayload:
    return parse(body(value))


FIRING = payload(
    [alert(severity="critical", namespace="shop", deployment="checkout", pod=f"checkout-{i}") for i in range(3)],
    common_annotations={"summary": "Checkout error rate above 5%", "description": "See the dashboard."},
)
RESOLVED = payload(
    [
        alert("resolved", severity="critical", namespace="shop", deployment="checkout", pod=f"checkout-{i}")
        for i in range(3)
    ]
)


async def test_first_post_creates_the_incident_with_spec_and_status(api: Any, cluster: fakekube.FakeCluster) -> None:
    outcome = await writer(api).submit(p(FIRING), NOW)
    assert outcome.created and outcome.written
    [incident] = cluster.incidents("ops")
    assert incident["metadata"]["name"] == outcome.name
    assert outcome.name == alertgroups.incident_name("incidentops", FIRING["groupKey"], FIRING["groupLabels"])
    assert incident["metadata"]["labels"][alertgroups.ALERT_GROUP_LABEL] == alertgroups.group_id(
        "incidentops", FIRING["groupKey"]
    )
    spec = incident["spec"]
    assert spec["title"] == "Checkout error rate above 5%"
    assert spec["description"] == "See the dashboard."
    assert spec["source"]["kind"] == "alertmanager"
    assert spec["source"]["groupKey"] == FIRING["groupKey"]
    assert spec["source"]["labels"]["severity"] == "critical"
    assert "severity" not in spec
    assert spec["targets"] == [{"kind": "Deployment", "name": "checkout", "namespace": "shop"}]
    alerts = incident["status"]["alerts"]
    assert alerts["firing"] == 3 and alerts["resolved"] == 0 and alerts["truncated"] == 0
    assert alerts["lastReceivedAt"] == "2025-01-31T14:05:00Z"
    assert incident["status"]["startedAt"] == "2025-01-31T14:00:00Z"


async def test_a_drill_group_creates_a_drill_incident_and_a_real_one_does_not(
    api: Any, cluster: fakekube.FakeCluster
) -> None:
    drill = payload(
        [alert(severity="critical", pod=f"p{i}", **{alertgroups.DRILL_LABEL: "true"}) for i in range(2)],
        group_labels={"alertname": "HighErrorRate", alertgroups.DRILL_LABEL: "true"},
    )
    await writer(api).submit(p(drill), NOW)
    await writer(api).submit(p(FIRING), NOW)
    by_drill = {i["metadata"]["name"]: i["spec"].get("drill") for i in cluster.incidents("ops")}
    assert sorted(by_drill.values(), key=str) == [None, True], by_drill


@pytest.mark.parametrize(
    "starts_at", [ZERO_TIME, "0001-01-01T00:00:00+01:00", "2025-01-31T15:00:00Z", "9999-12-31T23:59:59-23:59"]
)
async def test_an_unset_or_future_start_is_the_receipt(api: Any, cluster: fakekube.FakeCluster, starts_at: str) -> None:
    await writer(api).submit(p(payload([alert(starts_at=starts_at, pod=f"p{i}") for i in range(3)])), NOW)
    [incident] = cluster.incidents()
    assert incident["status"]["startedAt"] == "2025-01-31T14:05:00Z"


RECEIPTS = st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1), timezones=st.just(datetime.UTC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(starts=st.lists(starts_at_values, min_size=1, max_size=5), received=RECEIPTS)
async def test_the_start_written_is_never_year_1_nor_after_the_receipt(
    starts: list[str], received: datetime.datetime
) -> None:
    cluster = fakekube.FakeCluster()
    with pytest.MonkeyPatch.context() as mp:
        api = fakekube.install(mp, cluster)
        raw = body(payload([alert(starts_at=s, pod=f"p{i}") for i, s in enumerate(starts)]))
        await writer(api).submit(parse(raw), received)
    [incident] = cluster.incidents()
    started = datetime.datetime.fromisoformat(incident["status"]["startedAt"])
    assert datetime.datetime(2, 1, 1, tzinfo=datetime.UTC) <= started <= received


async def test_later_posts_update_status_only(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    first = await w.submit(p(FIRING), NOW)
    name = first.name
    cluster.set_status("ops", name, phase="Triggered", conditions=[{"type": "Ready"}])  # the operator's fields
    spec_before = cluster.objects[("ops", name)]["spec"]
    outcome = await w.submit(p(RESOLVED), LATER)
    assert outcome.name == name and not outcome.created and outcome.written
    [incident] = cluster.incidents()
    assert incident["spec"] == spec_before, "spec is written once, at creation"
    assert incident["status"]["alerts"]["firing"] == 0
    assert incident["status"]["alerts"]["resolved"] == 3
    assert incident["status"]["phase"] == "Triggered" and incident["status"]["conditions"] == [{"type": "Ready"}]


async def test_a_known_group_costs_a_get_not_a_list(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    await w.submit(p(FIRING), NOW)
    cluster.calls.clear()
    await w.submit(p(FIRING), LATER)
    assert cluster.calls == ["get", "replace_status"]


async def test_an_identical_resend_writes_nothing(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    await w.submit(p(FIRING), NOW)
    cluster.calls.clear()
    outcome = await w.submit(p(FIRING), NOW)
    assert not outcome.written and not outcome.created
    assert "replace_status" not in cluster.calls and "create" not in cluster.calls


async def test_a_resolved_group_without_an_incident_creates_nothing(api: Any, cluster: fakekube.FakeCluster) -> None:
    outcome = await writer(api).submit(p(RESOLVED), NOW)
    assert outcome.name is None and not outcome.written
    assert "no incident" in outcome.note
    assert cluster.incidents() == []


async def test_a_closed_incident_gets_a_successor_when_the_group_fires_again(
    api: Any, cluster: fakekube.FakeCluster
) -> None:
    w = writer(api)
    first = await w.submit(p(FIRING), NOW)
    cluster.set_status("ops", first.name, phase="Closed")
    # A resolved re-send for a closed incident changes nothing.
    quiet = await w.submit(p(RESOLVED), LATER)
    assert quiet.name is None and "closed" in quiet.note
    again = await w.submit(p(FIRING), LATER)
    assert again.created and again.name == f"{first.name}-2"
    assert len(cluster.incidents()) == 2
    assert cluster.objects[("ops", first.name)]["status"]["phase"] == "Closed", "the closed one is left alone"
    successor = cluster.objects[("ops", again.name)]
    assert successor["metadata"]["labels"][alertgroups.ALERT_GROUP_SEQUENCE_LABEL] == "2"
    # A fresh replica (no cache) finds the successor, not the closed one.
    other = await writer(api).submit(p(FIRING), LATER + datetime.timedelta(seconds=1))
    assert other.name == again.name and not other.created


async def test_an_incident_closed_between_read_and_write_gets_a_successor(
    api: Any, cluster: fakekube.FakeCluster
) -> None:
    w = writer(api)
    first = await w.submit(p(FIRING), NOW)
    cluster.hook = lambda ns, name: cluster.set_status(ns, name, phase="Closed")
    outcome = await w.submit(p(FIRING), LATER)
    assert outcome.created and outcome.name == f"{first.name}-2"


async def test_a_deleted_incident_is_created_again(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    first = await w.submit(p(FIRING), NOW)
    del cluster.objects[("ops", first.name)]
    outcome = await w.submit(p(FIRING), LATER)
    assert outcome.created and outcome.name == first.name


async def test_replicas_racing_on_one_group_make_one_incident(api: Any, cluster: fakekube.FakeCluster) -> None:
    replicas = [writer(api) for _ in range(5)]
    outcomes = await asyncio.gather(*(r.submit(p(FIRING), NOW) for r in replicas))
    assert len(cluster.incidents()) == 1
    assert len({o.name for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1
    assert cluster.incidents()[0]["status"]["alerts"]["firing"] == 3


async def test_a_status_conflict_is_recomputed_from_a_fresh_read(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    first = await w.submit(p(FIRING), NOW)
    # The operator writes its own status between our read and our write.
    cluster.hook = lambda ns, name: cluster.set_status(ns, name, phase="Acknowledged")
    await w.submit(p(RESOLVED), LATER)
    status = cluster.objects[("ops", first.name)]["status"]
    assert status["phase"] == "Acknowledged", "the other writer's change survives"
    assert status["alerts"]["resolved"] == 3, "and so does ours"


async def test_namespace_from_the_group_label_when_allowed(api: Any, cluster: fakekube.FakeCluster) -> None:
    grouped = payload([alert(namespace="shop")], group_labels={"alertname": "HighErrorRate", "namespace": "shop"})
    outcome = await writer(api, allow_alert_namespace=True).submit(p(grouped), NOW)
    assert outcome.namespace == "shop" and cluster.incidents("shop")
    elsewhere = payload([alert(namespace="gone")], group_labels={"alertname": "X", "namespace": "gone"})
    fallback = await writer(api, allow_alert_namespace=True).submit(p(elsewhere), NOW)
    assert fallback.namespace == "ops" and fallback.created, "a missing namespace falls back to the operator's"
    not_allowed = await writer(api).submit(p(payload([alert()], group_labels={"namespace": "shop"})), NOW)
    assert not_allowed.namespace == "ops"


async def test_pods_become_their_deployments(api: Any, cluster: fakekube.FakeCluster) -> None:
    fakekube.add_deployment_pod(cluster, "shop", "cart", "cart-7d9f-x2")
    alerts = [alert(namespace="shop", pod="cart-7d9f-x2"), alert(namespace="shop", pod="orphan-1")]
    outcome = await writer(api).submit(p(payload(alerts)), NOW)
    targets = cluster.objects[("ops", outcome.name)]["spec"]["targets"]
    assert targets == [
        {"kind": "Deployment", "name": "cart", "namespace": "shop"},
        {"kind": "Pod", "name": "orphan-1", "namespace": "shop"},
    ]


async def test_api_failures_raise_write_error(api: Any, cluster: fakekube.FakeCluster) -> None:
    cluster.fail_with = 403
    with pytest.raises(WriteError, match="403"):
        await writer(api).submit(p(FIRING), NOW)
    assert cluster.calls == ["list"], "a lasting error is not retried"
    cluster.fail_with = None
    assert (await writer(api).submit(p(FIRING), NOW)).created, "Alertmanager's retry after the failure succeeds"


async def test_transient_api_errors_are_retried_briefly(api: Any, cluster: fakekube.FakeCluster) -> None:
    cluster.fail_with, cluster.fail_times = 429, 2
    outcome = await writer(api).submit(p(FIRING), NOW)
    assert outcome.created
    assert cluster.calls[:3] == ["list", "list", "list"]


async def test_an_api_server_that_stays_down_is_a_write_error(api: Any, cluster: fakekube.FakeCluster) -> None:
    cluster.fail_with = 503
    with pytest.raises(WriteError, match="503"):
        await writer(api).submit(p(FIRING), NOW)
    assert len(cluster.calls) == 4


async def test_a_slow_api_server_is_a_write_error(api: Any, cluster: fakekube.FakeCluster) -> None:
    cluster.fail_with = 503
    with pytest.raises(WriteError, match="did not answer within"):
        await writer(api, timeout=0.1).submit(p(FIRING), NOW)


async def test_a_foreign_object_with_the_name_is_not_taken_over(api: Any, cluster: fakekube.FakeCluster) -> None:
    name = alertgroups.incident_name("incidentops", FIRING["groupKey"], FIRING["groupLabels"])
    cluster.objects[("ops", name)] = {"metadata": {"name": name, "resourceVersion": "1"}, "spec": {"title": "manual"}}
    with pytest.raises(WriteError, match="does not belong"):
        await writer(api).submit(p(FIRING), NOW)


# --- the coalescer ---------------------------------------------------------------------------------


async def test_one_write_in_flight_per_group_and_the_latest_snapshot_wins() -> None:
    written: list[int] = []
    in_flight = 0
    gate = asyncio.Event()

    async def write(snapshot: int) -> int:
        nonlocal in_flight
        in_flight += 1
        assert in_flight == 1
        await gate.wait()
        written.append(snapshot)
        in_flight -= 1
        return snapshot

    c: Coalescer[str, int, int] = Coalescer(write)
    first = asyncio.create_task(c.submit("g", 0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(c.submit("g", i)) for i in range(1, 50)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *waiting)
    assert written == [0, 49], "the first, then only the latest of those that waited"
    assert results == [0] + [49] * 49, "every POST is answered by a write at least as new as its own"
    assert c.writes == 2 and c.coalesced == 48 and c.busy_keys == 0


async def test_groups_are_written_in_parallel() -> None:
    started: set[str] = set()
    all_started = asyncio.Event()

    async def write(snapshot: str) -> str:
        started.add(snapshot)
        if len(started) == 3:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), 1)
        return snapshot

    c: Coalescer[str, str, str] = Coalescer(write)
    assert await asyncio.gather(*(c.submit(k, k) for k in "abc")) == ["a", "b", "c"]


async def test_a_failed_write_fails_every_waiter_and_the_next_post_writes_again() -> None:
    calls = 0

    started = asyncio.Event()
    gate = asyncio.Event()

    async def write(snapshot: int) -> int:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        if calls == 1:
            raise WriteError("API server down")
        return snapshot

    c: Coalescer[str, int, int] = Coalescer(write)
    first = asyncio.create_task(c.submit("g", 1))
    await started.wait()
    waiting = [asyncio.create_task(c.submit("g", i)) for i in (2, 3)]
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(WriteError):
        await first
    assert await asyncio.gather(*waiting) == [3, 3], "those that waited are written next, not failed with it"
    assert await c.submit("g", 4) == 4


async def test_a_post_that_goes_away_does_not_cancel_the_write() -> None:
    gate = asyncio.Event()
    written: list[int] = []

    async def write(snapshot: int) -> int:
        await gate.wait()
        written.append(snapshot)
        return snapshot

    c: Coalescer[str, int, int] = Coalescer(write)
    leaving = asyncio.create_task(c.submit("g", 1))
    await asyncio.sleep(0)
    leaving.cancel()
    staying = asyncio.create_task(c.submit("g", 2))
    await asyncio.sleep(0)
    gate.set()
    assert await staying == 2
    assert written == [1, 2]


async def test_coalescing_with_the_real_writer(api: Any, cluster: fakekube.FakeCluster) -> None:
    w = writer(api)
    snapshots = [payload([alert(pod=f"p{j}") for j in range(i + 1)]) for i in range(20)]
    outcomes = await asyncio.gather(
        *(w.submit(p(s), NOW + datetime.timedelta(seconds=i)) for i, s in enumerate(snapshots))
    )
    [incident] = cluster.incidents()
    assert incident["status"]["alerts"]["firing"] == 20, "the latest snapshot won"
    assert all(o.name == incident["metadata"]["name"] for o in outcomes)
    assert w.coalescer.writes < 20
    assert w.api_writes <= 3, "a create and at most two status writes for twenty POSTs"
