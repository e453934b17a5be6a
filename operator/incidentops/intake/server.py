"""The HTTP side of the receiver: aiohttp, in the operator's event loop, on every replica.

Where it sits: ``handlers.runtime`` runs :func:`run_receiver` as one of the
operator's tasks. It answers Alertmanager's webhook and hands every valid POST
to the writer (``writer.py``); its answers follow what Alertmanager does with
them (it retries 5xx until ``group_interval`` runs out, never 4xx):

=================================  =====================================================
``POST /api/v1/alerts``            200 once the Incident is written (JSON: which, created?)
no or a non-Bearer Authorization   401 with ``WWW-Authenticate: Bearer``
a token that matches neither       401 with ``WWW-Authenticate: Bearer error="invalid_token"``
Content-Type not application/json  415
body larger than the limit         413 (before reading it when Content-Length says so)
not JSON                           400
not a version 4 payload            422, naming the field (``alerts[3].labels``)
the API server fails               503 (Alertmanager retries)
no token file readable             503 (the receiver's fault, not the sender's)
``GET /healthz``                   200 while the process serves
``GET /readyz``                    200 when a token is readable and the API answers, else 503
unknown path / wrong method        404 / 405 (with ``Allow``)
=================================  =====================================================

Every answer is a JSON object; errors carry ``error`` with a message for
people. No exception escapes a request: anything unexpected is logged and
answered 500 (and the receiver keeps serving). A body above 256 KiB is
parsed in steps on a thread (``payload.parse_in_steps``), so the loop it
shares with the leader election keeps running meanwhile.

Every answer is counted in ``incidentops_receiver_request_duration_seconds``
by route and status code (the outermost middleware, so aiohttp's own 404s and
405s and the 500s of the error middleware count too). ``/readyz`` asks
:class:`~incidentops.intake.probes.ApiCheck` whether the API server answers
(at most one request every few seconds); ``/healthz`` asks nothing: its answer
only shows that the event loop runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import hdrs, web

from incidentops import kube, metrics
from incidentops.intake.auth import AuthResult, Tokens
from incidentops.intake.payload import PayloadError, WebhookPayload, parse, parse_in_steps
from incidentops.intake.probes import ApiCheck
from incidentops.intake.writer import IncidentWriter, Outcome, WriteError
from incidentops.settings import Settings

__all__ = ["ALERTS_PATH", "Sink", "make_app", "run_receiver", "tls_context"]

logger = logging.getLogger("incidentops.intake")

ALERTS_PATH = "/api/v1/alerts"
REALM = 'Bearer realm="incidentops"'
_CERT_CHECK_SECONDS = 30.0
# Above this a body is parsed in steps beside the loop (payload.parse_in_steps); below it
# one pass on the loop takes a few milliseconds, less than handing it to a thread.
STEPWISE_BODY_BYTES = 256 * 1024
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)
ROUTES_KEY = web.AppKey("routes", frozenset)
# /readyz's look at the API server: kept this long, each bounded by the deadline (below the
# chart's readiness probe timeout of 3s, so a frozen API server gets a 503 with a reason).
READY_API_TTL_SECONDS = 5.0
READY_API_TIMEOUT_SECONDS = 2.0

ApiProblem = Callable[[], Awaitable[str | None]]
"""Why the Kubernetes API is not usable right now, None when it is (``ApiCheck.problem``)."""


class Sink(Protocol):
    """Where valid POSTs go: the :class:`IncidentWriter`, or an in-memory recorder in unit tests."""

    async def submit(self, payload: WebhookPayload, received_at: datetime.datetime) -> Outcome: ...


def utcnow() -> datetime.datetime:
    # Full precision: the domain orders snapshots against the resolution by lastReceivedAt,
    # and a re-fire in the same second as the resolution must still count as later.
    return datetime.datetime.now(datetime.UTC)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = extra.pop("headers", None)
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


@web.middleware
async def _observe(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Every answer's time and status in the receiver's histogram, by route (a fixed set: no raw paths)."""
    started = time.perf_counter()
    response: web.StreamResponse = await handler(request)
    path = request.path if request.path in request.app[ROUTES_KEY] else "other"
    metrics.RECEIVER_REQUESTS.labels(path, str(response.status)).observe(time.perf_counter() - started)
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """aiohttp's own 404/405/413 as JSON, and no exception out of a request."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = (
                f"no such endpoint: {request.method} {request.path}; "
                f"this receiver serves POST {ALERTS_PATH}, GET /healthz and GET /readyz"
            )
        elif exc.status == 405:
            allowed = exc.headers.get(hdrs.ALLOW, "")
            message = f"method {request.method} is not allowed on {request.path}; use {allowed or 'another method'}"
        elif exc.status == 413:
            message = f"the body is larger than the limit of {request.app[MAX_BODY_KEY]} bytes"
        else:
            message = exc.reason
        headers = {k: v for k, v in exc.headers.items() if k in (hdrs.ALLOW, hdrs.WWW_AUTHENTICATE)}
        return _error(exc.status, message, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("the receiver failed on %s %s", request.method, request.path)
        return _error(500, "internal error of the receiver; see the operator's log")


def make_app(
    tokens: Tokens,
    sink: Sink,
    *,
    max_body_bytes: int = 16 * 1024 * 1024,
    clock: Callable[[], datetime.datetime] = utcnow,
    api_problem: ApiProblem | None = None,
) -> web.Application:
    """The receiver's aiohttp application; ``/readyz`` asks ``api_problem`` too when it is given."""
    # _observe outermost: it sees the status _json_errors turned an exception into.
    app = web.Application(middlewares=[_observe, _json_errors], client_max_size=max_body_bytes)
    app[MAX_BODY_KEY] = max_body_bytes
    # A thread of its own: the default executor also runs SMTP sends (notify.email), which may
    # each hold a thread for their whole timeout. One is enough: parses share the GIL anyway.
    parser = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-parse")

    async def stop_parser(app: web.Application) -> None:
        parser.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_parser)

    async def post_alerts(request: web.Request) -> web.StreamResponse:
        auth = tokens.check(request.headers.get(hdrs.AUTHORIZATION))
        if auth is AuthResult.UNAVAILABLE:
            return _error(503, "the receiver has no token to check against (its token files are missing or empty)")
        if auth is AuthResult.MISSING:
            return _error(
                401, "missing bearer token: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": REALM}
            )
        if auth is AuthResult.INVALID:
            return _error(
                401,
                "invalid bearer token",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if request.content_type != "application/json":
            return _error(415, f"Content-Type must be application/json, not {request.content_type or 'none'}")
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _error(
                413, f"the body ({request.content_length} bytes) is larger than the limit of {max_body_bytes}"
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"the body is larger than the limit of {max_body_bytes} bytes")
        try:
            if len(body) > STEPWISE_BODY_BYTES:
                payload = await asyncio.get_running_loop().run_in_executor(parser, parse_in_steps, body)
            else:
                payload = parse(body)
        except PayloadError as exc:
            return web.json_response(exc.to_dict(), status=exc.status)
        received_at = clock()
        try:
            outcome = await sink.submit(payload, received_at)
        except WriteError as exc:
            logger.warning("alert group %r of receiver %r not recorded: %s", payload.group_key, payload.receiver, exc)
            return _error(503, f"the alert group was not recorded, retry: {exc}")
        return web.json_response({"status": "ok", **outcome.to_dict()})

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.StreamResponse:
        problem = "no token file is readable" if not tokens.available() else None
        if problem is None and api_problem is not None:
            problem = await api_problem()
        if problem is not None:
            return web.json_response({"status": "unavailable", "error": problem}, status=503)
        return web.json_response({"status": "ok"})

    app.router.add_post(ALERTS_PATH, post_alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app[ROUTES_KEY] = frozenset(resource.canonical for resource in app.router.resources())
    return app


# --- TLS ------------------------------------------------------------------------------------------


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server TLS context from PEM files (TLS 1.2 at least)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def _signature(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


async def _reload_certificates(context: ssl.SSLContext, cert: Path, key: Path, stop: asyncio.Event) -> None:
    """Load the certificate again when its files change (cert-manager renews it): new handshakes use it."""
    seen = _signature(cert, key)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _CERT_CHECK_SECONDS)
        try:
            current = _signature(cert, key)
            if current != seen:
                context.load_cert_chain(cert, key)
                seen = current
                logger.info("the receiver's TLS certificate changed and was reloaded")
        except (OSError, ssl.SSLError) as exc:
            logger.warning("the receiver's TLS certificate could not be reloaded (the old one stays): %s", exc)


# --- the task ---------------------------------------------------------------------------------------


async def run_receiver(settings: Settings, api: kube.ApiClient, stop: asyncio.Event) -> None:
    """Serve the receiver until ``stop`` is set.

    Without a token file the receiver stays off (the operator never takes
    unauthenticated alerts) and this waits for ``stop`` all the same, so the
    rest of the operator runs on.
    """
    tokens = Tokens(settings.token_file, settings.previous_token_file)
    if not tokens.configured:
        logger.warning("the Alertmanager receiver is off: no token file (INCIDENTOPS_TOKEN_FILE) is configured")
        await stop.wait()
        return
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ValueError("the receiver's TLS needs both a certificate file and a key file")
    context = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context = tls_context(settings.tls_cert_file, settings.tls_key_file)
    writer = IncidentWriter(
        api,
        operator_namespace=settings.namespace,
        allow_alert_namespace=settings.alert_namespace_label,
        watch_namespaces=settings.watch_namespaces,
        timeout=settings.receiver_write_timeout_seconds,
    )
    api_check = ApiCheck(
        lambda: kube.server_version(api),
        ttl=READY_API_TTL_SECONDS,
        timeout=min(READY_API_TIMEOUT_SECONDS, settings.api_timeout_seconds),
    )
    app = make_app(tokens, writer, max_body_bytes=settings.receiver_max_body_bytes, api_problem=api_check.problem)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0, handle_signals=False)
    await runner.setup()
    reloader: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, settings.bind_address, settings.receiver_port, ssl_context=context)
        await site.start()
        scheme = "https" if context else "http"
        for host, port, *_ in runner.addresses:
            logger.info("the Alertmanager receiver is listening on %s://%s:%s%s", scheme, host, port, ALERTS_PATH)
        if not tokens.available():
            logger.warning("the receiver has no readable token yet: POSTs are answered 503 until it has one")
        if context is not None and settings.tls_cert_file and settings.tls_key_file:
            reloader = asyncio.create_task(
                _reload_certificates(context, settings.tls_cert_file, settings.tls_key_file, stop),
                name="receiver-tls-reload",
            )
        await stop.wait()
    finally:
        if reloader is not None:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
        await runner.cleanup()  # stops accepting, lets requests in flight finish (shutdown_timeout)
        await writer.close()
