"""What ``kubectl incident`` prints: the list table, ``describe``, and JSON/YAML output.

Where it sits: inside ``incidentops.plugin``; pure functions of the objects as
the API server returned them (plain dicts, read tolerantly: an operator of
another version may write fields this one does not know, or none yet) and of
``now``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from incidentops.plugin.logic import (
    Body,
    age,
    counts_in_episode,
    current_record,
    human_duration,
    parse_time,
    relative,
    utc,
)

NONE = "-"
TITLE_WIDTH = 60
RECENT_NOTIFICATIONS = 10
RECENT_TIMELINE = 20

LIST_HEADERS = ("NAME", "SEVERITY", "PHASE", "LEVEL", "ACKED-BY", "AGE", "TITLE")
WIDE_HEADERS = ("POLICY", "NEXT-DEADLINE")


def _get(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _text(value: Any) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def shorten(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks the cut)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned as kubectl aligns them: left-justified, three spaces apart."""
    all_rows = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


# --- list ----------------------------------------------------------------------------------------


def severity(body: Body) -> Any:
    """The effective severity: the operator's, else the one the spec asks for."""
    return _get(body, "status", "severity") or _get(body, "spec", "severity")


def acked_by(body: Body) -> Any:
    """Who acknowledged (or contained, which counts) the current episode: the operator's ``acknowledgedBy``,
    else, before the operator has taken it in, the spec's record if it counts for the episode."""
    by = _get(body, "status", "acknowledgedBy")
    if by:
        return by
    record = current_record(body, "acknowledgement") or current_record(body, "containment")
    return record.get("by") if record else None


def list_row(body: Body, now: datetime.datetime, *, all_namespaces: bool = False, wide: bool = False) -> list[str]:
    row = [
        _text(_get(body, "metadata", "name")),
        _text(severity(body)),
        _text(_get(body, "status", "phase")),
        _text(_get(body, "status", "escalation", "levelName")),
        _text(acked_by(body)),
        age(_get(body, "metadata", "creationTimestamp"), now),
        shorten(_text(_get(body, "spec", "title")), TITLE_WIDTH),
    ]
    if wide:
        deadline = _get(body, "status", "sla", "nextDeadline")
        row += [
            _text(_get(body, "status", "escalationPolicy")),
            _deadline_cell(deadline, now) if deadline else NONE,
        ]
    if all_namespaces:
        row.insert(0, _text(_get(body, "metadata", "namespace")))
    return row


def _deadline_cell(deadline: Any, now: datetime.datetime) -> str:
    moment = parse_time(deadline)
    if moment is None:
        return _text(deadline)
    if moment >= utc(now):
        return f"in {human_duration(moment - utc(now))}"
    return f"overdue {human_duration(utc(now) - moment)}"


def sort_key(body: Body) -> tuple[str, str]:
    return (_get(body, "metadata", "namespace") or "", _get(body, "metadata", "name") or "")


def incident_table(
    items: Sequence[Body], now: datetime.datetime, *, all_namespaces: bool = False, wide: bool = False
) -> str:
    headers = list(LIST_HEADERS)
    if wide:
        headers += WIDE_HEADERS
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = [list_row(b, now, all_namespaces=all_namespaces, wide=wide) for b in sorted(items, key=sort_key)]
    return table(headers, rows)


def as_list(items: Sequence[Body]) -> Body:
    """A ``v1 List``, as ``kubectl get -o json`` prints several objects."""
    return {"apiVersion": "v1", "kind": "List", "items": sorted(items, key=sort_key), "metadata": {}}


EVIDENCE_HEADERS = ("NAME", "REF", "ITEMS", "BYTES", "SHA256", "COLLECTED")


def evidence_table(records: Sequence[Body], now: datetime.datetime) -> str:
    """``kubectl incident evidence NAME``: one row per ``status.evidence`` record, the full digest included
    (people compare it with what they extracted)."""
    rows = [
        [
            *(_text(r.get(key)) for key in ("name", "ref", "items", "bytes", "sha256")),
            _when(r.get("collectedAt"), now),
        ]
        for r in records
    ]
    return table(EVIDENCE_HEADERS, rows)


def dump(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=2, sort_keys=False)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")


# --- describe ------------------------------------------------------------------------------------


