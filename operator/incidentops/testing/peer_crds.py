"""The CRDs of the projects whose objects the chart creates, from their pinned Go modules, cached.

Where it sits: ``incidentops.testing`` stands apart from the operator's runtime. The chart's optional
objects belong to other operators: the ServiceMonitor, PrometheusRule and AlertmanagerConfig to
prometheus-operator (``monitoring.coreos.com``), the receiver's Certificate and its Issuer to
cert-manager (``cert-manager.io``). The e2e tests apply these CRDs to the local control plane so the
API server validates those objects against the real schemas (tests/e2e/test_chart.py); ``make install``
calls this module once, like ``build.py``, so a test run on a clean machine does not pay for it.

Both projects ship their CRDs as plain YAML in their root Go module, so the files come the way the
control plane's binaries do: ``go mod download`` of a pinned release through the Go module proxy (and
the checksum database), the zip's hash checked against the one pinned here as go.sum would hold it,
the files copied into the cache, keyed by module, version and hash. A cached copy is used as is, with
no Go and no network.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from incidentops.testing import build


@dataclasses.dataclass(frozen=True)
class Source:
    module: str  # the Go module that ships the CRDs
    version: str
    sum: str  # the module zip's hash as go.sum holds it (h1:...)
    directory: str  # where the CRDs are inside the module
    files: tuple[str, ...]  # only the CRDs the chart's objects need: each costs the API server memory

    @property
    def cache_dir(self) -> Path:
        digest = hashlib.sha256("\n".join((self.sum, *self.files)).encode()).hexdigest()[:16]
        return build.cache_root() / "crds" / f"{self.module.rsplit('/', 1)[-1]}-{self.version}-{digest}"


SOURCES: tuple[Source, ...] = (
    Source(
        "github.com/prometheus-operator/prometheus-operator",
        # The newest release the module proxy serves (v0.95.x is refused there).
        "v0.94.1",
        "h1:QEIb2wenPH+SdMN1xMf8l4Pmj00YYXXI6HlbLlQWkww=",
        "example/prometheus-operator-crd",
        (
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml",
            "monitoring.coreos.com_alertmanagerconfigs.yaml",
        ),
    ),
    Source(
        "github.com/cert-manager/cert-manager",
        "v1.21.2",
        "h1:UWgoYM+KLNtRlqmoWOKjKBOBUPVHeepQ6/ac3ERJW68=",
        # controller-gen's output, which the cert-manager chart's CRD templates are generated from.
        "deploy/crds",
        (
            "cert-manager.io_certificates.yaml",
            "cert-manager.io_issuers.yaml",
            "cert-manager.io_clusterissuers.yaml",
        ),
    ),
)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads a plain ``=`` (a matchType of the AlertmanagerConfig's enum) as its `value` tag."""


def _string(loader: _Loader, node: yaml.Node) -> str:
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:value", _string)


def load(path: Path) -> dict[str, Any]:
    """One of the CRD files, read as the API server reads it (``=`` is a string)."""
    crd: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)
    return crd


def download(source: Source, *, go: str = "go") -> Path:
    """``go mod download`` of the pinned release; the module's directory in Go's module cache."""
    # Outside any module (a fresh directory, no go.work), so nothing but the one module is resolved.
    env = dict(os.environ, GOFLAGS="-mod=mod", GOWORK="off")
    with tempfile.TemporaryDirectory(prefix="incidentops-crds-") as tmp:
        try:
            result = subprocess.run(
                [go, "mod", "download", "-json", f"{source.module}@{source.version}"],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
            )
        except OSError as exc:
            raise build.BuildError(f"Go is needed to download {source.module}'s CRDs ({go}): {exc}") from exc
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {"Error": result.stderr.strip() or f"go mod download exited {result.returncode}"}
    if info.get("Error") or result.returncode != 0:
        raise build.BuildError(f"go mod download {source.module}@{source.version} failed: {info.get('Error')}")
    if info.get("Sum") != source.sum:
        raise build.BuildError(
            f"{source.module}@{source.version} has hash {info.get('Sum')}, not the pinned {source.sum}: "
            "the module proxy served other files than the release pinned in peer_crds.py"
        )
    return Path(info["Dir"])


def fetch(source: Source, *, go: str = "go") -> list[Path]:
    """The source's CRD files in the cache, downloaded the first time."""
    target = source.cache_dir
    paths = [target / name for name in source.files]
    with build.locked(target.with_name(f"{target.name}.lock")):
        if all(p.is_file() for p in paths):
            return paths
        module = download(source, go=go)
        staging = target.with_name(f"{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in source.files:
            found = module / source.directory / name
            if not found.is_file():
                raise build.BuildError(f"{source.module}@{source.version} has no {source.directory}/{name}")
            shutil.copyfile(found, staging / name)  # a copy: the module cache's files are read-only
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a half-copied directory is never seen as cached
    return paths


def crd_files(*, go: str = "go") -> list[Path]:
    """Every peer CRD file the chart's objects need, prometheus-operator's then cert-manager's."""
    return [path for source in SOURCES for path in fetch(source, go=go)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m incidentops.testing.peer_crds",
        description="Download (or find in the cache) prometheus-operator's and cert-manager's CRDs the chart's "
        "tests apply, and print their paths.",
    )
    parser.add_argument("--go", default=os.environ.get("GO", "go"), help="the go command to download with")
    args = parser.parse_args(argv)
    try:
        paths = crd_files(go=args.go)
    except build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
