"""The monthly report's schedule and record: when a policy's report is due, which month it covers, what to
write in the policy's status before it goes out, and what after.

Where it sits: ``handlers/reports.py`` keeps one entry per policy with ``reports.monthly`` in a
:class:`~incidentops.handlers.scheduler.Scheduler` of its own, woken at :func:`next_wake`; when it wakes it
asks :func:`step` what to do, writes the step's status (the intent), sends the report
(:mod:`incidentops.domain.report`) to the step's pending channels, and writes each outcome with
:func:`record`. Pure: the policy (with its status) and ``now`` in, decisions out.

When: the first day of each month, at the start of the business day (``businessHours.start``) in the
policy's time zone, or at midnight UTC without business hours; the report covers the calendar month before,
in that time zone. A policy created after this month's due time starts with next month's (it did not govern
last month); an operator that was down at the due time sends the month's report when it is back, once.

Once per month, across restarts and failovers, by the record in ``status.reports.monthly``:

1. Due and not recorded: the status gets ``period`` (the month), ``state: Sending`` and each channel
   ``Pending`` with its key, a hash of (policy uid, month, channel). This is written *before* anything is
   sent. A crash before this write: the next leader finds the month due and not recorded, and starts here.
2. Each Pending channel is sent the report under its key. A crash after sending and before recording: the
   next leader sends it again under the same key, which receivers see (``Idempotency-Key``, the e-mail
   ``Message-ID``) and drop as a duplicate: at least once, never under a second key, never skipped.
3. Each outcome is recorded (Sent, or Failed for good; a transient failure stays Pending with its attempts
   and is retried at the time :mod:`incidentops.domain.delivery` gives). When no channel is Pending:
   ``state: Sent``, ``lastSent`` the month. A month recorded Sent is never sent again.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from incidentops.api.policy import (
    EscalationPolicy,
    MonthlyReportStatus,
    ReportDelivery,
    ReportSendState,
    ReportsStatus,
)
from incidentops.domain.common import utc
from incidentops.domain.report import Period, monthly_due, next_monthly_due, previous_month, zone_of

__all__ = ["FAILED", "PENDING", "SENT", "Step", "due_at", "key", "next_wake", "record", "step", "with_monthly"]

PENDING = "Pending"
SENT = "Sent"
FAILED = "Failed"


def key(uid: str, period: str, channel: str) -> str:
    """The idempotency key of one month's report to one channel (stable across restarts and failovers)."""
    return hashlib.sha256(f"{uid}\x1freport\x1f{period}\x1f{channel}".encode()).hexdigest()[:32]


def _opening(policy: EscalationPolicy) -> datetime.time | None:
    hours = policy.spec.business_hours
    return hours.opening() if hours is not None else None


def due_at(policy: EscalationPolicy, now: datetime.datetime) -> datetime.datetime:
    """The latest due time not after ``now``: this month's (the first day of the month of ``now``, in the
    policy's time zone), or last month's while this month's is still to come (the 1st before the business
    day starts)."""
    zone, opening = zone_of(policy), _opening(policy)
    due = monthly_due(now, zone, opening)
    if due <= utc(now):
        return due
    return monthly_due(
        utc(now).astimezone(zone or datetime.UTC).replace(day=1) - datetime.timedelta(days=1), zone, opening
    )


@dataclass(frozen=True)
class Step:
    """The report to send now: the month, when it was due, the status to write before sending, and the
    channels still to be sent it."""

    period: Period
    due_at: datetime.datetime
    status: MonthlyReportStatus
    pending: tuple[ReportDelivery, ...]

    @property
    def retried_since(self) -> datetime.datetime:
        """What a failing channel's retries count from: the due time, or when the month was recorded if
        later (an operator down at the due time still gets its full retry period)."""
        recorded = self.status.recorded_at
        return max(self.due_at, utc(recorded)) if recorded is not None else self.due_at


def _monthly(policy: EscalationPolicy) -> MonthlyReportStatus | None:
    reports = policy.status.reports
    return reports.monthly if reports is not None else None


def step(policy: EscalationPolicy, now: datetime.datetime) -> Step | None:
    """What to send now, or None when nothing is due (no ``reports.monthly``, not yet the due time, this
    month's report already sent, or a policy created after it was due)."""
    monthly = policy.spec.reports.monthly if policy.spec.reports is not None else None
    if monthly is None:
        return None
    due = due_at(policy, now)
    created = policy.metadata.creation_timestamp
    if created is not None and utc(created) > due:
        return None
    period = previous_month(due, zone_of(policy))
    current = _monthly(policy) or MonthlyReportStatus()
    if current.last_sent is not None and current.last_sent >= period.label:
        return None
    uid = policy.metadata.uid or ""
    if current.period == period.label and current.state is ReportSendState.SENDING:
        known = {c.name for c in current.channels}
        channels = [
            *current.channels,
            *(
                ReportDelivery(name=c, key=key(uid, period.label, c), outcome=PENDING)
                for c in monthly.notify
                if c not in known
            ),
        ]
        recorded_at = current.recorded_at or utc(now)
    else:
        channels = [ReportDelivery(name=c, key=key(uid, period.label, c), outcome=PENDING) for c in monthly.notify]
        recorded_at = utc(now)
    status = current.model_copy(
        update={
            "period": period.label,
            "state": ReportSendState.SENDING,
            "channels": channels,
            "recorded_at": recorded_at,
        }
    )
    pending = tuple(c for c in channels if c.outcome == PENDING and c.name in monthly.notify)
    if not pending:
        status = _finished(status, now)
    return Step(period=period, due_at=due, status=status, pending=pending)


def _finished(status: MonthlyReportStatus, now: datetime.datetime) -> MonthlyReportStatus:
    return status.model_copy(update={"state": ReportSendState.SENT, "last_sent": status.period, "sent_at": utc(now)})


def record(
    status: MonthlyReportStatus,
    channel: str,
    outcome: str,
    attempts: int,
    message: str,
    now: datetime.datetime,
    *,
    still_notified: frozenset[str] | None = None,
) -> MonthlyReportStatus:
    """``status`` with one channel's outcome (``Pending``, ``Sent``, ``Failed``) recorded; Sent, with
    ``lastSent``, once no channel the policy still names is Pending."""
    channels = [
        c.model_copy(
            update={
                "outcome": outcome,
                "attempts": attempts,
                "at": utc(now),
                "message": message[:1024] if outcome != SENT else None,
            }
        )
        if c.name == channel
        else c
        for c in status.channels
    ]
    out = status.model_copy(update={"channels": channels})
    names = still_notified if still_notified is not None else frozenset(c.name for c in channels)
    if out.state is ReportSendState.SENDING and not any(c.outcome == PENDING and c.name in names for c in channels):
        out = _finished(out, now)
    return out


def with_monthly(policy_status: ReportsStatus | None, monthly: MonthlyReportStatus) -> ReportsStatus:
    """The policy's ``status.reports`` with ``monthly`` in it."""
    return (policy_status or ReportsStatus()).model_copy(update={"monthly": monthly})


def next_wake(policy: EscalationPolicy, now: datetime.datetime) -> datetime.datetime | None:
    """When to look at the policy's monthly report next: now if a report is due (or being sent), else the
    next due time; None without ``reports.monthly``."""
    if policy.spec.reports is None or policy.spec.reports.monthly is None:
        return None
    if step(policy, now) is not None:
        return utc(now)
    return next_monthly_due(now, zone_of(policy), _opening(policy))
