"""The incidentops API: the Incident and EscalationPolicy kinds as pydantic models.

Where it sits: the bottom layer. Everything else (domain, actions, notify,
intake, handlers, cli) builds on it; it imports nothing from the rest of
incidentops and nothing with side effects: no kopf, no Kubernetes client, no
aiohttp, no prometheus_client (import-linter enforces this). It is pure data
and pure functions.

- ``common``: shared types (Severity, IncidentType, durations, refs, Condition).
- ``incident``: the Incident spec and status, and the action models.
- ``policy``: the EscalationPolicy spec and status, and the defaults
  (``DEFAULT_SLAS``, ``DEFAULT_CLASSIFICATION_RULES``).
- ``conditions``: condition types and ``set_condition``.
- ``reasons``: every condition and Event reason.
- ``crdgen``: generates ``crds/`` from the models (``incidentops crds``); the
  models are the single source of truth and a test fails if ``crds/`` drifts.

Objects are read with ``Incident.model_validate(body)`` and written with
``model.to_dict()`` (camelCase keys, unset fields left out).
"""

from incidentops.api.common import (
    API_VERSION,
    CATEGORY,
    CHANNEL_SECRET_LABEL,
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    IncidentType,
    SecretKeyRef,
    Severity,
    format_duration,
    parse_duration,
)
from incidentops.api.incident import (
    ActionPhase,
    ActionType,
    Incident,
    IncidentAction,
    IncidentSpec,
    IncidentStatus,
    Phase,
)
from incidentops.api.policy import (
    DEFAULT_CLASSIFICATION_RULES,
    DEFAULT_SLAS,
    Channel,
    EscalationPolicy,
    EscalationPolicySpec,
    EscalationPolicyStatus,
    Level,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "CHANNEL_SECRET_LABEL",
    "DEFAULT_CLASSIFICATION_RULES",
    "DEFAULT_SLAS",
    "GROUP",
    "VERSION",
    "ActionPhase",
    "ActionType",
    "Channel",
    "Condition",
    "ConditionStatus",
    "EscalationPolicy",
    "EscalationPolicySpec",
    "EscalationPolicyStatus",
    "Incident",
    "IncidentAction",
    "IncidentSpec",
    "IncidentStatus",
    "IncidentType",
    "Level",
    "Phase",
    "SecretKeyRef",
    "Severity",
    "format_duration",
    "parse_duration",
]
