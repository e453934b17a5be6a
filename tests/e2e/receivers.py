"""Real peers for the e2e tests: HTTP servers standing in for Slack, PagerDuty and a
webhook endpoint, and an SMTP server (aiosmtpd), each keeping a ledger of what it got.

They run in a thread of the test process with an event loop of their own, on
loopback ports (``incidentops.testing.sinks.LoopbackServers``, which ``incidentops dev``'s
sinks run on too), and check every payload against the shape its API documents
(``tests.unit.notify.apischemas``): a malformed payload is answered 400 and
recorded as a problem, so a test sees it.

A test can make a peer misbehave as real ones do: :meth:`Receivers.script`
queues replies for a path (a 503, a 400, a 429 with ``Retry-After``, or a
request accepted and never answered), and ``pagerduty_limit`` makes the
PagerDuty peer enforce a rate limit per routing key as Events v2 does (429
beyond it). Requests answered that way are kept in :attr:`Receivers.refused`,
never in :attr:`Receivers.deliveries`.
"""

from __future__ import annotations

import collections
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from incidentops.testing.sinks import LoopbackServers, parse_email, plain_body
from tests.unit.notify.apischemas import check_pagerduty_event, check_slack_message, check_webhook_payload


@dataclass
class Delivery:
    kind: str  # slack | pagerduty | webhook | email
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.time() when received
    problems: list[str] = field(default_factory=list)
    status: int = 200  # what it was answered (for the refused ones)


@dataclass(frozen=True)
class Reply:
    """A scripted answer: a status, a text, headers; or ``hang``: accept the request and never answer."""

    status: int = 503
    text: str = "try again"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class _SmtpHandler:
    def __init__(self, receivers: Receivers) -> None:
        self.receivers = receivers

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = parse_email(envelope.content)
        self.receivers._record(
            Delivery(
                kind="email",
                path=",".join(envelope.rcpt_tos),
                headers={k: str(v) for k, v in message.items()},
                body=plain_body(message),
                at=time.time(),
            )
        )
        return "250 OK"


class Receivers:
    def __init__(self, *, pagerduty_limit: tuple[int, float] | None = None) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.refused: list[Delivery] = []  # answered by a script or a rate limit
        self._scripts: dict[str, list[Reply]] = {}
        # (events, seconds) per routing key, as PagerDuty enforces it; None: no limit.
        self.pagerduty_limit = pagerduty_limit
        self._pagerduty_window: dict[str, collections.deque[float]] = {}
        self._servers: LoopbackServers | None = None
        self.port = 0
        self.smtp_port = 0
        self.fail_next: dict[str, int] = {}  # kind -> how many requests to answer 503

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/{hook:.*}", self._slack)
        app.router.add_post("/pagerduty/v2/enqueue", self._pagerduty)
        app.router.add_post("/webhook/{name}", self._webhook)
        self._servers = LoopbackServers(app, _SmtpHandler(self), name="receivers")
        self._servers.start()
        self.port, self.smtp_port = self._servers.port, self._servers.smtp_port

    def stop(self) -> None:
        if self._servers:
            self._servers.stop()

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

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` (e.g. ``/webhook/flaky``) with ``replies``, in order."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(replies)

    def _scripted(self, path: str) -> Reply | None:
        with self._lock:
            replies = self._scripts.get(path)
            return replies.pop(0) if replies else None

    def _over_limit(self, routing_key: str) -> float | None:
        """Seconds to wait when this event would exceed the PagerDuty peer's limit, else None (and counted)."""
        if self.pagerduty_limit is None:
            return None
        events, seconds = self.pagerduty_limit
        now = time.monotonic()
        with self._lock:
            window = self._pagerduty_window.setdefault(routing_key, collections.deque())
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) >= events:
                return window[0] + seconds - now
            window.append(now)
        return None

    async def _refuse(self, delivery: Delivery, reply: Reply) -> web.Response:
        delivery.status = reply.status
        with self._lock:
            self.refused.append(delivery)
        stopping = self._servers.stopping if self._servers else None
        if reply.hang and stopping is not None:
            await stopping.wait()
        return web.Response(status=reply.status, text=reply.text, headers=reply.headers)

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
        scripted = self._scripted(request.path)
        if scripted is not None:
            return delivery, await self._refuse(delivery, scripted)
        if kind == "pagerduty" and isinstance(body, dict):
            wait = self._over_limit(str(body.get("routing_key")))
            if wait is not None:
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                return delivery, await self._refuse(delivery, Reply(429, "Too Many Requests", headers))
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

    def of(self, kind: str | None = None, *, incident: str | None = None, refused: bool = False) -> list[Delivery]:
        """What was delivered (or, with ``refused``, answered by a script or the rate limit)."""
        with self._lock:
            found = [d for d in (self.refused if refused else self.deliveries) if kind is None or d.kind == kind]
        if incident is not None:
            found = [d for d in found if incident in json.dumps(d.body) or incident in json.dumps(d.headers)]
        return found

    def keys(self, kind: str | None = None, *, incident: str | None = None) -> list[str]:
        """Idempotency keys of the deliveries, in arrival order (duplicates kept)."""
        out = []
        for d in self.of(kind, incident=incident):
            key = d.headers.get("Idempotency-Key") or d.headers.get("X-Incidentops-Key")
            if key is None and isinstance(d.body, dict):
                # A webhook's body has it; a PagerDuty trigger in its custom details.
                key = d.body.get("key") or ((d.body.get("payload") or {}).get("custom_details") or {}).get("key")
            if key:
                out.append(key)
        return out
