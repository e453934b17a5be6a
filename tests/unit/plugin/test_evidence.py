"""``kubectl incident evidence``: the command line, the table, and verify/extract against ConfigMaps kept
by the stand-in of ``tests.unit.actions.fakecluster`` (the e2e suite does it on the real control plane)."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from incidentops.actions import archive
from incidentops.actions.archive import Item
from incidentops.plugin import evidence, render
from incidentops.plugin.args import parse
from incidentops.plugin.connection import PluginError
from tests.unit.actions.fakecluster import FakeCluster

NOW = datetime.datetime(2024, 5, 1, 12, 5, tzinfo=datetime.UTC)
KEY = "cd" * 32
META = {
    "incident": {"namespace": "shop", "name": "cart-down", "uid": "u"},
    "action": {"name": "evidence-first", "key": KEY},
    "collectedAt": "2024-05-01T12:00:00+00:00",
    "redaction": "incidentops/redact/v1",
}
ITEMS = [
    Item("events/namespace.json", b"[]\n"),
    Item("logs/shop/cart-1/app.current.log", b"started\n" * 1000),
    Item("snapshot.json", b"{}\n"),
]


@pytest.fixture
async def incident(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeCluster, dict[str, Any]]:
    cluster = FakeCluster().install(monkeypatch)
    manifest = await archive.store(None, "shop", KEY, archive.pack(ITEMS), META)  # type: ignore[arg-type]
    record = {
        "name": "evidence-first",
        "ref": archive.manifest_name(KEY),
        "sha256": manifest["sha256"],
        "bytes": manifest["bytes"],
        "items": len(ITEMS),
        "collectedAt": "2024-05-01T12:00:00Z",
    }
    return cluster, {"metadata": {"name": "cart-down", "namespace": "shop"}, "status": {"evidence": [record]}}


class Said:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []


async def run(body: dict[str, Any], *, verify: bool = False, extract: Path | None = None) -> tuple[int, Said]:
    said = Said()
    code = await evidence.run(
        None,  # type: ignore[arg-type]
        "shop",
        body,
        verify=verify,
        extract=extract,
        out=said.out.append,
        err=said.err.append,
    )
    return code, said


def tamper(cluster: FakeCluster) -> str:
    """Replace the first chunk with one whose content differs in one byte (a valid gzip stream)."""
    chunk = next(b for b in cluster.of("configmaps", "shop") if "binaryData" in b)
    content = bytearray(gzip.decompress(base64.b64decode(chunk["binaryData"]["chunk.gz"])))
    content[-2] ^= 0x20
    chunk["binaryData"]["chunk.gz"] = base64.b64encode(gzip.compress(bytes(content))).decode()
    return str(chunk["metadata"]["name"])


def test_the_command_line() -> None:
    args = parse(["evidence", "cart-down", "--verify", "--extract", "out", "-n", "shop"])
    assert (args.command, args.name, args.verify, args.extract, args.namespace) == (
        "evidence",
        "cart-down",
        True,
        Path("out"),
        "shop",
    )
    assert parse(["evidence", "cart-down", "-o", "json"]).output == "json"


def test_the_table_shows_every_record_with_its_full_digest() -> None:
    record = {
        "name": "e",
        "ref": "cm",
        "items": 3,
        "bytes": 10,
        "sha256": "a" * 64,
        "collectedAt": "2024-05-01T12:00:00Z",
    }
    lines = render.evidence_table([record], NOW).splitlines()
    assert lines[0].split() == ["NAME", "REF", "ITEMS", "BYTES", "SHA256", "COLLECTED"]
    assert lines[1].split()[:5] == ["e", "cm", "3", "10", "a" * 64]
    assert "(5m ago)" in lines[1]


async def test_verify_passes_on_intact_evidence(incident: tuple[FakeCluster, dict[str, Any]]) -> None:
    _, body = incident
    code, said = await run(body, verify=True)
    assert code == 0 and not said.err
    assert said.out[0].startswith('evidence "evidence-first": verified, 3 items')


async def test_verify_fails_loudly_naming_the_chunk_and_the_item(incident: tuple[FakeCluster, dict[str, Any]]) -> None:
    cluster, body = incident
    chunk = tamper(cluster)
    code, said = await run(body, verify=True)
    assert code == 1 and not said.out
    assert said.err[0].startswith('Error: evidence "evidence-first" does not verify')
    assert any(line.startswith(f"  chunk {chunk}: sha256") for line in said.err)
    assert any(line.startswith("  item snapshot.json: sha256") for line in said.err)


async def test_a_missing_manifest_does_not_verify(incident: tuple[FakeCluster, dict[str, Any]]) -> None:
    cluster, body = incident
    del cluster.objects[("configmaps", "shop", archive.manifest_name(KEY))]
    code, said = await run(body, verify=True)
    assert code == 1 and "does not exist" in said.err[0]


async def test_no_evidence_is_an_error(incident: tuple[FakeCluster, dict[str, Any]]) -> None:
    with pytest.raises(PluginError, match="has no evidence"):
        await run({"metadata": {"name": "x"}, "status": {}}, verify=True)


async def test_extract_writes_the_items_and_sha256sums(
    incident: tuple[FakeCluster, dict[str, Any]], tmp_path: Path
) -> None:
    _, body = incident
    code, said = await run(body, extract=tmp_path)
    assert code == 0
    root = tmp_path / "evidence-first"
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == {i.name for i in ITEMS} | {
        "SHA256SUMS"
    }
    assert (root / "logs/shop/cart-1/app.current.log").read_bytes() == ITEMS[1].data
    assert hashlib.sha256((root / "SHA256SUMS").read_bytes()).hexdigest() == body["status"]["evidence"][0]["sha256"]
    for line in (root / "SHA256SUMS").read_text().splitlines():  # what `sha256sum -c SHA256SUMS` checks
        sha, name = line.split("  ", 1)
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == sha
    assert said.out == [f'evidence "evidence-first": 3 items written to {root}, with SHA256SUMS']
    with pytest.raises(PluginError, match="exists already"):
        await run(body, extract=tmp_path)


async def test_extract_of_tampered_evidence_writes_it_and_says_it_does_not_verify(
    incident: tuple[FakeCluster, dict[str, Any]], tmp_path: Path
) -> None:
    cluster, body = incident
    tamper(cluster)
    code, said = await run(body, extract=tmp_path)
    assert code == 1 and said.err and (tmp_path / "evidence-first" / "snapshot.json").exists()


async def test_extract_never_leaves_its_directory_whatever_the_manifest_says(
    incident: tuple[FakeCluster, dict[str, Any]], tmp_path: Path
) -> None:
    cluster, body = incident
    manifest_cm = cluster.objects[("configmaps", "shop", archive.manifest_name(KEY))]
    manifest = json.loads(manifest_cm["data"]["manifest.json"])
    manifest["items"][0]["name"] = "../../escaped.json"
    manifest_cm["data"]["manifest.json"] = json.dumps(manifest)
    out = tmp_path / "out"
    with pytest.raises(PluginError, match="not a relative path"):
        await run(body, extract=out)
    assert not (tmp_path / "escaped.json").exists()
