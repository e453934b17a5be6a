"""Whether an EscalationPolicy's channels can be used: the policy's Ready condition.

Where it sits: the EscalationPolicy handlers read the Secrets a policy's
channels name, reduce each to :class:`SecretFacts` (labels and key names, never
values), and call :func:`policy_readiness`; they write the answer as the
policy's Ready condition. CEL cannot check these facts at admission, because
they live in other objects that come and go. The delivery queue asks
:func:`secret_problem` of each Secret a channel needs before it sends, so a
Secret a policy's Ready condition calls unusable is never used either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from incidentops.api import reasons
from incidentops.api.common import CHANNEL_SECRET_LABEL
from incidentops.api.policy import EscalationPolicy
from incidentops.domain.common import clip

__all__ = ["SecretFacts", "policy_readiness", "secret_problem"]


@dataclass(frozen=True)
class SecretFacts:
    """What the domain may know about a Secret: its labels and the names of its keys, never a value."""

    labels: Mapping[str, str]
    keys: frozenset[str]

    @classmethod
    def of(cls, labels: Mapping[str, str] | None, data: Mapping[str, object] | None) -> SecretFacts:
        """The facts of a Secret with ``labels`` and ``data``: of the data, only the key names are kept."""
        return cls(labels=dict(labels or {}), keys=frozenset(data or {}))


def secret_problem(facts: SecretFacts | None, key: str) -> str | None:
    """Why ``key`` of a Secret (``facts``; None: it does not exist) cannot be used by a channel: the reason
    (SecretNotFound, SecretNotLabelled, SecretKeyMissing), or None when it can.

    A Secret must carry the label ``incidentops.dev/channel-secret: "true"``, so
    a policy author cannot make the operator send any Secret of the namespace
    to a server of their choosing.
    """
    label_key, label_value = CHANNEL_SECRET_LABEL
    if facts is None:
        return reasons.SECRET_NOT_FOUND
    if facts.labels.get(label_key) != label_value:
        return reasons.SECRET_NOT_LABELLED
    if key not in facts.keys:
        return reasons.SECRET_KEY_MISSING
    return None


def policy_readiness(policy: EscalationPolicy, secrets: Mapping[str, SecretFacts | None]) -> tuple[bool, str, str]:
    """``(ready, reason, message)`` for ``policy``'s Ready condition.

    ``secrets`` maps a Secret name (in the policy's namespace) to its facts, or
    to None (or leaves it out) when it does not exist. Every problem is listed
    in the message, naming the channel, the Secret and the key; the reason is
    that of the first problem (:func:`secret_problem`).
    """
    # (reason, channel, secret) -> keys, in the order found: one line per unusable Secret of a channel.
    problems: dict[tuple[str, str, str], list[str]] = {}
    for channel, ref in policy.spec.secret_key_refs():
        reason = secret_problem(secrets.get(ref.name), ref.key)
        if reason is None:
            continue
        keys = problems.setdefault((reason, channel, ref.name), [])
        if ref.key not in keys:
            keys.append(ref.key)
    if problems:
        first_reason = next(iter(problems))[0]
        lines = [_describe(reason, channel, secret, keys) for (reason, channel, secret), keys in problems.items()]
        return False, first_reason, clip("; ".join(lines))
    count = len(policy.spec.channels)
    return True, reasons.CHANNELS_READY, f"all {count} channel{'s' if count != 1 else ''} can be used"


def _describe(reason: str, channel: str, secret: str, keys: list[str]) -> str:
    noun = "key" if len(keys) == 1 else "keys"
    names = ", ".join(keys)
    if reason == reasons.SECRET_NOT_FOUND:
        return f"channel {channel}: Secret {secret} ({noun} {names}) not found"
    if reason == reasons.SECRET_NOT_LABELLED:
        label_key, label_value = CHANNEL_SECRET_LABEL
        return f'channel {channel}: Secret {secret} ({noun} {names}) lacks the label {label_key}: "{label_value}"'
    return f"channel {channel}: Secret {secret} has no {noun} {names}"
