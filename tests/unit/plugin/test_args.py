"""The command line of ``kubectl incident``: what parses, what is misuse (exit 2)."""

from __future__ import annotations

import pytest

from incidentops.plugin import main
from incidentops.plugin.args import DEFAULT_REQUEST_TIMEOUT, parse


def test_global_flags_before_the_command() -> None:
    args = parse(["-n", "payments", "--context", "prod", "--kubeconfig", "/k", "list"])
    assert (args.command, args.namespace, args.context, args.kubeconfig) == ("list", "payments", "prod", "/k")


def test_global_flags_after_the_command() -> None:
    args = parse(["ack", "checkout-down", "--namespace=payments", "--context", "prod", "--kubeconfig=/k"])
    assert (args.command, args.name, args.namespace, args.context, args.kubeconfig) == (
        "ack",
        "checkout-down",
        "payments",
        "prod",
        "/k",
    )


def test_global_flags_default_to_none() -> None:
    args = parse(["list"])
    assert args.namespace is None and args.context is None and args.kubeconfig is None
    assert args.request_timeout == DEFAULT_REQUEST_TIMEOUT
    assert args.all_namespaces is False and args.output is None


def test_flag_after_the_command_wins_over_one_before() -> None:
    assert parse(["-n", "a", "list", "-n", "b"]).namespace == "b"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5", 5.0), ("0", 0.0), ("1.5", 1.5), ("30s", 30.0), ("1m", 60.0), ("500ms", 0.5)],
)
def test_request_timeout(value: str, seconds: float) -> None:
    assert parse(["--request-timeout", value, "list"]).request_timeout == seconds


def test_list_flags() -> None:
    args = parse(["list", "-A", "-o", "json"])
    assert args.all_namespaces and args.output == "json"
    assert parse(["ls", "--all-namespaces"]).command == "list"
    assert parse(["get", "-o", "wide"]).output == "wide"


def test_declare_all_options() -> None:
    args = parse(
        [
            "declare",
            "--title",
            "Checkout down",
            "--severity",
            "p1",
            "--type",
            "Availability",
            "--description",
            "502s",
            "--name",
            "checkout-down",
            "--drill",
            "--policy",
            "ops/payments",
        ]
    )
    assert args.title == "Checkout down"
    assert args.severity == "P1"
    assert args.incident_type == "availability"
    assert args.description == "502s"
    assert args.name == "checkout-down"
    assert args.drill is True
    assert args.policy == "ops/payments"


def test_declare_defaults() -> None:
    args = parse(["declare", "--title", "x", "--severity", "P3"])
    assert args.name is None and args.incident_type is None and args.drill is False and args.policy is None


def test_resolve_and_update_and_marks() -> None:
    resolve = parse(["resolve", "x", "--summary", "fixed", "--root-cause", "bad config"])
    assert (resolve.summary, resolve.root_cause) == ("fixed", "bad config")
    assert parse(["resolve", "x", "--summary", "fixed"]).root_cause is None
    assert parse(["update", "x", "-m", "still down"]).message == "still down"
    assert parse(["contain", "x", "--note", "rolled back"]).note == "rolled back"
    assert parse(["ack", "x"]).note is None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["ack"],
        ["ack", "Not_A_Name"],
        ["resolve", "x"],
        ["resolve", "x", "--summary", "  "],
        ["update", "x"],
        ["declare", "--severity", "P1"],
        ["declare", "--title", "x"],
        ["declare", "--title", "x", "--severity", "P5"],
        ["declare", "--title", "x", "--severity", "P1", "--type", "weather"],
        ["declare", "--title", "", "--severity", "P1"],
        ["declare", "--title", "x" * 257, "--severity", "P1"],
        ["declare", "--title", "x", "--severity", "P1", "--name", "-bad-"],
        ["list", "-o", "xml"],
        ["describe", "x", "-o", "wide"],
        ["ack", "x", "--note", "n" * 4097],
        ["--request-timeout", "soon", "list"],
        ["list", "--bogus-flag"],
        ["drill"],
        ["drill", "start"],
        ["drill", "start", "--scenario", "s.yaml", "--timeout", "soon"],
        ["drill", "start", "--scenario", "s.yaml", "--name", "Bad_Name"],
        ["drill", "list", "-o", "name"],
    ],
)
def test_misuse_exits_2_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: kubectl incident" in err
    assert "Traceback" not in err


def test_drill_flags() -> None:
    args = parse(["drill", "start", "--scenario", "s.yaml", "-n", "ops", "--timeout", "2m", "-o", "name"])
    assert (args.command, args.drill_command, str(args.scenario), args.namespace, args.timeout, args.output) == (
        "drill",
        "start",
        "s.yaml",
        "ops",
        120.0,
        "name",
    )
    assert parse(["-n", "ops", "drill", "ls", "-A"]).drill_command == "list"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("list", "describe", "declare", "ack", "contain", "update", "resolve", "drill"):
        assert command in out
