"""What becomes of a notification after an attempt, and whether one still waiting is moot.

Where it sits: beside ``plan``. The delivery queue (``incidentops.handlers.queue``)
makes the attempts; after each one it asks :func:`after_attempt` whether the
notification is delivered, waits for a retry (and until when), or has failed
for good; before each retry it asks :func:`moot` whether planning the incident
afresh still lists it as due; and it writes what happened with
:func:`record_outcomes`, announcing the first failure of each notification
with :func:`failure_notices`.

The rules (DESIGN.md "Deliveries"):

- A refusal that will stay a refusal (a 4xx other than 408 and 429, a
  redirect, an SMTP 5xx) fails the notification at once: ``Failed``, and the
  key is used up, so escalation goes on.
- Anything else (5xx, 408, 429, a time-out, a connection that fails, a channel
  Secret that is missing, unlabelled or incomplete) is retried under the same
  key with exponential backoff, jitter and a cap, or after the server's
  ``Retry-After``. Meanwhile the notification is ``Pending`` (attempts, last
  error) and its key stays due.
- Until when: it is delivered; or it is moot (planning afresh no longer lists
  it: acknowledged, resolved, a later round or episode, a policy edit); or it
  is :attr:`RetryRules.max_age` older than when it became due, and then it is
  ``Failed``. A moot notification is recorded ``Skipped`` with the reason; as
  nothing was sent, its channel does not count as reached.

Why Secret problems are retried, even an unlabelled Secret: every one of them
is fixed by a change to the Secret, which the operator cannot watch (it may
only ``get`` Secrets). A page that should go out and does not is the worst
defect this product can have, so it keeps trying (with the backoff's cap as
the polling period) and says what to fix, on the policy's Ready condition,
until the page is moot or too old.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.incident import IncidentStatus, NotificationOutcome, NotificationRecord
from incidentops.domain import timeline
from incidentops.domain.decisions import Due, Transition
from incidentops.domain.plan import WARNING, Plan, record_deliveries

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "SKIPPED",
    "Attempted",
    "Moot",
    "Result",
    "RetryRules",
    "Verdict",
    "after_attempt",
    "attempts_so_far",
    "backoff",
    "failure_notices",
    "gives_up_at",
    "moot",
    "record_outcomes",
]

DELIVERED: Final = "Delivered"
PENDING: Final = "Pending"
FAILED: Final = "Failed"
SKIPPED: Final = "Skipped"

Result = tuple[Due, str, int, str]
"""``(due, outcome, attempts, message)``: what :func:`record_outcomes` (and ``record_deliveries``) take."""


@dataclass(frozen=True)
class RetryRules:
    """How patiently a notification is retried."""

    initial_delay: float = 1.0
    """Seconds before the first retry."""
    multiplier: float = 2.0
    max_delay: float = 60.0
    """Cap of the computed backoff: a channel that is down is tried again at least this often."""
    jitter: float = 0.2
    """+/- fraction of randomness on computed delays (never on a server's ``Retry-After``)."""
    max_age: datetime.timedelta = datetime.timedelta(hours=1)
    """A notification still not delivered this long after it became due has failed."""
    max_retry_after: float = 600.0
    """A server's ``Retry-After`` is honoured up to this many seconds."""

    def __post_init__(self) -> None:
        if min(self.initial_delay, self.max_delay, self.max_retry_after) < 0 or self.multiplier < 1:
            raise ValueError("delays must not be negative, the multiplier at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")


@dataclass(frozen=True)
class Attempted:
    """What one attempt found (``reason`` already free of secrets)."""

    delivered: bool
    reason: str
    retryable: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What to do next: record ``outcome``; for ``Pending``, try again at ``retry_at``."""

    outcome: str
    message: str
    retry_at: datetime.datetime | None = None

    @property
    def final(self) -> bool:
        return self.outcome != PENDING


def backoff(rules: RetryRules, attempts: int, retry_after: float | None, jitter: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt.

    ``jitter`` is a random number in [-1, 1] from the caller (the domain draws
    none); a server's ``Retry-After`` is taken as it is, within
    [``initial_delay``, ``max_retry_after``].
    """
    if retry_after is not None:
        return min(max(retry_after, rules.initial_delay), rules.max_retry_after)
    base = min(rules.initial_delay * rules.multiplier ** max(attempts - 1, 0), rules.max_delay)
    return max(0.0, base * (1 + rules.jitter * max(-1.0, min(1.0, jitter))))


def gives_up_at(rules: RetryRules, due_at: datetime.datetime) -> datetime.datetime:
    """When a notification that became due at ``due_at`` stops being retried."""
    return due_at + rules.max_age


def after_attempt(
    rules: RetryRules,
    attempt: Attempted,
    *,
    attempts: int,
    due_at: datetime.datetime,
    now: datetime.datetime,
    jitter: float = 0.0,
) -> Verdict:
    """The verdict on a notification after its ``attempts``-th attempt (counted over its whole life)."""
    if attempt.delivered:
        return Verdict(DELIVERED, attempt.reason)
    if not attempt.retryable:
        return Verdict(FAILED, attempt.reason)
    deadline = gives_up_at(rules, due_at)
    if now >= deadline:
        noun = "attempt" if attempts == 1 else "attempts"
        return Verdict(FAILED, f"{attempt.reason} (gave up after {attempts} {noun} in {_duration(rules.max_age)})")
    delay = datetime.timedelta(seconds=backoff(rules, attempts, attempt.retry_after, jitter))
    return Verdict(PENDING, attempt.reason, min(now + delay, deadline))


def _duration(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class Moot:
    """Why a notification waiting for an attempt need not be sent any more."""

    reason: str
    recorded: bool = False
    """Its key is already recorded as done (nothing to write)."""


def moot(fresh: Plan, due: Due, episode: int) -> Moot | None:
    """None while planning afresh (``fresh``) still lists ``due``; else why not.

    ``episode`` is the episode the notification was planned in.
    """
    if any(d.key == due.key for d in fresh.due):
        return None
    status = fresh.status
    if status.escalation is not None and due.key in status.escalation.notified:
        return Moot("already recorded", recorded=True)
    if any(r.key == due.key and r.outcome is NotificationOutcome.SKIPPED for r in status.notifications):
        return Moot("already recorded", recorded=True)
    if (status.episode or 1) != episode:
        return Moot(f"episode {status.episode} started")
    if cond.is_true(status.conditions, cond.RESOLVED):
        return Moot("the incident is resolved")
    if cond.is_true(status.conditions, cond.ACKNOWLEDGED):
        return Moot("the incident was acknowledged")
    if status.escalation is not None and status.escalation.round > due.round and due.level is not None:
        return Moot(f"round {status.escalation.round + 1} started")
    return Moot("no longer due (the policy changed)")


def _pending_record(status: IncidentStatus, key: str) -> NotificationRecord | None:
    return next(
        (r for r in status.notifications if r.key == key and r.outcome is NotificationOutcome.PENDING),
        None,
    )


def attempts_so_far(status: IncidentStatus, key: str) -> int:
    """Attempts already made for ``key`` by an earlier process (its Pending record), else 0."""
    record = _pending_record(status, key)
    return record.attempts if record is not None else 0


def _label(due: Due) -> str:
    detail = due.level_name or due.detail
    return f"{due.event} ({detail})" if detail else due.event


def record_outcomes(status: IncidentStatus, results: Sequence[Result], now: datetime.datetime) -> IncidentStatus:
    """``status`` with ``results`` recorded.

    Delivered and Failed go through ``record_deliveries``: the key is used up.
    Skipped (moot) is recorded the same way but leaves ``escalation.notified``
    as it was: nothing was sent, so the channel does not count as reached (it
    is not told "acknowledged" of a page it never got); planning no longer
    lists the key anyway, which is what made it moot. A Pending one replaces
    the notification's record (attempts, last error) and leaves the key due;
    only the first Pending of a notification adds a timeline entry ("not
    delivered yet ...; retrying"), so a channel that stays down for an hour
    does not push the incident's history out of the bounded timeline.
    """
    final = [r for r in results if r[1] not in (PENDING, SKIPPED)]
    out = record_deliveries(status, final, now)
    for result in results:
        if result[1] != SKIPPED:
            continue
        skipped = record_deliveries(out, [result], now)
        cursor = skipped.escalation
        if cursor is not None and out.escalation is not None:
            cursor = cursor.model_copy(update={"notified": out.escalation.notified})
        out = skipped.model_copy(update={"escalation": cursor})
    for due, outcome, attempts, message in results:
        if outcome != PENDING:
            continue
        first = _pending_record(status, due.key) is None
        recorded = record_deliveries(out, [(due, outcome, attempts, message)], now)
        entries = (
            [
                timeline.entry(
                    now,
                    reasons.NOTIFICATION_FAILED,
                    f"{_label(due)}: {due.channel} not delivered yet ({message}); retrying",
                )
            ]
            if first
            else []
        )
        out = recorded.model_copy(update={"timeline": timeline.append(out.timeline, entries)})
    return out


def failure_notices(status: IncidentStatus, results: Sequence[Result]) -> tuple[Transition, ...]:
    """The Warning Events for ``results`` recorded onto ``status``: one per failing notification.

    A notification is announced when it first fails (Pending or Failed with no
    Pending record before), not at every retry, and not again when it gives up.
    """
    notices = []
    for due, outcome, _attempts, message in results:
        if outcome not in (PENDING, FAILED) or _pending_record(status, due.key) is not None:
            continue
        then = "; retrying" if outcome == PENDING else ""
        notices.append(
            Transition(
                WARNING,
                reasons.NOTIFICATION_FAILED,
                f"{_label(due)} to channel {due.channel} failed: {message}{then}"[:1024],
            )
        )
    return tuple(notices)
