"""The local control plane, for the tests and for ``incidentops dev``.

Like ``kopf.testing``, this stands apart from the operator's runtime: the
handlers, the receiver and the scheduler never import it; only the CLI's
``dev`` command and the tests do.
"""
