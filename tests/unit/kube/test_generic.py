"""The pure parts of generic object access: selectors as text, JSON pointers, what a failed write means."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentops import kube
from incidentops.api.common import LabelSelector
from tests.unit.kubefake import api_error


def test_a_label_selector_is_written_as_the_api_server_reads_it() -> None:
    selector = {
        "matchLabels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "track", "operator": "NotIn", "values": ["canary"]},
            {"key": "owner", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert kube.label_selector(selector) == (
        "app=web,app.kubernetes.io/part-of=shop,tier in (front,edge),track notin (canary),owner,!legacy"
    )
    assert kube.label_selector({}) == "", "an empty selector selects everything: callers check for it"
    with pytest.raises(ValueError, match="Gt"):
        kube.label_selector({"matchExpressions": [{"key": "x", "operator": "Gt", "values": ["1"]}]})


def test_a_pydantic_selector_dumps_to_the_json_label_selector_takes() -> None:
    model = LabelSelector.model_validate({"matchLabels": {"app": "web"}})
    assert kube.label_selector(model.model_dump(by_alias=True, exclude_none=True)) == "app=web"


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_json_pointers_escape_tilde_and_slash(segments: list[str]) -> None:
    pointer = kube.json_pointer(*segments)
    decoded = [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]
    assert decoded == segments


def test_json_pointer_of_a_label_key() -> None:
    assert kube.json_pointer("metadata", "labels", "incidentops.dev/quarantine") == (
        "/metadata/labels/incidentops.dev~1quarantine"
    )


def test_a_patch_that_does_not_apply_or_a_409_may_be_a_failed_precondition() -> None:
    # A failed `test` is worded as any patch that does not apply: a 422 that names no object or field.
    not_applied = api_error(422, message="the server rejected our request due to an error in our request")
    assert kube.precondition_failed(not_applied)
    assert kube.precondition_failed(api_error(409, message="the object has been modified"))


def test_an_invalid_object_is_not_a_failed_precondition() -> None:
    invalid = api_error(422, message='Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1')
    invalid.body = json.dumps(
        {
            "kind": "Status",
            "code": 422,
            "message": invalid.body,
            "details": {"name": "web", "kind": "Deployment", "causes": [{"field": "spec.replicas"}]},
        }
    )
    assert not kube.precondition_failed(invalid)
    assert not kube.precondition_failed(api_error(403, message="forbidden"))
    assert not kube.precondition_failed(ValueError("not an API error"))
