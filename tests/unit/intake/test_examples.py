"""The intake examples are valid for the tools that read them: amtool and promtool (when installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RULES = sorted((EXAMPLES / "prometheusrules").glob("*.yaml"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make debs installs it)")
    return path


def test_alertmanager_example_points_at_the_receiver_with_a_token_file() -> None:
    config = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())
    [receiver] = config["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert config["route"]["receiver"] == receiver["name"]
    assert webhook["url"].endswith("/api/v1/alerts")
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"]
    assert "namespace" in config["route"]["group_by"]


def test_alertmanager_example_passes_amtool(tmp_path: Path) -> None:
    amtool = tool("amtool")
    text = (EXAMPLES / "alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    token = tmp_path / "token"
    token.write_text("token")
    config["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_prometheus_rules_pass_promtool(path: Path, tmp_path: Path) -> None:
    rule = yaml.safe_load(path.read_text())
    assert rule["kind"] == "PrometheusRule"
    for group in rule["spec"]["groups"]:
        for entry in group["rules"]:
            assert entry["labels"]["severity"] in {"critical", "error", "warning", "info"}
            assert entry["annotations"]["summary"] and entry["annotations"]["description"]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_seeds_thresholds_are_covered() -> None:
    exprs = {
        entry["alert"]: entry["expr"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["spec"]["groups"]
        for entry in group["rules"]
    }
    assert "> 0.01" in exprs["ErrorRateAbove1Percent"]
    assert "> 0.05" in exprs["ErrorRateAbove5Percent"]
    assert "> 1" in exprs["LatencyP95Above1s"] and "0.95" in exprs["LatencyP95Above1s"]
    assert "< 0.99" in exprs["AvailabilityBelow99Percent"]
