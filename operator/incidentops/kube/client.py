"""The one builder of Kubernetes clients, each with a deadline on every request.

Where it sits: at the bottom of ``incidentops.kube``. The operator builds its
client with :func:`api_client` (one kubeconfig, else the in-cluster
ServiceAccount: Kopf logs in the same way, so both act as one identity);
``kubectl incident`` builds its own with :func:`connect`, which reads
kubeconfigs as kubectl does (``--kubeconfig``, the list in ``KUBECONFIG``,
``--context`` and the context's namespace).

Why a deadline on the client and not on each call: kubernetes_asyncio gives
every request an empty ``aiohttp.ClientTimeout`` unless the caller passes
``_request_timeout``, so a call to a frozen API server waits forever, holding
whatever waits on it (a look at an incident, a Lease renewal). :class:`ApiClient`
fills in the default for every request that sets none, so no caller can forget.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take in all (connecting, sending, the answer), unless its caller says otherwise."""

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ApiClient(client.ApiClient):
    """kubernetes_asyncio's client, with ``request_timeout`` as the deadline of every request that sets none.

    A streamed answer (``_preload_content=False``, as watches read them) is
    bounded only while connecting: its length is the caller's to decide.
    """

    def __init__(self, configuration: client.Configuration | None = None, *, request_timeout: float | None) -> None:
        super().__init__(configuration)
        self.request_timeout = request_timeout

    def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        if _request_timeout is None and self.request_timeout:
            if _preload_content:
                _request_timeout = self.request_timeout
            else:
                _request_timeout = aiohttp.ClientTimeout(
                    connect=self.request_timeout, sock_connect=self.request_timeout
                )
        return super().request(
            method,
            url,
            query_params=query_params,
            headers=headers,
            post_params=post_params,
            body=body,
            _preload_content=_preload_content,
            _request_timeout=_request_timeout,
        )


async def api_client(kubeconfig: Path | None = None, *, request_timeout: float | None = DEFAULT_TIMEOUT) -> ApiClient:
    """The operator's client: from a kubeconfig (``KUBECONFIG``), else the in-cluster ServiceAccount."""
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    configuration = client.Configuration()
    if path is not None:
        await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return ApiClient(configuration, request_timeout=request_timeout)


# --- kubectl's way: kubeconfig lists, contexts, the context's namespace --------------------------


class KubeconfigError(Exception):
    """No usable kubeconfig or context; the message is for people."""


@dataclass
class Connection:
    """A client and what kubectl would say about it."""

    api: ApiClient
    namespace: str
    """The context's namespace (``default`` when it names none; in a Pod, the ServiceAccount's)."""
    server: str
    context: str | None

    async def close(self) -> None:
        await self.api.close()


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The kubeconfig files kubectl would read: ``--kubeconfig``, else each of ``KUBECONFIG``, else
    ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    if explicit:
        return [os.path.expanduser(explicit)]
    if env.get("KUBECONFIG"):
        return [os.path.expanduser(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


async def connect(kubeconfig: str | None, context: str | None, *, request_timeout: float | None) -> Connection:
    """A client for the chosen kubeconfig and context (or, with no kubeconfig at all in a Pod, in-cluster).

    Raises :class:`KubeconfigError` with a message for people when there is no
    such file or context, or the file is not a kubeconfig.
    """
    loader = _loader(kubeconfig, context)
    if loader is None:
        return _in_cluster(request_timeout)
    configuration = client.Configuration()
    chosen = (loader.current_context or {}).get("name")
    try:
        await loader.load_and_set(configuration)
    except (ConfigException, OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise KubeconfigError(f'cannot use context "{chosen}": {exc}') from exc
    current = loader.current_context or {}
    namespace = (current.get("context") or {}).get("namespace") or "default"
    return Connection(
        ApiClient(configuration, request_timeout=request_timeout), namespace, configuration.host or "", chosen
    )


def _in_cluster(request_timeout: float | None) -> Connection:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise KubeconfigError(f"cannot use the in-cluster configuration: {exc}") from exc
    namespace = "default"
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return Connection(
        ApiClient(configuration, request_timeout=request_timeout), namespace, configuration.host or "", None
    )


def _loader(kubeconfig: str | None, context: str | None) -> KubeConfigLoader | None:
    """The loader of the chosen context; None when there is no kubeconfig and we run in a cluster."""
    paths = kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if os.path.isfile(p)]
    if kubeconfig and not existing:
        raise KubeconfigError(f'kubeconfig "{kubeconfig}" not found')
    if not existing:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            return None
        raise KubeconfigError(
            f"no kubeconfig found (looked for {', '.join(paths)}); pass --kubeconfig or set KUBECONFIG"
        )
    files = ", ".join(existing)
    try:
        merger = KubeConfigMerger(os.pathsep.join(existing))
    except (OSError, ValueError, TypeError, AttributeError, KeyError, ConfigException) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {files}: {exc}") from exc
    merged = merger.config
    document = merged.value if merged is not None else None
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {files} is empty or not a kubeconfig")
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
        raise KubeconfigError(f"kubeconfig {files} sets no current context; pass --context (contexts: {known})")
    if chosen not in contexts:
        raise KubeconfigError(f'context "{chosen}" not found in kubeconfig {files} (contexts: {known})')
    try:
        return KubeConfigLoader(config_dict=merged, active_context=chosen, config_base_path=None)
    except (ConfigException, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise KubeconfigError(f'cannot use context "{chosen}" of kubeconfig {files}: {exc}') from exc
