"""Types shared by the Incident and EscalationPolicy models.

Where it sits: the bottom of ``incidentops.api``; ``incident.py`` and
``policy.py`` build on it, and so does everything above the API layer.

Conventions every model follows (the CRD generator in ``crdgen.py`` depends
on them):

- JSON names are camelCase (``alias_generator=to_camel``), Python names are
  snake_case, and both are accepted on input (``populate_by_name``).
- Unknown keys are ignored, as the API server prunes them anyway.
- Every field is documented with an attribute docstring; the docstring becomes
  the field's ``description`` in the CRD.
- Every string has a maximum length, every list a maximum number of items,
  every map a maximum number of keys, so the API server can bound the cost of
  the CEL rules.
- A "one of" is a set of optional fields plus :func:`exactly_one`, which both
  validates in Python and emits the CEL rule that validates at admission.
- Per-field Kubernetes knowledge (CEL rules, list types) is declared next to
  the field with ``json_schema_extra`` (see :func:`cel`, :func:`list_type`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "CHANNEL_SECRET_LABEL",
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "DURATION_PATTERN",
    "GROUP",
    "VERSION",
    "ApiModel",
    "Condition",
    "ConditionStatus",
    "Duration",
    "IncidentType",
    "LabelMap",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ObjectMeta",
    "PolicyRef",
    "SecretKeyRef",
    "Severity",
    "cel",
    "exactly_one",
    "format_duration",
    "list_type",
    "parse_duration",
]

# --- the API group -----------------------------------------------------------

GROUP = "incidentops.dev"
"""The API group of both kinds."""

VERSION = "v1alpha1"
"""The one served and stored version."""

API_VERSION = f"{GROUP}/{VERSION}"
"""``apiVersion`` of Incidents and EscalationPolicies."""

CATEGORY = "incidentops"
"""The CRDs' category: ``kubectl get incidentops`` lists both kinds."""

CHANNEL_SECRET_LABEL = (f"{GROUP}/channel-secret", "true")
"""The label (key, value) a Secret needs before a channel may read it."""

# --- limits and patterns -----------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""An RFC 1123 label: namespaces, and the names of levels, channels and actions."""

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""An RFC 1123 subdomain: the names of Kubernetes objects."""

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""A Go duration limited to the units h, m, s and ms: ``90s``, ``15m``, ``1h30m``, ``1.5h``."""

DURATION_MAX_LENGTH = 32
_MAX_GO_DURATION_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds.

# --- model base ----------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of every API model: camelCase JSON names, unknown keys ignored, docstrings as descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        use_attribute_docstrings=True,
        use_enum_values=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as Kubernetes JSON: camelCase keys, unset (None) fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @model_validator(mode="after")
    def _list_types_hold(self) -> Self:
        # What the API server enforces for `set` and `map` lists (see list_type), checked here too.
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            if not isinstance(extra, dict) or extra.get("x-kubernetes-list-type") not in ("set", "map"):
                continue
            items = getattr(self, name)
            if not items:
                continue
            keys = extra.get("x-kubernetes-list-map-keys")
            if isinstance(keys, list):
                values = [tuple(getattr(item, _field_by_alias(type(item), str(k))) for k in keys) for item in items]
            else:
                values = list(items)
            if len(set(values)) != len(values):
                raise ValueError(f"{info.alias or name} has duplicate items")
        return self


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry: a CEL rule and the message shown when it fails."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def list_type(kind: str, *keys: str) -> dict[str, Any]:
    """``json_schema_extra`` for a list: ``atomic``, ``set``, or ``map`` keyed on ``keys``."""
    if kind == "map":
        if not keys:
            raise ValueError("a map list needs at least one key")
        return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}
    if keys:
        raise ValueError(f"a {kind} list takes no keys")
    return {"x-kubernetes-list-type": kind}


def exactly_one(*fields: str, what: str) -> tuple[dict[str, Any], Callable[[BaseModel], None]]:
    """A "one of" over optional fields: the CEL rule for the CRD, and the same check for Python.

    ``fields`` are the JSON (camelCase) names. Returns ``(rule, check)``: put the
    rule into the model's ``x-kubernetes-validations`` and call ``check(self)``
    from an ``after`` model validator.
    """
    terms = " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)
    names = ", ".join(fields[:-1]) + f" and {fields[-1]}" if len(fields) > 1 else fields[0]
    message = f"{what} sets exactly one of {names}"

    def check(model: BaseModel) -> None:
        present = [f for f in fields if getattr(model, _field_by_alias(type(model), f)) is not None]
        if len(present) != 1:
            raise ValueError(f"{message} (set: {', '.join(present) or 'none'})")

    return cel(f"{terms} == 1", message), check


