"""Real peers for the intake tests: Alertmanager, Prometheus, and a tiny exporter for Prometheus to scrape.

Alertmanager and Prometheus are Debian's binaries (``make debs`` installs
them; ``ALERTMANAGER_BINARY`` / ``PROMETHEUS_BINARY`` point elsewhere), each
run as its own process on loopback ports with its data in a temporary
directory and no gossip port (``--cluster.listen-address=``). Their
configurations are generated from the project's own examples
(``examples/alertmanager.yml``, ``examples/prometheusrules/``) with the URL,
the token file and the timings substituted, so the examples are what the tests
prove. Every process started here is stopped by its context manager, also when
a test fails.
"""

from __future__ import annotations

import contextlib
import copy
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

import pytest
import yaml

from incidentops.testing.operator import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "alertmanager.yml"
EXAMPLE_RULES = ROOT / "examples" / "prometheusrules"


def binary(env: str, default: str) -> str:
    path = os.environ.get(env) or shutil.which(default) or f"/usr/bin/{default}"
    if not Path(path).exists():
        pytest.skip(f"{default} is not installed (make debs installs it; or set {env})")
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
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(OSError):
            status, _ = http_json("GET", url, timeout=2)
            if status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout}s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def _process(args: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        process = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """``examples/alertmanager.yml`` pointed at ``urls`` (one webhook each, same receiver), with short timings."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
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
def run_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "alertmanager.log"
    args = [
        binary("ALERTMANAGER_BINARY", "prometheus-alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: one instance
        "--log.level=debug",
    ]
    with _process(args, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", process, log)
        yield Alertmanager(url, process, log)


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
    """A tiny exporter on 127.0.0.1: serves ``/metrics`` with whatever text it is given."""

    def __init__(self) -> None:
        self.text = ""
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.text.encode()
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


def example_rule_file(name: str, workdir: Path, **overrides: Any) -> Path:
    """The ``spec`` of an example PrometheusRule as a Prometheus rule file; ``overrides`` apply to every rule."""
    rule = yaml.safe_load((EXAMPLE_RULES / name).read_text())
    spec = rule["spec"]
    for group in spec["groups"]:
        group["interval"] = "1s"
        for entry in group["rules"]:
            entry.update(overrides)
    path = workdir / f"rules-{Path(name).stem}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@contextlib.contextmanager
def run_prometheus(
    workdir: Path, *, scrape: Sequence[str], rule_files: Sequence[Path], alertmanager: str
) -> Iterator[str]:
    """Prometheus scraping ``scrape`` (host:port) every second, evaluating ``rule_files``, alerting ``alertmanager``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": list(scrape)}]}],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "prometheus.log"
    args = [
        binary("PROMETHEUS_BINARY", "prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=debug",
    ]
    with _process(args, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", process, log)
        yield url
