"""The incident report: a period's incidents, their response times against the policy targets, and what is
still open after them (the seeds' monthly incident report).

Where it sits: ``kubectl incident report`` (the plugin) lists the Incidents and their policies and calls
:func:`build`; the operator's monthly report (``handlers/reports.py``) does the same for the incidents a
policy governs, on the first day of each month (:func:`monthly_due`, :func:`previous_month`), and sends
:func:`~incidentops.domain.report_text.markdown` of it. Pure: the objects, the period and ``now`` come in, a
:class:`Report` goes out.

Which incidents belong to a period ``[start, end)``:

- An incident belongs to the period in which it was opened (its creation, where its first episode starts).
  Totals, the counts by severity and by type, the average duration, drills, the alert names and labels, and
  the reopened incidents count the incidents opened in the period, so every incident counts in exactly one
  period and the counts by severity (or by type) add up to the total.
- Response times (MTTA, MTTR) and SLA breaches are per episode, as ``status.episodes[]`` (the closed ones) and
  ``status.metrics`` / ``status.sla.breaches`` (the current one) record them: an episode counts in the period
  in which it started, whichever period its incident was opened in (a reopen in December of a November
  incident is December's).
- Post-mortems and action items are a snapshot at ``now``: of the incidents opened before the period's end,
  those not done yet (a backlog does not vanish with the month it began in).
- Drills (``spec.drill``) rehearse the plan: they are reported apart (with their assessment when there is
  one) and counted in no total, response time or breach.

The duration of an incident is the time it was open: the sum of its episodes' times to resolve, for an
incident whose every episode is resolved (others are counted, not averaged). An episode meets its
acknowledgement (or resolution) target when it was acknowledged (resolved) and the operator recorded no
Acknowledge (Resolve) breach for it: the operator judged the deadline with the policy's clock (business
hours for P3/P4 when the policy has them), which a wall-clock comparison here could not.

Some fields are read from the raw object, tolerantly, because they may be newer than this module or written
by a newer operator: ``status.postmortem.state`` (Pending, Draft, Overdue, Done, NotRequired; an unknown
state counts as open), ``spec.postmortem.actionItems[]`` and a drill's ``status.assessment``.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from incidentops.api.common import Severity
from incidentops.api.incident import BreachKind, Incident
from incidentops.api.policy import DEFAULT_SEVERITY, EffectiveSLA, EscalationPolicy, default_sla
from incidentops.domain.common import utc

__all__ = [
    "ActionItemLine",
    "AlertCount",
    "DrillLine",
    "EpisodeTimes",
    "LabelCount",
    "Period",
    "PostmortemLine",
    "Reopened",
    "Report",
    "SeverityLine",
    "Subject",
    "Totals",
    "Trend",
    "TypeLine",
    "build",
    "episodes_of",
    "month_period",
    "monthly_due",
    "next_monthly_due",
    "parse_month",
    "parse_since",
    "previous_month",
    "since_period",
    "subject_of",
    "trend",
    "zone_of",
]

TOP = 10
"""How many alert names and labels the report lists."""

DONE_POSTMORTEM_STATES = frozenset({"Done", "NotRequired"})
"""Post-mortem states that are not open; any other state (Pending, Draft, Overdue, or one this version does
not know) is open."""

_DONE_ITEM_STATES = frozenset({"done", "closed", "completed", "resolved"})

# --- periods -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``[start, end)``, and how people name it (``2026-11``, ``30d to 2026-12-02``)."""

    start: datetime.datetime
    end: datetime.datetime
    label: str

    def __post_init__(self) -> None:
        if utc(self.end) <= utc(self.start):
            raise ValueError("a period must end after it starts")

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime.datetime) and utc(self.start) <= utc(moment) < utc(self.end)

    def previous(self) -> Period:
        """The period of the same length just before this one (the previous month, for a month)."""
        month = _month_of_label(self.label)
        if month is not None:
            year, number = month
            year, number = (year - 1, 12) if number == 1 else (year, number - 1)
            return month_period(year, number, self.start.tzinfo)
        length = utc(self.end) - utc(self.start)
        return Period(utc(self.start) - length, utc(self.start), "the period before")


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_SINCE = re.compile(r"^(\d{1,4})([hdw])$")


