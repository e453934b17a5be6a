"""The Alertmanager receiver: webhook POSTs become Incidents, one per alert group.

Where it sits: beside ``handlers``, above ``kube`` and ``domain``; it never
imports ``handlers``. ``handlers.runtime`` runs :func:`run_receiver` as one of
the operator's tasks, on every replica.

- ``payload``: the version 4 webhook payload, a strict pydantic model, parsed in one pass.
- ``auth``: bearer tokens (current and previous) from files, reloaded on change.
- ``writer``: create-or-update of the group's Incident, serialised and coalesced per group.
- ``server``: the aiohttp application and :func:`run_receiver`.

What a group's Incident is called and what it says is decided by the domain
(``domain.alertgroups``); the operator (``domain.plan``) turns ``status.alerts``
into resolution and reopening. See docs/intake.md.
"""

from incidentops.intake.server import ALERTS_PATH, make_app, run_receiver

__all__ = ["ALERTS_PATH", "make_app", "run_receiver"]
