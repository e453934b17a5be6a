"""Any built-in kind, as plain JSON: what the actions change and what evidence reads.

Where it sits: in ``incidentops.kube``, beside ``objects.py`` (our own resources and the status write).
The actions (``incidentops.actions``) plan on the objects as the API server returns them (dicts, so a
Deployment's template compares with a ReplicaSet's exactly as the server stores them) and write with a
precondition: a JSON patch that starts with a ``test`` of ``metadata.resourceVersion``, or a replace or
delete that carries it, so a write based on a stale read fails with 409 instead of undoing someone
else's change.

Written on ``ApiClient.call_api`` (the generated per-kind classes turn objects into models and back,
which loses unknown fields and costs a copy): one path builder, one request function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

Body = dict[str, Any]

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "ENDPOINTSLICES",
    "EVENTS",
    "INGRESSES",
    "NETWORKPOLICIES",
    "PODS",
    "REPLICASETS",
    "SERVICES",
    "STATEFULSETS",
    "Kind",
    "create_object",
    "delete_object",
    "get_metadata",
    "get_object",
    "json_patch",
    "json_pointer",
    "label_selector",
    "list_of",
    "pod_log",
    "precondition_failed",
    "replace_object",
    "test_resource_version",
]

JSON_PATCH = "application/json-patch+json"
# The API server answers with the object's metadata alone (``PartialObjectMetadata``) when asked so:
# what a caller that needs only when an object changed reads, without its data.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


@dataclass(frozen=True)
class Kind:
    """A built-in resource: where it lives in the API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