def _field_by_alias(model: type[BaseModel], alias: str) -> str:
    for name, info in model.model_fields.items():
        if info.alias == alias or name == alias:
            return name
    raise KeyError(f"{model.__name__} has no field {alias!r}")


# --- durations -------------------------------------------------------------------

_TERM = re.compile(r"([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)")
_WHOLE = re.compile(DURATION_PATTERN)
_UNIT_NS = {"h": 3_600_000_000_000, "m": 60_000_000_000, "s": 1_000_000_000, "ms": 1_000_000}


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration with the units h, m, s and ms (``90s``, ``1h30m``, ``1.5h``, ``250ms``).

    Days are not a unit (as in Go). Fractions are exact to the nanosecond and
    then truncated to the microsecond, ``timedelta``'s resolution. Raises
    ``ValueError`` for anything else, including values beyond Go's range
    (about 2562047h), which the API server's CEL ``duration()`` refuses too.
    """
    if not isinstance(text, str) or len(text) > DURATION_MAX_LENGTH or not _WHOLE.fullmatch(text):
        raise ValueError(f"not a duration: {text!r} (use h, m, s or ms, e.g. 90s, 15m, 1h30m)")
    total = Fraction(0)
    for whole, frac, unit in _TERM.findall(text):
        value = Fraction(int(whole))
        if frac:
            value += Fraction(int(frac), 10 ** len(frac))
        total += value * _UNIT_NS[unit]
    nanoseconds = int(total)  # truncation, as Go does
    if nanoseconds > _MAX_GO_DURATION_NS:
        raise ValueError(f"duration out of range: {text!r} (at most 2562047h)")
    return datetime.timedelta(microseconds=nanoseconds // 1000)


def format_duration(delta: datetime.timedelta) -> str:
    """The shortest duration string for ``delta`` that :func:`parse_duration` reads back exactly.

    ``1h30m``, ``90s`` -> ``1m30s``, ``0s``; sub-second parts as decimal seconds (``1.25s``).
    """
    if delta < datetime.timedelta(0):
        raise ValueError(f"negative durations are not supported: {delta!r}")
    micros = delta // datetime.timedelta(microseconds=1)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or micros:
        fraction = f"{micros:06d}".rstrip("0")
        parts.append(f"{seconds}.{fraction}s" if fraction else f"{seconds}s")
    return "".join(parts) or "0s"


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[
    str,
    StringConstraints(max_length=DURATION_MAX_LENGTH, pattern=DURATION_PATTERN),
    AfterValidator(_check_duration),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": DURATION_MAX_LENGTH,
            "pattern": DURATION_PATTERN,
            "description": "A Go duration with the units h, m, s and ms, e.g. 90s, 15m, 4h, 1h30m.",
            "x-kubernetes-validations": [
                cel(
                    "duration(self) >= duration('0s')",
                    "must be a Go duration with the units h, m, s or ms, e.g. 90s, 15m, 4h, 1h30m",
                )
            ],
        }
    ),
]
"""A Go duration string (kept as text, so objects round-trip unchanged); read it with :func:`parse_duration`."""

# --- small string types ------------------------------------------------------------

ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""The name of a Kubernetes object (an RFC 1123 subdomain)."""

NamespaceName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""The name of a namespace (an RFC 1123 label)."""

ItemName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""The name of an item in a list-map (a level, a channel, an action): an RFC 1123 label."""

KindName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$")]
"""A Kubernetes kind, e.g. ``Deployment``."""

Identity = Annotated[str, StringConstraints(min_length=1, max_length=253)]
"""Who did something: a Kubernetes user name (``kubectl incident`` fills it from SelfSubjectReview)."""

ShortText = Annotated[str, StringConstraints(max_length=256)]
"""A one-line text."""

Text = Annotated[str, StringConstraints(max_length=4096)]
"""A paragraph of text."""

Message = Annotated[str, StringConstraints(max_length=1024)]
"""A message written by the operator."""

LabelValue = Annotated[str, StringConstraints(max_length=1024)]
"""A label value; alert label values need not be valid Kubernetes label values."""

LabelMap = dict[str, LabelValue]
"""Labels, Kubernetes' or an alert's (callers bound the number of keys with ``max_length``)."""

