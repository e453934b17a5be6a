"""What the workload actions share: the GitOps guard, annotation patches, pod readiness, one plan of many."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops.actions.base import Progress, Skip
from incidentops.actions.common import (
    Change,
    Found,
    Ref,
    annotate_ops,
    combined,
    gitops_manager,
    is_ready_pod,
    plan_of,
    unannotate_ops,
)
from incidentops.api import reasons
from incidentops.api.incident import PlannedChange

from .jsonpatch import apply


def obj(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"kind": "Deployment", "metadata": meta, "spec": {}}


@pytest.mark.parametrize(
    ("labels", "annotations", "manager"),
    [
        pytest.param(
            {}, {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/web"}, "Argo CD", id="argo-annotation"
        ),
        pytest.param({"argocd.argoproj.io/instance": "shop"}, {}, "Argo CD", id="argo-custom-label"),
        pytest.param({"app.kubernetes.io/instance": "shop"}, {}, "Argo CD's label tracking", id="argo-legacy-label"),
        pytest.param({"kustomize.toolkit.fluxcd.io/name": "apps"}, {}, "Flux (Kustomization)", id="flux-kustomize"),
        pytest.param({"helm.toolkit.fluxcd.io/name": "web"}, {}, "Flux (HelmRelease)", id="flux-helm"),
    ],
)
def test_gitops_tools_are_recognised_by_their_marks(labels: dict, annotations: dict, manager: str) -> None:
    found = gitops_manager(obj(labels, annotations))
    assert found is not None and found.startswith(manager), found


def test_a_helm_release_and_a_plain_object_are_not_gitops() -> None:
    helm = obj({"app.kubernetes.io/instance": "web"}, {"meta.helm.sh/release-name": "web"})
    assert gitops_manager(helm) is None, "Helm sets the instance label too, and its own release annotation"
    assert gitops_manager(obj({"app": "web"})) is None
    assert gitops_manager(obj()) is None


def test_an_object_flux_is_told_to_leave_alone_is_not_managed() -> None:
    left = obj({"kustomize.toolkit.fluxcd.io/name": "apps"}, {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"})
    assert gitops_manager(left) is None


annotation_maps = st.dictionaries(
    st.sampled_from(["team", "a/b", "x~y", "incidentops.dev/note", "kubernetes.io/change-cause"]),
    st.text(max_size=8),
    max_size=4,
)
ours = st.dictionaries(
    st.sampled_from(["incidentops.dev/action-key", "incidentops.dev/incident"]),
    st.text(min_size=1, max_size=8),
    min_size=1,
)


@given(annotation_maps, ours)
def test_annotating_then_unannotating_gives_the_object_back(existing: dict[str, str], added: dict[str, str]) -> None:
    existing = {key: value for key, value in existing.items() if key not in added}
    before = obj(annotations=existing or None)
    after = apply(before, annotate_ops(before, added))
    assert after["metadata"]["annotations"] == {**existing, **added}
    assert apply(after, unannotate_ops(after, added)) == before


def test_unannotating_what_is_not_there_changes_nothing() -> None:
    assert unannotate_ops(obj(annotations={"team": "a"}), ["incidentops.dev/action-key"]) == []
    assert unannotate_ops(obj(), ["incidentops.dev/action-key"]) == []


def pod(phase: str = "Running", ready: str = "True", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


def test_a_ready_pod_is_running_ready_and_not_being_deleted() -> None:
    assert is_ready_pod(pod())
    assert not is_ready_pod(pod(ready="False"))
    assert not is_ready_pod(pod(phase="Pending"))
    assert not is_ready_pod(pod(deleting=True))
    assert not is_ready_pod({"metadata": {}, "status": {}})


def change(name: str, operations: list | None = None) -> Change:
    ref = Ref("Deployment", "shop", name)
    return Change(
        ref,
        obj(),
        operations,
        f"change {ref}",
        {"namespace": "shop", "name": name},
        PlannedChange(object=str(ref), field="spec.replicas"),
        (f"{name} warning",),
    )


def test_one_plan_holds_the_changes_and_names_what_was_skipped() -> None:
    found = Found([obj()], [Ref("Deployment", "shop", "absent")])
    outcomes = [change("a", [{"op": "add", "path": "/x", "value": 1}]), Skip(reasons.DEPLOYMENT_PAUSED, "b is paused")]
    planned = plan_of(
        found, outcomes, undo_key="deployments", done_reason=reasons.ALREADY_DONE, verify_within=datetime.timedelta(1)
    )
    assert not isinstance(planned, Skip)
    assert planned.target == "Deployment shop/a"
    assert planned.undo == {"deployments": '[{"namespace":"shop","name":"a"}]'}
    assert planned.warnings == ("Deployment shop/absent not found", "a warning", "skipped: b is paused")


def test_a_plan_with_nothing_to_write_is_a_skip_with_every_reason() -> None:
    found = Found([obj(), obj()], [])
    outcomes = [change("a"), Skip(reasons.GITOPS_MANAGED, "b is Argo's")]
    skipped = plan_of(
        found, outcomes, undo_key="d", done_reason=reasons.ALREADY_DONE, verify_within=datetime.timedelta(1)
    )
    assert skipped == Skip(reasons.ALREADY_DONE, "change Deployment shop/a; b is Argo's")


def test_several_looks_fail_if_one_fails_and_are_done_when_all_are() -> None:
    done, waiting = Progress.ok("a ok"), Progress.waiting("b waits")
    failed = Progress.failure(reasons.TARGET_CHANGED, "c changed")
    assert combined([done, done], reasons.ROLLBACK_FAILED) == Progress.ok("a ok; a ok")
    assert combined([done, waiting], reasons.ROLLBACK_FAILED) == Progress.waiting("a ok; b waits")
    assert combined([done, waiting, failed], reasons.ROLLBACK_FAILED) == failed
    assert combined([Progress(failed=True, message="x")], reasons.ROLLBACK_FAILED).reason == reasons.ROLLBACK_FAILED
    assert not combined([], reasons.ROLLBACK_FAILED).done, "nothing recorded is never done"


def test_more_changes_than_a_record_holds_are_refused() -> None:
    outcomes = [change(f"d{i}", [{"op": "add", "path": "/x", "value": i}]) for i in range(17)]
    refused = plan_of(
        Found([], []), outcomes, undo_key="d", done_reason=reasons.ALREADY_DONE, verify_within=datetime.timedelta(1)
    )
    assert isinstance(refused, Skip) and refused.reason == reasons.TOO_MANY_TARGETS