DEPLOYMENTS = Kind("apps", "v1", "deployments", "Deployment")
REPLICASETS = Kind("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = Kind("apps", "v1", "statefulsets", "StatefulSet")
SERVICES = Kind("", "v1", "services", "Service")
PODS = Kind("", "v1", "pods", "Pod")
CONFIGMAPS = Kind("", "v1", "configmaps", "ConfigMap")
EVENTS = Kind("", "v1", "events", "Event")
ENDPOINTSLICES = Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
INGRESSES = Kind("networking.k8s.io", "v1", "ingresses", "Ingress")
NETWORKPOLICIES = Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")


async def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, Any]] = (),
    body: Any = None,
    content_type: str = "application/json",
    text: bool = False,
    accept: str = "application/json",
) -> Any:
    headers = {"Accept": "text/plain" if text else accept, "Content-Type": content_type}
    return await api.call_api(
        path,
        method,
        query_params=list(query),
        header_params=headers,
        body=body,
        response_types_map={200: "str" if text else "object", 201: "object", 202: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


async def get_object(api: client.ApiClient, kind: Kind, namespace: str | None, name: str) -> Body | None:
    """The object, or None when it does not exist."""
    try:
        result: Body = await _call(api, "GET", kind.path(namespace, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return result


async def get_metadata(api: client.ApiClient, kind: Kind, namespace: str | None, name: str) -> Body | None:
    """The object's metadata only (its ``metadata`` as a ``PartialObjectMetadata``), or None when it does not
    exist: when it was created and last changed (``managedFields[].time``), never its data."""
    try:
        result: Body = await _call(api, "GET", kind.path(namespace, name), accept=METADATA_ONLY)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return result


def label_selector(selector: Mapping[str, Any]) -> str:
    """The text form of a ``metav1.LabelSelector`` given as JSON (``matchLabels``, ``matchExpressions``), as
    ``labelSelector=`` takes it; a plain map (a Service's ``spec.selector``) is ``{"matchLabels": map}``.
    An empty selector is the empty text, which selects everything: callers that must not act on everything
    check for it first."""
    terms = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        if operator == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
    return ",".join(terms)


async def list_of(
    api: client.ApiClient,
    kind: Kind,
    namespace: str | None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[Body]:
    """The objects of ``kind`` in ``namespace`` (all namespaces when None) matching the selectors."""
    query: list[tuple[str, Any]] = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    result = await _call(api, "GET", kind.path(namespace), query=query)
    items: list[Body] = result.get("items") or []
    for item in items:
        # Items of a list carry neither apiVersion nor kind: put them back, callers store whole objects.
        item.setdefault("apiVersion", kind.api_version)
        item.setdefault("kind", kind.kind)
    return items


async def create_object(api: client.ApiClient, kind: Kind, namespace: str | None, body: Mapping[str, Any]) -> Body:
    """Create the object; the API server's 409 (it exists) is the caller's to read."""
    result: Body = await _call(api, "POST", kind.path(namespace), body=dict(body))
    return result


def test_resource_version(resource_version: str) -> dict[str, Any]:
    """The JSON patch operation that makes a patch a compare-and-swap on the object's resourceVersion."""
    return {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}


def json_pointer(*segments: str) -> str:
    """A JSON pointer (RFC 6901) to ``segments``, escaped: ``json_pointer("metadata", "labels",
    "app.kubernetes.io/name")`` is ``/metadata/labels/app.kubernetes.io~1name``."""
    return "".join("/" + segment.replace("~", "~0").replace("/", "~1") for segment in segments)


def precondition_failed(exc: BaseException) -> bool:
    """Whether a write may have failed on its precondition: a 409 (a replace or delete with a stale
    resourceVersion or uid), or a 422 that says the JSON patch did not apply. The API server words a failed
    ``test`` like any patch that does not apply ("the server rejected our request due to an error in our
    request", no field named), unlike an invalid object (a 422 that names the object and its fields): a
    caller that built its patch from the very read it tests can take one for the other, or read again."""
    if not isinstance(exc, ApiException):
        return False
    if exc.status == 409:
        return True
    if exc.status != 422:
        return False
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return False
    if not isinstance(status, dict):
        return False
    details = status.get("details") or {}
    return not details.get("causes") and not details.get("name")


async def json_patch(
    api: client.ApiClient, kind: Kind, namespace: str | None, name: str, operations: Sequence[Mapping[str, Any]]
) -> Body:
    """Apply a JSON patch (RFC 6902). Put :func:`test_resource_version` first for a precondition: the API
    server answers 422 when a ``test`` fails (the object changed), which callers treat as a conflict."""
    result: Body = await _call(
        api, "PATCH", kind.path(namespace, name), body=[dict(op) for op in operations], content_type=JSON_PATCH
    )
    return result


async def replace_object(api: client.ApiClient, kind: Kind, namespace: str | None, body: Mapping[str, Any]) -> Body:
    """Replace the object (PUT): its ``metadata.resourceVersion`` is the precondition (409 when stale)."""
    name = body["metadata"]["name"]
    result: Body = await _call(api, "PUT", kind.path(namespace, name), body=dict(body))
    return result


async def delete_object(
    api: client.ApiClient,
    kind: Kind,
    namespace: str | None,
    name: str,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
) -> bool:
    """Delete the object, only if it still is the one meant (``uid``, ``resourceVersion`` preconditions);
    False when it is gone already."""
    preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if preconditions:
        body["preconditions"] = preconditions
    try:
        await _call(api, "DELETE", kind.path(namespace, name), body=body)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def pod_log(
    api: client.ApiClient,
    namespace: str,
    pod: str,
    container: str,
    *,
    previous: bool = False,
    since_seconds: int | None = None,
    limit_bytes: int | None = None,
) -> str:
    """A container's log (the previous instance's with ``previous``), as the kubelet serves it."""
    query: list[tuple[str, Any]] = [("container", container)]
    if previous:
        query.append(("previous", "true"))
    if since_seconds:
        query.append(("sinceSeconds", since_seconds))
    if limit_bytes:
        query.append(("limitBytes", limit_bytes))
    result = await _call(api, "GET", PODS.path(namespace, pod, "log"), query=query, text=True)
    return str(result)
