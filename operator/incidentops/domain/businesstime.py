"""Business time: the policy's working hours, for ``during: businessHours`` levels and ``clock: business``
response times.

Where it sits: ``escalation`` asks :func:`next_open` when a level that notifies only during business hours
may page; ``sla`` asks :func:`add` and :func:`elapsed` for the acknowledge and update deadlines of a
severity whose clock counts business time. Pure: the hours come from the policy, the moments are passed in.

The working day is local time in the policy's time zone (``zoneinfo``), so a day that gains or loses an
hour to a change of summer time still opens and closes when the wall clock says (its length in UTC
changes only when the change falls inside the hours). There are no holidays: a public holiday is a
working day unless the policy's ``days`` leave it out.

Hand-written because no maintained library in the dependency set does working-hours arithmetic over
``zoneinfo``; each function walks whole days, at most a bounded number of them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from incidentops.api.policy import BusinessHours
from incidentops.domain.common import utc

__all__ = ["add", "elapsed", "intervals", "is_open", "next_open"]

_MAX_DAYS = 400 * 7
"""A bound on the days walked (a 168h business duration spans about five weeks); never reached in practice."""


def _day_interval(hours: BusinessHours, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    zone = hours.zone()
    opening = datetime.datetime.combine(day, hours.opening(), tzinfo=zone)
    closing = datetime.datetime.combine(day, hours.closing(), tzinfo=zone)
    return utc(opening), utc(closing)


def intervals(hours: BusinessHours, since: datetime.datetime) -> Iterator[tuple[datetime.datetime, datetime.datetime]]:
    """The working intervals ``[open, close)`` in UTC that end after ``since``, in order (a bounded walk)."""
    since = utc(since)
    day = since.astimezone(hours.zone()).date() - datetime.timedelta(days=1)
    working = hours.weekdays()
    for _ in range(_MAX_DAYS):
        if day.weekday() in working:
            opening, closing = _day_interval(hours, day)
            if closing > since and closing > opening:
                yield opening, closing
        day += datetime.timedelta(days=1)


def is_open(hours: BusinessHours, moment: datetime.datetime) -> bool:
    """Whether ``moment`` is within the working hours."""
    moment = utc(moment)
    for opening, closing in intervals(hours, moment):
        return opening <= moment < closing
    return False


def next_open(hours: BusinessHours, moment: datetime.datetime) -> datetime.datetime:
    """``moment`` if the working hours are open then, else when they next open."""
    moment = utc(moment)
    for opening, closing in intervals(hours, moment):
        return max(opening, moment) if moment < closing else opening
    return moment  # pragma: no cover - days is never empty, so a working day always comes


def add(hours: BusinessHours, start: datetime.datetime, duration: datetime.timedelta) -> datetime.datetime:
    """The moment when ``duration`` of working time has passed since ``start``.

    A zero duration gives ``start`` itself, open or not: nothing has to be counted.
    """
    start = utc(start)
    if duration <= datetime.timedelta(0):
        return start
    left = duration
    for opening, closing in intervals(hours, start):
        begin = max(opening, start)
        available = closing - begin
        if left <= available:
            return begin + left
        left -= available
    return start + duration  # pragma: no cover - the walk is bounded far beyond any duration the API allows


def elapsed(hours: BusinessHours, start: datetime.datetime, end: datetime.datetime) -> datetime.timedelta:
    """The working time between ``start`` and ``end`` (zero when ``end`` is not after ``start``)."""
    start, end = utc(start), utc(end)
    total = datetime.timedelta(0)
    if end <= start:
        return total
    for opening, closing in intervals(hours, start):
        if opening >= end:
            break
        total += min(closing, end) - max(opening, start)
    return total
