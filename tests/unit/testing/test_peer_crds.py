"""The CRDs of prometheus-operator and cert-manager the chart's e2e tests apply: the right ones, pinned, cached."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from incidentops.testing import build, peer_crds
from tests.unit.chart.helm import FULL_VALUES, template


def test_they_define_every_kind_of_their_groups_the_chart_renders() -> None:
    served = set()
    for path in peer_crds.crd_files():
        crd = peer_crds.load(path)
        assert crd["kind"] == "CustomResourceDefinition", path
        spec = crd["spec"]
        served |= {(f"{spec['group']}/{v['name']}", spec["names"]["kind"]) for v in spec["versions"] if v["served"]}
    # The full values with the receiver's certificate from cert-manager, as tests/e2e/test_chart.py installs them.
    objects = template("-f", str(FULL_VALUES), "--set", "receiver.tls.existingSecret=")
    groups = {version.split("/")[0] for version, _ in served}
    assert groups == {"monitoring.coreos.com", "cert-manager.io"}
    peers = {(o["apiVersion"], o["kind"]) for o in objects if o["apiVersion"].split("/")[0] in groups}
    assert {kind for _, kind in peers} == {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "Certificate"}
    assert peers <= served
    # What a Certificate's issuerRef may name.
    assert {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "ClusterIssuer")} <= served


def test_a_cached_copy_needs_neither_go_nor_the_network(tmp_path: Path) -> None:
    paths = peer_crds.crd_files()
    assert peer_crds.crd_files(go=str(tmp_path / "no-go")) == paths
    assert all(p.is_relative_to(build.cache_root() / "crds") for p in paths)


def test_a_module_whose_hash_is_not_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    peer_crds.crd_files()  # the module is in Go's module cache: no download below
    monkeypatch.setenv("INCIDENTOPS_CACHE_DIR", str(tmp_path))
    tampered = dataclasses.replace(peer_crds.SOURCES[0], sum="h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    with pytest.raises(build.BuildError, match="not the pinned h1:AAAA"):
        peer_crds.fetch(tampered)
    assert not any((tmp_path / "crds").glob("*/*.yaml")), "nothing cached"


def test_a_release_that_cannot_be_downloaded_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTOPS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GOPROXY", "off")  # Go's own refusal, without asking the network
    missing = dataclasses.replace(peer_crds.SOURCES[1], version="v1.0.0-not-a-release")
    with pytest.raises(build.BuildError, match=r"go mod download github.com/cert-manager/cert-manager@v1.0.0-not"):
        peer_crds.fetch(missing)
    with pytest.raises(build.BuildError, match="Go is needed"):
        peer_crds.fetch(missing, go=str(tmp_path / "no-go"))
