"""Local sinks for ``incidentops dev``: where the example policies' pages go, and a line per page.

The example policies in ``examples/`` name hosts that do not exist, as the
files people copy should. ``dev`` applies them through :func:`point_at_sinks`,
which returns copies whose channels point at the :class:`Sinks` of this
process instead (the files are left as they are):

- Slack webhook and webhook URLs held in Secrets: the Secret's value becomes
  ``http://127.0.0.1:<port>/slack|webhook/<namespace>/<channel>``;
- PagerDuty (``pagerduty.url``) and inline webhook URLs: the policy's field;
- e-mail: the SMTP server becomes the sink's, in clear on loopback, so
  ``starttls`` is off and the login dropped (the channel refuses a password
  without STARTTLS, and there is nothing to protect on loopback).

The routing keys, HMAC keys and the SMTP Secret stay in Secrets, unchanged. A
webhook's HMAC signature is checked with the key the example Secret holds; a
bad one is answered 401 and shown.

Each message received is printed as one line: the channel, the event, the
level, the incident and the message's headline (the subject, Slack's text,
PagerDuty's summary)::

    page  payments/payments-slack  triggered  level primary  payments/checkout-down  [P1] Incident: ...

:class:`LoopbackServers` (an aiohttp application and an aiosmtpd server, in a
thread of their own on loopback ports) is also what the e2e tests' receivers run on.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import email
import email.message
import email.policy
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from incidentops.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from incidentops.testing.controlplane import free_port

__all__ = [
    "LoopbackServers",
    "Route",
    "Routes",
    "SinkMessage",
    "Sinks",
    "format_line",
    "parse_email",
    "parse_pagerduty",
    "parse_slack",
    "parse_webhook",
    "point_at_sinks",
]


# -- the servers ------------------------------------------------------------------------------


class LoopbackServers:
    """An aiohttp application and, given a handler, an aiosmtpd server, on loopback ports.

    They run in a daemon thread with an event loop of their own, so the caller's
    loop (the operator's, a test's) is not involved. ``stopping`` is set, in that
    loop, when :meth:`stop` begins: requests held open can wait on it.
    """

    def __init__(self, app: web.Application, smtp_handler: Any = None, *, name: str = "sinks") -> None:
        self._app = app
        self._smtp_handler = smtp_handler
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._smtp: Any = None
        self.stopping: asyncio.Event | None = None
        self.port = 0
        self.smtp_port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self._name}' HTTP server did not start")
        if self._smtp_handler is not None:
            # aiosmtpd is imported only here: the operator's runtime never needs it.
            try:
                from aiosmtpd.controller import Controller
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise RuntimeError("the SMTP sink needs aiosmtpd: pip install 'incidentops[dev]'") from exc

            # aiosmtpd probes its own port after starting, so it needs a real one, not 0.
            self.smtp_port = free_port()
            self._smtp = Controller(self._smtp_handler, hostname="127.0.0.1", port=self.smtp_port)
            self._smtp.start()

    def stop(self) -> None:
        if self._smtp:
            self._smtp.stop()
            self._smtp = None
        if self._loop and self.stopping:
            self._loop.call_soon_threadsafe(self.stopping.set)  # held requests end
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self.stopping = asyncio.Event()
        self._runner = web.AppRunner(self._app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()


def parse_email(content: bytes) -> email.message.EmailMessage:
    """An SMTP envelope's content as a message (``get_body``, headers as strings)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def plain_body(message: email.message.EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


# -- what a message says ---------------------------------------------------------------------


@dataclass(frozen=True)
class SinkMessage:
    channel: str
    event: str
    level: str | None
    incident: str
    headline: str
    problem: str | None = None  # a bad signature, a body that is not what the channel sends


def format_line(message: SinkMessage) -> str:
    """One console line for a page."""
    parts = [
        "page",
        message.channel,
        message.event,
        f"level {message.level}" if message.level else "-",
        message.incident,
        " ".join(message.headline.split()) or "-",
    ]
    line = "  ".join(parts)
    return f"{line}  ({message.problem})" if message.problem else line


