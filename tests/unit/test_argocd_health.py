"""The Argo CD health checks (deploy/argocd/), run by a real Lua interpreter on sample objects.

Argo CD runs a health check as one Lua chunk with the global ``obj`` set to the
object; ``argocd_health_harness.lua`` does the same with ``lua5.4`` (which
``make install`` installs: there is no skip when it is missing). The samples are
the examples' Incident and EscalationPolicy with a status built from the API
models, the condition helpers and the reasons the operator writes, serialized
into a Lua table literal. docs/gitops.md says why each state maps as it does,
and holds the argocd-cm snippet, which must be the scripts as they are here.
"""

from __future__ import annotations

import copy
import datetime
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops.api import conditions as cond
from incidentops.api import reasons
from incidentops.api.common import Condition
from incidentops.api.incident import (
    ActionPhase,
    ActionRecord,
    ActionType,
    BreachKind,
    Incident,
    IncidentStatus,
    Phase,
    PostmortemState,
    PostmortemStatus,
    SLABreach,
    SLAStatus,
)
from incidentops.api.policy import EscalationPolicy, EscalationPolicyStatus
from incidentops.domain.readiness import SecretFacts, policy_readiness
from incidentops.domain.sla import breach_condition

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "deploy" / "argocd" / "resource_customizations" / "incidentops.dev"
INCIDENT_LUA = CHECKS / "Incident" / "health.lua"
POLICY_LUA = CHECKS / "EscalationPolicy" / "health.lua"
HARNESS = Path(__file__).parent / "argocd_health_harness.lua"
LUA = "lua5.4"

NOW = datetime.datetime(2026, 12, 1, 14, 30, tzinfo=datetime.UTC)
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}


# --- running a check -------------------------------------------------------------------------------


