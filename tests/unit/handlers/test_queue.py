"""The delivery queue: deliveries apart from the look, isolated, retried under one key until delivered,
moot or too old; deduplicated by key; paced per destination; honest in status, Events and metrics.

Real channels over real local HTTP; the kube seam is faked (``tests/unit/kubefake.py``); time is looptime's.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from incidentops import metrics
from incidentops.api import reasons
from incidentops.api.incident import NotificationOutcome
from incidentops.domain.delivery import RetryRules
from incidentops.handlers.queue import QUICK
from incidentops.kube import INCIDENTS, POLICIES
from tests.unit.notify.conftest import Reply

from .conftest import NS, Harness, now, until

pytestmark = pytest.mark.looptime

ON_CALL = {"name": "on-call", "after": "0s", "notify": ["hook"]}


def counted(channel_type: str, event: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "incidentops_notifications_total", {"channel_type": channel_type, "event": event, "outcome": outcome}
    )
    return value or 0.0


async def test_a_dead_channel_does_not_hold_the_incident(harness: Harness) -> None:
    harness.peer.script("/hook", default=Reply(hang=True))  # accepts, never answers
    harness.policy([ON_CALL])
    harness.declare("down")

    took = await harness.look("down")
    assert took <= QUICK + 0.01, "the look waits for a quick answer, never for a dead channel"
    assert harness.incident("down").status.phase == "Triggered"
    assert harness.records("down") == [], "not answered yet: nothing to record"

    harness.ack("down")
    took = await harness.look("down")
    assert took < 0.1, "nothing new to send: the state is written at once"
    assert harness.incident("down").status.phase == "Acknowledged"
    assert len(harness.queue) == 1, "the page is still being attempted, apart from the incident"

    # The attempt times out (10 s); the acknowledgement made the page moot: Skipped, not retried.
    (record,) = await until("the page recorded", lambda: harness.records("down"))
    assert (record.outcome, record.message) == (NotificationOutcome.SKIPPED, "moot: the incident was acknowledged")
    assert now() == pytest.approx(10, abs=0.5)
    assert record.key not in harness.notified("down"), "nothing was sent: the channel was not reached"
    await asyncio.sleep(300)
    assert len(harness.peer.on("/hook")) == 1


async def test_503_then_200_is_delivered_once_under_its_key(harness: Harness) -> None:
    harness.peer.script("/hook", Reply(503, "try again"), Reply(503, "try again"), Reply(200))
    harness.policy([ON_CALL])
    harness.declare("flaky")
    before = counted("webhook", "triggered", "Pending")

    await harness.look("flaky")
    (pending,) = harness.records("flaky")
    assert (pending.outcome, pending.attempts, pending.message) == ("Pending", 1, "HTTP 503: try again")
    assert pending.key not in harness.notified("flaky"), "a pending key is not used up"
    assert len(harness.kube.writes) == 1, "a quick answer goes into the look's own write"

    (sent,) = await until("delivered", lambda: [r for r in harness.records("flaky") if r.outcome == "Sent"])
    assert sent.attempts == 3 and sent.key in harness.notified("flaky")
    assert now() == pytest.approx(1 + 2, abs=0.2), "backoff 1 s, then 2 s"
    keys = {r.headers["Idempotency-Key"] for r in harness.peer.on("/hook")}
    assert keys == {sent.key} and len(harness.peer.on("/hook")) == 3
    (event,) = harness.kube.events_of("flaky", reasons.NOTIFICATION_FAILED)
    assert event.type == "Warning" and "retrying" in event.message, "announced once, not per retry"
    kinds = [e.kind for e in harness.incident("flaky").status.timeline]
    assert kinds.count(reasons.NOTIFICATION_FAILED) == 1 and kinds[-1] == reasons.NOTIFICATION_SENT
    assert counted("webhook", "triggered", "Pending") - before == 2


async def test_a_refusal_fails_at_once_and_escalation_goes_on(harness: Harness) -> None:
    harness.peer.script("/hook", default=Reply(400, "no such hook"))
    harness.policy([ON_CALL, {"name": "lead", "after": "30s", "notify": ["other"]}])
    harness.declare("refused")

    await harness.look("refused")
    (record,) = harness.records("refused")
    assert (record.outcome, record.attempts) == ("Failed", 1)
    assert record.message == "HTTP 400: no such hook (not retried)"
    assert record.key in harness.notified("refused")
    assert len(harness.kube.events_of("refused", reasons.NOTIFICATION_FAILED)) == 1
    await asyncio.sleep(30)
    await harness.look("refused")
    assert [r.outcome for r in harness.records("refused", "other")] == ["Sent"]
    assert len(harness.peer.on("/hook")) == 1, "never retried"


async def test_a_key_in_flight_or_waiting_is_not_started_again(harness: Harness) -> None:
    harness.peer.script("/hook", default=Reply(503))
    harness.policy([ON_CALL])
    harness.declare("busy")
    await harness.look("busy")
    for _ in range(5):
        await harness.look("busy")
        await asyncio.sleep(0.1)
    assert len(harness.queue) == 1
    assert len(harness.peer.on("/hook")) == 1, "later looks start nothing: the first attempt waits for its retry"
    await asyncio.sleep(1.05)
    assert len(harness.peer.on("/hook")) == 2


async def test_it_gives_up_after_the_maximum_age(harness: Harness, rules: RetryRules) -> None:
    harness.peer.script("/hook", default=Reply(503, "down"))
    harness.policy([ON_CALL])
    harness.declare("old")
    await harness.look("old")
    (record,) = await until(
        "given up", lambda: [r for r in harness.records("old") if r.outcome == "Failed"], within=4000, step=1
    )
    assert now() == pytest.approx(3600, abs=1)
    assert record.message.startswith("HTTP 503: down (gave up after") and record.message.endswith("in 1h)")
    # 1, 2, 4, ..., 32, then every 60 s up to the hour; the last one at the deadline.
    assert record.attempts == len(harness.peer.on("/hook")) == 7 + (3600 - 63) // 60 + 1
    assert record.key in harness.notified("old")
    assert len(harness.kube.events_of("old", reasons.NOTIFICATION_FAILED)) == 1
    assert len(harness.queue) == 0


async def test_a_secret_created_late_still_gets_the_page_out(harness: Harness) -> None:
    harness.policy([{"name": "on-call", "after": "0s", "notify": ["chat"]}])
    harness.declare("early")
    await harness.look("early")
    (record,) = harness.records("early")
    assert record.outcome == "Pending" and "'channels'" in record.message and "not found" in record.message

    ready = await until(
        "the policy shows why",
        lambda: next(
            (c for c in harness.kube.get(POLICIES, NS, "paging").get("status", {}).get("conditions", [])),
            None,
        ),
    )
    assert (ready["status"], ready["reason"]) == ("False", reasons.SECRET_NOT_FOUND)

    await asyncio.sleep(20)
    harness.secret()
    (sent,) = await until("delivered", lambda: [r for r in harness.records("early") if r.outcome == "Sent"])
    assert sent.key == record.key and len(harness.peer.on("/slack/T000/B000/SLACKSECRETPATH0123")) == 1


async def test_an_unlabelled_secret_is_retried_until_labelled(harness: Harness) -> None:
    harness.secret(labelled=False)
    harness.policy([{"name": "on-call", "after": "0s", "notify": ["chat"]}])
    harness.declare("unlabelled")
    await harness.look("unlabelled")
    (record,) = harness.records("unlabelled")
    assert record.outcome == "Pending" and "lacks the label" in record.message
    await asyncio.sleep(10)
    harness.secret(labelled=True)
    await until("delivered", lambda: [r for r in harness.records("unlabelled") if r.outcome == "Sent"])


async def test_one_failing_channel_fails_alone(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    harness.secret()
    harness.peer.script("/other", default=Reply(500, "broken"))
    harness.policy([{"name": "on-call", "after": "0s", "notify": ["hook", "other", "chat", "pager"]}])
    real = harness.reconciler.queue.deliverer.channel

    async def channel(incident, policy, due):  # type: ignore[no-untyped-def]
        if due.channel == "chat":
            raise RuntimeError("a bug in one channel")
        return await real(incident, policy, due)

    monkeypatch.setattr(harness.reconciler.queue.deliverer, "channel", channel)
    harness.peer.script("/v2/enqueue", default=Reply(202, '{"status":"success"}'))
    harness.declare("mixed")
    await harness.look("mixed")
    outcomes = {r.channel: r.outcome for r in harness.records("mixed")}
    assert outcomes == {"hook": "Sent", "other": "Pending", "pager": "Sent"}, "every result recorded but the bug's"
    assert harness.incident("mixed").status.phase == "Triggered"
    assert len(harness.queue) == 2, "the broken one is tried again later, not lost"


async def test_slack_is_paced_and_429_pauses_the_destination(harness: Harness) -> None:
    harness.secret()
    slack = "/slack/T000/B000/SLACKSECRETPATH0123"
    harness.peer.script(slack, Reply(429, "rate_limited", headers={"Retry-After": "5"}))
    arrivals: list[float] = []
    harness.peer.validators[slack] = lambda _: arrivals.append(now()) or []
    harness.policy([{"name": "on-call", "after": "0s", "notify": ["chat"]}])
    for i in range(4):
        harness.declare(f"storm-{i}")
    await asyncio.gather(*(harness.look(f"storm-{i}") for i in range(4)))
    await until(
        "all four delivered",
        lambda: (
            all(r.outcome == "Sent" for i in range(4) for r in harness.records(f"storm-{i}"))
            and all(harness.records(f"storm-{i}") for i in range(4))
        ),
    )
    received = [r for r in harness.peer.on(slack)]
    assert len(received) == 5, "the 429 was refused once; nothing else was dropped or sent twice"
    keys = [r.json()["blocks"][-1]["elements"][-1]["text"] for r in received]
    assert len(set(keys)) == 4
    # One a second; the 429 at 0 s held the webhook (every notification to it) for its 5 s.
    assert arrivals[0] == pytest.approx(0, abs=0.1)
    assert [round(t - arrivals[1], 1) for t in arrivals[1:]] == [0, 1, 2, 3]
    assert arrivals[1] == pytest.approx(5, abs=0.1)


async def test_a_pagerduty_storm_keeps_to_120_a_minute(harness: Harness) -> None:
    harness.secret()
    harness.peer.script("/v2/enqueue", default=Reply(202, '{"status":"success"}'))
    harness.policy([{"name": "on-call", "after": "0s", "notify": ["pager"]}])
    n = 130
    for i in range(n):
        harness.declare(f"p1-{i:03}")
    sent_at: dict[str, float] = {}

    async def watch() -> None:
        while len(sent_at) < n:
            for i in range(n):
                name = f"p1-{i:03}"
                if name not in sent_at and any(r.outcome == "Sent" for r in harness.records(name)):
                    sent_at[name] = now()
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(harness.look(f"p1-{i:03}") for i in range(n)))
    await asyncio.wait_for(watcher, 600)
    times = sorted(sent_at.values())
    assert len(harness.peer.on("/v2/enqueue")) == n, "every page once"
    assert times[119] < 5 and times[120] >= 60, "120 in the first minute, the rest when the window opens"
    assert times[-1] < 70


async def test_a_restarted_operator_sends_a_pending_key_again_under_the_same_key(
    harness: Harness, rules: RetryRules
) -> None:
    harness.peer.script("/hook", Reply(503), Reply(503))
    harness.policy([ON_CALL])
    harness.declare("crash")
    await harness.look("crash")
    (pending,) = harness.records("crash")
    assert pending.attempts == 1

    # A new process: nothing in memory but what status says.
    from incidentops.handlers.reconciler import Reconciler

    fresh = Reconciler(harness.deps, harness.reconciler.queue.deliverer, harness.monitor, rules)
    stop = asyncio.Event()
    runner = asyncio.create_task(fresh.queue.run(stop))
    try:
        await fresh.process((NS, "crash"))
        (again,) = harness.records("crash")
        assert (again.outcome, again.attempts) == ("Pending", 2), "the count goes on from status"
        await until("delivered", lambda: harness.records("crash")[0].outcome == "Sent")
    finally:
        stop.set()
        await runner
    keys = {r.headers["Idempotency-Key"] for r in harness.peer.on("/hook")}
    assert keys == {pending.key}
    assert len(harness.kube.events_of("crash", reasons.NOTIFICATION_FAILED)) == 1


async def test_a_deleted_incident_drops_its_deliveries(harness: Harness) -> None:
    harness.peer.script("/hook", default=Reply(503))
    harness.policy([ON_CALL])
    harness.declare("gone")
    await harness.look("gone")
    harness.kube.delete(INCIDENTS, NS, "gone")
    await until("dropped", lambda: len(harness.queue) == 0, within=5)
    assert len(harness.peer.on("/hook")) == 1


async def test_a_channel_that_keeps_failing_turns_its_policy_not_ready_until_it_delivers(harness: Harness) -> None:
    harness.secret()
    harness.peer.script("/hook", *[Reply(503, "down")] * 4, default=Reply(200))
    harness.policy([ON_CALL])
    harness.declare("health")
    await harness.look("health")

    def ready() -> dict[str, str]:
        status = harness.kube.get(POLICIES, NS, "paging").get("status", {})
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})

    failing = await until("Ready=False", lambda: ready().get("reason") == reasons.NOTIFICATIONS_FAILING and ready())
    assert failing["status"] == "False"
    assert failing["message"].startswith("channel hook failing since ")
    assert failing["message"].endswith("HTTP 503: down")
    channels = harness.kube.get(POLICIES, NS, "paging")["status"]["channels"]
    assert [(c["name"], c["state"]) for c in channels] == [("hook", "Failing")]
    writes = harness.kube.writes.count(("escalationpolicies", NS, "paging"))

    healthy = await until("Ready=True", lambda: ready().get("status") == "True" and ready())
    assert healthy["reason"] == reasons.CHANNELS_READY
    channels = harness.kube.get(POLICIES, NS, "paging")["status"]["channels"]
    assert [(c["name"], c["state"]) for c in channels] == [("hook", "Healthy")]
    assert harness.kube.writes.count(("escalationpolicies", NS, "paging")) == writes + 1, "one write per change"
    events = [e.reason for e in harness.kube.events_of("paging")]
    assert events[-2:] == [reasons.NOTIFICATIONS_FAILING, reasons.CHANNELS_READY]
    assert (await until("sent", lambda: harness.records("health")))[0].outcome == "Sent"


def test_the_quick_window_leaves_the_state_within_a_second() -> None:
    assert QUICK <= 0.5
    assert datetime.timedelta(seconds=QUICK) < datetime.timedelta(seconds=1)


async def test_the_first_page_of_a_classified_incident_carries_the_severity_it_was_paged_for(
    harness: Harness,
) -> None:
    """An incident without a severity is classified in the look that sends its first page: the message
    says the severity the look decided (and pages for), not the unset one it read."""
    harness.policy([ON_CALL], classification={"defaultSeverity": "P1"})
    harness.declare("unclassified", severity=None)
    await harness.look("unclassified")
    (page,) = await until("the first page", lambda: harness.peer.on("/hook"))
    assert harness.incident("unclassified").status.severity == "P1"
    sent = page.json()["incident"]
    assert (sent["severity"], sent["phase"]) == ("P1", "Triggered"), sent
