"""Small helpers shared by the domain modules: time normalisation and text bounds.

Where it sits: the bottom of ``incidentops.domain``; every other domain module
may use it. Nothing here knows about incidents or policies.
"""

from __future__ import annotations

import datetime

__all__ = ["MESSAGE_LIMIT", "clip", "seconds_between", "stamp", "utc"]

MESSAGE_LIMIT = 1024
"""The longest message the API accepts (condition, timeline and notification messages)."""


def utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def stamp(moment: datetime.datetime) -> str:
    """A canonical text for ``moment`` (UTC, microseconds): stable inside notification keys.

    Timestamps round-trip through the API server as RFC 3339 text; normalising
    here means a key computed before and after a restart is the same.
    """
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), so it always fits the API's bounds."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def seconds_between(start: datetime.datetime, end: datetime.datetime) -> int:
    """Whole seconds from ``start`` to ``end``, never negative (clocks of people's laptops drift)."""
    return max(0, int((utc(end) - utc(start)).total_seconds()))
