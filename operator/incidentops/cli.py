"""Command line: ``incidentops run | dev | crds`` and the ``kubectl incident`` plugin.

Where it sits: the top layer. ``run`` starts the operator (``handlers.runtime``);
``dev`` first brings up the local control plane of ``incidentops.testing``,
installs the CRDs, RBAC and the example policies (their channels pointed at the
local sinks of ``incidentops.testing.sinks``, which print every message), and
then runs the operator in the foreground under the chart's own ServiceAccount; ``crds`` writes the CRDs
generated from the API models.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from incidentops import __version__
from incidentops.settings import Settings


class UsageError(Exception):
    """Wrong use of the CLI: the message is for the user, the exit code is 2."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("namespace", "kubeconfig", "receiver_port", "metrics_port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "watch_namespace", None):
        overrides["watch_namespaces"] = args.watch_namespace
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines; Kopf's object reference travels along.

    Hand-written because it is a dozen lines over the standard library; a
    dependency for it would be heavier than the code.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)  # set by Kopf's per-object logger
        if isinstance(ref, dict):
            entry["object"] = {k: ref.get(k) for k in ("namespace", "name", "kind") if ref.get(k)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(verbose: bool, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [%(name)s] %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    if not verbose:
        # Kopf logs a line for every watch event it hands to a handler, and aiohttp one per
        # request: thousands per minute in an alert storm, hiding what matters at 3 a.m.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _run_operator(settings: Settings, on_ready: Any = None) -> int:
    """Run the operator in this thread's loop until a signal or a failure."""
    from incidentops.handlers import runtime
    from incidentops.handlers.leader import LeadershipLost
    from incidentops.intake import run_receiver

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(runtime.quiet_kopf_scan_leftovers)
        ready = asyncio.Event()
        watcher = asyncio.create_task(_after(ready, on_ready)) if on_ready else None
        try:
            await runtime.run(settings, ready_flag=ready, receiver=run_receiver)
        finally:
            if watcher:
                watcher.cancel()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except LeadershipLost as exc:
        logging.getLogger("incidentops").error("operator stopped: %s", exc)  # already explained, no traceback
        return 1
    except Exception as exc:
        logging.getLogger("incidentops").error("operator stopped: %s", exc, exc_info=exc)
        return 1
    return 0


async def _after(event: asyncio.Event, callback: Any) -> None:
    await event.wait()
    callback()


# -- incidentops crds -----------------------------------------------------------------------


def cmd_crds(args: argparse.Namespace) -> int:
    from incidentops.api import crdgen, reference

    if args.docs:
        Path(args.docs).write_text(reference.render(), encoding="utf-8")
        print(args.docs)
        return 0
    if args.output:
        for path in crdgen.write(Path(args.output)):
            print(path)
    else:
        yaml.safe_dump_all(crdgen.generate(), sys.stdout, sort_keys=False)
    return 0


# -- incidentops run ------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(args.verbose, args.log_format)
    return _run_operator(settings)


# -- incidentops dev ------------------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """During the synchronous set-up, SIGTERM stops like Ctrl-C, so cleanup runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _find_project_file(relative: str) -> Path | None:
    for base in (Path.cwd(), *Path.cwd().parents):
        candidate = base / relative
        if candidate.exists():
            return candidate
    return None


def _load_yaml_docs(*directories: Path) -> list[dict[str, Any]]:
    """Every document of the directories' YAML files, in file name order (as ``kubectl apply -f DIR``)."""
    docs: list[dict[str, Any]] = []
    for directory in directories:
        if directory.is_dir():
            for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json")):
                docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def _start_sinks(*, quiet: bool, verbose: bool) -> Any:
    from incidentops.testing.sinks import Sinks, format_line

    if not verbose:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per SMTP connection

    def show(message: Any) -> None:
        if not quiet:
            print(format_line(message), flush=True)

    sinks = Sinks(show)
    sinks.start()
    return sinks


def cmd_dev(args: argparse.Namespace) -> int:
    from incidentops.testing import controlplane
    from incidentops.testing.controlplane import free_port
    from incidentops.testing.install import OPERATOR_SERVICE_ACCOUNT, install_crds, install_operator
    from incidentops.testing.sinks import point_at_sinks

    _configure_logging(args.verbose, args.log_format)
    log = logging.getLogger("incidentops.dev")
    settings = _settings(args)
    state_file = Path(args.state_file) if args.state_file else None
    cluster: Any = None
    sinks: Any = None
    chain: Any = None
    peers = contextlib.ExitStack()  # the sinks, and Alertmanager and Prometheus: stopped before the cluster
    try:
        with _sigterm_as_interrupt():
            workdir = Path(args.workdir) if args.workdir else None
            cluster = controlplane.from_environment(workdir)
            log.info("starting the local control plane (the first run builds it from Go modules)")
            cluster.start()
            cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings.namespace}})
            chart = _find_project_file("charts/incidentops")
            operator_kubeconfig = cluster.kubeconfig
            if chart:
                log.info("installing the chart's CRDs, ServiceAccount and RBAC (helm template %s)", chart)
                operator_kubeconfig = install_operator(cluster, settings.namespace, chart)
                log.info("the operator runs as ServiceAccount %s/%s", settings.namespace, OPERATOR_SERVICE_ACCOUNT)
            else:
                log.info("installing the CRDs")
                install_crds(cluster)
                log.warning("charts/incidentops not found: the operator runs as admin")
            examples = Path(args.examples) if args.examples else _find_project_file("examples")
            if examples and not args.no_examples:
                sinks = _start_sinks(quiet=args.quiet, verbose=args.verbose)
                peers.callback(sinks.stop)
                # The examples' channels name hosts that do not exist: dev applies copies pointed
                # at its sinks (the files stay as people copy them). They name their namespaces.
                docs, sinks.routes = point_at_sinks(
                    _load_yaml_docs(examples / "secrets", examples / "policies"), sinks.base_url, sinks.smtp_port
                )
                if docs:
                    cluster.apply(docs)
                if (examples / "workloads").is_dir():
                    cluster.kubectl("apply", "-f", str(examples / "workloads"))
                log.info("applied the example secrets, policies and workloads from %s", examples)
                log.info(
                    "the example channels send to local sinks (HTTP %s, SMTP 127.0.0.1:%d)%s",
                    sinks.base_url,
                    sinks.smtp_port,
                    "" if args.quiet else "; every message is printed as a `page` line",
                )
            ports = {
                name: getattr(settings, name) if getattr(args, name, None) else free_port()
                for name in ("metrics_port", "receiver_port")
            }
            token_file = settings.token_file
            if token_file is None:
                # A fresh bearer token for the receiver, for this run only.
                token_file = Path(cluster.workdir) / "alerts-token"
                token_file.write_text(secrets.token_urlsafe(32))
                token_file.chmod(0o600)
            settings = settings.model_copy(
                update={
                    "kubeconfig": operator_kubeconfig,
                    "bind_address": "127.0.0.1",
                    "token_file": token_file,
                    **ports,
                }
            )
            if args.with_alertmanager:
                from incidentops.testing.alertmanager import run_dev_chain

                if not examples:
                    raise UsageError("--with-alertmanager needs the examples (alertmanager.yml, prometheusrules/)")
                log.info("starting Alertmanager and Prometheus with the example configuration and rules")
                chain = peers.enter_context(
                    run_dev_chain(
                        Path(cluster.workdir) / "alerting",
                        receiver_url=f"http://127.0.0.1:{settings.receiver_port}/api/v1/alerts",
                        token_file=token_file,
                        examples=examples,
                    )
                )
    except KeyboardInterrupt:
        peers.close()
        if cluster:
            cluster.stop()
        return 130
    except UsageError:
        peers.close()
        if cluster:
            cluster.stop()
        raise
    except Exception as exc:
        peers.close()
        if cluster:
            cluster.stop()
        detail = getattr(exc, "stderr", None)  # kubectl's own explanation, when kubectl failed
        print(f"error: {exc}" + (f"\n{detail.strip()}" if detail else ""), file=sys.stderr)
        return 1

    def ready() -> None:
        state = {
            "kubeconfig": str(cluster.kubeconfig),
            "namespace": settings.namespace,
            "alertsURL": f"http://127.0.0.1:{settings.receiver_port}/api/v1/alerts",
            "alertsToken": settings.token_file.read_text().strip() if settings.token_file else None,
            "metricsURL": f"http://127.0.0.1:{settings.metrics_port}/metrics",
        }
        if state_file:
            tmp = state_file.with_suffix(state_file.suffix + ".tmp")
            tmp.write_text(json.dumps(state, indent=2))
            os.replace(tmp, state_file)  # readers never see half a file
        incident = _find_project_file("examples/incidents/manual-p1.yaml")
        # The example's rollback needs a revision to go back to: the "bad deploy" it talks about.
        try_this = (
            "  kubectl -n payments set image deployment/checkout web=registry.example/checkout:1.4.1\n"
            f"  kubectl apply -f {incident}\n"
            "  kubectl incident actions checkout-down -n payments\n"
            if incident and not args.no_examples
            else ""
        )
        pages = (
            "Pages of the example policies go to local sinks; each is printed here as a line\n"
            "  page  <namespace/channel>  <event>  level <level>  <namespace/incident>  <headline>\n"
            if sinks and not args.quiet
            else ""
        )
        alerting = (
            f"Alertmanager {chain.alertmanager} and Prometheus {chain.prometheus} run the example rules\n"
            f"on what {chain.metrics_file} holds; a failing checkout probe fires AvailabilityBelow99Percent:\n"
            f'  echo \'probe_success{{namespace="payments",service="checkout"}} 0\' > {chain.metrics_file}\n'
            if chain
            else ""
        )
        print(
            "\nincidentops is running on a local control plane.\n"
            f"  export KUBECONFIG={cluster.kubeconfig}\n"
            f"{try_this}"
            "  kubectl get incidents -A -o wide\n"
            f"{alerting}"
            f"{pages}"
            "Ctrl-C stops the operator and the control plane.\n",
            flush=True,
        )

    try:
        return _run_operator(settings, on_ready=ready)
    finally:
        peers.close()
        cluster.stop()
        if state_file:
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()


