"""`incidentops dev`'s sinks: the examples pointed at them, every channel's message parsed and printed.

The channels are the real ones (``notify.build_channel`` from the rewritten example
policies and Secrets), sending over loopback sockets to the real sinks.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incidentops.api.policy import EscalationPolicy
from incidentops.cli import _load_yaml_docs, _start_sinks
from incidentops.notify import build_channel
from incidentops.notify.pagerduty import pagerduty_event
from incidentops.notify.templates import render
from incidentops.notify.webhook import WebhookChannel
from incidentops.testing.sinks import (
    Routes,
    SinkMessage,
    Sinks,
    format_line,
    parse_pagerduty,
    parse_slack,
    point_at_sinks,
)
from tests.unit.notify.conftest import fast_retry, make_incident, make_notification

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NOWHERE = ("example.invalid", "example.com/", "smtp.example.com")


def example_docs() -> list[dict[str, Any]]:
    return _load_yaml_docs(EXAMPLES / "secrets", EXAMPLES / "policies")


class Collected:
    def __init__(self) -> None:
        self.messages: list[SinkMessage] = []
        self.arrived = threading.Condition()

    def __call__(self, message: SinkMessage) -> None:
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def sinks(collected: Collected) -> Iterator[Sinks]:
    s = Sinks(collected)
    s.start()
    yield s
    s.stop()


def secrets_of(docs: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """What the operator reads for a policy of ``namespace``: ``"<secret>/<key>" -> value``."""
    out: dict[str, str] = {}
    for doc in docs:
        if doc.get("kind") == "Secret" and doc["metadata"]["namespace"] == namespace:
            for key, value in (doc.get("stringData") or {}).items():
                out[f"{doc['metadata']['name']}/{key}"] = value
            for key, value in (doc.get("data") or {}).items():
                out[f"{doc['metadata']['name']}/{key}"] = base64.b64decode(value).decode()
    return out


def test_the_examples_are_pointed_at_the_sinks_and_the_files_left_alone() -> None:
    docs = example_docs()
    before = copy.deepcopy(docs)
    out, routes = point_at_sinks(docs, "http://127.0.0.1:8999", 2525)
    assert docs == before, "the documents given are not changed"
    assert any(host in json.dumps(before) for host in NOWHERE), "the examples name hosts that do not exist"
    policies = [d for d in out if d["kind"] == "EscalationPolicy"]
    assert {p["metadata"]["name"] for p in policies} == {"default", "payments"}
    for doc in out:
        if doc["kind"] == "EscalationPolicy":
            EscalationPolicy.model_validate(doc)  # still a valid policy
            for channel in doc["spec"]["channels"]:
                text = json.dumps(channel)
                assert not any(host in text for host in NOWHERE), text
                if "email" in channel:
                    assert channel["email"]["smtp"] == {"host": "127.0.0.1", "port": 2525, "starttls": False}
    values = {k: v for ns in ("incidentops", "payments") for k, v in secrets_of(out, ns).items()}
    assert not any(host in v for v in values.values() for host in NOWHERE), values
    # Credentials stay where they are; only the URLs move.
    assert values["incidentops-pagerduty/routing-key"] == "FAKE00000000000000000000000000000"
    assert (
        values["incidentops-slack/webhook-url"]
        == "http://127.0.0.1:8999/slack/incidentops/incidentops-slack/webhook-url"
    )
    assert routes.http["/webhook/payments/finance-webhook"].hmac_key == "fake-payments-hmac-key"
    assert routes.http["/webhook/incidentops/incidentops-webhook/url"].hmac_key == "fake-hmac-key-do-not-use"
    assert routes.email[frozenset({"team-leads@example.com"})].label == "incidentops/email-leads"


async def test_every_example_channel_is_printed_with_its_channel_event_level_and_incident(
    sinks: Sinks, collected: Collected
) -> None:
    out, sinks.routes = point_at_sinks(example_docs(), sinks.base_url, sinks.smtp_port)
    incident = make_incident(name="checkout-down", namespace="payments")
    expected: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as session:
        for doc in (d for d in out if d["kind"] == "EscalationPolicy"):
            ns = doc["metadata"]["namespace"]
            for spec in EscalationPolicy.model_validate(doc).spec.channels:
                channel = build_channel(spec, secrets_of(out, ns), session=session, retry=fast_retry())
                n = make_notification(incident=incident, channel=spec.name, level_name="primary")
                outcome = await channel.send(n)
                assert outcome.delivered, (spec.name, outcome.reason)
                expected.append((f"{ns}/{spec.name}", spec.name))
    with collected.arrived:
        assert collected.arrived.wait_for(lambda: len(collected.messages) == len(expected), timeout=10)
    got = {m.channel: m for m in collected.messages}
    assert sorted(got) == sorted(label for label, _ in expected)
    subject = render("triggered", make_notification(incident=incident)).subject
    for label, message in got.items():
        assert message.problem is None, message
        assert (message.event, message.incident) == ("triggered", "payments/checkout-down"), message
        if "pagerduty" in label:
            assert message.headline == "[P1] Checkout returns 5xx"
        else:
            assert message.headline == subject
        line = format_line(message)
        assert line.startswith(f"page  {label}  triggered  ") and "  payments/checkout-down  " in line
    assert got["payments/payments-slack"].level == "primary"
    assert got["incidentops/email-leads"].level is None  # a mail does not say its level in a header


async def test_a_webhook_with_a_bad_signature_is_refused_and_shown(sinks: Sinks, collected: Collected) -> None:
    _, sinks.routes = point_at_sinks(example_docs(), sinks.base_url, sinks.smtp_port)
    url = sinks.base_url + "/webhook/payments/finance-webhook"
    async with aiohttp.ClientSession() as session:
        forged = WebhookChannel(url=url, session=session, hmac_secret="not-the-key", retry=fast_retry())
        outcome = await forged.send(make_notification())
        unsigned = WebhookChannel(url=url, session=session, retry=fast_retry())
        outcome_unsigned = await unsigned.send(make_notification())
        signed = WebhookChannel(url=url, session=session, hmac_secret="fake-payments-hmac-key", retry=fast_retry())
        outcome_signed = await signed.send(make_notification())
    assert (outcome.delivered, outcome.status_code) == (False, 401)
    assert (outcome_unsigned.delivered, outcome_unsigned.status_code) == (False, 401)
    assert outcome_signed.delivered
    problems = [m.problem for m in collected.messages]
    assert problems == ["bad HMAC signature: refused with 401"] * 2 + [None]
    assert format_line(collected.messages[0]).endswith("(bad HMAC signature: refused with 401)")


async def test_a_body_that_is_not_json_is_refused(sinks: Sinks, collected: Collected) -> None:
    async with aiohttp.ClientSession() as session, session.post(sinks.base_url + "/slack/x/y", data=b"<html>") as r:
        assert r.status == 400
    (message,) = collected.messages
    assert message.channel == "slack:/slack/x/y" and message.problem == "the body is not a JSON object"


def test_format_line() -> None:
    message = SinkMessage("payments/payments-slack", "triggered", "primary", "payments/checkout-down", "[P1]  a\ttitle")
    assert (
        format_line(message)
        == "page  payments/payments-slack  triggered  level primary  payments/checkout-down  [P1] a title"
    )
    assert format_line(SinkMessage("c", "resolved", None, "ns/i", "")) == "page  c  resolved  -  ns/i  -"


def test_pagerduty_acknowledge_and_resolve_name_the_alert() -> None:
    n = make_notification("acknowledged")
    body = pagerduty_event(n, "FAKEKEY")
    assert body is not None
    message = parse_pagerduty("ns/pd", body)
    assert (message.event, message.incident, message.headline) == (
        "acknowledge",
        f"incidentops/{n.incident.uid}/1",
        "(acknowledge the alert)",
    )


def test_slack_without_the_blocks_still_prints() -> None:
    message = parse_slack("ns/slack", {"text": "hello\nworld"})
    assert (message.event, message.level, message.incident, message.headline) == ("?", None, "?", "hello")


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    message = SinkMessage("c", "triggered", None, "ns/i", "x")
    for quiet in (False, True):
        s = _start_sinks(quiet=quiet, verbose=False)
        try:
            s.routes = Routes()
            s.received(message)
        finally:
            s.stop()
    assert capsys.readouterr().out == format_line(message) + "\n"
