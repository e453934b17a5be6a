"""incidentops: a Kubernetes operator that runs an incident-response plan.

The public surface is the CLI (``incidentops``, ``kubectl-incident``), the CRDs
and ``incidentops.testing`` (the local control plane); everything else is an
implementation detail and may change.
"""

__version__ = "0.1.0"
