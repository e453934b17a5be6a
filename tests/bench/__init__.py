"""Benchmarks of incidentops against a real local control plane (``make bench``).

``python -m tests.bench [escalation|all] [--incidents N] [--runs R] [--out DIR]``
runs them and writes one JSON file per benchmark to ``bench/results/<name>.json``.
``common`` brings up what every benchmark needs (control plane, CRDs, the
chart's RBAC, the operator under the chart's ServiceAccount, local receivers)
and holds the shared measuring code; each other module is one benchmark. What
the figures mean and how they are measured is in ``docs/benchmarks.md``.
"""
