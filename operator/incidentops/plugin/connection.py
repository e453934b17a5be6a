"""How ``kubectl incident`` reaches the cluster, and how it explains the cluster's refusals.

Where it sits: inside ``incidentops.plugin``. ``kube.api_client`` serves the
operator (one kubeconfig or the in-cluster ServiceAccount); a kubectl plugin
also needs what kubectl offers: ``--context``, a ``KUBECONFIG`` list of files,
and the context's default namespace. So the client is built here, with
kubernetes_asyncio's own kubeconfig loader.

Errors the user can do something about become :class:`PluginError` with a
message for people (never a traceback): a kubeconfig or context that does not
exist, an unreachable API server, 401/403/404/409/422 answers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger

from incidentops.kube import INCIDENTS

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
INCIDENTS_RESOURCE = f"{INCIDENTS.plural}.{INCIDENTS.group}"


class PluginError(Exception):
    """A failure explained for people; the plugin prints it and exits 1."""


@dataclass
class Connection:
    api: client.ApiClient
    namespace: str
    """The context's namespace (``default`` when it names none), used when ``-n`` is not given."""
    server: str
    context: str | None
    request_timeout: float | None

    def call_options(self) -> dict[str, Any]:
        """Keyword arguments for every API call."""
        return {"_request_timeout": self.request_timeout} if self.request_timeout else {}

    async def close(self) -> None:
        await self.api.close()


def kubeconfig_paths(explicit: str | None, environ: dict[str, str] | None = None) -> list[str]:
    """The kubeconfig files kubectl would read: ``--kubeconfig``, else each of ``KUBECONFIG``, else
    ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    if explicit:
        return [os.path.expanduser(explicit)]
    if env.get("KUBECONFIG"):
        return [os.path.expanduser(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


def _in_cluster(request_timeout: float | None) -> Connection:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise PluginError(f"cannot use the in-cluster configuration: {exc}") from exc
    namespace = "default"
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return Connection(client.ApiClient(configuration), namespace, configuration.host or "", None, request_timeout)


def _loader(kubeconfig: str | None, context: str | None) -> KubeConfigLoader | None:
    """The loader of the chosen context; None when there is no kubeconfig and we run in a cluster."""
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if os.path.isfile(p)]
    if kubeconfig and not existing:
        raise PluginError(f'kubeconfig "{kubeconfig}" not found')
    if not existing:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            return None
        raise PluginError(f"no kubeconfig found (looked for {', '.join(paths)}); pass --kubeconfig or set KUBECONFIG")
    files = ", ".join(existing)
    try:
        merger = KubeConfigMerger(os.pathsep.join(existing))
    except (OSError, ValueError, TypeError, AttributeError, KeyError, ConfigException) as exc:
        raise PluginError(f"cannot read kubeconfig {files}: {exc}") from exc
    merged = merger.config
    document = merged.value if merged is not None else None
    if not isinstance(document, dict):
        raise PluginError(f"kubeconfig {files} is empty or not a kubeconfig")
    entries = [c.value if isinstance(c, ConfigNode) else c for c in document.get("contexts") or []]
    contexts = [str(c.get("name")) for c in entries if isinstance(c, dict)]
    known = ", ".join(contexts) or "none"
    # As kubectl: the first file that sets current-context decides it.
    current = next(
        (
            f.get("current-context")
            for f in merger.config_files.values()
            if isinstance(f, dict) and f.get("current-context")
        ),
        None,
    )
    chosen = context or current
    if not chosen:
        raise PluginError(f"kubeconfig {files} sets no current context; pass --context (contexts: {known})")
    if chosen not in contexts:
        raise PluginError(f'context "{chosen}" not found in kubeconfig {files} (contexts: {known})')
    try:
        return KubeConfigLoader(config_dict=merged, active_context=chosen, config_base_path=None)
    except (ConfigException, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise PluginError(f'cannot use context "{chosen}" of kubeconfig {files}: {exc}') from exc


async def connect(kubeconfig: str | None, context: str | None, request_timeout: float | None) -> Connection:
    """A client for the chosen kubeconfig and context (or, with no kubeconfig at all, in-cluster)."""
    loader = _loader(kubeconfig, context)
    if loader is None:
        return _in_cluster(request_timeout)
    configuration = client.Configuration()
    chosen = (loader.current_context or {}).get("name")
    try:
        await loader.load_and_set(configuration)
    except (ConfigException, OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise PluginError(f'cannot use context "{chosen}": {exc}') from exc
    current = loader.current_context or {}
    namespace = (current.get("context") or {}).get("namespace") or "default"
    return Connection(client.ApiClient(configuration), namespace, configuration.host or "", chosen, request_timeout)


# --- explaining failures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the plugin was doing, to name it in an error message."""

    verb: str
    resource: str = INCIDENTS_RESOURCE
    namespace: str | None = None
    name: str | None = None


def api_status(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` object the API server sent with an error, or ``{}``."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def server_message(exc: ApiException) -> str:
    status = api_status(exc)
    message = status.get("message")
    if isinstance(message, str) and message:
        return message
    return f"{exc.status} {exc.reason or ''}".strip()


def _where(namespace: str | None) -> str:
    return f' in namespace "{namespace}"' if namespace else " in any namespace"


def explain(exc: ApiException, request: Request) -> str:
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
        reason = (
            f"timed out after {conn.request_timeout:g}s (--request-timeout)"
            if conn and conn.request_timeout
            else "timed out"
        )
    return f"cannot reach the cluster{where}{context}: {reason}"
