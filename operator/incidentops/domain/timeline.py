"""The incident's timeline: what happened, for people, bounded.

Where it sits: ``plan`` turns the transitions it makes into entries,
``record_deliveries`` adds one entry per group of deliveries, ``start_episode``
records a reopen. The status keeps the newest :data:`TIMELINE_CAP` entries (the
full record goes to evidence), so an Incident stays well under 64 KiB.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from incidentops.api.incident import TimelineEntry
from incidentops.domain.common import clip, utc

__all__ = ["ACTOR_ALERTMANAGER", "ACTOR_OPERATOR", "TIMELINE_CAP", "append", "entry"]

TIMELINE_CAP = 100
"""Entries kept in ``status.timeline`` (the model's maximum); the oldest go first."""

ACTOR_OPERATOR = "operator"
ACTOR_ALERTMANAGER = "alertmanager"


def entry(at: datetime.datetime, kind: str, message: str, actor: str | None = ACTOR_OPERATOR) -> TimelineEntry:
    """One timeline entry; ``kind`` is a reason constant, the message is cut to the API's bound."""
    return TimelineEntry(at=utc(at), kind=kind, message=clip(message), actor=actor[:253] if actor else None)


def append(
    timeline: Sequence[TimelineEntry], entries: Iterable[TimelineEntry], cap: int = TIMELINE_CAP
) -> list[TimelineEntry]:
    """``timeline`` followed by ``entries``, keeping the newest ``cap``."""
    combined = [*timeline, *entries]
    return combined[-cap:] if len(combined) > cap else combined
