"""Test-wide settings: unit and e2e tests are kept apart by the `e2e` marker.

`make test` runs both; `make unit` and `make e2e` one kind each. Everything
under tests/e2e/ is marked e2e automatically, so a test cannot slip into the
wrong group by forgetting its marker.

Hypothesis runs with its default profile, except under `make mutation`, which
passes ``--hypothesis-profile=mutation``: the domain's suite runs once per
mutant there, so each property tries a twentieth of its examples (see
``tests.unit.domain.builders.examples``), the same ones on every run
(derandomized, no example database), and a run's score is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

E2E_DIR = Path(__file__).parent / "e2e"

settings.register_profile(
    "mutation",
    max_examples=5,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow],
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
