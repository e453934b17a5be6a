"""Alertmanager's webhook payload, version 4, as a strict pydantic model.

Where it sits: the first thing the receiver (``server.py``) does with a POST
body is :func:`parse` it; everything after works on :class:`WebhookPayload`.
The domain (``domain.alertgroups``) reads it through its ``AlertGroup``
protocol, without a copy.

Strict: types are not coerced (``"3"`` is not a number), ``status`` is
``firing`` or ``resolved``, timestamps carry a time zone, and every string,
map and label set has a bound, so an absurd payload is refused with a 4xx
instead of turning into an Incident the API server would refuse. Unknown keys
are ignored, as Alertmanager has added fields within version 4 before.

Required are the fields the receiver cannot do without: ``version``,
``groupKey``, ``status``, ``receiver``, ``alerts`` and, per alert, ``status``,
``labels``, ``startsAt`` and ``fingerprint``. The others (which Alertmanager
always sends) default to empty.

The whole body is validated in one pass by pydantic-core from the raw bytes
(``model_validate_json``), with no intermediate ``json.loads``: a POST of
thousands of alerts costs one parse.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "MAX_ANNOTATIONS",
    "MAX_ANNOTATION_VALUE",
    "MAX_LABELS",
    "MAX_LABEL_NAME",
    "MAX_LABEL_VALUE",
    "MAX_TRUNCATED",
    "PayloadError",
    "WebhookAlert",
    "WebhookPayload",
    "parse",
]

MAX_LABELS = 128
"""Labels per alert (and per group/common label set)."""
MAX_LABEL_NAME = 256
"""Characters of a label or annotation name."""
MAX_LABEL_VALUE = 4096
"""Characters of a label value. Values longer than 1024 are accepted but left out of ``spec.source.labels``."""
MAX_ANNOTATIONS = 128
"""Annotations per alert (and common annotations)."""
MAX_ANNOTATION_VALUE = 65536
"""Characters of an annotation value (descriptions, runbooks)."""
MAX_TRUNCATED = 2**63 - 1
"""``truncatedAlerts``: Alertmanager's is a uint64, ``status.alerts.truncated`` an int64 (what the API server keeps)."""
MAX_ERRORS = 20
"""Validation errors listed in a 422 answer."""

LabelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_NAME)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]
AnnotationValue = Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]
Annotations = Annotated[dict[LabelName, AnnotationValue], Field(max_length=MAX_ANNOTATIONS)]
URL = Annotated[str, StringConstraints(max_length=4096)]
Status = Literal["firing", "resolved"]


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        # Names in error messages are the JSON names (``groupKey``), as the sender wrote them.
        loc_by_alias=True,
    )


class WebhookAlert(_Strict):
    """One alert of the group."""

    status: Status
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    """Go's zero time (0001-01-01T00:00:00Z) while the alert fires."""
    generator_url: URL = Field("", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WebhookPayload(_Strict):
    """One POST: one alert group, whole (Alertmanager's ``notify/webhook.Message``)."""

    version: Literal["4"]
    group_key: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    truncated_alerts: int = Field(0, ge=0, le=MAX_TRUNCATED)
    status: Status
    receiver: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    group_labels: Labels = Field(default_factory=dict)
    common_labels: Labels = Field(default_factory=dict)
    common_annotations: Annotations = Field(default_factory=dict)
    external_url: URL = Field("", alias="externalURL")
    alerts: Annotated[list[WebhookAlert], Field(min_length=1)]


class PayloadError(Exception):
    """The body is not a version 4 webhook payload: ``status`` is 400 (not JSON) or 422 (not the schema)."""

    def __init__(self, status: int, message: str, errors: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.message}
        if self.errors:
            out["errors"] = list(self.errors)
        return out


def _field(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a JSON path: ``alerts[3].labels.severity``; ``(body)`` for the whole."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def parse(body: bytes) -> WebhookPayload:
    """Validate a POST body in one pass; raise :class:`PayloadError` naming the first bad field."""
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        raw = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in raw):
            detail = next(e["msg"] for e in raw if e["type"] == "json_invalid").removeprefix("Invalid JSON: ")
            raise PayloadError(400, f"the body is not valid JSON: {detail}") from None
        errors = tuple({"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in raw[:MAX_ERRORS])
        first = errors[0]
        if first["field"] == "version":
            message = "version: unsupported webhook payload version; this receiver takes Alertmanager's version 4"
        elif first["field"] == "(body)":
            message = f"the body must be a JSON object (an Alertmanager webhook payload): {first['message']}"
        else:
            message = f"{first['field']}: {first['message']}"
        if exc.error_count() > 1:
            message += f" (and {exc.error_count() - 1} more)"
        raise PayloadError(422, message, errors) from None


def is_zero_time(value: datetime.datetime | None) -> bool:
    """Whether a timestamp is unset: None or Go's zero time."""
    return value is None or value.year <= 1
