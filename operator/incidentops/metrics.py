"""Prometheus metrics of the operator, served on their own port.

Where it sits: beside ``settings``; the scheduler, the handlers and the
receiver record what happened through the small functions here, and nothing
here decides anything. Every metric lives in one registry per process, so tests
can read them through ``generate_latest`` like Prometheus does.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

# Response-time buckets in seconds: from a minute to a day (SLAs are 15m..168h).
_RESPONSE_BUCKETS = (60, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800)

OPEN_INCIDENTS = Gauge(
    "incidentops_open_incidents",
    "Incidents that are not Closed, by effective severity and phase.",
    ["severity", "phase"],
    registry=REGISTRY,
)
POSTMORTEMS_OVERDUE = Gauge(
    "incidentops_postmortems_overdue",
    "Incidents whose required post-mortem is past its due time and not completed (status.postmortem.state Overdue).",
    registry=REGISTRY,
)
TIME_TO_ACKNOWLEDGE = Histogram(
    "incidentops_time_to_acknowledge_seconds",
    "From the episode's start to its acknowledgement.",
    ["severity"],
    buckets=_RESPONSE_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_RESOLVE = Histogram(
    "incidentops_time_to_resolve_seconds",
    "From the episode's start to its resolution.",
    ["severity"],
    buckets=_RESPONSE_BUCKETS,
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "incidentops_escalations_total",
    "Escalation levels reached (the first page of a level in a round).",
    ["level"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "incidentops_notifications_total",
    "Outcomes of notification attempts, by channel type, event and outcome: Delivered, Pending (failed, "
    "retried later), Failed (refused for good, or given up), Skipped (moot before it was delivered).",
    ["channel_type", "event", "outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS_IN_PROGRESS = Gauge(
    "incidentops_notifications_in_progress",
    "Notifications the delivery queue holds: sending (or waiting for their destination's rate limit), "
    "or retrying (waiting for the next attempt).",
    ["state"],
    registry=REGISTRY,
)
SLA_BREACHES = Counter(
    "incidentops_sla_breaches_total",
    "Response-time deadlines missed, by kind (acknowledge, resolve) and severity.",
    ["kind", "severity"],
    registry=REGISTRY,
)
SCHEDULER_LATENESS = Histogram(
    "incidentops_scheduler_lateness_seconds",
    "How long after its deadline a due notification went out.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "incidentops_reconcile_errors_total",
    "Failed looks at an incident, by kind: temporary (retried with backoff), permanent (shown on the "
    "incident, retried slowly and on change) or other (a bug: retried with backoff).",
    ["kind"],
    registry=REGISTRY,
)
for _kind in ("temporary", "permanent", "other"):
    RECONCILE_ERRORS.labels(_kind)  # every kind at 0 from the start, so rate() and alerts see it
ACTIONS = Counter(
    "incidentops_actions_total",
    "Steps of containment actions, by action type and outcome (started, succeeded, failed, skipped, planned,"
    " undone, undo-skipped).",
    ["type", "outcome"],
    registry=REGISTRY,
)
SCHEDULER_QUEUE = Gauge(
    "incidentops_scheduler_queued_incidents",
    "Open incidents the scheduler keeps a next deadline for.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "incidentops_leader",
    "1 while this process leads (holds the Lease, or runs without leader election), 0 while it stands by.",
    registry=REGISTRY,
)
RECEIVER_REQUESTS = Histogram(
    "incidentops_receiver_request_duration_seconds",
    "Time the receiver took to answer a request, by route (the receiver's paths, `other` for any other) and"
    " HTTP status code; every answer counts, 4xx and 5xx included.",
    ["path", "code"],
    # From a probe's millisecond to the write timeout (30s by default) and beyond.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)


def render() -> bytes:
    return bytes(generate_latest(REGISTRY))


async def serve(host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``/metrics`` until ``stop`` is set."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
