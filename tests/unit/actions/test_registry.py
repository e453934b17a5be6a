"""The registry: one module per type it knows, a KeyError for any other."""

from __future__ import annotations

import pytest

from incidentops.actions.registry import MODULES, REGISTRY, module_for
from incidentops.api.incident import ActionType


@pytest.mark.parametrize("action_type", list(ActionType))
def test_each_type_has_its_module(action_type: ActionType) -> None:
    module = module_for(action_type)
    assert module.type is action_type
    assert module_for(action_type.value) is module, "by the type's name too"
    for step in ("plan", "applied", "execute", "verify", "undo"):
        assert callable(getattr(module, step))


def test_a_type_without_a_module_is_a_key_error() -> None:
    assert set(REGISTRY) == set(ActionType)
    with pytest.raises(KeyError, match="reboot"):
        module_for("reboot")


def test_one_module_per_type() -> None:
    assert len({module.type for module in MODULES}) == len(MODULES)
