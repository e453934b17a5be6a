"""From a parsed POST to a committed Incident: create-or-update, serialised and coalesced per group.

Where it sits: ``server.py`` hands every valid POST to :meth:`IncidentWriter.submit`
and answers 2xx only when it returns (the write is committed), 5xx when it
raises :class:`WriteError` (the API server failed, Alertmanager retries). The
domain (``domain.alertgroups``) decides names, spec and ``status.alerts``; this
module only reads and writes.

One Incident per group, across replicas and retries:

- A group's incidents carry the label ``incidentops.dev/alert-group=<hash of
  (receiver, groupKey)>`` and ``incidentops.dev/alert-group-sequence=<n>``; the
  n-th is named ``<alertname>-<hash>[-n]``, the same on every replica.
- The current incident is the one with the highest sequence. While it takes
  the group's alerts (``alertgroups.takes_alerts``: not Closed, and not
  Resolved past its reopen window) every POST updates its ``status.alerts``
  (``kube.write_status``: a full replacement under a resourceVersion
  precondition, recomputed on conflict), recording when the group started
  firing again (``lastFiredAt``) for the operator to reopen it. Once it no
  longer does, a POST whose group fires creates incident n+1, which names it in
  ``spec.source.previous``; a POST of a resolved group creates nothing.
- ``spec.source.startedAt`` (the earliest firing ``startsAt``, never later than
  the receipt) and ``status.startedAt`` come from the same functions the
  operator uses, so whichever writer lands first, the start is the same.
- A create that meets 409 lost a race with another replica (or POST): the
  object is read and updated instead. Concurrent creators of one name make one
  object, so replicas never duplicate.
- spec is written once, at creation. Severity is left to the policy's
  classification.

Per group, one write is in flight at a time (:class:`Coalescer`). POSTs that
arrive meanwhile wait; only the latest of them is written next, and all of
them are answered when that write commits: each POST is a snapshot of the
whole group, so the latest supersedes the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
from pydantic import ValidationError

from incidentops import kube
from incidentops.api.incident import AlertsStatus, Incident, Target
from incidentops.domain import alertgroups, lifecycle
from incidentops.intake.payload import WebhookPayload

__all__ = ["Coalescer", "IncidentWriter", "Outcome", "WriteError"]

logger = logging.getLogger("incidentops.intake")

K = TypeVar("K", bound=Hashable)
S = TypeVar("S")
R = TypeVar("R")

_ATTEMPTS = 6  # rounds of find / create / update before giving up with a 5xx
_CACHE_SIZE = 10_000  # groups whose current incident this replica remembers
_POD_LOOKUP_TIMEOUT = 2.0  # seconds spent mapping Pods to their Deployments at creation, at most
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_ATTEMPTS = 4  # about 2s of retries (or the server's Retry-After, capped) before a 5xx


class WriteError(Exception):
    """The Incident could not be written (the API server failed or kept conflicting): answer 5xx."""


@dataclass(frozen=True)
class Outcome:
    """What a POST did."""

    namespace: str
    name: str | None
    created: bool = False
    written: bool = False
    note: str = ""
    firing: int = 0
    resolved: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "incident": {"namespace": self.namespace, "name": self.name} if self.name else None,
            "created": self.created,
            "written": self.written,
            "alerts": {"firing": self.firing, "resolved": self.resolved},
        }
        if self.note:
            out["note"] = self.note
        return out


# --- per-group serialisation ----------------------------------------------------------------------


@dataclass
class _Slot(Generic[S, R]):
    pending: S | None = None
    waiters: list[asyncio.Future[R]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Coalescer(Generic[K, S, R]):
    """One write in flight per key; the latest waiting snapshot wins; every waiter gets its result.

    ``submit(key, snapshot)`` returns the result of a write of ``snapshot`` or
    of a snapshot submitted after it for the same key (never of an older one).
    """

    def __init__(self, write: Callable[[S], Awaitable[R]]) -> None:
        self._write = write
        self._slots: dict[K, _Slot[S, R]] = {}
        self.writes = 0  # writes started (for tests and benchmarks)
        self.coalesced = 0  # snapshots superseded before being written

    @property
    def busy_keys(self) -> int:
        return len(self._slots)

    async def submit(self, key: K, snapshot: S) -> R:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.pending is not None:
            self.coalesced += 1
        slot.pending = snapshot  # arrival order: the latest snapshot wins
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # Consumed even if the POST went away meanwhile, so no "never retrieved" warning.
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        slot.waiters.append(future)
        if slot.task is None:
            slot.task = asyncio.create_task(self._drain(key, slot), name=f"intake-write-{key!s:.40}")
        # A POST whose client went away does not cancel the write others wait for.
        return await asyncio.shield(future)

    async def _drain(self, key: K, slot: _Slot[S, R]) -> None:
        try:
            while slot.pending is not None:
                snapshot, waiters = slot.pending, slot.waiters
                slot.pending, slot.waiters = None, []
                self.writes += 1
                try:
                    result = await self._write(snapshot)
                except asyncio.CancelledError:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(WriteError("the receiver is shutting down"))
                    raise
                except BaseException as exc:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(result)
        finally:
            for waiter in slot.waiters:
                if not waiter.done():
                    waiter.set_exception(WriteError("the receiver is shutting down"))
            self._slots.pop(key, None)

    async def close(self, grace: float = 5.0) -> None:
        """Let the writes in flight finish (up to ``grace`` seconds), then cancel the rest."""
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# --- the writer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    payload: WebhookPayload
    received_at: datetime.datetime


@dataclass
class _UpdateProbe:
    """What ``write_status`` saw, so its ``None`` can be told apart: nothing to do, Closed, or gone."""

    calls: int = 0
    closed: bool = False
    changed: bool = False
    body: dict[str, Any] | None = None


class IncidentWriter:
    """Creates and updates the Incidents of alert groups."""

    def __init__(
        self,
        api: kube.ApiClient,
        *,
        operator_namespace: str,
        allow_alert_namespace: bool = False,
        watch_namespaces: Iterable[str] = (),
        timeout: float = 30.0,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.operator_namespace = operator_namespace
        self.allow_alert_namespace = allow_alert_namespace
        self.watch_namespaces = list(watch_namespaces)
        self.coalescer: Coalescer[tuple[str, str], _Snapshot, Outcome] = Coalescer(self._apply)
        # group id -> (namespace, name) of its current incident, so a known group costs a GET, not a LIST.
        self._current: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.api_writes = 0  # creates and status replacements committed (for tests and benchmarks)

    async def submit(self, payload: WebhookPayload, received_at: datetime.datetime) -> Outcome:
        """Apply a POST, serialised with the other POSTs of its group; returns once committed."""
        return await self.coalescer.submit((payload.receiver, payload.group_key), _Snapshot(payload, received_at))

    async def close(self) -> None:
        await self.coalescer.close()

    # -- one write ---------------------------------------------------------------------------------

    async def _apply(self, snapshot: _Snapshot) -> Outcome:
        budget = asyncio.timeout(self.timeout)
        try:
            async with budget:
                return await self._apply_retrying(snapshot)
        except WriteError:
            raise
        except kube.ApiError as exc:
            raise WriteError(f"the API server answered {exc.status} {exc.reason}".rstrip()) from exc
        except kube.StatusConflictError as exc:
            raise WriteError(str(exc)) from exc
        except TimeoutError as exc:
            if budget.expired():
                raise WriteError(f"the API server did not answer within {self.timeout:g}s") from exc
            raise WriteError("the API server did not answer a request in time (its deadline)") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise WriteError(f"the API server is unreachable: {exc.__class__.__name__}: {exc}") from exc

    async def _apply_retrying(self, snapshot: _Snapshot) -> Outcome:
        """:meth:`apply`, tried again a few times on a transient answer (429, 5xx, a lost connection, a
        request past its deadline).

        Alertmanager retries a 5xx too, but only until its ``group_interval``
        runs out; a short retry here rides out an API server that is busy or
        (re)starting without bothering it. A request that got no answer within
        kube's deadline (a connection that went dead without a word) is tried
        again on a new one, rather than holding the POST until the whole write
        budget is spent. The caller bounds the whole in time.
        """
        for attempt in range(_TRANSIENT_ATTEMPTS):
            try:
                return await self.apply(snapshot.payload, snapshot.received_at)
            except kube.ApiError as exc:
                if exc.status not in _TRANSIENT_STATUS or attempt + 1 == _TRANSIENT_ATTEMPTS:
                    raise
                delay = kube.retry_after(exc) or 0.25 * 2**attempt
            except (aiohttp.ClientConnectionError, ConnectionError, TimeoutError):
                # (The write budget's own expiry cancels this task: a TimeoutError here is a request's deadline.)
                if attempt + 1 == _TRANSIENT_ATTEMPTS:
                    raise
                delay = 0.25 * 2**attempt
            logger.debug("transient API error for group %r; retrying in %.2fs", snapshot.payload.group_key, delay)
            await asyncio.sleep(min(delay, 2.0))
        raise AssertionError("unreachable")

    async def apply(self, payload: WebhookPayload, received_at: datetime.datetime) -> Outcome:
        """Create or update the group's incident with this snapshot (no serialisation: see :meth:`submit`)."""
        gid = alertgroups.group_id(payload.receiver, payload.group_key)
        namespace = alertgroups.namespace_for(
            payload.group_labels,
            self.operator_namespace,
            allow_alert_namespace=self.allow_alert_namespace,
            watched=self.watch_namespaces,
        )
        status = alertgroups.alerts_status(payload, received_at)
        firing, resolved = status.firing, status.resolved
        created = False
        current: dict[str, Any] | None = None
        for _ in range(_ATTEMPTS):
            if current is None:
                current = await self._find(namespace, gid)
            if current is None or not alertgroups.takes_alerts(current, received_at):
                if payload.status != alertgroups.FIRING:
                    why = (
                        "its incident is closed or past its reopen window"
                        if current is not None
                        else "it has no incident"
                    )
                    note = f"the group is resolved and {why}: nothing to do"
                    return Outcome(namespace, None, note=note, firing=firing, resolved=resolved)
                sequence = 1 if current is None else alertgroups.sequence_of(current) + 1
                previous = current["metadata"]["name"] if current is not None else None
                try:
                    current = await self._create(namespace, payload, sequence, gid, received_at, previous)
                except _NamespaceMissing:
                    logger.warning(
                        "namespace %s does not exist; the incident of group %r goes to %s",
                        namespace,
                        payload.group_key,
                        self.operator_namespace,
                    )
                    namespace, current = self.operator_namespace, None
                    continue
                if current is None:  # lost a race: another POST or replica created it; read and update it
                    continue
                created = True
            probe = _UpdateProbe()
            name = current["metadata"]["name"]

            def mutate(body: dict[str, Any], probe: _UpdateProbe = probe) -> dict[str, Any] | None:
                return self._mutate(body, payload, status, received_at, probe)

            written = await kube.write_status(self.api, kube.INCIDENTS, namespace, name, mutate, body=current)
            if probe.closed or probe.calls == 0 or (written is None and probe.changed):
                # Closed meanwhile (a new incident is due) or deleted: find the current one again.
                self._forget(gid)
                current = None
                continue
            if written is not None:
                self.api_writes += 1
            self._remember(gid, namespace, name)
            return Outcome(
                namespace, name, created=created, written=written is not None, firing=firing, resolved=resolved
            )
        raise WriteError(f"gave up on group {payload.group_key!r} after {_ATTEMPTS} rounds of races")

    @staticmethod
    def _mutate(
        body: dict[str, Any],
        payload: WebhookPayload,
        alerts: AlertsStatus,
        received_at: datetime.datetime,
        probe: _UpdateProbe,
    ) -> dict[str, Any] | None:
        probe.calls += 1
        probe.body = body
        if not alertgroups.takes_alerts(body, received_at):
            probe.closed = True
            return None
        old = body.get("status") or {}
        status = dict(old)
        try:
            previous = AlertsStatus.model_validate(old["alerts"]) if old.get("alerts") else None
        except ValidationError:
            previous = None  # unreadable: this POST starts the record afresh
        status["alerts"] = alertgroups.with_fired_at(previous, alerts).to_dict()
        if not status.get("startedAt"):
            incident = Incident.model_validate({"metadata": body.get("metadata") or {}, "spec": body.get("spec")})
            status["startedAt"] = _rfc3339(lifecycle.started_at(incident, received_at))
            entry = alertgroups.clamped_start_entry(payload, received_at)
            if entry is not None:
                status["timeline"] = [*(status.get("timeline") or []), entry.to_dict()]
        probe.changed = status != old
        return status

    # -- finding and creating ------------------------------------------------------------------------

    async def _find(self, namespace: str, gid: str) -> dict[str, Any] | None:
        """The group's current incident (highest sequence), or None."""
        known = self._current.get(gid)
        if known is not None and known[0] == namespace:
            try:
                return await kube.read(self.api, kube.INCIDENTS, namespace, known[1])
            except kube.ApiError as exc:
                if exc.status != 404:
                    raise
            self._forget(gid)
        items = await kube.list_objects(
            self.api, kube.INCIDENTS, namespace, label_selector=f"{alertgroups.ALERT_GROUP_LABEL}={gid}"
        )
        if not items:
            return None
        return max(items, key=alertgroups.sequence_of)

    async def _create(
        self,
        namespace: str,
        payload: WebhookPayload,
        sequence: int,
        gid: str,
        received_at: datetime.datetime,
        previous: str | None,
    ) -> dict[str, Any] | None:
        """Create incident ``sequence`` of the group; None if it exists already (409: read it by the caller)."""
        targets = await self._map_pods(alertgroups.targets(payload), namespace)
        incident = alertgroups.new_incident(
            payload,
            namespace=namespace,
            sequence=sequence,
            workload_targets=targets,
            received_at=received_at,
            previous=previous,
        )
        body = incident.to_dict()
        body.pop("status", None)  # the status subresource ignores it on create; written next
        name = body["metadata"]["name"]
        try:
            created = await kube.create(self.api, kube.INCIDENTS, namespace, body)
        except kube.ApiError as exc:
            if exc.status == 404 and namespace != self.operator_namespace:
                raise _NamespaceMissing(namespace) from exc
            if exc.status != 409:
                raise
            existing = await kube.read(self.api, kube.INCIDENTS, namespace, name)
            labels = (existing.get("metadata") or {}).get("labels") or {}
            if labels.get(alertgroups.ALERT_GROUP_LABEL) != gid:
                raise WriteError(
                    f"incident {namespace}/{name} exists but does not belong to group {payload.group_key!r}"
                ) from exc
            self._remember(gid, namespace, name)
            return None
        self.api_writes += 1
        logger.info(
            "incident %s/%s created for alert group %r of receiver %r",
            namespace,
            name,
            payload.group_key,
            payload.receiver,
        )
        return created

    async def _map_pods(self, targets: list[Target], namespace: str) -> list[Target]:
        """Pods named by the alerts, as their controller (Deployment via its ReplicaSet) where they exist.

        Best effort and bounded in time: a Pod that is gone, unreadable or slow
        to read stays a Pod target. Creation does not wait on it for long.
        """
        if not any(t.kind == "Pod" for t in targets):
            return targets
        try:
            async with asyncio.timeout(_POD_LOOKUP_TIMEOUT):
                mapped = await asyncio.gather(*(self._controller_of(t, namespace) for t in targets))
        except TimeoutError:
            return targets
        unique: dict[tuple[str | None, str | None, str | None], Target] = {}
        for target in mapped:
            unique.setdefault((target.kind, target.name, target.namespace), target)
        return list(unique.values())

    async def _controller_of(self, target: Target, default_namespace: str) -> Target:
        if target.kind != "Pod" or target.name is None:
            return target
        namespace = target.namespace or default_namespace
        try:
            pod = await kube.read_pod(self.api, namespace, target.name)
            owner = _controller(pod.metadata.owner_references)
            if owner is None:
                return target
            if owner.kind == "ReplicaSet":
                replicaset = await kube.read_replica_set(self.api, namespace, owner.name)
                deployment = _controller(replicaset.metadata.owner_references)
                if deployment is not None and deployment.kind == "Deployment":
                    return Target(kind="Deployment", name=deployment.name, namespace=target.namespace)
                return Target(kind="ReplicaSet", name=owner.name, namespace=target.namespace)
            if owner.kind in ("StatefulSet", "DaemonSet"):
                return Target(kind=owner.kind, name=owner.name, namespace=target.namespace)
        except (kube.ApiError, ValueError):
            pass  # gone or forbidden: the Pod itself is still a fine target
        return target

    # -- the cache --------------------------------------------------------------------------------------

    def _remember(self, gid: str, namespace: str, name: str) -> None:
        self._current[gid] = (namespace, name)
        self._current.move_to_end(gid)
        while len(self._current) > _CACHE_SIZE:
            self._current.popitem(last=False)

    def _forget(self, gid: str) -> None:
        self._current.pop(gid, None)


class _NamespaceMissing(Exception):
    pass


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _controller(references: list[Any] | None) -> Any:
    for ref in references or []:
        if getattr(ref, "controller", False):
            return ref
    return None
