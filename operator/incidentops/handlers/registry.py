"""The Kopf handlers, registered on a registry of their own, closed over the dependencies.

Where it sits: ``runtime.py`` builds the registry once per process and hands it
to ``kopf.operator()``. Each handler is a few lines of glue:

- Incidents: every watch event pokes the scheduler (the initial listing at
  start is how the scheduler's queue is rebuilt); a delete forgets it. No
  change handlers. One delete handler, filtered to the incidents with a change
  that their deletion must undo first (a maintenance switch, a restorable
  scale, a quarantine): Kopf puts its finalizer on those only, so deleting any
  other incident never waits for the operator.
- EscalationPolicies: one event handler. A policy listed as Kopf starts, a new
  one, or one with a new generation (its spec changed) is
  handed to the monitor to check its channel Secrets and health at once
  (``policies.py``; the monitor keeps the latest copy of each policy and checks
  every one again on its timer, which is also its retry); every event queues
  the policy's monthly report (``reports.py``) at its next due time; any event
  re-evaluates the incidents the policy may apply to, so an incident that had
  no policy gets one as soon as it exists. No change handlers: Kopf keeps no
  state on policies (no last-handled or progress annotations), so the operator
  never writes a policy, only its status.
"""

from __future__ import annotations

import os
from typing import Any

import kopf
from pydantic import ValidationError

from incidentops import kube
from incidentops.api import GROUP, VERSION, Incident
from incidentops.domain import actions as acting
from incidentops.handlers.actions import UndoFailed
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.policies import PolicyMonitor
from incidentops.handlers.reconciler import Reconciler
from incidentops.handlers.reports import MonthlyReports
from incidentops.handlers.scheduler import Scheduler


def build(
    deps: Dependencies,
    scheduler: Scheduler,
    reconciler: Reconciler,
    monitor: PolicyMonitor,
    reports: MonthlyReports | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # Policy generations seen, so that our own status writes on a policy (which do
    # not bump its generation) do not re-evaluate every incident. A cache only.
    generations: dict[str, int | None] = {}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same identity as our own client: the kubeconfig, else the pod's ServiceAccount.
        if os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs)

    @kopf.on.event(GROUP, VERSION, kube.INCIDENTS.plural, registry=registry)
    async def incident_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        key = (body.metadata.namespace or "", body.metadata.name or "")
        if event["type"] == "DELETED":
            scheduler.forget(key)
            reconciler.forget(key)
        elif not reconciler.is_own_write(key, body.metadata.get("resourceVersion")):
            scheduler.poke(key)

    def awaits_undo(body: kopf.Body, **_: Any) -> bool:
        try:
            return acting.awaits_undo(Incident.model_validate(dict(body)))
        except ValidationError:
            return False  # not ours to act on (the reconciler says why on the incident)

    @kopf.on.delete(GROUP, VERSION, kube.INCIDENTS.plural, when=awaits_undo, registry=registry)
    async def incident_deleted(body: kopf.Body, **_: Any) -> None:
        key = (body.metadata.namespace or "", body.metadata.name or "")
        try:
            seen = await reconciler.seen(key)
            if seen is None:
                return
            await reconciler.actions.undo_for_deletion(key, seen)
        except UndoFailed as exc:
            raise kopf.TemporaryError(f"undoing before the incident goes: {exc}", delay=10) from exc
        except Exception as exc:
            # An API answer (a 5xx, a 403 from a namespace being torn down, a time-out) is tried again
            # like any other, with its message and without a traceback; anything else is a bug, which
            # Kopf retries and logs with its traceback.
            if kube.error_kind(exc) is kube.ErrorKind.OTHER:
                raise
            raise kopf.TemporaryError(f"undoing before the incident goes: {kube.describe(exc)}", delay=10) from exc

    @kopf.on.event(GROUP, VERSION, kube.POLICIES.plural, registry=registry)
    async def policy_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        uid = body.metadata.uid or ""
        generation = body.metadata.get("generation")
        namespace = body.metadata.namespace or ""
        # Any change of a policy is seen by the next look at any incident.
        reconciler.policies.invalidate((namespace,))
        if event["type"] == "DELETED":
            generations.pop(uid, None)
            monitor.forget((namespace, body.metadata.name or ""))
            if reports is not None:
                reports.forget((namespace, body.metadata.name or ""))
        else:
            monitor.seen(dict(body))
            if reports is not None:
                reports.seen(dict(body))  # queued at its next monthly report (the initial listing rebuilds it)
            seen = generations.get(uid, -1)
            generations[uid] = generation
            if event["type"] is None or seen != generation:
                # Listed as Kopf starts (this replica leads now), new, or its spec changed; our own
                # status writes keep the generation, so they are not checked again.
                monitor.check_soon((namespace, body.metadata.name or ""))
            if event["type"] is None or seen == generation:
                # The initial listing (every incident is looked at anyway), or only its status changed.
                return
        scope = None if namespace == deps.settings.namespace else namespace
        for incident in await kube.list_objects(deps.api, kube.INCIDENTS, scope):
            if (incident.get("status") or {}).get("phase") != "Closed":
                scheduler.poke((incident["metadata"]["namespace"], incident["metadata"]["name"]))

    return registry
