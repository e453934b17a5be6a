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

That pass holds the GIL from start to end (pydantic-core is native code and
never reaches the interpreter's switch points), so a thread alone would not
spare the event loop: a 10 MB body holds it ~0.3-1 s whether parsed on the
loop or beside it. :func:`parse_in_steps` therefore validates a large body as
a series of short native calls (the envelope with the first alerts, then the
alerts a few hundred at a time) for the server to run in a thread: between
two calls the interpreter hands the GIL to the loop after at most the switch
interval (5 ms), so the loop that renews the leader's Lease keeps running.
(What remains are the garbage collections the new objects set off, tens of
milliseconds, which no thread avoids.) The result and the errors are the
same as :func:`parse`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

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
    "parse_in_steps",
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
        raise _payload_error(exc.errors(include_url=False, include_input=False, include_context=False)) from None


def _payload_error(raw: Sequence[ErrorDetails]) -> PayloadError:
    if any(e["type"] == "json_invalid" for e in raw):
        detail = next(e["msg"] for e in raw if e["type"] == "json_invalid").removeprefix("Invalid JSON: ")
        return PayloadError(400, f"the body is not valid JSON: {detail}")
    errors = tuple({"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in raw[:MAX_ERRORS])
    first = errors[0]
    if first["field"] == "version":
        message = "version: unsupported webhook payload version; this receiver takes Alertmanager's version 4"
    elif first["field"] == "(body)":
        message = f"the body must be a JSON object (an Alertmanager webhook payload): {first['message']}"
    else:
        message = f"{first['field']}: {first['message']}"
    if len(raw) > 1:
        message += f" (and {len(raw) - 1} more)"
    return PayloadError(422, message, errors)


# --- large bodies, in steps ---------------------------------------------------------------------------

STEP = 256
"""Alerts validated per native call by :func:`parse_in_steps` (well under a millisecond each)."""

_ALERTS: TypeAdapter[list[WebhookAlert]] = TypeAdapter(list[WebhookAlert])
_SCAN = json.JSONDecoder().raw_decode  # one JSON value at an index: (value, where it ends); the C scanner
_SPACE = re.compile(r"[ \t\n\r]*")


def parse_in_steps(body: bytes, step: int = STEP) -> WebhookPayload:
    """:func:`parse`, as short native calls with the interpreter in between: for a thread beside the loop.

    The body is cut at its alerts (the C scanner finds where each one ends);
    the envelope is validated with the first ``step`` alerts, the others
    ``step`` at a time, and their errors are put together in :func:`parse`'s
    order. A body that is not a plain JSON object with an ``alerts`` array,
    or whose alerts are not valid JSON, is left to :func:`parse`, whose
    answer is then the one to give.
    """
    try:
        split = _split_alerts(body.decode())
    except ValueError:  # not UTF-8, not JSON
        split = None
    if split is None:
        return parse(body)
    head, alerts, tail = split
    batches = [alerts[i : i + step] for i in range(0, len(alerts), step)]
    raw: list[ErrorDetails] = []
    envelope: WebhookPayload | None = None
    validated: list[WebhookAlert] = []
    try:
        envelope = WebhookPayload.model_validate_json(f"{head}[{','.join(batches[0])}]{tail}")
        validated.extend(envelope.alerts)
    except ValidationError as exc:
        raw.extend(exc.errors(include_url=False, include_input=False, include_context=False))
    for n, batch in enumerate(batches[1:], start=1):
        try:
            validated.extend(_ALERTS.validate_json(f"[{','.join(batch)}]"))
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                index, *rest = error["loc"]
                assert isinstance(index, int)
                raw.append({**error, "loc": ("alerts", index + n * step, *rest)})
    if any(e["type"] == "json_invalid" for e in raw):
        return parse(body)  # a JSON error's position is only right in the whole body
    if raw or envelope is None:
        raise _payload_error(raw)
    return envelope.model_copy(update={"alerts": validated})


def _split_alerts(text: str) -> tuple[str, list[str], str] | None:
    """``text`` around its top-level ``alerts`` array, and the array's elements as JSON texts (None: no such array).

    Raises ValueError where ``text`` is not JSON.
    """

    def space(i: int) -> int:
        match = _SPACE.match(text, i)
        assert match is not None
        return match.end()

    i = space(0)
    if text[i : i + 1] != "{":
        return None
    i = space(i + 1)
    found: tuple[int, int, list[str]] | None = None
    while text[i : i + 1] != "}":
        if text[i : i + 1] != '"':
            return None
        key, i = _SCAN(text, i)
        i = space(i)
        if text[i : i + 1] != ":":
            return None
        i = space(i + 1)
        if key == "alerts" and text[i : i + 1] == "[":
            if found is not None:
                return None  # the key twice: one pass decides which counts
            start, elements = i, []
            i = space(i + 1)
            while text[i : i + 1] != "]":
                begin = i
                _, i = _SCAN(text, i)
                elements.append(text[begin:i])
                i = space(i)
                if text[i : i + 1] == ",":
                    i = space(i + 1)
                    if text[i : i + 1] == "]":
                        return None  # a trailing comma is not JSON
                elif text[i : i + 1] != "]":
                    return None
            i += 1
            found = (start, i, elements)
        else:
            _, i = _SCAN(text, i)
        i = space(i)
        if text[i : i + 1] == ",":
            i = space(i + 1)
            if text[i : i + 1] == "}":
                return None
        elif text[i : i + 1] != "}":
            return None
    if found is None or not found[2] or space(i + 1) != len(text):
        return None
    start, end, elements = found
    return text[:start], elements, text[end:]
