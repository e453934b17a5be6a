"""How ``kubectl incident`` reaches the cluster, and how it explains the cluster's refusals.

Where it sits: inside ``incidentops.plugin``. A kubectl plugin needs what
kubectl offers: ``--context``, a ``KUBECONFIG`` list of files, the context's
default namespace and ``--request-timeout``; ``kube.connect`` reads
kubeconfigs that way (kube builds every client), and this module turns what
goes wrong into messages for people.

Errors the user can do something about become :class:`PluginError` with a
message for people (never a traceback): a kubeconfig or context that does not
exist, an unreachable API server, 401/403/404/409/422 answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from incidentops import kube
from incidentops.kube import INCIDENTS, Connection, api_status, server_message

INCIDENTS_RESOURCE = f"{INCIDENTS.plural}.{INCIDENTS.group}"


class PluginError(Exception):
    """A failure explained for people; the plugin prints it and exits 1."""


async def connect(kubeconfig: str | None, context: str | None, request_timeout: float | None) -> Connection:
    """A client for the chosen kubeconfig and context (or, with no kubeconfig at all, in-cluster);
    ``request_timeout`` (``--request-timeout``, None: none) is the deadline of each of its requests."""
    try:
        return await kube.connect(kubeconfig, context, request_timeout=request_timeout)
    except kube.KubeconfigError as exc:
        raise PluginError(str(exc)) from exc


# --- explaining failures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the plugin was doing, to name it in an error message."""

    verb: str
    resource: str = INCIDENTS_RESOURCE
    namespace: str | None = None
    name: str | None = None


def _where(namespace: str | None) -> str:
    return f' in namespace "{namespace}"' if namespace else " in any namespace"


def explain(exc: kube.ApiError, request: Request) -> str:
    """A message for people for the API server's refusal of ``request``."""
    message = server_message(exc)
    details = api_status(exc).get("details") or {}
    if exc.status == 401:
        return f"unauthorized: the cluster did not accept your credentials ({message})"
    if exc.status == 403:
        what = f'{request.resource} "{request.name}"' if request.name else request.resource
        return f"forbidden: you are not allowed to {request.verb} {what}{_where(request.namespace)} (server: {message})"
    if exc.status == 404:
        if request.resource == INCIDENTS_RESOURCE and request.name and details.get("name") == request.name:
            return f'incident "{request.name}" not found in namespace "{request.namespace}"'
        if request.resource == INCIDENTS_RESOURCE:
            return (
                f"the Incident API ({INCIDENTS.group}/{INCIDENTS.version}) is not served by this cluster: "
                "are the incidentops CRDs installed?"
            )
        return f"{request.resource} not found ({message})"
    if exc.status == 409:
        return f"conflict: {message}"
    if exc.status == 422:
        return f"the API server refused the change: {message}"
    if exc.status == 400:
        return f"the API server refused the request: {message}"
    return f"the API server answered {exc.status} {exc.reason or ''} to {request.verb} {request.resource}: {message}"


def unreachable(conn: Connection | None, exc: BaseException) -> str:
    """A message for a cluster that could not be reached at all."""
    where = f" at {conn.server}" if conn else ""
    context = f' (context "{conn.context}")' if conn and conn.context else ""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        timeout = conn.api.request_timeout if conn else None
        reason = f"timed out after {timeout:g}s (--request-timeout)" if timeout else "timed out"
    return f"cannot reach the cluster{where}{context}: {reason}"
