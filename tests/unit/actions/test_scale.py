"""Scale's decisions on JSON: the count, when it is done, and what undo may do."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incidentops.actions.base import KEY_ANNOTATION
from incidentops.actions.common import carries_key, undo_decision
from incidentops.actions.scale import replicas_of, scale_progress

KEY = "k" * 64


def deployment(wanted: int | None = 3, *, key: str | None = KEY, **status: Any) -> dict[str, Any]:
    spec = {} if wanted is None else {"replicas": wanted}
    annotations = {KEY_ANNOTATION: key} if key else {}
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": 2, "annotations": annotations},
        "spec": spec,
        "status": {"observedGeneration": 2, **status},
    }


def test_an_unset_count_is_one() -> None:
    assert replicas_of(deployment(None)) == 1
    assert replicas_of(deployment(0)) == 0


def test_scaled_when_every_replica_is_ready() -> None:
    assert scale_progress(deployment(3, replicas=3, readyReplicas=3), 3).done
    assert not scale_progress(deployment(3, replicas=3, readyReplicas=2), 3).done
    assert not scale_progress(deployment(1, replicas=2, readyReplicas=1), 1).done, "one still terminating"
    assert scale_progress(deployment(0), 0).done, "zero replicas: no status counts at all"
    stale = deployment(3, replicas=3, readyReplicas=3)
    stale["status"]["observedGeneration"] = 1
    assert not scale_progress(stale, 3).done


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.booleans())
def test_undo_restores_only_this_actions_count(original: int, scaled_to: int, current: int, ours: bool) -> None:
    scaled = deployment(current, key=KEY if ours else None)
    decision = undo_decision(replicas_of(scaled), original, scaled_to, carries_key(scaled, KEY))
    if current == original:
        assert decision == "done"
    elif current == scaled_to and ours:
        assert decision == "restore"
    else:
        assert decision == "leave", "someone else's count is left as it is"
