"""The escalation plan: notification keys, and which levels page whom, when.

Where it sits: ``plan`` calls :func:`escalate` with the policy in effect, the
effective severity, the episode's facts and the cursor (``status.escalation``);
it answers with the pages due now, the cursor to write, the next moment a
level or round is due, and whether the chain is exhausted. ``announcements``
uses :func:`reached_channels` to tell the people already paged.

The model (DESIGN.md "EscalationPolicy"):

- A level applies to the incident's severity with ``after``, or with its
  ``afterBySeverity`` entry (no entry: the level is skipped). Its time is
  counted from the episode's start.
- ``until: acknowledged`` levels page while nobody has acknowledged (or
  resolved); with ``repeat {times, every}`` round k (1..times) starts at
  episode start + k x every and runs these levels again, at the same delays.
  A round supersedes the one before: pages of a past round that never went
  out are not sent late.
- ``until: resolved`` levels (stakeholders) are notified once per episode when
  due, acknowledged or not, unless resolved by then; they never repeat.
- The level that pages first in round 0 (shortest delay, then policy order)
  announces ``triggered``; every other page ``escalated``.
- Containment counts as acknowledgement (``EpisodeFacts.acknowledged``).
- A level with ``during: businessHours`` pages at its time if the policy's
  business hours are open then, else when they next open (``businesstime``).

Keys (:func:`notification_key`): SHA-256 of (scheme, incident uid, episode,
round, level name, channel, event), 64 hex characters. A page's event part is
the constant ``page``, not ``triggered``/``escalated``: the wording of a page
may change (a severity change can make another level the first) but the page
must not be sent twice. Stakeholder pages use round 0 (once per episode).

Exhausted: nobody acknowledged, and the last people paged had the time the
policy gives anyone to answer a page: ``acknowledgeWithin`` of the severity
after the last page of the last round (counted in business time when the
severity's clock is), and with ``repeat`` at least until the last round would
have repeated. Never in the plan that sends the last page.

The cursor never goes back within an episode: the round only grows (frozen
at acknowledgement), the level is the highest level index reached. A policy
edit changes times and channels, never the keys of what was already sent.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import ConditionStatus, Severity, parse_duration
from incidentops.api.incident import EscalationStatus
from incidentops.api.policy import BusinessHours, During, EffectiveSLA, EscalationPolicy, Level, Until
from incidentops.domain import businesstime
from incidentops.domain.common import utc
from incidentops.domain.decisions import ESCALATED, TRIGGERED, Due
from incidentops.domain.lifecycle import ConditionValue, EpisodeFacts

__all__ = [
    "KEY_SCHEME",
    "PAGE",
    "EscalationDecision",
    "Reach",
    "Rounds",
    "Step",
    "escalate",
    "exhausted_condition",
    "live_page_keys",
    "notification_key",
    "order_channels",
    "page_key",
    "reached_channels",
    "rounds_of",
    "steps_for",
]

KEY_SCHEME: Final = "incidentops/v1"
"""Versions the key's inputs: a change of what goes into a key gets a new scheme."""

PAGE: Final = "page"
"""The event part of a level's page key (both ``triggered`` and ``escalated``)."""


def notification_key(uid: str, episode: int, round: int, level_name: str | None, channel: str, event: str) -> str:
    """The notification key: stable across retries, restarts and failovers; 64 hex characters.

    ``event`` carries a discriminator when an event can recur within an episode
    (``update-due@<deadline>``, ``status-update@<at>``, ``sla-breached:<kind>@<deadline>``).
    """
    parts = (KEY_SCHEME, uid, str(episode), str(round), level_name or "", channel, event)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Step:
    """A level as it applies to the incident's severity."""

    index: int
    name: str
    delay: datetime.timedelta
    repeats: bool
    """``until: acknowledged``: pages until acknowledged, and again in every repeat round."""
    channels: tuple[str, ...]
    business_hours_only: bool = False
    """``during: businessHours``: a page due outside the hours waits until they open."""

    def due_at(self, round_start: datetime.datetime, hours: BusinessHours | None) -> datetime.datetime:
        """When this level pages in the round that starts at ``round_start``."""
        at = round_start + self.delay
        if self.business_hours_only and hours is not None:
            return businesstime.next_open(hours, at)
        return at


