"""Build the local control plane's binaries from pinned Go modules, cached.

Where it sits: ``incidentops.testing`` stands apart from the operator's runtime.
The launcher (``controlplane.py``) asks :func:`resolve_binaries` for the path of
every binary it starts; ``make install`` calls this module once so the first
test run does not pay for the build.

There is no Docker engine on our machines, so kind cannot run; the binaries come
from the published Go modules at the releases pinned in ``gomod/*/go.mod``. Each
wrapper module is built on its own so etcd's, kwok's, Kubernetes' and helm's dependency
versions never have to agree. The result is cached outside the clone, keyed by
the module files (releases and go.sum), the Go version and the link flags; a
cached build is reused as is.

People may bring their own binaries, following envtest's conventions:
``TEST_ASSET_<NAME>`` names one binary, ``KUBEBUILDER_ASSETS`` a directory of
them. Only what neither provides is built.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Component:
    name: str  # the binary's file name
    module: str  # the wrapper module under gomod/
    package: str  # the Go main package
    env: str  # envtest's variable naming a binary brought by the user


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "TEST_ASSET_ETCD"),
    Component("kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
    Component(
        "kube-controller-manager",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    ),
    Component("kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler", "TEST_ASSET_KUBE_SCHEDULER"),
    Component("kubectl", "kubernetes", "k8s.io/kubernetes/cmd/kubectl", "TEST_ASSET_KUBECTL"),
    Component("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "TEST_ASSET_KWOK"),
    # Not part of the control plane: the chart's tests lint, render and install with it.
    Component("helm", "helm", "helm.sh/helm/v3/cmd/helm", "TEST_ASSET_HELM"),
)

# What a ControlPlane starts; helm is resolved only by those who ask for it.
CONTROL_PLANE: tuple[str, ...] = tuple(c.name for c in COMPONENTS if c.module != "helm")

# The module each wrapper pins; its version goes into the link flags so that
# `/version` and `--version` tell the truth instead of v0.0.0.
_PINNED = {
    "kubernetes": "k8s.io/kubernetes",
    "etcd": "go.etcd.io/etcd/server/v3",
    "kwok": "sigs.k8s.io/kwok",
    "helm": "helm.sh/helm/v3",
}


class BuildError(RuntimeError):
    """A binary could not be built or found; the message says what to do."""


def cache_root() -> Path:
    if explicit := os.environ.get("INCIDENTOPS_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "incidentops"


def module_dir(module: str) -> Path:
    """The wrapper module's files, shipped as package data."""
    return Path(str(resources.files("incidentops.testing").joinpath("gomod", module)))


def pinned_version(module: str, path: str | None = None) -> str:
    """The version of ``path`` (default: the module the wrapper pins) in the wrapper's go.mod."""
    path = path or _PINNED[module]
    text = (module_dir(module) / "go.mod").read_text()
    match = re.search(rf"^(?:require)?\s+{re.escape(path)}\s+(v\S+)", text, re.MULTILINE)
    if not match:
        raise BuildError(f"gomod/{module}/go.mod does not require {path}")
    return match.group(1)


