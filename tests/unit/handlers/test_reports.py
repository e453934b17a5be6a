"""The monthly report's handler (handlers/reports.py) over the fake kube seam, with a real local HTTP peer:
recorded before it is sent, sent once per key, retried under the same key, sent again under the same key
after a crash between the send and its record, and never again once recorded Sent."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from incidentops import kube
from incidentops.domain import monthly
from incidentops.handlers.reports import MonthlyReports
from incidentops.kube import INCIDENTS, POLICIES
from tests.unit.kubefake import api_error
from tests.unit.notify.conftest import Reply

from .conftest import NS, RULES, Harness

pytestmark = pytest.mark.looptime

# The harness's clock starts at 2026-01-01 00:00 UTC: January's due time, December's report.
FEBRUARY = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)


def setup(harness: Harness) -> MonthlyReports:
    channels = [{"name": "hook", "webhook": {"url": harness.peer.url("/hook")}}]
    harness.kube.add(
        POLICIES,
        {
            "apiVersion": "incidentops.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "paging", "namespace": NS, "creationTimestamp": "2025-11-20T00:00:00Z"},
            "spec": {"channels": channels, "reports": {"monthly": {"notify": ["hook"]}}},
        },
    )
    for name, severity, day in (("a", "P1", 3), ("b", "P2", 30), ("old", "P2", 1)):
        month = 12 if name != "old" else 11
        created = f"2025-{month:02d}-{day:02d}T10:00:00Z"
        harness.kube.add(
            INCIDENTS,
            {
                "apiVersion": "incidentops.dev/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
                "spec": {"title": name, "severity": severity},
                "status": {
                    "severity": severity,
                    "episode": 1,
                    "episodeStartedAt": created,
                    "escalationPolicy": f"{NS}/paging",
                },
            },
        )
    return MonthlyReports(harness.deps, harness.queue.deliverer, harness.queue.lanes, RULES, harness.monitor)


def record(harness: Harness) -> dict[str, Any]:
    result: dict[str, Any] = harness.kube.get(POLICIES, NS, "paging")["status"]["reports"]["monthly"]
    return result


async def test_the_due_report_is_sent_once_and_recorded(harness: Harness) -> None:
    reports = setup(harness)
    assert await reports.process((NS, "paging")) == FEBRUARY
    (req,) = harness.peer.on("/hook")
    body = req.json()
    assert (body["event"], body["period"], body["policy"]) == ("report", "2025-12", f"{NS}/paging")
    assert body["report"]["totals"]["incidents"] == 2 and body["report"]["totals"]["trend"]["previous"] == 1
    assert body["message"].startswith("# Monthly Incident Report - December 2025\n")
    assert req.headers["Idempotency-Key"] == monthly.key("uid-paging", "2025-12", "hook")
    r = record(harness)
    assert (r["period"], r["state"], r["lastSent"]) == ("2025-12", "Sent", "2025-12")
    assert r["channels"][0]["outcome"] == "Sent" and r["channels"][0]["attempts"] == 1
    assert await reports.process((NS, "paging")) == FEBRUARY
    assert len(harness.peer.on("/hook")) == 1  # recorded Sent: never again


async def test_a_transient_failure_is_retried_under_the_same_key_at_its_time(harness: Harness) -> None:
    reports = setup(harness)
    harness.peer.script("/hook", Reply(status=503))
    retry_at = await reports.process((NS, "paging"))
    assert retry_at is not None and retry_at < FEBRUARY
    r = record(harness)
    assert (r["state"], r["channels"][0]["outcome"], r["channels"][0]["attempts"]) == ("Sending", "Pending", 1)
    assert await reports.process((NS, "paging")) == FEBRUARY
    first, second = harness.peer.on("/hook")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert record(harness)["channels"][0]["attempts"] == 2 and record(harness)["lastSent"] == "2025-12"


async def test_a_crash_between_the_send_and_its_record_sends_again_under_the_same_key(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = setup(harness)
    original = harness.kube.write_status
    writes = 0

    async def crash_on_the_second_write(*args: Any, **kwargs: Any) -> Any:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise api_error(503, "ServiceUnavailable")  # as if the process died before recording
        return await original(*args, **kwargs)

    monkeypatch.setattr(kube, "write_status", crash_on_the_second_write)
    with pytest.raises(kube.ApiError):
        await reports.process((NS, "paging"))
    assert record(harness)["state"] == "Sending"  # recorded before it was sent
    restarted = MonthlyReports(harness.deps, harness.queue.deliverer, harness.queue.lanes, RULES, harness.monitor)
    assert await restarted.process((NS, "paging")) == FEBRUARY
    first, second = harness.peer.on("/hook")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert record(harness)["lastSent"] == "2025-12"


async def test_seen_queues_the_policy_at_its_next_report_and_a_status_write_does_not_bring_it_forward(
    harness: Harness,
) -> None:
    reports = setup(harness)
    body = harness.kube.get(POLICIES, NS, "paging")
    reports.seen(body)
    assert reports.scheduler.scheduled((NS, "paging")) is not None  # due now: December's report
    await reports.process((NS, "paging"))
    reports.scheduler.forget((NS, "paging"))
    reports.seen(harness.kube.get(POLICIES, NS, "paging"))  # only its status changed: not queued again
    assert reports.scheduler.scheduled((NS, "paging")) is None
    harness.kube.edit_spec(POLICIES, NS, "paging", priority=1)
    reports.seen(harness.kube.get(POLICIES, NS, "paging"))
    assert reports.scheduler.scheduled((NS, "paging")) == FEBRUARY
