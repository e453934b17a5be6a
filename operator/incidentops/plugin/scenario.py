"""Drill scenarios: the file ``kubectl incident drill start --scenario FILE`` reads, and what it becomes.

Where it sits: inside ``incidentops.plugin``; pure but for reading the file.
``app`` loads a :class:`Scenario` with :func:`load`, then either creates the
drill Incident it describes (:func:`declare_extra` beside ``logic.declare_body``)
or posts its synthetic alert group (:func:`webhook_payload`) to the operator's
receiver, which opens the drill as it opens any incident (the group carries
``domain.alertgroups.DRILL_LABEL``), and adds :func:`after_intake` to it.

A scenario is YAML (``examples/drills/``)::

    title: Checkout is down (game day)
    severity: P1                  # P1..P4; with alerts: what the classification should say
    type: availability            # optional
    namespace: payments           # optional: where the drill happens (else -n, else the context's)
    policy: payments/payments     # optional, without alerts only: [NAMESPACE/]NAME, instead of selection
    description: ...              # optional: what the participants are told
    targets:                      # optional: the drill's targets, each a duration
      detect: 2m                  #   alert start -> incident
      acknowledge: 5m
      contain: 15m
      resolve: 30m
    workloads: [{kind: Deployment, name: checkout}]        # optional, without alerts only: spec.targets
    actions: [{name: rollback, rollback: {deployment: checkout}}]   # optional: requested, dry runs
    alerts:                       # optional: a synthetic Alertmanager group, posted to the receiver
      groupBy: [alertname]        #   the group labels (Alertmanager's group_by); default [alertname]
      firing:
        - labels: {alertname: CheckoutDown, severity: critical, deployment: checkout}
          annotations: {summary: Checkout returns 502}
          startsAt: -2m           #   an offset into the past; default 0s (now)

Unknown keys are errors (a misspelt ``targets`` would silently drop the
targets). Errors name the file, the line and the field, never a traceback.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from incidentops.api import IncidentAction, IncidentType, Severity, parse_duration
from incidentops.api.common import DNS_LABEL_PATTERN, DURATION_PATTERN, Duration, NamespaceName, Text
from incidentops.api.incident import Target
from incidentops.domain.alertgroups import DRILL_LABEL
from incidentops.intake.payload import (
    MAX_ANNOTATION_VALUE,
    MAX_ANNOTATIONS,
    MAX_LABEL_NAME,
    MAX_LABEL_VALUE,
    MAX_LABELS,
)
from incidentops.plugin.logic import SUFFIX_ALPHABET, SUFFIX_LENGTH, rfc3339

__all__ = [
    "DRILL_RUN_LABEL",
    "DRILL_TARGETS_FIELD",
    "DrillTargets",
    "Scenario",
    "ScenarioAlert",
    "ScenarioAlerts",
    "ScenarioError",
    "after_intake",
    "declare_extra",
    "load",
    "parse",
    "parse_offset",
    "run_id",
    "webhook_payload",
]

Body = dict[str, Any]

DRILL_TARGETS_FIELD = "drillTargets"
"""``spec.drillTargets``: the scenario's targets, which the drill's assessment is measured against."""

DRILL_RUN_LABEL = "incidentops_drill_run"
"""A label on every synthetic alert and in the group labels: a new value per ``drill start``, so each run
is a group of its own (a new incident, never a reopened earlier drill nor a real group's incident)."""

DEFAULT_RECEIVER = "incidentops-drill"
"""The Alertmanager receiver name the synthetic group claims (``spec.source.receiver``)."""

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert

LabelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_NAME)]
Labels = Annotated[
    dict[LabelName, Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]],
    Field(min_length=1, max_length=MAX_LABELS - 2),  # room for the two drill labels
]
Annotations = Annotated[
    dict[LabelName, Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE)]],
    Field(max_length=MAX_ANNOTATIONS - 2),  # room for summary and description
]


class ScenarioError(Exception):
    """A scenario file that cannot be read or is not a valid scenario; the message names file, line, field."""


def parse_offset(text: str) -> datetime.timedelta:
    """``-2m`` -> minus two minutes: a duration (``parse_duration``'s units) into the past, or ``0s``."""
    negative = text.startswith("-")
    magnitude = parse_duration(text[1:] if negative else text)
    if magnitude and not negative:
        raise ValueError(f"{text!r} is in the future: startsAt is an offset into the past, such as -2m (or 0s for now)")
    return -magnitude


