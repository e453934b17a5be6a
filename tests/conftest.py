"""Test-wide settings: unit and e2e tests are kept apart by the `e2e` marker.

`make test` runs both; `make unit` and `make e2e` one kind each. Everything
under tests/e2e/ is marked e2e automatically, so a test cannot slip into the
wrong group by forgetting its marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
