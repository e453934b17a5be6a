"""The Alertmanager and Prometheus configuration `dev --with-alertmanager` and the intake tests run: the examples,
with only the receiver URL, the token file and the timings substituted."""

from __future__ import annotations

from pathlib import Path

import yaml

from incidentops.testing.alertmanager import DEV_RULES_FOR, alertmanager_config, example_rule_file

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_example_alertmanager_config_with_the_receiver_and_token_substituted(tmp_path: Path) -> None:
    example = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())
    token = tmp_path / "token"
    config = alertmanager_config(
        ["http://127.0.0.1:1234/api/v1/alerts"], token, example=EXAMPLES / "alertmanager.yml", group_wait="5s"
    )
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:1234/api/v1/alerts"
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    assert webhook["send_resolved"] is True and webhook["max_alerts"] == 0
    assert config["route"]["group_wait"] == "5s"
    assert config["route"]["group_by"] == example["route"]["group_by"]
    assert config["route"]["receiver"] == example["route"]["receiver"] == config["receivers"][0]["name"]


def test_every_example_rule_file_keeps_its_rules_with_a_shorter_for(tmp_path: Path) -> None:
    for source in sorted((EXAMPLES / "prometheusrules").glob("*.yaml")):
        spec = yaml.safe_load(source.read_text())["spec"]
        written = yaml.safe_load(example_rule_file(source, tmp_path / "rules", **{"for": DEV_RULES_FOR}).read_text())
        assert [r["alert"] for g in written["groups"] for r in g["rules"]] == [
            r["alert"] for g in spec["groups"] for r in g["rules"]
        ]
        for group, original in zip(written["groups"], spec["groups"], strict=True):
            assert group["interval"] == "1s"
            for rule, before in zip(group["rules"], original["rules"], strict=True):
                assert rule["for"] == DEV_RULES_FOR
                assert (rule["expr"], rule["labels"]) == (before["expr"], before["labels"])
