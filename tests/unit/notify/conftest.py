"""Fixtures for the notify tests: sample notifications, a local HTTP peer, a local SMTP peer.

The peers are real servers on 127.0.0.1 (an aiohttp application standing in
for Slack, PagerDuty and a webhook receiver; aiosmtpd for SMTP): the channels
are exercised through real sockets, nothing in the HTTP or SMTP layer is mocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from incidentops.notify.base import IncidentRef, Notification
from incidentops.notify.retry import RetryPolicy
from incidentops.testing.controlplane import free_port

T0 = datetime(2025, 1, 31, 14, 0, tzinfo=UTC)


def make_incident(**overrides: Any) -> IncidentRef:
    values: dict[str, Any] = {
        "name": "checkout-5f3a9c",
        "namespace": "shop",
        "uid": "3f1c2a9e-1b2c-4d5e-8f90-123456789abc",
        "title": "Checkout returns 5xx",
        "severity": "P1",
        "phase": "Triggered",
        "episode": 1,
        "type": "availability",
        "description": "Error rate on /checkout above 20% for 5 minutes.",
        "drill": False,
        "started_at": T0,
        "acknowledged_by": None,
        "summary": None,
        "root_cause": None,
        "url": "https://incidents.example.com/shop/checkout-5f3a9c",
    }
    values.update(overrides)
    return IncidentRef(**values)


def make_notification(
    event: str = "triggered", *, incident: IncidentRef | None = None, **overrides: Any
) -> Notification:
    values: dict[str, Any] = {
        "key": f"k-{event}-0123456789abcdef",
        "event": event,
        "channel": "oncall",
        "incident": incident or make_incident(),
        "level": 0,
        "level_name": "on-call",
        "at": T0 + timedelta(minutes=20),
        "details": {},
    }
    values.update(overrides)
    return Notification(**values)


#: Details as the scheduler would give them for each event.
EVENT_DETAILS: dict[str, dict[str, Any]] = {
    "triggered": {
        "impact": "checkout unavailable for all users",
        "update_every": "15m",
        "next_update_by": T0 + timedelta(minutes=15),
    },
    "escalated": {"after": "15m", "until": "acknowledged"},
    "update-due": {"next_update_by": T0 + timedelta(minutes=15), "update_every": "15m"},
    "sla-breached": {"breach": "acknowledge", "deadline": T0 + timedelta(minutes=15)},
    "status-update": {"author": "alice", "next_update_by": T0 + timedelta(minutes=35)},
    "acknowledged": {"commander": "alice"},
    "resolved": {"resolved_at": T0 + timedelta(hours=1, minutes=5), "postmortem_due": T0 + timedelta(hours=49)},
    "action": {
        "action": "rollback-checkout",
        "action_type": "rollback",
        "action_phase": "Failed",
        "action_reason": "RollbackFailed",
        "action_message": "ReplicaSet checkout-7d9 has timed out progressing",
        "action_target": "Deployment payments/checkout",
    },
    "postmortem-due": {"postmortem_due": T0 + timedelta(hours=49), "postmortem_ref": "incidentops-postmortem-0123"},
}


def fast_retry(**overrides: Any) -> RetryPolicy:
    values: dict[str, Any] = {
        "attempts": 4,
        "initial_delay": 0.001,
        "max_delay": 0.005,
        "jitter": 0.0,
        "max_retry_after": 0.01,
        "timeout": 2.0,
    }
    values.update(overrides)
    return RetryPolicy(**values)


class RecordingSleep:
    """A ``RetryPolicy.sleep`` that records the delays asked for and does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


# --- a local HTTP peer ----------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (a timeout)
    echo: bool = False  # the worst receiver: its error page repeats the URL, the headers and the body


Validator = Callable[[Any], list[str]]


class HttpPeer:
    """A scriptable HTTP server: records every request, validates its JSON, answers from a script.

    ``validators[path]`` returns the payload's problems; a request with problems
    gets a 400 (as the real API would), and the problems are kept in ``errors``.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.errors: list[str] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.validators: dict[str, Validator] = {}
        self.server: TestServer | None = None
        self._hung = asyncio.Event()

    def script(self, path: str, *replies: Reply, default: Reply | None = None) -> None:
        self.scripts[path] = list(replies)
        if default is not None:
            self.defaults[path] = default

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.path, dict(request.headers), body)
        self.requests.append(received)
        validator = self.validators.get(request.path)
        if validator is not None:
            try:
                problems = validator(json.loads(body))
            except ValueError as exc:
                problems = [f"not JSON: {exc}"]
            if problems:
                self.errors.extend(problems)
                return web.Response(status=400, text="invalid payload: " + "; ".join(problems))
        queue = self.scripts.get(request.path)
        reply = queue.pop(0) if queue else self.defaults.get(request.path, Reply())
        if reply.hang:
            await self._hung.wait()
        text = reply.body
        if reply.echo:
            text = f"{reply.body} {request.url} {dict(request.headers)} {body.decode()}"
        return web.Response(status=reply.status, text=text, headers=reply.headers)


@pytest.fixture
async def http_peer() -> AsyncIterator[HttpPeer]:
    peer = HttpPeer()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", peer.handle)
    # No access log: it would print request paths, and a Slack path is a credential.
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(access_log=None)
    peer.server = server
    try:
        yield peer
    finally:
        peer._hung.set()
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def closed_port_url(path: str = "/") -> str:
    """A URL nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}{path}"


# --- a local SMTP peer ----------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class SmtpHandler:
    """aiosmtpd handler: keeps accepted mail, refuses scripted recipients, fails scripted DATA."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply
        self.data_replies: list[str] = []  # replies to DATA before accepting, e.g. "451 4.3.0 try again"

    def reset(self) -> None:
        self.mails.clear()
        self.refuse.clear()
        self.data_replies.clear()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or b""
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class SmtpPeer:
    host: str
    port: int
    handler: SmtpHandler


@pytest.fixture(scope="module")
def _smtp_server() -> Iterator[SmtpPeer]:
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpPeer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp_peer(_smtp_server: SmtpPeer) -> Iterator[SmtpPeer]:
    _smtp_server.handler.reset()
    yield _smtp_server
    _smtp_server.handler.reset()