# -- argument parsing -----------------------------------------------------------------------


def _common_operator_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", help="the operator's namespace (INCIDENTOPS_NAMESPACE)")
    parser.add_argument(
        "--watch-namespace", action="append", help="a namespace to watch (repeatable); default: all namespaces"
    )
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig to use; default: KUBECONFIG or in-cluster")
    parser.add_argument("--receiver-port", type=int, help="port of the Alertmanager receiver")
    parser.add_argument("--metrics-port", type=int, help="port of the metrics endpoint")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("INCIDENTOPS_LOG_FORMAT", "text"),
        help="log lines as text or as JSON objects (INCIDENTOPS_LOG_FORMAT)",
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="incidentops", description="Run an incident-response plan inside the cluster.")
    root.add_argument("--version", action="version", version=f"incidentops {__version__}")
    sub = root.add_subparsers(dest="command", metavar="{run,dev,crds}")
    sub.required = True

    run = sub.add_parser("run", help="run the operator against the current cluster")
    _common_operator_args(run)
    run.set_defaults(func=cmd_run)

    dev = sub.add_parser("dev", help="run the operator on a local control plane (or USE_EXISTING_CLUSTER=true)")
    _common_operator_args(dev)
    dev.add_argument("--state-file", help="write a JSON object with kubeconfig, namespace, URLs once ready")
    dev.add_argument(
        "--examples", help="directory of example secrets/, policies/ and workloads/ to apply (default: ./examples)"
    )
    dev.add_argument("--no-examples", action="store_true", help="do not apply the examples")
    dev.add_argument(
        "--quiet", action="store_true", help="do not print the messages the example channels send to the local sinks"
    )
    dev.add_argument(
        "--with-alertmanager",
        action="store_true",
        help="also run Alertmanager and Prometheus (Debian packages) configured from the examples",
    )
    dev.add_argument("--workdir", help="directory for the control plane's data, certificates and logs")
    dev.set_defaults(func=cmd_dev)

    crds = sub.add_parser("crds", help="print the CRDs generated from the API models, or write them")
    crds.add_argument("--output", "-o", help="directory to write one YAML file per CRD into")
    crds.add_argument("--docs", help="write the API reference (Markdown) to this file instead")
    crds.set_defaults(func=cmd_crds)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"incidentops: error: {exc}", file=sys.stderr)
        return 2


def kubectl_incident(argv: Sequence[str] | None = None) -> int:
    from incidentops import plugin

    return int(plugin.main(argv))


if __name__ == "__main__":
    sys.exit(main())
