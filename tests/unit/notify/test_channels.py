"""Across channels: the drill marker, secrets kept out of reasons and logs, and build_channel."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from incidentops.api.policy import Channel as ChannelSpec
from incidentops.notify import build_channel
from incidentops.notify.base import EVENTS, Channel, ChannelConfigError, Outcome
from incidentops.notify.email import EmailChannel
from incidentops.notify.pagerduty import PagerDutyChannel
from incidentops.notify.retry import RetryPolicy
from incidentops.notify.slack import SlackChannel
from incidentops.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel, verify_signature

from .apischemas import check_pagerduty_event, check_slack_message, check_webhook_payload
from .conftest import (
    EVENT_DETAILS,
    HttpPeer,
    Reply,
    SmtpPeer,
    closed_port_url,
    fast_retry,
    make_incident,
    make_notification,
)

SLACK = "/services/T0DRILL/B0DRILL/slackToken0123456789ab"
PD = "/v2/enqueue"
HOOK = "/hook"
ROUTING_KEY = "PDr0ut1ngK3yPDr0ut1ngK3yPDr0ut12"
HMAC = "hmac-SeCrEt-4f9d2c"


@pytest.fixture
def peer(http_peer: HttpPeer) -> HttpPeer:
    http_peer.validators.update({SLACK: check_slack_message, PD: check_pagerduty_event, HOOK: check_webhook_payload})
    http_peer.script(PD, default=Reply(202, '{"status":"success"}'))
    return http_peer


def make_channel(kind: str, peer: HttpPeer, smtp: SmtpPeer, session: aiohttp.ClientSession) -> Channel:
    retry = fast_retry()
    if kind == "slack":
        return SlackChannel(webhook_url=peer.url(SLACK), session=session, retry=retry)
    if kind == "pagerduty":
        return PagerDutyChannel(routing_key=ROUTING_KEY, url=peer.url(PD), session=session, retry=retry)
    if kind == "webhook":
        return WebhookChannel(url=peer.url(HOOK), session=session, hmac_secret=HMAC, retry=retry)
    return EmailChannel(to=["a@example.com"], sender="io@example.com", host=smtp.host, port=smtp.port, starttls=False)


def drill_texts(kind: str, peer: HttpPeer, smtp: SmtpPeer) -> list[str]:
    """What a person would read first, per channel."""
    if kind == "slack":
        body = peer.on(SLACK)[0].json()
        return [body["text"], body["blocks"][0]["text"]["text"], body["blocks"][1]["text"]["text"]]
    if kind == "pagerduty":
        body = peer.on(PD)[0].json()
        payload = body.get("payload")
        return [payload["summary"]] if payload else []
    if kind == "webhook":
        body = peer.on(HOOK)[0].json()
        return [body["subject"], body["message"]]
    msg = smtp.handler.mails[0].message
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None
    return [str(msg["Subject"]), text.get_content()]


@pytest.mark.parametrize("kind", ["slack", "pagerduty", "webhook", "email"])
@pytest.mark.parametrize("event", EVENTS)
async def test_drill_marker_in_every_message(
    peer: HttpPeer, smtp_peer: SmtpPeer, session: aiohttp.ClientSession, kind: str, event: str
) -> None:
    channel = make_channel(kind, peer, smtp_peer, session)
    n = make_notification(event, incident=make_incident(drill=True), details=EVENT_DETAILS[event])
    outcome = await channel.send(n)
    assert outcome.delivered, outcome.reason
    assert peer.errors == []
    if kind == "pagerduty" and event in ("update-due", "status-update", "postmortem-due"):
        assert peer.requests == []  # not sent at all (see the module's mapping)
        return
    texts = drill_texts(kind, peer, smtp_peer)
    if kind == "pagerduty" and event in ("acknowledged", "resolved"):
        assert texts == []  # acknowledge/resolve carry no text: they act on the alert the drill triggered
        return
    assert texts and all(t.startswith("[DRILL]") for t in texts), texts


# --- secrets never leave a channel ---------------------------------------------------------


def assert_secret_free(outcome: Outcome, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    logged = caplog.text + " ".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in outcome.reason, (secret, outcome.reason)
        assert secret not in logged, secret


SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSeCrEtT0k3nNeverShown"


@pytest.mark.parametrize("status", [400, 404, 503])
async def test_slack_url_never_in_reasons_or_logs(
    http_peer: HttpPeer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    http_peer.script(SECRET_PATH, default=Reply(status, "invalid_token", echo=True))
    url = http_peer.url(SECRET_PATH)
    outcome = await SlackChannel(webhook_url=url, session=session, retry=fast_retry(attempts=2)).send(
        make_notification()
    )
    assert not outcome.delivered and outcome.status_code == status
    assert "invalid_token" in outcome.reason  # the reply is kept, minus the secret
    assert_secret_free(outcome, caplog, url, SECRET_PATH, "xoxSeCrEtT0k3nNeverShown", "T0SECRET/B0SECRET")


async def test_slack_url_never_in_connection_errors(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = closed_port_url(SECRET_PATH)
    outcome = await SlackChannel(webhook_url=url, session=session, retry=fast_retry(attempts=2)).send(
        make_notification()
    )
    assert outcome.reason.startswith("connection failed")
    assert_secret_free(outcome, caplog, url, "xoxSeCrEtT0k3nNeverShown")


async def test_webhook_secret_url_and_headers_never_shown(
    http_peer: HttpPeer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http_peer.script("/in", default=Reply(422, "rejected", echo=True))
    url = http_peer.url("/in") + "?token=qUeRyT0k3nNeverShown42"
    hook = WebhookChannel(url=url, session=session, hmac_secret=HMAC, retry=fast_retry())
    outcome = await hook.send(make_notification())
    (req,) = http_peer.on("/in")
    assert outcome.reason.startswith("HTTP 422: rejected")
    assert_secret_free(
        outcome, caplog, url, "qUeRyT0k3nNeverShown42", HMAC, req.headers[SIGNATURE_HEADER].removeprefix("sha256=")
    )


async def test_routing_key_never_shown(
    http_peer: HttpPeer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http_peer.script(PD, default=Reply(400, '{"status":"invalid event"}', echo=True))
    channel = PagerDutyChannel(routing_key=ROUTING_KEY, url=http_peer.url(PD), session=session, retry=fast_retry())
    outcome = await channel.send(make_notification())
    assert outcome.status_code == 400 and "invalid event" in outcome.reason
    assert_secret_free(outcome, caplog, ROUTING_KEY)
    assert ROUTING_KEY not in repr(channel)


# --- build_channel from the EscalationPolicy model -------------------------------------------


def spec(body: dict[str, Any]) -> ChannelSpec:
    return ChannelSpec.model_validate(body)


async def test_build_channel_for_each_kind(
    http_peer: HttpPeer, smtp_peer: SmtpPeer, session: aiohttp.ClientSession
) -> None:
    http_peer.validators.update({SLACK: check_slack_message, PD: check_pagerduty_event, HOOK: check_webhook_payload})
    http_peer.script(PD, default=Reply(202, '{"status":"success"}'))
    secrets = {
        "chat/url": http_peer.url(SLACK) + "\n",  # as a Secret made from a file would hold it
        "paging/routing-key": ROUTING_KEY,
        "hook/url": http_peer.url(HOOK),
        "hook/hmac": HMAC,
    }
    retry = fast_retry()
    built: dict[str, Channel] = {}
    for body in (
        {"name": "chat", "slack": {"webhookSecretRef": {"name": "chat", "key": "url"}}},
        {
            "name": "paging",
            "pagerduty": {"routingKeySecretRef": {"name": "paging", "key": "routing-key"}, "url": http_peer.url(PD)},
        },
        {
            "name": "audit",
            "webhook": {
                "urlSecretRef": {"name": "hook", "key": "url"},
                "hmacSecretRef": {"name": "hook", "key": "hmac"},
            },
        },
        {
            "name": "mail",
            "email": {
                "to": ["oncall@example.com"],
                "from": "incidentops@example.com",
                "smtp": {"host": smtp_peer.host, "port": smtp_peer.port, "starttls": False},
            },
        },
    ):
        channel = build_channel(spec(body), secrets, session=session, retry=retry)
        assert isinstance(channel, Channel)
        built[channel.kind] = channel
    assert {c.name for c in built.values()} == {"chat", "paging", "audit", "mail"}
    for channel in built.values():
        outcome = await channel.send(make_notification())
        assert outcome.delivered, (channel.kind, outcome.reason)
    assert http_peer.errors == []
    (hook,) = http_peer.on(HOOK)
    assert verify_signature(HMAC, hook.body, hook.headers[TIMESTAMP_HEADER], hook.headers[SIGNATURE_HEADER])
    assert len(smtp_peer.handler.mails) == 1


def test_build_email_with_credentials(session: aiohttp.ClientSession) -> None:
    body = {
        "name": "mail",
        "email": {
            "to": ["oncall@example.com"],
            "from": "incidentops@example.com",
            "smtp": {
                "host": "smtp.example.com",
                "credentialsSecretRef": {"name": "smtp", "usernameKey": "user", "passwordKey": "pass"},
            },
        },
    }
    channel = build_channel(
        spec(body), {"smtp/user": "notifier", "smtp/pass": "pw-0123456789"}, session=session, retry=RetryPolicy()
    )
    assert isinstance(channel, EmailChannel) and channel.kind == "email"
    with pytest.raises(ChannelConfigError, match="key 'pass' of Secret 'smtp' is not available"):
        build_channel(spec(body), {"smtp/user": "notifier"}, session=session, retry=RetryPolicy())
    body["email"]["smtp"]["starttls"] = False  # type: ignore[index]
    with pytest.raises(ChannelConfigError, match="only sent over STARTTLS"):
        build_channel(
            spec(body), {"smtp/user": "notifier", "smtp/pass": "pw-0123456789"}, session=session, retry=RetryPolicy()
        )


def test_build_errors_never_show_secret_values(session: aiohttp.ClientSession) -> None:
    slack = spec({"name": "chat", "slack": {"webhookSecretRef": {"name": "chat", "key": "url"}}})
    with pytest.raises(ChannelConfigError, match="key 'url' of Secret 'chat' is not available"):
        build_channel(slack, {}, session=session, retry=RetryPolicy())
    not_a_url = "xoxb-NotAUrlButASecretToken"
    with pytest.raises(ChannelConfigError) as error:
        build_channel(slack, {"chat/url": not_a_url}, session=session, retry=RetryPolicy())
    assert "does not hold an http(s) URL" in str(error.value) and not_a_url not in str(error.value)
    pd = spec({"name": "paging", "pagerduty": {"routingKeySecretRef": {"name": "paging", "key": "k"}}})
    with pytest.raises(ChannelConfigError, match="is empty"):
        build_channel(pd, {"paging/k": " \n"}, session=session, retry=RetryPolicy())
    channel = build_channel(pd, {"paging/k": ROUTING_KEY}, session=session, retry=RetryPolicy())
    assert isinstance(channel, PagerDutyChannel) and channel._url == "https://events.pagerduty.com/v2/enqueue"


async def test_destinations_name_where_messages_go_without_saying_it(
    peer: HttpPeer, smtp_peer: SmtpPeer, session: aiohttp.ClientSession
) -> None:
    """Channels of one destination share its rate limit; the name of it carries no credential."""
    for kind in ("slack", "pagerduty", "webhook", "email"):
        one, two = make_channel(kind, peer, smtp_peer, session), make_channel(kind, peer, smtp_peer, session)
        assert one.destination == two.destination and one.destination.startswith(f"{kind}:")
        for secret in (SLACK, ROUTING_KEY, HMAC, "slackToken", str(smtp_peer.port)):
            assert secret not in one.destination
    other = PagerDutyChannel(routing_key="another-routing-key-0123456789abcd", url=peer.url(PD), session=session)
    assert other.destination != make_channel("pagerduty", peer, smtp_peer, session).destination
    limits = {kind: make_channel(kind, peer, smtp_peer, session).rate_limit for kind in ("slack", "pagerduty")}
    assert (limits["pagerduty"].events, limits["pagerduty"].seconds) == (120, 60.0), "Events v2: 120 a minute a key"
    assert (limits["slack"].events, limits["slack"].seconds) == (1, 1.0), "about one message a second a webhook"
    assert make_channel("webhook", peer, smtp_peer, session).rate_limit.events is None
