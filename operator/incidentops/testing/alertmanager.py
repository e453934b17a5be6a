"""Alertmanager, Prometheus, and a tiny exporter for Prometheus to scrape: the intake tests' peers,
and what ``incidentops dev --with-alertmanager`` runs beside the operator.

Alertmanager and Prometheus are Debian's binaries (``make debs`` installs
them; ``ALERTMANAGER_BINARY`` / ``PROMETHEUS_BINARY`` point elsewhere), each
run as its own process on loopback ports with its data in a work directory
and no gossip port (``--cluster.listen-address=``). Their configurations are
generated from the project's own examples (``examples/alertmanager.yml``,
``examples/prometheusrules/``) with the URL, the token file and the timings
substituted, so the examples are what the tests prove and what dev shows.
Every process started here is stopped by its context manager, also when a
test fails.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from incidentops.testing.controlplane import die_with_parent, free_port

ALERTMANAGER = ("ALERTMANAGER_BINARY", "prometheus-alertmanager")
PROMETHEUS = ("PROMETHEUS_BINARY", "prometheus")


class BinaryNotFound(RuntimeError):
    """Alertmanager or Prometheus is not installed."""


def find_binary(env: str, default: str) -> str | None:
    path = os.environ.get(env) or shutil.which(default) or f"/usr/bin/{default}"
    return path if Path(path).exists() else None


def binary(env: str, default: str) -> str:
    path = find_binary(env, default)
    if path is None:
        raise BinaryNotFound(f"{default} is not installed (make debs installs it; or set {env})")
    return path


def http_json(
    method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """A small HTTP client: (status, parsed JSON body or text)."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
            content_type = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, raw, content_type = exc.code, exc.read(), exc.headers.get_content_type()
    if content_type == "application/json":
        return status, json.loads(raw)
    return status, raw.decode(errors="replace")


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            name = Path(str(process.args[0] if isinstance(process.args, list) else process.args)).name
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError):
            status, _ = http_json("GET", url, timeout=2)
            if status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout}s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def _process(args: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- Alertmanager -----------------------------------------------------------------------------------


def alertmanager_config(
    urls: Sequence[str],
    credentials_file: Path,
    *,
    example: Path,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """``example`` (``examples/alertmanager.yml``) pointed at ``urls`` (one webhook each, same receiver),
    with short timings."""
    config: dict[str, Any] = yaml.safe_load(example.read_text())
    config["route"].update(group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval)
    [receiver] = config["receivers"]
    [template] = receiver["webhook_configs"]
    webhooks = []
    for url in urls:
        webhook = copy.deepcopy(template)
        webhook["url"] = url
        webhook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
        webhooks.append(webhook)
    receiver["webhook_configs"] = webhooks
    return config


class Alertmanager:
    """A running Alertmanager: push alerts through its own API, as Prometheus does."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def push(self, alerts: list[dict[str, Any]]) -> None:
        status, body = http_json("POST", f"{self.url}/api/v2/alerts", alerts)
        assert status == 200, (status, body)

    def alerts(self) -> list[dict[str, Any]]:
        status, body = http_json("GET", f"{self.url}/api/v2/alerts")
        assert status == 200, (status, body)
        return list(body)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def _serve(
    binary_of: tuple[str, str], workdir: Path, config: dict[str, Any], storage_flag: str, *flags: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Alertmanager or Prometheus on a loopback port with ``config``, until it answers ``/-/ready``:
    its URL, process and log."""
    name = "alertmanager" if binary_of == ALERTMANAGER else "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / f"{name}.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / f"{name}.log"
    args = [
        binary(*binary_of),
        f"--config.file={config_file}",
        f"{storage_flag}={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
        "--log.level=debug",
    ]
    with _process(args, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", process, log)
        yield url, process, log


@contextlib.contextmanager
def run_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    # No gossip port: one instance.
    with _serve(ALERTMANAGER, workdir, config, "--storage.path", "--cluster.listen-address=") as served:
        yield Alertmanager(*served)


def am_alert(
    labels: dict[str, str],
    *,
    annotations: dict[str, str] | None = None,
    ended: bool = False,
) -> dict[str, Any]:
    """An alert for Alertmanager's ``POST /api/v2/alerts``; ``ended`` sets endsAt in the past (resolved)."""
    now = time.time()
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations or {},
        "generatorURL": "http://prometheus.invalid/graph",
    }
    if ended:
        alert["startsAt"] = _rfc3339(now - 120)
        alert["endsAt"] = _rfc3339(now - 1)
    return alert


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- Prometheus and an exporter ------------------------------------------------------------------------


class Exporter:
    """A tiny exporter on 127.0.0.1: serves ``/metrics`` with whatever text it is given, or with what
    the file ``path`` holds at each scrape."""

    def __init__(self, path: Path | None = None) -> None:
        self.text = ""
        self.path = path
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                text = exporter.text
                if exporter.path is not None:
                    with contextlib.suppress(OSError):
                        text = exporter.path.read_text()
                body = text.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="exporter", daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def example_rule_file(example: Path, workdir: Path, **overrides: Any) -> Path:
    """The ``spec`` of an example PrometheusRule (a file of ``examples/prometheusrules/``) as a Prometheus
    rule file; ``overrides`` apply to every rule."""
    rule = yaml.safe_load(example.read_text())
    spec = rule["spec"]
    for group in spec["groups"]:
        group["interval"] = "1s"
        for entry in group["rules"]:
            entry.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"rules-{example.stem}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@contextlib.contextmanager
def run_prometheus(
    workdir: Path, *, scrape: Sequence[str], rule_files: Sequence[Path], alertmanager: str
) -> Iterator[str]:
    """Prometheus scraping ``scrape`` (host:port) every second, evaluating ``rule_files``, alerting ``alertmanager``."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": list(scrape)}]}],
    }
    with _serve(PROMETHEUS, workdir, config, "--storage.tsdb.path") as (url, _, _):
        yield url


# --- incidentops dev --with-alertmanager --------------------------------------------------------------

#: What the dev exporter serves at first: the checkout probes succeed. A 0 makes the example's
#: AvailabilityBelow99Percent fire (severity critical: a P1 of the operator's namespace).
DEV_METRICS = 'probe_success{namespace="payments",service="checkout"} 1\n'
#: The examples' `for` (5m) shortened, so that dev shows a firing rule within a minute.
DEV_RULES_FOR = "15s"


@dataclasses.dataclass(frozen=True)
class DevChain:
    alertmanager: str  # URL
    prometheus: str  # URL
    metrics_file: Path  # what Prometheus scrapes, read at every scrape


@contextlib.contextmanager
def run_dev_chain(workdir: Path, *, receiver_url: str, token_file: Path, examples: Path) -> Iterator[DevChain]:
    """An exporter serving ``metrics_file``, Prometheus evaluating ``examples/prometheusrules/`` (``for``
    shortened to :data:`DEV_RULES_FOR`) and Alertmanager configured from ``examples/alertmanager.yml``
    (the operator's receiver URL and token file, a 5s group_wait), all on loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = workdir / "metrics.prom"
    metrics.write_text(DEV_METRICS)
    config = alertmanager_config(
        [receiver_url],
        token_file,
        example=examples / "alertmanager.yml",
        group_wait="5s",
        group_interval="30s",
        repeat_interval="4h",
    )
    rules = [
        example_rule_file(path, workdir / "rules", **{"for": DEV_RULES_FOR})
        for path in sorted((examples / "prometheusrules").glob("*.yaml"))
    ]
    with contextlib.ExitStack() as stack:
        exporter = stack.enter_context(Exporter(metrics))
        alertmanager = stack.enter_context(run_alertmanager(workdir / "alertmanager", config))
        prometheus = stack.enter_context(
            run_prometheus(
                workdir / "prometheus",
                scrape=[f"127.0.0.1:{exporter.port}"],
                rule_files=rules,
                alertmanager=alertmanager.url,
            )
        )
        yield DevChain(alertmanager.url, prometheus, metrics)
