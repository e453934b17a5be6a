"""Make the channel a due notification goes to: resolve its Secrets, build it; and the message itself.

Where it sits: between the delivery queue (``queue.py``, which decides when
to attempt what) and ``notify`` (which knows how to talk to Slack, PagerDuty,
webhooks and SMTP). It reads the Secrets a channel names, refusing any Secret
that does not carry the ``incidentops.dev/channel-secret: "true"`` label, so a
policy author cannot send an arbitrary Secret of the namespace to a server of
their choosing (``domain.readiness.secret_problem`` judges, as it does for the
policy's Ready condition). A channel that cannot be made is a :class:`ChannelProblem`
whose message names the Secret and the key, never a value.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from incidentops import kube, notify
from incidentops.api import CHANNEL_SECRET_LABEL, EscalationPolicy, Incident, reasons
from incidentops.api.policy import Channel as ChannelSpec
from incidentops.domain.plan import Due
from incidentops.domain.readiness import SecretFacts, secret_problem
from incidentops.handlers.caches import TTLCache
from incidentops.handlers.deps import Dependencies


class ChannelProblem(Exception):
    """The channel cannot be made now (the message is safe to show anywhere).

    ``retryable``: the problem goes away with a change we cannot watch (a
    Secret created, labelled or completed, or given a usable value), so the
    notification is retried; ``secret``: it is a Secret's problem, which the
    policy's Ready condition should show at once.
    """

    def __init__(self, message: str, *, retryable: bool = True, secret: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.secret = secret


@dataclass(frozen=True)
class _Secret:
    """What a channel may use of a Secret (read once, cached briefly): its facts and its data."""

    facts: SecretFacts
    data: Mapping[str, str]


class Deliverer:
    def __init__(self, deps: Dependencies, session: aiohttp.ClientSession, retry: notify.RetryPolicy) -> None:
        self.deps = deps
        self.session = session
        self.retry = retry
        # A burst of pages through one channel reads its Secret once; a rotated (or a
        # late) Secret is seen within `cache_seconds`.
        self.secrets: TTLCache[_Secret | None] = TTLCache(deps.settings.cache_seconds)

    async def _read_secret(self, namespace: str, name: str) -> _Secret | None:
        secret = await kube.read_secret(self.deps.api, namespace, name)
        if secret is None:
            return None
        return _Secret(SecretFacts.of(secret.metadata.labels, secret.data), dict(secret.data or {}))

    async def secrets_for(self, namespace: str, channel: ChannelSpec) -> dict[str, str]:
        values: dict[str, str] = {}
        for ref in channel.secret_key_refs():
            try:
                secret = await self.secrets.get(
                    (namespace, ref.name), functools.partial(self._read_secret, namespace, ref.name)
                )
            except Exception as exc:
                # An API error (RBAC, the server down) is not the channel's fault, and may pass.
                status = getattr(exc, "status", None) or type(exc).__name__
                raise ChannelProblem(
                    f"Secret {ref.name!r} of channel {channel.name!r} could not be read ({status})", secret=True
                ) from exc
            problem = secret_problem(secret.facts if secret is not None else None, ref.key)
            if problem is not None or secret is None:  # (a missing Secret is always a problem)
                raise ChannelProblem(_unusable(problem, ref.name, ref.key, channel.name), secret=True)
            try:
                values[f"{ref.name}/{ref.key}"] = base64.b64decode(secret.data[ref.key]).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ChannelProblem(
                    f"key {ref.key!r} of Secret {ref.name!r} (channel {channel.name!r}) is not UTF-8 text",
                    secret=True,
                ) from exc
        return values

    async def channel(self, incident: Incident, policy: EscalationPolicy | None, due: Due) -> notify.Channel:
        """The channel ``due`` goes to, ready to send; :class:`ChannelProblem` if it cannot be made now."""
        spec = policy.spec.channel(due.channel) if policy is not None else None
        if policy is None or spec is None:
            raise ChannelProblem(f"channel {due.channel!r} is not defined by the policy", retryable=False)
        namespace = policy.metadata.namespace or incident.metadata.namespace or ""
        secrets = await self.secrets_for(namespace, spec)
        try:
            return notify.build_channel(spec, secrets, session=self.session, retry=self.retry)
        except notify.ChannelConfigError as exc:
            # A value read from a Secret (a URL, a key) is unusable: fixed by editing the Secret.
            raise ChannelProblem(str(exc), secret=bool(spec.secret_key_refs())) from exc


def _unusable(problem: str | None, secret: str, key: str, channel: str) -> str:
    """What :func:`~incidentops.domain.readiness.secret_problem` found, for the notification's record."""
    where = f"Secret {secret!r} of channel {channel!r}"
    if problem == reasons.SECRET_NOT_LABELLED:
        label, expected = CHANNEL_SECRET_LABEL
        return f"{where} lacks the label {label}={expected!r}"
    if problem == reasons.SECRET_KEY_MISSING:
        return f"{where} has no key {key!r}"
    return f"{where} not found"


def channel_type(policy: EscalationPolicy | None, due: Due) -> str:
    """The kind of the channel ``due`` goes to (for metrics), ``unknown`` when the policy has no such channel."""
    spec = policy.spec.channel(due.channel) if policy is not None else None
    return str(spec.type) if spec is not None else "unknown"


def notification(incident: Incident, due: Due, now: datetime.datetime) -> notify.Notification:
    """The message for ``due``, from the incident as it is now."""
    return notify.Notification(
        key=due.key,
        event=due.event,
        channel=due.channel,
        incident=incident_ref(incident),
        level=due.level,
        level_name=due.level_name,
        at=now,
        details=notification_details(incident, due),
    )


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
        # The episode's effective acknowledger (a containment counts), else the spec's record.
        acknowledged_by=status.acknowledged_by or (spec.acknowledgement.by if spec.acknowledgement else None),
        summary=summary,
        root_cause=spec.resolution.root_cause if spec.resolution else None,
    )


def notification_details(incident: Incident, due: Due | None = None) -> dict[str, object]:
    """What the templates say beyond the incident: the next update, the commander, and the event's own facts
    (which deadline was breached, which action did not happen)."""
    details: dict[str, object] = {}
    sla = incident.status.sla
    if sla is not None and sla.next_update_by is not None:
        details["next_update_by"] = sla.next_update_by
    if incident.spec.roles is not None and incident.spec.roles.commander:
        details["commander"] = incident.spec.roles.commander
    if due is not None and due.event == "sla-breached" and due.detail:
        details["breach"] = due.detail.lower()
        details["deadline"] = due.scheduled_at
    postmortem = incident.status.postmortem
    if due is not None and due.event in ("resolved", "postmortem-due") and postmortem is not None:
        if postmortem.due_by is not None:
            details["postmortem_due"] = postmortem.due_by
        if due.event == "postmortem-due" and postmortem.ref:
            details["postmortem_ref"] = postmortem.ref
    if due is not None and due.event == "action" and due.detail:
        record = next((r for r in incident.status.actions if r.name == due.detail), None)
        details["action"] = due.detail
        if record is not None:
            details.update(
                action_type=str(record.type),
                action_phase=str(record.phase),
                action_reason=record.reason,
                action_message=record.message,
                action_target=record.target,
            )
    return details
