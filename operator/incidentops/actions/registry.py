"""Which module carries out each type of action.

Where it sits: the action runner (``incidentops.handlers.actions``) asks :func:`module_for` for the module of
a ledger record's type and drives it through ``incidentops.actions.base.Action``'s steps. The table is
built from the modules that exist: a new module is one more entry in :data:`MODULES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from incidentops.actions.base import Action
from incidentops.actions.maintenance import Maintenance
from incidentops.actions.quarantine import Quarantine
from incidentops.actions.rollback import Rollback
from incidentops.actions.scale import Scale
from incidentops.actions.snapshot import SNAPSHOT
from incidentops.api.incident import ActionType

__all__ = ["MODULES", "REGISTRY", "module_for"]

MODULES: Final[tuple[Action, ...]] = (Rollback(), Maintenance(), Quarantine(), Scale(), SNAPSHOT)
"""One instance of each action module (they keep no state of their own: everything is in the Context)."""

REGISTRY: Final[Mapping[ActionType, Action]] = MappingProxyType({module.type: module for module in MODULES})
"""Each type's module, read-only."""


def module_for(action_type: ActionType | str) -> Action:
    """The module of ``action_type``; KeyError for a type no module carries out (yet)."""
    try:
        return REGISTRY[ActionType(action_type)]
    except (KeyError, ValueError):
        raise KeyError(f"no action module for type {action_type!r}") from None
