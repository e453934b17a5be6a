"""Which module carries out which type of action.

Where it sits: the action runner (``incidentops.handlers.actions``) asks :func:`module_for` for the module
of a ledger record's type.
"""

from __future__ import annotations

from incidentops.actions.base import Action
from incidentops.api.incident import ActionType

__all__ = ["MODULES", "module_for"]

MODULES: dict[ActionType, Action] = {}
"""The modules by type."""


def module_for(action_type: ActionType) -> Action:
    """The module of ``action_type``; KeyError for a type without one."""
    return MODULES[action_type]
