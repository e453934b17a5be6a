"""Write the chart's README.md from its values.yaml: ``python -m tests.chartdocs`` (``make chart-docs``).

The comments that start with ``# --`` above a key are its documentation (continued by the ``#``
lines that follow), as helm-docs reads them; the default is the value in values.yaml. A unit test
(tests/unit/chart/test_docs.py) fails when README.md is not what this writes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "incidentops"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")

HEADER = """\
# incidentops

A Kubernetes operator that runs an incident-response plan inside the cluster: `Incident` and
`EscalationPolicy` objects, an Alertmanager receiver, escalation, notifications, containment actions
and evidence. See the project's README for what it does.

<!-- Generated from values.yaml by `make chart-docs`; edit values.yaml, not this file. -->

## Installing

```sh
helm install incidentops charts/incidentops --namespace incidentops --create-namespace
```

This installs the CRDs (kept when the release is uninstalled: `crds.keep`), the operator's
ServiceAccount and RBAC, two replicas with a PodDisruptionBudget, and the Services of the receiver
(`<release>-receiver`, port 8080) and of the metrics (`<release>-metrics`, port 9090). Unless
`receiver.token.existingSecret` names one, the chart creates the Secret `<release>-receiver-token`
with a random bearer token, kept across upgrades; Alertmanager sends it:

```yaml
receivers:
  - name: incidentops
    webhook_configs:
      - url: http://incidentops-receiver.incidentops.svc:8080/api/v1/alerts
        http_config:
          authorization:
            credentials_file: /etc/alertmanager/secrets/incidentops-receiver-token/token
```

The Secret lives in the release's namespace: give Alertmanager a copy in its own (kube-prometheus-stack
mounts the Secrets listed in `alertmanager.alertmanagerSpec.secrets` under `/etc/alertmanager/secrets/`),
or create the token yourself in both places and name it in `receiver.token.existingSecret`.
With `receiver.tls.enabled` the receiver serves HTTPS (a cert-manager Certificate for the Service's
names, or `receiver.tls.existingSecret`): use `https://` and give Alertmanager the issuing CA in
`http_config.tls_config.ca_file`.

With kube-prometheus-stack, `alertmanagerConfig.enabled` does this instead: an AlertmanagerConfig
in the release's namespace that reads the token Secret there (prometheus-operator limits its route to
alerts of that namespace unless the Alertmanager sets `alertmanagerConfigMatcherStrategy: None`), and
`metrics.serviceMonitor.enabled` and `metrics.prometheusRule.enabled` (with the `release` label its
Prometheus selects) scrape the operator and alert on it.

## Values

| Key | Type | Default | Description |
|---|---|---|---|
"""


def _documented(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) of every key with a ``# --`` comment, in file order."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            if not stripped:
                pending = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            out.append((".".join(k for _, k in stack), " ".join(pending)))
            pending = None
    return out


def _lookup(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), "null"
    )


def render(chart: Path = CHART) -> str:
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = []
    for key, description in _documented(text):
        value = _lookup(values, key)
        default = json.dumps(value, separators=(", ", ": ")).replace("|", "\\|")
        cell = description.replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(value)} | `{default}` | {cell} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    (CHART / "README.md").write_text(render())
    print(CHART / "README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
