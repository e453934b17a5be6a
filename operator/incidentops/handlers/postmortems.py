"""The post-mortem writer: a resolved incident's draft (a drill's assessment) rendered and stored once.

Where it sits: after every look the reconciler hands the incident to
:meth:`PostmortemWriter.submit`; the domain (``domain.postmortem.draft_due``)
says whether a draft is wanted now. One task per incident then reads the
policy's template ConfigMap if it names one, renders the facts of the record
(``notify.postmortem``), creates the ConfigMap, and records its name in
``status.postmortem.ref`` (or ``status.assessment.ref``) with an Event.

Written once, whatever crashes: the ConfigMap's name follows from the incident's
uid and episode (``draft_name``), it is created only if absent and immutable, and
the status records it after it exists. A crash between the two finds it at the
next look: the create answers 409, the existing ConfigMap is the draft (it is
the same incident's: its uid annotation says so), and only the record is written.
Owned by the Incident (deleted with it) unless the policy's
``evidence.retainOnDelete`` (the default) keeps the record after the incident.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from incidentops import kube
from incidentops.api import Incident, reasons
from incidentops.api.common import API_VERSION, GROUP
from incidentops.api.policy import EscalationPolicy, default_sla
from incidentops.domain import postmortem as postmortems
from incidentops.domain.common import clip, utc
from incidentops.domain.decisions import Transition
from incidentops.domain.lifecycle import episode_facts
from incidentops.domain.selection import Selection
from incidentops.handlers.actions import Ledger
from incidentops.handlers.scheduler import Key
from incidentops.notify import postmortem as documents

__all__ = ["INCIDENT_LABEL", "KIND_LABEL", "UID_ANNOTATION", "PostmortemWriter", "configmap"]

logger = logging.getLogger("incidentops.postmortems")

INCIDENT_LABEL: Final = f"{GROUP}/incident"
KIND_LABEL: Final = f"{GROUP}/postmortem"
UID_ANNOTATION: Final = f"{GROUP}/incident-uid"


def configmap(
    incident: Incident, name: str, kind: str, text: str, facts: dict[str, Any], owned: bool
) -> dict[str, Any]:
    """The draft's ConfigMap: immutable, labelled to the incident, owned by it when ``owned``."""
    meta = incident.metadata
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": meta.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "incidentops",
            INCIDENT_LABEL: (meta.name or "")[:63],
            KIND_LABEL: kind,
        },
        "annotations": {f"{GROUP}/incident": f"{meta.namespace}/{meta.name}", UID_ANNOTATION: meta.uid or ""},
    }
    if owned and meta.uid:
        metadata["ownerReferences"] = [
            {"apiVersion": API_VERSION, "kind": "Incident", "name": meta.name, "uid": meta.uid}
        ]
    key = postmortems.ASSESSMENT_KEY if kind == "assessment" else postmortems.DRAFT_KEY
    data = {key: text, postmortems.FACTS_KEY: json.dumps(facts, indent=1) + "\n"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "immutable": True, "data": data}


class NotOurs(Exception):
    """A ConfigMap of the draft's name exists and is another incident's: nothing is taken over."""


