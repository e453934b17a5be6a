"""How the control plane's binaries are found: brought by the user (envtest's variables) or cached builds."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from incidentops.testing import build


def _fake_go(tmp_path: Path, version: str) -> str:
    go = tmp_path / f"go-{version}"
    go.write_text(f"#!/bin/sh\necho {version}\n")
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return str(go)


def _assets(tmp_path: Path) -> Path:
    assets = tmp_path / "assets"
    assets.mkdir()
    for c in build.COMPONENTS:
        (assets / c.name).write_text("")
    return assets


def test_kubebuilder_assets_provide_every_binary(tmp_path: Path) -> None:
    assets = _assets(tmp_path)
    paths = build.resolve_binaries({"KUBEBUILDER_ASSETS": str(assets)}, build=False)
    assert paths == {c.name: assets / c.name for c in build.COMPONENTS}


def test_a_test_asset_variable_wins_over_the_directory(tmp_path: Path) -> None:
    assets = _assets(tmp_path)
    mine = tmp_path / "my-apiserver"
    mine.write_text("")
    paths = build.resolve_binaries(
        {"KUBEBUILDER_ASSETS": str(assets), "TEST_ASSET_KUBE_APISERVER": str(mine)}, build=False
    )
    assert paths["kube-apiserver"] == mine
    assert paths["etcd"] == assets / "etcd"


def test_a_test_asset_that_is_not_a_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(build.BuildError, match=r"TEST_ASSET_ETCD=.*is not a file"):
        build.resolve_binaries({"TEST_ASSET_ETCD": str(tmp_path / "nope")}, build=False)


def test_without_a_build_missing_binaries_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTOPS_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(build.BuildError, match="make install"):
        build.resolve_binaries({}, build=False, go=_fake_go(tmp_path, "go1.99.0"))


def test_the_cache_key_follows_the_go_version_and_the_pins(tmp_path: Path) -> None:
    one = build.cache_key("kubernetes", _fake_go(tmp_path, "go1.26.0"))
    assert one == build.cache_key("kubernetes", _fake_go(tmp_path, "go1.26.0")), "stable"
    assert one != build.cache_key("kubernetes", _fake_go(tmp_path, "go1.27.0"))
    assert one.startswith(f"kubernetes-{build.pinned_version('kubernetes')}-")


def test_the_pins_are_real_releases() -> None:
    assert build.pinned_version("kubernetes").startswith("v1.")
    assert int(build.pinned_version("kubernetes").split(".")[1]) >= 34
    assert build.pinned_version("etcd").startswith("v3.")
    assert build.pinned_version("kwok").startswith("v0.")


def test_version_link_flags_replace_the_placeholder_version() -> None:
    flags = build.ldflags("kubernetes")
    assert f"k8s.io/component-base/version.gitVersion={build.pinned_version('kubernetes')}" in flags


def test_helm_is_pinned_and_told_the_kubernetes_version_it_is_built_with() -> None:
    version = build.pinned_version("helm")
    assert version.startswith("v3.")
    flags = build.ldflags("helm")
    assert f"-X helm.sh/helm/v3/internal/version.version={version}" in flags
    # client-go v0.N.x is Kubernetes 1.N; without these helm assumes v1.20.
    minor = build.pinned_version("helm", "k8s.io/client-go").split(".")[1]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        assert f"-X {pkg}.k8sVersionMajor=1 " in flags + " "
        assert f"-X {pkg}.k8sVersionMinor={minor}" in flags
    assert int(minor) >= 30


def test_the_control_plane_does_not_ask_for_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTOPS_CACHE_DIR", str(tmp_path / "empty-cache"))
    go = _fake_go(tmp_path, "go1.99.0")
    assets = _assets(tmp_path)
    (assets / "helm").unlink()
    env = {"KUBEBUILDER_ASSETS": str(assets)}
    paths = build.resolve_binaries(env, build=False, go=go, names=build.CONTROL_PLANE)
    assert set(paths) == {c.name for c in build.COMPONENTS} - {"helm"}
    with pytest.raises(build.BuildError, match="helm binaries are not built"):
        build.resolve_binaries(env, build=False, go=go)
