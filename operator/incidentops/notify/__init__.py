"""Notifications: one module per channel kind, one interface, the message templates.

Where it sits in the flow: the scheduler (``incidentops.handlers``) wakes at
an incident's next deadline and asks the domain what is due; the delivery
queue (``incidentops.handlers.queue``), for every notification due, resolves
the channel's Secrets (only Secrets labelled ``incidentops.dev/channel-secret:
"true"``), builds a channel here with :func:`build_channel`, takes a turn of
the channel's destination (:mod:`.ratelimit`) and calls ``send``. The
:class:`Outcome` it gets back (delivered or not, whether a retry is worth it,
the server's ``Retry-After``, attempts, a safe reason) is what the queue
decides on and records in ``status.notifications[]``; this package writes no
status, counts no metrics and never talks to the Kubernetes API.

- :mod:`.base`: :class:`IncidentRef`, :class:`Notification`, :class:`Outcome`,
  the :class:`Channel` protocol, :class:`ChannelConfigError`
- :mod:`.retry`: :class:`RetryPolicy` (408/429/5xx/connection errors retryable,
  ``Retry-After`` read, other 4xx final)
- :mod:`.ratelimit`: :class:`~.ratelimit.Lanes`, one per destination, keeping to
  each service's :class:`RateLimit`
- :mod:`.templates`: :func:`render`, one Jinja2 template per event
- :mod:`.webhook`, :mod:`.slack`, :mod:`.pagerduty`, :mod:`.email`: the channels

Idempotency: the caller computes each notification's key from (incident uid,
episode, round, level name, channel name, event). Channels pass it on as
``Idempotency-Key``, as the e-mail ``Message-ID`` and in Slack's context line;
PagerDuty deduplicates by its own ``dedup_key`` (one per incident episode).

No secret value ever leaves a channel: reasons, log lines and
:class:`ChannelConfigError` messages never contain a credential URL, a routing
key, a header value or a password.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from incidentops.api import policy as api_policy
from incidentops.api.common import SecretKeyRef
from incidentops.notify.base import (
    EVENTS,
    Channel,
    ChannelConfigError,
    Event,
    IncidentRef,
    Notification,
    Outcome,
    RateLimit,
    ReportMessage,
)
from incidentops.notify.email import EmailChannel
from incidentops.notify.pagerduty import DEFAULT_URL as PAGERDUTY_URL
from incidentops.notify.pagerduty import PagerDutyChannel
from incidentops.notify.retry import Logger, RetryPolicy
from incidentops.notify.slack import SlackChannel
from incidentops.notify.templates import RenderedMessage, render
from incidentops.notify.webhook import WebhookChannel, verify_signature

__all__ = [
    "EVENTS",
    "Channel",
    "ChannelConfigError",
    "EmailChannel",
    "Event",
    "IncidentRef",
    "Notification",
    "Outcome",
    "PagerDutyChannel",
    "RateLimit",
    "RenderedMessage",
    "ReportMessage",
    "RetryPolicy",
    "SlackChannel",
    "WebhookChannel",
    "build_channel",
    "render",
    "verify_signature",
]


def _secret(secrets: Mapping[str, str], ref: SecretKeyRef, channel: str) -> str:
    value = secrets.get(f"{ref.name}/{ref.key}")
    if value is None:
        raise ChannelConfigError(f"channel {channel!r}: key {ref.key!r} of Secret {ref.name!r} is not available")
    return value


def _url(value: str, ref: SecretKeyRef, channel: str) -> str:
    # Secrets made from files often end in a newline; a URL never does.
    url = value.strip()
    if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
        raise ChannelConfigError(
            f"channel {channel!r}: key {ref.key!r} of Secret {ref.name!r} does not hold an http(s) URL"
        )
    return url


def build_channel(
    spec: api_policy.Channel,
    secrets: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    retry: RetryPolicy,
    smtp_timeout: float | None = None,
    log: Logger | None = None,
) -> Channel:
    """The channel an EscalationPolicy ``channels[]`` entry describes.

    ``secrets`` maps ``"<secret name>/<key>"`` to the value, already read by
    the caller (from Secrets labelled ``incidentops.dev/channel-secret``; see
    ``spec.secret_key_refs()`` for the keys a channel needs). URLs and routing
    keys are stripped of surrounding whitespace; HMAC secrets and passwords
    are used exactly as stored. ``session`` is shared and owned by the caller.

    Raises :class:`ChannelConfigError` (a message without any secret value)
    when a key is missing or a value is unusable.
    """
    name = spec.name
    if spec.slack is not None:
        ref = spec.slack.webhook_secret_ref
        url = _url(_secret(secrets, ref, name), ref, name)
        return SlackChannel(webhook_url=url, session=session, name=name, retry=retry, log=log)
    if spec.pagerduty is not None:
        ref = spec.pagerduty.routing_key_secret_ref
        routing_key = _secret(secrets, ref, name).strip()
        if not routing_key:
            raise ChannelConfigError(f"channel {name!r}: key {ref.key!r} of Secret {ref.name!r} is empty")
        return PagerDutyChannel(
            routing_key=routing_key,
            url=spec.pagerduty.url or PAGERDUTY_URL,
            session=session,
            name=name,
            retry=retry,
            log=log,
        )
    if spec.webhook is not None:
        hook = spec.webhook
        if hook.url_secret_ref is not None:
            url = _url(_secret(secrets, hook.url_secret_ref, name), hook.url_secret_ref, name)
        elif hook.url is not None:
            url = hook.url
        else:  # pragma: no cover - the model requires exactly one
            raise ChannelConfigError(f"channel {name!r}: a webhook needs url or urlSecretRef")
        hmac_secret = _secret(secrets, hook.hmac_secret_ref, name) if hook.hmac_secret_ref is not None else None
        if hmac_secret == "":
            raise ChannelConfigError(f"channel {name!r}: the HMAC secret is empty")
        return WebhookChannel(url=url, session=session, name=name, hmac_secret=hmac_secret, retry=retry, log=log)
    if spec.email is not None:
        mail = spec.email
        username = password = None
        creds = mail.smtp.credentials_secret_ref
        if creds is not None:
            user_ref, password_ref = creds.secret_key_refs()
            username = _secret(secrets, user_ref, name).strip()
            password = _secret(secrets, password_ref, name)
        return EmailChannel(
            to=list(mail.to),
            sender=mail.from_,
            host=mail.smtp.host,
            port=mail.smtp.port,
            starttls=mail.smtp.starttls,
            username=username,
            password=password,
            name=name,
            retry=retry,
            timeout=smtp_timeout,
            log=log,
        )
    raise ChannelConfigError(f"channel {name!r}: no channel type set")  # pragma: no cover - the model requires one
