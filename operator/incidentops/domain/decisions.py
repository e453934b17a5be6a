"""The decisions the domain hands to the glue: notifications due now, and Events to post.

Where it sits: produced by ``escalation`` and ``announcements``, gathered by
``plan``, consumed by the scheduler and the handlers (which send and post
exactly these, nothing else). Re-exported by ``incidentops.domain.plan``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACKNOWLEDGED",
    "ACTION",
    "ESCALATED",
    "EVENTS",
    "POSTMORTEM_DUE",
    "RESOLVED",
    "SLA_BREACHED",
    "STATUS_UPDATE",
    "TRIGGERED",
    "UPDATE_DUE",
    "Due",
    "Transition",
]

TRIGGERED: Final = "triggered"
ESCALATED: Final = "escalated"
UPDATE_DUE: Final = "update-due"
SLA_BREACHED: Final = "sla-breached"
STATUS_UPDATE: Final = "status-update"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"
ACTION: Final = "action"
POSTMORTEM_DUE: Final = "postmortem-due"

EVENTS: Final[tuple[str, ...]] = (
    TRIGGERED,
    ESCALATED,
    UPDATE_DUE,
    SLA_BREACHED,
    STATUS_UPDATE,
    ACKNOWLEDGED,
    RESOLVED,
    ACTION,
    POSTMORTEM_DUE,
)
"""Every event a notification announces (the notifiers' ``EVENTS``)."""


@dataclass(frozen=True)
class Due:
    """A notification to send now.

    ``key`` is stable (see :func:`incidentops.domain.escalation.notification_key`):
    the same notification planned again, after a retry, a restart or a
    failover, has the same key, and a key once recorded is never due again.
    """

    key: str
    """The notification key: 64 hex characters of SHA-256."""

    channel: str
    """The policy channel to send to."""

    event: str
    """One of :data:`EVENTS`."""

    level: int | None
    """For a level's page: the index of the level in the policy; otherwise None."""

    level_name: str | None
    """For a level's page: the level's name; otherwise None."""

    round: int
    """The repeat round of a page (0 first); 0 for everything else."""

    scheduled_at: datetime.datetime | None = None
    """When it became due (the level's time, the deadline, the update's ``at``): for lateness metrics
    and for the message ("not acknowledged by ...")."""

    detail: str | None = None
    """Event-specific detail: the breach kind (``Acknowledge``, ``Resolve``) of an ``sla-breached``, the
    action's name of an ``action``."""

    @property
    def at(self) -> datetime.datetime | None:
        """Alias of :attr:`scheduled_at` (when it became due; lateness is measured from it)."""
        return self.scheduled_at


@dataclass(frozen=True)
class Transition:
    """A Kubernetes Event to post on the Incident, for a change the plan makes."""

    type: str
    """``Normal`` or ``Warning``."""

    reason: str
    """A constant of ``incidentops.api.reasons``."""

    message: str
    """For people; at most 1024 characters."""