def go_version(go: str) -> str:
    try:
        out = subprocess.run([go, "env", "GOVERSION"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"Go is needed to build the control plane ({go}): {exc}") from exc
    return out.stdout.strip()


def ldflags(module: str) -> str:
    version = pinned_version(module)
    flags = ["-s", "-w"]
    if module == "kubernetes":
        major, minor = version.lstrip("v").split(".")[:2]
        # Without these, the API server reports v0.0.0-master, which breaks
        # clients (kubectl, kopf) that compare server versions.
        built = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate={built}",
            ]
    elif module == "etcd":
        flags.append(f"-X go.etcd.io/etcd/api/v3/version.GitSHA={version}")
    elif module == "helm":
        # As helm's own Makefile does: without these, `helm version` says v3.x without the patch, and
        # lint and template believe the cluster is Kubernetes v1.20 (the compiled-in default), so a
        # chart with `kubeVersion: >=1.30` fails there. The Kubernetes version is the client-go one
        # helm is built with (v0.34.x is Kubernetes 1.34).
        client_go = pinned_version("helm", "k8s.io/client-go").lstrip("v").split(".")
        k8s_major, k8s_minor = str(int(client_go[0]) + 1), client_go[1]
        flags += [
            f"-X helm.sh/helm/v3/internal/version.version={version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        ]
        for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {pkg}.k8sVersionMajor={k8s_major}", f"-X {pkg}.k8sVersionMinor={k8s_minor}"]
    return " ".join(flags)


def cache_key(module: str, go: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir(module) / name).read_bytes())
    digest.update(go_version(go).encode())
    # Link flags without the build date, which changes on every build.
    digest.update(re.sub(r"buildDate=\S+", "", ldflags(module)).encode())
    return f"{module}-{pinned_version(module)}-{digest.hexdigest()[:16]}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One build of a module at a time, across processes (parallel test runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_module(module: str, *, go: str = "go", log: bool = True) -> Path:
    """Build every binary of one wrapper module unless cached; return the bin dir."""
    key = cache_key(module, go)
    target = cache_root() / "controlplane" / key
    components = [c for c in COMPONENTS if c.module == module]
    with locked(cache_root() / "controlplane" / f"{module}.lock"):
        if all((target / c.name).is_file() for c in components):
            return target
        if log:
            print(f"building {', '.join(c.name for c in components)} ({key}); cached afterwards", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=f"incidentops-{module}-") as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(module_dir(module), src, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
            out = Path(tmp) / "bin"
            out.mkdir()
            env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false", GOWORK="off")
            cmd = [go, "build", "-trimpath", "-ldflags", ldflags(module), "-o", str(out) + "/"]
            cmd += [c.package for c in components]
            result = subprocess.run(cmd, cwd=src, env=env, capture_output=not log, text=True)
            if result.returncode != 0:
                raise BuildError(f"go build of {module} failed ({result.returncode}): {result.stderr or ''}")
            for c in components:
                # go names a binary after the package's last path element, skipping
                # a major-version suffix: go.etcd.io/etcd/server/v3 becomes `server`.
                elements = [e for e in c.package.split("/") if not re.fullmatch(r"v\d+", e)]
                built = out / elements[-1]
                if built != out / c.name:
                    built.rename(out / c.name)
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(out, staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)  # atomic: a half-built directory is never seen as cached
    return target


def resolve_binaries(
    environ: Mapping[str, str] | None = None,
    *,
    build: bool = True,
    go: str = "go",
    names: Iterable[str] | None = None,
) -> dict[str, Path]:
    """The path of every binary named (default: all): brought by the user, or built and cached."""
    environ = os.environ if environ is None else environ
    wanted = set(names) if names is not None else {c.name for c in COMPONENTS}
    paths: dict[str, Path] = {}
    missing: list[Component] = []
    assets = environ.get("KUBEBUILDER_ASSETS")
    for c in COMPONENTS:
        if c.name not in wanted:
            continue
        if explicit := environ.get(c.env):
            if not Path(explicit).is_file():
                raise BuildError(f"{c.env}={explicit} is not a file")
            paths[c.name] = Path(explicit)
        elif assets and (Path(assets) / c.name).is_file():
            paths[c.name] = Path(assets) / c.name
        else:
            missing.append(c)
    for module in dict.fromkeys(c.module for c in missing):
        cached = cache_root() / "controlplane" / cache_key(module, go)
        if all((cached / c.name).is_file() for c in missing if c.module == module):
            bindir = cached
        elif not build:
            raise BuildError(f"{module} binaries are not built; run `make install` or set {missing[0].env}")
        else:
            bindir = build_module(module, go=go)
        for c in missing:
            if c.module == module:
                paths[c.name] = bindir / c.name
    return paths


def helm(*, build: bool = True) -> Path:
    """The helm binary the chart's tests use: TEST_ASSET_HELM, KUBEBUILDER_ASSETS/helm, or the cached build."""
    return resolve_binaries(build=build, names=("helm",))["helm"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m incidentops.testing.build",
        description="Build (or find in the cache) the local control plane's binaries and print their paths.",
    )
    parser.add_argument("--go", default=os.environ.get("GO", "go"), help="the go command to build with")
    args = parser.parse_args(argv)
    try:
        paths = resolve_binaries(go=args.go)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
