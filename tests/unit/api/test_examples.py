"""Every example under examples/ parses with the API models (and stays consistent with itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops.api import API_VERSION, CHANNEL_SECRET_LABEL, EscalationPolicy, Incident, Severity

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _all() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(EXAMPLES.rglob("*.yaml")) for doc in _documents(path)]


def _ids(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.relative_to(EXAMPLES)}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _of(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    return [item for item in _all() if item[1].get("kind") == kind]


def test_the_expected_examples_exist() -> None:
    for name in (
        "policies/default.yaml",
        "policies/payments.yaml",
        "secrets/channel-secrets.yaml",
        "incidents/manual-p1.yaml",
        "incidents/unclassified.yaml",
        "README.md",
    ):
        assert (EXAMPLES / name).is_file(), name


@pytest.mark.parametrize("item", _of("Incident"), ids=_ids)
def test_incidents_parse(item: tuple[Path, dict[str, Any]]) -> None:
    _, doc = item
    assert doc["apiVersion"] == API_VERSION
    incident = Incident.model_validate(doc)
    assert incident.metadata.name and incident.metadata.namespace
    assert "status" not in doc, "examples are what people apply: no status"


@pytest.mark.parametrize("item", _of("EscalationPolicy"), ids=_ids)
def test_policies_parse_and_their_secrets_exist(item: tuple[Path, dict[str, Any]]) -> None:
    _, doc = item
    assert doc["apiVersion"] == API_VERSION
    policy = EscalationPolicy.model_validate(doc)
    secrets = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s
        for _, s in _of("Secret")
        if s["metadata"].get("labels", {}).get(CHANNEL_SECRET_LABEL[0]) == CHANNEL_SECRET_LABEL[1]
    }
    for channel, ref in policy.spec.secret_key_refs():
        secret = secrets.get((policy.metadata.namespace, ref.name))
        assert secret is not None, f"channel {channel}: no labelled Secret {ref.name} in {policy.metadata.namespace}"
        assert ref.key in {**secret.get("data", {}), **secret.get("stringData", {})}, f"channel {channel}: {ref.key}"


def test_every_secret_is_labelled() -> None:
    for path, secret in _of("Secret"):
        labels = secret["metadata"].get("labels", {})
        assert labels.get(CHANNEL_SECRET_LABEL[0]) == CHANNEL_SECRET_LABEL[1], path


def test_the_default_policy_is_the_three_level_p1_chain_with_office_hours_for_p3_and_p4() -> None:
    (_, doc), *_ = [item for item in _of("EscalationPolicy") if item[1]["metadata"]["name"] == "default"]
    policy = EscalationPolicy.model_validate(doc)
    assert policy.metadata.namespace == "incidentops"
    by_name = {level.name: level for level in policy.spec.levels}
    p1_chain = [level.name for level in policy.spec.levels if level.delay_for(Severity.P1) is not None]
    assert p1_chain == ["on-call", "team-lead", "cto"]
    assert by_name["cto"].until.value == "resolved"
    assert by_name["cto"].delay_for(Severity.P2) is None  # the CTO is told of P1 incidents only
    p3_chain = [level.name for level in policy.spec.levels if level.delay_for(Severity.P3) is not None]
    assert p3_chain == ["office-hours"] and by_name["office-hours"].during.value == "businessHours"
    assert policy.spec.sla_for(Severity.P3).business_clock and not policy.spec.sla_for(Severity.P1).business_clock
    assert {c.type.value for c in policy.spec.channels} == {"webhook", "slack", "pagerduty", "email"}


def test_the_unclassified_incident_has_no_severity() -> None:
    (_, doc), *_ = [item for item in _of("Incident") if "severity" not in item[1]["spec"]]
    incident = Incident.model_validate(doc)
    assert incident.spec.source is not None and incident.spec.source.labels
