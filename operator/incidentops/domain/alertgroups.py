"""Alert groups: what an Alertmanager POST means for its Incident.

Where it sits: ``incidentops.domain`` (pure, no I/O). The receiver
(``incidentops.intake``) parses a webhook POST and asks this module what the
group's Incident is called, where it lives, what its spec says when it is
created, and what ``status.alerts`` becomes; the receiver then writes it. The
operator (``domain.plan``) reads ``status.alerts`` to resolve and reopen.

Identity of a group: Alertmanager's ``(receiver, groupKey)``. Every name and
label below is a function of that pair (and of the group labels, which are
part of the groupKey), so every replica and every retry computes the same
Incident for the same group:

- :func:`group_id`: a 40-hex-digit hash, the value of the label
  ``incidentops.dev/alert-group`` that finds a group's incidents.
- :func:`incident_name`: ``<alertname prefix>-<12 hex digits>`` for the first
  incident of a group, ``...-<n>`` for the n-th (a group that fires again once
  its incident no longer takes its alerts, see :func:`takes_alerts`, gets a new
  one); at most 63 characters, DNS-1123.

A POST carries the whole group, so :func:`alerts_status` derives the status
from that POST alone: counts, ``truncatedAlerts``, a capped and sorted sample of
fingerprints (sorted, so the same group gives the same status and an identical
re-send writes nothing); only ``lastFiredAt`` carries over from the status
before (:func:`with_fired_at`), for the operator to tell a re-fire from a
re-send.
"""

from __future__ import annotations

import datetime
import hashlib
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from incidentops.api import reasons
from incidentops.api.common import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, GROUP, ObjectMeta
from incidentops.api.incident import (
    AlertsStatus,
    Incident,
    IncidentSpec,
    Source,
    SourceKind,
    Target,
    TimelineEntry,
)
from incidentops.domain import timeline
from incidentops.domain.common import utc
from incidentops.domain.lifecycle import reopen_window

__all__ = [
    "ALERT_GROUP_LABEL",
    "ALERT_GROUP_SEQUENCE_LABEL",
    "DRILL_LABEL",
    "MAX_DESCRIPTION",
    "MAX_SAMPLE",
    "MAX_SOURCE_LABELS",
    "MAX_SOURCE_LABEL_VALUE",
    "MAX_TARGETS",
    "MAX_TITLE",
    "AlertGroup",
    "AlertView",
    "alerts_status",
    "clamped_start_entry",
    "description",
    "earliest_start",
    "group_id",
    "incident_name",
    "is_closed",
    "is_drill",
    "namespace_for",
    "new_incident",
    "reopen_until",
    "sequence_of",
    "source",
    "started_at",
    "takes_alerts",
    "targets",
    "title",
    "with_fired_at",
]

ALERT_GROUP_LABEL = f"{GROUP}/alert-group"
"""Label on every alert-born Incident: :func:`group_id` of its (receiver, groupKey)."""

ALERT_GROUP_SEQUENCE_LABEL = f"{GROUP}/alert-group-sequence"
"""Label on every alert-born Incident: 1 for the group's first incident, n for the n-th."""

DRILL_LABEL = "incidentops_drill"
"""An alert label: a group whose every alert carries it with the value ``"true"`` opens a drill
(``spec.drill: true``). A Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``), so a rule or a synthetic
group (``kubectl incident drill start``) can set it and it survives Prometheus and Alertmanager."""

MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_TARGETS = 16
MAX_SAMPLE = 20
MAX_SOURCE_LABELS = 64
MAX_SOURCE_LABEL_VALUE = 1024

FIRING = "firing"
CLOSED = "Closed"
RESOLVED = "Resolved"

