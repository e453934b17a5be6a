"""What evidence needs of the API beyond ``generic.py``: a container's log exactly as the kubelet sent it.

Where it sits: in ``incidentops.kube``, used by ``incidentops.actions.evidence``. ``generic.pod_log``
answers text through the generated client's deserializer, which first tries the body as JSON, so a log
that happens to be one JSON document (a single structured log line) comes back as Python's rendering of
a dict. Evidence must hold the bytes the kubelet served, so this reads the answer undecoded.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from incidentops.kube.client import DEFAULT_TIMEOUT, ApiClient
from incidentops.kube.generic import PODS

__all__ = ["read_pod_log"]


async def read_pod_log(
    api: ApiClient,
    namespace: str,
    pod: str,
    container: str,
    *,
    previous: bool = False,
    since_seconds: int | None = None,
    tail_lines: int | None = None,
    limit_bytes: int | None = None,
) -> bytes:
    """A container's log (its previous instance's with ``previous``), the bytes as served.

    The kubelet applies ``since_seconds``, then ``tail_lines`` (the newest lines), then ``limit_bytes``.
    A refusal (the container never restarted, the node does not answer) raises the API's error, as every
    call in this package does; the whole request, the body included, has the client's deadline.
    """
    query: list[tuple[str, Any]] = [("container", container)]
    if previous:
        query.append(("previous", "true"))
    if since_seconds:
        query.append(("sinceSeconds", since_seconds))
    if tail_lines:
        query.append(("tailLines", tail_lines))
    if limit_bytes:
        query.append(("limitBytes", limit_bytes))
    response = await api.call_api(
        PODS.path(namespace, pod, "log"),
        "GET",
        query_params=query,
        header_params={"Accept": "*/*"},
        auth_settings=["BearerToken"],
        _preload_content=False,  # the raw answer: no decoding, no JSON guess
        _request_timeout=api.request_timeout or DEFAULT_TIMEOUT,
    )
    try:
        data: bytes = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.headers = response.headers
        error.body = data.decode("utf-8", errors="replace")  # type: ignore[assignment]  # as other errors carry it
        raise error
    return data
