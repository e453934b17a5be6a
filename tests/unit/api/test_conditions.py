"""set_condition / get_condition / initial_conditions, and the reasons module."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from incidentops.api import conditions, reasons
from incidentops.api.common import Condition, ConditionStatus

T0 = datetime.datetime(2025, 1, 31, 14, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
T2 = T0 + datetime.timedelta(minutes=10)


def test_initial_conditions_are_unknown_and_initializing() -> None:
    initial = conditions.initial_conditions(conditions.INCIDENT_CONDITION_TYPES, T0, 3)
    assert [c.type for c in initial] == [
        "Ready",
        "Acknowledged",
        "Contained",
        "Resolved",
        "AlertsResolved",
        "SLABreached",
        "EscalationExhausted",
    ]
    for condition in initial:
        assert condition.status is ConditionStatus.UNKNOWN
        assert condition.reason == reasons.INITIALIZING == "Initializing"
        assert condition.last_transition_time == T0
        assert condition.observed_generation == 3


def test_policy_condition_types() -> None:
    assert conditions.POLICY_CONDITION_TYPES == ("Ready",)


def test_set_appends_a_new_condition() -> None:
    current: list[Condition] = []
    assert conditions.set_condition(current, "Ready", True, "PolicySelected", "default/default", T0, 1)
    assert current == [
        Condition(
            type="Ready",
            status=ConditionStatus.TRUE,
            reason="PolicySelected",
            message="default/default",
            last_transition_time=T0,
            observed_generation=1,
        )
    ]


def test_same_status_keeps_the_transition_time() -> None:
    current = conditions.initial_conditions(["Acknowledged"], T0, 1)
    assert conditions.set_condition(current, "Acknowledged", False, "AwaitingAcknowledgement", "", T1, 1)
    assert current[0].last_transition_time == T1
    # Reason and message change, status does not: the transition time stays.
    assert conditions.set_condition(current, "Acknowledged", "False", "AcknowledgementOutdated", "old ack", T2, 2)
    assert current[0].last_transition_time == T1
    assert (current[0].reason, current[0].message, current[0].observed_generation) == (
        "AcknowledgementOutdated",
        "old ack",
        2,
    )


def test_nothing_changed_returns_false() -> None:
    current: list[Condition] = []
    conditions.set_condition(current, "Ready", ConditionStatus.TRUE, "PolicySelected", "m", T0, 1)
    before = [c.model_copy() for c in current]
    assert not conditions.set_condition(current, "Ready", True, "PolicySelected", "m", T2, 1)
    assert current == before


def test_status_change_moves_the_transition_time_in_place() -> None:
    current = conditions.initial_conditions(conditions.INCIDENT_CONDITION_TYPES, T0, 1)
    assert conditions.set_condition(current, "Resolved", True, "AlertsResolved", "all alerts resolved", T2, 1)
    assert [c.type for c in current] == list(conditions.INCIDENT_CONDITION_TYPES)  # order kept
    resolved = conditions.get_condition(current, "Resolved")
    assert resolved is not None
    assert resolved.status is ConditionStatus.TRUE
    assert resolved.last_transition_time == T2
    assert conditions.is_true(current, "Resolved")
    assert not conditions.is_false(current, "Resolved")
    assert not conditions.is_true(current, "Ready")  # Unknown


def test_none_means_unknown() -> None:
    current: list[Condition] = []
    conditions.set_condition(current, "Ready", None, "Initializing", "", T0, None)
    assert current[0].status is ConditionStatus.UNKNOWN
    assert current[0].observed_generation is None


def test_get_missing_condition() -> None:
    assert conditions.get_condition([], "Ready") is None
    assert not conditions.is_true([], "Ready")
    assert not conditions.is_false([], "Ready")


def test_invalid_status_is_refused() -> None:
    with pytest.raises(ValueError):
        conditions.set_condition([], "Ready", "Maybe", "PolicySelected", "", T0, 1)


def test_condition_serialises_like_metav1() -> None:
    current: list[Condition] = []
    conditions.set_condition(current, "SLABreached", False, "NotBreached", "", T0, 4)
    assert current[0].to_dict() == {
        "type": "SLABreached",
        "status": "False",
        "reason": "NotBreached",
        "message": "",
        "lastTransitionTime": "2025-01-31T14:00:00Z",
        "observedGeneration": 4,
    }


def _reason_constants() -> dict[str, str]:
    return {name: value for name, value in vars(reasons).items() if name.isupper() and isinstance(value, str)}


def test_reasons_are_camel_case_and_unique() -> None:
    constants = _reason_constants()
    assert len(constants) > 40
    for name, value in constants.items():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", value), name
    assert len(set(constants.values())) == len(constants), "two constants share a reason"


def test_every_reason_has_a_comment() -> None:
    source = Path(reasons.__file__).read_text(encoding="utf-8")
    for name in _reason_constants():
        line = next(line for line in source.splitlines() if line.startswith(f"{name} = "))
        assert "  # " in line, f"{name} has no comment"


def test_the_reasons_the_design_names_exist() -> None:
    values = set(_reason_constants().values())
    for reason in (
        "Initializing",
        "NoEscalationPolicy",
        "PolicyRefOutOfScope",
        "PolicySelected",
        "Classified",
        "ChannelsReady",
        "SecretNotFound",
        "SecretNotLabelled",
        "SecretKeyMissing",
        "AwaitingAcknowledgement",
        "AcknowledgedBy",
        "ContainedBy",
        "ResolvedBy",
        "AlertsResolved",
        "NotBreached",
        "SLABreached",
        "EscalationInProgress",
        "EscalationExhausted",
    ):
        assert reason in values
