"""The chart's alerts on the operator, run by promtool on series that should fire them and series that should not.

The scenarios are operator-alerts.test.yaml (``promtool test rules``); this
renders the rules as the chart installs them (default thresholds), checks that
every alert of the chart has a scenario, and runs promtool on both.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.chart.helm import one, template
from tests.unit.intake.test_examples import tool

SCENARIOS = Path(__file__).with_name("operator-alerts.test.yaml")


def _rules() -> dict[str, object]:
    rule = one(template("--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule", "io")
    spec: dict[str, object] = rule["spec"]
    return spec


def test_every_operator_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    rules = _rules()
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}  # type: ignore[attr-defined]
    scenarios = yaml.safe_load(SCENARIOS.read_text())
    tested = {t["alertname"] for group in scenarios["tests"] for t in group["alert_rule_test"]}
    assert tested == alerts, f"alerts without a scenario: {alerts - tested}; scenarios of no alert: {tested - alerts}"
    for alert in alerts:
        cases = [t for group in scenarios["tests"] for t in group["alert_rule_test"] if t["alertname"] == alert]
        assert any(t.get("exp_alerts") for t in cases), f"{alert}: no scenario where it fires"
        assert any(not t.get("exp_alerts") for t in cases), f"{alert}: no scenario where it stays silent"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(SCENARIOS, tmp_path / SCENARIOS.name)
    result = subprocess.run(
        [tool("promtool"), "test", "rules", SCENARIOS.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_runbook_url_links_every_alert_to_its_section() -> None:
    assert all("runbook_url" not in r["annotations"] for g in _rules()["groups"] for r in g["rules"])  # type: ignore[attr-defined]
    rule = one(
        template(
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.prometheusRule.runbookUrl=https://wiki.example/incidentops/operating",
        ),
        "PrometheusRule",
        "io",
    )
    for entry in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        expected = f"https://wiki.example/incidentops/operating#{entry['alert'].lower()}"
        assert entry["annotations"]["runbook_url"] == expected
