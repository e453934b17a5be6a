"""PagerDuty channel: Events API v2 (``POST /v2/enqueue``).

One PagerDuty alert per incident episode: every event carries
``dedup_key = incidentops/<incident uid>/<episode>``, so the trigger, the
acknowledgement and the resolution land on the same alert, and a reopened
incident (a new episode) pages afresh.

Event mapping (the API has only trigger, acknowledge and resolve):

==================  ===================  ====================================================
incidentops event   ``event_action``     why
==================  ===================  ====================================================
triggered           trigger              opens the alert and pages
escalated           trigger              the level's channel may be another service (another
                                         routing key): this opens the alert there; on the same
                                         service it folds into the open alert (same dedup key)
sla-breached        trigger              a missed deadline is worth paging for, and policies
                                         route breaches to a channel on purpose
                                         (``notifyOnBreach``); on an open alert it only adds a
                                         log entry, on one closed by hand in PagerDuty while
                                         the incident is still open it pages again
action              trigger              a containment action that failed or was rate-limited: the
                                         responders must know it did not happen (on an open alert it
                                         adds a log entry)
acknowledged        acknowledge
resolved            resolve
update-due          (skipped)            a reminder to write a stakeholder update is not a
status-update       (skipped)            page, and Events v2 has no way to add a note without
                                         triggering; both answer
                                         ``Outcome(delivered=True, reason="not applicable to PagerDuty")``
postmortem-due      (skipped)            a reminder that a post-mortem is overdue is not a page either
==================  ===================  ====================================================

A drill pages as a real incident would (it rehearses the real path), with
``[DRILL]`` leading the summary and ``custom_details.drill = true``.

202 is success. 400 is final (the event is invalid); 429 and 5xx are retried.
Events v2 accepts about 120 events a minute per routing key and answers 429
beyond (PagerDuty's "Rate Limits" page): :data:`RATE_LIMIT` keeps to that, and
the caller queues what is over it. The routing key is the credential: it is
never in a reason or a log line.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import aiohttp

from incidentops.notify.base import (
    IncidentRef,
    Notification,
    Outcome,
    RateLimit,
    Redactor,
    ReportMessage,
    destination_id,
)
from incidentops.notify.retry import Logger, RetryPolicy, post_with_retry
from incidentops.notify.templates import render
from incidentops.notify.webhook import encode

__all__ = [
    "DEFAULT_URL",
    "EVENT_ACTIONS",
    "NOT_APPLICABLE",
    "RATE_LIMIT",
    "SEVERITY_MAP",
    "PagerDutyChannel",
    "dedup_key",
    "pagerduty_event",
]

DEFAULT_URL: Final = "https://events.pagerduty.com/v2/enqueue"
NOT_APPLICABLE: Final = "not applicable to PagerDuty"
RATE_LIMIT: Final = RateLimit(events=120, seconds=60.0, concurrency=8)  # per routing key

EVENT_ACTIONS: Final[dict[str, str]] = {
    "triggered": "trigger",
    "escalated": "trigger",
    "sla-breached": "trigger",
    "action": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
SEVERITY_MAP: Final[dict[str, str]] = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info"}

DEDUP_KEY_MAX: Final = 255
SUMMARY_MAX: Final = 1024
_SUMMARIES: Final = {
    "triggered": "{title}",
    "escalated": "Escalated to {level}: {title}",
    "sla-breached": "SLA breached: {title}",
    "action": "Containment action did not happen: {title}",
}


def dedup_key(incident: IncidentRef) -> str:
    """``incidentops/<uid>/<episode>``, hashed down if it would exceed 255 characters."""
    key = f"incidentops/{incident.uid}/{incident.episode}"
    if len(key) <= DEDUP_KEY_MAX:
        return key
    return f"incidentops/sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def pagerduty_event(n: Notification, routing_key: str, *, source: str | None = None) -> dict[str, Any] | None:
    """The Events v2 body for ``n``, or None when the event is not one PagerDuty should see."""
    action = EVENT_ACTIONS.get(n.event)
    if action is None:
        return None
    i = n.incident
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(i)}
    if action != "trigger":
        return event
    message = render(n.event, n)
    title = _SUMMARIES[n.event].format(title=i.title, level=n.level_name or "the next level")
    summary = f"[{i.severity}] {title}"
    if i.drill:
        summary = f"[DRILL] {summary}"
    details: dict[str, Any] = {
        "incident": f"{i.namespace}/{i.name}",
        "uid": i.uid,
        "episode": i.episode,
        "event": n.event,
        "phase": i.phase,
        "severity": i.severity,
        "drill": i.drill,
        "key": n.key,
        "message": message.text,
    }
    for name, value in (
        ("level", n.level),
        ("levelName", n.level_name),
        ("description", i.description),
        ("acknowledgedBy", i.acknowledged_by),
        ("startedAt", i.started_at.isoformat() if i.started_at else None),
    ):
        if value is not None:
            details[name] = value
    payload: dict[str, Any] = {
        "summary": _truncate(" ".join(summary.split()), SUMMARY_MAX),
        "source": source or f"{i.namespace}/{i.name}",
        "severity": SEVERITY_MAP.get(i.severity, "error"),
        "timestamp": n.at.isoformat(),
        "component": i.name,
        "group": i.namespace,
        "custom_details": details,
    }
    if i.type:
        payload["class"] = i.type
    event["payload"] = payload
    event["client"] = "incidentops"
    if i.url:
        event["client_url"] = i.url
        event["links"] = [{"href": i.url, "text": f"Incident {i.namespace}/{i.name}"}]
    return event


class PagerDutyChannel:
    """Sends trigger / acknowledge / resolve events to one PagerDuty integration."""

    kind: Final = "pagerduty"

    def __init__(
        self,
        *,
        routing_key: str,
        session: aiohttp.ClientSession,
        name: str = "pagerduty",
        url: str = DEFAULT_URL,
        source: str | None = None,
        retry: RetryPolicy | None = None,
        log: Logger | None = None,
    ) -> None:
        self.name = name
        self._routing_key = routing_key
        self._url = url
        self._source = source
        self._session = session
        self._retry = retry or RetryPolicy()
        self._log = log
        self._redactor = Redactor([routing_key])
        self.destination = destination_id(self.kind, url, routing_key)
        self.rate_limit = RATE_LIMIT

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r})"

    async def send_report(self, r: ReportMessage) -> Outcome:
        """PagerDuty takes pages, not reports (a policy cannot name it in ``reports``): refused, never sent."""
        return Outcome(delivered=False, attempts=0, reason="PagerDuty channels take pages, not reports")

    async def send(self, n: Notification) -> Outcome:
        event = pagerduty_event(n, self._routing_key, source=self._source)
        if event is None:
            return Outcome(delivered=True, attempts=0, status_code=None, reason=NOT_APPLICABLE)
        return await post_with_retry(
            self._session,
            self._url,
            body=encode(event),
            headers=lambda: {"Content-Type": "application/json"},
            policy=self._retry,
            what=f"pagerduty channel {self.name!r}: {n.event} ({event['event_action']}) {n.key}",
            redactor=self._redactor,
            log=self._log,
        )
