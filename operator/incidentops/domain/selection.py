"""Policy selection and classification: which EscalationPolicy applies to an incident, and its
effective severity and type.

Where it sits: the first step of every decision. The handlers list the
EscalationPolicies of the incident's namespace and of the operator's namespace,
call :func:`select_policy`, and pass the :class:`Selection` to
:func:`incidentops.domain.plan.plan`. Re-run whenever an incident or a policy
changes, so a new or edited policy takes effect at the next wake-up.

The order (DESIGN.md, "EscalationPolicy"):

1. ``spec.escalationPolicyRef`` wins when set. Its namespace defaults to the
   incident's; any namespace but the incident's or the operator's is refused
   (``PolicyRefOutOfScope``); a missing policy is ``PolicyNotFound``. The
   referenced policy classifies an unclassified incident.
2. Otherwise the candidates are the policies of the incident's namespace and
   of the operator's namespace whose label selector matches the incident's
   labels merged with ``spec.source.labels``.
3. The first candidate (see :func:`candidate_order`) classifies an incident
   without ``spec.severity`` / ``spec.type``.
4. Candidates are then filtered by ``selector.severities`` / ``selector.types``
   against the effective severity and type; the first remaining one wins.
5. None left: the policy named ``default`` in the operator's namespace (its
   selector is not consulted: it is the fallback). None at all: no policy,
   ``NoEscalationPolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from incidentops.api import reasons
from incidentops.api.common import IncidentType, Severity
from incidentops.api.incident import Incident
from incidentops.api.policy import DEFAULT_SEVERITY, EscalationPolicy

__all__ = [
    "DEFAULT_POLICY_NAME",
    "SOURCE_CLASSIFICATION",
    "SOURCE_DEFAULT",
    "SOURCE_SPEC",
    "Classified",
    "Selection",
    "candidate_order",
    "classify",
    "incident_labels",
    "policy_ref",
    "select_policy",
]

DEFAULT_POLICY_NAME: Final = "default"
"""The fallback policy's name, looked up in the operator's namespace."""

SOURCE_SPEC: Final = "spec"
SOURCE_CLASSIFICATION: Final = "classification"
SOURCE_DEFAULT: Final = "default"


@dataclass(frozen=True)
class Selection:
    """The policy in effect for an incident, and its effective severity and type."""

    policy: EscalationPolicy | None
    """The chosen policy; None when none applies."""

    ref: str | None
    """``namespace/name`` of the chosen policy."""

    severity: Severity
    """Effective: ``spec.severity``, else the classifier's rules, else its defaultSeverity, else P3."""

    severity_source: str
    """``spec``, ``classification`` (a rule matched) or ``default`` (a default severity applied)."""

    type: IncidentType | None
    """``spec.type``, else the first classification rule that gives a type, else None."""

    reason: str
    """The Ready condition's reason: PolicySelected, NoEscalationPolicy, PolicyRefOutOfScope, PolicyNotFound."""

    message: str
    """The Ready condition's message, for people."""

    classified_by: str | None = None
    """``namespace/name`` of the policy whose classification rules gave the severity/type (when not the
    spec's); may differ from ``ref`` when the classifier is then filtered out by severity or type."""

    operator_namespace: str = ""
    """The operator's namespace (always protected from actions)."""


@dataclass(frozen=True)
class Classified:
    """The outcome of classification."""

    severity: Severity
    severity_source: str
    type: IncidentType | None


def policy_ref(policy: EscalationPolicy) -> str:
    """``namespace/name`` of ``policy``."""
    return f"{policy.metadata.namespace or ''}/{policy.metadata.name or ''}"


def incident_labels(incident: Incident) -> dict[str, str]:
    """The labels policies match on: ``spec.source.labels`` overlaid with the incident's own labels.

    The incident's own labels win a conflict: people set them on purpose (``kubectl label``) to route
    an incident, while source labels are whatever the alert carried.
    """
    source = incident.spec.source
    labels = dict(source.labels or {}) if source is not None else {}
    labels.update(incident.metadata.labels)
    return labels


def candidate_order(policy: EscalationPolicy, incident_namespace: str) -> tuple[int, str, int]:
    """Sort key of candidates: highest ``priority`` first, then name, then the incident's own namespace
    before the operator's (a team's policy beats an operator-wide one of the same name and priority)."""
    own = 0 if policy.metadata.namespace == incident_namespace else 1
    return (-policy.spec.priority, policy.metadata.name or "", own)


def classify(incident: Incident, labels: Mapping[str, str], classifier: EscalationPolicy | None) -> Classified:
    """The effective severity and type of ``incident``.

    ``spec.severity`` / ``spec.type`` win. Otherwise the classifier's rules (the
    defaults when it gives none) are tried in order; the first matching rule
    that sets a field decides that field. No rule: the classifier's
    ``defaultSeverity``. No classifier: P3 and no type.
    """
    spec = incident.spec
    rules = classifier.spec.effective_classification().effective_rules() if classifier is not None else ()
    matching = [rule for rule in rules if rule.matches(labels)]
    rule_severity = next((rule.severity for rule in matching if rule.severity is not None), None)
    rule_type = next((rule.type for rule in matching if rule.type is not None), None)

    if spec.severity is not None:
        severity, source = spec.severity, SOURCE_SPEC
    elif rule_severity is not None:
        severity, source = rule_severity, SOURCE_CLASSIFICATION
    elif classifier is not None:
        severity, source = classifier.spec.effective_classification().default_severity, SOURCE_DEFAULT
    else:
        severity, source = DEFAULT_SEVERITY, SOURCE_DEFAULT
    return Classified(severity=severity, severity_source=source, type=spec.type or rule_type)


