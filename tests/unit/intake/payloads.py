"""Webhook payloads as Alertmanager 0.25 sends them, and hypothesis strategies for them.

Used by the intake and domain unit tests and by the e2e tests (which send some
of them straight to the receiver).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from typing import Any

from hypothesis import strategies as st

ZERO_TIME = "0001-01-01T00:00:00Z"
T0 = "2025-01-31T14:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def alert(
    status: str = "firing",
    *,
    starts_at: str = T0,
    ends_at: str | None = None,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": starts_at,
        "endsAt": ends_at or (ZERO_TIME if status == "firing" else "2025-01-31T14:30:00Z"),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        "fingerprint": fingerprint(labels),
    }


def payload(
    alerts: list[dict[str, Any]] | None = None,
    *,
    receiver: str = "incidentops",
    group_labels: dict[str, str] | None = None,
    group_key: str | None = None,
    status: str | None = None,
    truncated: int = 0,
    common_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    alerts = alerts if alerts is not None else [alert()]
    group_labels = group_labels if group_labels is not None else {"alertname": alerts[0]["labels"]["alertname"]}
    if group_key is None:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
        group_key = f"{{}}:{{{inner}}}"
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_annotations or {},
        "externalURL": "http://alertmanager.example",
        "alerts": alerts,
    }


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- hypothesis strategies ------------------------------------------------------------------------

label_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
label_sets = st.dictionaries(label_names, label_values, max_size=8)
timestamps = st.datetimes(timezones=st.just(datetime.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
starts_at_values = st.one_of(
    st.sampled_from([ZERO_TIME, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999-23:59"]),
    st.datetimes(timezones=_offsets).map(lambda d: d.isoformat().replace("+00:00", "Z")),
)
"""Any ``startsAt`` a sender may put: Alertmanager's zero time, far past, far future, any offset (RFC 3339)."""


@st.composite
def valid_alerts(draw: st.DrawFn) -> dict[str, Any]:
    labels = draw(label_sets)
    status = draw(st.sampled_from(["firing", "resolved"]))
    return {
        "status": status,
        "labels": labels,
        "annotations": draw(label_sets),
        "startsAt": draw(timestamps),
        "endsAt": ZERO_TIME if status == "firing" else draw(timestamps),
        "generatorURL": draw(st.text(max_size=30)),
        "fingerprint": draw(st.text(st.sampled_from("0123456789abcdef"), min_size=16, max_size=16)),
    }


@st.composite
def valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    alerts = draw(st.lists(valid_alerts(), min_size=1, max_size=12))
    return {
        "version": "4",
        "groupKey": draw(st.text(min_size=1, max_size=80)),
        "truncatedAlerts": draw(st.integers(0, 10**6)),
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": draw(st.text(min_size=1, max_size=40)),
        "groupLabels": draw(label_sets),
        "commonLabels": draw(label_sets),
        "commonAnnotations": draw(label_sets),
        "externalURL": draw(st.text(max_size=30)),
        "alerts": alerts,
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_payloads(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]] | None = None) -> Any:
    """A valid payload (of ``base``) with one part replaced, removed or retyped: near misses, where parsers break."""
    value = copy.deepcopy(draw(base if base is not None else valid_payloads()))
    path: list[Any] = []
    node: Any = value
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node.keys()) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return draw(json_values)
    parent: Any = value
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return value
