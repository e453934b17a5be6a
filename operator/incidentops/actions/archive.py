"""The evidence archive: items packed into immutable, gzip'd ConfigMaps with a manifest, and read back.

Where it sits: ``snapshot.py`` stores what ``evidence.py`` collected with :func:`store` and finds it again
with :func:`find` (after a crash, and to verify it); ``kubectl incident evidence`` reads it with
:func:`load` and checks it with :func:`check`, extracting files with :func:`safe_path`. Packing and checking
are pure; :func:`store`, :func:`find` and :func:`load` talk to the API through ``incidentops.kube``.

The layout, for an action key ``K`` (64 hex digits) and its short form ``k = K[:16]``, in the incident's
namespace, every ConfigMap ``immutable: true``, labelled ``incidentops.dev/incident=<incident name>``,
``incidentops.dev/evidence=<k>`` and ``incidentops.dev/evidence-part=chunk|manifest``:

- chunks ``incidentops-evidence-<k>-<i>-<h>`` (``i`` from 0, ``h`` the first 10 hex digits of the sha256 of
  the chunk's stored bytes): ``binaryData["chunk.gz"]``, one gzip stream of item parts laid end to end, at
  most :data:`CHUNK_BYTES` compressed, so each ConfigMap stays well under the API's 1 MiB;
- the manifest ``incidentops-evidence-<k>``: ``data["manifest.json"]``, listing every chunk (name, sha256 of
  its stored bytes, compressed and uncompressed size) and every item (name, sha256, bytes, and its parts:
  chunk index, offset and length in the chunk's uncompressed stream; an item over :data:`PIECE_BYTES`
  spans chunks), and the digest over all items: the sha256 of the lines ``<item sha256>  <item name>\\n``
  in manifest order (what ``sha256sum`` prints for the extracted files). ``status.evidence[].sha256`` is
  that digest, kept in the Incident, so a manifest rewritten along with its chunks does not pass either.

Chunks are written first and the manifest last, so a manifest that exists lists chunks that were all
created: "the manifest exists" is "the evidence is stored". Chunk names carry their content's digest: a
retry after a crash collects again and writes new chunks; the crashed attempt's chunks, which no manifest
lists, stay behind, labelled, and are never read.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from incidentops import kube
from incidentops.api.common import GROUP

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "PIECE_BYTES",
    "Chunk",
    "Entry",
    "Item",
    "Loaded",
    "Packed",
    "Part",
    "Problem",
    "check",
    "chunk_name",
    "contents",
    "digest",
    "find",
    "load",
    "manifest_name",
    "pack",
    "safe_path",
    "store",
    "sums",
]

FORMAT: Final = f"{GROUP}/evidence/v1"
"""The manifest's ``format``: what a reader must understand to read the archive."""

CHUNK_BYTES: Final = 512 * 1024
"""A chunk's compressed size at most: half the API's 1 MiB for a ConfigMap, so base64, metadata and the
request around it have room."""

PIECE_BYTES: Final = 256 * 1024
"""Items are packed in pieces of at most this many (uncompressed) bytes: even data gzip cannot shrink fits
an empty chunk."""

MANIFEST_KEY: Final = "manifest.json"
CHUNK_KEY: Final = "chunk.gz"
INCIDENT_LABEL: Final = f"{GROUP}/incident"
EVIDENCE_LABEL: Final = f"{GROUP}/evidence"
PART_LABEL: Final = f"{GROUP}/evidence-part"
SHORT_KEY: Final = 16

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def manifest_name(key: str) -> str:
    """The manifest ConfigMap of the action with key ``key``."""
    return f"incidentops-evidence-{key[:SHORT_KEY]}"


def chunk_name(key: str, index: int, sha256: str) -> str:
    """The ``index``-th chunk ConfigMap, named after its stored bytes' digest."""
    return f"{manifest_name(key)}-{index}-{sha256[:10]}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_item_name(name: str) -> str:
    """``name`` if it is a relative, path-like item name (``logs/shop/cart-7d9/app.current.log``)."""
    parts = name.split("/")
    if len(name) > 512 or not all(_NAME_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"not an item name: {name!r}")
    return name


