"""Real peers for the e2e tests: HTTP servers standing in for Slack, PagerDuty and a
webhook endpoint, and an SMTP server (aiosmtpd), each keeping a ledger of what it got.

They run in a thread of the test process with an event loop of their own, on
loopback ports, and check every payload against the shape its API documents
(``tests.unit.notify.apischemas``): a malformed payload is answered 400 and
recorded as a problem, so a test sees it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from incidentops.testing.controlplane import free_port
from tests.unit.notify.apischemas import check_pagerduty_event, check_slack_message, check_webhook_payload


@dataclass
class Delivery:
    kind: str  # slack | pagerduty | webhook | email
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() when received
    problems: list[str] = field(default_factory=list)


class _SmtpHandler:
    def __init__(self, receivers: Receivers) -> None:
        self.receivers = receivers

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        self.receivers._record(
            Delivery(
                kind="email",
                path=",".join(envelope.rcpt_tos),
                headers={k: str(v) for k, v in message.items()},
                body=body.get_content() if body is not None else "",
                at=time.time(),
            )
        )
        return "250 OK"


class Receivers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self.port = 0
        self._smtp: Controller | None = None
        self.smtp_port = 0
        self.fail_next: dict[str, int] = {}  # kind -> how many requests to answer 503

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="receivers", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the HTTP receivers did not start")
        # aiosmtpd probes its own port after starting, so it needs a real one, not 0.
        self.smtp_port = free_port()
        self._smtp = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()

    def stop(self) -> None:
        if self._smtp:
            self._smtp.stop()
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/slack/{hook:.*}", self._slack)
        app.router.add_post("/pagerduty/v2/enqueue", self._pagerduty)
        app.router.add_post("/webhook/{name}", self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- handlers --------------------------------------------------------------------------

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)

    def _should_fail(self, kind: str) -> bool:
        with self._lock:
            left = self.fail_next.get(kind, 0)
            if left:
                self.fail_next[kind] = left - 1
            return bool(left)

    async def _receive(self, kind: str, request: web.Request, check: Any) -> tuple[Delivery, web.Response | None]:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        delivery = Delivery(kind, request.path, dict(request.headers), body, time.time())
        delivery.problems = check(body) if isinstance(body, dict) else ["body is not a JSON object"]
        if self._should_fail(kind):
            return delivery, web.Response(status=503, text="try again")
        self._record(delivery)
        if delivery.problems:
            return delivery, web.json_response({"status": "invalid", "errors": delivery.problems}, status=400)
        return delivery, None

    async def _slack(self, request: web.Request) -> web.Response:
        _, refusal = await self._receive("slack", request, check_slack_message)
        return refusal or web.Response(text="ok")

    async def _pagerduty(self, request: web.Request) -> web.Response:
        delivery, refusal = await self._receive("pagerduty", request, check_pagerduty_event)
        if refusal:
            return refusal
        dedup = delivery.body.get("dedup_key", "")
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202)

    async def _webhook(self, request: web.Request) -> web.Response:
        _, refusal = await self._receive("webhook", request, check_webhook_payload)
        return refusal or web.json_response({"ok": True})

    # -- queries ---------------------------------------------------------------------------

    def of(self, kind: str | None = None, *, incident: str | None = None) -> list[Delivery]:
        with self._lock:
            found = [d for d in self.deliveries if kind is None or d.kind == kind]
        if incident is not None:
            found = [d for d in found if incident in json.dumps(d.body) or incident in json.dumps(d.headers)]
        return found

    def keys(self, kind: str | None = None, *, incident: str | None = None) -> list[str]:
        """Idempotency keys of the deliveries, in arrival order (duplicates kept)."""
        out = []
        for d in self.of(kind, incident=incident):
            key = d.headers.get("Idempotency-Key") or d.headers.get("X-Incidentops-Key")
            if key is None and isinstance(d.body, dict):
                key = d.body.get("key")
            if key:
                out.append(key)
        return out
