"""Kopf handlers, the operator's runtime and (later) the scheduler: thin glue.

Where it sits: under the CLI, above ``actions``, ``notify`` and ``kube``.
Handlers read objects, ask ``domain`` what the status should be, and write it
through ``kube.write_status``; they decide nothing themselves.
"""
