"""intake.payload: the strict version 4 model, its error messages, and a fuzz of the parser."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.intake.payload import MAX_LABELS, MAX_TRUNCATED, PayloadError, WebhookPayload, parse, parse_in_steps
from tests.unit.intake.payloads import alert, body, json_values, mutated_payloads, payload, valid_payloads

# A real Alertmanager 0.25 POST (captured from the e2e test's Alertmanager).
CAPTURED = b"""{"receiver":"incidentops","status":"firing","alerts":[{"status":"firing","labels":{"alertname":
"HighErrorRate","namespace":"shop","service":"checkout","severity":"critical"},"annotations":{"summary":
"Checkout error rate above 5%"},"startsAt":"2025-01-31T14:00:00.123456789Z","endsAt":"0001-01-01T00:00:00Z",
"generatorURL":"http://127.0.0.1:9093/graph","fingerprint":"8c1b6b1e44c3ef2a"}],"groupLabels":{"alertname":
"HighErrorRate"},"commonLabels":{"alertname":"HighErrorRate","namespace":"shop","service":"checkout","severity":
"critical"},"commonAnnotations":{"summary":"Checkout error rate above 5%"},"externalURL":"http://127.0.0.1:9093",
"version":"4","groupKey":"{}:{alertname=\\"HighErrorRate\\"}","truncatedAlerts":0}""".replace(b"\n", b"")


def error_of(raw: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse(raw)
    return info.value


def test_a_real_alertmanager_post_parses() -> None:
    parsed = parse(CAPTURED)
    assert parsed.receiver == "incidentops"
    assert parsed.group_key == '{}:{alertname="HighErrorRate"}'
    assert parsed.alerts[0].fingerprint == "8c1b6b1e44c3ef2a"
    assert parsed.alerts[0].starts_at.microsecond == 123456, "nanoseconds are cut to microseconds"
    assert parsed.alerts[0].ends_at is not None and parsed.alerts[0].ends_at.year == 1


def test_optional_fields_default() -> None:
    minimal = {
        "version": "4",
        "groupKey": "g",
        "status": "firing",
        "receiver": "r",
        "alerts": [{"status": "firing", "labels": {}, "startsAt": "2025-01-31T14:00:00Z", "fingerprint": "f"}],
    }
    parsed = parse(body(minimal))
    assert parsed.truncated_alerts == 0 and parsed.common_labels == {} and parsed.alerts[0].annotations == {}


def test_unknown_keys_are_ignored() -> None:
    value = payload()
    value["somethingNew"] = {"x": 1}
    value["alerts"][0]["silencedBy"] = []
    assert parse(body(value)).version == "4"


@pytest.mark.parametrize(
    ("raw", "status", "field", "words"),
    [
        (b"", 400, None, "not valid JSON"),
        (b"{", 400, None, "not valid JSON"),
        (b"\xff\xfe{}", 400, None, "not valid JSON"),
        (b"[]", 422, "(body)", "must be a JSON object"),
        (body({**payload(), "version": "3"}), 422, "version", "version 4"),
        (body({**payload(), "version": 4}), 422, "version", "version 4"),
        (body({k: v for k, v in payload().items() if k != "groupKey"}), 422, "groupKey", "Field required"),
        (body({**payload(), "status": "pending"}), 422, "status", "'firing' or 'resolved'"),
        (body({**payload(), "truncatedAlerts": "1"}), 422, "truncatedAlerts", "valid integer"),
        (body({**payload(), "truncatedAlerts": -1}), 422, "truncatedAlerts", "greater than or equal to 0"),
        (body({**payload(), "truncatedAlerts": 2**63}), 422, "truncatedAlerts", "less than or equal to"),
        (body({**payload(), "alerts": []}), 422, "alerts", "at least 1 item"),
        (body({**payload(), "alerts": {}}), 422, "alerts", "valid array"),
        (body({**payload(), "receiver": ""}), 422, "receiver", "at least 1 character"),
        (body({**payload(), "groupKey": "x" * 3000}), 422, "groupKey", "at most 2048"),
    ],
)
def test_bad_payloads_name_the_field(raw: bytes, status: int, field: str | None, words: str) -> None:
    error = error_of(raw)
    assert error.status == status
    assert words in error.message
    if field is not None:
        assert error.errors[0]["field"] == field
        assert error.message.startswith(field) or field == "(body)"


def test_the_largest_truncated_count_the_api_server_keeps_is_accepted() -> None:
    assert parse(body({**payload(), "truncatedAlerts": MAX_TRUNCATED})).truncated_alerts == 2**63 - 1


def test_errors_in_alerts_have_json_paths() -> None:
    value = payload([alert(), alert(pod="b")])
    value["alerts"][1]["labels"]["severity"] = 3
    value["alerts"][1]["startsAt"] = "2025-01-31T14:00:00"  # no time zone
    error = error_of(body(value))
    fields = [e["field"] for e in error.errors]
    assert fields == ["alerts[1].labels.severity", "alerts[1].startsAt"]
    assert error.message.startswith("alerts[1].labels.severity: Input should be a valid string (and 1 more)")
    assert error.to_dict()["errors"] == list(error.errors)


def fields(value: dict[str, Any]) -> list[str]:
    return [e["field"] for e in error_of(body(value)).errors]


def test_absurd_label_sets_are_refused() -> None:
    many = payload([alert(**{f"l{i}": "v" for i in range(MAX_LABELS + 1)})])
    assert "alerts[0].labels" in fields(many)
    assert "commonLabels" in fields(many)
    long_value = payload([alert(x="v" * 5000)])
    assert "alerts[0].labels.x" in fields(long_value)
    long_name = payload([alert(**{"n" * 300: "v"})])
    assert any(f.startswith("alerts[0].labels") for f in fields(long_name))
    empty_name = payload([alert(**{"": "v"})])
    assert any(f.startswith("alerts[0].labels") for f in fields(empty_name))
    annotations = payload([alert(annotations={"description": "d" * 70_000})])
    assert "alerts[0].annotations.description" in fields(annotations)


def test_errors_listed_are_capped_and_carry_no_input() -> None:
    value = payload([alert(pod=str(i)) for i in range(100)])
    for a in value["alerts"]:
        a["status"] = "secret-value-" + a["fingerprint"]
    error = error_of(body(value))
    assert len(error.errors) == 20
    assert "(and 99 more)" in error.message
    assert "secret-value" not in json.dumps(error.to_dict())


def test_thousands_of_alerts_parse_in_one_pass() -> None:
    value = payload(
        [alert(namespace="shop", pod=f"checkout-{i}", instance=f"10.0.{i // 256}.{i % 256}") for i in range(5000)]
    )
    raw = body(value)
    start = time.perf_counter()
    parsed = parse(raw)
    elapsed = time.perf_counter() - start
    assert len(parsed.alerts) == 5000
    assert elapsed < 2.0, f"parsing {len(raw)} bytes took {elapsed:.2f}s"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_payloads())
def test_valid_payloads_parse(value: dict[str, Any]) -> None:
    parsed = parse(body(value))
    assert isinstance(parsed, WebhookPayload)
    assert len(parsed.alerts) == len(value["alerts"])


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), json_values.map(body), mutated_payloads().map(body)))
def test_the_parser_never_fails_otherwise(raw: bytes) -> None:
    try:
        parse(raw)
    except PayloadError as exc:
        assert exc.status in (400, 422)
        assert exc.message


# --- in steps ----------------------------------------------------------------------------------------


def outcome(parser: Any, raw: bytes) -> Any:
    try:
        return parser(raw)
    except PayloadError as exc:
        return (exc.status, exc.message, exc.errors)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        valid_payloads().map(body),
        mutated_payloads().map(body),
        st.binary(max_size=200),
        json_values.map(body),
        # Around the alerts: duplicated keys, odd spacing, trailing text, other orders of keys.
        valid_payloads().map(lambda v: body(v).replace(b'"alerts": ', b'"alerts": [], "alerts":\n ')),
        valid_payloads().map(lambda v: body(v) + b" x"),
        valid_payloads().map(lambda v: json.dumps(v, indent=1, sort_keys=True).encode()),
        st.sampled_from(
            [
                body(payload([alert(), alert(pod="b")])).replace(b"}]", b"},]"),  # trailing commas
                body(payload()).replace(b'"truncatedAlerts"', b'"x": 1,, "truncatedAlerts"'),
                body(payload())[:-1] + b", }",
                body(payload()).replace(b'"alerts": [', b'"alerts": [,'),
                body(payload()).replace(b'"alerts": [', b'"alerts": [NaN, '),
                body(payload()) + body(payload()),
            ]
        ),
    ),
    step=st.integers(1, 3),
)
def test_parsing_in_steps_gives_the_one_pass_answer(raw: bytes, step: int) -> None:
    assert outcome(lambda r: parse_in_steps(r, step), raw) == outcome(parse, raw)


def test_errors_of_later_steps_name_their_alerts_and_are_counted_once() -> None:
    value = payload([alert(pod=str(i)) for i in range(10)], status="pending")
    value["alerts"][1]["labels"]["severity"] = 3
    value["alerts"][7]["startsAt"] = "yesterday"
    error = outcome(lambda r: parse_in_steps(r, 3), body(value))
    assert error == outcome(parse, body(value))
    assert [e["field"] for e in error[2]] == ["status", "alerts[1].labels.severity", "alerts[7].startsAt"]
    assert error[1].endswith("(and 2 more)")
