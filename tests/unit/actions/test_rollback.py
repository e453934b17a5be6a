"""Rollback's decisions on JSON: which revision, whether templates match, the annotations, the window."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from incidentops.actions.rollback import (
    KEPT_FROM_DEPLOYMENT,
    choose_revision,
    config_references,
    controlled_by,
    current_replica_set,
    last_changed,
    rollback_annotations,
    rollout_progress,
    same_template,
    when_changed,
    without_hash,
)
from incidentops.api import reasons


def template(image: str = "web:1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(labels or {"app": "web"})},
        "spec": {"containers": [{"name": "web", "image": image, "resources": {}}]},
    }


def replica_set(
    revision: int | None, image: str = "web:1", uid: str = "d-1", created: str = "2025-01-01T10:00:00Z"
) -> dict:
    labels = {"app": "web", "pod-template-hash": f"h{revision}"}
    meta: dict[str, Any] = {
        "name": f"web-h{revision}",
        "creationTimestamp": created,
        "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": uid, "controller": True}],
        "annotations": {"deployment.kubernetes.io/revision": str(revision)} if revision is not None else {},
    }
    return {"metadata": meta, "spec": {"template": template(image, labels)}}


def deployment(image: str = "web:3", revision: int = 3) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "d-1",
            "generation": 4,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {"replicas": 2, "template": template(image)},
        "status": {},
    }


def revision_of(rs: Any) -> str:
    return rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]


def test_the_previous_revision_is_the_highest_below_the_current_one() -> None:
    sets = [replica_set(1), replica_set(3), replica_set(2), replica_set(None)]
    assert revision_of(choose_revision(sets, 3, None)) == "2"
    assert revision_of(choose_revision(sets, 2, None)) == "1"
    assert choose_revision(sets, 1, None) is None, "revision 1 has nothing before it"
    assert revision_of(choose_revision(sets, None, None)) == "2", "no current revision: below the highest"


def test_to_revision_names_the_one_or_none() -> None:
    sets = [replica_set(1), replica_set(3), replica_set(5)]
    assert revision_of(choose_revision(sets, 5, 1)) == "1"
    assert choose_revision(sets, 5, 2) is None, "revision 2 is gone (revisionHistoryLimit)"
    assert choose_revision([], 1, None) is None


def test_only_replica_sets_the_deployment_controls_count() -> None:
    ours, other = replica_set(1), replica_set(1, uid="someone-else")
    assert controlled_by(ours, deployment())
    assert not controlled_by(other, deployment())
    orphan = copy.deepcopy(ours)
    orphan["metadata"]["ownerReferences"][0]["controller"] = False
    assert not controlled_by(orphan, deployment())


def test_the_hash_label_goes_and_nothing_else() -> None:
    stripped = without_hash(replica_set(2)["spec"]["template"])
    assert stripped == template()
    assert replica_set(2)["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "h2", "a copy"


label_values = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=8)
images = st.sampled_from(["web:1", "web:2", "registry/web@sha256:0a1b"])


@given(label_values, images, st.dictionaries(st.sampled_from(["app", "tier", "track"]), label_values, min_size=1))
def test_templates_equal_but_for_the_hash_are_the_same(hash_value: str, image: str, labels: dict[str, str]) -> None:
    plain = template(image, labels)
    hashed = template(image, {**labels, "pod-template-hash": hash_value})
    assert same_template(plain, hashed)
    assert same_template(hashed, template(image, {**labels, "pod-template-hash": hash_value + "x"}))


@given(
    st.dictionaries(st.sampled_from(["app", "tier", "track"]), label_values, min_size=1),
    st.sampled_from(["app", "tier", "track", "version"]),
    label_values,
)
def test_any_other_label_change_makes_templates_differ(labels: dict[str, str], key: str, value: str) -> None:
    changed = {**labels, key: value}
    if changed == labels:
        changed[key] = value + "-changed"
    assert not same_template(template(labels=labels), template(labels=changed))


def test_an_image_change_makes_templates_differ_and_empty_maps_do_not() -> None:
    assert not same_template(template("web:1"), template("web:2"))
    bare = template()
    del bare["spec"]["containers"][0]["resources"]
    assert same_template(bare, template()), "an empty map is no map, as the API machinery compares"


def test_the_current_replica_set_is_the_one_of_the_current_template() -> None:
    sets = [replica_set(1, "web:1"), replica_set(2, "web:2")]
    assert current_replica_set(deployment("web:2"), sets) is sets[1]
    assert current_replica_set(deployment("web:9"), sets) is None


def test_annotations_are_rebuilt_as_kubectl_rebuilds_them() -> None:
    own = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "deployment.kubernetes.io/revision": "3",
        "deployment.kubernetes.io/revision-history": "1",
        "team": "checkout-now",
        "added-later": "lost, as with kubectl",
    }
    from_rs = {
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "2",
        "kubernetes.io/change-cause": "release 1",
        "team": "checkout",
    }
    result = rollback_annotations(own, from_rs, {"kubernetes.io/change-cause": "incidentops: ..."})
    assert result == {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "deployment.kubernetes.io/revision": "3",
        "deployment.kubernetes.io/revision-history": "1",
        "team": "checkout",
        "kubernetes.io/change-cause": "incidentops: ...",
    }
    assert "deployment.kubernetes.io/desired-replicas" in KEPT_FROM_DEPLOYMENT, "not taken from the ReplicaSet"


T0 = datetime.datetime(2025, 1, 1, 10, 0, tzinfo=datetime.UTC)


def test_the_change_window_is_before_the_start() -> None:
    within = datetime.timedelta(minutes=30)
    assert when_changed(T0 - datetime.timedelta(minutes=10), T0, within) is None
    assert when_changed(T0 - within, T0, within) is None
    assert when_changed(T0 - within - datetime.timedelta(seconds=1), T0, within) == reasons.NOT_CHANGED_RECENTLY
    assert when_changed(T0 + datetime.timedelta(seconds=1), T0, within) == reasons.CHANGED_AFTER_START


def test_config_references_of_every_kind_are_found() -> None:
    spec = {
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
        "containers": [
            {
                "name": "web",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "token", "key": "b"}}},
                    {"name": "C", "value": "plain"},
                ],
                "envFrom": [{"secretRef": {"name": "creds"}}],
            }
        ],
        "volumes": [
            {"name": "v1", "configMap": {"name": "files"}},
            {"name": "v2", "secret": {"secretName": "tls"}},
            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "bundle"}}, {"secret": {"name": "ca"}}]}},
            {"name": "v4", "emptyDir": {}},
        ],
    }
    refs = config_references({"spec": spec})
    assert refs.config_maps == ("bundle", "files", "init-env", "settings")
    assert refs.secrets == ("ca", "creds", "tls", "token")


def test_an_object_last_changed_at_its_latest_managed_fields_time() -> None:
    metadata = {
        "creationTimestamp": "2025-01-01T09:00:00Z",
        "managedFields": [{"time": "2025-01-01T09:30:00Z"}, {"time": "2025-01-01T09:10:00Z"}, {}],
    }
    assert last_changed(metadata) == datetime.datetime(2025, 1, 1, 9, 30, tzinfo=datetime.UTC)
    assert last_changed({"creationTimestamp": "2025-01-01T09:00:00Z"}) == datetime.datetime(
        2025, 1, 1, 9, tzinfo=datetime.UTC
    )
    assert last_changed({}) is None


def status(**fields: Any) -> dict[str, Any]:
    out = deployment()
    out["status"] = {"observedGeneration": 4, **fields}
    return out


def test_a_rollout_is_done_when_the_new_replica_set_is_available() -> None:
    available = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    done = status(replicas=2, updatedReplicas=2, availableReplicas=2, conditions=[available])
    assert rollout_progress(done).done
    progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
    assert not rollout_progress(
        status(replicas=3, updatedReplicas=2, availableReplicas=2, conditions=[progressing])
    ).done
    behind = status(replicas=2, updatedReplicas=2, availableReplicas=2, conditions=[available])
    behind["status"]["observedGeneration"] = 3
    look = rollout_progress(behind)
    assert not look.done and not look.failed and "not seen" in look.message


def test_a_rollout_past_its_deadline_fails_in_the_deployments_words() -> None:
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "web-h1" has timed out progressing.',
    }
    look = rollout_progress(status(replicas=2, updatedReplicas=1, availableReplicas=1, conditions=[stuck]))
    assert look.failed and look.reason == reasons.ROLLBACK_FAILED
    assert look.message == 'Deployment shop/web: ReplicaSet "web-h1" has timed out progressing.'
