"""values.yaml, values.schema.json and the chart's README: one truth, and the schema refuses what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests import chartdocs
from tests.unit.chart.helm import CHART, FULL_VALUES, helm

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _strict_objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if node.get("type") == "object" and "properties" in node:
        found.append((path, node))
        for name, child in node["properties"].items():
            found += _strict_objects(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _strict_objects(node["items"], f"{path}[]")
    return found


def test_every_object_of_the_schema_refuses_unknown_keys() -> None:
    objects = _strict_objects(SCHEMA)
    assert len(objects) > 20
    for path, node in objects:
        assert node.get("additionalProperties") is False, f"{path or '(root)'} allows unknown keys"


def _keys(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> None:
    """values.yaml's keys are the schema's (besides Helm's `global`), all the way down."""
    properties = schema["properties"]
    for key, value in values.items():
        assert key in properties, f"{path}.{key} is in values.yaml but not in the schema"
        child = properties[key]
        if isinstance(value, dict) and "properties" in child:
            _keys(value, child, f"{path}.{key}")


def test_the_schema_and_values_yaml_have_the_same_keys() -> None:
    _keys(VALUES, SCHEMA)
    assert set(VALUES) == set(SCHEMA["properties"]) - {"global"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
        (["--set", "bogus=1"], "at '': additional properties 'bogus' not allowed"),
        (["--set", "crds.kept=true"], "at '/crds': additional properties 'kept' not allowed"),
        (["--set", "operator.logFormat=xml"], "at '/operator/logFormat': value must be one of 'text', 'json'"),
        (["--set", "receiver.port=70000"], "at '/receiver/port': maximum: got 70,000, want 65,535"),
        (["--set", "watchNamespaces={Payments}"], "at '/watchNamespaces/0': 'Payments' does not match pattern"),
    ],
    ids=["wrong-type", "unknown-key", "unknown-nested-key", "not-in-enum", "out-of-range", "not-a-namespace"],
)
def test_the_schema_refuses(args: list[str], message: str) -> None:
    result = helm("template", "io", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in result.stderr
    assert message in result.stderr, result.stderr


def test_the_full_values_file_passes_the_schema_and_sets_every_key() -> None:
    full = yaml.safe_load(FULL_VALUES.read_text())
    # Every top-level value (but the name override of the full name) is exercised by the full file.
    assert set(VALUES) - set(full) == {"fullnameOverride"}
    helm("template", "io", str(CHART), "-f", str(FULL_VALUES))


def test_every_value_is_documented() -> None:
    documented = {key for key, _ in chartdocs._documented((CHART / "values.yaml").read_text())}

    def leaves(values: dict[str, Any], path: str = "") -> set[str]:
        out = set()
        for key, value in values.items():
            dotted = f"{path}{key}"
            if dotted in documented:
                out.add(dotted)
            elif isinstance(value, dict) and value:
                out |= leaves(value, f"{dotted}.")
            else:
                out.add(dotted)
        return out

    missing = leaves(VALUES) - documented
    assert not missing, f"values without a `# --` comment: {sorted(missing)}"


def test_the_readme_is_generated_from_values_yaml() -> None:
    assert (CHART / "README.md").read_text() == chartdocs.render(), "run `make chart-docs`"
    assert "| `crds.keep` | bool | `true` |" in chartdocs.render()
