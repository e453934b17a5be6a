"""Look at one incident: read, ask the domain, hand what is due to the delivery queue, write, announce.

Where it sits: called by the scheduler for one incident at a time (never two
at once for the same incident), and by the delivery queue (``queue.py``) to
plan an incident afresh before a retry and to record what became of a
notification. The order makes delivery at-least-once with a stable key: the
domain names what is due and its key, the queue sends, and only then is the
delivery recorded in status. A crash between send and record re-sends under
the same key on the next look; nothing is lost, and nothing is ever sent under
a new key. A look never waits for a slow channel beyond ``queue.QUICK``: the
incident's own state is written at once, the delivery records follow. The
Events are posted after the status that they announce has been written.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from incidentops import kube, metrics
from incidentops.actions import registry as action_modules
from incidentops.api import EscalationPolicy, Incident, conditions, reasons
from incidentops.api.incident import IncidentStatus, PostmortemState
from incidentops.domain import actions as acting
from incidentops.domain import delivery as delivering
from incidentops.domain import plan as planning
from incidentops.domain import selection as selecting
from incidentops.domain.delivery import Result, RetryRules
from incidentops.handlers.actions import ActionRunner, ModuleFor, Seen
from incidentops.handlers.caches import TTLCache
from incidentops.handlers.delivery import Deliverer
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.postmortems import PostmortemWriter
from incidentops.handlers.queue import QUICK, DeliveryQueue, Health, Look
from incidentops.handlers.scheduler import Key

logger = logging.getLogger("incidentops.reconciler")

# A plan that asks to be woken in the past after its work is recorded would
# spin; the domain promises it never does, and this is the guard if it did.
_MIN_REWAKE = datetime.timedelta(seconds=1)


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
    late: set[Key] = field(default_factory=set)
    """Incidents whose post-mortem is Overdue (the ``incidentops_postmortems_overdue`` gauge)."""

    def overdue(self, key: Key, overdue: bool) -> None:
        if overdue:
            self.late.add(key)
        else:
            self.late.discard(key)
        metrics.POSTMORTEMS_OVERDUE.set(len(self.late))

    def set(self, key: Key, severity: str | None, phase: str | None) -> None:
        if phase in (None, "Closed"):
            self.states.pop(key, None)
        else:
            self.states[key] = (severity or "unknown", phase or "unknown")
        self._publish()

    def forget(self, key: Key) -> None:
        self.states.pop(key, None)
        self.overdue(key, False)
        self._publish()

    def _publish(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        for severity in ("P1", "P2", "P3", "P4", "unknown"):
            for phase in ("Triggered", "Acknowledged", "Contained", "Resolved"):
                metrics.OPEN_INCIDENTS.labels(severity, phase).set(counts.get((severity, phase), 0))


class _Unusable(Exception):
    """The incident cannot be processed (admission accepted what the model refuses)."""

    def __init__(self, body: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.body = body


class Reconciler:
    """Looks at one incident at a time (for the scheduler) and records deliveries (for the queue)."""

    def __init__(
        self,
        deps: Dependencies,
        deliverer: Deliverer,
        health: Health,
        rules: RetryRules,
        modules: ModuleFor = action_modules.module_for,
    ) -> None:
        self.deps = deps
        # Policies by namespace, dropped by every policy watch event (see registry.py).
        self.policies: TTLCache[list[EscalationPolicy]] = TTLCache(deps.settings.cache_seconds)
        # Actions started in the last hour under a policy (its rate limit): a count of the API server's.
        self.budgets: TTLCache[int] = TTLCache(deps.settings.cache_seconds)
        self.open = OpenIncidents()
        # The resourceVersion of our own last status write per incident: its watch
        # event needs no second look (a cache of our own writes, not state).
        self.written: dict[Key, str] = {}
        self.queue = DeliveryQueue(deliverer, rules, self, health, deps.clock)
        self.actions = ActionRunner(deps.api, self, deps.clock, modules, operator_namespace=deps.settings.namespace)
        self.postmortems = PostmortemWriter(deps.api, self, deps.clock)

    def is_own_write(self, key: Key, resource_version: str | None) -> bool:
        return resource_version is not None and self.written.get(key) == resource_version

    def forget(self, key: Key) -> None:
        self.written.pop(key, None)
        self.open.forget(key)

    async def _look(self, key: Key) -> Look | None:
        """Read the incident and plan it now; None when it is gone; :class:`_Unusable` when it cannot be."""
        namespace, name = key
        try:
            body = await kube.read(self.deps.api, kube.INCIDENTS, namespace, name)
        except Exception as exc:
            if kube.is_status(exc, 404):
                return None
            raise
        try:
            incident = Incident.model_validate(body)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise _Unusable(body, f"the incident cannot be processed: {error['loc']}: {error['msg']}") from exc
        policies: list[EscalationPolicy] = []
        for ns in dict.fromkeys([namespace, self.deps.settings.namespace]):
            policies += await self.policies.get((ns,), functools.partial(load_policies, self.deps, ns))
        selection = selecting.select_policy(incident, policies, self.deps.settings.namespace)
        now = self.deps.clock()
        recent = await self._recent_actions(incident, selection, now)
        return Look(
            body, incident, selection, planning.plan(incident, selection, now, recent_actions=recent), now, recent
        )

    async def _recent_actions(self, incident: Incident, selection: selecting.Selection, now: datetime.datetime) -> int:
        """The policy's actions of the last hour (its rate limit), read only when an action may start."""
        policy = selection.policy
        if policy is None or selection.ref is None or not acting.may_start(incident, selection):
            return 0
        scope = None if policy.metadata.namespace == self.deps.settings.namespace else policy.metadata.namespace
        ref = selection.ref

        async def count() -> int:
            statuses = []
            for body in await kube.list_objects(self.deps.api, kube.INCIDENTS, scope):
                status = body.get("status") or {}
                if status.get("escalationPolicy") == ref:
                    with contextlib.suppress(ValidationError):
                        statuses.append(IncidentStatus.model_validate(status))
            return acting.recent_actions(statuses, now)

        return await self.budgets.get((ref,), count)

    async def seen(self, key: Key) -> Seen | None:
        """For the action runner: the incident as it is now, and its selection (None: gone, or unusable)."""
        look = await self.current(key)
        return Seen(look.incident, look.selection) if look is not None else None

    async def change(
        self,
        key: Key,
        uid: str,
        compute: Callable[[Incident], IncidentStatus | None],
        transitions: Sequence[planning.Transition] = (),
    ) -> Incident | None:
        """For the action runner: write what ``compute`` makes of the incident (if it is still ``uid``)."""

        def wrapped(fresh: Incident) -> tuple[IncidentStatus, Sequence[planning.Transition]] | None:
            if (fresh.metadata.uid or "") != uid:
                return None
            status = compute(fresh)
            return (status, transitions) if status is not None else None

        written = await self._commit(key, None, wrapped)
        if written is None:
            return None
        self.budgets.invalidate()  # a step may have started an action: the next count reads afresh
        return Incident.model_validate(written)

    async def current(self, key: Key) -> Look | None:
        """For the delivery queue: the incident planned afresh (None: gone, or not processable)."""
        try:
            return await self._look(key)
        except _Unusable:
            return None

    async def process(self, key: Key) -> datetime.datetime | None:
        namespace, name = key
        try:
            look = await self._look(key)
        except _Unusable as exc:
            # Admission accepted it; say why we cannot act on it, and wait for a change.
            logger.warning("%s/%s: %s", namespace, name, exc)
            await kube.post_event(self.deps.api, exc.body, "Warning", reasons.SPEC_INVALID, str(exc))
            return None
        if look is None:
            self.forget(key)
            return None

        # The deliveries run apart from this look: it hands them to the queue and writes the
        # status, so people see the transition within a second however slow a channel is.
        # What is delivered (or refused, or still pending) by then goes into the same write.
        due = look.plan.due
        self.queue.moot(key, {d.key for d in due})
        new = [d for d in due if not self.queue.busy(d.key)]
        batch = self.queue.submit(key, look, new) if new else None
        try:
            quick = await batch.collect(QUICK) if batch is not None else []
            after = await self._write(key, look, quick)
        finally:
            if batch is not None:
                batch.written()

        # Actions run apart too: the runner takes the records with work (Pending, Running, an undo due).
        self.actions.submit(key, after)
        again = planning.plan(after, look.selection, look.now, recent_actions=look.recent)
        # The draft of a resolved incident, once its response has settled: nothing left to send, no action
        # with work (an undo on resolve), so it records how the incident ended.
        settled = not again.due and not acting.runnable(
            after, conditions.is_true(after.status.conditions, conditions.RESOLVED)
        )
        self.postmortems.submit(key, after, look.selection, settled)
        self.open.set(key, after.status.severity, after.status.phase)
        postmortem = after.status.postmortem
        self.open.overdue(key, postmortem is not None and postmortem.state is PostmortemState.OVERDUE)
        if after.status.phase == "Closed":
            self.forget(key)
            return None
        wake_at: datetime.datetime | None = again.wake_at
        if wake_at is not None and wake_at <= look.now:
            logger.warning("%s/%s: the plan asked to wake in the past; looking again shortly", namespace, name)
            wake_at = look.now + _MIN_REWAKE
        return wake_at

    async def _commit(
        self,
        key: Key,
        body: dict[str, Any] | None,
        compute: Callable[[Incident], tuple[IncidentStatus, Sequence[planning.Transition]] | None],
    ) -> dict[str, Any] | None:
        """Write the status ``compute`` makes of the incident as it is (again on conflict), then post
        its Events; the object as written (None: nothing to write, or gone)."""
        namespace, name = key
        announced: list[planning.Transition] = []

        def mutate(fresh_body: dict[str, Any]) -> dict[str, Any] | None:
            computed = compute(Incident.model_validate(fresh_body))
            if computed is None:
                return None
            status, transitions = computed
            announced[:] = transitions
            result: dict[str, Any] = status.to_dict()
            return result

        written = await kube.write_status(self.deps.api, kube.INCIDENTS, namespace, name, mutate, body=body)
        if written is None:
            return None
        self.written[key] = written["metadata"]["resourceVersion"]
        for transition in announced:
            await kube.post_event(self.deps.api, written, transition.type, transition.reason, transition.message)
        return written

    async def _write(self, key: Key, look: Look, deliveries: Sequence[Result]) -> Incident:
        """Write the planned status (with ``deliveries`` recorded); the incident as it now is."""

        def compute(fresh: Incident) -> tuple[IncidentStatus, Sequence[planning.Transition]]:
            fresh_plan = planning.plan(fresh, look.selection, look.now, recent_actions=look.recent)
            status = delivering.record_outcomes(fresh_plan.status, deliveries, look.now)
            notices = delivering.failure_notices(fresh_plan.status, deliveries)
            return status, (*fresh_plan.transitions, *notices)

        written = await self._commit(key, look.body, compute)
        if written is None:
            return look.incident
        after = Incident.model_validate(written)
        self._observe(look.incident, after)
        return after

    async def record(self, key: Key, uid: str, results: Sequence[Result]) -> None:
        """For the delivery queue: record ``results`` on the incident as it is (if it is still ``uid``)."""
        now = self.deps.clock()

        def compute(fresh: Incident) -> tuple[IncidentStatus, Sequence[planning.Transition]] | None:
            if (fresh.metadata.uid or "") != uid:
                return None  # deleted, and a new incident took the name: not its notifications
            status = delivering.record_outcomes(fresh.status, results, now)
            return status, delivering.failure_notices(fresh.status, results)

        await self._commit(key, None, compute)

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
