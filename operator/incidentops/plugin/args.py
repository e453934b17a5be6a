"""The command line of ``kubectl incident``.

kubectl hands a plugin every argument after its name, flags included, so the
global flags kubectl users type (``-n``, ``--context``, ``--kubeconfig``) are
accepted before the command and after it: ``kubectl incident -n payments list``
and ``kubectl incident list -n payments`` mean the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from incidentops.api import IncidentType, Severity, parse_duration
from incidentops.domain import report as domain_report
from incidentops.plugin.logic import is_valid_name

SEVERITIES = tuple(s.value for s in Severity)
TYPES = tuple(t.value for t in IncidentType)
DEFAULT_REQUEST_TIMEOUT = 30.0

DESCRIPTION = (
    "Respond to incidents managed by incidentops: list, describe, declare, ack, contain, update, resolve;"
    " their actions: actions, approve, undo, release; their evidence and their post-mortem; drills; and the"
    " incident report."
)
EPILOG = """\
examples:
  kubectl incident list -A
  kubectl incident declare --title "Checkout returns 502" --severity P1 --type availability
  kubectl incident ack checkout-down --note "looking at the 14:05 deploy"
  kubectl incident update checkout-down --message "Rolled back; watching error rates"
  kubectl incident resolve checkout-down --summary "Rolled back 14:05 deploy" --root-cause "bad config"
  kubectl incident actions checkout-down
  kubectl incident approve checkout-down rollback-checkout
  kubectl incident evidence checkout-down --verify --extract ./checkout-down-evidence
  kubectl incident drill start --scenario examples/drills/security-tabletop.yaml
  kubectl incident drill start --scenario examples/drills/checkout-gameday.yaml \
      --receiver http://127.0.0.1:8080 --token-file ./receiver-token
  kubectl incident drill list -A
  kubectl incident report --month 2026-11 -A
  kubectl incident postmortem checkout-down --complete --url https://wiki.example/pm/checkout-down
"""
DEFAULT_DRILL_TIMEOUT = 60.0


def text(max_length: int, *, min_length: int = 0) -> Callable[[str], str]:
    """An argparse type: a string of bounded length (the CRD's limits, checked before any request)."""

    def check(value: str) -> str:
        if len(value.strip()) < min_length:
            raise argparse.ArgumentTypeError("must not be empty")
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"at most {max_length} characters (got {len(value)})")
        return value

    check.__name__ = "text"
    return check


def incident_name(value: str) -> str:
    if not is_valid_name(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid name: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def severity(value: str) -> str:
    upper = value.upper()
    if upper not in SEVERITIES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(SEVERITIES)}")
    return upper


def incident_type(value: str) -> str:
    lower = value.lower()
    if lower not in TYPES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(TYPES)}")
    return lower


