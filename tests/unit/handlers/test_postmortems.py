"""The post-mortem writer: the draft's ConfigMap written once whatever crashes (deterministic name, create if
absent, recorded after it exists), owned by the incident only when the policy does not retain evidence, and a
policy's template read from its ConfigMap (a missing one falls back, and says so)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from incidentops import kube
from incidentops.api import Incident, reasons
from incidentops.api.incident import IncidentStatus, PostmortemState
from incidentops.api.policy import EscalationPolicy
from incidentops.domain.decisions import Transition
from incidentops.domain.selection import Selection
from incidentops.handlers.postmortems import UID_ANNOTATION, PostmortemWriter
from tests.unit.domain.builders import Simulation, at, incident, level, mark, policy
from tests.unit.handlers.test_actions import MemoryLedger
from tests.unit.kubefake import api_error


class ConfigMaps:
    """``kube.create_object`` / ``get_object`` of ConfigMaps, in memory, with the API server's 409."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.creates = 0
        monkeypatch.setattr(kube, "create_object", self.create)
        monkeypatch.setattr(kube, "get_object", self.get)

    async def create(self, api: Any, kind: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.creates += 1
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise api_error(409, "AlreadyExists")
        self.objects[key] = body
        return body

    async def get(self, api: Any, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))


class Ledger(MemoryLedger):
    """The reconciler's side (the action runner tests'), whose next write can fail as a crash would."""

    crash: bool = False

    async def change(
        self,
        key: Any,
        uid: str,
        compute: Callable[[Incident], IncidentStatus | None],
        transitions: Sequence[Transition] = (),
    ) -> Incident | None:
        if self.crash:
            self.crash = False
            raise ConnectionResetError("the operator died between the ConfigMap and the status")
        return await super().change(key, uid, compute, transitions)


def resolved(**spec: Any) -> tuple[Incident, Selection]:
    """A P1 resolved at 10m under a policy with ``spec`` added (camelCase keys, as in YAML)."""
    base = policy(levels=[level("on-call")]).to_dict()
    base["spec"].update(spec)
    sim = Simulation(incident(severity="P1"), [EscalationPolicy.model_validate(base)])
    sim.step(at(0))
    sim.edit(resolution=mark(10, summary="rolled back"))
    sim.step(at(10))
    return sim.incident, sim.selection()


async def writer(
    ledger: Ledger, stop: asyncio.Event | None = None, clock: Callable[[], datetime.datetime] = lambda: at(11)
) -> PostmortemWriter:
    """A writer running as a leader's part (until ``stop``, if one is given)."""
    pm = PostmortemWriter(api=None, ledger=ledger, clock=clock)  # type: ignore[arg-type]
    asyncio.get_running_loop().create_task(pm.run(stop or asyncio.Event()))
    await asyncio.sleep(0)  # the part starts: this replica leads
    return pm


async def test_only_a_leading_writer_writes_and_its_stop_cancels_what_it_was_writing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved()
    idle = PostmortemWriter(api=None, ledger=Ledger(inc), clock=lambda: at(11))  # type: ignore[arg-type]
    idle.submit(("team", "inc"), inc, selection, settled=True)
    assert not idle._busy, "a replica that does not lead writes no draft"
    stop = asyncio.Event()
    pm = await writer(Ledger(inc), stop)
    pm.submit(("team", "inc"), inc, selection, settled=True)
    assert pm._busy
    stop.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not pm._busy, "stopping leading cancels the drafts being written"
    written = dict(configmaps.objects)
    pm.submit(("team", "inc"), inc, selection, settled=True)
    assert not pm._busy and configmaps.objects == written, "after its stop the writer starts nothing"


async def test_a_crash_between_the_configmap_and_the_status_leaves_one_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved()
    ledger = Ledger(inc)
    ledger.crash = True
    pm = await writer(ledger)
    pm.submit(("team", "inc"), inc, selection, settled=True)
    await pm.drain()
    assert ledger.incident.status.postmortem is not None and ledger.incident.status.postmortem.ref is None
    assert len(configmaps.objects) == 1
    # The next look: the create answers 409, the ConfigMap is this incident's, only the record is written.
    pm.submit(("team", "inc"), ledger.incident, selection, settled=True)
    await pm.drain()
    state = ledger.incident.status.postmortem
    assert state is not None and state.state is PostmortemState.DRAFT
    assert [name for _, name in configmaps.objects] == [state.ref]
    assert configmaps.creates == 2
    assert [t.reason for t in ledger.events] == [reasons.POSTMORTEM_DRAFTED]
    # Recorded: nothing more to write.
    pm.submit(("team", "inc"), ledger.incident, selection, settled=True)
    await pm.drain()
    assert configmaps.creates == 2
    [body] = configmaps.objects.values()
    assert body["immutable"] is True and "ownerReferences" not in body["metadata"]
    assert body["metadata"]["labels"]["incidentops.dev/incident"] == "inc"
    assert body["data"]["postmortem.md"].startswith("# Incident Post-Mortem: Checkout is down")


async def test_a_configmap_of_that_name_that_is_not_the_incidents_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved()
    ledger = Ledger(inc)
    pm = await writer(ledger)
    pm.submit(("team", "inc"), inc, selection, settled=True)
    await pm.drain()
    [body] = configmaps.objects.values()
    body["metadata"]["annotations"][UID_ANNOTATION] = "someone-else"
    ledger.incident = inc  # as before the record
    pm.submit(("team", "inc"), inc, selection, settled=True)
    await pm.drain()
    assert ledger.incident.status.postmortem is not None and ledger.incident.status.postmortem.ref is None


async def test_without_retained_evidence_the_incident_owns_its_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved(evidence={"retainOnDelete": False})
    pm = await writer(Ledger(inc))
    pm.submit(("team", "inc"), inc, selection, settled=True)
    await pm.drain()
    [body] = configmaps.objects.values()
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "incidentops.dev/v1alpha1", "kind": "Incident", "name": "inc", "uid": "uid-1"}
    ]


async def test_not_before_the_response_settles_or_settle_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved()
    pm = await writer(Ledger(inc), clock=lambda: at(10, seconds=5))
    pm.submit(("team", "inc"), inc, selection, settled=False)
    await pm.drain()
    assert configmaps.creates == 0
    late = await writer(Ledger(inc), clock=lambda: at(10) + datetime.timedelta(seconds=30))
    late.submit(("team", "inc"), inc, selection, settled=False)
    await late.drain()
    assert configmaps.creates == 1


async def test_a_missing_template_configmap_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    configmaps = ConfigMaps(monkeypatch)
    inc, selection = resolved(postmortems={"templateConfigMap": "pm-templates"})
    ledger = Ledger(inc)
    pm = await writer(ledger)
    pm.submit(("team", "inc"), inc, selection, settled=True)
    await pm.drain()
    assert [t.reason for t in ledger.events] == [reasons.POSTMORTEM_DRAFTED, reasons.POSTMORTEM_TEMPLATE_FAILED]
    assert "pm-templates does not exist" in ledger.events[1].message
    # And one that exists is used.
    configmaps.objects[("incidentops", "pm-templates")] = {"data": {"postmortem.md.j2": "# {{ pm.incident.title }}"}}
    ledger2 = Ledger(inc)
    pm2 = await writer(ledger2)
    configmaps.objects = {k: v for k, v in configmaps.objects.items() if k[0] == "incidentops"}
    pm2.submit(("team", "inc"), inc, selection, settled=True)
    await pm2.drain()
    draft = next(v for k, v in configmaps.objects.items() if k[0] == "team")
    assert draft["data"]["postmortem.md"] == "# Checkout is down\n"
