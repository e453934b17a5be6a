"""Posting a synthetic alert group to the operator's Alertmanager receiver (``kubectl incident drill start``).

Where it sits: inside ``incidentops.plugin``, beside ``connection`` (which
reaches the API server): this reaches the receiver, as Alertmanager does, with
the bearer token the operator reads (``INCIDENTOPS_TOKEN_FILE``; the chart's
Secret ``<release>-receiver-token``). The group goes through the real intake,
so a drill rehearses detection, naming, placement and classification too.

Failures become :class:`PluginError` with a message for people; the token is
never part of one.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from incidentops.plugin.connection import PluginError

ALERTS_PATH = "/api/v1/alerts"


@dataclass(frozen=True)
class Opened:
    """What the receiver answered: the incident the group opened (or updated)."""

    namespace: str
    name: str
    created: bool


def alerts_url(url: str) -> str:
    """The receiver's webhook URL: ``url`` as given, or with ``/api/v1/alerts`` when it names no path."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PluginError(f"--receiver {url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8080)")
    if parsed.path in ("", "/"):
        parsed = parsed._replace(path=ALERTS_PATH)
    return urllib.parse.urlunsplit(parsed)


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped, as the operator drops it)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise PluginError(f"the token file {path} is empty")
    return token


def _ssl(ca_file: Path | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True  # the system's CAs
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise PluginError(f"cannot use {ca_file} as the receiver's CA: {exc}") from None


async def post(
    url: str, token: str, payload: dict[str, Any], *, ca_file: Path | None = None, request_timeout: float | None = 30
) -> Opened:
    """POST ``payload`` (an Alertmanager webhook payload) to ``url``; the incident the receiver names."""
    context = _ssl(ca_file)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=request_timeout)) as http,
            http.post(url, json=payload, headers=headers, ssl=context) as response,
        ):
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        raise PluginError(f"cannot reach the receiver at {url}: {reason}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    detail = answer.get("error") if isinstance(answer, dict) else None
    if status == 401:
        raise PluginError(
            f"the receiver at {url} refused the token (401): use the token the operator reads"
            " (its INCIDENTOPS_TOKEN_FILE; with the chart, the Secret <release>-receiver-token)"
        )
    if status != 200 or not isinstance(answer, dict):
        raise PluginError(f"the receiver at {url} answered {status}: {detail or text[:200] or 'no body'}")
    incident = answer.get("incident")
    if not isinstance(incident, dict) or not incident.get("name") or not incident.get("namespace"):
        raise PluginError(f"the receiver opened no incident: {answer.get('note') or answer}")
    return Opened(str(incident["namespace"]), str(incident["name"]), bool(answer.get("created")))
