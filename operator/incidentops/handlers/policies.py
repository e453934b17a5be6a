"""EscalationPolicy glue: check what CEL cannot, and report it in the Ready condition.

Where it sits: called by the Kopf handlers of ``registry.py`` on create,
update and resume of a policy. The admission schema already refused what is
malformed; what is left is what only the cluster knows: does each channel's
Secret exist, carry the ``incidentops.dev/channel-secret: "true"`` label, and
hold the key? The domain turns those facts (never the values) into the
condition; this module only reads them and writes status.

While a policy is not Ready, the handler raises ``kopf.TemporaryError`` so
Kopf looks again after ``policy_recheck_seconds``: fixing the Secret makes the
policy Ready without the operator needing to list or watch Secrets.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from incidentops import kube
from incidentops.api import EscalationPolicy, EscalationPolicyStatus, conditions, reasons
from incidentops.domain.readiness import SecretFacts, policy_readiness
from incidentops.handlers.deps import Dependencies


async def secret_facts(deps: Dependencies, namespace: str, names: set[str]) -> dict[str, SecretFacts | None]:
    facts: dict[str, SecretFacts | None] = {}
    for name in sorted(names):
        secret = await kube.read_secret(deps.api, namespace, name)
        facts[name] = (
            None
            if secret is None
            else SecretFacts(labels=dict(secret.metadata.labels or {}), keys=frozenset((secret.data or {}).keys()))
        )
    return facts


def _status(
    current: dict[str, Any], generation: int | None, ready: bool, reason: str, message: str, now: datetime.datetime
) -> dict[str, Any]:
    try:
        status = EscalationPolicyStatus.model_validate(current.get("status") or {})
    except ValidationError:
        status = EscalationPolicyStatus()
    conds = list(status.conditions)
    conditions.set_condition(conds, conditions.READY, ready, reason, message, now, generation)
    return status.model_copy(update={"conditions": conds, "observed_generation": generation}).to_dict()


async def reconcile(deps: Dependencies, body: kopf.Body, logger: kopf.Logger) -> None:
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    generation = body.metadata.get("generation")
    try:
        policy = EscalationPolicy.model_validate(dict(body))
    except ValidationError as exc:
        error = exc.errors()[0]
        ready, reason, message = False, reasons.SPEC_INVALID, f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    else:
        names = {ref.name for _, ref in policy.spec.secret_key_refs()}
        facts = await secret_facts(deps, namespace, names)
        ready, reason, message = policy_readiness(policy, facts)

    now = deps.clock()
    before = conditions.get_condition(
        EscalationPolicyStatus.model_validate(dict(body.get("status") or {})).conditions, conditions.READY
    )
    written = await kube.write_status(
        deps.api,
        kube.POLICIES,
        namespace,
        name,
        lambda current: _status(current, generation, ready, reason, message, now),
        body=dict(body),
    )
    if written is not None and (before is None or before.reason != reason or str(before.status) != str(ready)):
        await kube.post_event(deps.api, written, "Normal" if ready else "Warning", reason, message)
        logger.info("policy %s/%s: Ready=%s (%s) %s", namespace, name, ready, reason, message)
    if not ready:
        # Not an error of ours: look again later, the user may fix the Secret.
        raise kopf.TemporaryError(message, delay=deps.settings.policy_recheck_seconds)
