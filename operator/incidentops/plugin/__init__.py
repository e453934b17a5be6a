"""``kubectl incident``: the command line people use to respond to incidents.

Where it sits: below ``incidentops.cli`` (which installs it as the
``kubectl-incident`` console script, so kubectl finds it as a plugin), above
``actions`` (the evidence archive's format), ``kube``, ``domain`` and ``api``. It
writes only ``spec`` (acknowledgement, containment, resolution, statusUpdate, or
a new Incident; a drill's alert group goes to the operator's receiver); the operator reacts.

- ``args``: the command line (kubectl's ``-n``, ``--context``, ``--kubeconfig``
  anywhere on the line).
- ``logic``: pure: the episode rule, ``at`` stamps, names, the merge patches.
- ``render``: pure: the list table, ``describe``, the evidence table, JSON/YAML.
- ``evidence``: ``kubectl incident evidence``: verify and extract an incident's evidence.
- ``connection``: kubeconfig and context, and the cluster's refusals explained.
- ``scenario``: ``kubectl incident drill start``'s scenario file, and the Incident or alert group it becomes.
- ``receiver``: posting a drill's synthetic alert group to the operator's Alertmanager receiver.
- ``app``: the commands, and :func:`main`.

Usage is documented in ``docs/plugin.md``.
"""

from incidentops.plugin.app import main

__all__ = ["main"]
