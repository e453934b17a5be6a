from __future__ import annotations

import aiohttp
import pytest

from incidentops.notify.base import EVENTS
from incidentops.notify.slack import SlackChannel, escape_mrkdwn, slack_payload
from incidentops.notify.templates import render

from .apischemas import check_slack_message
from .conftest import EVENT_DETAILS, HttpPeer, Reply, fast_retry, make_incident, make_notification

HOOK = "/services/T0000TEST/B0000TEST/aVeryLongWebhookToken0123"


@pytest.fixture
def peer(http_peer: HttpPeer) -> HttpPeer:
    http_peer.validators[HOOK] = check_slack_message
    return http_peer


@pytest.mark.parametrize("event", EVENTS)
async def test_posts_block_kit(peer: HttpPeer, session: aiohttp.ClientSession, event: str) -> None:
    slack = SlackChannel(webhook_url=peer.url(HOOK), session=session, retry=fast_retry(), name="incidents")
    n = make_notification(event, details=EVENT_DETAILS[event])
    outcome = await slack.send(n)
    assert outcome.delivered and outcome.status_code == 200, outcome.reason
    assert peer.errors == []
    body = peer.on(HOOK)[0].json()
    assert body["text"] == render(event, n).subject
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    header = body["blocks"][0]["text"]["text"]
    assert "P1" in header and "Checkout returns 5xx" in header
    fields = {f["text"].split("\n", 1)[0] for f in body["blocks"][2]["fields"]}
    assert {"*Severity*", "*Status*", "*Started*"} <= fields
    context = " ".join(e["text"] for e in body["blocks"][3]["elements"])
    assert n.key in context and "DRILL" not in context


def test_escapes_mrkdwn_and_bounds_lengths() -> None:
    inc = make_incident(title="<!channel> & " + "y" * 400, description="d" * 5000)
    payload = slack_payload(make_notification(incident=inc), render("triggered", make_notification(incident=inc)))
    assert check_slack_message(payload) == []
    section = payload["blocks"][1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt; &amp;" in section
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert escape_mrkdwn("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_drill_marker_in_context() -> None:
    n = make_notification(incident=make_incident(drill=True))
    payload = slack_payload(n, render("triggered", n))
    assert payload["text"].startswith("[DRILL]")
    assert payload["blocks"][0]["text"]["text"].startswith("[DRILL]")
    assert "DRILL" in payload["blocks"][3]["elements"][0]["text"]


async def test_slack_errors(peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    peer.script(HOOK, Reply(429, "rate limited", headers={"Retry-After": "0"}), Reply(404, "no_service"))
    slack = SlackChannel(webhook_url=peer.url(HOOK), session=session, retry=fast_retry())
    outcome = await slack.send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 2, 404)
    assert outcome.reason.startswith("HTTP 404: no_service")
