"""An in-memory stand-in for ``incidentops.kube``'s functions (not for the HTTP API), for unit tests.

The code under test calls ``kube.read``, ``kube.write_status``,
``kube.read_lease`` ... through the package, so :meth:`FakeKube.install`
replaces those names and nothing below them. It keeps what the callers rely
on, as the API server does it:

- objects by (plural, namespace, name), with a resourceVersion that moves on
  every write and a generation that moves on every spec change; 404 for what
  is not there, None where kube says so;
- ``write_status`` calls the mutation on the copy it is given, and on a
  conflict (that copy is stale) again on a fresh read, exactly as its
  contract says; it gives up with :class:`kube.StatusConflictError`;
- Secrets by name, Events in order, and a Lease replaced only under its
  resourceVersion.

Failures are injected per function (:meth:`fail`), and a client can be
*frozen*: its calls hang until thawed, as against a SIGSTOPped API server or a
cut network, which is what deadlines and the renew deadline are for. Every
call (every attempt of a status write) yields to the loop first, so concurrent
callers interleave as they would against a server. HTTP is never faked here:
the channels talk to real local servers (``tests/unit/notify/conftest.py``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import datetime
import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from incidentops import kube
from incidentops.api import CHANNEL_SECRET_LABEL

Body = dict[str, Any]


def api_error(status: int, reason: str = "", *, message: str = "", retry_after: float | None = None) -> kube.ApiError:
    """What the API server's refusal raises, with its Status body and headers."""
    exc = kube.ApiError(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "code": status, "message": message}) if message else ""
    exc.headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return exc


@dataclasses.dataclass
class Event:
    namespace: str
    name: str
    type: str
    reason: str
    message: str


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
    ALL = object()  # freeze(ALL): every client

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}  # (plural, namespace, name)
        self.secrets: dict[tuple[str, str], Any] = {}  # (namespace, name)
        self.leases: dict[tuple[str, str], kube.LeaseRecord] = {}
        self.lease_writes: list[LeaseWrite] = []
        self.events: list[Event] = []
        self.writes: list[tuple[str, str, str]] = []  # (plural, namespace, name) per status written
        self.calls: list[str] = []  # the functions called, in order
        self._failures: dict[str, list[BaseException]] = {}
        self._frozen: set[Any] = set()
        self._thawed = asyncio.Event()
        self._revision = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeKube:
        for name in self.FUNCTIONS:
            monkeypatch.setattr(kube, name, getattr(self, name))
        return self

    # -- what tests arrange and inspect ----------------------------------------------------------------

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

    def add(self, resource: kube.Resource, body: Mapping[str, Any]) -> Body:
        """Create the object, as the API server would: it gets a uid, generation 1 and a resourceVersion."""
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next()
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def get(self, resource: kube.Resource, namespace: str, name: str) -> Body:
        return copy.deepcopy(self.objects[(resource.plural, namespace, name)])

    def edit_spec(self, resource: kube.Resource, namespace: str, name: str, **changes: Any) -> None:
        """Somebody else changes the object's spec."""
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

    # -- kube's functions ----------------------------------------------------------------------------

    async def read(self, api: Any, resource: kube.Resource, namespace: str, name: str) -> Body:
        await self._enter("read", api)
        try:
            return self.get(resource, namespace, name)
        except KeyError:
            raise api_error(404, "Not Found") from None

    async def list_objects(
        self, api: Any, resource: kube.Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[Body]:
        await self._enter("list_objects", api)
        wanted = dict(term.split("=", 1) for term in label_selector.split(",")) if label_selector else {}
        return [
            copy.deepcopy(o)
            for (plural, ns, _), o in sorted(self.objects.items())
            if plural == resource.plural and namespace in (None, ns)
            if wanted.items() <= (o["metadata"].get("labels") or {}).items()
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
    ) -> Body | None:
        await self._enter("write_status", api)
        current = copy.deepcopy(dict(body)) if body is not None else None
        for attempt in range(attempts):
            if attempt:
                await self._answer(api)  # every attempt is a request of its own
            stored = self.objects.get((resource.plural, namespace, name))
            if stored is None:
                return None
            if current is None:
                current = copy.deepcopy(stored)
            result = mutate(current)
            status = await result if asyncio.iscoroutine(result) else result
            if status is None or status == current.get("status"):
                return None
            if current["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
                current = None  # a conflict: somebody wrote first; read again and recompute
                continue
            stored["status"] = copy.deepcopy(status)
            stored["metadata"]["resourceVersion"] = self._next()
            self.writes.append((resource.plural, namespace, name))
            return copy.deepcopy(stored)
        raise kube.StatusConflictError(f"{resource.kind} {namespace}/{name}: status kept conflicting")

    async def post_event(
        self,
        api: Any,
        body: Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        *,
        now: datetime.datetime | None = None,
    ) -> bool:
        await self._enter("post_event", api)
        meta = body["metadata"]
        self.events.append(Event(meta["namespace"], meta["name"], type, reason, message))
        return True

    async def read_secret(self, api: Any, namespace: str, name: str) -> Any:
        await self._enter("read_secret", api)
        return self.secrets.get((namespace, name))

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
        """A call of ``call``: recorded, answered (or hung) like a request, and failed if the test said so."""
        self.calls.append(call)
        await self._answer(api)
        queue = self._failures.get(call)
        if queue:
            raise queue.pop(0)

    async def _answer(self, api: Any) -> None:
        await asyncio.sleep(0)
        while self.ALL in self._frozen or api in self._frozen:
            await self._thawed.wait()
