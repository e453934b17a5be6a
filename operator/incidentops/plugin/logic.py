"""Pure logic of ``kubectl incident``: times, the episode rule, names, and the patches it writes.

Where it sits: inside ``incidentops.plugin``; no I/O here, ``now`` and the random
source are passed in, so every function is unit-tested without a cluster.

The plugin writes only ``spec``, as JSON merge patches that carry the
``metadata.resourceVersion`` of the object it read: the API server refuses the
patch with 409 Conflict when somebody else wrote in between (optimistic
concurrency), and the plugin reads again and decides again.
"""

from __future__ import annotations

import datetime
import math
import random
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from incidentops.api import API_VERSION, Incident
from incidentops.domain import lifecycle

Body = dict[str, Any]

# --- times -------------------------------------------------------------------------------------


def utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC (a naive datetime is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def to_seconds(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC, truncated to the second."""
    return utc(moment).replace(microsecond=0)


def ceil_seconds(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC, rounded up to the next whole second (unchanged when already whole)."""
    moment = utc(moment)
    if moment.microsecond:
        return moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return moment


def rfc3339(moment: datetime.datetime) -> str:
    """``2024-05-01T12:00:00Z``: UTC, whole seconds, as Kubernetes writes times."""
    return to_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time from an object (``...Z``, offsets, fractions), or None when absent or unreadable."""
    if isinstance(value, datetime.datetime):
        return utc(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python before 3.11 is pickier about fractions; 3.11 reads any number of digits.
    try:
        return utc(datetime.datetime.fromisoformat(text))
    except ValueError:
        return None


# --- the episode rule ----------------------------------------------------------------------------


def counts_in_episode(at: Any, episode_started_at: Any, episode: Any = None) -> bool:
    """DESIGN.md: an acknowledgement, containment or resolution counts for an episode only if its
    ``at`` is not before ``episodeStartedAt``: the operator's own rule (``domain.lifecycle``), so the
    plugin and the operator never disagree; in episode 1 every ``at`` counts there.

    With no episode start known (the operator has not seen the incident yet), a
    record counts: there has been no reopen it could predate. Without an episode
    number, the start alone decides. A record whose ``at`` cannot be read does not count.
    """
    moment = parse_time(at)
    if moment is None:
        return False
    started = parse_time(episode_started_at)
    if started is None:
        return True
    number = episode if isinstance(episode, int) and not isinstance(episode, bool) else None
    if number is None:
        return moment >= started
    return lifecycle.counts_in_episode(moment, number, started)


def current_record(body: Body, field: str) -> Body | None:
    """``spec.<field>`` (acknowledgement, containment, resolution) when it counts for the current episode."""
    record = (body.get("spec") or {}).get(field)
    if not isinstance(record, dict):
        return None
    status = body.get("status") or {}
    return (
        record if counts_in_episode(record.get("at"), status.get("episodeStartedAt"), status.get("episode")) else None
    )


def stamp(now: datetime.datetime, *, not_before: Any = None, after: Any = None) -> datetime.datetime:
    """The ``at`` to write: ``now`` in whole seconds, moved forward just enough that it

    - is not before ``not_before`` (the episode start: a new acknowledgement must count for the
      current episode even when the operator's clock runs a little ahead of ours, or the episode
      started within the current second), and
    - is strictly after ``after`` (the previous status update: a new ``at`` is what makes an update new).
    """
    moment = to_seconds(now)
    floor = parse_time(not_before)
    if floor is not None and moment < floor:
        moment = ceil_seconds(floor)
    previous = parse_time(after)
    if previous is not None and moment <= previous:
        moment = to_seconds(previous) + datetime.timedelta(seconds=1)
    return moment


# --- marks: ack, contain, resolve ------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One of the spec records people set: acknowledgement, containment, resolution."""

    command: str
    field: str
    past: str


ACK = Mark("ack", "acknowledgement", "acknowledged")
CONTAIN = Mark("contain", "containment", "contained")
RESOLVE = Mark("resolve", "resolution", "resolved")
MARKS = {mark.command: mark for mark in (ACK, CONTAIN, RESOLVE)}


def mark_value(
    mark: Mark,
    by: str,
    at: datetime.datetime,
    *,
    note: str | None = None,
    summary: str | None = None,
    root_cause: str | None = None,
) -> Body:
    """The whole record to write. Optional keys are written as null when not given: a merge patch
    merges objects, so a note of an earlier episode would otherwise survive a re-acknowledgement."""
    value: Body = {"by": by, "at": rfc3339(at)}
    if mark is RESOLVE:
        value["summary"] = summary
        value["rootCause"] = root_cause
    else:
        value["note"] = note
    return value


def status_update_value(message: str, by: str, at: datetime.datetime) -> Body:
    """``spec.statusUpdate``: the whole record (all its keys are required)."""
    return {"message": message, "by": by, "at": rfc3339(at)}


def spec_patch(resource_version: str, field: str, value: Body) -> Body:
    """A JSON merge patch of ``spec.<field>``, guarded by the resourceVersion that was read."""
    return {"metadata": {"resourceVersion": resource_version}, "spec": {field: value}}


# --- declare -----------------------------------------------------------------------------------------

NAME_MAX = 63
SUFFIX_LENGTH = 5
SLUG_MAX = 40
# Kubernetes' generateName alphabet: no vowels (no words), no 0/1/3 (no look-alikes).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def slugify(text: str, max_length: int = SLUG_MAX) -> str:
    """Lower-case ASCII letters, digits and single dashes, at most ``max_length``, cut at a word if one
    ends in the second half; empty when nothing usable is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[: max_length + 1]
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary >= max_length // 2 else slug[:max_length]
    return slug.strip("-")


def generate_name(title: str, rng: random.Random | None = None) -> str:
    """``<slug of the title>-<5 random characters>``: a DNS-1123 label of at most 63 characters."""
    chooser = rng or random.SystemRandom()
    suffix = "".join(chooser.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))
    slug = slugify(title, min(SLUG_MAX, NAME_MAX - SUFFIX_LENGTH - 1)) or "incident"
    return f"{slug}-{suffix}"


def is_valid_name(name: str) -> bool:
    """An Incident name: a DNS-1123 subdomain of at most 253 characters."""
    return len(name) <= 253 and DNS_1123_SUBDOMAIN.fullmatch(name) is not None


def declare_body(
    name: str,
    namespace: str,
    *,
    title: str,
    severity: str,
    incident_type: str | None = None,
    description: str | None = None,
    drill: bool = False,
    policy: str | None = None,
    extra: Body | None = None,
) -> Body:
    """The Incident to create: ``source.kind: manual``, with the ``extra`` spec fields (a drill scenario's).
    Checked against the API models (raises pydantic's ``ValidationError``), so the API server's refusal is
    the exception, not the rule."""
    spec: Body = {"title": title, "severity": severity, "source": {"kind": "manual"}}
    if incident_type:
        spec["type"] = incident_type
    if description:
        spec["description"] = description
    if drill:
        spec["drill"] = True
    if policy:
        ref: Body
        if "/" in policy:
            policy_namespace, policy_name = policy.split("/", 1)
            ref = {"name": policy_name, "namespace": policy_namespace}
        else:
            ref = {"name": policy}
        spec["escalationPolicyRef"] = ref
    spec.update(extra or {})
    body: Body = {
        "apiVersion": API_VERSION,
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    Incident.model_validate(body)
    return body


# --- durations for people ------------------------------------------------------------------------


def human_duration(delta: datetime.timedelta) -> str:
    """A short, kubectl-like duration: ``45s``, ``4m10s``, ``12m``, ``3h20m``, ``2d4h``, ``400d``."""
    seconds = max(0, math.floor(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    if minutes < 60:
        return f"{minutes}m"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{mins}m" if mins else f"{hours}h"
    days, hrs = divmod(hours, 24)
    if days < 30:
        return f"{days}d{hrs}h" if hrs else f"{days}d"
    return f"{days}d"


def age(value: Any, now: datetime.datetime) -> str:
    """How long ago ``value`` (an RFC 3339 time) was, or ``<unknown>``."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration(utc(now) - moment)


def relative(value: Any, now: datetime.datetime) -> str:
    """``5m ago`` or ``in 5m``."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    delta = moment - utc(now)
    if delta.total_seconds() >= 0:
        return f"in {human_duration(delta)}"
    return f"{human_duration(-delta)} ago"


# --- actions: approve, undo, release ----------------------------------------------------------------

UNDOABLE_TYPES = ("maintenance", "scale", "quarantine")


def action_record(body: Body, name: str) -> Body | None:
    """``status.actions[]`` entry ``name``, or None."""
    for record in (body.get("status") or {}).get("actions") or []:
        if isinstance(record, dict) and record.get("name") == name:
            return record
    return None


def with_entry(body: Body, field: str, action: str, by: str, at: datetime.datetime) -> list[Body]:
    """``spec.<field>`` (approvals, undo: list-maps keyed on ``action``) with the entry for ``action`` set:
    a merge patch replaces whole lists, so the others are carried over as read."""
    entries = [
        e for e in (body.get("spec") or {}).get(field) or [] if isinstance(e, dict) and e.get("action") != action
    ]
    return [*entries, {"action": action, "by": by, "at": rfc3339(at)}]


def approval_refusal(body: Body, action: str) -> str | None:
    """Why ``action`` cannot be approved (None: it can): it must exist and wait for an approval."""
    record = action_record(body, action)
    if record is None:
        names = ", ".join(r.get("name", "?") for r in (body.get("status") or {}).get("actions") or []) or "none"
        return f'the incident has no action "{action}" (its actions: {names})'
    if record.get("phase") != "AwaitingApproval":
        return f'action "{action}" does not wait for an approval: it is {record.get("phase")}'
    return None


def undo_refusal(body: Body, action: str) -> str | None:
    """Why ``action`` cannot be undone (None: it can): it must be a change of ours still in place."""
    record = action_record(body, action)
    if record is None:
        return f'the incident has no action "{action}"'
    if record.get("type") not in UNDOABLE_TYPES:
        return f'action "{action}" is a {record.get("type")}, which is not undone (only {", ".join(UNDOABLE_TYPES)})'
    if record.get("dryRun"):
        return f'action "{action}" was a dry run: nothing to undo'
    if record.get("phase") != "Succeeded":
        return f'action "{action}" is {record.get("phase")}: only a Succeeded change can be undone'
    return None


def quarantines(body: Body) -> list[str]:
    """The quarantine actions still in place (what ``release`` ends)."""
    return [
        r["name"]
        for r in (body.get("status") or {}).get("actions") or []
        if isinstance(r, dict)
        and r.get("type") == "quarantine"
        and r.get("phase") == "Succeeded"
        and not r.get("dryRun")
    ]
