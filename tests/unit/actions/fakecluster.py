"""A stand-in for the ``incidentops.kube`` functions evidence uses (not for the HTTP API).

``evidence.py`` and ``archive.py`` call ``kube.get_object``, ``kube.list_of``, ``kube.create_object`` and
``kube.read_pod_log`` through the package, so :meth:`FakeCluster.install` replaces those names. It keeps
what callers rely on: None for a missing object, 409 on creating one that exists, label selectors, the
kubelet's refusal of a log it does not have; and it records every call, in order. The e2e tests run the
same code against the real control plane.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from incidentops import kube
from tests.unit.kubefake import api_error

Body = dict[str, Any]
SECRETS = kube.Kind("", "v1", "secrets", "Secret")


def _matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in filter(None, (selector or "").split(",")):  # equality terms and existence, as tests use
        if "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
        elif labels.get(term) is None:
            return False
    return True


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}  # (plural, namespace, name)
        self.logs: dict[tuple[str, str, str, bool], bytes] = {}  # (namespace, pod, container, previous)
        self.calls: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
        for name in ("get_object", "list_of", "create_object", "read_pod_log"):
            monkeypatch.setattr(kube, name, getattr(self, name))
        return self

    def put(self, body: Body) -> Body:
        kinds = (kube.PODS, kube.REPLICASETS, kube.DEPLOYMENTS, kube.SERVICES, kube.EVENTS, kube.CONFIGMAPS, SECRETS)
        kind = next(k for k in kinds if k.kind == body["kind"])
        meta = body["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(kind.plural, meta.get("namespace", ""), meta["name"])] = body
        return body

    def of(self, plural: str, namespace: str | None = None) -> list[Body]:
        return [b for (p, ns, _), b in sorted(self.objects.items()) if p == plural and namespace in (None, ns)]

    async def get_object(self, api: Any, kind: kube.Kind, namespace: str | None, name: str) -> Body | None:
        self.calls.append(f"get {kind.plural} {namespace}/{name}")
        if kind.plural == "secrets":
            raise AssertionError("evidence must never read a Secret")
        found = self.objects.get((kind.plural, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    async def list_of(
        self,
        api: Any,
        kind: kube.Kind,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Body]:
        self.calls.append(f"list {kind.plural} {namespace} {label_selector or ''}".rstrip())
        if kind.plural == "secrets":
            raise AssertionError("evidence must never read a Secret")
        return [
            copy.deepcopy(b)
            for b in self.of(kind.plural, namespace)
            if _matches(label_selector, (b.get("metadata") or {}).get("labels") or {})
        ]

    async def create_object(self, api: Any, kind: kube.Kind, namespace: str | None, body: Body) -> Body:
        name = body["metadata"]["name"]
        self.calls.append(f"create {kind.plural} {namespace}/{name}")
        if (kind.plural, namespace or "", name) in self.objects:
            raise api_error(409, "AlreadyExists", message=f'{kind.plural} "{name}" already exists')
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = f"uid-{name}"
        self.objects[(kind.plural, namespace or "", name)] = stored
        return copy.deepcopy(stored)

    async def read_pod_log(
        self, api: Any, namespace: str, pod: str, container: str, *, previous: bool = False, **query: Any
    ) -> bytes:
        self.calls.append(f"log {namespace}/{pod}/{container}{' previous' if previous else ''}")
        data = self.logs.get((namespace, pod, container, previous))
        if data is None:
            what = "previous terminated container" if previous else "container"
            raise api_error(400, "BadRequest", message=f'{what} "{container}" in pod "{pod}" not found')
        return data
