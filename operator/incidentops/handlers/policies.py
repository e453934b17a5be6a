"""EscalationPolicy glue: check what CEL cannot, and report it in the Ready condition.

Where it sits: :class:`PolicyMonitor` hears from the Kopf event handler of
``registry.py`` of every policy it sees (a new or changed one is checked at once), runs as a part of
the leader (like the scheduler) to check every policy again every
``policy_recheck_seconds``, and hears from the delivery queue (``queue.py``)
how each attempt to a channel went. The admission schema already refused what
is malformed; what is left is what only the cluster and the channels know:

- does each channel's Secret exist, carry the ``incidentops.dev/channel-secret:
  "true"`` label, and hold the key? (read by name: RBAC gives the operator
  ``get`` on Secrets, no list or watch, so a fixed Secret is seen at the next
  check, and at once when a delivery meets the problem);
- does any channel keep failing? (``status.channels``, written only when a
  channel's health changes, never per delivery).

The domain (``readiness``, ``health``) turns those facts, never a value, into
the condition; this module only gathers them and writes status. A check of a
policy that did not change writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import ValidationError

from incidentops import kube
from incidentops.api import EscalationPolicy, EscalationPolicyStatus, conditions, reasons
from incidentops.api.common import Condition
from incidentops.api.policy import ChannelHealth
from incidentops.domain import health
from incidentops.domain.readiness import SecretFacts, policy_readiness
from incidentops.handlers.deps import Dependencies

logger = logging.getLogger("incidentops.policies")

Key = tuple[str, str]  # (namespace, name)


async def secret_facts(deps: Dependencies, namespace: str, names: set[str]) -> dict[str, SecretFacts | None]:
    facts: dict[str, SecretFacts | None] = {}
    for name in sorted(names):
        secret = await kube.read_secret(deps.api, namespace, name)
        facts[name] = None if secret is None else SecretFacts.of(secret.metadata.labels, secret.data)
    return facts


def _key(body: dict[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _status_of(body: dict[str, Any]) -> EscalationPolicyStatus:
    try:
        return EscalationPolicyStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return EscalationPolicyStatus()


class PolicyMonitor:
    """The policies' Ready condition: on change, on a timer, and when deliveries say so."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self._bodies: dict[Key, dict[str, Any]] = {}  # the latest copy of each policy, from its watch
        self._observed: dict[Key, dict[str, ChannelHealth]] = {}  # channel health seen by this process
        self._failures: dict[tuple[Key, str], int] = {}  # failed attempts in a row, per channel
        self._ready: dict[Key, bool] = {}  # the Ready last computed
        self._soon: set[Key] = set()
        self._wake = asyncio.Event()

    # -- what the watch and the deliveries tell us -------------------------------------------------

    def seen(self, body: dict[str, Any]) -> None:
        """A policy as the watch saw it (also our own status writes)."""
        self._bodies[_key(body)] = body

    def forget(self, key: Key) -> None:
        self._bodies.pop(key, None)
        self._observed.pop(key, None)
        self._ready.pop(key, None)
        self._soon.discard(key)
        for channel_key in [k for k in self._failures if k[0] == key]:
            del self._failures[channel_key]

    def observe(
        self,
        policy: Key,
        channel: str,
        *,
        delivered: bool,
        permanent: bool,
        message: str,
        secret_problem: bool = False,
    ) -> None:
        """One attempt to ``channel`` of ``policy``; its health is written if that changed it."""
        failures = 0 if delivered else self._failures.get((policy, channel), 0) + 1
        self._failures[(policy, channel)] = failures
        observed = self._observed.setdefault(policy, {})
        current = observed.get(channel)
        if current is None:
            body = self._bodies.get(policy)
            current = next((c for c in _status_of(body).channels if c.name == channel), None) if body else None
        after = health.observe(
            current,
            channel,
            delivered=delivered,
            permanent=permanent,
            failures_in_a_row=failures,
            message=message,
            now=self.deps.clock(),
        )
        changed = after is not current
        if after is not None:
            observed[channel] = after
        if changed or (secret_problem and self._ready.get(policy, True)):
            self.check_soon(policy)

    def check_soon(self, key: Key) -> None:
        self._soon.add(key)
        self._wake.set()

    # -- checking ------------------------------------------------------------------------------

    async def check(self, body: dict[str, Any]) -> None:
        """Check one policy and write its Ready condition and channel health (if they changed)."""
        self.seen(body)
        key = _key(body)
        namespace, name = key
        generation = (body.get("metadata") or {}).get("generation")
        policy: EscalationPolicy | None = None
        try:
            policy = EscalationPolicy.model_validate(body)
        except ValidationError as exc:
            error = exc.errors()[0]
            secrets = (False, reasons.SPEC_INVALID, f"{'.'.join(map(str, error['loc']))}: {error['msg']}")
        else:
            names = {ref.name for _, ref in policy.spec.secret_key_refs()}
            secrets = policy_readiness(policy, await secret_facts(self.deps, namespace, names))
        observed = dict(self._observed.get(key, {}))
        now = self.deps.clock()
        verdict: list[tuple[bool, str, str, Condition | None]] = []

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            status = _status_of(current)
            channels = health.merge(policy, status.channels, observed) if policy is not None else status.channels
            ready, reason, message = health.readiness(secrets, channels)
            verdict[:] = [(ready, reason, message, conditions.get_condition(status.conditions, conditions.READY))]
            conds = list(status.conditions)
            conditions.set_condition(conds, conditions.READY, ready, reason, message, now, generation)
            update = {"conditions": conds, "observed_generation": generation, "channels": channels}
            result: dict[str, Any] = status.model_copy(update=update).to_dict()
            return result

        written = await kube.write_status(self.deps.api, kube.POLICIES, namespace, name, mutate, body=body)
        if written is not None:
            self.seen(written)
        if not verdict:
            return
        ready, reason, message, before = verdict[0]
        self._ready[key] = ready
        if written is not None and (before is None or before.reason != reason or str(before.status) != str(ready)):
            await kube.post_event(self.deps.api, written, "Normal" if ready else "Warning", reason, message)
            logger.info("policy %s/%s: Ready=%s (%s) %s", namespace, name, ready, reason, message)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every policy again every ``policy_recheck_seconds``, and those asked for at once."""
        loop = asyncio.get_running_loop()
        period = self.deps.settings.policy_recheck_seconds
        next_round = loop.time() + period
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waker = asyncio.create_task(self._wake.wait())
                try:
                    await asyncio.wait(
                        [waker, stopper],
                        timeout=max(0.0, next_round - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waker.cancel()
                if stop.is_set():
                    return
                self._wake.clear()
                if loop.time() >= next_round:
                    keys, next_round = list(self._bodies), loop.time() + period
                    self._soon.clear()
                else:
                    keys, self._soon = sorted(self._soon), set()
                for key in keys:
                    body = self._bodies.get(key)
                    if body is None:
                        continue
                    try:
                        await self.check(body)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # Looked at again at the next round; the API server may be back by then.
                        logger.warning("policy %s/%s: check failed", *key, exc_info=True)
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