def _admits(policy: EscalationPolicy, classified: Classified) -> bool:
    """Whether ``policy``'s severity and type filters admit the classified incident."""
    selector = policy.spec.selector
    if selector is None:
        return True
    if selector.severities and classified.severity not in selector.severities:
        return False
    return not selector.types or (classified.type is not None and classified.type in selector.types)


def _labels_match(policy: EscalationPolicy, labels: dict[str, str]) -> bool:
    selector = policy.spec.selector
    return selector is None or selector.matches(labels)


def _find(policies: Sequence[EscalationPolicy], namespace: str, name: str) -> EscalationPolicy | None:
    return next((p for p in policies if p.metadata.namespace == namespace and p.metadata.name == name), None)


def _selected(
    policy: EscalationPolicy | None,
    classified: Classified,
    classifier: EscalationPolicy | None,
    reason: str,
    message: str,
    operator_namespace: str,
) -> Selection:
    return Selection(
        policy=policy,
        ref=policy_ref(policy) if policy is not None else None,
        severity=classified.severity,
        severity_source=classified.severity_source,
        type=classified.type,
        reason=reason,
        message=message,
        classified_by=(
            policy_ref(classifier) if classifier is not None and classified.severity_source != SOURCE_SPEC else None
        ),
        operator_namespace=operator_namespace,
    )


def _by_ref(
    incident: Incident, policies: Sequence[EscalationPolicy], operator_namespace: str, labels: dict[str, str]
) -> Selection:
    ref = incident.spec.escalation_policy_ref
    assert ref is not None
    own = incident.metadata.namespace or ""
    namespace = ref.namespace or own
    if namespace not in (own, operator_namespace):
        return _selected(
            None,
            classify(incident, labels, None),
            None,
            reasons.POLICY_REF_OUT_OF_SCOPE,
            f"escalationPolicyRef {namespace}/{ref.name} is refused: a policy may only come from the"
            f" incident's namespace {own!r} or the operator's {operator_namespace!r}",
            operator_namespace,
        )
    policy = _find(policies, namespace, ref.name)
    if policy is None:
        return _selected(
            None,
            classify(incident, labels, None),
            None,
            reasons.POLICY_NOT_FOUND,
            f"escalationPolicyRef names EscalationPolicy {namespace}/{ref.name}, which does not exist",
            operator_namespace,
        )
    return _selected(
        policy,
        classify(incident, labels, policy),
        policy,
        reasons.POLICY_SELECTED,
        f"EscalationPolicy {policy_ref(policy)} (escalationPolicyRef)",
        operator_namespace,
    )


def select_policy(incident: Incident, policies: Sequence[EscalationPolicy], operator_namespace: str) -> Selection:
    """The policy in effect for ``incident`` and its effective severity and type (see the module doc).

    ``policies`` may hold policies of any namespace; only those of the
    incident's namespace and of ``operator_namespace`` are considered.
    """
    labels = incident_labels(incident)
    if incident.spec.escalation_policy_ref is not None:
        return _by_ref(incident, policies, operator_namespace, labels)

    own = incident.metadata.namespace or ""
    in_scope = [p for p in policies if p.metadata.namespace in (own, operator_namespace)]
    candidates = sorted((p for p in in_scope if _labels_match(p, labels)), key=lambda p: candidate_order(p, own))
    fallback = _find(in_scope, operator_namespace, DEFAULT_POLICY_NAME)
    # The policy that would apply classifies: the first candidate, else the fallback.
    classifier = candidates[0] if candidates else fallback
    classified = classify(incident, labels, classifier)

    admitted = [p for p in candidates if _admits(p, classified)]
    if admitted:
        chosen = admitted[0]
        return _selected(
            chosen,
            classified,
            classifier,
            reasons.POLICY_SELECTED,
            f"EscalationPolicy {policy_ref(chosen)} selects the incident (priority {chosen.spec.priority})",
            operator_namespace,
        )
    if fallback is not None:
        return _selected(
            fallback,
            classified,
            classifier,
            reasons.POLICY_SELECTED,
            f"EscalationPolicy {policy_ref(fallback)} applies: no other policy selects the incident",
            operator_namespace,
        )
    type_text = classified.type.value if classified.type is not None else "none"
    return _selected(
        None,
        classified,
        classifier,
        reasons.NO_ESCALATION_POLICY,
        f"no EscalationPolicy of namespace {own!r} or {operator_namespace!r} selects the incident"
        f" (severity {classified.severity.value}, type {type_text}) and there is no policy"
        f" {DEFAULT_POLICY_NAME!r} in {operator_namespace!r}",
        operator_namespace,
    )