def _first_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def parse_webhook(channel: str, body: Mapping[str, Any]) -> SinkMessage:
    incident = body.get("incident") or {}
    return SinkMessage(
        channel=channel,
        event=str(body.get("event", "?")),
        level=body.get("levelName") or (str(body["level"]) if body.get("level") is not None else None),
        incident=(
            f"policy {body.get('policy', '?')}"  # a policy's report, about no one incident
            if body.get("event") == "report"
            else f"{incident.get('namespace', '?')}/{incident.get('name', '?')}"
        ),
        headline=_first_line(body.get("subject") or body.get("message")),
    )


def parse_slack(channel: str, body: Mapping[str, Any]) -> SinkMessage:
    fields: dict[str, str] = {}
    incident = "?"
    for block in body.get("blocks") or []:
        for item in block.get("fields") or []:
            label, _, value = str(item.get("text", "")).partition("\n")
            fields[label.strip("*")] = value
        if block.get("type") == "context":
            for element in block.get("elements") or []:
                text = str(element.get("text", ""))
                if " \u00b7 episode " in text:  # "namespace/name · episode N"
                    incident = text.partition(" \u00b7 ")[0]
    return SinkMessage(
        channel=channel,
        event=fields.get("Event", "?"),
        level=fields.get("Escalation level"),
        incident=incident,
        headline=_first_line(body.get("text")),
    )


def parse_pagerduty(channel: str, body: Mapping[str, Any]) -> SinkMessage:
    payload = body.get("payload") or {}
    details = payload.get("custom_details") or {}
    action = str(body.get("event_action", "?"))
    if not payload:  # acknowledge and resolve carry only the dedup key: incidentops/<uid>/<episode>
        return SinkMessage(channel, action, None, str(body.get("dedup_key", "?")), f"({action} the alert)")
    return SinkMessage(
        channel=channel,
        event=str(details.get("event", action)),
        level=details.get("levelName"),
        incident=str(details.get("incident", "?")),
        headline=_first_line(payload.get("summary")),
    )


def parse_mail(channel: str, message: email.message.EmailMessage) -> SinkMessage:
    return SinkMessage(
        channel=channel,
        event=str(message.get("X-Incidentops-Event", "?")),
        level=None,
        incident=str(message.get("X-Incidentops-Incident", "?")),
        headline=_first_line(message.get("Subject")),
    )


# -- pointing the examples at the sinks --------------------------------------------------------


@dataclass
class Route:
    """Where one path (or one set of mail recipients) of the sinks comes from."""

    kind: str  # slack | pagerduty | webhook | email
    channels: list[str]  # "namespace/channel" of every policy channel sending there
    hmac_key: str | None = None

    @property
    def label(self) -> str:
        return ",".join(self.channels)


@dataclass
class Routes:
    http: dict[str, Route] = field(default_factory=dict)  # path -> route
    email: dict[frozenset[str], Route] = field(default_factory=dict)  # recipients -> route


def _secret_value(secrets: Mapping[tuple[str, str], dict[str, Any]], ns: str, ref: Mapping[str, Any]) -> str | None:
    doc = secrets.get((ns, ref["name"]))
    if doc is None:
        return None
    if ref["key"] in (doc.get("stringData") or {}):
        return str(doc["stringData"][ref["key"]])
    if ref["key"] in (doc.get("data") or {}):
        return base64.b64decode(doc["data"][ref["key"]]).decode()
    return None


def _set_secret(doc: dict[str, Any], key: str, value: str) -> None:
    (doc.get("data") or {}).pop(key, None)
    doc.setdefault("stringData", {})[key] = value


