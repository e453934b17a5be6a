"""An in-memory stand-in for the kube seam (``incidentops.kube``'s functions), for handler unit tests.

It keeps what the handlers rely on: objects by (plural, namespace, name) with a
resourceVersion that moves on every write; ``write_status`` calls the mutation
on the copy it is given, and on a conflict (that copy is stale) again on a
fresh read, exactly as its contract says; 404 for what is not there; Secrets
by name; Events kept in order. Every call yields to the loop first, so
concurrent writers interleave as they would against a real server. HTTP is
never faked: the channels talk to real local servers (``tests/unit/notify/conftest.py``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
from collections.abc import Awaitable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from incidentops import kube
from incidentops.api import CHANNEL_SECRET_LABEL

Body = dict[str, Any]


@dataclass
class Event:
    namespace: str
    name: str
    type: str
    reason: str
    message: str


@dataclass
class FakeKube:
    objects: dict[tuple[str, str, str], Body] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (plural, namespace, name) per status write
    revision: int = 0

    def _next(self) -> str:
        self.revision += 1
        return str(self.revision)

    # -- set-up and inspection ---------------------------------------------------------------

    def add(self, resource: kube.Resource, body: Body) -> Body:
        body = copy.deepcopy(body)
        meta = body["metadata"]
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next()
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = body
        return body

    def get(self, resource: kube.Resource, namespace: str, name: str) -> Body:
        return copy.deepcopy(self.objects[(resource.plural, namespace, name)])

    def edit_spec(self, resource: kube.Resource, namespace: str, name: str, **changes: Any) -> None:
        obj = self.objects[(resource.plural, namespace, name)]
        obj["spec"] = {**obj["spec"], **changes}
        obj["metadata"]["generation"] += 1
        obj["metadata"]["resourceVersion"] = self._next()

    def delete(self, resource: kube.Resource, namespace: str, name: str) -> None:
        del self.objects[(resource.plural, namespace, name)]

    def add_secret(self, namespace: str, name: str, data: dict[str, str], *, labelled: bool = True) -> None:
        label, value = CHANNEL_SECRET_LABEL
        self.secrets[(namespace, name)] = SimpleNamespace(
            metadata=SimpleNamespace(labels={label: value} if labelled else {}),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        )

    def events_of(self, name: str, reason: str | None = None) -> list[Event]:
        return [e for e in self.events if e.name == name and (reason is None or e.reason == reason)]

    # -- the seam --------------------------------------------------------------------------------

    async def read(self, api: Any, resource: kube.Resource, namespace: str, name: str) -> Body:
        await asyncio.sleep(0)
        try:
            return self.get(resource, namespace, name)
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    async def list_objects(self, api: Any, resource: kube.Resource, namespace: str | None = None) -> list[Body]:
        await asyncio.sleep(0)
        return [
            copy.deepcopy(o)
            for (plural, ns, _), o in sorted(self.objects.items())
            if plural == resource.plural
            if namespace in (None, ns)
        ]

    async def write_status(
        self,
        api: Any,
        resource: kube.Resource,
        namespace: str,
        name: str,
        mutate: kube.StatusMutation,
        *,
        body: Body | None = None,
        attempts: int = 8,
    ) -> Body | None:
        current = copy.deepcopy(body) if body is not None else None
        for _ in range(attempts):
            await asyncio.sleep(0)
            stored = self.objects.get((resource.plural, namespace, name))
            if stored is None:
                return None
            if current is None:
                current = copy.deepcopy(stored)
            result = mutate(current)
            status = await result if isinstance(result, Awaitable) else result
            if status is None or status == current.get("status"):
                return None
            if current["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
                current = None  # a conflict: somebody wrote first; read again and recompute
                continue
            stored["status"] = copy.deepcopy(status)
            stored["metadata"]["resourceVersion"] = self._next()
            self.writes.append((resource.plural, namespace, name))
            return copy.deepcopy(stored)
        raise kube.StatusConflictError(f"{namespace}/{name}: status kept conflicting")

    async def read_secret(self, api: Any, namespace: str, name: str) -> Any:
        await asyncio.sleep(0)
        return self.secrets.get((namespace, name))

    async def post_event(
        self,
        api: Any,
        body: Body,
        type: str,
        reason: str,
        message: str,
        *,
        now: datetime.datetime | None = None,
    ) -> bool:
        await asyncio.sleep(0)
        meta = body["metadata"]
        self.events.append(Event(meta["namespace"], meta["name"], type, reason, message))
        return True


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeKube) -> FakeKube:
    for name in ("read", "list_objects", "write_status", "read_secret", "post_event"):
        monkeypatch.setattr(kube, name, getattr(fake, name))
    return fake
