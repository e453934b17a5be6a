"""An in-memory stand-in for the parts of the Kubernetes API the writer uses (unit tests only).

It keeps what matters for create-or-update: names unique per namespace (409
on a second create), resourceVersion preconditions on status replacement (409
when stale), 404 for missing objects and namespaces, label-selector lists.
Every call yields to the loop first, so concurrent writers interleave as they
would against a real server. The e2e tests run the same code against the real
API server.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException


@dataclass
class FakeCluster:
    namespaces: set[str] = field(default_factory=lambda: {"ops", "shop"})
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], Any] = field(default_factory=dict)
    replicasets: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail_with: int | None = None  # calls answer this status while set ...
    fail_times: int | None = None  # ... this many times (None: until unset)
    hook: Any = None  # called (and awaited) before a status replacement: simulates another writer
    revision: int = 0

    def _next(self) -> str:
        self.revision += 1
        return str(self.revision)

    async def _enter(self, call: str) -> None:
        self.calls.append(call)
        await asyncio.sleep(0)
        if self.fail_with is not None:
            status = self.fail_with
            if self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_with = self.fail_times = None
            raise ApiException(status=status, reason="Injected")

    def incidents(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (ns, _), o in sorted(self.objects.items()) if namespace in (None, ns)]

    def set_status(self, namespace: str, name: str, **status: Any) -> None:
        obj = self.objects[(namespace, name)]
        obj["status"] = {**obj.get("status", {}), **status}
        obj["metadata"]["resourceVersion"] = self._next()


class FakeApiClient:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster


class FakeCustomObjectsApi:
    def __init__(self, api: FakeApiClient) -> None:
        self.c = api.cluster

    async def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        await self.c._enter("get")
        try:
            return copy.deepcopy(self.c.objects[(ns, name)])
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    async def list_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, label_selector: str = ""
    ) -> Any:
        await self.c._enter("list")
        key, _, value = label_selector.partition("=")
        items = [
            copy.deepcopy(o)
            for o in self.c.incidents(ns)
            if not key or o["metadata"].get("labels", {}).get(key) == value
        ]
        return {"items": items}

    async def create_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, body: dict[str, Any]
    ) -> Any:
        await self.c._enter("create")
        if ns not in self.c.namespaces:
            raise ApiException(status=404, reason="Not Found")
        name = body["metadata"]["name"]
        if (ns, name) in self.c.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        obj["metadata"] = {**obj["metadata"], "namespace": ns, "resourceVersion": self.c._next(), "uid": name}
        self.c.objects[(ns, name)] = obj
        return copy.deepcopy(obj)

    async def replace_namespaced_custom_object_status(
        self, group: str, version: str, ns: str, plural: str, name: str, body: dict[str, Any]
    ) -> Any:
        await self.c._enter("replace_status")
        if self.c.hook is not None:
            hook, self.c.hook = self.c.hook, None
            hook(ns, name)
        obj = self.c.objects.get((ns, name))
        if obj is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        obj["status"] = copy.deepcopy(body["status"])
        obj["metadata"]["resourceVersion"] = self.c._next()
        return copy.deepcopy(obj)


def _owner(kind: str, name: str) -> Any:
    return SimpleNamespace(kind=kind, name=name, controller=True)


class FakeCoreV1Api:
    def __init__(self, api: FakeApiClient) -> None:
        self.c = api.cluster

    async def read_namespaced_pod(self, name: str, ns: str) -> Any:
        await self.c._enter("get_pod")
        if (ns, name) not in self.c.pods:
            raise ApiException(status=404, reason="Not Found")
        return self.c.pods[(ns, name)]


class FakeAppsV1Api:
    def __init__(self, api: FakeApiClient) -> None:
        self.c = api.cluster

    async def read_namespaced_replica_set(self, name: str, ns: str) -> Any:
        await self.c._enter("get_replicaset")
        if (ns, name) not in self.c.replicasets:
            raise ApiException(status=404, reason="Not Found")
        return self.c.replicasets[(ns, name)]


def add_deployment_pod(cluster: FakeCluster, namespace: str, deployment: str, pod: str) -> None:
    rs = f"{deployment}-7d9f"
    cluster.pods[(namespace, pod)] = SimpleNamespace(
        metadata=SimpleNamespace(owner_references=[_owner("ReplicaSet", rs)])
    )
    cluster.replicasets[(namespace, rs)] = SimpleNamespace(
        metadata=SimpleNamespace(owner_references=[_owner("Deployment", deployment)])
    )


def install(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> FakeApiClient:
    monkeypatch.setattr(client, "CustomObjectsApi", FakeCustomObjectsApi)
    monkeypatch.setattr(client, "CoreV1Api", FakeCoreV1Api)
    monkeypatch.setattr(client, "AppsV1Api", FakeAppsV1Api)
    return FakeApiClient(cluster)
