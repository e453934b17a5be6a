"""The API models: parsing, defaults, helpers, and the validation shared with the CRDs' CEL rules.

``CEL_CASES`` lists one invalid object per CEL rule, with the rule's exact
message. The Python validators must refuse each one with the same message
(tested here); the e2e tests can apply the same objects to a real API server
and expect the same message from the CEL rule. ``TRANSITION_CASES`` are updates
(old object, new object) that only the API server can refuse.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from incidentops.api import (
    API_VERSION,
    CHANNEL_SECRET_LABEL,
    DEFAULT_CLASSIFICATION_RULES,
    DEFAULT_SLAS,
    GROUP,
    VERSION,
    ActionType,
    EscalationPolicy,
    Incident,
    IncidentSpec,
    IncidentStatus,
    Severity,
)
from incidentops.api.common import LabelSelector, SecretKeyRef
from incidentops.api.policy import (
    Channel,
    ChannelType,
    Classification,
    EffectiveSLA,
    EscalationPolicySpec,
    Until,
    default_sla,
)

T0 = datetime.datetime(2025, 1, 31, 14, 0, tzinfo=datetime.UTC)

Obj = dict[str, Any]

VALID_INCIDENT: Obj = {
    "apiVersion": "incidentops.dev/v1alpha1",
    "kind": "Incident",
    "metadata": {"name": "cel-case", "namespace": "default"},
    "spec": {
        "title": "Checkout is down",
        "severity": "P1",
        "source": {"kind": "manual"},
        "targets": [{"kind": "Deployment", "name": "checkout"}],
        "acknowledgement": {"by": "alice", "at": "2025-01-31T14:05:00Z"},
        "containment": {"by": "alice", "at": "2025-01-31T14:20:00Z"},
        "resolution": {"by": "bob", "at": "2025-01-31T15:00:00Z", "summary": "rolled back"},
        "actions": [{"name": "evidence", "snapshot": {}}],
    },
}
"""A valid Incident using every field the CEL rules look at."""

VALID_POLICY: Obj = {
    "apiVersion": "incidentops.dev/v1alpha1",
    "kind": "EscalationPolicy",
    "metadata": {"name": "cel-case", "namespace": "default"},
    "spec": {
        "levels": [
            {"name": "on-call", "after": "0s", "notify": ["pager"]},
            {"name": "lead", "afterBySeverity": {"P1": "10m", "P2": "20m"}, "notify": ["pager", "hook"]},
            {"name": "cto", "afterBySeverity": {"P1": "2h"}, "until": "resolved", "notify": ["hook"]},
            {"name": "desk", "after": "0s", "until": "resolved", "during": "businessHours", "notify": ["hook"]},
        ],
        "businessHours": {"timeZone": "Europe/Berlin", "days": ["Mon", "Tue"], "start": "09:00", "end": "17:00"},
        "severities": {"P3": {"clock": "business"}},
        "communications": {"notify": ["hook"]},
        "repeat": {"times": 2, "every": "30m"},
        "channels": [
            {"name": "pager", "pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "routing-key"}}},
            {"name": "hook", "webhook": {"url": "https://example.com/hook"}},
        ],
        "notifyOnBreach": ["hook"],
        "impactEscalation": [{"above": 1000, "notify": ["hook"]}],
        "classification": {"rules": [{"match": {"labels": {"team": "a"}}, "severity": "P2"}]},
    },
}
"""A valid EscalationPolicy using every field the CEL rules look at."""


@dataclasses.dataclass(frozen=True)
class CelCase:
    """An object the API server refuses with ``message`` (a CEL rule's message)."""

    id: str
    kind: str
    object: Obj
    message: str
    old: Obj | None = None  # for transition rules: the object it updates


def _edit(base: Obj, change: Callable[[Obj], object]) -> Obj:
    obj = copy.deepcopy(base)
    change(obj["spec"])
    return obj


def _inc(change: Callable[[Obj], object]) -> Obj:
    return _edit(VALID_INCIDENT, change)


def _pol(change: Callable[[Obj], object]) -> Obj:
    return _edit(VALID_POLICY, change)


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def change(spec: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _del(path: str) -> Callable[[Obj], None]:
    def change(spec: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return change


CEL_CASES: tuple[CelCase, ...] = (
    # --- Incident ----------------------------------------------------------------------------
    CelCase(
        "target-name-and-selector",
        "Incident",
        _inc(_set("targets", [{"kind": "Deployment", "name": "a", "selector": {"matchLabels": {"app": "a"}}}])),
        "a target sets exactly one of name and selector",
    ),
    CelCase(
        "target-neither-name-nor-selector",
        "Incident",
        _inc(_set("targets", [{"kind": "Deployment"}])),
        "a target sets exactly one of name and selector",
    ),
    CelCase(
        "target-name-without-kind",
        "Incident",
        _inc(_set("targets", [{"name": "checkout"}])),
        "a target with a name needs a kind",
    ),
    CelCase(
        "action-two-types",
        "Incident",
        _inc(_set("actions", [{"name": "x", "snapshot": {}, "scale": {"deployment": "a", "replicas": 1}}])),
        "an action sets exactly one of rollback, maintenance, quarantine, scale and snapshot",
    ),
    CelCase(
        "action-no-type",
        "Incident",
        _inc(_set("actions", [{"name": "x", "approved": True}])),
        "an action sets exactly one of rollback, maintenance, quarantine, scale and snapshot",
    ),
    CelCase(
        "maintenance-service-and-ingress",
        "Incident",
        _inc(
            _set(
                "actions",
                [
                    {
                        "name": "m",
                        "maintenance": {"service": "a", "ingress": "b", "backend": {"selector": {"app": "m"}}},
                    }
                ],
            )
        ),
        "maintenance sets exactly one of service and ingress",
    ),
    CelCase(
        "maintenance-service-without-selector",
        "Incident",
        _inc(
            _set(
                "actions",
                [{"name": "m", "maintenance": {"service": "a", "backend": {"service": {"name": "m", "port": 80}}}}],
            )
        ),
        "maintenance of a service needs backend.selector, of an ingress backend.service",
    ),
    CelCase(
        "selector-in-without-values",
        "Incident",
        _inc(_set("targets", [{"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}])),
        "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
    ),
    CelCase(
        "selector-exists-with-values",
        "Incident",
        _inc(
            _set(
                "targets", [{"selector": {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]}}]
            )
        ),
        "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
    ),
    CelCase(
        "postmortem-completed-without-url-or-items",
        "Incident",
        _inc(_set("postmortem", {"completed": True})),
        "a completed post-mortem needs a url or at least one action item",
    ),
    CelCase(
        "postmortem-completed-with-no-items",
        "Incident",
        _inc(_set("postmortem", {"completed": True, "actionItems": []})),
        "a completed post-mortem needs a url or at least one action item",
    ),
    # --- EscalationPolicy ---------------------------------------------------------------------
    CelCase(
        "level-unknown-channel",
        "EscalationPolicy",
        _pol(_set("levels.0.notify", ["pager", "sms"])),
        "levels[].notify names a channel that is not defined in channels",
    ),
    CelCase(
        "level-channel-without-channels",
        "EscalationPolicy",
        _pol(lambda s: [s.pop("channels"), s.pop("notifyOnBreach"), s.pop("impactEscalation")]),
        "levels[].notify names a channel that is not defined in channels",
    ),
    CelCase(
        "notify-on-breach-unknown-channel",
        "EscalationPolicy",
        _pol(_set("notifyOnBreach", ["hook", "sms"])),
        "notifyOnBreach names a channel that is not defined in channels",
    ),
    CelCase(
        "impact-escalation-unknown-channel",
        "EscalationPolicy",
        _pol(_set("impactEscalation", [{"above": 100000, "notify": ["board"]}])),
        "impactEscalation[].notify names a channel that is not defined in channels",
    ),
    CelCase(
        "repeat-every-not-longer-than-after",
        "EscalationPolicy",
        _pol(_set("levels.0.after", "30m")),
        "repeat.every must be longer than the after and afterBySeverity delays of every level that repeats"
        " (until: acknowledged)",
    ),
    CelCase(
        "repeat-every-not-longer-than-after-by-severity",
        "EscalationPolicy",
        _pol(_set("levels.1.afterBySeverity.P2", "1h")),
        "repeat.every must be longer than the after and afterBySeverity delays of every level that repeats"
        " (until: acknowledged)",
    ),
    CelCase(
        "level-after-and-after-by-severity",
        "EscalationPolicy",
        _pol(_set("levels.0.afterBySeverity", {"P1": "1m"})),
        "a level sets exactly one of after and afterBySeverity",
    ),
    CelCase(
        "level-no-delay",
        "EscalationPolicy",
        _pol(_del("levels.0.after")),
        "a level sets exactly one of after and afterBySeverity",
    ),
    CelCase(
        "after-by-severity-empty",
        "EscalationPolicy",
        _pol(_set("levels.1.afterBySeverity", {})),
        "afterBySeverity names at least one of P1, P2, P3 and P4",
    ),
    CelCase(
        "channel-two-types",
        "EscalationPolicy",
        _pol(_set("channels.1.slack", {"webhookSecretRef": {"name": "slack", "key": "url"}})),
        "a channel sets exactly one of slack, pagerduty, webhook and email",
    ),
    CelCase(
        "channel-no-type",
        "EscalationPolicy",
        _pol(_del("channels.1.webhook")),
        "a channel sets exactly one of slack, pagerduty, webhook and email",
    ),
    CelCase(
        "webhook-url-and-secret",
        "EscalationPolicy",
        _pol(_set("channels.1.webhook.urlSecretRef", {"name": "hook", "key": "url"})),
        "a webhook sets exactly one of url and urlSecretRef",
    ),
    CelCase(
        "webhook-no-url",
        "EscalationPolicy",
        _pol(_del("channels.1.webhook.url")),
        "a webhook sets exactly one of url and urlSecretRef",
    ),
    CelCase(
        "monthly-report-unknown-channel",
        "EscalationPolicy",
        _pol(_set("reports", {"monthly": {"notify": ["hook", "nowhere"]}})),
        "reports.monthly.notify names a channel that is not defined in channels, or a PagerDuty one",
    ),
    CelCase(
        "monthly-report-to-pagerduty",
        "EscalationPolicy",
        _pol(_set("reports", {"monthly": {"notify": ["pager"]}})),
        "reports.monthly.notify names a channel that is not defined in channels, or a PagerDuty one",
    ),
    CelCase(
        "communications-unknown-channel",
        "EscalationPolicy",
        _pol(_set("communications.notify", ["nowhere"])),
        "communications.notify names a channel that is not defined in channels",
    ),
    CelCase(
        "during-business-hours-without-hours",
        "EscalationPolicy",
        _pol(lambda spec: (spec.pop("businessHours"), spec.pop("severities"))),
        "a level with during: businessHours needs the policy's businessHours",
    ),
    CelCase(
        "business-clock-without-hours",
        "EscalationPolicy",
        _pol(lambda spec: (spec.pop("businessHours"), spec["levels"].pop(3))),
        "clock: business needs the policy's businessHours",
    ),
    CelCase(
        "business-hours-backwards",
        "EscalationPolicy",
        _pol(_set("businessHours.end", "08:00")),
        "businessHours.start must be before end",
    ),
    CelCase(
        "classification-rule-sets-nothing",
        "EscalationPolicy",
        _pol(_set("classification.rules", [{"match": {"labels": {"team": "a"}}}])),
        "a classification rule sets severity, type or both",
    ),
)
"""One invalid object per CEL rule (create), with the rule's exact message."""

TRANSITION_CASES: tuple[CelCase, ...] = (
    CelCase(
        "source-changed",
        "Incident",
        _inc(_set("source", {"kind": "alertmanager", "receiver": "r", "groupKey": "g"})),
        "source is immutable once set",
        old=VALID_INCIDENT,
    ),
    CelCase(
        "source-removed", "Incident", _inc(_del("source")), "source cannot be removed once set", old=VALID_INCIDENT
    ),
    CelCase(
        "acknowledgement-removed",
        "Incident",
        _inc(_del("acknowledgement")),
        "acknowledgement cannot be removed once set",
        old=VALID_INCIDENT,
    ),
    CelCase(
        "containment-removed",
        "Incident",
        _inc(_del("containment")),
        "containment cannot be removed once set",
        old=VALID_INCIDENT,
    ),
    CelCase(
        "resolution-removed",
        "Incident",
        _inc(_del("resolution")),
        "resolution cannot be removed once set",
        old=VALID_INCIDENT,
    ),
)
"""Updates (old -> object) refused by transition rules; valid each on its own."""

DURATION_MESSAGE = "must be a Go duration with the units h, m, s or ms, e.g. 90s, 15m, 4h, 1h30m"
"""The message of the CEL rule on every duration (seen when the text matches the pattern but
Go cannot parse it, e.g. beyond 2562047h)."""

_MODELS = {"Incident": Incident, "EscalationPolicy": EscalationPolicy}


def test_the_valid_objects_are_valid() -> None:
    Incident.model_validate(VALID_INCIDENT)
    EscalationPolicy.model_validate(VALID_POLICY)


@pytest.mark.parametrize("case", CEL_CASES, ids=lambda c: c.id)
def test_python_refuses_what_cel_refuses(case: CelCase) -> None:
    with pytest.raises(ValidationError) as caught:
        _MODELS[case.kind].model_validate(case.object)
    assert case.message in str(caught.value)


@pytest.mark.parametrize("case", TRANSITION_CASES, ids=lambda c: c.id)
def test_transition_cases_are_valid_on_their_own(case: CelCase) -> None:
    _MODELS[case.kind].model_validate(case.object)


def test_every_cel_message_has_a_case() -> None:
    from incidentops.api import crdgen

    messages: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations", []):
                messages.add(rule["message"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(crdgen.generate())
    covered = {c.message for c in (*CEL_CASES, *TRANSITION_CASES)} | {DURATION_MESSAGE}
    assert messages == covered


@pytest.mark.parametrize(
    ("kind", "change", "fragment"),
    [
        ("Incident", _set("title", ""), "title"),
        ("Incident", _set("acknowledgement.by", ""), "by"),
        ("Incident", _set("resolution.by", ""), "by"),
        ("Incident", _set("severity", "P0"), "severity"),
        ("Incident", _set("type", "outage"), "type"),
        ("Incident", _set("source", {"kind": "pagerduty"}), "kind"),
        ("Incident", _set("targets", [{"kind": "Deployment", "name": "Not_A_Name"}]), "name"),
        ("Incident", _set("actions", [{"name": "a", "rollback": {"ifChangedWithin": "1d"}}]), "ifChangedWithin"),
        ("Incident", _set("actions", [{"name": "a", "scale": {"replicas": -1}}]), "replicas"),
        ("Incident", _set("actions", [{"name": "a", "snapshot": {}}, {"name": "a", "snapshot": {}}]), "duplicate"),
        ("EscalationPolicy", _set("levels.0.after", "15"), "after"),
        ("EscalationPolicy", _set("levels.0.after", "2562048h"), "out of range"),
        ("EscalationPolicy", _set("levels.0.until", "forever"), "until"),
        ("EscalationPolicy", _set("levels.0.notify", []), "notify"),
        ("EscalationPolicy", _set("levels.1.name", "on-call"), "duplicate"),
        ("EscalationPolicy", _set("channels.1.name", "pager"), "duplicate"),
        ("EscalationPolicy", _set("levels.0.notify", ["pager", "pager"]), "duplicate"),
        ("EscalationPolicy", _set("notifyOnBreach", ["hook", "hook"]), "duplicate"),
        ("Incident", _set("impact", {"services": ["a", "a"]}), "duplicate"),
        ("EscalationPolicy", _set("channels.1.webhook.url", "ftp://example.com"), "url"),
        ("EscalationPolicy", _set("repeat.times", 0), "times"),
        ("EscalationPolicy", _set("priority", 5000), "priority"),
    ],
)
def test_schema_constraints(kind: str, change: Callable[[Obj], None], fragment: str) -> None:
    base = VALID_INCIDENT if kind == "Incident" else VALID_POLICY
    with pytest.raises(ValidationError) as caught:
        _MODELS[kind].model_validate(_edit(base, change))
    assert fragment in str(caught.value)


# --- parsing and serialisation -----------------------------------------------------------------


def test_group_and_version() -> None:
    assert (GROUP, VERSION, API_VERSION) == ("incidentops.dev", "v1alpha1", "incidentops.dev/v1alpha1")
    assert CHANNEL_SECRET_LABEL == ("incidentops.dev/channel-secret", "true")
    assert (Incident.PLURAL, Incident.SHORT_NAMES) == ("incidents", ("inc",))
    assert (EscalationPolicy.PLURAL, EscalationPolicy.SHORT_NAMES) == ("escalationpolicies", ("escpol",))


def test_minimal_incident() -> None:
    incident = Incident.model_validate({"metadata": {"name": "x"}, "spec": {"title": "t"}})
    assert incident.spec.severity is None
    assert incident.spec.targets == []
    assert incident.status == IncidentStatus()
    assert incident.to_dict() == {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "x", "labels": {}, "annotations": {}},
        "spec": {"title": "t", "targets": [], "actions": [], "approvals": [], "undo": []},
        "status": {
            "reopenCount": 0,
            "clampedTimes": [],
            "episodes": [],
            "conditions": [],
            "notifications": [],
            "actions": [],
            "evidence": [],
            "timeline": [],
        },
    }


def test_camel_case_in_snake_case_out_and_by_name() -> None:
    spec = IncidentSpec.model_validate(
        {"title": "t", "escalationPolicyRef": {"name": "p"}, "roles": {"technicalLead": "bob"}}
    )
    assert spec.escalation_policy_ref is not None and spec.escalation_policy_ref.name == "p"
    assert spec.roles is not None and spec.roles.technical_lead == "bob"
    assert IncidentSpec(title="t", drill=True).drill is True  # populate by field name
    assert spec.to_dict()["escalationPolicyRef"] == {"name": "p"}


def test_unknown_keys_are_ignored_as_kubernetes_prunes_them() -> None:
    spec = IncidentSpec.model_validate({"title": "t", "unknown": 1, "source": {"kind": "manual", "extra": "x"}})
    assert "unknown" not in spec.to_dict()
    assert spec.to_dict()["source"] == {"kind": "manual"}


def test_metadata_keeps_everything() -> None:
    body = {"metadata": {"name": "x", "ownerReferences": [{"uid": "u"}], "finalizers": ["f"]}, "spec": {"title": "t"}}
    assert Incident.model_validate(body).to_dict()["metadata"]["ownerReferences"] == [{"uid": "u"}]


def test_full_status_round_trips() -> None:
    status = {
        "observedGeneration": 3,
        "phase": "Acknowledged",
        "episode": 2,
        "episodeStartedAt": "2025-01-31T14:00:00Z",
        "reopenCount": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PolicySelected",
                "message": "incidentops/default",
                "lastTransitionTime": "2025-01-31T13:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "severity": "P1",
        "type": "availability",
        "escalationPolicy": "incidentops/default",
        "startedAt": "2025-01-31T13:00:00Z",
        "acknowledgedBy": "alice",
        "clampedTimes": [
            {"field": "acknowledgement", "at": "2025-01-31T14:30:00Z", "receivedAt": "2025-01-31T14:05:00Z"}
        ],
        "episodes": [
            {
                "episode": 1,
                "startedAt": "2025-01-31T13:00:00Z",
                "resolvedAt": "2025-01-31T13:40:00Z",
                "timeToAcknowledgeSeconds": 120,
                "timeToResolveSeconds": 2400,
                "breaches": ["Acknowledge"],
            }
        ],
        "sla": {
            "acknowledgeBy": "2025-01-31T14:15:00Z",
            "resolveBy": "2025-01-31T18:00:00Z",
            "nextUpdateBy": "2025-01-31T14:15:00Z",
            "nextDeadline": "2025-01-31T14:15:00Z",
            "breaches": [{"kind": "Acknowledge", "deadline": "2025-01-31T13:15:00Z", "at": "2025-01-31T13:15:01Z"}],
            "notifyUsersBy": "2025-02-03T13:00:00Z",
            "notifyRegulatorBy": "2025-02-03T13:00:00Z",
        },
        "escalation": {
            "round": 1,
            "level": 0,
            "levelName": "on-call",
            "nextAt": "2025-01-31T14:15:00Z",
            "notified": ["a1b2"],
            "exhausted": False,
        },
        "notifications": [
            {
                "key": "a1b2",
                "channel": "slack",
                "event": "Escalated",
                "level": "on-call",
                "at": "2025-01-31T14:00:01Z",
                "outcome": "Sent",
                "attempts": 1,
            },
            {
                "key": "c3d4",
                "channel": "pagerduty",
                "event": "Escalated",
                "at": "2025-01-31T14:00:01Z",
                "outcome": "Failed",
                "attempts": 3,
                "message": "HTTP 503",
            },
        ],
        "alerts": {
            "firing": 2,
            "resolved": 1,
            "truncated": 0,
            "lastReceivedAt": "2025-01-31T14:00:00Z",
            "lastFiredAt": "2025-01-31T14:00:00Z",
            "sample": ["0123456789abcdef"],
        },
        "actions": [
            {
                "name": "rollback",
                "type": "rollback",
                "origin": "remediation",
                "phase": "Succeeded",
                "key": "k1",
                "startedAt": "2025-01-31T14:01:00Z",
                "finishedAt": "2025-01-31T14:02:00Z",
                "message": "rolled back to revision 4",
                "dryRun": False,
                "plan": "deployment payments/checkout: template of revision 4",
                "changes": [
                    {
                        "object": "Deployment payments/checkout",
                        "field": "spec.template",
                        "old": "revision 5 (checkout:2.1)",
                        "new": "revision 4 (checkout:2.0)",
                    }
                ],
                "undo": {"revision": "5"},
            }
        ],
        "evidence": [
            {
                "name": "evidence",
                "ref": "checkout-down-evidence-1",
                "sha256": "0" * 64,
                "bytes": 1024,
                "items": 3,
                "collectedAt": "2025-01-31T14:03:00Z",
            }
        ],
        "timeline": [
            {"at": "2025-01-31T13:00:00Z", "kind": "Triggered", "message": "triggered", "actor": "alertmanager"}
        ],
        "metrics": {"timeToAcknowledgeSeconds": 300, "timeToContainSeconds": 900, "timeToResolveSeconds": 3600},
        "postmortem": {"ref": "https://wiki.example.com/pm/1", "dueBy": "2025-02-02T14:00:00Z", "state": "Pending"},
    }
    parsed = IncidentStatus.model_validate(status)
    assert parsed.to_dict() == status
    assert parsed.escalation is not None and parsed.escalation.level_name == "on-call"


def test_action_type() -> None:
    spec = IncidentSpec.model_validate(VALID_INCIDENT["spec"])
    assert spec.actions[0].type is ActionType.SNAPSHOT
    assert spec.actions[0].snapshot is not None and spec.actions[0].snapshot.since_seconds == 3600


# --- policy helpers and defaults ------------------------------------------------------------------


def _td(text: str) -> datetime.timedelta:
    from incidentops.api import parse_duration

    return parse_duration(text)


def test_default_slas_are_the_design_table() -> None:
    assert default_sla(Severity.P1) == EffectiveSLA(_td("15m"), _td("4h"), _td("15m"), True, _td("48h"))
    assert default_sla(Severity.P2) == EffectiveSLA(_td("1h"), _td("24h"), _td("1h"), True, _td("72h"))
    p3 = default_sla(Severity.P3)
    assert (p3.acknowledge_within, p3.resolve_within, p3.update_every, p3.postmortem_required) == (
        _td("4h"),
        _td("72h"),
        _td("4h"),
        False,
    )
    p4 = default_sla(Severity.P4)
    assert (p4.acknowledge_within, p4.resolve_within, p4.update_every, p4.postmortem_required) == (
        _td("24h"),
        _td("168h"),
        _td("24h"),
        False,
    )
    assert set(DEFAULT_SLAS) == set(Severity)


def test_policy_slas_override_field_by_field() -> None:
    spec = EscalationPolicySpec.model_validate({"severities": {"P1": {"acknowledgeWithin": "5m"}}})
    sla = spec.sla_for(Severity.P1)
    assert sla.acknowledge_within == _td("5m")
    assert sla.resolve_within == _td("4h")  # default kept
    assert spec.sla_for(Severity.P2) == default_sla(Severity.P2)


def test_default_classification() -> None:
    classification = EscalationPolicySpec().effective_classification()
    assert classification.default_severity is Severity.P3
    assert classification.effective_rules() == DEFAULT_CLASSIFICATION_RULES
    by_label = {r.match.labels["severity"]: r.severity for r in DEFAULT_CLASSIFICATION_RULES}
    assert by_label == {"critical": Severity.P1, "error": Severity.P2, "warning": Severity.P3, "info": Severity.P4}
    assert DEFAULT_CLASSIFICATION_RULES[0].matches({"severity": "critical", "alertname": "X"})
    assert not DEFAULT_CLASSIFICATION_RULES[0].matches({"severity": "warning"})
    assert Classification(rules=[]).effective_rules() == ()


def test_level_delays() -> None:
    spec = EscalationPolicySpec.model_validate(VALID_POLICY["spec"])
    on_call, lead, cto, _desk = spec.levels
    assert on_call.delay_for(Severity.P4) == datetime.timedelta(0)
    assert lead.delay_for(Severity.P2) == _td("20m")
    assert lead.delay_for(Severity.P3) is None  # skipped
    assert cto.until is Until.RESOLVED
    assert on_call.until is Until.ACKNOWLEDGED
    assert sorted(lead.delays()) == [_td("10m"), _td("20m")]


def test_repeat_ignores_levels_until_resolved() -> None:
    # The cto level (2h) is longer than repeat.every (30m), but it does not repeat...
    EscalationPolicySpec.model_validate(VALID_POLICY["spec"])
    # ...unless it is an `until: acknowledged` level.
    levels = [*VALID_POLICY["spec"]["levels"][:2], {**VALID_POLICY["spec"]["levels"][2], "until": "acknowledged"}]
    with pytest.raises(ValidationError, match=r"repeat\.every"):
        EscalationPolicySpec.model_validate({**VALID_POLICY["spec"], "levels": levels})


def test_secret_key_refs() -> None:
    spec = EscalationPolicySpec.model_validate(
        {
            "channels": [
                {"name": "s", "slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}},
                {"name": "p", "pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "rk"}}},
                {
                    "name": "w",
                    "webhook": {
                        "urlSecretRef": {"name": "hook", "key": "url"},
                        "hmacSecretRef": {"name": "h", "key": "k"},
                    },
                },
                {"name": "w2", "webhook": {"url": "https://example.com"}},
                {
                    "name": "e",
                    "email": {
                        "to": ["a@example.com"],
                        "from": "ops@example.com",
                        "smtp": {"host": "smtp", "credentialsSecretRef": {"name": "smtp"}},
                    },
                },
                {"name": "e2", "email": {"to": ["a@example.com"], "from": "ops@example.com", "smtp": {"host": "smtp"}}},
            ]
        }
    )
    assert spec.secret_key_refs() == [
        ("s", SecretKeyRef(name="slack", key="url")),
        ("p", SecretKeyRef(name="pd", key="rk")),
        ("w", SecretKeyRef(name="hook", key="url")),
        ("w", SecretKeyRef(name="h", key="k")),
        ("e", SecretKeyRef(name="smtp", key="username")),
        ("e", SecretKeyRef(name="smtp", key="password")),
    ]
    assert [c.type for c in spec.channels] == [
        ChannelType.SLACK,
        ChannelType.PAGERDUTY,
        ChannelType.WEBHOOK,
        ChannelType.WEBHOOK,
        ChannelType.EMAIL,
        ChannelType.EMAIL,
    ]
    email = spec.channel("e")
    assert email is not None and email.email is not None
    assert email.email.from_ == "ops@example.com"
    assert email.email.smtp.port == 587 and email.email.smtp.starttls is True
    assert email.to_dict()["email"]["from"] == "ops@example.com"
    assert spec.channel("missing") is None


def test_channel_type_property() -> None:
    channel = Channel.model_validate({"name": "x", "webhook": {"url": "https://example.com"}})
    assert channel.type is ChannelType.WEBHOOK


def test_policy_defaults() -> None:
    spec = EscalationPolicySpec()
    assert spec.priority == 0
    assert spec.alerts.auto_resolve is True and spec.alerts.reopen_window == "1h"
    assert spec.evidence.retain_on_delete is True
    assert spec.guards.allow_git_ops_managed is False and spec.guards.dry_run is False
    assert spec.guards.max_actions_per_hour == 10
    assert spec.to_dict()["guards"] == {
        "maxActionsPerHour": 10,
        "dryRun": False,
        "protectedNamespaces": [],
        "allowGitOpsManaged": False,
    }


def test_severity_rank() -> None:
    assert [s.rank for s in Severity] == [1, 2, 3, 4]
    assert min(Severity, key=lambda s: s.rank) is Severity.P1


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selector(selector: Obj, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is expected
