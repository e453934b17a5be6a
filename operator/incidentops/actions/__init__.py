"""Actions: the changes the operator makes to contain an incident, one module per type, one interface.

Where it sits: beside ``notify`` and ``kube``; the action runner (``incidentops.handlers.actions``) drives
them, the domain (``incidentops.domain.actions``) decides which run and when. ``base.py`` is the interface
and what each step promises; ``registry`` maps a type to its module; ``common.py`` is what the workload
modules share (their targets, the GitOps guard, writes under a resourceVersion precondition).

- ``rollback.py``: a Deployment back to an earlier ReplicaSet revision, as ``kubectl rollout undo`` does.
- ``maintenance.py``: a Service's selector (or an Ingress's backends) switched to a maintenance backend.
- ``quarantine.py``: Pods relabelled out of their ReplicaSet and Service, isolated by a NetworkPolicy.
- ``scale.py``: a Deployment's replica count.
- ``snapshot.py``: evidence (``snapshot.SNAPSHOT``): ``evidence.py`` collects it, ``redact.py`` removes
  secrets from it, ``archive.py`` stores it as immutable gzip'd ConfigMaps and reads it back.
"""