def _month_of_label(label: str) -> tuple[int, int] | None:
    match = _MONTH.match(label)
    return (int(match[1]), int(match[2])) if match else None


def parse_month(text: str) -> tuple[int, int]:
    """``2026-11`` -> (2026, 11); a clear ``ValueError`` otherwise (``2026-13``, ``Nov``)."""
    match = _MONTH.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12 or year < 1970:
        raise ValueError(f"{text!r} is not a month: the month is 01 to 12 and the year 1970 or later")
    return year, month


def parse_since(text: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``2w`` -> a timedelta (1h to 5 years); a clear ``ValueError`` otherwise."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a length of time: use a number and h, d or w, e.g. 30d")
    number, unit = int(match[1]), match[2]
    delta = (
        datetime.timedelta(hours=number) if unit == "h" else datetime.timedelta(days=number * (7 if unit == "w" else 1))
    )
    if not datetime.timedelta(hours=1) <= delta <= datetime.timedelta(days=5 * 366):
        raise ValueError(f"{text!r}: the period must be from 1h to 5 years long")
    return delta


def month_period(year: int, month: int, zone: datetime.tzinfo | None = None) -> Period:
    """The calendar month, from its first midnight to the next month's, in ``zone`` (UTC when None)."""
    tz = zone or datetime.UTC
    start = datetime.datetime(year, month, 1, tzinfo=tz)
    end = datetime.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return Period(start, end, f"{year:04d}-{month:02d}")


def since_period(length: datetime.timedelta, now: datetime.datetime, text: str) -> Period:
    """The ``length`` up to ``now`` (``text`` is how the user wrote it, e.g. ``30d``)."""
    end = utc(now)
    return Period(end - length, end, f"{text} to {end:%Y-%m-%d %H:%M} UTC")


def previous_month(moment: datetime.datetime, zone: datetime.tzinfo | None = None) -> Period:
    """The calendar month before the one ``moment`` falls in, in ``zone`` (UTC when None)."""
    local = utc(moment).astimezone(zone or datetime.UTC)
    year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return month_period(year, month, zone)


def monthly_due(
    after: datetime.datetime, zone: datetime.tzinfo | None, opening: datetime.time | None
) -> datetime.datetime:
    """When the monthly report of the month in which ``after`` falls is (or was) due: the first day of that
    month, at ``opening`` (the policy's business-hours start) in ``zone``, else at midnight; in UTC.

    Midnight on the 1st without business hours: the month just ended is complete then. With business hours:
    when people start their day, so the report is among the first things they read.
    """
    tz = zone or datetime.UTC
    local = utc(after).astimezone(tz)
    when = datetime.datetime.combine(datetime.date(local.year, local.month, 1), opening or datetime.time(0), tzinfo=tz)
    return utc(when)


