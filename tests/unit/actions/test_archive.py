"""The evidence archive (``incidentops.actions.archive``): chunking, the manifest's digests, item names and
the safety of extracted paths. Pure: packed archives are checked as :class:`archive.Loaded` built here."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidentops.actions import archive
from incidentops.actions.archive import Item

KEY = hashlib.sha256(b"incident-uid\x1fevidence-first").hexdigest()
META = {
    "incident": {"namespace": "shop", "name": "cart-down", "uid": "u-1"},
    "action": {"name": "evidence-first", "key": KEY},
    "collectedAt": "2024-05-01T12:00:00+00:00",
    "redaction": "incidentops/redact/v1",
}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loaded(packed: archive.Packed) -> archive.Loaded:
    """The archive as :func:`archive.load` would read it back from intact ConfigMaps."""
    manifest = archive.manifest_document(packed, KEY, META)
    chunks = {entry["name"]: c.data for entry, c in zip(manifest["chunks"], packed.chunks, strict=True)}
    return archive.Loaded(archive.manifest_name(KEY), manifest, dict(chunks))


def noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)  # what gzip cannot shrink


# --- chunking ----------------------------------------------------------------------------------------------


def test_small_items_share_one_chunk_laid_end_to_end() -> None:
    items = [Item("events/namespace.json", b"[]\n"), Item("logs/shop/cart-1/app.current.log", b"hello\n")]
    packed = archive.pack(items)
    assert len(packed.chunks) == 1
    assert gzip.decompress(packed.chunks[0].data) == b"[]\nhello\n"
    assert [e.parts for e in packed.entries] == [(archive.Part(0, 0, 3),), (archive.Part(0, 3, 6),)]
    assert packed.size == 9


def test_every_chunk_stays_under_the_limit_and_big_items_span_chunks() -> None:
    items = [Item(f"logs/shop/p/c{i}.current.log", noise(300_000, i)) for i in range(5)]
    packed = archive.pack(items)
    assert all(len(c.data) <= archive.CHUNK_BYTES for c in packed.chunks)
    assert len(packed.chunks) >= 3  # 1.5 MB that does not compress
    assert any(len(e.parts) > 1 for e in packed.entries)
    assert dict(archive.contents(loaded(packed))) == {i.name: i.data for i in items}


def test_compressible_items_fill_a_chunk_well_past_its_compressed_limit() -> None:
    log = b"".join(b"2024-05-01T12:00:%02d GET /api/v1/orders 200 12ms\n" % (i % 60) for i in range(40_000))
    packed = archive.pack([Item("logs/shop/p/app.current.log", log)])
    assert len(log) > archive.CHUNK_BYTES and len(packed.chunks) == 1


@PROPERTY
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=9000), max_size=12),
    compressible=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_any_items_round_trip_in_order_under_any_limit(sizes: list[int], compressible: list[bool]) -> None:
    items = [
        Item(f"items/i{n}.bin", (b"abc" * size)[:size] if compressible[n] else noise(size, n))
        for n, size in enumerate(sizes)
    ]
    packed = archive.pack(items, chunk_bytes=4096, piece_bytes=1024)
    assert all(len(c.data) <= 4096 for c in packed.chunks)
    assert all(gzip.decompress(c.data).__len__() == c.size for c in packed.chunks)
    assert list(archive.contents(loaded(packed))) == [(i.name, i.data) for i in items]
    assert archive.check(loaded(packed), packed.digest) == []


def test_packing_is_deterministic() -> None:
    items = [Item("a/one.json", b'{"a": 1}\n'), Item("b/two.log", noise(5000))]
    assert archive.pack(items) == archive.pack(items)


def test_item_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        archive.pack([Item("a.json", b"1"), Item("a.json", b"2")])


# --- digests -------------------------------------------------------------------------------------------------


def test_the_digest_over_all_items_is_sha256sum_of_the_extracted_files(tmp_path: Path) -> None:
    items = [Item("events/namespace.json", b"[]\n"), Item("manifests/Pod/shop/cart-1.json", b"{}\n")]
    packed = archive.pack(items)
    assert hashlib.sha256(archive.sums(loaded(packed))).hexdigest() == packed.digest
    for item in items:
        path = archive.safe_path(tmp_path, item.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)
    listing = subprocess.run(
        ["sha256sum", *[i.name for i in items]], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    assert packed.digest == hashlib.sha256(listing).hexdigest()


def test_the_manifest_lists_every_chunk_and_item_with_their_digests() -> None:
    packed = archive.pack([Item("a/x.log", b"x" * 10), Item("a/y.log", b"")])
    manifest = archive.manifest_document(packed, KEY, META)
    assert manifest["format"] == archive.FORMAT
    assert manifest["incident"] == META["incident"] and manifest["action"] == META["action"]
    assert manifest["sha256"] == packed.digest and manifest["bytes"] == 10
    chunk = manifest["chunks"][0]
    assert chunk["name"] == f"incidentops-evidence-{KEY[:16]}-0-{chunk['sha256'][:10]}"
    assert chunk["sha256"] == hashlib.sha256(packed.chunks[0].data).hexdigest()
    assert manifest["items"][0] == {
        "name": "a/x.log",
        "sha256": hashlib.sha256(b"x" * 10).hexdigest(),
        "bytes": 10,
        "parts": [{"chunk": 0, "offset": 0, "bytes": 10}],
    }


def test_an_intact_archive_checks_clean() -> None:
    packed = archive.pack([Item("a/x.log", b"line\n" * 100)])
    assert archive.check(loaded(packed), packed.digest) == []


def test_one_byte_changed_in_a_chunk_names_the_chunk_and_the_item() -> None:
    packed = archive.pack([Item("a/x.log", b"line\n" * 100), Item("b/y.log", noise(2000))])
    archive_read = loaded(packed)
    name = next(iter(archive_read.chunks))
    # An attacker who rewrites a chunk keeps it a valid gzip stream: recompress the altered content.
    content = bytearray(gzip.decompress(archive_read.chunks[name] or b""))
    content[3] ^= 0x01
    archive_read.chunks[name] = gzip.compress(bytes(content))
    problems = [str(p) for p in archive.check(archive_read, packed.digest)]
    assert any(p.startswith(f"chunk {name}: sha256") for p in problems), problems
    assert any(p.startswith("item a/x.log: sha256") for p in problems), problems
    assert not any("b/y.log" in p for p in problems)
    assert any("the incident records" in p for p in problems)


def test_a_rewritten_manifest_does_not_pass_against_the_incidents_record() -> None:
    packed = archive.pack([Item("a/x.log", b"the truth\n")])
    forged = archive.pack([Item("a/x.log", b"a lie\n")])
    # The forger rewrote chunks and manifest consistently: only the digest the incident keeps tells.
    assert archive.check(loaded(forged)) == []
    problems = archive.check(loaded(forged), packed.digest)
    assert [p.what for p in problems] == ["manifest"]


def test_a_missing_chunk_and_a_manifest_that_lies_about_its_digest() -> None:
    packed = archive.pack([Item("a/x.log", b"x")])
    archive_read = loaded(packed)
    archive_read.manifest["sha256"] = "0" * 64
    archive_read.chunks[next(iter(archive_read.chunks))] = None
    problems = [str(p) for p in archive.check(archive_read)]
    assert any(p.endswith(": missing") for p in problems)
    assert any(p.startswith("item a/x.log") for p in problems)
    assert any(p.startswith("manifest: its items' digest") for p in problems)
    assert list(archive.contents(archive_read)) == [("a/x.log", None)]


# --- names and paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "events/namespace.json",
        "manifests/Deployment/shop/cart.json",
        "logs/shop/cart-7d9-abc/app.current.log",
        "history/Deployment/shop/cart.json",
        "snapshot.json",
    ],
)
def test_item_names_are_relative_paths(name: str) -> None:
    assert Item(name, b"").name == name


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", "a\\b", "-rf"])
def test_other_item_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Item(name, b"")


def test_safe_path_keeps_an_item_under_its_directory(tmp_path: Path) -> None:
    assert archive.safe_path(tmp_path, "logs/shop/p/app.current.log") == tmp_path / "logs/shop/p/app.current.log"


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../outside", "a/../../outside", "a/../..", "", ".", "a\\..\\..\\x", "a/\x00b", "a//b"]
)
def test_safe_path_refuses_whatever_a_manifest_says_that_would_leave(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        archive.safe_path(tmp_path / "out", name)


def test_safe_path_does_not_follow_a_symlink_out(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    os.symlink(tmp_path, root / "link")
    with pytest.raises(ValueError, match="leaves"):
        archive.safe_path(root, "link/secret.txt")


@given(name=st.text(alphabet="ab./\\-_\x00", max_size=12))
def test_safe_path_never_answers_a_path_outside(name: str) -> None:
    root = Path("/tmp/incidentops-extract-root")
    try:
        path = archive.safe_path(root, name)
    except ValueError:
        return
    assert path.resolve().is_relative_to(root.resolve()) and path.resolve() != root.resolve()