def lua_literal(value: Any) -> str:
    """``value`` (JSON data) as a Lua expression; None (JSON null) becomes nil, as in Argo CD."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # Printable ASCII as it is, every other byte of the UTF-8 as a three-digit decimal escape.
        out = [
            "\\" + chr(byte) if chr(byte) in '\\"' else chr(byte) if 32 <= byte < 127 else f"\\{byte:03d}"
            for byte in value.encode()
        ]
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        items = (f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"not JSON data: {value!r}")


def run_check(script: Path, obj: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    """(hs.status, hs.message) of ``script`` run by Lua on ``obj``."""
    lua = shutil.which(LUA)
    assert lua is not None, f"{LUA} is not installed: `make install` installs it (Makefile DEBS)"
    object_file = tmp_path / "object.lua"
    object_file.write_text("return " + lua_literal(obj) + "\n")
    done = subprocess.run(
        [lua, str(HARNESS), str(script), str(object_file)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.split("\n", 1)
    assert status in STATUSES
    assert message.endswith("\n") and "\n" not in message[:-1], "the message is one line"
    return status, message[:-1]


def test_the_literal_survives_the_round_trip(tmp_path: Path) -> None:
    script = tmp_path / "echo.lua"
    script.write_text('return {status = "Healthy", message = obj.text .. "|" .. tostring(obj.list[2])}\n')
    text = 'quote " backslash \\ tab \t unicode é ✓'
    assert run_check(script, {"text": text, "list": [1, 2]}, tmp_path) == ("Healthy", f"{text}|2")


def test_the_checks_get_only_argo_cds_libraries(tmp_path: Path) -> None:
    script = tmp_path / "io.lua"
    script.write_text('return {status = "Healthy", message = tostring(io) .. tostring(os)}\n')
    assert run_check(script, {}, tmp_path) == ("Healthy", "nilnil")


# --- samples ---------------------------------------------------------------------------------------


def _example(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "examples" / path).read_text())
    return loaded


def _with_status(model: Incident | EscalationPolicy, generation: int, status: Any) -> dict[str, Any]:
    """The object as the API server serves it: metadata.generation set, the status the operator wrote."""
    body = type(model).model_validate({**model.to_dict(), "status": status.to_dict()}).to_dict()
    body["metadata"]["generation"] = generation
    return body


def _conditions(**values: tuple[bool | None, str, str]) -> list[Condition]:
    """Every Incident condition, Unknown/Initializing first, then ``values`` (type -> status, reason, message)."""
    conditions = cond.initial_conditions(cond.INCIDENT_CONDITION_TYPES, NOW, 1)
    for type_, (status, reason, message) in values.items():
        cond.set_condition(conditions, type_, status, reason, message, NOW, 1)
    return conditions


OPEN = {
    cond.READY: (True, reasons.POLICY_SELECTED, "payments/payments"),
    cond.ACKNOWLEDGED: (False, reasons.AWAITING_ACKNOWLEDGEMENT, "nobody acknowledged"),
    cond.CONTAINED: (False, reasons.NOT_CONTAINED, "not contained"),
    cond.RESOLVED: (False, reasons.UNRESOLVED, "open"),
    cond.ALERTS_RESOLVED: (None, reasons.NO_ALERTS, "the incident has no alert group"),
    cond.SLA_BREACHED: (False, reasons.NOT_BREACHED, "every deadline met"),
    cond.ESCALATION_EXHAUSTED: (False, reasons.ESCALATION_IN_PROGRESS, "level primary paged"),
}
ACKNOWLEDGED = {
    **OPEN,
    cond.ACKNOWLEDGED: (True, reasons.ACKNOWLEDGED_BY, "by alice@example.com"),
    cond.ESCALATION_EXHAUSTED: (False, reasons.ESCALATION_STOPPED, "acknowledged by alice@example.com"),
}
CONTAINED = {**ACKNOWLEDGED, cond.CONTAINED: (True, reasons.CONTAINED_BY, "by bob@example.com")}
RESOLVED = {**CONTAINED, cond.RESOLVED: (True, reasons.RESOLVED_BY, "by alice@example.com")}
NEXT_DEADLINE = NOW + datetime.timedelta(minutes=10)
DEADLINE_TEXT = "2026-12-01T14:40:00Z"
_BREACHED = breach_condition(
    [
        SLABreach(
            kind=BreachKind.ACKNOWLEDGE,
            deadline=datetime.datetime(2026, 12, 1, 14, 15, tzinfo=datetime.UTC),
            at=datetime.datetime(2026, 12, 1, 14, 15, 1, tzinfo=datetime.UTC),
        )
    ]
)
BREACH = (True, _BREACHED.reason, _BREACHED.message)


def incident(
    values: dict[str, tuple[bool | None, str, str]] | None = None,
    *,
    phase: Phase | None = None,
    generation: int = 1,
    observed: int | None = 1,
    drill: bool = False,
    severity: str | None = "P1",
    **status: Any,
) -> dict[str, Any]:
    """The example P1 (examples/incidents/manual-p1.yaml) with a status; ``values=None``: no status at all."""
    body = _example("incidents/manual-p1.yaml")
    body["spec"]["drill"] = drill
    if severity is None:
        body["spec"].pop("severity")
    model = Incident.model_validate(body)
    if values is None:
        out = model.to_dict()
        out.pop("status", None)
        out["metadata"]["generation"] = generation
        return out
    conditions = _conditions(**values)
    fields: dict[str, Any] = {
        "observed_generation": observed,
        "phase": phase,
        "conditions": conditions,
        "severity": severity,
        "episode": 1,
        "sla": SLAStatus(next_deadline=NEXT_DEADLINE),
        **status,
    }
    return _with_status(model, generation, IncidentStatus(**fields))


def _only(obj: dict[str, Any], *types: str) -> dict[str, Any]:
    """``obj`` with only the conditions of ``types``."""
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] in types]
    return obj


def _action(name: str, phase: ActionPhase, message: str) -> ActionRecord:
    return ActionRecord(name=name, type=ActionType.ROLLBACK, phase=phase, key="k-" + name, message=message)


INCIDENT_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "no status yet",
        incident(None),
        "Progressing",
        "Waiting for the operator to look at the incident",
    ),
    (
        "a status without conditions",
        incident({}, observed=None) | {"status": {}},
        "Progressing",
        "Waiting for the operator to look at the incident",
    ),
    (
        "stale observedGeneration (someone acknowledged in Git)",
        incident(ACKNOWLEDGED, phase=Phase.ACKNOWLEDGED, generation=3, observed=2),
        "Progressing",
        "Waiting for the operator to observe generation 3 (it observed 2)",
    ),
    (
        "no observedGeneration",
        incident(OPEN, phase=Phase.TRIGGERED, generation=2, observed=None),
        "Progressing",
        "Waiting for the operator to observe generation 2 (it observed none)",
    ),
    (
        "initializing",
        incident({}, phase=Phase.TRIGGERED),
        "Progressing",
        f"P1 Triggered: Initializing; next deadline {DEADLINE_TEXT}",
    ),
    (
        "an open P1 awaiting acknowledgement, on time",
        incident(OPEN, phase=Phase.TRIGGERED),
        "Progressing",
        f"P1 Triggered: AwaitingAcknowledgement: nobody acknowledged; next deadline {DEADLINE_TEXT}",
    ),
    (
        "acknowledged",
        incident(ACKNOWLEDGED, phase=Phase.ACKNOWLEDGED),
        "Progressing",
        f"P1 Acknowledged: NotContained: not contained; next deadline {DEADLINE_TEXT}",
    ),
    (
        "contained, an action awaiting approval",
        incident(
            CONTAINED,
            phase=Phase.CONTAINED,
            actions=[
                _action("maintenance-page", ActionPhase.AWAITING_APPROVAL, "waits for an approval"),
                _action("rollback-checkout", ActionPhase.SUCCEEDED, "rolled back to revision 1"),
            ],
        ),
        "Progressing",
        f"P1 Contained: ContainedBy: by bob@example.com; next deadline {DEADLINE_TEXT}; 1 action(s) awaiting approval",
    ),
    (
        "missing conditions, no phase, unclassified",
        _only(incident(OPEN, severity=None, sla=None), cond.READY),
        "Progressing",
        "Triggered",
    ),
    (
        "no policy in effect",
        incident(
            {**OPEN, cond.READY: (False, reasons.NO_ESCALATION_POLICY, "no policy selects the incident")},
            phase=Phase.TRIGGERED,
        ),
        "Degraded",
        "P1 Triggered: NoEscalationPolicy: no policy selects the incident",
    ),
    (
        "the acknowledge deadline missed",
        incident({**OPEN, cond.SLA_BREACHED: BREACH}, phase=Phase.TRIGGERED),
        "Degraded",
        f"P1 Triggered: SLABreached: {BREACH[2]}",
    ),
    (
        "escalation exhausted",
        incident(
            {
                **OPEN,
                cond.SLA_BREACHED: BREACH,
                cond.ESCALATION_EXHAUSTED: (
                    True,
                    reasons.ESCALATION_EXHAUSTED,
                    "every level was paged (2 rounds) and nobody acknowledged",
                ),
            },
            phase=Phase.TRIGGERED,
        ),
        "Degraded",
        "P1 Triggered: EscalationExhausted: every level was paged (2 rounds) and nobody acknowledged;"
        f" SLABreached: {BREACH[2]}",
    ),
    (
        "a failed action",
        incident(
            ACKNOWLEDGED,
            phase=Phase.ACKNOWLEDGED,
            actions=[_action("rollback-checkout", ActionPhase.FAILED, "RollbackFailed: ProgressDeadlineExceeded")],
        ),
        "Degraded",
        "P1 Acknowledged: action rollback-checkout Failed: RollbackFailed: ProgressDeadlineExceeded",
    ),
    (
        "reopened: a new episode",
        incident(
            {**OPEN, cond.RESOLVED: (False, reasons.UNRESOLVED, "episode 2: the alerts fire again")},
            phase=Phase.TRIGGERED,
            episode=2,
            reopen_count=1,
        ),
        "Progressing",
        f"P1 Triggered: AwaitingAcknowledgement: nobody acknowledged; next deadline {DEADLINE_TEXT}",
    ),
    (
        "resolved, the post-mortem pending",
        incident(
            RESOLVED,
            phase=Phase.RESOLVED,
            postmortem=PostmortemStatus(
                state=PostmortemState.PENDING, due_by=datetime.datetime(2026, 12, 3, 14, 30, tzinfo=datetime.UTC)
            ),
        ),
        "Healthy",
        "P1 Resolved: ResolvedBy: by alice@example.com; post-mortem Pending, due by 2026-12-03T14:30:00Z",
    ),
    (
        "resolved, the post-mortem drafted",
        incident(
            RESOLVED,
            phase=Phase.RESOLVED,
            postmortem=PostmortemStatus(
                state=PostmortemState.DRAFT,
                ref="incidentops-postmortem-0123456789abcdef",
                due_by=datetime.datetime(2026, 12, 3, 14, 30, tzinfo=datetime.UTC),
            ),
        ),
        "Healthy",
        "P1 Resolved: ResolvedBy: by alice@example.com; post-mortem Draft, due by 2026-12-03T14:30:00Z",
    ),
    (
        "resolved after breaches and a failed action (history)",
        incident(
            {**RESOLVED, cond.SLA_BREACHED: BREACH},
            phase=Phase.RESOLVED,
            actions=[_action("rollback-checkout", ActionPhase.FAILED, "RollbackFailed")],
        ),
        "Healthy",
        "P1 Resolved: ResolvedBy: by alice@example.com",
    ),
    (
        "resolved because the alerts resolved",
        incident(
            {**OPEN, cond.RESOLVED: (True, reasons.ALERTS_RESOLVED, "every alert of the group resolved")},
            phase=Phase.RESOLVED,
        ),
        "Healthy",
        "P1 Resolved: AlertsResolved: every alert of the group resolved",
    ),
    (
        "closed",
        incident(RESOLVED, phase=Phase.CLOSED, postmortem=PostmortemStatus(state=PostmortemState.DONE)),
        "Healthy",
        "P1 Closed: ResolvedBy: by alice@example.com",
    ),
    (
        "a drill",
        incident(OPEN, phase=Phase.TRIGGERED, drill=True, severity="P3"),
        "Progressing",
        f"DRILL P3 Triggered: AwaitingAcknowledgement: nobody acknowledged; next deadline {DEADLINE_TEXT}",
    ),
]


@pytest.mark.parametrize(
    ("obj", "status", "message"), [c[1:] for c in INCIDENT_CASES], ids=[c[0] for c in INCIDENT_CASES]
)
def test_incident_health(obj: dict[str, Any], status: str, message: str, tmp_path: Path) -> None:
    assert run_check(INCIDENT_LUA, obj, tmp_path) == (status, message)


def policy(
    ready: tuple[bool | None, str, str] | None, *, generation: int = 1, observed: int | None = 1
) -> dict[str, Any]:
    """The example payments policy with a Ready condition (None: none); without status when observed is None."""
    model = EscalationPolicy.model_validate(_example("policies/payments.yaml"))
    if ready is None and observed is None:
        out = model.to_dict()
        out.pop("status", None)
        out["metadata"]["generation"] = generation
        return out
    conditions: list[Condition] = []
    if ready is not None:
        cond.set_condition(conditions, cond.READY, *ready, NOW, observed)
    return _with_status(model, generation, EscalationPolicyStatus(observed_generation=observed, conditions=conditions))


def _secrets(*missing: str) -> dict[str, SecretFacts | None]:
    """The payments policy's Secrets, each labelled and with its keys, but those named in ``missing``."""
    present = {
        "payments-pagerduty": {"routing-key": "x"},
        "payments-slack": {"webhook-url": "x"},
        "payments-webhook": {"hmac-key": "x"},
    }
    label = {"incidentops.dev/channel-secret": "true"}
    return {name: SecretFacts.of(label, data) for name, data in present.items() if name not in missing}


