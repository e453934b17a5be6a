from __future__ import annotations

import json

import aiohttp
import pytest

from incidentops.notify.pagerduty import NOT_APPLICABLE, PagerDutyChannel, dedup_key, pagerduty_event

from .apischemas import check_pagerduty_event
from .conftest import EVENT_DETAILS, HttpPeer, Reply, fast_retry, make_incident, make_notification

ENQUEUE = "/v2/enqueue"
ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y00"  # 32 characters, like a real integration key
ACCEPTED = Reply(202, json.dumps({"status": "success", "message": "Event processed", "dedup_key": "x"}))


@pytest.fixture
def peer(http_peer: HttpPeer) -> HttpPeer:
    http_peer.validators[ENQUEUE] = check_pagerduty_event
    http_peer.script(ENQUEUE, default=ACCEPTED)
    return http_peer


def pd(peer: HttpPeer, session: aiohttp.ClientSession, **kwargs: object) -> PagerDutyChannel:
    return PagerDutyChannel(
        routing_key=ROUTING_KEY,
        url=peer.url(ENQUEUE),
        session=session,
        retry=fast_retry(),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("triggered", "trigger"),
        ("escalated", "trigger"),
        ("sla-breached", "trigger"),
        ("acknowledged", "acknowledge"),
        ("resolved", "resolve"),
    ],
)
async def test_events_map_to_actions(peer: HttpPeer, session: aiohttp.ClientSession, event: str, action: str) -> None:
    n = make_notification(event, details=EVENT_DETAILS[event])
    outcome = await pd(peer, session).send(n)
    assert outcome.delivered and outcome.status_code == 202, outcome.reason
    assert peer.errors == []
    (req,) = peer.on(ENQUEUE)
    body = req.json()
    assert body["event_action"] == action
    assert body["routing_key"] == ROUTING_KEY
    assert body["dedup_key"] == f"incidentops/{n.incident.uid}/1"
    if action == "trigger":
        payload = body["payload"]
        assert payload["severity"] == "critical"
        assert payload["source"] == "shop/checkout-5f3a9c"
        assert (payload["group"], payload["component"], payload["class"]) == ("shop", "checkout-5f3a9c", "availability")
        assert payload["custom_details"]["key"] == n.key
        assert payload["timestamp"] == n.at.isoformat()
        assert body["client_url"] == n.incident.url
    else:
        assert "payload" not in body


@pytest.mark.parametrize("event", ["update-due", "status-update", "postmortem-due"])
async def test_reminders_and_updates_are_not_sent(peer: HttpPeer, session: aiohttp.ClientSession, event: str) -> None:
    outcome = await pd(peer, session).send(make_notification(event))
    assert outcome.delivered and outcome.attempts == 0 and outcome.reason == NOT_APPLICABLE
    assert peer.requests == []


@pytest.mark.parametrize(
    ("severity", "expected"), [("P1", "critical"), ("P2", "error"), ("P3", "warning"), ("P4", "info")]
)
def test_severity_map(severity: str, expected: str) -> None:
    event = pagerduty_event(make_notification(incident=make_incident(severity=severity)), ROUTING_KEY)
    assert event is not None and event["payload"]["severity"] == expected
    assert check_pagerduty_event(event) == []


def test_dedup_key_is_stable_per_episode_and_bounded() -> None:
    inc = make_incident()
    assert dedup_key(inc) == dedup_key(make_incident(title="renamed", phase="Resolved"))
    assert dedup_key(inc) != dedup_key(make_incident(episode=2))
    long_key = dedup_key(make_incident(uid="u" * 400))
    assert len(long_key) <= 255 and long_key == dedup_key(make_incident(uid="u" * 400))
    keys = {pagerduty_event(make_notification(e), ROUTING_KEY)["dedup_key"] for e in ("triggered", "resolved")}  # type: ignore[index]
    assert keys == {dedup_key(inc)}


def test_summary_is_bounded() -> None:
    event = pagerduty_event(make_notification(incident=make_incident(title="x" * 5000, drill=True)), ROUTING_KEY)
    assert event is not None
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["summary"].startswith("[DRILL] [P1] ")
    assert check_pagerduty_event(event) == []


async def test_invalid_event_is_final(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    body = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Length of 'routing_key' is incorrect"],
    }
    peer.script(ENQUEUE, default=Reply(400, json.dumps(body)))
    outcome = await pd(peer, session).send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 1, 400)
    assert "Event object is invalid" in outcome.reason


async def test_rate_limit_is_retried(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    peer.script(ENQUEUE, Reply(429, "{}"), Reply(500, "{}"), default=ACCEPTED)
    outcome = await pd(peer, session).send(make_notification("acknowledged"))
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (True, 3, 202)
