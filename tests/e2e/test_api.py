"""The API server itself refuses what the CRDs' schemas and CEL rules forbid, with their messages."""

from __future__ import annotations

import pytest
import yaml

from incidentops.testing import controlplane

INCIDENT = """
apiVersion: incidentops.dev/v1alpha1
kind: Incident
metadata: {name: db-down}
spec:
  title: Database down
  severity: P1
  source: {kind: manual}
"""

POLICY = """
apiVersion: incidentops.dev/v1alpha1
kind: EscalationPolicy
metadata: {name: chain}
spec:
  levels:
    - {name: on-call, after: 0s, notify: [hook]}
  channels:
    - name: hook
      webhook: {url: "http://127.0.0.1:9/hook"}
"""


def _apply(cluster: controlplane.ControlPlane, namespace: str, doc: dict) -> tuple[int, str]:
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
    return result.returncode, result.stderr


def _policy(**spec_changes: object) -> dict:
    doc = yaml.safe_load(POLICY)
    doc["spec"].update(spec_changes)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"levels": [{"name": "on-call", "after": "0s", "notify": ["nowhere"]}]},
            "levels[].notify names a channel that is not defined in channels",
            id="unknown-channel",
        ),
        pytest.param(
            {"levels": [{"name": "on-call", "after": "0s", "afterBySeverity": {"P1": "1m"}, "notify": ["hook"]}]},
            "a level sets exactly one of after and afterBySeverity",
            id="after-and-afterBySeverity",
        ),
        pytest.param(
            {"levels": [{"name": "on-call", "after": "5 minutes", "notify": ["hook"]}]},
            "spec.levels[0].after",
            id="bad-duration",
        ),
        pytest.param(
            {
                "levels": [{"name": "on-call", "after": "10m", "notify": ["hook"]}],
                "repeat": {"times": 2, "every": "5m"},
            },
            "repeat.every must be longer than",
            id="repeat-shorter-than-a-delay",
        ),
        pytest.param(
            {"notifyOnBreach": ["nowhere"]},
            "notifyOnBreach names a channel that is not defined in channels",
            id="unknown-breach-channel",
        ),
    ],
)
def test_invalid_policies_are_refused_with_their_message(
    cluster: controlplane.ControlPlane, crds: None, namespace: str, change: dict, message: str
) -> None:
    code, stderr = _apply(cluster, namespace, _policy(**change))
    assert code != 0
    assert message in stderr, stderr
    listed = cluster.kubectl("get", "escalationpolicies", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == "", "nothing was stored"


def test_valid_policy_is_accepted(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    code, stderr = _apply(cluster, namespace, _policy())
    assert code == 0, stderr


def test_acknowledgement_cannot_be_removed(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    doc = yaml.safe_load(INCIDENT)
    doc["spec"]["acknowledgement"] = {"by": "alice", "at": "2026-01-01T00:00:00Z"}
    assert _apply(cluster, namespace, doc)[0] == 0
    result = cluster.kubectl(
        "patch", "incident", "db-down", "-n", namespace, "--type=json",
        "-p", '[{"op": "remove", "path": "/spec/acknowledgement"}]', check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "acknowledgement cannot be removed once set" in result.stderr


def test_acknowledgement_needs_a_person(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    doc = yaml.safe_load(INCIDENT)
    doc["spec"]["acknowledgement"] = {"by": "", "at": "2026-01-01T00:00:00Z"}
    code, stderr = _apply(cluster, namespace, doc)
    assert code != 0
    assert "spec.acknowledgement.by" in stderr


@pytest.mark.parametrize("field", ["acknowledgement", "containment", "resolution"])
def test_a_time_without_an_offset_is_refused(
    cluster: controlplane.ControlPlane, crds: None, namespace: str, field: str
) -> None:
    """A naive time would be read as UTC by some and as local time by others: the API server refuses it."""
    doc = yaml.safe_load(INCIDENT)
    doc["spec"][field] = {"by": "alice", "at": "2026-01-01T10:00:00"}
    code, stderr = _apply(cluster, namespace, doc)
    assert code != 0
    assert f"spec.{field}.at" in stderr, stderr
    doc["spec"][field]["at"] = "2026-01-01T10:00:00+02:00"
    assert _apply(cluster, namespace, doc)[0] == 0


def test_source_is_immutable(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    assert _apply(cluster, namespace, yaml.safe_load(INCIDENT))[0] == 0
    result = cluster.kubectl(
        "patch", "incident", "db-down", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"source": {"kind": "alertmanager", "receiver": "x", "groupKey": "{}"}}}', check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "source is immutable once set" in result.stderr


def test_printer_columns(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    assert _apply(cluster, namespace, yaml.safe_load(INCIDENT))[0] == 0
    header = cluster.kubectl("get", "inc", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "SEVERITY", "PHASE", "LEVEL", "ACKED-BY", "AGE"]
    wide = cluster.kubectl("get", "inc", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert wide[-3:] == ["POLICY", "NEXT-DEADLINE", "MESSAGE"]
    assert "escpol" in cluster.kubectl("api-resources", "--api-group=incidentops.dev").stdout