@dataclass(frozen=True)
class Item:
    """One piece of evidence: a path-like name and its bytes."""

    name: str
    data: bytes
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        check_item_name(self.name)
        object.__setattr__(self, "sha256", _sha256(self.data))


@dataclass(frozen=True)
class Part:
    """Where a piece of an item lies: chunk index, offset and length in the chunk's uncompressed stream."""

    chunk: int
    offset: int
    bytes: int


@dataclass(frozen=True)
class Entry:
    """An item as the manifest lists it."""

    name: str
    sha256: str
    bytes: int
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Chunk:
    """A chunk as stored: its gzip bytes, and how long they are uncompressed."""

    data: bytes
    size: int

    @property
    def sha256(self) -> str:
        return _sha256(self.data)


@dataclass(frozen=True)
class Packed:
    """Items packed into chunks, and the manifest's view of them."""

    chunks: tuple[Chunk, ...]
    entries: tuple[Entry, ...]
    digest: str
    size: int


def digest(entries: Sequence[tuple[str, str]]) -> str:
    """The digest over all items, from their (name, sha256) in order (see the module doc)."""
    lines = "".join(f"{sha}  {name}\n" for name, sha in entries)
    return _sha256(lines.encode())


def _compressor() -> Any:
    # gzip framing (wbits 31) with no name and a zero mtime: the same items always make the same bytes.
    return zlib.compressobj(6, zlib.DEFLATED, 31)


def pack(items: Sequence[Item], *, chunk_bytes: int = CHUNK_BYTES, piece_bytes: int = PIECE_BYTES) -> Packed:
    """Pack ``items``, in order, into chunks of at most ``chunk_bytes`` compressed bytes."""
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise ValueError("item names must be unique")
    chunks: list[Chunk] = []
    compressor, written, size = _compressor(), b"", 0

    def close() -> None:
        nonlocal compressor, written, size
        chunks.append(Chunk(written + compressor.flush(), size))
        compressor, written, size = _compressor(), b"", 0

    entries: list[Entry] = []
    for item in items:
        parts: list[Part] = []
        for start in range(0, max(len(item.data), 1), piece_bytes):
            piece = item.data[start : start + piece_bytes]
            # Try the piece on a copy: the chunk's final size if it went in (compressed output lags its
            # input, so only a flush tells), and close the chunk first if it would not fit.
            trial = compressor.copy()
            out = trial.compress(piece)
            if size and len(written) + len(out) + len(trial.copy().flush()) > chunk_bytes:
                close()
                trial = compressor.copy()
                out = trial.compress(piece)
            compressor, written = trial, written + out
            parts.append(Part(len(chunks), size, len(piece)))
            size += len(piece)
        entries.append(Entry(item.name, item.sha256, len(item.data), tuple(parts)))
    if size or not chunks:
        close()
    total = sum(e.bytes for e in entries)
    return Packed(tuple(chunks), tuple(entries), digest([(e.name, e.sha256) for e in entries]), total)