class PostmortemWriter:
    def __init__(self, api: kube.ApiClient, ledger: Ledger, clock: Callable[[], datetime.datetime]) -> None:
        self.api = api
        self.ledger = ledger
        self.clock = clock
        self._busy: dict[Key, asyncio.Task[None]] = {}
        # Only a leader writes: before run() and after its stop, nothing is started.
        self._leading = False

    async def run(self, stop: asyncio.Event) -> None:
        """A part of the leader, like the action runner: drafts are written only while this replica leads;
        at ``stop`` the drafts being written are cancelled (a draft is created once, under its name, so
        the next leader finishes what was cut short)."""
        self._leading = True
        try:
            await stop.wait()
        finally:
            self._leading = False
            tasks = list(self._busy.values())
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def submit(self, key: Key, incident: Incident, selection: Selection, settled: bool) -> None:
        """Start writing the incident's draft if the domain says it is due now and none is being written."""
        if key in self._busy or not self._leading:
            return
        policy = selection.policy
        auto_resolve = policy.spec.alerts.auto_resolve if policy is not None else True
        status = incident.status
        if status.episode is None or status.episode_started_at is None:
            return
        facts = episode_facts(incident.spec, status, auto_resolve)
        resolved_at = facts.resolved.at if facts.resolved is not None else None
        if not postmortems.draft_due(status, resolved_at, settled, self.clock()):
            return
        task = asyncio.create_task(self._write(key, incident, selection), name=f"postmortem:{key[0]}/{key[1]}")
        self._busy[key] = task
        task.add_done_callback(lambda _: self._busy.pop(key, None))

    async def drain(self) -> None:
        """Wait for every draft being written (tests, shutdown)."""
        while self._busy:
            await asyncio.wait(list(self._busy.values()))

    async def _template(self, policy: EscalationPolicy | None, kind: str) -> tuple[str | None, str | None]:
        """The policy's template for ``kind``, if it names a ConfigMap with one; and why it cannot be used."""
        settings = policy.spec.postmortems if policy is not None else None
        if policy is None or settings is None or settings.template_config_map is None:
            return None, None
        namespace = policy.metadata.namespace or ""
        name = settings.template_config_map
        found = await kube.get_object(self.api, kube.CONFIGMAPS, namespace, name)
        if found is None:
            return None, f"the policy's template ConfigMap {namespace}/{name} does not exist"
        text = (found.get("data") or {}).get(documents.TEMPLATE_KEYS[kind])
        return (text, None) if isinstance(text, str) else (None, None)

    async def _write(self, key: Key, incident: Incident, selection: Selection) -> None:
        try:
            await self._store(key, incident, selection)
        except asyncio.CancelledError:
            raise
        except NotOurs as exc:
            logger.warning("post-mortem draft of %s/%s: %s", *key, exc)
        except Exception as exc:
            # Not lost: the state stays Pending and the next look (the settle wake-up, the due time, any
            # change) submits it again.
            logger.warning(
                "post-mortem draft of %s/%s: %s",
                *key,
                kube.describe(exc),
                exc_info=kube.error_kind(exc) is kube.ErrorKind.OTHER,
            )

    async def _store(self, key: Key, incident: Incident, selection: Selection) -> None:
        policy = selection.policy
        drill = bool(incident.spec.drill)
        kind = "assessment" if drill else "postmortem"
        status = incident.status
        assert status.episode is not None
        sla = policy.spec.sla_for(selection.severity) if policy is not None else default_sla(selection.severity)
        auto_resolve = policy.spec.alerts.auto_resolve if policy is not None else True
        facts = postmortems.draft_facts(incident, sla, episode_facts(incident.spec, status, auto_resolve))
        override, missing = await self._template(policy, kind)
        rendered = documents.render(kind, facts, override)
        problem = missing or rendered.problem
        name = postmortems.draft_name(incident.metadata.uid or f"{key[0]}/{key[1]}", status.episode, drill)
        retain = policy is None or policy.spec.evidence.retain_on_delete
        body = configmap(incident, name, kind, rendered.text, facts, owned=not retain)
        await self._create_once(body, incident.metadata.uid or "")
        uid = incident.metadata.uid or ""
        now = self.clock()
        note = f"{problem}; the shipped template was used" if problem else None
        transitions = [
            Transition(
                "Normal",
                reasons.DRILL_ASSESSED if drill else reasons.POSTMORTEM_DRAFTED,
                clip(f"{'assessment' if drill else 'post-mortem draft'} written to ConfigMap {name}"),
            )
        ]
        if problem:
            transitions.append(Transition("Warning", reasons.POSTMORTEM_TEMPLATE_FAILED, clip(note or "")))
        written = await self.ledger.change(
            key, uid, lambda fresh: postmortems.drafted(fresh.status, name, now, note), transitions
        )
        if written is not None:
            logger.info("%s/%s: %s written to ConfigMap %s at %s", *key, kind, name, utc(now).isoformat())

    async def _create_once(self, body: dict[str, Any], uid: str) -> None:
        """Create the ConfigMap; one already there is the draft when it is this incident's (a retry)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            await kube.create_object(self.api, kube.CONFIGMAPS, namespace, body)
            return
        except kube.ApiError as exc:
            if exc.status != 409:
                raise
        existing = await kube.get_object(self.api, kube.CONFIGMAPS, namespace, name)
        annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
        if existing is None or annotations.get(UID_ANNOTATION) != uid:
            raise NotOurs(f"ConfigMap {namespace}/{name} exists and is not this incident's draft")
