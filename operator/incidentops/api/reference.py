"""The API reference (``docs/api.md``), generated from the same schemas as the CRDs.

Where it sits: beside ``crdgen``, which it reads; ``incidentops crds --docs``
writes it and a unit test fails when the committed file drifts, so the docs
say exactly what the API server enforces: every field with its type, default,
limits and description, as cert-manager's API reference does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from incidentops.api import crdgen

_HEADER = """# API reference

Generated from the API models by `incidentops crds --docs docs/api.md`; do not
edit. Every field, its type, its default and what the operator does with it.
The same text is in the CRDs, so `kubectl explain incident.spec.acknowledgement`
shows it too. Rules that span fields (CEL) are listed under their object.
"""


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "object" if "properties" in schema else "any")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if schema.get("format") == "date-time":
        return "timestamp"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return str(kind)


def _limits(schema: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("minimum", "min"),
        ("maximum", "max"),
        ("maxProperties", "max entries"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    if "x-kubernetes-list-map-keys" in schema:
        parts.append("keyed on " + ", ".join(schema["x-kubernetes-list-map-keys"]))
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, schema, required) of every field below ``schema``, depth first."""
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, child, name in required
        target = child.get("items", child) if child.get("type") == "array" else child
        suffix = "[]" if child.get("type") == "array" else ""
        yield from _fields(target, child_path + suffix)


def _rules(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path or "(the object)", rule["message"]
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        target = child.get("items", child) if child.get("type") == "array" else child
        if target is not child:
            for rule in child.get("x-kubernetes-validations", []):
                yield child_path, rule["message"]
        yield from _rules(target, child_path + ("[]" if target is not child else ""))


def render() -> str:
    out = [_HEADER]
    for crd in crdgen.generate():
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        out.append(f"\n## {names['kind']} (`{crd['spec']['group']}/{version['name']}`)\n")
        out.append(
            f"Namespaced; short name `{', '.join(names.get('shortNames', []))}`, "
            f"category `{', '.join(names.get('categories', []))}`.\n"
        )
        if schema.get("description"):
            out.append(_cell(schema["description"]) + "\n")
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            out.append("\nPrinter columns: " + ", ".join(
                f"{c['name']} (`{c['jsonPath']}`{', wide' if c.get('priority') else ''})" for c in columns
            ) + ".\n")  # fmt: skip
        for part in ("spec", "status"):
            section = schema["properties"].get(part)
            if section is None:
                continue
            out.append(f"\n### {names['kind']}.{part}\n")
            if section.get("description"):
                out.append(_cell(section["description"]) + "\n")
            out.append("\n| Field | Type | Default | Limits | Description |\n|---|---|---|---|---|")
            for path, field, required in _fields(section, part):
                default = f"`{field['default']}`" if "default" in field else ("required" if required else "")
                out.append(
                    f"| `{path}` | {_type(field)} | {_cell(str(default))} | {_cell(_limits(field))} "
                    f"| {_cell(field.get('description', ''))} |"
                )
            rules = list(_rules(section, part))
            if rules:
                out.append(f"\nRules the API server enforces on `{part}`:\n")
                out.extend(f"- `{where}`: {_cell(message)}" for where, message in rules)
    return "\n".join(out) + "\n"