def point_at_sinks(
    docs: Iterable[Mapping[str, Any]], base_url: str, smtp_port: int, smtp_host: str = "127.0.0.1"
) -> tuple[list[dict[str, Any]], Routes]:
    """Copies of ``docs`` (Secrets, EscalationPolicies, anything) whose channels send to the sinks.

    Returns the documents to apply and the routes the sinks need to name each
    message's channel and to check webhook signatures.
    """
    out = [copy.deepcopy(dict(doc)) for doc in docs if doc]
    secrets = {
        (d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d for d in out if d.get("kind") == "Secret"
    }
    routes = Routes()

    def route(path: str, kind: str, channel: str) -> str:
        routes.http.setdefault(path, Route(kind, [])).channels.append(channel)
        return base_url + path

    for policy in (d for d in out if d.get("kind") == "EscalationPolicy"):
        ns = policy["metadata"].get("namespace", "default")
        for ch in policy.get("spec", {}).get("channels") or []:
            label = f"{ns}/{ch['name']}"
            if "slack" in ch:
                ref = ch["slack"]["webhookSecretRef"]
                path = f"/slack/{ns}/{ref['name']}/{ref['key']}"
                url = route(path, "slack", label)
                if (ns, ref["name"]) in secrets:
                    _set_secret(secrets[(ns, ref["name"])], ref["key"], url)
            elif "pagerduty" in ch:
                ch["pagerduty"]["url"] = route(f"/pagerduty/{ns}/{ch['name']}/v2/enqueue", "pagerduty", label)
            elif "webhook" in ch:
                hook = ch["webhook"]
                if "urlSecretRef" in hook:
                    ref = hook["urlSecretRef"]
                    path = f"/webhook/{ns}/{ref['name']}/{ref['key']}"
                    url = route(path, "webhook", label)
                    if (ns, ref["name"]) in secrets:
                        _set_secret(secrets[(ns, ref["name"])], ref["key"], url)
                else:
                    path = f"/webhook/{ns}/{ch['name']}"
                    hook["url"] = route(path, "webhook", label)
                if "hmacSecretRef" in hook:
                    routes.http[path].hmac_key = _secret_value(secrets, ns, hook["hmacSecretRef"])
            elif "email" in ch:
                smtp = ch["email"]["smtp"]
                smtp.update(host=smtp_host, port=smtp_port, starttls=False)
                smtp.pop("credentialsSecretRef", None)
                rcpts = frozenset(address.lower() for address in ch["email"]["to"])
                routes.email.setdefault(rcpts, Route("email", [])).channels.append(label)
    return out, routes


# -- the sinks --------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[str, Mapping[str, Any]], SinkMessage]] = {
    "slack": parse_slack,
    "pagerduty": parse_pagerduty,
    "webhook": parse_webhook,
}


class _SmtpHandler:
    def __init__(self, sinks: Sinks) -> None:
        self.sinks = sinks

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = parse_email(envelope.content)
        rcpts = frozenset(str(r).lower() for r in envelope.rcpt_tos)
        found = self.sinks.routes.email.get(rcpts)
        self.sinks.received(parse_mail(found.label if found else "email:" + ",".join(sorted(rcpts)), message))
        return "250 OK"


class Sinks:
    """The HTTP and SMTP sinks; ``on_message`` is called (in their thread) with every message."""

    def __init__(self, on_message: Callable[[SinkMessage], None], routes: Routes | None = None) -> None:
        self.on_message = on_message
        self.routes = routes or Routes()
        app = web.Application()
        app.router.add_post("/{kind:slack|pagerduty|webhook}/{rest:.*}", self._http)
        self._servers = LoopbackServers(app, _SmtpHandler(self), name="sinks")

    @property
    def base_url(self) -> str:
        return self._servers.base_url

    @property
    def smtp_port(self) -> int:
        return self._servers.smtp_port

    def start(self) -> None:
        self._servers.start()

    def stop(self) -> None:
        self._servers.stop()

    def received(self, message: SinkMessage) -> None:
        self.on_message(message)

    async def _http(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        found = self.routes.http.get(request.path)
        channel = found.label if found else f"{kind}:{request.path}"
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.received(SinkMessage(channel, "?", None, "?", "", problem="the body is not a JSON object"))
            return web.json_response({"status": "invalid", "errors": ["not a JSON object"]}, status=400)
        message = _PARSERS[kind](channel, body)
        if found is not None and found.hmac_key is not None:
            signed = verify_signature(
                found.hmac_key, raw, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
            )
            if not signed:
                self.received(SinkMessage(**{**message.__dict__, "problem": "bad HMAC signature: refused with 401"}))
                return web.json_response({"ok": False, "error": "bad signature"}, status=401)
        self.received(message)
        if kind == "pagerduty":
            answer = {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key", "")}
            return web.json_response(answer, status=202)
        if kind == "slack":
            return web.Response(text="ok")
        return web.json_response({"ok": True})
