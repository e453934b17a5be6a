"""``kubectl incident evidence NAME``: an incident's evidence, listed, verified, extracted.

Where it sits: inside ``incidentops.plugin``; ``app`` runs it with the incident as read. It reads
``status.evidence`` and, for ``--verify`` and ``--extract``, each record's ConfigMaps through
``incidentops.actions.archive`` (which reads them through ``incidentops.kube``). It writes nothing to
the cluster.

- ``--verify`` recomputes every chunk's and every item's sha256 and the digest over all items, and
  compares that digest with the one the incident records (``status.evidence[].sha256``): a manifest
  rewritten along with its chunks does not pass either. Any mismatch is an error naming the chunk or
  item, and the exit code is 1.
- ``--extract DIR`` writes each record's items under ``DIR/<record>/``, at the paths their names give
  (a name that would leave the directory is refused, whatever the manifest says), with ``SHA256SUMS``
  beside them (``sha256sum -c SHA256SUMS``; its own sha256 is the recorded digest). Files are never
  overwritten. The digests are checked as for ``--verify``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from incidentops import kube
from incidentops.actions import archive
from incidentops.plugin.connection import PluginError, Request, explain

Body = dict[str, Any]
Say = Callable[[str], None]

__all__ = ["records", "run"]


def records(body: Body) -> list[Body]:
    """The incident's ``status.evidence``, read tolerantly."""
    found = (body.get("status") or {}).get("evidence") or []
    return [r for r in found if isinstance(r, dict)]


def _write(root: Path, loaded: archive.Loaded) -> int:
    written = 0
    for name, data in archive.contents(loaded):
        if data is None:
            continue  # check() names it
        path = archive.safe_path(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as out:
            out.write(data)
        written += 1
    with archive.safe_path(root, "SHA256SUMS").open("xb") as out:
        out.write(archive.sums(loaded))
    return written


def _extract(directory: Path, name: str, loaded: archive.Loaded) -> int:
    try:
        root = archive.safe_path(directory, name)
        return _write(root, loaded)
    except ValueError as exc:  # a name that would leave the directory: nothing of this record goes further
        raise PluginError(f'evidence "{name}": {exc}; not extracted further') from exc
    except FileExistsError as exc:
        raise PluginError(f'evidence "{name}": {exc.filename} exists already; extract into an empty directory') from exc
    except OSError as exc:
        raise PluginError(f'evidence "{name}": cannot write {exc.filename}: {exc.strerror or exc}') from exc


def _problems(record: Body, loaded: archive.Loaded) -> list[str]:
    problems = [str(p) for p in archive.check(loaded, str(record.get("sha256")))]
    items = len(loaded.manifest.get("items") or [])
    if record.get("items") != items:
        problems.append(f"manifest: {items} items, the incident records {record.get('items')}")
    return problems


async def run(
    api: kube.ApiClient,
    namespace: str,
    body: Body,
    *,
    verify: bool,
    extract: Path | None,
    out: Say,
    err: Say,
) -> int:
    """Verify and/or extract every evidence record of the incident ``body``; 1 if any does not verify."""
    name = (body.get("metadata") or {}).get("name")
    found = records(body)
    if not found:
        raise PluginError(f'incident "{name}" has no evidence (status.evidence is empty)')
    failed = 0
    for record in found:
        label = f'evidence "{record.get("name")}"'
        try:
            loaded = await archive.load(api, namespace, str(record.get("ref")))
        except kube.ApiError as exc:
            raise PluginError(explain(exc, Request("get", "configmaps", namespace, str(record.get("ref"))))) from exc
        except ValueError as exc:
            err(f"Error: {label} does not verify: {exc}")
            failed += 1
            continue
        problems = _problems(record, loaded)
        if problems:
            failed += 1
            err(f"Error: {label} does not verify ({len(problems)} problem(s)):")
            for problem in problems:
                err(f"  {problem}")
        elif verify:
            chunks = len(loaded.manifest.get("chunks") or [])
            out(
                f"{label}: verified, {record.get('items')} items, {record.get('bytes')} bytes"
                f" in {chunks} chunk(s) and ConfigMap {namespace}/{record.get('ref')}, sha256 {record.get('sha256')}"
            )
        if extract is not None:
            written = _extract(extract, str(record.get("name")), loaded)
            out(f"{label}: {written} items written to {extract / str(record.get('name'))}, with SHA256SUMS")
    return 1 if failed else 0
