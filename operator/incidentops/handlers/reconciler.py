"""Process one incident: read, ask the domain, send what is due, record, announce.

Where it sits: called by the scheduler for one incident at a time (never two
at once for the same incident). The order makes delivery at-least-once with a
stable key: the domain names what is due and its key, the channels send, and
only then is the delivery recorded in status. A crash between send and record
re-sends under the same key on the next look; nothing is lost, and nothing is
ever sent under a new key. The Events are posted after the status that they
announce has been written.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from incidentops import kube, metrics
from incidentops.api import EscalationPolicy, Incident, conditions, reasons
from incidentops.domain import plan as planning
from incidentops.domain import selection as selecting
from incidentops.handlers.caches import TTLCache
from incidentops.handlers.delivery import Deliverer
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.scheduler import Key

logger = logging.getLogger("incidentops.reconciler")

# A plan that asks to be woken in the past after its work is recorded would
# spin; the domain promises it never does, and this is the guard if it did.
_MIN_REWAKE = datetime.timedelta(seconds=1)
# Deliveries that finish within this are written together with the status they follow.
_QUICK_DELIVERY = 1.0


async def load_policies(deps: Dependencies, ns: str) -> list[EscalationPolicy]:
    """The usable policies of one namespace (an incident's own, or the operator's)."""
    policies: list[EscalationPolicy] = []
    for body in await kube.list_objects(deps.api, kube.POLICIES, ns):
        try:
            policies.append(EscalationPolicy.model_validate(body))
        except ValidationError as exc:
            # The API server accepted it, so it is ours to explain, not to crash on;
            # the policy's own handler reports it in its Ready condition.
            logger.warning("policy %s/%s is not usable: %s", ns, body["metadata"]["name"], exc.errors()[0]["msg"])
    return policies


@dataclass
class OpenIncidents:
    """What the open-incidents gauge counts: the last known severity and phase of each incident."""

    states: dict[Key, tuple[str, str]] = field(default_factory=dict)

    def set(self, key: Key, severity: str | None, phase: str | None) -> None:
        if phase in (None, "Closed"):
            self.states.pop(key, None)
        else:
            self.states[key] = (severity or "unknown", phase or "unknown")
        self._publish()

    def forget(self, key: Key) -> None:
        self.states.pop(key, None)
        self._publish()

    def _publish(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        for severity in ("P1", "P2", "P3", "P4", "unknown"):
            for phase in ("Triggered", "Acknowledged", "Contained", "Resolved"):
                metrics.OPEN_INCIDENTS.labels(severity, phase).set(counts.get((severity, phase), 0))


class Reconciler:
    def __init__(self, deps: Dependencies, deliverer: Deliverer) -> None:
        self.deps = deps
        self.deliverer = deliverer
        # Policies by namespace, dropped by every policy watch event (see registry.py).
        self.policies: TTLCache[list[EscalationPolicy]] = TTLCache(deps.settings.cache_seconds)
        self.open = OpenIncidents()
        # The resourceVersion of our own last status write per incident: its watch
        # event needs no second look (a cache of our own writes, not state).
        self.written: dict[Key, str] = {}

    def is_own_write(self, key: Key, resource_version: str | None) -> bool:
        return resource_version is not None and self.written.get(key) == resource_version

    def forget(self, key: Key) -> None:
        self.written.pop(key, None)
        self.open.forget(key)

    async def process(self, key: Key) -> datetime.datetime | None:
        namespace, name = key
        try:
            body = await kube.read(self.deps.api, kube.INCIDENTS, namespace, name)
        except Exception as exc:
            if kube.is_status(exc, 404):
                self.forget(key)
                return None
            raise
        try:
            incident = Incident.model_validate(body)
        except ValidationError as exc:
            # Admission accepted it; say why we cannot act on it, and wait for a change.
            message = f"the incident cannot be processed: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            logger.warning("%s/%s: %s", namespace, name, message)
            await kube.post_event(self.deps.api, body, "Warning", reasons.SPEC_INVALID, message)
            return None

        policies: list[EscalationPolicy] = []
        for ns in dict.fromkeys([namespace, self.deps.settings.namespace]):
            policies += await self.policies.get((ns,), functools.partial(load_policies, self.deps, ns))
        selection = selecting.select_policy(incident, policies, self.deps.settings.namespace)
        now = self.deps.clock()
        first = planning.plan(incident, selection, now)

        if not first.due:
            after, _ = await self._write(key, body, incident, selection, now, deliveries=())
        else:
            # All channels at once (one slow channel delays none). When they answer
            # quickly, the new status and the delivery records are one write. Otherwise
            # the status goes first, so people see the transition at once however slow a
            # channel is, and the records follow. Either way a delivery is recorded only
            # after it happened: at least once, under a stable key.
            sending = asyncio.ensure_future(self._deliver(incident, selection, first.due, now))
            try:
                done, _ = await asyncio.wait([sending], timeout=_QUICK_DELIVERY)
                if sending in done:
                    after, _ = await self._write(key, body, incident, selection, now, deliveries=sending.result())
                else:
                    after, latest = await self._write(key, body, incident, selection, now, deliveries=())
                    deliveries = await sending
                    # From the copy we hold: a write by someone else meanwhile costs a conflict and a re-read.
                    after, _ = await self._write(key, latest, after, selection, now, deliveries=deliveries)
            finally:
                if not sending.done():
                    sending.cancel()

        self.open.set(key, after.status.severity, after.status.phase)
        if after.status.phase == "Closed":
            self.forget(key)
            return None
        wake_at: datetime.datetime | None = planning.plan(after, selection, now).wake_at
        if wake_at is not None and wake_at <= now:
            logger.warning("%s/%s: the plan asked to wake in the past; looking again shortly", namespace, name)
            wake_at = now + _MIN_REWAKE
        return wake_at

    async def _write(
        self,
        key: Key,
        body: dict[str, Any] | None,
        current: Incident,
        selection: selecting.Selection,
        now: datetime.datetime,
        *,
        deliveries: Sequence[tuple[planning.Due, str, int, str]],
    ) -> tuple[Incident, dict[str, Any] | None]:
        """Write the planned status (with ``deliveries`` recorded); the incident and its body as they now are."""
        namespace, name = key
        written_plan: list[planning.Plan] = []

        def mutate(fresh_body: dict[str, Any]) -> dict[str, Any]:
            fresh = Incident.model_validate(fresh_body)
            fresh_plan = planning.plan(fresh, selection, now)
            written_plan[:] = [fresh_plan]
            status = fresh_plan.status
            if deliveries:
                status = planning.record_deliveries(status, deliveries, now)
            result: dict[str, Any] = status.to_dict()
            return result

        written = await kube.write_status(self.deps.api, kube.INCIDENTS, namespace, name, mutate, body=body)
        if written is None:
            return current, body
        self.written[key] = written["metadata"]["resourceVersion"]
        after = Incident.model_validate(written)
        self._observe(current, after)
        for transition in written_plan[0].transitions if written_plan else ():
            await kube.post_event(self.deps.api, written, transition.type, transition.reason, transition.message)
        return after, written

    async def _deliver(
        self,
        incident: Incident,
        selection: selecting.Selection,
        due: Sequence[planning.Due],
        now: datetime.datetime,
    ) -> list[tuple[planning.Due, str, int, str]]:
        deliveries: list[tuple[planning.Due, str, int, str]] = []
        counted_levels: set[tuple[int, str | None]] = set()
        results = await asyncio.gather(*(self.deliverer.deliver(incident, selection.policy, item, now) for item in due))
        for item, result in zip(due, results, strict=True):
            deliveries.append((item, result.outcome, result.attempts, result.reason))
            metrics.NOTIFICATIONS.labels(result.channel_type, item.event, result.outcome).inc()
            if item.event in ("triggered", "escalated") and (item.round, item.level_name) not in counted_levels:
                counted_levels.add((item.round, item.level_name))
                metrics.ESCALATIONS.labels(item.level_name or "").inc()
            lateness = (self.deps.clock() - result.due_at).total_seconds() if result.due_at else None
            if lateness is not None and lateness >= 0:
                metrics.SCHEDULER_LATENESS.observe(lateness)
        return deliveries

    @staticmethod
    def _observe(before: Incident, after: Incident) -> None:
        """Count transitions in metrics, once: only what changed in this write."""
        severity = after.status.severity or "unknown"
        old, new = before.status, after.status
        if conditions.is_true(new.conditions, conditions.ACKNOWLEDGED) and not conditions.is_true(
            old.conditions, conditions.ACKNOWLEDGED
        ):
            seconds = new.metrics.time_to_acknowledge_seconds if new.metrics else None
            if seconds is not None:
                metrics.TIME_TO_ACKNOWLEDGE.labels(severity).observe(seconds)
        if conditions.is_true(new.conditions, conditions.RESOLVED) and not conditions.is_true(
            old.conditions, conditions.RESOLVED
        ):
            seconds = new.metrics.time_to_resolve_seconds if new.metrics else None
            if seconds is not None:
                metrics.TIME_TO_RESOLVE.labels(severity).observe(seconds)
        # A breach is one per (episode, kind): a deadline that moves later is not a second one.
        old_breaches = {(old.episode, b.kind) for b in (old.sla.breaches if old.sla else [])}
        for breach in new.sla.breaches if new.sla else []:
            if (new.episode, breach.kind) not in old_breaches:
                metrics.SLA_BREACHES.labels(str(breach.kind), severity).inc()