_PAYMENTS = EscalationPolicy.model_validate(_example("policies/payments.yaml"))
READY = policy_readiness(_PAYMENTS, _secrets())
NOT_READY = policy_readiness(_PAYMENTS, _secrets("payments-slack"))
FAILING = (
    False,
    reasons.NOTIFICATIONS_FAILING,
    "channel payments-slack failing since 2026-12-01T14:00:00Z: 404 Not Found",
)

POLICY_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("no status yet", policy(None, observed=None), "Progressing", "Waiting for the operator to check the policy"),
    ("no Ready condition", policy(None), "Progressing", "Waiting for the operator to check the policy"),
    ("ready", policy(READY), "Healthy", f"{reasons.CHANNELS_READY}: {READY[2]}"),
    ("a Secret missing", policy(NOT_READY), "Degraded", f"{reasons.SECRET_NOT_FOUND}: {NOT_READY[2]}"),
    ("a channel failing", policy(FAILING), "Degraded", f"{reasons.NOTIFICATIONS_FAILING}: {FAILING[2]}"),
    (
        "stale observedGeneration (a fix just pushed)",
        policy(NOT_READY, generation=5, observed=4),
        "Progressing",
        "Waiting for the operator to check generation 5 (it checked 4)",
    ),
    (
        "initializing",
        policy((None, reasons.INITIALIZING, "")),
        "Progressing",
        "Initializing",
    ),
]


