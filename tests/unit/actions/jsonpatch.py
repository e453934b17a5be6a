"""A small RFC 6902 JSON patch applier, so the unit tests apply the patches the actions build exactly as
the API server would (add, remove, replace, test), and prove their inverses."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


class PatchFailed(Exception):
    """The patch does not apply (the API server's 422)."""


def _segments(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise PatchFailed(f"not a JSON pointer: {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _parent(document: Any, pointer: str) -> tuple[Any, str]:
    *path, last = _segments(pointer)
    node = document
    for part in path:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise PatchFailed(f"no {pointer}") from exc
    return node, last


def apply(document: Any, operations: Iterable[Mapping[str, Any]]) -> Any:
    """``document`` after ``operations`` (a copy); raises :class:`PatchFailed` as the server would refuse."""
    out = copy.deepcopy(document)
    for operation in operations:
        node, last = _parent(out, operation["path"])
        op = operation["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, copy.deepcopy(operation["value"]))
            elif op == "remove":
                node.pop(index)
            elif op == "replace":
                node[index] = copy.deepcopy(operation["value"])
            elif op == "test" and node[index] != operation["value"]:
                raise PatchFailed(f"test of {operation['path']} failed")
            continue
        if op in ("remove", "replace", "test") and last not in node:
            raise PatchFailed(f"no {operation['path']} to {op}")
        if op in ("add", "replace"):
            node[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[last]
        elif op == "test" and node[last] != operation["value"]:
            raise PatchFailed(f"test of {operation['path']} failed")
    return out
