"""The one interface every channel implements, and the values that cross it.

A channel is built once per (policy channel, resolved Secrets) and is asked to
``send`` one :class:`Notification` at a time. It answers with an
:class:`Outcome` and never raises for a delivery failure: a failed delivery is
a fact the caller records in ``status.notifications[]``, not an error. The
outcome says whether another attempt is worth it (``retryable``) and how soon
the server wants it (``retry_after``); the caller's delivery queue decides when.

A channel also names its :attr:`Channel.destination` (an opaque id of where the
messages go: the Slack webhook, the PagerDuty routing key, the webhook URL, the
SMTP server) and the :class:`RateLimit` the service there imposes, so the
caller can queue messages per destination instead of having them dropped.

Nothing that comes out of this package (an ``Outcome.reason``, a log record, a
:class:`ChannelConfigError` message) ever carries a secret value: no webhook
URL that is itself the credential, no routing key, no header value, no
password. :class:`Redactor` is the last line of that defence; the first is not
to put such values into messages at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, runtime_checkable

__all__ = [
    "EVENTS",
    "Channel",
    "ChannelConfigError",
    "Event",
    "IncidentRef",
    "Notification",
    "Outcome",
    "RateLimit",
    "Redactor",
    "ReportMessage",
    "destination_id",
    "event_title",
    "url_secrets",
]

Event = Literal[
    "triggered",
    "escalated",
    "update-due",
    "sla-breached",
    "status-update",
    "acknowledged",
    "resolved",
    "action",
    "postmortem-due",
]

#: Every event a channel may be asked to announce, in the order they usually happen.
EVENTS: Final[tuple[Event, ...]] = (
    "triggered",
    "escalated",
    "update-due",
    "sla-breached",
    "status-update",
    "acknowledged",
    "resolved",
    "action",
    "postmortem-due",
)

_EVENT_TITLES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "triggered": "Incident triggered",
        "escalated": "Incident escalated",
        "update-due": "Status update due",
        "sla-breached": "SLA breached",
        "status-update": "Incident update",
        "acknowledged": "Incident acknowledged",
        "resolved": "Incident resolved",
        "action": "Containment action did not happen",
        "postmortem-due": "Post-mortem overdue",
    }
)


def event_title(event: str) -> str:
    """A short human title for an event (``"update-due"`` -> ``"Status update due"``)."""
    return _EVENT_TITLES.get(event, event)


@dataclass(frozen=True, kw_only=True)
class IncidentRef:
    """What a message says about the incident: a read-only snapshot taken by the caller."""

    name: str
    namespace: str
    uid: str
    title: str
    severity: str  # "P1".."P4"
    phase: str
    episode: int = 1
    type: str | None = None
    description: str | None = None
    drill: bool = False
    started_at: datetime | None = None
    acknowledged_by: str | None = None
    summary: str | None = None  # the resolution summary, or the latest status update's text
    root_cause: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One message to one channel.

    ``key`` is the idempotency key computed by the caller (a hash of incident
    uid, episode, round, level name, channel name and event): the same
    notification re-sent after a restart carries the same key, and every
    channel passes it on (``Idempotency-Key`` header, e-mail ``Message-ID``,
    Slack context line) so a receiver can recognise a duplicate.

    ``details`` carries optional, event-specific facts for the templates
    (see :data:`incidentops.notify.templates.DETAILS`): ``impact``,
    ``commander``, ``next_update_by``, ``update_every``, ``after``, ``until``,
    ``breach``, ``deadline``, ``resolved_at``. Unknown names are refused when
    the message is rendered, so a typo fails loudly in tests.
    """

    key: str
    event: str  # one of EVENTS (checked at construction)
    channel: str
    incident: IncidentRef
    level: int | None = None
    level_name: str | None = None
    at: datetime
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; expected one of {', '.join(EVENTS)}")
        if not isinstance(self.details, MappingProxyType):
            object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