@pytest.mark.parametrize(("obj", "status", "message"), [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES])
def test_policy_health(obj: dict[str, Any], status: str, message: str, tmp_path: Path) -> None:
    assert run_check(POLICY_LUA, obj, tmp_path) == (status, message)


def test_the_samples_are_valid_objects() -> None:
    for _, obj, _, _ in INCIDENT_CASES:
        Incident.model_validate(copy.deepcopy(obj))
    for _, obj, _, _ in POLICY_CASES:
        EscalationPolicy.model_validate(copy.deepcopy(obj))


def _argocd_cm() -> dict[str, Any]:
    """The argocd-cm ConfigMap of docs/gitops.md (its ```yaml block with kind ConfigMap)."""
    docs = (ROOT / "docs" / "gitops.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)]
    (configmap,) = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "ConfigMap"]
    assert configmap["metadata"]["name"] == "argocd-cm"
    data: dict[str, Any] = configmap["data"]
    return data


@pytest.mark.parametrize(("kind", "script"), [("Incident", INCIDENT_LUA), ("EscalationPolicy", POLICY_LUA)])
def test_the_docs_argocd_cm_snippet_is_the_script(kind: str, script: Path) -> None:
    key = f"resource.customizations.health.incidentops.dev_{kind}"
    assert _argocd_cm()[key] == script.read_text(), f"docs/gitops.md's {key} differs from {script.relative_to(ROOT)}"


# Syntax and library functions newer than Lua 5.1, which lua5.4 accepts and Argo CD's gopher-lua does not.
NOT_LUA_51 = re.compile(
    r"\bgoto\b|::\w+::|//|<const>|<close>|[&|]|~[^=]|<<|>>|\butf8\.|table\.(unpack|move|pack)\b"
    r"|math\.(type|tointeger|ult)\b|string\.(pack|unpack|packsize)\b"
)


@pytest.mark.parametrize("script", [INCIDENT_LUA, POLICY_LUA], ids=["Incident", "EscalationPolicy"])
def test_the_checks_keep_to_lua_51(script: Path) -> None:
    code = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())
    code = re.sub(r'"[^"]*"', '""', code)  # what strings hold is no syntax
    assert NOT_LUA_51.findall(code) == []
