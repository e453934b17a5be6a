"""Kubeconfig and context handling, and the messages for the cluster's refusals (no cluster needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_asyncio.client.exceptions import ApiException

from incidentops import kube
from incidentops.plugin import connection
from incidentops.plugin.connection import PluginError, Request, explain


def api_error(status: int, reason: str, message: str, details: dict | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": status}
    if details is not None:
        body["details"] = details
    exc.body = json.dumps(body)
    return exc


def test_not_found_names_the_incident_and_namespace() -> None:
    exc = api_error(404, "Not Found", 'incidents.incidentops.dev "x" not found', {"name": "x", "kind": "incidents"})
    assert explain(exc, Request("get", namespace="ops", name="x")) == 'incident "x" not found in namespace "ops"'


def test_not_found_without_details_means_the_crd_is_missing() -> None:
    exc = api_error(404, "Not Found", "the server could not find the requested resource")
    assert "are the incidentops CRDs installed?" in explain(exc, Request("get", namespace="ops", name="x"))
    assert "are the incidentops CRDs installed?" in explain(exc, Request("list", namespace="ops"))


def test_forbidden_names_the_verb_and_the_resource() -> None:
    server = (
        'incidents.incidentops.dev "x" is forbidden: User "system:serviceaccount:ops:bot" cannot patch '
        'resource "incidents" in API group "incidentops.dev" in the namespace "ops"'
    )
    message = explain(api_error(403, "Forbidden", server), Request("patch", namespace="ops", name="x"))
    assert message.startswith(
        'forbidden: you are not allowed to patch incidents.incidentops.dev "x" in namespace "ops" (server: '
    )
    assert server in message
    listing = explain(api_error(403, "Forbidden", "no"), Request("list"))
    assert "not allowed to list incidents.incidentops.dev in any namespace" in listing


def test_invalid_shows_the_servers_message() -> None:
    server = 'Incident.incidentops.dev "x" is invalid: spec: Invalid value: "object": acknowledgement cannot be removed'
    message = explain(api_error(422, "Unprocessable Entity", server), Request("patch", namespace="ops", name="x"))
    assert message == f"the API server refused the change: {server}"


def test_other_answers() -> None:
    assert "unauthorized" in explain(api_error(401, "Unauthorized", "Unauthorized"), Request("get"))
    plain = ApiException(status=500, reason="Internal Server Error")
    assert "500 Internal Server Error" in explain(plain, Request("get"))


def test_unreachable() -> None:
    assert connection.unreachable(None, TimeoutError()) == "cannot reach the cluster: timed out"
    api = SimpleNamespace(request_timeout=2)
    conn = kube.Connection(api=api, namespace="ops", server="https://k:6443", context="prod")  # type: ignore[arg-type]
    assert connection.unreachable(conn, TimeoutError()) == (
        'cannot reach the cluster at https://k:6443 (context "prod"): timed out after 2s (--request-timeout)'
    )


# --- kubeconfig ------------------------------------------------------------------------------------


def write_kubeconfig(path: Path, contexts: dict[str, str | None], current: str | None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
            for name, ns in contexts.items()
        ],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_paths(tmp_path: Path) -> None:
    assert kube.kubeconfig_paths("/a", {"KUBECONFIG": "/b"}) == ["/a"]
    assert kube.kubeconfig_paths(None, {"KUBECONFIG": f"/b{os.pathsep}/c{os.pathsep}"}) == ["/b", "/c"]
    assert kube.kubeconfig_paths(None, {}) == [os.path.expanduser("~/.kube/config")]


async def test_the_current_contexts_namespace_is_the_default(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k", {"one": "payments", "two": None}, "one")
    conn = await connection.connect(str(path), None, 5)
    try:
        assert (conn.namespace, conn.context, conn.server) == ("payments", "one", "https://127.0.0.1:6443")
        assert conn.api.request_timeout == 5  # --request-timeout is the deadline of every request
    finally:
        await conn.close()
    conn = await connection.connect(str(path), "two", None)
    try:
        assert (conn.namespace, conn.context) == ("default", "two")
        assert conn.api.request_timeout is None
    finally:
        await conn.close()


async def test_kubeconfig_from_the_environment_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_kubeconfig(tmp_path / "a", {"one": "alpha"}, "one")
    second = write_kubeconfig(tmp_path / "b", {"two": "beta"}, None)
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}{os.pathsep}{first}{os.pathsep}{second}")
    conn = await connection.connect(None, "two", None)
    try:
        assert conn.namespace == "beta"
    finally:
        await conn.close()


async def test_an_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k", {"one": None, "two": None}, "one")
    with pytest.raises(PluginError, match=r'context "bogus" not found in kubeconfig .* \(contexts: one, two\)'):
        await connection.connect(str(path), "bogus", None)


async def test_no_current_context(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "k", {"one": None}, None)
    with pytest.raises(PluginError, match="sets no current context; pass --context"):
        await connection.connect(str(path), None, None)


async def test_a_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PluginError, match=r'kubeconfig ".*nope" not found'):
        await connection.connect(str(tmp_path / "nope"), None, None)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PluginError, match="no kubeconfig found"):
        await connection.connect(None, None, None)


async def test_a_file_that_is_not_a_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("just a string\n")
    with pytest.raises(PluginError):
        await connection.connect(str(path), None, None)