def _when(value: Any, now: datetime.datetime) -> str:
    """``2024-05-01T12:00:00Z (5m ago)``."""
    if not value:
        return NONE
    return f"{value} ({relative(value, now)})"


def _fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    width = max(len(label) for label, _ in pairs) + 2
    lines = []
    for label, value in pairs:
        head = f"{indent}{label + ':':<{width}}"
        text_lines = str(value).splitlines() or [""]
        lines.append((head + text_lines[0]).rstrip())
        lines.extend(f"{indent}{'':<{width}}{more}".rstrip() for more in text_lines[1:])
    return lines


def _record_line(record: Any, status: Body, now: datetime.datetime, *extra: str) -> str:
    if not isinstance(record, dict):
        return NONE
    line = f"by {_text(record.get('by'))} at {_when(record.get('at'), now)}"
    if not counts_in_episode(record.get("at"), status.get("episodeStartedAt"), status.get("episode")):
        line += " [an earlier episode]"
    for key in extra:
        if record.get(key):
            line += f"\n{key}: {record[key]}"
    return line


def deadline_state(deadline: Any, done: bool, now: datetime.datetime) -> str:
    """A deadline for people: when, and the time left, how long overdue, or that it was met."""
    moment = parse_time(deadline)
    if moment is None:
        return NONE
    if done:
        return f"{deadline} (done)"
    if moment >= utc(now):
        return f"{deadline} ({human_duration(moment - utc(now))} left)"
    return f"{deadline} (OVERDUE by {human_duration(utc(now) - moment)})"


def _section(title: str, lines: Sequence[str]) -> list[str]:
    return [f"{title}:", *[f"  {line}" if line else "" for line in lines]] if lines else [f"{title}:  <none>"]


