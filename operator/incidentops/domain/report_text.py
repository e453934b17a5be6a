"""The incident report in Markdown, laid out as the seeds' monthly incident report.

Where it sits: after :func:`incidentops.domain.report.build`. ``kubectl incident report`` prints it (``-o
md``, the default) and the operator's monthly report sends it as the message's text. Pure text from a
:class:`~incidentops.domain.report.Report`: the same report always reads the same.

The seeds' template: an executive summary (total and the trend against last month, the critical incidents,
the average MTTR against its target), the breakdown by severity (count, average duration), the top
categories; then what the operator knows besides: MTTA, SLA breaches by kind, drills, post-mortems and
action items still open, the most frequent alerts and labels, and the incidents that reopened. The seeds'
"primary cause" and "uptime" have no source in the cluster and are left out rather than made up.
"""

from __future__ import annotations

import datetime

from incidentops.domain.report import Report, SeverityLine, Trend

__all__ = ["duration", "markdown", "title"]


def duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``1h 05m``, ``2d 3h``; an em dash for none."""
    if seconds is None:
        return "—"
    total = max(round(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _trend(trend: Trend, previous: str) -> str:
    if trend.percent is None:  # none in the previous period
        return f"none {previous} either" if trend.change == 0 else f"none {previous}"
    arrow = "↑" if trend.change > 0 else "↓" if trend.change < 0 else "→"
    return f"{arrow} {abs(trend.percent):g}% from {previous}, {trend.previous}"


def title(report: Report) -> str:
    """``Monthly Incident Report - November 2026``, or ``Incident Report - 30d to ...``."""
    try:
        month = datetime.datetime.strptime(report.period, "%Y-%m")
    except ValueError:
        return f"Incident Report - {report.period}"
    return f"Monthly Incident Report - {month:%B %Y}"


def _within(done: int, within: int) -> str:
    return f"{within}/{done}" if done else "—"


def _target(seconds: int | None) -> str:
    return duration(seconds) if seconds is not None else "varies"


def _severity_row(line: SeverityLine) -> str:
    return (
        f"| {line.severity} | {line.count} | {duration(line.average_duration_seconds)} "
        f"| {duration(line.mtta_seconds)} | {_target(line.acknowledge_target_seconds)} "
        f"| {_within(line.acknowledged, line.acknowledged_within_target)} "
        f"| {duration(line.mttr_seconds)} | {_target(line.resolve_target_seconds)} "
        f"| {_within(line.resolved_episodes, line.resolved_within_target)} |"
    )


def _ts(value: datetime.datetime | None) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else "no due date"


def markdown(report: Report) -> str:
    """The report as Markdown."""
    monthly = title(report).startswith("Monthly")
    previous = "last month" if monthly else "the period before"
    t = report.totals
    by = {line.severity: line for line in report.by_severity}
    lines = [
        f"# {title(report)}",
        "",
        f"{_ts(report.start)} to {_ts(report.end)}; {report.scope or 'incidents'};"
        f" generated {_ts(report.generated_at)}.",
        "",
        "## Executive Summary",
        "",
        f"- **Total incidents**: {t.incidents} ({_trend(t.trend, previous)})",
        f"- **Critical incidents**: {by['P1'].count} P1, {by['P2'].count} P2",
        f"- **Resolved**: {t.resolved} of {t.incidents}; {t.episodes} episodes started in the period",
        f"- **Average MTTA**: {duration(t.mtta_seconds)} (targets by severity below)",
        f"- **Average MTTR**: {duration(t.mttr_seconds)} (targets by severity below)",
        f"- **SLA breaches**: {sum(report.breaches.values())}",
        f"- **Drills**: {len(report.drills)} ({report.drills_passed} passed, {report.drills_failed} failed,"
        f" {report.drills_unassessed} not assessed)",
        f"- **Open post-mortems**: {report.postmortems_open} ({report.postmortems_overdue} overdue);"
        f" **open action items**: {report.action_items_open} ({report.action_items_overdue} overdue)",
        "",
        "## Incident Breakdown",
        "",
        "| Severity | Count | Avg Duration | MTTA | Target | Within | MTTR | Target | Within |",
        "| -------- | ----- | ------------ | ---- | ------ | ------ | ---- | ------ | ------ |",
        *(_severity_row(line) for line in report.by_severity),
        "",
        "## Top Incident Categories",
        "",
    ]
    categories = sorted(report.by_type, key=lambda x: (-x.count, x.type))
    lines += [
        f"{i}. {c.type} - {c.count} incident{'s' if c.count != 1 else ''}"
        f" (avg duration {duration(c.average_duration_seconds)})"
        for i, c in enumerate(categories, 1)
    ] or ["None."]
    lines += ["", "## SLA Breaches", "", "| Kind | Count |", "| ---- | ----- |"]
    lines += [f"| {kind} | {count} |" for kind, count in report.breaches.items()]
    lines += ["", "## Drills", ""]
    if report.drills:
        lines += [
            "| Drill | Severity | Acknowledged in | Resolved in | Breaches | Result |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {d.namespace}/{d.name} | {d.severity} | {duration(d.time_to_acknowledge_seconds)}"
            f" | {duration(d.time_to_resolve_seconds)} | {', '.join(d.breaches) or 'none'}"
            f" | {d.result or 'not assessed'} |"
            for d in report.drills
        ]
    else:
        lines.append("None.")
    lines += ["", "## Post-mortems", ""]
    lines += [
        f"- {p.namespace}/{p.name} ({p.severity}): {p.state}, due {_ts(p.due_by)}"
        f"{' - **overdue**' if p.overdue else ''}"
        for p in report.postmortems
    ] or ["None open."]
    lines += ["", "## Action Items for Next Month", ""]
    lines += [
        f"- {a.title} - {a.owner or 'no owner'} ({a.incident}; due {_ts(a.due_by)}"
        f"{', **overdue**' if a.overdue else ''})"
        for a in report.action_items
    ] or ["None open."]
    lines += ["", "## Most Frequent Alerts", ""]
    lines += [f"{i}. {a.name} - {a.count}" for i, a in enumerate(report.top_alerts, 1)] or ["None."]
    lines += ["", "## Most Frequent Labels", ""]
    lines += [f"{i}. {x.label}={x.value} - {x.count}" for i, x in enumerate(report.top_labels, 1)] or ["None."]
    lines += ["", "## Reopened Incidents", ""]
    lines += [f"- {r.namespace}/{r.name} ({r.severity}): {r.episodes} episodes" for r in report.reopened] or ["None."]
    if report.unreadable:
        lines += ["", f"({report.unreadable} object(s) could not be read as Incidents and are counted nowhere.)"]
    return "\n".join(lines) + "\n"