# --- enums ---------------------------------------------------------------------------


class Severity(StrEnum):
    """How severe an incident is, P1 (most severe) to P4."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 ... 4 for P4: lower is more severe."""
        return int(self.value[1])


class IncidentType(StrEnum):
    """What kind of incident it is."""

    AVAILABILITY = "availability"
    PERFORMANCE = "performance"
    SECURITY = "security"
    DATA = "data"
    INTEGRATION = "integration"


class ConditionStatus(StrEnum):
    """The status of a condition, as in ``metav1.Condition``."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"

    @classmethod
    def of(cls, value: ConditionStatus | bool | str | None) -> ConditionStatus:
        """``True``/``False``/``None`` (unknown) or a status string, as a ConditionStatus."""
        if value is None:
            return cls.UNKNOWN
        if isinstance(value, bool):
            return cls.TRUE if value else cls.FALSE
        return cls(value)


# --- references -----------------------------------------------------------------------


class SecretKeyRef(ApiModel):
    """A key of a Secret in the policy's own namespace.

    The Secret must carry the label ``incidentops.dev/channel-secret: "true"``;
    the operator reads no other Secret, so a policy author cannot send an
    arbitrary Secret of the namespace to a server of their choosing. The
    policy's Ready condition is False (SecretNotFound, SecretNotLabelled,
    SecretKeyMissing) until the Secret and the key exist.
    """

    name: ObjectName
    """Name of the Secret, in the EscalationPolicy's namespace."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key within the Secret's data."""


class PolicyRef(ApiModel):
    """Names the EscalationPolicy for an incident, instead of selection."""

    name: ObjectName
    """The EscalationPolicy's name."""

    namespace: NamespaceName | None = None
    """The policy's namespace: the incident's own (the default) or the operator's. Any other namespace is
    refused by the operator (condition Ready=False, reason PolicyRefOutOfScope)."""


# --- label selectors -----------------------------------------------------------------------


class SelectorOperator(StrEnum):
    """The operator of a label selector requirement."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector, as in ``metav1.LabelSelectorRequirement``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)",
                    "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                )
            ]
        }
    )

    key: Annotated[str, StringConstraints(min_length=1, max_length=317)]
    """The label key the requirement applies to."""

    operator: SelectorOperator
    """How the key relates to the values: In, NotIn, Exists or DoesNotExist."""

    values: list[LabelValue] | None = Field(None, max_length=64, json_schema_extra=list_type("atomic"))
    """The values for In and NotIn; must be empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        needs = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs != bool(self.values):
            raise ValueError("values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        if self.operator is SelectorOperator.EXISTS:
            return present
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return not present
        inside = present and labels[self.key] in (self.values or [])
        return inside if self.operator is SelectorOperator.IN else not inside


class LabelSelector(ApiModel):
    """A label selector, as in ``metav1.LabelSelector``; an empty selector selects everything."""

    match_labels: LabelMap | None = Field(None, max_length=64)
    """Labels that must all be present with these values."""

    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, max_length=16, json_schema_extra=list_type("atomic")
    )
    """Requirements that must all hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` are selected (every matchLabel and every expression holds)."""
        if any(labels.get(key) != value for key, value in (self.match_labels or {}).items()):
            return False
        return all(requirement.matches(labels) for requirement in self.match_expressions or [])


# --- conditions ------------------------------------------------------------------------------


class Condition(ApiModel):
    """One aspect of an object's state, as in ``metav1.Condition``.

    Set with :func:`incidentops.api.conditions.set_condition`, which keeps
    ``lastTransitionTime`` while the status stays the same.
    """

    type: Annotated[
        str,
        StringConstraints(
            min_length=1,
            max_length=316,
            pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        ),
    ]
    """The condition's type, e.g. ``Ready`` or ``Acknowledged`` (see ``incidentops.api.conditions``)."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    ]
    """Why the condition has its status: a CamelCase word from ``incidentops.api.reasons``."""

    message: Message = ""
    """A human-readable explanation; may be empty."""

    last_transition_time: datetime.datetime
    """When the status last changed (not when the reason or message did)."""

    observed_generation: int | None = Field(None, ge=0)
    """The ``metadata.generation`` the condition was computed from."""


# --- object metadata ---------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The parts of ``metav1.ObjectMeta`` the operator reads; everything else is kept as it is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime.datetime | None = None
    deletion_timestamp: datetime.datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