def manifest_document(packed: Packed, key: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest of ``packed`` as stored (``meta``: incident, action, collectedAt, redaction)."""
    return {
        "format": FORMAT,
        **meta,
        "sha256": packed.digest,
        "bytes": packed.size,
        "chunks": [
            {"name": chunk_name(key, i, c.sha256), "sha256": c.sha256, "bytes": len(c.data), "size": c.size}
            for i, c in enumerate(packed.chunks)
        ],
        "items": [
            {
                "name": e.name,
                "sha256": e.sha256,
                "bytes": e.bytes,
                "parts": [{"chunk": p.chunk, "offset": p.offset, "bytes": p.bytes} for p in e.parts],
            }
            for e in packed.entries
        ],
    }


# --- the ConfigMaps -------------------------------------------------------------------------------------


def _configmap(
    name: str, namespace: str, part: str, key: str, meta: Mapping[str, Any], owner: Mapping[str, Any] | None
) -> dict[str, Any]:
    incident = meta["incident"]
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "incidentops",
            INCIDENT_LABEL: incident["name"],
            EVIDENCE_LABEL: key[:SHORT_KEY],
            PART_LABEL: part,
        },
        "annotations": {
            f"{GROUP}/incident": f"{incident['namespace']}/{incident['name']}",
            f"{GROUP}/action-key": key,
        },
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "immutable": True}


async def _create_once(api: kube.ApiClient, namespace: str, body: dict[str, Any], same: Any) -> dict[str, Any]:
    """Create ``body``; if it exists already (a retry, another replica), the existing one if ``same`` says
    it holds what we meant to write, else an error: an immutable object we did not write is not ours."""
    try:
        return await kube.create_object(api, kube.CONFIGMAPS, namespace, body)
    except kube.ApiError as exc:
        if exc.status != 409:
            raise
    name = body["metadata"]["name"]
    existing = await kube.get_object(api, kube.CONFIGMAPS, namespace, name)
    if existing is None or not same(existing):
        raise RuntimeError(f"ConfigMap {namespace}/{name} exists with other contents; evidence not stored")
    return existing


async def store(
    api: kube.ApiClient,
    namespace: str,
    key: str,
    packed: Packed,
    meta: Mapping[str, Any],
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the chunks, then the manifest (see the module doc); returns the manifest document stored (the
    one already there, when another attempt finished first)."""
    document = manifest_document(packed, key, meta)
    for entry, chunk in zip(document["chunks"], packed.chunks, strict=True):
        body = _configmap(entry["name"], namespace, "chunk", key, meta, owner)
        body["binaryData"] = {CHUNK_KEY: base64.b64encode(chunk.data).decode()}
        await _create_once(api, namespace, body, lambda cm, b=body: cm.get("binaryData") == b["binaryData"])
    body = _configmap(manifest_name(key), namespace, "manifest", key, meta, owner)
    body["data"] = {MANIFEST_KEY: json.dumps(document, indent=1, sort_keys=False) + "\n"}
    # A manifest already there is a finished attempt (a manifest is written only after its chunks).
    stored = await _create_once(api, namespace, body, lambda cm: MANIFEST_KEY in (cm.get("data") or {}))
    parsed: dict[str, Any] = json.loads(stored["data"][MANIFEST_KEY])
    return parsed


async def find(api: kube.ApiClient, namespace: str, key: str) -> dict[str, Any] | None:
    """The manifest document of the action ``key``, or None when its evidence is not (yet) stored."""
    configmap = await kube.get_object(api, kube.CONFIGMAPS, namespace, manifest_name(key))
    if configmap is None:
        return None
    text = (configmap.get("data") or {}).get(MANIFEST_KEY)
    if not isinstance(text, str):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


# --- reading back, checking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something about an archive that does not hold: what (a chunk, an item, the manifest) and why."""

    what: str
    message: str

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


@dataclass(frozen=True)
class Loaded:
    """An archive as read from the cluster: its manifest and each chunk's stored bytes (None: missing)."""

    ref: str
    manifest: dict[str, Any]
    chunks: dict[str, bytes | None]


async def load(api: kube.ApiClient, namespace: str, ref: str) -> Loaded:
    """Read the manifest ConfigMap ``ref`` and every chunk it lists. A missing or unreadable manifest
    raises ``ValueError``; a missing chunk is recorded (:func:`check` names it)."""
    configmap = await kube.get_object(api, kube.CONFIGMAPS, namespace, ref)
    if configmap is None:
        raise ValueError(f"the manifest ConfigMap {namespace}/{ref} does not exist")
    text = (configmap.get("data") or {}).get(MANIFEST_KEY)
    try:
        manifest = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"ConfigMap {namespace}/{ref} holds no evidence manifest of format {FORMAT}")
    chunks: dict[str, bytes | None] = {}
    for entry in manifest.get("chunks") or []:
        name = str(entry.get("name"))
        chunk = await kube.get_object(api, kube.CONFIGMAPS, namespace, name)
        data = ((chunk or {}).get("binaryData") or {}).get(CHUNK_KEY)
        chunks[name] = base64.b64decode(data) if isinstance(data, str) else None
    return Loaded(ref, manifest, chunks)


