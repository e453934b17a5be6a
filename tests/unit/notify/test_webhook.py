from __future__ import annotations

import itertools
import json

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops.notify.base import EVENTS
from incidentops.notify.templates import render
from incidentops.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel, sign, verify_signature

from .apischemas import check_webhook_payload
from .conftest import EVENT_DETAILS, HttpPeer, Reply, fast_retry, make_incident, make_notification

HOOK = "/incidents"
SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def peer(http_peer: HttpPeer) -> HttpPeer:
    http_peer.validators[HOOK] = check_webhook_payload
    return http_peer


@pytest.mark.parametrize("event", EVENTS)
async def test_posts_the_documented_json(peer: HttpPeer, session: aiohttp.ClientSession, event: str) -> None:
    hook = WebhookChannel(url=peer.url(HOOK), session=session, retry=fast_retry(), name="audit")
    n = make_notification(event, level=1, level_name="team-lead", details=EVENT_DETAILS[event])
    outcome = await hook.send(n)
    assert outcome.delivered, outcome.reason
    assert peer.errors == []
    (req,) = peer.on(HOOK)
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == n.key
    assert SIGNATURE_HEADER not in req.headers  # unsigned without a secret
    body = req.json()
    assert body["event"] == event and body["key"] == n.key and body["drill"] is False
    assert (body["level"], body["levelName"]) == (1, "team-lead")
    assert body["incident"]["uid"] == n.incident.uid and body["incident"]["episode"] == 1
    message = render(event, n)
    assert (body["subject"], body["message"]) == (message.subject, message.text)
    assert body["at"] == "2025-01-31T14:20:00+00:00"
    assert body["details"] == json.loads(json.dumps(dict(n.details), default=lambda v: v.isoformat()))


async def test_signature_is_verifiable_by_the_receiver(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    hook = WebhookChannel(url=peer.url(HOOK), session=session, hmac_secret=SECRET, retry=fast_retry())
    assert (await hook.send(make_notification())).delivered
    (req,) = peer.on(HOOK)
    timestamp, signature = req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER]
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, req.body, timestamp, signature)
    assert not verify_signature("another-secret", req.body, timestamp, signature)
    assert not verify_signature(SECRET, req.body + b" ", timestamp, signature)
    assert not verify_signature(SECRET, req.body, str(int(timestamp) + 1), signature)


async def test_every_retry_is_signed_afresh(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    peer.script(HOOK, Reply(503), Reply(200))
    clock = itertools.count(1_700_000_000, 60)
    hook = WebhookChannel(
        url=peer.url(HOOK), session=session, hmac_secret=SECRET, retry=fast_retry(), clock=lambda: next(clock)
    )
    assert (await hook.send(make_notification())).attempts == 2
    first, second = peer.on(HOOK)
    assert (first.headers[TIMESTAMP_HEADER], second.headers[TIMESTAMP_HEADER]) == ("1700000000", "1700000060")
    for req in (first, second):
        ts = req.headers[TIMESTAMP_HEADER]
        assert verify_signature(SECRET, req.body, ts, req.headers[SIGNATURE_HEADER], now=float(ts))
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


def test_verify_signature_rejects_stale_and_malformed() -> None:
    body = b'{"event":"triggered"}'
    good = sign(SECRET, "1700000000", body)
    assert verify_signature(SECRET, body, "1700000000", good, now=1_700_000_299)
    assert not verify_signature(SECRET, body, "1700000000", good, now=1_700_000_301)
    assert verify_signature(SECRET, body, "1700000000", good, tolerance=None)
    assert not verify_signature(SECRET, body, "1700000000", good.removeprefix("sha256="), tolerance=None)
    assert not verify_signature(SECRET, body, "yesterday", good, tolerance=None)
    assert not verify_signature(SECRET, body, None, good)
    assert not verify_signature(SECRET, body, "1700000000", None, tolerance=None)


def test_signature_scheme_matches_the_documentation() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", b"{}") == f"sha256={expected}"


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64), ts=st.integers(0, 2**40))
def test_sign_verify_round_trip(body: bytes, secret: str, ts: int) -> None:
    assert verify_signature(secret, body, str(ts), sign(secret, str(ts), body), now=float(ts))


async def test_drill_is_flagged(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    hook = WebhookChannel(url=peer.url(HOOK), session=session, retry=fast_retry())
    assert (await hook.send(make_notification(incident=make_incident(drill=True)))).delivered
    body = peer.on(HOOK)[0].json()
    assert body["drill"] is True
    assert body["subject"].startswith("[DRILL]") and body["message"].startswith("[DRILL]")