def describe(body: Body, now: datetime.datetime, events: Sequence[Body] | None = None) -> str:
    """``kubectl incident describe``: everything the operator knows about one incident, for people."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    started = status.get("episodeStartedAt")
    phase = status.get("phase")

    effective = severity(body)
    sev = _text(effective)
    if spec.get("severity") and status.get("severity") and spec["severity"] != status["severity"]:
        sev += f" (spec asks {spec['severity']})"
    elif not spec.get("severity") and status.get("severity"):
        sev += " (classified)"
    source = spec.get("source") or {}
    source_text = _text(source.get("kind"))
    if source.get("receiver"):
        source_text += f" (receiver {source['receiver']})"
    if source.get("previous"):
        source_text += f"; the group's earlier incident: {source['previous']}"
    policy_ref = spec.get("escalationPolicyRef") or {}
    policy = status.get("escalationPolicy")
    if not policy and policy_ref:
        policy = f"{policy_ref.get('namespace') or meta.get('namespace')}/{policy_ref.get('name')} (requested)"

    episode = status.get("episode")
    episode_text = NONE
    if episode:
        episode_text = f"{episode}, started {_when(started, now)}"
        if status.get("reopenCount"):
            episode_text += f", reopened {status['reopenCount']} time(s)"

    header: list[tuple[str, str]] = [
        ("Name", _text(meta.get("name"))),
        ("Namespace", _text(meta.get("namespace"))),
        ("Title", _text(spec.get("title"))),
        ("Severity", sev),
        ("Type", _text(status.get("type") or spec.get("type"))),
        (
            "Phase",
            (_text(phase) if status else "- (not yet seen by the operator)")
            + (" [DRILL]" if spec.get("drill") else ""),
        ),
        ("Episode", episode_text),
        ("Policy", _text(policy)),
        ("Source", source_text),
        ("Created", _when(meta.get("creationTimestamp"), now)),
    ]
    if status.get("startedAt"):
        header.append(("Started", _when(status["startedAt"], now)))
    if status.get("reopenUntil") and phase == "Resolved":
        header.append(("Reopens until", _when(status["reopenUntil"], now)))
    if spec.get("description"):
        header.append(("Description", str(spec["description"]).rstrip()))
    lines = _fields(header)

    lines.append("")
    update = spec.get("statusUpdate")
    update_text = NONE
    if isinstance(update, dict):
        update_text = f"by {_text(update.get('by'))} at {_when(update.get('at'), now)}\n{_text(update.get('message'))}"
    lines += _fields(
        [
            ("Acknowledged", _record_line(spec.get("acknowledgement"), status, now, "note")),
            ("Contained", _record_line(spec.get("containment"), status, now, "note")),
            ("Resolved", _record_line(spec.get("resolution"), status, now, "summary", "rootCause")),
            ("Status update", update_text),
        ]
    )
    roles = spec.get("roles") or {}
    if roles:
        lines += _fields(
            [
                ("Commander", _text(roles.get("commander"))),
                ("Technical lead", _text(roles.get("technicalLead"))),
                ("Communications", _text(roles.get("communications"))),
            ]
        )

    lines.append("")
    lines += _section("Conditions", _conditions(status.get("conditions") or [], now))
    lines.append("")
    lines += _section("SLA", _sla(body, now))
    lines.append("")
    lines += _section("Escalation", _escalation(status.get("escalation"), now))
    lines.append("")
    lines += _section("Recent notifications", _notifications(status.get("notifications") or [], now))
    actions = status.get("actions") or []
    if actions:
        lines.append("")
        lines += _section("Actions", _actions(actions))
    lines.append("")
    lines += _section("Timeline", _timeline(status.get("timeline") or [], now))
    lines.append("")
    lines += _section(f"Metrics (episode {episode or 1})", _metrics(status.get("metrics") or {}))
    episodes = [e for e in status.get("episodes") or [] if isinstance(e, dict)]
    if episodes:
        lines.append("")
        lines += _section("Earlier episodes", _episodes(episodes))
    postmortem = status.get("postmortem") or {}
    if postmortem:
        lines.append("")
        lines += _section(
            "Post-mortem",
            _fields(
                [
                    ("State", _text(postmortem.get("state"))),
                    ("Due by", _when(postmortem.get("dueBy"), now)),
                    ("Ref", _text(postmortem.get("ref"))),
                ]
            ),
        )
    assessment = status.get("assessment") or {}
    if assessment:
        lines.append("")
        results = [r for r in assessment.get("results") or [] if isinstance(r, dict)]
        lines += _section(
            "Drill assessment",
            _fields(
                [
                    ("Result", "passed" if assessment.get("passed") else "failed"),
                    *(
                        (
                            _text(r.get("target")),
                            f"{'pass' if r.get('passed') else 'FAIL'}: "
                            f"{'never' if r.get('seconds') is None else str(r.get('seconds')) + 's'}"
                            f" (within {_text(r.get('within'))}, {_text(r.get('source'))})",
                        )
                        for r in results
                    ),
                    ("Ref", _text(assessment.get("ref"))),
                ]
            ),
        )
    if events is not None:
        lines.append("")
        lines += _section("Events", _events(events, now))
    return "\n".join(lines)


def _conditions(conditions: Sequence[Body], now: datetime.datetime) -> list[str]:
    if not conditions:
        return []
    rows = [
        [
            _text(c.get("type")),
            _text(c.get("status")),
            _text(c.get("reason")),
            age(c.get("lastTransitionTime"), now) if c.get("lastTransitionTime") else NONE,
            shorten(_text(c.get("message")), 80),
        ]
        for c in conditions
        if isinstance(c, dict)
    ]
    return table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), rows).splitlines()


def _sla(body: Body, now: datetime.datetime) -> list[str]:
    sla = _get(body, "status", "sla") or {}
    if not isinstance(sla, dict) or not sla:
        return []
    resolved = (current_record(body, "resolution") is not None) or _get(body, "status", "phase") in (
        "Resolved",
        "Closed",
    )
    acknowledged = bool(acked_by(body)) or resolved
    pairs: list[tuple[str, str]] = []
    if sla.get("acknowledgeBy"):
        pairs.append(("Acknowledge by", deadline_state(sla["acknowledgeBy"], acknowledged, now)))
    if sla.get("resolveBy"):
        pairs.append(("Resolve by", deadline_state(sla["resolveBy"], resolved, now)))
    if sla.get("nextUpdateBy"):
        pairs.append(("Next update by", deadline_state(sla["nextUpdateBy"], resolved, now)))
    if sla.get("notifyUsersBy"):
        pairs.append(("Notify users by", deadline_state(sla["notifyUsersBy"], False, now)))
    if sla.get("notifyRegulatorBy"):
        pairs.append(("Notify regulator by", deadline_state(sla["notifyRegulatorBy"], False, now)))
    lines = _fields(pairs) if pairs else []
    breaches = [b for b in sla.get("breaches") or [] if isinstance(b, dict)]
    if breaches:
        lines.append("Breaches:")
        rows = [[_text(b.get("kind")), _text(b.get("deadline")), _text(b.get("at"))] for b in breaches]
        lines += [f"  {line}" for line in table(("KIND", "DEADLINE", "NOTICED"), rows).splitlines()]
    return lines


def _escalation(escalation: Any, now: datetime.datetime) -> list[str]:
    if not isinstance(escalation, dict) or not escalation:
        return []
    level = escalation.get("levelName")
    index = escalation.get("level")
    level_text = NONE if level is None and index is None else f"{_text(level)} (#{_text(index)})"
    next_at = escalation.get("nextAt")
    return _fields(
        [
            ("Round", _text(escalation.get("round", 0))),
            ("Level", level_text),
            ("Next at", _when(next_at, now) if next_at else "nothing more due"),
            ("Exhausted", _text(bool(escalation.get("exhausted")))),
            ("Notified keys", str(len(escalation.get("notified") or []))),
        ]
    )


def _newest(items: Sequence[Any], count: int, key: str = "at") -> list[Body]:
    records = [i for i in items if isinstance(i, dict)]
    records.sort(key=lambda r: parse_time(r.get(key)) or datetime.datetime.min.replace(tzinfo=datetime.UTC))
    return records[-count:]


def _notifications(notifications: Sequence[Any], now: datetime.datetime) -> list[str]:
    recent = _newest(notifications, RECENT_NOTIFICATIONS)
    if not recent:
        return []
    rows = [
        [
            age(n.get("at"), now) + " ago",
            _text(n.get("channel")),
            _text(n.get("event")),
            _text(n.get("level")),
            _text(n.get("outcome")),
            _text(n.get("attempts")),
            shorten(_text(n.get("message")), 60) if n.get("message") else "",
        ]
        for n in recent
    ]
    lines = table(("WHEN", "CHANNEL", "EVENT", "LEVEL", "OUTCOME", "ATTEMPTS", "MESSAGE"), rows).splitlines()
    if len(notifications) > len(recent):
        lines.append(f"({len(notifications) - len(recent)} older not shown)")
    return lines


def _actions(actions: Sequence[Any]) -> list[str]:
    rows = [
        [
            _text(a.get("name")),
            _text(a.get("type")),
            _text(a.get("phase")) + (" (dry run)" if a.get("dryRun") else ""),
            shorten(_text(a.get("message")), 70),
        ]
        for a in actions
        if isinstance(a, dict)
    ]
    return table(("NAME", "TYPE", "PHASE", "MESSAGE"), rows).splitlines() if rows else []


def _timeline(timeline: Sequence[Any], now: datetime.datetime) -> list[str]:
    recent = _newest(timeline, RECENT_TIMELINE)
    if not recent:
        return []
    rows = [
        [_text(t.get("at")), _text(t.get("kind")), _text(t.get("actor")), shorten(_text(t.get("message")), 80)]
        for t in recent
    ]
    lines = table(("AT", "KIND", "ACTOR", "MESSAGE"), rows).splitlines()
    if len(timeline) > len(recent):
        lines.insert(0, f"({len(timeline) - len(recent)} earlier entries not shown)")
    return lines


def _metrics(metrics: Body) -> list[str]:
    labels = (
        ("timeToAcknowledgeSeconds", "Time to acknowledge"),
        ("timeToContainSeconds", "Time to contain"),
        ("timeToResolveSeconds", "Time to resolve"),
    )
    pairs = [
        (label, human_duration(datetime.timedelta(seconds=metrics[key])))
        for key, label in labels
        if isinstance(metrics.get(key), int | float)
    ]
    return _fields(pairs) if pairs else []


def _seconds(value: Any) -> str:
    return human_duration(datetime.timedelta(seconds=value)) if isinstance(value, int | float) else NONE


def _episodes(episodes: Sequence[Body]) -> list[str]:
    rows = [
        [
            _text(e.get("episode")),
            _text(e.get("startedAt")),
            _text(e.get("resolvedAt")),
            _seconds(e.get("timeToAcknowledgeSeconds")),
            _seconds(e.get("timeToResolveSeconds")),
            ", ".join(str(b) for b in e.get("breaches") or []) or NONE,
        ]
        for e in episodes
    ]
    return table(("EPISODE", "STARTED", "RESOLVED", "TO ACKNOWLEDGE", "TO RESOLVE", "BREACHED"), rows).splitlines()


def _events(events: Sequence[Body], now: datetime.datetime) -> list[str]:
    def when(event: Body) -> Any:
        return event.get("lastTimestamp") or event.get("eventTime") or _get(event, "metadata", "creationTimestamp")

    ordered = sorted(
        (e for e in events if isinstance(e, dict)),
        key=lambda e: parse_time(when(e)) or datetime.datetime.min.replace(tzinfo=datetime.UTC),
    )[-RECENT_TIMELINE:]
    rows = [
        [
            _text(e.get("type")),
            _text(e.get("reason")),
            age(when(e), now),
            _text(_get(e, "source", "component") or e.get("reportingComponent")),
            shorten(_text(e.get("message")), 80),
        ]
        for e in ordered
    ]
    return table(("TYPE", "REASON", "AGE", "FROM", "MESSAGE"), rows).splitlines() if rows else []


# --- actions ----------------------------------------------------------------------------------------


def _undo_text(record: Body, incident: str, now: datetime.datetime) -> str:
    """How the change of ``record`` is undone, in the words of the person who would undo it. The keys of
    ``undo`` are the operator's own memory of the change, not something to show."""
    name = _text(record.get("name"))
    if record.get("undoneAt"):
        return f"undone {_when(record.get('undoneAt'), now)}"
    if not record.get("undo") or record.get("dryRun"):
        return ""
    kind = record.get("type")
    if kind == "rollback":
        return "never undone: roll forward with a new deploy"
    if kind == "quarantine":
        return f"only by a person: kubectl incident release {incident}"
    by_hand = f"kubectl incident undo {incident} {name}"
    if (record.get("undo") or {}).get("onResolve") == "true":
        return f"on resolve, or now with {by_hand}"
    return f"with {by_hand}"


