"""A permanent API error met while looking at an incident, shown on it: Ready=False and a Warning Event.

Where it sits: the scheduler calls :meth:`RefusalReporter.show` (wired in
``runtime.py``) when a look at an incident failed with what
``kube.error_kind`` calls permanent: the API server refused a request as such
(403, 422, 400 ...). Retrying it unchanged will not help until somebody changes
the incident, its policy or the operator's RBAC, so people must see it where
they look (``kubectl describe``, the Message column is Ready's message), not
only in the operator's log. The scheduler retries slowly, and at once when the
incident changes.

The condition is written like every status (``kube.write_status``, under a
resourceVersion precondition). When it is that very write, or the read of the
incident, that is refused, nothing can be shown and the log line is all there
is. The next look that succeeds recomputes Ready from the policy selection
(``domain.plan``), which clears the reason and says so with a Normal Event.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from pydantic import ValidationError

from incidentops import kube
from incidentops.api import ConditionStatus, Incident, conditions, reasons
from incidentops.domain.common import clip
from incidentops.handlers.deps import Dependencies
from incidentops.handlers.scheduler import Key

logger = logging.getLogger("incidentops.scheduler")

FALSE = ConditionStatus.FALSE


def reason_for(exc: BaseException) -> str:
    return reasons.API_FORBIDDEN if kube.is_status(exc, 403) else reasons.API_REJECTED


class RefusalReporter:
    def __init__(self, deps: Dependencies, own_writes: MutableMapping[Key, str]) -> None:
        self.deps = deps
        # The reconciler's record of our own writes: their watch events need no look.
        self._own_writes = own_writes

    async def show(self, key: Key, exc: BaseException, retry: str) -> bool:
        """Ready=False with the refusal on the incident (a Warning Event when that is new); False if it cannot be.

        ``retry`` says when the scheduler looks again, for the message.
        """
        namespace, name = key
        reason = reason_for(exc)
        message = clip(f"the API server refused a request: {kube.describe(exc)} (retried {retry})")
        now = self.deps.clock()
        new = [True]  # whether the incident did not show this refusal already (set by mutate)

        def mutate(body: dict[str, Any]) -> dict[str, Any] | None:
            try:
                status = Incident.model_validate(body).status
            except ValidationError:
                return None  # the reconciler reports an invalid incident itself
            conds = list(status.conditions)
            shown = conditions.get_condition(conds, conditions.READY)
            # A spec edit moves the generation, which rewrites the condition; that is not a new refusal.
            new[0] = shown is None or (shown.status, shown.reason, shown.message) != (FALSE, reason, message)
            generation = (body.get("metadata") or {}).get("generation")
            if not conditions.set_condition(conds, conditions.READY, False, reason, message, now, generation):
                return None
            result: dict[str, Any] = status.model_copy(update={"conditions": conds}).to_dict()
            return result

        try:
            written = await kube.write_status(self.deps.api, kube.INCIDENTS, namespace, name, mutate)
            if written is not None:
                self._own_writes[key] = written["metadata"]["resourceVersion"]
                if new[0]:
                    await kube.post_event(self.deps.api, written, "Warning", reason, message)
        except Exception as failure:
            logger.warning(
                "incident %s/%s: the refusal cannot be shown on it either: %s",
                namespace,
                name,
                kube.describe(failure),
            )
            return False
        return True
