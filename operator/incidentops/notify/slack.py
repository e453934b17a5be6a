"""Slack channel: an incoming-webhook POST with Block Kit blocks.

The webhook URL is the credential (anyone holding it can post to the
channel), so it comes from a Secret and never appears in a reason or a log
line. The message is ``{"text": <subject>, "blocks": [...]}``: ``text`` is the
notification fallback (push notifications, screen readers) and the blocks
are, in order:

- ``header``: ``[DRILL] [P1] Incident: <title>`` (plain text, at most 150 chars)
- ``section``: the rendered message (mrkdwn, escaped, at most 3000 chars)
- ``section`` with ``fields``: severity, status, event, level, started, acknowledged by
- ``context``: ``namespace/name``, episode, notification key, and a drill marker

Slack answers 200 ``ok``; 429 carries ``Retry-After``; 4xx (``invalid_payload``,
``no_service``, ``channel_is_archived``...) are final. Slack allows about one
message a second per webhook (short bursts aside): :data:`RATE_LIMIT` is one a
second, one at a time, and the caller queues the rest.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp

from incidentops.notify.base import (
    Notification,
    Outcome,
    RateLimit,
    Redactor,
    ReportMessage,
    destination_id,
    url_secrets,
)
from incidentops.notify.retry import Logger, RetryPolicy, post_with_retry
from incidentops.notify.templates import SEVERITY_LABELS, RenderedMessage, format_ts, render
from incidentops.notify.webhook import encode

__all__ = [
    "HEADER_MAX",
    "RATE_LIMIT",
    "SECTION_MAX",
    "SlackChannel",
    "escape_mrkdwn",
    "slack_payload",
    "slack_report_payload",
]

HEADER_MAX: Final = 150  # Block Kit: header text
SECTION_MAX: Final = 3000  # Block Kit: section text
FIELD_MAX: Final = 2000  # Block Kit: one section field
FIELDS_MAX: Final = 10  # Block Kit: fields per section
CONTEXT_MAX: Final = 10  # Block Kit: context elements
TEXT_MAX: Final = 3000  # our cap of the fallback text (Slack truncates at 40000)
RATE_LIMIT: Final = RateLimit(events=1, seconds=1.0, concurrency=1)  # api.slack.com/docs/rate-limits

_SEVERITY_EMOJI: Final = {"P1": ":red_circle:", "P2": ":large_orange_circle:", "P3": ":large_yellow_circle:"}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _field(label: str, value: str, *, emoji: str = "") -> dict[str, str]:
    text = f"*{label}*\n{emoji + ' ' if emoji else ''}{escape_mrkdwn(value)}"
    return {"type": "mrkdwn", "text": _truncate(text, FIELD_MAX)}


def slack_payload(n: Notification, message: RenderedMessage) -> dict[str, Any]:
    """The incoming-webhook JSON for ``n``."""
    i = n.incident
    emoji = _SEVERITY_EMOJI.get(i.severity, ":white_circle:")
    fields = [
        _field("Severity", f"{i.severity} ({SEVERITY_LABELS.get(i.severity, i.severity)})", emoji=emoji),
        _field("Status", i.phase),
        _field("Event", n.event),
    ]
    if n.level_name or n.level is not None:
        fields.append(_field("Escalation level", n.level_name or str(n.level)))
    fields.append(_field("Started", format_ts(i.started_at)))
    fields.append(_field("Acknowledged by", i.acknowledged_by or "nobody yet"))
    if i.type:
        fields.append(_field("Type", i.type))

    body = escape_mrkdwn(message.text)
    if i.url:
        body = f"{body}\n<{i.url.replace('>', '%3E').replace('|', '%7C')}|Open the incident>"
    context = [
        {"type": "mrkdwn", "text": escape_mrkdwn(f"{i.namespace}/{i.name} \u00b7 episode {i.episode}")},
        {"type": "mrkdwn", "text": f"key `{escape_mrkdwn(n.key)}`"},
    ]
    if i.drill:
        context.insert(0, {"type": "mrkdwn", "text": ":construction: *DRILL*: a rehearsal, not a real incident"})
    return {
        "text": _truncate(message.subject, TEXT_MAX),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _truncate(message.subject, HEADER_MAX), "emoji": True},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(body, SECTION_MAX)}},
            {"type": "section", "fields": fields[:FIELDS_MAX]},
            {"type": "context", "elements": context[:CONTEXT_MAX]},
        ],
    }


def slack_report_payload(r: ReportMessage) -> dict[str, Any]:
    """The incoming-webhook JSON for a policy's report: the Markdown as a preformatted section (Slack's
    mrkdwn has no tables), cut to what a section holds; the whole report goes to the other channels."""
    text = escape_mrkdwn(r.text)
    fence = "```"
    body = _truncate(text, SECTION_MAX - 2 * len(fence) - 2)
    return {
        "text": _truncate(r.subject, TEXT_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _truncate(r.subject, HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{fence}\n{body}\n{fence}"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": escape_mrkdwn(f"policy {r.policy} \u00b7 {r.period}")},
                    {"type": "mrkdwn", "text": f"key `{escape_mrkdwn(r.key)}`"},
                ],
            },
        ],
    }


class SlackChannel:
    """Posts every notification to one Slack incoming webhook."""

    kind: Final = "slack"

    def __init__(
        self,
        *,
        webhook_url: str,
        session: aiohttp.ClientSession,
        name: str = "slack",
        retry: RetryPolicy | None = None,
        log: Logger | None = None,
    ) -> None:
        self.name = name
        self._url = webhook_url
        self._session = session
        self._retry = retry or RetryPolicy()
        self._log = log
        self._redactor = Redactor(url_secrets(webhook_url))
        self.destination = destination_id(self.kind, webhook_url)
        self.rate_limit = RATE_LIMIT

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r})"

    async def send(self, n: Notification) -> Outcome:
        return await self._post(encode(slack_payload(n, render(n.event, n))), n.key, f"{n.event} {n.key}")

    async def send_report(self, r: ReportMessage) -> Outcome:
        return await self._post(encode(slack_report_payload(r)), r.key, f"report {r.period} {r.key}")

    async def _post(self, body: bytes, key: str, what: str) -> Outcome:
        return await post_with_retry(
            self._session,
            self._url,
            body=body,
            headers=lambda: {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key},
            policy=self._retry,
            what=f"slack channel {self.name!r}: {what}",
            redactor=self._redactor,
            log=self._log,
        )
