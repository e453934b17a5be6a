"""The coordination.k8s.io Lease of leader election: read, create, replace under a precondition.

Where it sits: in ``incidentops.kube``, under ``handlers/leader.py``, which
decides when to take, renew or release the Lease; this module only moves
:class:`LeaseRecord` values to and from the API server. A replacement carries
the resourceVersion of the read it came from, so of two candidates racing for
an expired Lease only one can win (the other gets 409, here ``False``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec, and the resourceVersion it was read at (the precondition of the next write)."""

    holder: str | None
    duration_seconds: int | None = None
    acquired_at: datetime.datetime | None = None
    renewed_at: datetime.datetime | None = None
    transitions: int | None = None
    resource_version: str | None = None


async def read_lease(api: client.ApiClient, namespace: str, name: str) -> LeaseRecord | None:
    """The Lease, or None when there is none."""
    try:
        lease = await client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or None,
        duration_seconds=spec.lease_duration_seconds,
        acquired_at=spec.acquire_time,
        renewed_at=spec.renew_time,
        transitions=spec.lease_transitions,
        resource_version=lease.metadata.resource_version if lease.metadata else None,
    )


async def create_lease(api: client.ApiClient, namespace: str, name: str, record: LeaseRecord) -> bool:
    """Create the Lease with ``record``; False when another candidate created it first (409)."""
    body = client.V1Lease(metadata=client.V1ObjectMeta(name=name, namespace=namespace), spec=_spec(record))
    try:
        await client.CoordinationV1Api(api).create_namespaced_lease(namespace, body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


async def replace_lease(api: client.ApiClient, namespace: str, name: str, record: LeaseRecord) -> bool:
    """Replace the Lease with ``record`` unless it changed since ``record.resource_version`` (then False)."""
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, resource_version=record.resource_version),
        spec=_spec(record),
    )
    try:
        await client.CoordinationV1Api(api).replace_namespaced_lease(name, namespace, body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def _spec(record: LeaseRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder,
        lease_duration_seconds=record.duration_seconds,
        acquire_time=record.acquired_at,
        renew_time=record.renewed_at,
        lease_transitions=record.transitions,
    )