@dataclass(frozen=True, kw_only=True)
class ReportMessage:
    """A policy's periodic report to one channel (``reports.monthly``): not about one incident, so not a
    :class:`Notification`; sent by :meth:`Channel.send_report`.

    ``key`` is the caller's idempotency key (a hash of the policy's uid, the period and the channel): a
    report re-sent after a restart carries the same key, passed on as channels pass a notification's.
    """

    key: str
    channel: str
    policy: str
    """The policy, ``namespace/name``."""
    period: str
    """The period reported on, e.g. ``2026-11``."""
    subject: str
    text: str
    """The report in Markdown."""
    at: datetime
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """The report as JSON (``kubectl incident report -o json``)."""


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The result of one ``send``: what the caller writes to ``status.notifications[]``.

    ``reason`` is short, human and safe to show anywhere: it never contains a
    secret value (no URL that is a credential, no routing key, no header value).
    """

    delivered: bool
    attempts: int = 0
    status_code: int | None = None
    reason: str
    retryable: bool = False
    """For a failure: whether another attempt may succeed (a 5xx, 408, 429, a time-out, a dropped
    connection); False for a refusal that will stay a refusal (another 4xx, a redirect, SMTP 5xx)."""
    retry_after: float | None = None
    """Seconds the server asked us to wait before the next attempt (``Retry-After``), if it said."""

    @property
    def outcome(self) -> Literal["Delivered", "Failed"]:
        """One word for this send. (The operator records the delivery queue's verdict instead, which also
        knows Pending and Skipped: ``domain.delivery.after_attempt``.)"""
        return "Delivered" if self.delivered else "Failed"


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """How fast one destination may be sent to.

    At most ``events`` attempts in any ``seconds``-long window (None: no rate
    limit), and at most ``concurrency`` attempts in flight at once (so a
    destination that hangs ties up a few connections, never all of them).
    """

    events: int | None = None
    seconds: float = 1.0
    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.events is not None and self.events < 1:
            raise ValueError("events must be at least 1")
        if self.seconds <= 0 or self.concurrency < 1:
            raise ValueError("seconds must be positive and concurrency at least 1")


def destination_id(kind: str, *parts: str) -> str:
    """An opaque name for where messages go, safe to keep in memory and compare.

    The parts are often credentials (a Slack webhook URL, a routing key), so
    only a digest of them is kept; it is still never logged.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{kind}:{digest}"


class ChannelConfigError(Exception):
    """A channel's configuration is unusable (found when the channel is built).

    The message names the channel and what is wrong with it, never a value
    read from a Secret, so it is safe for a condition message or an Event.
    """


@runtime_checkable
class Channel(Protocol):
    """A place notifications go to: one per EscalationPolicy ``channels[]`` entry."""

    @property
    def kind(self) -> str:
        """``"slack"``, ``"pagerduty"``, ``"webhook"`` or ``"email"``."""
        ...

    @property
    def name(self) -> str:
        """The policy's name for the channel."""
        ...

    @property
    def destination(self) -> str:
        """Where the messages go (:func:`destination_id`): channels of one destination share its rate limit."""
        ...

    @property
    def rate_limit(self) -> RateLimit:
        """What the service at :attr:`destination` allows."""
        ...

    async def send(self, n: Notification) -> Outcome:
        """Deliver ``n`` (retrying as its :class:`RetryPolicy` says); never raises for a failed delivery."""
        ...

    async def send_report(self, r: ReportMessage) -> Outcome:
        """Deliver the report ``r``, as :meth:`send` delivers a notification."""
        ...


_MIN_SECRET_LENGTH: Final = 4  # shorter values would mask ordinary words; they are no secret anyway


class Redactor:
    """Masks known secret values (and their tails) in a string.

    A channel builds one from the values it holds (the webhook URL that is a
    credential, a routing key, an HMAC secret, a password) and passes every
    reason through it before it leaves the channel.
    """

    MASK: Final = "[redacted]"

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first, so a URL is masked whole before its token could be masked inside it.
        self._secrets: tuple[str, ...] = tuple(sorted(values, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


_TOKEN_SEGMENT_LENGTH: Final = 12


def url_secrets(url: str) -> list[str]:
    """The parts of a URL to mask when the URL is a credential.

    The whole URL, its path and query, and every path or query segment long
    enough to be a token: a server's error page may echo any of them alone.
    """
    rest = url.split("://", 1)[-1]
    tail = rest.partition("/")[2]
    parts = [url]
    if len(tail) >= _TOKEN_SEGMENT_LENGTH:
        parts.append(tail)
    for segment in tail.replace("?", "/").replace("&", "/").replace("=", "/").split("/"):
        if len(segment) >= _TOKEN_SEGMENT_LENGTH:
            parts.append(segment)
    return [p for p in parts if p]