def _check_offset(text: str) -> str:
    parse_offset(text)
    return text


Offset = Annotated[str, StringConstraints(max_length=33), AfterValidator(_check_offset)]


def _check_policy(text: str) -> str:
    parts = text.split("/")
    if len(parts) > 2 or not all(re.fullmatch(DNS_LABEL_PATTERN, p) and len(p) <= 63 for p in parts):
        raise ValueError(f"{text!r} is not NAME or NAMESPACE/NAME of an EscalationPolicy")
    return text


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, use_attribute_docstrings=True
    )


class DrillTargets(_Model):
    """How fast the drill should go, each counted from the incident's start (``detect``: from the alerts')."""

    detect: Duration | None = None
    """From the alerts' ``startsAt`` to the incident."""
    acknowledge: Duration | None = None
    contain: Duration | None = None
    resolve: Duration | None = None

    def to_dict(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class ScenarioAlert(_Model):
    """One synthetic alert, firing."""

    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: Offset = "0s"
    """When it started, as an offset from now into the past (``-2m``): the drill's detection time."""


class ScenarioAlerts(_Model):
    """A synthetic Alertmanager alert group, posted to the operator's receiver as Alertmanager would."""

    receiver: Annotated[str, StringConstraints(min_length=1, max_length=253)] = DEFAULT_RECEIVER
    group_by: Annotated[list[LabelName], Field(min_length=1, max_length=16)] = Field(
        default_factory=lambda: ["alertname"]
    )
    firing: Annotated[list[ScenarioAlert], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _a_group(self) -> Self:
        for i, alert in enumerate(self.firing):
            if not alert.labels.get("alertname"):
                raise ValueError(f"firing[{i}] has no alertname label: every Prometheus alert has one")
            for label in (DRILL_LABEL, DRILL_RUN_LABEL):
                if label in alert.labels and (label != DRILL_LABEL or alert.labels[label] != "true"):
                    raise ValueError(f"firing[{i}]: the label {label} is the drill's own; leave it out")
        return self

    def check_group(self, namespace: str | None) -> None:
        """Every ``groupBy`` label is on every alert with one value (the alerts get ``namespace``'s label)."""
        for label in self.group_by:
            values = {(a.labels | ({"namespace": namespace} if namespace else {})).get(label) for a in self.firing}
            if len(values) != 1 or None in values:
                raise ValueError(
                    f"groupBy: every alert of a group has the same {label!r} label (Alertmanager groups by it);"
                    f" the alerts have {sorted(str(v) for v in values)}"
                )


class Scenario(_Model):
    """A drill: what incident, how fast it should be handled, and how it starts."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    severity: Severity
    """The incident's severity; with ``alerts``, what the policy's classification of them should say."""
    type: IncidentType | None = None
    namespace: NamespaceName | None = None
    policy: Annotated[str, StringConstraints(max_length=127), AfterValidator(_check_policy)] | None = None
    description: Text | None = None
    targets: DrillTargets = Field(default_factory=DrillTargets)
    workloads: Annotated[list[Target], Field(max_length=16)] = Field(default_factory=list)
    actions: Annotated[list[IncidentAction], Field(max_length=16)] = Field(default_factory=list)
    alerts: ScenarioAlerts | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [a.name for a in self.actions]
        if len(set(names)) != len(names):
            raise ValueError(f"actions: two actions have the same name ({', '.join(names)})")
        if self.alerts is not None:
            self.alerts.check_group(self.namespace)
            if self.policy:
                raise ValueError(
                    "policy: not with alerts: an alert-born incident's policy is selected from its labels, as a"
                    " real one's is (give the alerts the labels the policy's selector matches)"
                )
            if self.workloads:
                raise ValueError(
                    "workloads: not with alerts: the receiver takes an alert-born incident's targets from the"
                    " alerts' deployment/statefulset/daemonset/pod and namespace labels"
                )
            if self.namespace:
                for i, alert in enumerate(self.alerts.firing):
                    if alert.labels.get("namespace", self.namespace) != self.namespace:
                        raise ValueError(
                            f"alerts.firing[{i}]: its namespace label {alert.labels['namespace']!r} is not the"
                            f" scenario's namespace {self.namespace!r}"
                        )
        return self


# --- reading the file -----------------------------------------------------------------------------


def load(path: Path) -> Scenario:
    """The scenario in ``path``; :class:`ScenarioError` with file, line and field when it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario {path}: {exc.strerror or exc}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """The scenario in ``text`` (``source`` names it in errors)."""
    try:
        documents = [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{where}: not valid YAML: {problem}") from None
    if len(documents) != 1:
        found = "nothing" if not documents else f"{len(documents)} documents"
        raise ScenarioError(f"{source}: a scenario file holds one YAML document, this one holds {found}")
    root = documents[0]
    data = yaml.SafeLoader("").construct_document(root)
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}:{root.start_mark.line + 1}: a scenario is a mapping (title: ..., severity: ...)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        lines = [f"  line {_line(root, e['loc'])}: {_message(e)}" for e in errors]
        raise ScenarioError(f"{source} is not a valid drill scenario:\n" + "\n".join(lines)) from None


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: ErrorDetails) -> str:
    where = _path(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == DURATION_PATTERN:
        message = "not a duration (use h, m, s or ms, e.g. 90s, 15m, 1h30m)"
    elif error["type"] == "string_type":
        message += ' (YAML reads true, 5 or 1.0 as no string: quote it, "true")'
    return f"{where}: {message}" if where else message


def _line(root: yaml.Node, loc: Sequence[int | str]) -> int:
    """The line (1-based) of the YAML node at ``loc``, or of the nearest node above it that exists."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((value for key, value in node.value if getattr(key, "value", None) == part), None)
            if found is None:  # a missing field: the mapping that lacks it
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            break
    return int(node.start_mark.line) + 1


# --- what it becomes --------------------------------------------------------------------------------


def declare_extra(scenario: Scenario) -> Body:
    """The spec fields a drill without alerts gets besides ``logic.declare_body``'s: its targets, workloads
    and actions."""
    extra: Body = after_intake(scenario)
    if scenario.workloads:
        extra["targets"] = [t.to_dict() for t in scenario.workloads]
    return extra


def after_intake(scenario: Scenario) -> Body:
    """The spec fields the plugin adds to the incident the receiver opened (which knows only the alerts):
    the drill's targets and its requested actions. Empty: nothing to add."""
    extra: Body = {}
    if scenario.targets.to_dict():
        extra[DRILL_TARGETS_FIELD] = scenario.targets.to_dict()
    if scenario.actions:
        extra["actions"] = [a.to_dict() for a in scenario.actions]
    return extra


def run_id(rng: random.Random | None = None) -> str:
    """A fresh value of :data:`DRILL_RUN_LABEL`: 5 characters of Kubernetes' generateName alphabet."""
    chooser = rng or random.SystemRandom()
    return "".join(chooser.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def _fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """What every map holds with the same value (Alertmanager's commonLabels and commonAnnotations)."""
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def webhook_payload(scenario: Scenario, now: datetime.datetime, run: str, namespace: str | None = None) -> Body:
    """The Alertmanager webhook payload (version 4) of the scenario's alerts, as Alertmanager would post it.

    Every alert carries :data:`DRILL_LABEL` ``"true"`` (so the receiver opens a
    drill) and :data:`DRILL_RUN_LABEL` ``run`` (so this run is a group of its
    own), and ``namespace`` when given. An alert without a ``summary`` or
    ``description`` annotation gets the scenario's title and description, which
    the receiver makes the incident's.
    """
    if scenario.alerts is None:
        raise ValueError("the scenario has no alerts")
    group = scenario.alerts
    alerts: list[Body] = []
    for alert in group.firing:
        labels = {**alert.labels, DRILL_LABEL: "true", DRILL_RUN_LABEL: run}
        if namespace:
            labels.setdefault("namespace", namespace)
        annotations = dict(alert.annotations)
        annotations.setdefault("summary", scenario.title)
        if scenario.description:
            annotations.setdefault("description", scenario.description)
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(now + parse_offset(alert.starts_at)),
                "endsAt": ZERO_TIME,
                "generatorURL": "",
                "fingerprint": _fingerprint(labels),
            }
        )
    by = list(dict.fromkeys([*group.group_by, *(["namespace"] if namespace else []), DRILL_RUN_LABEL]))
    group_labels = {label: alerts[0]["labels"][label] for label in by}
    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return {
        "version": "4",
        "groupKey": f'{{}}/{{{DRILL_LABEL}="true"}}:{{{inner}}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": group.receiver,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": "",
        "alerts": alerts,
    }
