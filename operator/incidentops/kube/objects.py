"""Reading and writing objects: our custom resources, Secrets, Events, and what the receiver and the
plugin need of Pods, ReplicaSets and the caller's identity.

Where it sits: in ``incidentops.kube``, below the handlers, the scheduler, the
receiver and the plugin, beside ``actions`` and ``notify``. The functions take
the client of ``client.py`` (every request has its deadline there) and raise
:data:`~incidentops.kube.errors.ApiError` for the API server's refusals; what
a refusal means is ``errors.py``'s to say.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from incidentops.api import GROUP, VERSION
from incidentops.kube.errors import StatusConflictError

logger = logging.getLogger("incidentops.kube")

Body = dict[str, Any]
# Given the object as it is now, return the whole status it should have
# (None: leave it alone). Called again on every conflict, with a fresh read.
StatusMutation = Callable[[Body], Awaitable[Body | None] | Body | None]
Secret = client.V1Secret
"""A Secret as :func:`read_secret` returns it (``.metadata.labels``, ``.data`` in base64)."""

MERGE_PATCH = "application/merge-patch+json"


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


async def unserved(api: client.ApiClient, resources: Sequence[Resource]) -> list[str]:
    """The plurals of ``resources`` the API server's discovery does not list (their CRD is not installed,
    or not yet served). Discovery is open to every authenticated identity: no RBAC rule is needed."""
    try:
        found: Body = await api.call_api(
            f"/apis/{GROUP}/{VERSION}",
            "GET",
            header_params={"Accept": "application/json"},
            response_types_map={200: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        if exc.status == 404:  # the group itself is not served
            return [r.plural for r in resources]
        raise
    names = {r.get("name") for r in found.get("resources") or []}
    return [r.plural for r in resources if r.plural not in names]


async def read(api: client.ApiClient, resource: Resource, namespace: str, name: str) -> Body:
    custom = client.CustomObjectsApi(api)
    result: Body = await custom.get_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, name
    )
    return result


async def list_objects(
    api: client.ApiClient, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
) -> list[Body]:
    """The objects of one namespace (all namespaces when None), optionally those matching ``label_selector``."""
    custom = client.CustomObjectsApi(api)
    selector: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
    if namespace:
        result = await custom.list_namespaced_custom_object(
            resource.group, resource.version, namespace, resource.plural, **selector
        )
    else:
        result = await custom.list_cluster_custom_object(resource.group, resource.version, resource.plural, **selector)
    items: list[Body] = result.get("items") or []
    return items


async def create(api: client.ApiClient, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Body:
    """Create the object; 409 (:data:`ApiError`) when one of that name exists."""
    custom = client.CustomObjectsApi(api)
    created: Body = await custom.create_namespaced_custom_object(
        resource.group, resource.version, namespace, resource.plural, body
    )
    return created


async def patch(api: client.ApiClient, resource: Resource, namespace: str, name: str, body: Mapping[str, Any]) -> Body:
    """A JSON merge patch of the object (put ``metadata.resourceVersion`` in it for a precondition)."""
    custom = client.CustomObjectsApi(api)
    # Custom resources take no strategic merge patch, which is the client's pick for a dict;
    # `_content_type` is a real parameter that the type stubs leave out.
    patched: Body = await custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
        resource.group, resource.version, namespace, resource.plural, name, body, _content_type=MERGE_PATCH
    )
    return patched


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


async def read_secret(api: client.ApiClient, namespace: str, name: str) -> Secret | None:
    """A Secret, or None when it does not exist. Callers must never log its data."""
    core = client.CoreV1Api(api)
    try:
        secret: Secret = await core.read_namespaced_secret(name, namespace)
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


async def list_events(api: client.ApiClient, namespace: str, field_selector: str) -> list[Body]:
    """The Events of ``namespace`` that match ``field_selector``, as plain dicts (``kubectl get -o json``)."""
    result = await client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=field_selector)
    events: list[Body] = api.sanitize_for_serialization(result).get("items") or []
    return events


async def read_pod(api: client.ApiClient, namespace: str, name: str) -> Any:
    """A Pod (``.metadata.owner_references``: what controls it)."""
    return await client.CoreV1Api(api).read_namespaced_pod(name, namespace)


async def read_replica_set(api: client.ApiClient, namespace: str, name: str) -> Any:
    """A ReplicaSet (``.metadata.owner_references``: its Deployment)."""
    return await client.AppsV1Api(api).read_namespaced_replica_set(name, namespace)


async def whoami(api: client.ApiClient) -> str | None:
    """The caller's user name as the API server sees it (SelfSubjectReview), None if it names none.

    404 (:data:`ApiError`) when the cluster does not serve SelfSubjectReview
    (authentication.k8s.io/v1, Kubernetes 1.28 or later).
    """
    review = client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    result = await client.AuthenticationV1Api(api).create_self_subject_review(review)
    user_info = result.status.user_info if result.status else None
    username = user_info.username if user_info else None
    return str(username) if username else None


async def server_version(api: client.ApiClient) -> str:
    """The API server's version (``GET /version``): the cheapest request that shows it answers our credentials."""
    info = await client.VersionApi(api).get_code()
    return str(info.git_version)