def _streams(loaded: Loaded, problems: list[Problem]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for entry in loaded.manifest.get("chunks") or []:
        name = str(entry.get("name"))
        data = loaded.chunks.get(name)
        if data is None:
            problems.append(Problem(f"chunk {name}", "missing"))
            out.append(None)
            continue
        if _sha256(data) != entry.get("sha256"):
            problems.append(
                Problem(f"chunk {name}", f"sha256 {_sha256(data)}, the manifest says {entry.get('sha256')}")
            )
        try:
            out.append(gzip.decompress(data))
        except (OSError, EOFError, zlib.error) as exc:
            problems.append(Problem(f"chunk {name}", f"not a gzip stream ({exc})"))
            out.append(None)
    return out


def _assemble(entry: Mapping[str, Any], streams: Sequence[bytes | None]) -> bytes | int:
    """The item's bytes, or the index of the chunk that keeps it from being assembled."""
    data = b""
    for part in entry.get("parts") or []:
        index, offset, length = int(part["chunk"]), int(part["offset"]), int(part["bytes"])
        stream = streams[index] if 0 <= index < len(streams) else None
        if stream is None or offset + length > len(stream):
            return index
        data += stream[offset : offset + length]
    return data


def _chunk_label(loaded: Loaded, index: int) -> str:
    chunks = loaded.manifest.get("chunks") or []
    return str(chunks[index].get("name")) if 0 <= index < len(chunks) else f"#{index} (not in the manifest)"


def check(loaded: Loaded, expected: str | None = None) -> list[Problem]:
    """Every chunk's, every item's and the manifest's digest recomputed; ``expected``: the digest recorded
    elsewhere (``status.evidence[].sha256``). Empty when the archive is intact."""
    problems: list[Problem] = []
    streams = _streams(loaded, problems)
    recomputed: list[tuple[str, str]] = []
    for entry in loaded.manifest.get("items") or []:
        name = str(entry.get("name"))
        data = _assemble(entry, streams)
        if isinstance(data, int):
            problems.append(
                Problem(f"item {name}", f"in chunk {_chunk_label(loaded, data)}, which is missing or unreadable")
            )
            recomputed.append((name, ""))
            continue
        sha = _sha256(data)
        if sha != entry.get("sha256"):
            problems.append(Problem(f"item {name}", f"sha256 {sha}, the manifest says {entry.get('sha256')}"))
        if len(data) != entry.get("bytes"):
            problems.append(Problem(f"item {name}", f"{len(data)} bytes, the manifest says {entry.get('bytes')}"))
        recomputed.append((name, sha))
    listed = digest([(str(e.get("name")), str(e.get("sha256"))) for e in loaded.manifest.get("items") or []])
    if listed != loaded.manifest.get("sha256"):
        problems.append(Problem("manifest", f"its items' digest is {listed}, it says {loaded.manifest.get('sha256')}"))
    if expected is not None and digest(recomputed) != expected:
        problems.append(
            Problem("manifest", f"the items' digest is {digest(recomputed)}, the incident records {expected}")
        )
    return problems


def contents(loaded: Loaded) -> Iterator[tuple[str, bytes | None]]:
    """Every item's name and bytes, in manifest order; None for one that cannot be assembled (a chunk
    missing or not gzip: :func:`check` says which)."""
    streams = _streams(loaded, [])
    for entry in loaded.manifest.get("items") or []:
        data = _assemble(entry, streams)
        yield str(entry.get("name")), None if isinstance(data, int) else data


def sums(loaded: Loaded) -> bytes:
    """The manifest's items as ``sha256sum`` lines: ``sha256sum -c`` checks extracted files against it, and
    its own sha256 is the digest over all items."""
    return "".join(f"{e.get('sha256')}  {e.get('name')}\n" for e in loaded.manifest.get("items") or []).encode()


def safe_path(root: Path, name: str) -> Path:
    """Where the item ``name`` goes under ``root``; ``ValueError`` for a name that would leave it (absolute,
    ``..``, a backslash, an empty part), whatever a manifest says."""
    if "\\" in name or "\x00" in name:
        raise ValueError(f"item name {name!r} is not a relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in name.split("/")):
        raise ValueError(f"item name {name!r} is not a relative path")
    target = root.joinpath(*path.parts)
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root) or target.resolve() == resolved_root:
        raise ValueError(f"item name {name!r} leaves {root}")
    return target