_NAME_HASH_LENGTH = 12  # 48 bits: a collision among a million groups has odds of about 1 in 500
_PREFIX_MAX = 40  # 40 + "-" + 12 + "-" + up to 9 digits of sequence <= 63
_FALLBACK_PREFIX = "alerts"
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_NOT_NAME = re.compile(r"[^a-z0-9]+")
# Labels kept first in spec.source.labels when a group has more than fit.
_KEY_LABELS = ("alertname", "severity", "namespace", "service", "team", "job")
# Workload labels (kube-state-metrics and the usual relabelling) -> target kinds, most specific first.
_WORKLOAD_LABELS = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("pod", "Pod"),
)


class AlertView(Protocol):
    """One alert of a webhook POST (``intake.payload.WebhookAlert`` is one)."""

    @property
    def status(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    @property
    def starts_at(self) -> datetime.datetime: ...

    @property
    def fingerprint(self) -> str: ...


class AlertGroup(Protocol):
    """A webhook POST: one alert group, whole (``intake.payload.WebhookPayload`` is one)."""

    @property
    def receiver(self) -> str: ...

    @property
    def group_key(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def truncated_alerts(self) -> int: ...

    @property
    def group_labels(self) -> Mapping[str, str]: ...

    @property
    def common_labels(self) -> Mapping[str, str]: ...

    @property
    def common_annotations(self) -> Mapping[str, str]: ...

    @property
    def alerts(self) -> Sequence[AlertView]: ...


# --- identity -----------------------------------------------------------------------------------


def group_id(receiver: str, group_key: str) -> str:
    """40 hex digits identifying the group (receiver, groupKey); a valid label value."""
    digest = hashlib.sha256(receiver.encode() + b"\x00" + group_key.encode()).hexdigest()
    return digest[:40]


def _prefix(group_labels: Mapping[str, str], receiver: str) -> str:
    # Only the group labels (part of the groupKey, so the same in every POST of
    # the group) and the receiver: never the common labels, which change as
    # alerts join and leave, and would give replicas different names.
    raw = group_labels.get("alertname") or receiver
    prefix = _NOT_NAME.sub("-", raw.lower()).strip("-")[:_PREFIX_MAX].strip("-")
    return prefix or _FALLBACK_PREFIX


def incident_name(receiver: str, group_key: str, group_labels: Mapping[str, str], sequence: int = 1) -> str:
    """The name of the group's ``sequence``-th incident: ``<alertname>-<hash>`` then ``<alertname>-<hash>-<n>``.

    The prefix is the group label ``alertname`` (else the receiver) made
    DNS-safe; the hash is of (receiver, groupKey). At most 63 characters.
    """
    if sequence < 1:
        raise ValueError(f"sequence starts at 1, not {sequence}")
    name = f"{_prefix(group_labels, receiver)}-{group_id(receiver, group_key)[:_NAME_HASH_LENGTH]}"
    if sequence > 1:
        name += f"-{sequence}"
    if len(name) > 63:
        raise ValueError(f"sequence {sequence} makes the name longer than 63 characters")
    return name


def namespace_for(
    group_labels: Mapping[str, str],
    operator_namespace: str,
    *,
    allow_alert_namespace: bool,
    watched: Iterable[str] = (),
) -> str:
    """Where the group's incident lives.

    The operator's namespace, unless ``allow_alert_namespace`` and the group
    label ``namespace`` names a valid namespace that the operator watches (all
    of them when ``watched`` is empty). Only the group label counts: it is part
    of the groupKey, so it is the same in every POST of the group; a common
    label can come and go as alerts join the group, which would move the
    incident.
    """
    if not allow_alert_namespace:
        return operator_namespace
    candidate = group_labels.get("namespace", "")
    if not candidate or len(candidate) > 63 or not _DNS_LABEL.fullmatch(candidate):
        return operator_namespace
    watched = list(watched)
    if watched and candidate not in watched:
        return operator_namespace
    return candidate


def is_closed(body: Mapping[str, object]) -> bool:
    """Whether an Incident (as JSON) is Closed: its group's next firing makes a new incident."""
    status = body.get("status")
    return isinstance(status, Mapping) and status.get("phase") == CLOSED


_DEFAULT_REOPEN_WINDOW = reopen_window(None)  # the policy default, for a status from before reopenUntil


def _moment(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def reopen_until(body: Mapping[str, object]) -> datetime.datetime | None:
    """When a Resolved Incident (as JSON) stops taking its group's alerts: ``status.reopenUntil``, else (a
    status an older operator wrote) the Resolved condition's time plus the default window; None while it is
    not Resolved."""
    status = body.get("status")
    if not isinstance(status, Mapping) or status.get("phase") != RESOLVED:
        return None
    until = _moment(status.get("reopenUntil"))
    if until is not None:
        return until
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == RESOLVED:
            since = _moment(condition.get("lastTransitionTime"))
            if since is not None:
                return since + _DEFAULT_REOPEN_WINDOW
    return None


def takes_alerts(body: Mapping[str, object], received_at: datetime.datetime) -> bool:
    """Whether an Incident (as JSON) still takes its group's alerts received at ``received_at``.

    Not once it is Closed, nor once it is Resolved and its reopen window has
    passed: it may wait days for its post-mortem, and a group firing again by
    then is a new problem that must page, so it makes a new incident (which
    names this one in ``spec.source.previous``).
    """
    if is_closed(body):
        return False
    until = reopen_until(body)
    return until is None or received_at <= until


def sequence_of(body: Mapping[str, object]) -> int:
    """The alert-group sequence number of an Incident (as JSON); 1 when the label is missing or odd."""
    metadata = body.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    value = labels.get(ALERT_GROUP_SEQUENCE_LABEL) if isinstance(labels, Mapping) else None
    if isinstance(value, str) and value.isdigit() and 0 < len(value) < 10:
        return max(int(value), 1)
    return 1


# --- status -------------------------------------------------------------------------------------


def alerts_status(
    group: AlertGroup, received_at: datetime.datetime, previous: AlertsStatus | None = None
) -> AlertsStatus:
    """``status.alerts`` after this POST: counts from the POST alone (it carries the whole group), and
    ``lastFiredAt`` carried on from ``previous`` (see :func:`with_fired_at`).

    ``sample`` holds up to 20 fingerprints, firing ones first, each part sorted,
    so a re-send of the same group yields the same status.
    """
    firing: list[str] = []
    resolved: list[str] = []
    for alert in group.alerts:
        (firing if alert.status == FIRING else resolved).append(alert.fingerprint)
    sample = list(dict.fromkeys(heapq.nsmallest(MAX_SAMPLE, firing)))
    if len(sample) < MAX_SAMPLE:
        seen = set(sample)
        for fingerprint in heapq.nsmallest(MAX_SAMPLE, resolved):
            if fingerprint not in seen and len(sample) < MAX_SAMPLE:
                sample.append(fingerprint)
                seen.add(fingerprint)
    snapshot = AlertsStatus(
        firing=len(firing),
        resolved=len(resolved),
        truncated=group.truncated_alerts,
        last_received_at=received_at,
        sample=[fp[:64] for fp in sample if fp],
    )
    return with_fired_at(previous, snapshot)


def with_fired_at(previous: AlertsStatus | None, snapshot: AlertsStatus) -> AlertsStatus:
    """``snapshot`` with ``lastFiredAt``: its own receipt when the group fires again (firing alerts after a
    POST with none), else what ``previous`` knew (none for the POST that opened the incident).

    Only this transition may reopen a resolved incident: a re-send of a group
    that never stopped firing (Alertmanager repeats every ``repeat_interval``)
    keeps the earlier ``lastFiredAt`` and so reopens nothing, and neither does
    the first POST, whatever the time a person gave their resolution.
    """
    if previous is None:
        return snapshot.model_copy(update={"last_fired_at": None})
    fired = snapshot.last_received_at if snapshot.firing > 0 and previous.firing == 0 else previous.last_fired_at
    return snapshot.model_copy(update={"last_fired_at": fired})


_ZERO_TIME_YEAR = 1  # Go's zero time, 0001-01-01T00:00:00Z


def _usable_start(moment: datetime.datetime) -> datetime.datetime | None:
    """``moment`` in UTC, or None for Alertmanager's "unset" (year 1) and for what UTC cannot hold."""
    try:
        moment = moment.astimezone(datetime.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is year 0 in UTC, 9999-12-31T23:00:00-02:00 year 10000
        return None
    return moment if moment.year > _ZERO_TIME_YEAR else None


def _firing_starts(group: AlertGroup) -> list[datetime.datetime]:
    return [s for s in (_usable_start(a.starts_at) for a in group.alerts if a.status == FIRING) if s is not None]


def earliest_start(group: AlertGroup, received_at: datetime.datetime) -> datetime.datetime:
    """When the group's problem started (UTC): the earliest ``startsAt`` of its firing alerts, never after
    ``received_at``.

    Alertmanager sends its zero time (0001-01-01T00:00:00Z) for "unset": such
    a start is ignored, else the incident would have started in year 1. A
    start later than the POST's receipt (a sender's clock ahead of ours) is the
    receipt. No usable ``startsAt`` at all: the receipt.
    """
    return min([*_firing_starts(group), utc(received_at)])


def started_at(group: AlertGroup, received_at: datetime.datetime) -> tuple[datetime.datetime, bool]:
    """:func:`earliest_start`, and whether it was clamped (every usable start was after the receipt), for
    the timeline to say so."""
    starts = _firing_starts(group)
    return earliest_start(group, received_at), bool(starts) and min(starts) > utc(received_at)


def clamped_start_entry(group: AlertGroup, received_at: datetime.datetime) -> TimelineEntry | None:
    """The timeline entry that says the group's start was clamped to its receipt (:func:`started_at`), for
    the status the receiver writes first; None when it was not clamped."""
    _, clamped = started_at(group, received_at)
    if not clamped:
        return None
    received = utc(received_at).isoformat().replace("+00:00", "Z")
    return timeline.entry(
        received_at,
        reasons.TIME_CLAMPED,
        f"the alerts' startsAt is ahead of the receiver's clock: the incident starts when they were received,"
        f" {received}",
        timeline.ACTOR_ALERTMANAGER,
    )


# --- spec -----------------------------------------------------------------------------------------


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_alert(group: AlertGroup) -> AlertView | None:
    for alert in group.alerts:
        if alert.status == FIRING:
            return alert
    return group.alerts[0] if group.alerts else None


def _annotation(group: AlertGroup, key: str) -> str | None:
    """The common annotation ``key``, else the first (firing) alert's."""
    value = group.common_annotations.get(key, "").strip()
    if not value:
        first = _first_alert(group)
        value = first.annotations.get(key, "").strip() if first is not None else ""
    return value or None


def title(group: AlertGroup) -> str:
    """The ``summary`` annotation (common, else the first alert's), else the alertname, else the groupKey."""
    text = (
        _annotation(group, "summary")
        or group.common_labels.get("alertname", "").strip()
        or group.group_labels.get("alertname", "").strip()
        or f"Alert group {group.group_key}".strip()
    )
    return _truncate(" ".join(text.split()), MAX_TITLE)


def description(group: AlertGroup) -> str | None:
    """The ``description`` annotation (common, else the first alert's), or None."""
    text = _annotation(group, "description")
    return _truncate(text, MAX_DESCRIPTION) if text else None


def _fit_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels as ``spec.source.labels`` can hold them: at most 64, values of at most 1024 characters.

    A value that is too long is left out rather than cut (a cut value would
    match selectors it should not); the key labels are kept first.
    """
    usable = {k: v for k, v in labels.items() if len(v) <= MAX_SOURCE_LABEL_VALUE}
    if len(usable) <= MAX_SOURCE_LABELS:
        return dict(sorted(usable.items()))
    keys = [k for k in _KEY_LABELS if k in usable]
    keys += sorted(k for k in usable if k not in _KEY_LABELS)
    return {k: usable[k] for k in sorted(keys[:MAX_SOURCE_LABELS])}


def source(group: AlertGroup, received_at: datetime.datetime | None = None, previous: str | None = None) -> Source:
    """``spec.source``: kind alertmanager, the receiver, the groupKey, the common labels, when the problem
    started (see :func:`started_at`; with ``received_at``) and the group's ``previous`` incident."""
    return Source(
        kind=SourceKind.ALERTMANAGER,
        receiver=group.receiver,
        group_key=group.group_key,
        labels=_fit_labels(group.common_labels),
        started_at=started_at(group, received_at)[0] if received_at is not None else None,
        previous=previous,
    )


def is_drill(group: AlertGroup) -> bool:
    """Whether the group is a rehearsal: every alert carries :data:`DRILL_LABEL` ``"true"`` (a common label).

    Every alert, not some: a real alert grouped with drill alerts keeps the group real, so it pages and
    acts as a real one must. Read once, at creation, like the rest of ``spec``.
    """
    return group.common_labels.get(DRILL_LABEL) == "true"


def _valid_name(value: str) -> bool:
    return 0 < len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value) is not None


def _valid_namespace(value: str) -> bool:
    return 0 < len(value) <= 63 and _DNS_LABEL.fullmatch(value) is not None


def targets(group: AlertGroup) -> list[Target]:
    """The workloads the alerts name, from their ``deployment``/``statefulset``/``daemonset``/``pod`` labels.

    The most specific workload label of each alert counts (a Deployment rather
    than one of its Pods), with the alert's ``namespace`` label; values that are
    not valid Kubernetes names are skipped. Firing alerts first, deduplicated,
    at most 16.
    """
    seen: dict[tuple[str, str, str | None], Target] = {}
    ordered = sorted(group.alerts, key=lambda a: a.status != FIRING)  # stable: firing first
    for alert in ordered:
        namespace = alert.labels.get("namespace")
        if namespace is not None and not _valid_namespace(namespace):
            continue
        for label, kind in _WORKLOAD_LABELS:
            name = alert.labels.get(label)
            if name is None:
                continue
            if _valid_name(name):
                key = (kind, name, namespace)
                if key not in seen:
                    seen[key] = Target(kind=kind, name=name, namespace=namespace)
            break
        if len(seen) >= MAX_TARGETS:
            break
    return list(seen.values())


def new_incident(
    group: AlertGroup,
    *,
    namespace: str,
    sequence: int = 1,
    workload_targets: Sequence[Target] | None = None,
    received_at: datetime.datetime | None = None,
    previous: str | None = None,
) -> Incident:
    """The Incident the receiver creates for the group: metadata and spec (status is written after).

    Severity and type are left to the policy's classification (on
    ``spec.source.labels``), so the operator decides them in one place. A group
    whose alerts all carry :data:`DRILL_LABEL` ``"true"`` makes a drill (:func:`is_drill`).
    ``workload_targets`` replaces :func:`targets` (the receiver maps Pods to
    their Deployments first). ``previous`` names the group's earlier incident.
    """
    gid = group_id(group.receiver, group.group_key)
    chosen = list(workload_targets) if workload_targets is not None else targets(group)
    return Incident(
        metadata=ObjectMeta(
            name=incident_name(group.receiver, group.group_key, group.group_labels, sequence),
            namespace=namespace,
            labels={ALERT_GROUP_LABEL: gid, ALERT_GROUP_SEQUENCE_LABEL: str(sequence)},
        ),
        spec=IncidentSpec(
            title=title(group),
            description=description(group),
            source=source(group, received_at, previous),
            targets=chosen[:MAX_TARGETS],
            drill=True if is_drill(group) else None,
        ),
    )
