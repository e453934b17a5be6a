"""docs/operating.md stays true: every metric the operator exports, with its labels, and every alert of the
chart with a section of its own (the anchor its runbook_url points at)."""

from __future__ import annotations

import re
from pathlib import Path

from incidentops import metrics
from tests.unit.chart.helm import one, template

DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def _rows() -> dict[str, tuple[str, set[str]]]:
    """The metrics table: name -> (type, labels)."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`incidentops_"):
            labels = set(re.findall(r"`(\w+)`", cells[2]))
            rows[cells[0].strip("`")] = (cells[1], labels)
    return rows


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    rows = _rows()
    exported = {}
    for family in metrics.REGISTRY.collect():
        collector = metrics.REGISTRY._names_to_collectors[family.name]  # type: ignore[attr-defined]
        name = f"{family.name}_total" if family.type == "counter" else family.name
        exported[name] = (family.type, set(getattr(collector, "_labelnames", ())))
    assert rows == exported


def test_every_operator_alert_has_its_runbook_section() -> None:
    rule = one(template("--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule", "io")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    sections = set(re.findall(r"^### (Incidentops\w+)$", DOC.read_text(), flags=re.M))
    assert sections == alerts
