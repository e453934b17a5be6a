"""A stand-in for ``incidentops.kube``'s functions (not for the HTTP API): objects, Leases, Events.

The code under test calls ``kube.read``, ``kube.write_status``,
``kube.read_lease`` ... through the package, so :meth:`FakeKube.install`
replaces those names and nothing below them. It keeps what the callers rely
on: resourceVersions that change on every write, 404 as None where kube says
so, and a Lease replaced only under its resourceVersion. Failures are
injected per function (:meth:`fail`), and a client can be *frozen*: its calls
hang until thawed, as against a SIGSTOPped API server or a cut network, which
is what deadlines and the renew deadline are for. Every call yields to the
loop first, so concurrent callers interleave as they would against a server.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from incidentops import kube


def api_error(status: int, reason: str = "", *, message: str = "", retry_after: float | None = None) -> kube.ApiError:
    """What the API server's refusal raises, with its Status body and headers."""
    exc = kube.ApiError(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "code": status, "message": message}) if message else ""
    exc.headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return exc


@dataclasses.dataclass
class LeaseWrite:
    at: float  # loop time
    client: Any
    record: kube.LeaseRecord


class FakeKube:
    FUNCTIONS = (
        "read",
        "list_objects",
        "write_status",
        "post_event",
        "read_secret",
        "read_lease",
        "create_lease",
        "replace_lease",
    )

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name)
        self.leases: dict[tuple[str, str], kube.LeaseRecord] = {}
        self.lease_writes: list[LeaseWrite] = []
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, message)
        self.calls: list[str] = []
        self._failures: dict[str, list[BaseException]] = {}
        self._frozen: set[Any] = set()  # clients whose calls hang; ALL: every client
        self._thawed = asyncio.Event()
        self._revision = 0

    ALL = object()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeKube:
        for name in self.FUNCTIONS:
            monkeypatch.setattr(kube, name, getattr(self, name))
        return self

    # -- what tests arrange ------------------------------------------------------------------------

    def fail(self, function: str, *errors: BaseException) -> None:
        """The next calls of ``function`` raise ``errors``, one each, in order."""
        self._failures.setdefault(function, []).extend(errors)

    def freeze(self, client: Any = ALL) -> None:
        """Calls of ``client`` (every client by default) hang from now on, until :meth:`thaw`."""
        self._frozen.add(client)
        self._thawed.clear()

    def thaw(self) -> None:
        self._frozen.clear()
        self._thawed.set()

    def add(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = self._next()
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def edit(self, plural: str, namespace: str, name: str, **spec: Any) -> None:
        """Somebody else changes the object's spec."""
        obj = self.objects[(plural, namespace, name)]
        obj["spec"].update(spec)
        obj["metadata"]["resourceVersion"] = self._next()

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(plural, namespace, name)]

    # -- kube's functions ----------------------------------------------------------------------------

    async def read(self, api: Any, resource: kube.Resource, namespace: str, name: str) -> dict[str, Any]:
        await self._enter("read", api)
        try:
            return copy.deepcopy(self.objects[(resource.plural, namespace, name)])
        except KeyError:
            raise api_error(404, "Not Found") from None

    async def list_objects(
        self, api: Any, resource: kube.Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        await self._enter("list_objects", api)
        return [
            copy.deepcopy(o)
            for (plural, ns, _), o in sorted(self.objects.items())
            if plural == resource.plural and namespace in (None, ns)
        ]

    async def write_status(
        self,
        api: Any,
        resource: kube.Resource,
        namespace: str,
        name: str,
        mutate: kube.StatusMutation,
        *,
        body: Mapping[str, Any] | None = None,
        attempts: int = 8,
    ) -> dict[str, Any] | None:
        await self._enter("write_status", api)
        stored = self.objects.get((resource.plural, namespace, name))
        if stored is None:
            return None
        result = mutate(copy.deepcopy(stored))
        status = await result if asyncio.iscoroutine(result) else result
        if status is None or status == stored.get("status"):
            return None
        stored["status"] = copy.deepcopy(status)
        stored["metadata"]["resourceVersion"] = self._next()
        return copy.deepcopy(stored)

    async def post_event(
        self, api: Any, body: Mapping[str, Any], type: str, reason: str, message: str, **_: Any
    ) -> bool:
        await self._enter("post_event", api)
        self.events.append((body["metadata"]["name"], type, reason, message))
        return True

    async def read_secret(self, api: Any, namespace: str, name: str) -> Any:
        await self._enter("read_secret", api)
        return None

    async def read_lease(self, api: Any, namespace: str, name: str) -> kube.LeaseRecord | None:
        await self._enter("read_lease", api)
        return self.leases.get((namespace, name))

    async def create_lease(self, api: Any, namespace: str, name: str, record: kube.LeaseRecord) -> bool:
        await self._enter("create_lease", api)
        if (namespace, name) in self.leases:
            return False
        self._store_lease(api, namespace, name, record)
        return True

    async def replace_lease(self, api: Any, namespace: str, name: str, record: kube.LeaseRecord) -> bool:
        await self._enter("replace_lease", api)
        current = self.leases.get((namespace, name))
        if current is None or current.resource_version != record.resource_version:
            return False
        self._store_lease(api, namespace, name, record)
        return True

    # -- inside --------------------------------------------------------------------------------------

    def _next(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _store_lease(self, api: Any, namespace: str, name: str, record: kube.LeaseRecord) -> None:
        stored = dataclasses.replace(record, resource_version=self._next())
        self.leases[(namespace, name)] = stored
        self.lease_writes.append(LeaseWrite(asyncio.get_running_loop().time(), api, stored))

    async def _enter(self, call: str, api: Any) -> None:
        self.calls.append(call)
        await asyncio.sleep(0)
        while self.ALL in self._frozen or api in self._frozen:
            await self._thawed.wait()
        queue = self._failures.get(call)
        if queue:
            raise queue.pop(0)