def action_ledger(body: Body, now: datetime.datetime) -> str:
    """``kubectl incident actions``: the ledger, an action a block: phase, plan, changes, undo, message."""
    records = [r for r in (body.get("status") or {}).get("actions") or [] if isinstance(r, dict)]
    if not records:
        return f'incident "{_get(body, "metadata", "name")}" has no actions'
    rows = [
        [
            _text(r.get("name")),
            _text(r.get("type")),
            _text(r.get("phase")) + (" (dry run)" if r.get("dryRun") else ""),
            _text(r.get("reason")),
            _text(r.get("target")),
            relative_or_none(r.get("finishedAt") or r.get("startedAt"), now),
        ]
        for r in records
    ]
    lines = table(("NAME", "TYPE", "PHASE", "REASON", "TARGET", "WHEN"), rows).splitlines()
    for r in records:
        lines.append("")
        lines.append(f"{_text(r.get('name'))}:")
        details: list[tuple[str, str]] = [("Origin", _text(r.get("origin"))), ("Key", _text(r.get("key")))]
        if r.get("approvedBy"):
            details.append(("Approved by", _text(r.get("approvedBy"))))
        if r.get("plan"):
            details.append(("Plan", _text(r.get("plan"))))
        if r.get("message"):
            details.append(("Message", _text(r.get("message"))))
        undo_text = _undo_text(r, _text(_get(body, "metadata", "name")), now)
        if undo_text:
            details.append(("Undo", undo_text))
        lines += [f"  {line}" for line in _fields(details)]
        for change in r.get("changes") or []:
            if isinstance(change, dict):
                lines.append(
                    f"  change: {_text(change.get('object'))} {_text(change.get('field'))}: "
                    f"{_text(change.get('old'))} -> {_text(change.get('new'))}"
                )
    return "\n".join(lines)


def relative_or_none(value: Any, now: datetime.datetime) -> str:
    return age(value, now) + " ago" if value else NONE