def report_length(value: str) -> str:
    """``--since``: a length of time (``30d``), checked here; the period is made from it at run time."""
    try:
        domain_report.parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def report_month(value: str) -> tuple[int, int]:
    """``--month``: ``YYYY-MM``."""
    try:
        return domain_report.parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def request_timeout(value: str) -> float:
    """kubectl's ``--request-timeout``: a plain number of seconds or a duration (``30s``, ``1m``); 0 = none."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{value!r} is not a duration (e.g. 30s, 1m, or 0 for none)") from exc
    if seconds < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return seconds


def _global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("kubectl flags")
    group.add_argument("-n", "--namespace", default=default, help="the namespace (default: the context's)")
    group.add_argument("--context", default=default, help="the kubeconfig context to use")
    group.add_argument(
        "--kubeconfig", default=default, help="the kubeconfig file (default: KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument(
        "--request-timeout",
        type=request_timeout,
        default=argparse.SUPPRESS if suppress else DEFAULT_REQUEST_TIMEOUT,
        metavar="DURATION",
        help=f"give up on a request after this long (default {DEFAULT_REQUEST_TIMEOUT:g}s; 0: never)",
    )


def build_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kubectl incident",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_flags(root, suppress=False)
    commands = root.add_subparsers(
        dest="command",
        metavar="{list,describe,declare,ack,contain,update,resolve,actions,approve,undo,release,evidence,postmortem,drill,report}",
        required=True,
    )

    def command(name: str, help_text: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
        _global_flags(sub, suppress=True)
        sub.set_defaults(command=name)
        return sub

    ls = command("list", "list incidents", aliases=("ls", "get"))
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="list incidents of every namespace")
    ls.add_argument("-o", "--output", choices=("json", "yaml", "wide"), help="output format")

    describe = command("describe", "show an incident: status, SLA, escalation, notifications, timeline")
    describe.add_argument("name", type=incident_name, help="the incident")
    describe.add_argument("-o", "--output", choices=("json", "yaml"), help="print the object instead")

    declare = command("declare", "declare a new incident (source: manual)")
    declare.add_argument("--title", required=True, type=text(256, min_length=1), help="a one-line summary")
    declare.add_argument("--severity", required=True, type=severity, metavar="{P1,P2,P3,P4}", help="P1 most severe")
    declare.add_argument("--type", dest="incident_type", type=incident_type, metavar="{" + ",".join(TYPES) + "}")
    declare.add_argument("--description", type=text(4096), help="more detail")
    declare.add_argument(
        "--name", type=incident_name, help="the incident's name (default: from the title, with a random suffix)"
    )
    declare.add_argument("--drill", action="store_true", help="a rehearsal: actions are dry runs, messages say DRILL")
    declare.add_argument("--policy", help="use this EscalationPolicy (NAME or NAMESPACE/NAME) instead of selection")
    declare.add_argument("-o", "--output", choices=("json", "yaml", "name"), help="print the created object")

    for name, help_text in (("ack", "acknowledge an incident"), ("contain", "declare an incident contained")):
        sub = command(name, help_text)
        sub.add_argument("name", type=incident_name, help="the incident")
        sub.add_argument("--note", type=text(4096), help="a note for the timeline")

    update = command("update", "post a status update to stakeholders")
    update.add_argument("name", type=incident_name, help="the incident")
    update.add_argument("-m", "--message", required=True, type=text(4096, min_length=1), help="the update")

    actions = command("actions", "show the action ledger: each action's phase, plan, dry run, undo and message")
    actions.add_argument("name", type=incident_name, help="the incident")
    actions.add_argument("-o", "--output", choices=("json", "yaml"), help="print status.actions instead")

    approve = command("approve", "approve an action that waits for an approval, as yourself")
    approve.add_argument("name", type=incident_name, help="the incident")
    approve.add_argument("action", type=incident_name, help="the action (status.actions[].name)")

    undo = command("undo", "undo an action now: a maintenance switch or a scale set back, a quarantine released")
    undo.add_argument("name", type=incident_name, help="the incident")
    undo.add_argument("action", type=incident_name, help="the action (status.actions[].name)")

    release = command("release", "end the incident's quarantines: its quarantined Pods and their NetworkPolicy go")
    release.add_argument("name", type=incident_name, help="the incident")

    resolve = command("resolve", "resolve an incident")
    resolve.add_argument("name", type=incident_name, help="the incident")
    resolve.add_argument("--summary", required=True, type=text(4096, min_length=1), help="what happened, what fixed it")
    resolve.add_argument("--root-cause", type=text(4096), help="the root cause, when known")

    evidence = command("evidence", "list an incident's evidence; verify its digests; extract its files")
    evidence.add_argument("name", type=incident_name, help="the incident")
    evidence.add_argument(
        "--verify", action="store_true", help="recompute every chunk's and item's sha256; exit 1 on any mismatch"
    )
    evidence.add_argument(
        "--extract",
        type=Path,
        metavar="DIR",
        help="write every item as a file under DIR/<evidence name>/ (verified too)",
    )
    evidence.add_argument("-o", "--output", choices=("json", "yaml"), help="print status.evidence instead")

    drill = command("drill", "rehearse: start a drill from a scenario file, list the drills")
    drills = drill.add_subparsers(dest="drill_command", metavar="{start,list}", required=True)

    def drill_command(name: str, help_text: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        sub = drills.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
        _global_flags(sub, suppress=True)
        sub.set_defaults(drill_command=name)
        return sub

    start = drill_command(
        "start",
        "start a drill (spec.drill: true) from a scenario file: declared, or opened by its synthetic alert group"
        " posted to the operator's receiver",
    )
    start.add_argument("--scenario", required=True, type=Path, metavar="FILE", help="the scenario (YAML)")
    start.add_argument(
        "--receiver",
        metavar="URL",
        help="the operator's Alertmanager receiver (http://HOST:PORT[/api/v1/alerts]), for a scenario with alerts",
    )
    start.add_argument("--token-file", type=Path, metavar="FILE", help="the receiver's bearer token, with --receiver")
    start.add_argument("--receiver-ca", type=Path, metavar="FILE", help="the CA of an https receiver")
    start.add_argument(
        "--name", type=incident_name, help="without alerts: the incident's name (default: drill-<title>-<suffix>)"
    )
    start.add_argument(
        "--timeout",
        type=request_timeout,
        default=DEFAULT_DRILL_TIMEOUT,
        metavar="DURATION",
        help=f"with alerts: how long to wait for the incident, classified (default {DEFAULT_DRILL_TIMEOUT:g}s)",
    )
    start.add_argument("-o", "--output", choices=("json", "yaml", "name"), help="print the incident")

    drill_list = drill_command("list", "list drill incidents", aliases=("ls",))
    drill_list.add_argument("-A", "--all-namespaces", action="store_true", help="list drills of every namespace")
    drill_list.add_argument("-o", "--output", choices=("json", "yaml", "wide"), help="output format")
    report = command("report", "the incident report of a period: counts, MTTA/MTTR against targets, breaches, ...")
    period = report.add_mutually_exclusive_group()
    period.add_argument(
        "--since", type=report_length, metavar="LENGTH", help="the period up to now, e.g. 30d, 12h, 2w (default 30d)"
    )
    period.add_argument("--month", type=report_month, metavar="YYYY-MM", help="a calendar month (UTC), e.g. 2026-11")
    report.add_argument("-A", "--all-namespaces", action="store_true", help="the incidents of every namespace")
    report.add_argument("-o", "--output", choices=("md", "json"), default="md", help="Markdown (default) or JSON")
    postmortem = command(
        "postmortem", "print an incident's post-mortem draft (a drill's assessment); ask for one; complete it"
    )
    postmortem.add_argument("name", type=incident_name, help="the incident")
    postmortem.add_argument(
        "-o", "--output", choices=("md", "json"), default="md", help="the Markdown (default) or the facts it came from"
    )
    postmortem.add_argument("--draft", action="store_true", help="ask for a draft although the severity needs none")
    postmortem.add_argument("--complete", action="store_true", help="the post-mortem is done (needs --url or items)")
    postmortem.add_argument("--url", type=text(2048, min_length=1), help="where the finished post-mortem is")
    postmortem.add_argument(
        "--action-item",
        action="append",
        type=text(1024, min_length=1),
        metavar="title=...;owner=...[;due=YYYY-MM-DD][;url=...]",
        help="a follow-up (repeatable)",
    )
    return root


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; misuse prints argparse's usage message and raises ``SystemExit(2)``."""
    args = build_parser().parse_args(argv)
    for flag in ("namespace", "context", "kubeconfig"):
        if not hasattr(args, flag):
            setattr(args, flag, None)
    if not hasattr(args, "request_timeout"):
        args.request_timeout = DEFAULT_REQUEST_TIMEOUT
    return args