def next_monthly_due(
    after: datetime.datetime, zone: datetime.tzinfo | None, opening: datetime.time | None
) -> datetime.datetime:
    """The first monthly due time later than ``after`` (this month's, or the next month's)."""
    this = monthly_due(after, zone, opening)
    if this > utc(after):
        return this
    tz = zone or datetime.UTC
    local = utc(after).astimezone(tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return utc(datetime.datetime.combine(datetime.date(year, month, 1), opening or datetime.time(0), tzinfo=tz))


def zone_of(policy: EscalationPolicy | None) -> zoneinfo.ZoneInfo | None:
    """The policy's business-hours time zone, None without business hours (UTC)."""
    hours = policy.spec.business_hours if policy is not None else None
    return hours.zone() if hours is not None else None


# --- what the report reads of an incident -----------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeTimes:
    """One episode as the report counts it."""

    episode: int
    started_at: datetime.datetime
    time_to_acknowledge: int | None
    time_to_resolve: int | None
    breaches: frozenset[str]


@dataclass(frozen=True)
class ActionItem:
    title: str
    owner: str | None
    due_by: datetime.datetime | None
    done: bool


@dataclass(frozen=True)
class Subject:
    """An incident as the report reads it: the model, and the fields read tolerantly from the raw object."""

    incident: Incident
    postmortem_state: str | None
    postmortem_due_by: datetime.datetime | None
    action_items: tuple[ActionItem, ...]
    assessment: str | None
    """A drill's assessment: ``Passed``, ``Failed``, or None when there is none (yet)."""

    @property
    def name(self) -> str:
        return self.incident.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.incident.metadata.namespace or ""

    @property
    def severity(self) -> Severity:
        return self.incident.status.severity or self.incident.spec.severity or DEFAULT_SEVERITY

    @property
    def type(self) -> str:
        kind = self.incident.status.type or self.incident.spec.type
        return str(kind) if kind else "unspecified"

    @property
    def drill(self) -> bool:
        return bool(self.incident.spec.drill)

    @property
    def opened_at(self) -> datetime.datetime | None:
        """When it was opened: its creation, else the start of its first recorded episode."""
        created = self.incident.metadata.creation_timestamp
        if created is not None:
            return utc(created)
        starts = [e.started_at for e in episodes_of(self.incident)]
        return min(starts) if starts else None

    @property
    def policy(self) -> str | None:
        return self.incident.status.escalation_policy


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _moment(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return utc(value)
    if isinstance(value, str) and value:
        try:
            return utc(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _action_items(spec: Mapping[str, Any]) -> tuple[ActionItem, ...]:
    items = _mapping(spec.get("postmortem")).get("actionItems")
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        state = (_text(item.get("state")) or _text(item.get("status")) or "").lower()
        done = item.get("done") is True or item.get("completed") is True or state in _DONE_ITEM_STATES
        out.append(
            ActionItem(
                _text(item.get("title")) or "(untitled)", _text(item.get("owner")), _moment(item.get("dueBy")), done
            )
        )
    return tuple(out)


def _assessment(status: Mapping[str, Any]) -> str | None:
    assessment = _mapping(status.get("assessment"))
    passed = assessment.get("passed")
    if isinstance(passed, bool):
        return "Passed" if passed else "Failed"
    result = (_text(assessment.get("result")) or _text(assessment.get("state")) or "").lower()
    if result in ("pass", "passed"):
        return "Passed"
    if result in ("fail", "failed"):
        return "Failed"
    return None


def subject_of(body: Mapping[str, Any]) -> Subject | None:
    """The report's view of an Incident object; None when even the tolerant reading cannot make it one.

    ``status.postmortem``, ``status.assessment`` and ``spec.postmortem`` are read raw and left out of the
    model, so a state or a shape this version does not know (a newer operator's, an action item's extra
    fields) spoils nothing else.
    """
    status = dict(_mapping(body.get("status")))
    postmortem = _mapping(status.pop("postmortem", None))
    assessment = _mapping(status.pop("assessment", None))
    spec = _mapping(body.get("spec"))
    modelled = {k: v for k, v in spec.items() if k != "postmortem"}
    try:
        incident = Incident.model_validate({**body, "spec": modelled, "status": status})
    except ValidationError:
        return None
    return Subject(
        incident=incident,
        postmortem_state=_text(postmortem.get("state")),
        postmortem_due_by=_moment(postmortem.get("dueBy")),
        action_items=_action_items(spec),
        assessment=_assessment({"assessment": assessment}),
    )


def episodes_of(incident: Incident) -> list[EpisodeTimes]:
    """Every episode recorded: the closed ones (``status.episodes``) and the current one (``metrics``)."""
    status = incident.status
    out = [
        EpisodeTimes(
            e.episode,
            utc(e.started_at),
            e.time_to_acknowledge_seconds,
            e.time_to_resolve_seconds,
            frozenset(str(b) for b in e.breaches),
        )
        for e in status.episodes
    ]
    if status.episode_started_at is not None and not any(e.episode == (status.episode or 1) for e in out):
        metrics = status.metrics
        breaches = status.sla.breaches if status.sla is not None else []
        out.append(
            EpisodeTimes(
                status.episode or 1,
                utc(status.episode_started_at),
                metrics.time_to_acknowledge_seconds if metrics else None,
                metrics.time_to_resolve_seconds if metrics else None,
                frozenset(str(b.kind) for b in breaches),
            )
        )
    return out


# --- the report -------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, frozen=True)


class Trend(_Model):
    """This period against the previous one."""

    previous: int
    change: int
    """This period's count minus the previous one's."""
    percent: float | None
    """The change in percent of the previous count (None when the previous count is 0)."""


def trend(current: int, previous: int) -> Trend:
    """``current`` against ``previous``."""
    percent = None if previous == 0 else round(100.0 * (current - previous) / previous, 1)
    return Trend(previous=previous, change=current - previous, percent=percent)


class Totals(_Model):
    incidents: int
    """Incidents opened in the period (drills not counted)."""
    trend: Trend
    resolved: int
    """Of those, how many are resolved (every episode)."""
    episodes: int
    """Episodes started in the period (drills not counted)."""
    mtta_seconds: float | None
    """Mean time to acknowledge over the period's acknowledged episodes."""
    mttr_seconds: float | None
    """Mean time to resolve over the period's resolved episodes."""


class SeverityLine(_Model):
    severity: str
    count: int
    resolved: int
    average_duration_seconds: float | None
    episodes: int
    acknowledged: int
    """Episodes acknowledged (or contained)."""
    acknowledged_within_target: int
    mtta_seconds: float | None
    acknowledge_target_seconds: int | None
    """The policies' acknowledge target for the severity; None when the incidents' policies differ."""
    resolved_episodes: int
    resolved_within_target: int
    mttr_seconds: float | None
    resolve_target_seconds: int | None


class TypeLine(_Model):
    type: str
    count: int
    average_duration_seconds: float | None


class DrillLine(_Model):
    name: str
    namespace: str
    title: str
    severity: str
    time_to_acknowledge_seconds: int | None
    time_to_resolve_seconds: int | None
    breaches: list[str]
    result: str | None
    """The drill's assessment, Passed or Failed; None when it has none (yet)."""


class PostmortemLine(_Model):
    name: str
    namespace: str
    severity: str
    state: str
    due_by: datetime.datetime | None
    overdue: bool


class ActionItemLine(_Model):
    incident: str
    """``namespace/name``."""
    title: str
    owner: str | None
    due_by: datetime.datetime | None
    overdue: bool


class AlertCount(_Model):
    name: str
    count: int


class LabelCount(_Model):
    label: str
    value: str
    count: int


class Reopened(_Model):
    name: str
    namespace: str
    severity: str
    episodes: int


class Report(_Model):
    """The report of one period (JSON: ``kubectl incident report -o json``)."""

    period: str
    start: datetime.datetime
    end: datetime.datetime
    previous_start: datetime.datetime
    previous_end: datetime.datetime
    generated_at: datetime.datetime
    scope: str
    """Which incidents: ``namespace payments``, ``all namespaces``, ``policy payments/paging``."""
    totals: Totals
    by_severity: list[SeverityLine]
    by_type: list[TypeLine]
    breaches: dict[str, int]
    """SLA breaches by kind, over the period's episodes (every kind listed, 0 when none)."""
    drills: list[DrillLine]
    drills_passed: int
    drills_failed: int
    drills_unassessed: int
    postmortems_open: int
    postmortems_overdue: int
    postmortems: list[PostmortemLine]
    action_items_open: int
    action_items_overdue: int
    action_items: list[ActionItemLine]
    top_alerts: list[AlertCount]
    top_labels: list[LabelCount]
    reopened: list[Reopened]
    unreadable: int = 0
    """Objects that could not be read as Incidents (counted nowhere else)."""


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _targets(subject: Subject, policies: Mapping[str, EscalationPolicy]) -> EffectiveSLA:
    policy = policies.get(subject.policy or "")
    return policy.spec.sla_for(subject.severity) if policy is not None else default_sla(subject.severity)


def _duration(subject: Subject) -> int | None:
    episodes = episodes_of(subject.incident)
    if not episodes or any(e.time_to_resolve is None for e in episodes):
        return None
    return sum(e.time_to_resolve or 0 for e in episodes)


def _in(period: Period, subject: Subject) -> bool:
    return subject.opened_at is not None and subject.opened_at in period


def _one(values: set[int]) -> int | None:
    return next(iter(values)) if len(values) == 1 else None


def _severity_lines(
    opened: Sequence[Subject],
    episodes: Sequence[tuple[Subject, EpisodeTimes]],
    policies: Mapping[str, EscalationPolicy],
) -> list[SeverityLine]:
    lines = []
    for severity in Severity:
        mine = [s for s in opened if s.severity is severity]
        eps = [(s, e) for s, e in episodes if s.severity is severity]
        acked = [e for _, e in eps if e.time_to_acknowledge is not None]
        resolved = [e for _, e in eps if e.time_to_resolve is not None]
        durations = [d for d in map(_duration, mine) if d is not None]
        targets = [_targets(s, policies) for s in {id(s): s for s in [*mine, *(s for s, _ in eps)]}.values()]
        default = default_sla(severity)
        ack_targets = {int(t.acknowledge_within.total_seconds()) for t in targets} or {
            int(default.acknowledge_within.total_seconds())
        }
        resolve_targets = {int(t.resolve_within.total_seconds()) for t in targets} or {
            int(default.resolve_within.total_seconds())
        }
        lines.append(
            SeverityLine(
                severity=severity.value,
                count=len(mine),
                resolved=len(durations),
                average_duration_seconds=_mean(durations),
                episodes=len(eps),
                acknowledged=len(acked),
                acknowledged_within_target=sum(1 for e in acked if str(BreachKind.ACKNOWLEDGE) not in e.breaches),
                mtta_seconds=_mean([e.time_to_acknowledge or 0 for e in acked]),
                acknowledge_target_seconds=_one(ack_targets),
                resolved_episodes=len(resolved),
                resolved_within_target=sum(1 for e in resolved if str(BreachKind.RESOLVE) not in e.breaches),
                mttr_seconds=_mean([e.time_to_resolve or 0 for e in resolved]),
                resolve_target_seconds=_one(resolve_targets),
            )
        )
    return lines


def _labels(opened: Iterable[Subject]) -> tuple[list[AlertCount], list[LabelCount]]:
    names: Counter[str] = Counter()
    labels: Counter[tuple[str, str]] = Counter()
    for subject in opened:
        source = subject.incident.spec.source
        for key, value in ((source.labels or {}) if source is not None else {}).items():
            if key == "alertname":
                names[value] += 1
            else:
                labels[(key, value)] += 1
    top_names = sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    top_labels = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return (
        [AlertCount(name=n, count=c) for n, c in top_names],
        [LabelCount(label=k, value=v, count=c) for (k, v), c in top_labels],
    )


def _postmortems(backlog: Sequence[Subject], now: datetime.datetime) -> list[PostmortemLine]:
    lines = []
    for s in backlog:
        state = s.postmortem_state
        if state is None or state in DONE_POSTMORTEM_STATES:
            continue
        overdue = state == "Overdue" or (s.postmortem_due_by is not None and s.postmortem_due_by <= utc(now))
        lines.append(
            PostmortemLine(
                name=s.name,
                namespace=s.namespace,
                severity=s.severity.value,
                state=state,
                due_by=s.postmortem_due_by,
                overdue=overdue,
            )
        )
    return sorted(lines, key=lambda line: (not line.overdue, line.due_by or utc(now), line.namespace, line.name))


def _action_item_lines(backlog: Sequence[Subject], now: datetime.datetime) -> list[ActionItemLine]:
    lines = [
        ActionItemLine(
            incident=f"{s.namespace}/{s.name}",
            title=item.title,
            owner=item.owner,
            due_by=item.due_by,
            overdue=item.due_by is not None and item.due_by <= utc(now),
        )
        for s in backlog
        for item in s.action_items
        if not item.done
    ]
    return sorted(lines, key=lambda line: (not line.overdue, line.due_by or utc(now), line.incident, line.title))


def build(
    bodies: Iterable[Mapping[str, Any]],
    period: Period,
    now: datetime.datetime,
    *,
    policies: Mapping[str, EscalationPolicy] | None = None,
    scope: str = "",
) -> Report:
    """The report of ``period`` from the Incident objects ``bodies``.

    ``policies`` maps ``namespace/name`` (as ``status.escalationPolicy`` names them) to the policies, for
    the targets; an incident whose policy is not among them is held to the default targets.
    """
    policies = policies or {}
    subjects: list[Subject] = []
    unreadable = 0
    for body in bodies:
        subject = subject_of(body)
        if subject is None:
            unreadable += 1
        else:
            subjects.append(subject)
    real = [s for s in subjects if not s.drill]
    opened = [s for s in real if _in(period, s)]
    previous = period.previous()
    before = sum(1 for s in real if _in(previous, s))
    episodes = [(s, e) for s in real for e in episodes_of(s.incident) if e.started_at in period]
    acked = [e.time_to_acknowledge for _, e in episodes if e.time_to_acknowledge is not None]
    resolved = [e.time_to_resolve for _, e in episodes if e.time_to_resolve is not None]
    breaches = Counter(b for _, e in episodes for b in e.breaches)
    types = sorted({s.type for s in opened})
    drills = [s for s in subjects if s.drill and _in(period, s)]
    drill_lines = []
    for s in sorted(drills, key=lambda d: (d.opened_at or utc(now), d.namespace, d.name)):
        eps = episodes_of(s.incident)
        first = eps[0] if eps else None
        drill_lines.append(
            DrillLine(
                name=s.name,
                namespace=s.namespace,
                title=s.incident.spec.title,
                severity=s.severity.value,
                time_to_acknowledge_seconds=first.time_to_acknowledge if first else None,
                time_to_resolve_seconds=first.time_to_resolve if first else None,
                breaches=sorted({b for e in eps for b in e.breaches}),
                result=s.assessment,
            )
        )
    end = utc(period.end)
    backlog = [s for s in subjects if s.opened_at is not None and s.opened_at < end]
    postmortems = _postmortems(backlog, now)
    items = _action_item_lines(backlog, now)
    top_alerts, top_labels = _labels(opened)
    return Report(
        period=period.label,
        start=utc(period.start),
        end=end,
        previous_start=utc(previous.start),
        previous_end=utc(previous.end),
        generated_at=utc(now),
        scope=scope,
        totals=Totals(
            incidents=len(opened),
            trend=trend(len(opened), before),
            resolved=sum(1 for s in opened if _duration(s) is not None),
            episodes=len(episodes),
            mtta_seconds=_mean(acked),
            mttr_seconds=_mean(resolved),
        ),
        by_severity=_severity_lines(opened, episodes, policies),
        by_type=[
            TypeLine(
                type=t,
                count=sum(1 for s in opened if s.type == t),
                average_duration_seconds=_mean([d for s in opened if s.type == t if (d := _duration(s)) is not None]),
            )
            for t in types
        ],
        breaches={str(kind): breaches.get(str(kind), 0) for kind in BreachKind},
        drills=drill_lines,
        drills_passed=sum(1 for d in drill_lines if d.result == "Passed"),
        drills_failed=sum(1 for d in drill_lines if d.result == "Failed"),
        drills_unassessed=sum(1 for d in drill_lines if d.result is None),
        postmortems_open=len(postmortems),
        postmortems_overdue=sum(1 for p in postmortems if p.overdue),
        postmortems=postmortems,
        action_items_open=len(items),
        action_items_overdue=sum(1 for i in items if i.overdue),
        action_items=items,
        top_alerts=top_alerts,
        top_labels=top_labels,
        reopened=[
            Reopened(
                name=s.name, namespace=s.namespace, severity=s.severity.value, episodes=len(episodes_of(s.incident))
            )
            for s in sorted(opened, key=lambda x: (x.namespace, x.name))
            if len(episodes_of(s.incident)) > 1
        ],
        unreadable=unreadable,
    )
