"""The intake tests' Alertmanager and Prometheus: ``incidentops.testing.alertmanager`` with the
project's own examples, and skipped where the Debian packages are not installed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from incidentops.testing import alertmanager as _am
from incidentops.testing.alertmanager import Alertmanager, Exporter, am_alert, http_json

__all__ = [
    "Alertmanager",
    "Exporter",
    "alertmanager_config",
    "am_alert",
    "example_rule_file",
    "http_json",
    "run_alertmanager",
    "run_prometheus",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "alertmanager.yml"
EXAMPLE_RULES = ROOT / "examples" / "prometheusrules"


def _require(binary: tuple[str, str]) -> None:
    if _am.find_binary(*binary) is None:
        env, name = binary
        pytest.skip(f"{name} is not installed (make debs installs it; or set {env})")


def alertmanager_config(urls: Sequence[str], credentials_file: Path, **timings: str) -> dict[str, Any]:
    return _am.alertmanager_config(urls, credentials_file, example=EXAMPLE_CONFIG, **timings)


def example_rule_file(name: str, workdir: Path, **overrides: Any) -> Path:
    return _am.example_rule_file(EXAMPLE_RULES / name, workdir, **overrides)


@contextlib.contextmanager
def run_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    _require(_am.ALERTMANAGER)
    with _am.run_alertmanager(workdir, config) as alertmanager:
        yield alertmanager


@contextlib.contextmanager
def run_prometheus(
    workdir: Path, *, scrape: Sequence[str], rule_files: Sequence[Path], alertmanager: str
) -> Iterator[str]:
    _require(_am.PROMETHEUS)
    with _am.run_prometheus(workdir, scrape=scrape, rule_files=rule_files, alertmanager=alertmanager) as url:
        yield url
