"""Message templates: one per event, modelled on the response plans' communication templates.

``templates/<event>.txt.j2`` extends ``templates/_base.txt.j2`` and defines two
blocks: ``subject`` (one line) and ``body``. The base puts a drill banner first
and a footer with the incident and the notification key last;
``templates/_layout.html.j2`` wraps the text in an HTML alternative. Text is
rendered without autoescaping (it is not markup); HTML with it. Undefined
variables are errors (``StrictUndefined``), so a template typo fails in tests
rather than sending a message with a hole in it.

Variables every template sees:

- ``incident`` (:class:`~incidentops.notify.base.IncidentRef`), ``event``,
  ``event_title``, ``key``, ``at``, ``level``, ``level_name``, ``channel``
- ``severity_label`` (``P1`` -> ``Critical`` ... ``P4`` -> ``Low``)
- ``elapsed``: time since the incident started, up to ``resolved_at`` or the
  notification time (``"1h 05m"``), or None
- every name of :data:`DETAILS`, None unless given in ``Notification.details``
  or as a keyword of :func:`render`

Filters: ``ts`` (a datetime as ``2025-01-31 14:05 UTC``; None as ``unknown``).
A drill's subject and text start with ``[DRILL]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import jinja2

from incidentops.notify.base import EVENTS, Notification, event_title

__all__ = ["DETAILS", "DRILL_PREFIX", "RenderedMessage", "format_duration", "format_ts", "render"]

DRILL_PREFIX: Final = "[DRILL]"

#: Optional, event-specific facts a caller may give (``Notification.details`` or keywords of :func:`render`).
DETAILS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        "impact": "who or what is affected, in a few words (users affected, services)",
        "commander": "who is responding: the incident commander, or the person on it",
        "author": "who wrote a status update (statusUpdate.by)",
        "next_update_by": "datetime: when stakeholders get the next update",
        "update_every": "the update cadence as written in the policy (e.g. '15m')",
        "after": "escalated: the level's delay (e.g. '30m'), the 'not acknowledged within X'",
        "until": "escalated: 'acknowledged' or 'resolved', what stops the level",
        "breach": "sla-breached: 'acknowledge', 'resolve' or 'update'",
        "deadline": "sla-breached: datetime, the deadline that passed",
        "resolved_at": "resolved: datetime of the resolution (default: the notification time)",
        "postmortem_due": "resolved, postmortem-due: datetime by which the post-mortem is (was) due",
        "postmortem_ref": "postmortem-due: the ConfigMap holding the draft",
        "action": "action: the action's name (status.actions[].name)",
        "action_type": "action: rollback, maintenance, quarantine, scale or snapshot",
        "action_phase": "action: Failed, or Skipped",
        "action_reason": "action: why (e.g. RateLimited, RollbackFailed)",
        "action_message": "action: what happened, in the operator's words",
        "action_target": "action: the object it was for (Kind namespace/name)",
    }
)

SEVERITY_LABELS: Final = MappingProxyType({"P1": "Critical", "P2": "High", "P3": "Medium", "P4": "Low"})
_BREACH_LABELS: Final = MappingProxyType(
    {"acknowledge": "acknowledgement", "resolve": "resolution", "update": "status update"}
)


@dataclass(frozen=True, kw_only=True)
class RenderedMessage:
    subject: str  # one line, no control characters
    text: str
    html: str | None = None


def format_ts(value: datetime | None) -> str:
    """``2025-01-31 14:05 UTC``; a naive datetime is taken as UTC; None is ``unknown``."""
    if value is None:
        return "unknown"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(delta: timedelta) -> str:
    """A duration for people: ``45s``, ``12m``, ``1h 05m``, ``2d 3h``."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("incidentops.notify", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_environment.filters["ts"] = format_ts

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def _tidy(text: str) -> str:
    # No runs of blank lines (conditional lines leave them), no trailing spaces.
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def render(event: str, notification: Notification, **extra: Any) -> RenderedMessage:
    """The subject, text and HTML of ``notification`` announced as ``event``.

    ``extra`` adds to (and overrides) ``notification.details``; a name that is
    not in :data:`DETAILS` is refused with a ``TypeError``.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    details = {**notification.details, **extra}
    unknown = sorted(set(details) - set(DETAILS))
    if unknown:
        raise TypeError(f"unknown message details: {', '.join(unknown)}")
    incident = notification.incident
    context: dict[str, Any] = dict.fromkeys(DETAILS)
    context.update(details)
    end = context["resolved_at"] if event == "resolved" and context["resolved_at"] else notification.at
    elapsed = format_duration(_aware(end) - _aware(incident.started_at)) if incident.started_at else None
    context.update(
        incident=incident,
        event=event,
        event_title=event_title(event),
        key=notification.key,
        at=notification.at,
        channel=notification.channel,
        level=notification.level,
        level_name=notification.level_name,
        severity_label=SEVERITY_LABELS.get(incident.severity, incident.severity),
        breach_label=_BREACH_LABELS.get(context["breach"] or "", context["breach"] or "response"),
        elapsed=elapsed,
    )
    template = _environment.get_template(f"{event}.txt.j2")
    subject = _one_line("".join(template.blocks["subject"](template.new_context(context))))
    if incident.drill:
        subject = f"{DRILL_PREFIX} {subject}"
    text = _tidy(template.render(context))
    html = _environment.get_template("_layout.html.j2").render({**context, "subject": subject, "body": text})
    return RenderedMessage(subject=subject, text=text, html=html)
