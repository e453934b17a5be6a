"""The one place that builds the Kubernetes client, and writes our status.

Where it sits: below the handlers, the scheduler and the receiver, beside
``actions`` and ``notify``. Kopf logs in with the same kubeconfig (or the
in-cluster ServiceAccount) that this module loads, so the operator talks to the
API server under one identity.

Status is the operator's only memory, so every write of it goes through
:func:`write_status`: a full replacement of ``status`` (a merge patch would
replace whole lists anyway) with the object's resourceVersion as a
precondition; on a conflict it reads the object afresh and computes the status
again. Kopf's own status patching (handler results) is not used for our status.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from incidentops.api import GROUP, VERSION

logger = logging.getLogger("incidentops.kube")

Body = dict[str, Any]
# Given the object as it is now, return the whole status it should have
# (None: leave it alone). Called again on every conflict, with a fresh read.
StatusMutation = Callable[[Body], Awaitable[Body | None] | Body | None]


async def api_client(kubeconfig: Path | None = None) -> client.ApiClient:
    """An API client from a kubeconfig (``KUBECONFIG``), else the in-cluster ServiceAccount."""
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    configuration = client.Configuration()
    if path is not None:
        await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str

    @property
    def group(self) -> str:
        return GROUP

    @property
    def version(self) -> str:
        return VERSION


INCIDENTS = Resource("incidents", "Incident")
POLICIES = Resource("escalationpolicies", "EscalationPolicy")


class StatusConflictError(RuntimeError):
    """The object kept changing under us; Kopf retries the handler later."""


def is_status(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiException) and exc.status in codes


async def read(api: client.ApiClient, resource: Resource, namespace: str, name: str) -> Body:
    custom = client.CustomObjectsApi(api)
    result: Body = await custom.get_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, name
    )
    return result


async def list_objects(api: client.ApiClient, resource: Resource, namespace: str | None = None) -> list[Body]:
    custom = client.CustomObjectsApi(api)
    if namespace:
        result = await custom.list_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural
        )
    else:
        result = await custom.list_cluster_custom_object(resource.group, resource.version, resource.plural)
    items: list[Body] = result.get("items", [])
    return items


async def write_status(
    api: client.ApiClient,
    resource: Resource,
    namespace: str,
    name: str,
    mutate: StatusMutation,
    *,
    body: Mapping[str, Any] | None = None,
    attempts: int = 8,
) -> Body | None:
    """Replace the status computed by ``mutate``, guarded by resourceVersion, retried on conflict.

    ``body`` saves the first read when the caller already holds a recent copy
    (a stale one only costs a conflict and a re-read). Returns the object as
    written, or None when there was nothing to change or the object is gone.
    """
    custom = client.CustomObjectsApi(api)
    current: Body | None = copy.deepcopy(dict(body)) if body is not None else None
    for attempt in range(attempts):
        if current is None:
            try:
                current = await read(api, resource, namespace, name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        result = mutate(current)
        status = await result if asyncio.iscoroutine(result) else result
        if status is None or status == current.get("status"):
            return None
        replacement = {
            "apiVersion": current["apiVersion"],
            "kind": current["kind"],
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": current["metadata"]["resourceVersion"],
            },
            "status": status,
        }
        try:
            written: Body = await custom.replace_namespaced_custom_object_status(
                resource.group, resource.version, namespace, resource.plural, name, replacement
            )
            return written
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status != 409:
                raise
            current = None  # somebody else wrote first: read again and recompute
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))  # back off a little under heavy contention
    raise StatusConflictError(f"{resource.kind} {namespace}/{name}: status kept conflicting after {attempts} attempts")


async def read_secret(api: client.ApiClient, namespace: str, name: str) -> client.V1Secret | None:
    """A Secret, or None when it does not exist. Callers must never log its data."""
    core = client.CoreV1Api(api)
    try:
        secret: client.V1Secret = await core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return secret


async def post_event(
    api: client.ApiClient,
    body: Mapping[str, Any],
    type: str,
    reason: str,
    message: str,
    *,
    now: datetime.datetime | None = None,
) -> bool:
    """A Kubernetes Event on the object (``kubectl describe`` shows it); False if refused.

    Posted by us rather than by Kopf, because the scheduler is not a Kopf
    handler and has no Kopf context to post through. Events are the
    announcement, status is the record: when the API server refuses an Event
    (its namespace is being deleted, a quota) the refusal is logged and the
    transition, already written to status, stands. Other errors are raised.
    """
    meta = body["metadata"]
    at = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=body.get("apiVersion"),
            kind=body.get("kind"),
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:1024],
        type=type,
        source=client.V1EventSource(component="incidentops"),
        reporting_component="incidentops.dev/operator",
        reporting_instance=os.environ.get("HOSTNAME", "incidentops"),
        first_timestamp=at,
        last_timestamp=at,
        count=1,
    )
    try:
        await client.CoreV1Api(api).create_namespaced_event(meta["namespace"], event)
    except ApiException as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        logger.warning(
            "Event %s on %s/%s not posted: %s %s", reason, meta["namespace"], meta["name"], exc.status, exc.reason
        )
        return False
    return True
