"""Send one due notification: resolve the channel's Secrets, build it, send, report.

Where it sits: between the reconciler (which knows what is due) and
``notify`` (which knows how to talk to Slack, PagerDuty, webhooks and SMTP).
It reads the Secrets a channel names, refusing any Secret that does not carry
the ``incidentops.dev/channel-secret: "true"`` label, so a policy author
cannot send an arbitrary Secret of the namespace to a server of their
choosing. Failures become a ``Failed`` outcome with a reason that names the
Secret and the key, never a value; escalation goes on regardless.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
from dataclasses import dataclass

import aiohttp

from incidentops import kube, notify
from incidentops.api import CHANNEL_SECRET_LABEL, EscalationPolicy, Incident
from incidentops.api.policy import Channel as ChannelSpec
from incidentops.domain.plan import Due
from incidentops.handlers.caches import TTLCache
from incidentops.handlers.deps import Dependencies


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # "Delivered" | "Failed"
    attempts: int
    reason: str
    channel_type: str
    due_at: datetime.datetime | None


class SecretProblem(Exception):
    """A Secret a channel needs is missing, unlabelled or lacks the key (safe message)."""


class Deliverer:
    def __init__(self, deps: Dependencies, session: aiohttp.ClientSession, retry: notify.RetryPolicy) -> None:
        self.deps = deps
        self.session = session
        self.retry = retry
        # A burst of pages through one channel reads its Secret once; a rotated
        # Secret is used within `cache_seconds`.
        self.secrets: TTLCache[kube.Secret | None] = TTLCache(deps.settings.cache_seconds)

    async def secrets_for(self, namespace: str, channel: ChannelSpec) -> dict[str, str]:
        values: dict[str, str] = {}
        for ref in channel.secret_key_refs():
            secret = await self.secrets.get(
                (namespace, ref.name), functools.partial(kube.read_secret, self.deps.api, namespace, ref.name)
            )
            if secret is None:
                raise SecretProblem(f"Secret {ref.name!r} of channel {channel.name!r} not found")
            label, expected = CHANNEL_SECRET_LABEL
            if (secret.metadata.labels or {}).get(label) != expected:
                raise SecretProblem(
                    f"Secret {ref.name!r} of channel {channel.name!r} lacks the label {label}={expected!r}"
                )
            data = secret.data or {}
            if ref.key not in data:
                raise SecretProblem(f"Secret {ref.name!r} of channel {channel.name!r} has no key {ref.key!r}")
            try:
                values[f"{ref.name}/{ref.key}"] = base64.b64decode(data[ref.key]).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise SecretProblem(
                    f"key {ref.key!r} of Secret {ref.name!r} (channel {channel.name!r}) is not UTF-8 text"
                ) from exc
        return values

    async def deliver(
        self,
        incident: Incident,
        policy: EscalationPolicy | None,
        due: Due,
        now: datetime.datetime,
    ) -> DeliveryResult:
        due_at = due.at
        spec = policy.spec.channel(due.channel) if policy is not None else None
        if policy is None or spec is None:
            return DeliveryResult(
                "Failed", 0, f"channel {due.channel!r} is not defined by the policy", "unknown", due_at
            )
        kind = str(spec.type)
        namespace = policy.metadata.namespace or incident.metadata.namespace or ""
        try:
            secrets = await self.secrets_for(namespace, spec)
            channel = notify.build_channel(spec, secrets, session=self.session, retry=self.retry)
        except (SecretProblem, notify.ChannelConfigError) as exc:
            return DeliveryResult("Failed", 0, str(exc), kind, due_at)
        outcome = await channel.send(
            notify.Notification(
                key=due.key,
                event=due.event,
                channel=due.channel,
                incident=incident_ref(incident),
                level=due.level,
                level_name=due.level_name,
                at=now,
                details=notification_details(incident),
            )
        )
        return DeliveryResult(outcome.outcome, outcome.attempts, outcome.reason, kind, due_at)


def incident_ref(incident: Incident) -> notify.IncidentRef:
    spec, status, meta = incident.spec, incident.status, incident.metadata
    summary = None
    if spec.resolution is not None:
        summary = spec.resolution.summary
    elif spec.status_update is not None:
        summary = spec.status_update.message
    return notify.IncidentRef(
        name=meta.name or "",
        namespace=meta.namespace or "",
        uid=meta.uid or "",
        title=spec.title,
        severity=str(status.severity or spec.severity or "P3"),
        phase=str(status.phase or "Triggered"),
        episode=status.episode or 1,
        type=str(status.type or spec.type) if (status.type or spec.type) else None,
        description=spec.description,
        drill=bool(spec.drill),
        started_at=status.episode_started_at or status.started_at,
        acknowledged_by=spec.acknowledgement.by if spec.acknowledgement else None,
        summary=summary,
        root_cause=spec.resolution.root_cause if spec.resolution else None,
    )


def notification_details(incident: Incident) -> dict[str, object]:
    details: dict[str, object] = {}
    sla = incident.status.sla
    if sla is not None and sla.next_update_by is not None:
        details["next_update_by"] = sla.next_update_by
    if incident.spec.roles is not None and incident.spec.roles.commander:
        details["commander"] = incident.spec.roles.commander
    return details
