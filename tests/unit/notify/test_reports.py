"""A policy's monthly report through each channel (``send_report``): the Markdown, the key the same for
every copy, against local HTTP and SMTP peers."""

from __future__ import annotations

import datetime

import aiohttp

from incidentops.notify import ReportMessage
from incidentops.notify.pagerduty import PagerDutyChannel
from incidentops.notify.slack import SlackChannel, slack_report_payload
from incidentops.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel, verify_signature

from .apischemas import check_slack_message
from .conftest import HttpPeer, SmtpPeer, fast_retry
from .test_email import mailer

TEXT = "# Monthly Incident Report - November 2026\n\n| Severity | Count |\n| P1 | 2 |\n"


def report(**overrides: object) -> ReportMessage:
    values: dict[str, object] = {
        "key": "0123456789abcdef0123456789abcdef",
        "channel": "hook",
        "policy": "team/paging",
        "period": "2026-11",
        "subject": "Monthly Incident Report - November 2026 (team/paging)",
        "text": TEXT,
        "at": datetime.datetime(2026, 12, 1, 0, 0, 1, tzinfo=datetime.UTC),
        "data": {"period": "2026-11", "totals": {"incidents": 2}},
    }
    values.update(overrides)
    return ReportMessage(**values)  # type: ignore[arg-type]


async def test_webhook_posts_the_report_signed_under_its_key(
    http_peer: HttpPeer, session: aiohttp.ClientSession
) -> None:
    hook = WebhookChannel(url=http_peer.url("/r"), session=session, hmac_secret="s3cret-hmac", retry=fast_retry())
    outcome = await hook.send_report(report())
    assert outcome.delivered, outcome.reason
    (req,) = http_peer.on("/r")
    assert req.headers["Idempotency-Key"] == report().key
    assert verify_signature("s3cret-hmac", req.body, req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER])
    body = req.json()
    assert (body["event"], body["period"], body["policy"]) == ("report", "2026-11", "team/paging")
    assert body["message"] == TEXT and body["report"]["totals"] == {"incidents": 2}


async def test_slack_gets_the_report_as_a_valid_message(http_peer: HttpPeer, session: aiohttp.ClientSession) -> None:
    payload = slack_report_payload(report(text="x" * 10_000))
    assert check_slack_message(payload) == []
    slack = SlackChannel(webhook_url=http_peer.url("/s"), session=session, retry=fast_retry())
    assert (await slack.send_report(report())).delivered
    (req,) = http_peer.on("/s")
    assert "| P1 | 2 |" in req.json()["blocks"][1]["text"]["text"]
    assert req.headers["Idempotency-Key"] == report().key


async def test_mail_carries_the_report_and_a_message_id_from_its_key(smtp_peer: SmtpPeer) -> None:
    channel = mailer(smtp_peer)
    assert (await channel.send_report(report())).delivered
    assert (await channel.send_report(report())).delivered  # a re-send after a crash: the same message
    first, second = (m.message for m in smtp_peer.handler.mails)
    assert first["Message-ID"] == second["Message-ID"] == "<0123456789abcdef0123456789abcdef@incidentops>"
    assert first["Subject"] == report().subject and first["X-Incidentops-Period"] == "2026-11"
    assert "| P1 | 2 |" in first.get_content()


async def test_pagerduty_takes_no_report(session: aiohttp.ClientSession) -> None:
    pager = PagerDutyChannel(routing_key="R" * 32, session=session, url="http://127.0.0.1:9/x", retry=fast_retry())
    outcome = await pager.send_report(report())
    assert not outcome.delivered and not outcome.retryable and outcome.attempts == 0
