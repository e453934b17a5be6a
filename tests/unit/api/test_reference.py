"""docs/api.md is generated from the models: it fails here when it drifts."""

from __future__ import annotations

from pathlib import Path

from incidentops.api import reference

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def test_the_committed_reference_matches_the_models() -> None:
    assert DOCS.read_text(encoding="utf-8") == reference.render(), (
        "docs/api.md is out of date: run `make crds` (incidentops crds --docs docs/api.md)"
    )


def test_every_spec_field_is_documented() -> None:
    text = reference.render()
    for field in ("spec.acknowledgement.by", "spec.levels[].afterBySeverity", "status.escalation.notified"):
        assert f"`{field}`" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    undocumented = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert not undocumented, f"fields without a description: {undocumented}"
