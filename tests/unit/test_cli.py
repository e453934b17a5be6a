"""The command line: clear messages and non-zero exits on misuse, CRDs on stdout, JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from incidentops import cli


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(["launch"])
    assert exit.value.code == 2
    assert "invalid choice: 'launch'" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main([])
    assert exit.value.code == 2
    assert "required" in capsys.readouterr().err


def test_an_invalid_setting_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--metrics-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "metrics_port" in err and "65535" in err


def test_a_watch_namespace_pattern_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Kopf is given exact names (it may not list namespaces to match a pattern): a glob would watch nothing.
    assert cli.main(["run", "--watch-namespace", "payments", "--watch-namespace", "team-*"]) == 2
    err = capsys.readouterr().err
    assert "watch_namespaces" in err and "'team-*' is not a namespace name" in err


def test_crds_are_printed_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crds"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["spec"]["names"]["kind"] for d in docs} == {"Incident", "EscalationPolicy"}


def test_json_log_lines_carry_the_object() -> None:
    record = logging.LogRecord("kopf.objects", logging.WARNING, __file__, 1, "paged %s", ("on-call",), None)
    record.k8s_ref = {"namespace": "payments", "name": "checkout-down", "kind": "Incident", "uid": "x"}
    line = json.loads(cli.JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["message"] == "paged on-call"
    assert line["object"] == {"namespace": "payments", "name": "checkout-down", "kind": "Incident"}