@dataclass(frozen=True)
class Rounds:
    """The repeat rounds: round 0, then ``times`` more, ``every`` apart."""

    times: int
    every: datetime.timedelta | None

    def start(self, episode_start: datetime.datetime, k: int) -> datetime.datetime:
        """When round ``k`` starts."""
        return episode_start if k == 0 or self.every is None else episode_start + self.every * k

    def current(self, episode_start: datetime.datetime, now: datetime.datetime) -> int:
        """The latest round started by ``now``."""
        if self.every is None or now < episode_start:
            return 0
        return min(self.times, (now - episode_start) // self.every)


def _step(index: int, level: Level, delay: datetime.timedelta) -> Step:
    return Step(
        index=index,
        name=level.name,
        delay=delay,
        repeats=level.until is Until.ACKNOWLEDGED,
        channels=tuple(level.notify),
        business_hours_only=level.during is During.BUSINESS_HOURS,
    )


def steps_for(policy: EscalationPolicy, severity: Severity) -> tuple[Step, ...]:
    """The policy's levels that apply to ``severity``, in policy order."""
    steps = []
    for index, level in enumerate(policy.spec.levels):
        delay = level.delay_for(severity)
        if delay is not None:
            steps.append(_step(index, level, delay))
    return tuple(steps)


def rounds_of(policy: EscalationPolicy) -> Rounds:
    """The policy's repeat rounds (one round without ``repeat``)."""
    repeat = policy.spec.repeat
    if repeat is None:
        return Rounds(times=0, every=None)
    every = parse_duration(repeat.every)
    if every <= datetime.timedelta(0):
        return Rounds(times=0, every=None)  # no spacing, no rounds: never loop on the spot
    return Rounds(times=repeat.times, every=every)


def page_key(uid: str, episode: int, round: int, level_name: str, channel: str) -> str:
    """The key of a level's page to ``channel`` in ``round``."""
    return notification_key(uid, episode, round, level_name, channel, PAGE)


@dataclass(frozen=True)
class EscalationDecision:
    """What the escalation plan says as of now."""

    pages: tuple[Due, ...]
    """Pages due now, in order of their time, then level."""
    round: int
    level: int | None
    level_name: str | None
    next_at: datetime.datetime | None
    """When the next page or round is due; None when nothing more is scheduled."""
    exhausted: bool
    exhausts_at: datetime.datetime | None
    """When the chain will be exhausted if nobody acknowledges (a wake-up); None when not ahead."""
    has_levels: bool
    """Whether any level applies to the incident's severity."""


def escalate(
    policy: EscalationPolicy,
    severity: Severity,
    uid: str,
    facts: EpisodeFacts,
    cursor: EscalationStatus,
    now: datetime.datetime,
    sla: EffectiveSLA | None = None,
) -> EscalationDecision:
    """The pages due now and the cursor to write (see the module doc).

    ``sla`` (the severity's response times) says how long the last page is given before the chain is
    exhausted; without it the policy's own for ``severity``.
    """
    now = utc(now)
    start = facts.started_at
    hours = policy.spec.business_hours
    sla = sla or policy.spec.sla_for(severity)
    steps = steps_for(policy, severity)
    rounds = rounds_of(policy)
    paging = [s for s in steps if s.repeats]
    stakeholders = [s for s in steps if not s.repeats]
    stopped = facts.paging_stopped
    resolved = facts.resolved is not None
    # The round never goes back (a policy edit may shorten `every`), and freezes once acknowledged.
    round_ = cursor.round if stopped else max(cursor.round, rounds.current(start, now))
    round_start = rounds.start(start, round_)
    paging_this_round = not stopped and round_ <= rounds.times

    scheduled: list[tuple[datetime.datetime, Step, int]] = []
    if paging_this_round:
        scheduled += [(s.due_at(round_start, hours), s, round_) for s in paging]
    if not resolved:
        scheduled += [(s.due_at(start, hours), s, 0) for s in stakeholders]
    scheduled.sort(key=lambda item: (item[0], item[1].index))

    # The level that pages first (its delay, then its place) announces the incident: "triggered".
    first = min(steps, key=lambda s: (s.delay, s.index)).index if steps else None
    done = set(cursor.notified)
    pages: list[Due] = []
    for at, step, k in scheduled:
        if at > now:
            continue
        event = TRIGGERED if step.index == first and k == 0 else ESCALATED
        for channel in step.channels:
            key = page_key(uid, facts.episode, k, step.name, channel)
            if key not in done:
                pages.append(Due(key, channel, event, step.index, step.name, k, scheduled_at=at))

    upcoming = [at for at, _, _ in scheduled if at > now]
    if paging and not stopped and round_ < rounds.times:
        upcoming.append(rounds.start(start, round_ + 1))

    exhausts_at = _exhausts_at(rounds, start, paging, sla, hours)
    # Once stopped, what happened before the acknowledgement stays true.
    exhausted = cursor.exhausted if stopped else (exhausts_at is not None and now >= exhausts_at)

    level, level_name = cursor.level, cursor.level_name
    for page in pages:
        if page.level is not None and (level is None or page.level > level):
            level, level_name = page.level, page.level_name
    return EscalationDecision(
        pages=tuple(pages),
        round=round_,
        level=level,
        level_name=level_name,
        next_at=min(upcoming, default=None),
        exhausted=exhausted,
        exhausts_at=exhausts_at if exhausts_at is not None and not stopped and exhausts_at > now else None,
        has_levels=bool(steps),
    )


def _exhausts_at(
    rounds: Rounds,
    start: datetime.datetime,
    paging: Sequence[Step],
    sla: EffectiveSLA,
    hours: BusinessHours | None,
) -> datetime.datetime | None:
    """When the last people paged have had their time (see the module doc). None without paging levels."""
    if not paging:
        return None
    last_start = rounds.start(start, rounds.times)
    last_page = max(s.due_at(last_start, hours) for s in paging)
    if sla.business_clock and hours is not None:
        answered_by = businesstime.add(hours, last_page, sla.acknowledge_within)
    else:
        answered_by = last_page + sla.acknowledge_within
    # A zero acknowledgeWithin still gives the last page a moment: never the plan that sends it.
    answered_by = max(answered_by, last_page + _MIN_GRACE)
    if rounds.every is not None:
        answered_by = max(answered_by, last_start + rounds.every)
    return answered_by


_MIN_GRACE = datetime.timedelta(seconds=1)


def exhausted_condition(
    policy: EscalationPolicy | None, decision: EscalationDecision | None, facts: EpisodeFacts
) -> ConditionValue:
    """EscalationExhausted from the decision."""
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    if policy is None or decision is None:
        return ConditionValue(
            cond.ESCALATION_EXHAUSTED, ConditionStatus.UNKNOWN, reasons.NO_ESCALATION_POLICY, "no policy in effect"
        )
    if decision.exhausted:
        rounds = rounds_of(policy).times + 1
        return ConditionValue(
            cond.ESCALATION_EXHAUSTED,
            true,
            reasons.ESCALATION_EXHAUSTED,
            f"every level was paged ({rounds} round{'s' if rounds != 1 else ''}) and nobody acknowledged",
        )
    if not decision.has_levels:
        return ConditionValue(
            cond.ESCALATION_EXHAUSTED, false, reasons.NO_LEVELS, "no level of the policy applies to this severity"
        )
    if facts.acknowledged is not None:
        return ConditionValue(
            cond.ESCALATION_EXHAUSTED, false, reasons.ESCALATION_STOPPED, f"acknowledged by {facts.acknowledged.by}"
        )
    if facts.resolved is not None:
        return ConditionValue(cond.ESCALATION_EXHAUSTED, false, reasons.ESCALATION_STOPPED, "resolved")
    return ConditionValue(
        cond.ESCALATION_EXHAUSTED, false, reasons.ESCALATION_IN_PROGRESS, f"round {decision.round + 1} in progress"
    )


@dataclass(frozen=True)
class Reach:
    """A channel some level notified in this episode."""

    channel: str
    at: datetime.datetime
    """The earliest scheduled time of a page that reached it."""
    paging: bool
    """Reached by an ``until: acknowledged`` level."""


def _all_steps(policy: EscalationPolicy, severity: Severity) -> list[Step]:
    """Every level, whatever the severity is now (reach is judged on what was sent, and a severity
    change must not forget a channel already paged); its delay for ``severity`` when it has one."""
    steps = []
    for index, level in enumerate(policy.spec.levels):
        delay = level.delay_for(severity)
        steps.append(_step(index, level, delay if delay is not None else min(level.delays())))
    return steps


def reached_channels(
    policy: EscalationPolicy,
    severity: Severity,
    uid: str,
    facts: EpisodeFacts,
    round_: int,
    done: Collection[str],
) -> tuple[Reach, ...]:
    """The channels any level of ``policy`` has notified in this episode (keys in ``done``), in the
    policy's channel order. Read from keys, never from the bounded ``notifications``."""
    rounds = rounds_of(policy)
    hours = policy.spec.business_hours
    found: dict[str, Reach] = {}
    for step in _all_steps(policy, severity):
        for k in range(round_ + 1) if step.repeats else (0,):
            for channel in step.channels:
                if page_key(uid, facts.episode, k, step.name, channel) not in done:
                    continue
                at = step.due_at(rounds.start(facts.started_at, k), hours)
                previous = found.get(channel)
                found[channel] = Reach(
                    channel=channel,
                    at=min(at, previous.at) if previous else at,
                    paging=step.repeats or (previous is not None and previous.paging),
                )
    order = {channel.name: i for i, channel in enumerate(policy.spec.channels)}
    return tuple(sorted(found.values(), key=lambda r: (order.get(r.channel, len(order)), r.channel)))


def live_page_keys(policy: EscalationPolicy, uid: str, episode: int, round_: int) -> set[str]:
    """Page keys that may still be due: the current round's, and the stakeholder levels'.

    Keys of past rounds can never be due again (a round supersedes the one
    before), so they are the first to go when ``notified`` must shrink.
    """
    keys: set[str] = set()
    for level in policy.spec.levels:
        k = round_ if level.until is Until.ACKNOWLEDGED else 0
        keys.update(page_key(uid, episode, k, level.name, channel) for channel in level.notify)
    return keys


def order_channels(policy: EscalationPolicy, channels: Sequence[str]) -> list[str]:
    """``channels`` without duplicates, in the policy's channel order."""
    order = {channel.name: i for i, channel in enumerate(policy.spec.channels)}
    return sorted(set(channels), key=lambda c: (order.get(c, len(order)), c))
