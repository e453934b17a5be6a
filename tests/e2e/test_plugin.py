"""``kubectl incident`` against the real control plane: identities from SelfSubjectReview, RBAC refusals,
admission refusals, optimistic concurrency, the episode rule, kubectl's flags and plugin discovery.

No operator runs here: the plugin only writes ``spec``; the status fields the
episode rule reads are written through the status subresource by the test, as
the operator would.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from incidentops.plugin import app, main
from incidentops.testing import controlplane
from tests.e2e.conftest import eventually, get_json

CONSOLE_SCRIPT = Path(sys.executable).parent / "kubectl-incident"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(cluster: controlplane.ControlPlane, crds: None, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the plugin in this process as the admin (or ``kubeconfig=``); returns (exit code, stdout, stderr)."""

    def invoke(*argv: str, kubeconfig: Path | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--kubeconfig", str(kubeconfig or cluster.kubeconfig), *argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return invoke


def run_script(cluster: controlplane.ControlPlane, *argv: str, kubeconfig: Path | None = None) -> Any:
    """Run the installed console script, as kubectl would."""
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), *argv, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def create_incident(cluster: controlplane.ControlPlane, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "incidentops.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"title": f"{name} is broken", "severity": "P2", "source": {"kind": "manual"}, **spec},
    }
    cluster.apply(body)
    return get_incident(cluster, namespace, name)


def get_incident(cluster: controlplane.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = get_json(cluster, "incident", name, "-n", namespace)
    return result


def set_status(cluster: controlplane.ControlPlane, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Write status as the operator would (status subresource)."""
    cluster.kubectl(
        "patch",
        "incident",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def whole_seconds_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def whoami(cluster: controlplane.ControlPlane, kubeconfig: Path | None = None) -> str:
    """The username the API server reports (kubectl uses SelfSubjectReview too)."""
    review = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout)
    username: str = review["status"]["userInfo"]["username"]
    return username


def service_account(
    cluster: controlplane.ControlPlane, namespace: str, name: str, verbs: list[str]
) -> tuple[Path, str]:
    """A ServiceAccount allowed ``verbs`` on incidents of ``namespace``; its kubeconfig and username."""
    user = f"system:serviceaccount:{namespace}:{name}"
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace},
                "rules": [{"apiGroups": ["incidentops.dev"], "resources": ["incidents"], "verbs": verbs}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        ]
    )

    def can(verb: str) -> bool:
        answer = cluster.kubectl(
            "auth", "can-i", verb, "incidents.incidentops.dev", "-n", namespace, f"--as={user}", check=False
        )
        return answer.stdout.strip() == "yes"

    eventually(f"{user} may {verbs} incidents", lambda: all(can(v) for v in verbs))
    return cluster.service_account_kubeconfig(namespace, name), user


# --- declare, list, describe ---------------------------------------------------------------------


def test_declare_then_list_shows_it(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    code, out, _ = run(
        "declare",
        "-n",
        namespace,
        "--title",
        "Checkout returns 502 for every payment",
        "--severity",
        "P1",
        "--type",
        "availability",
        "--description",
        "since the 14:05 deploy",
        "--drill",
        "-o",
        "name",
    )
    assert code == 0
    name = out.strip().rsplit("/", 1)[1]
    assert name.startswith("checkout-returns-502-for-every-payment-") and len(name) <= 63

    spec = get_incident(cluster, namespace, name)["spec"]
    assert spec == {
        "title": "Checkout returns 502 for every payment",
        "severity": "P1",
        "type": "availability",
        "description": "since the 14:05 deploy",
        "drill": True,
        "source": {"kind": "manual"},
    }

    code, out, _ = run("list", "-n", namespace)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "SEVERITY", "PHASE", "LEVEL", "ACKED-BY", "AGE", "TITLE"]
    assert row.split()[:5] == [name, "P1", "-", "-", "-"]
    assert row.endswith("Checkout returns 502 for every payment")

    code, out, _ = run("list", "-n", namespace, "-o", "json")
    assert code == 0
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == [name]

    code, out, _ = run("describe", name, "-n", namespace)
    assert code == 0
    assert name in out and "[DRILL]" in out and "since the 14:05 deploy" in out


def test_declare_with_a_name_and_a_policy(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    args = ("declare", "-n", namespace, "--title", "DB down", "--severity", "p3", "--name", "db-down")
    code, out, _ = run(*args, "--policy", "payments")
    assert code == 0
    assert out.strip() == f'incident "db-down" declared in namespace "{namespace}" (P3)'
    assert get_incident(cluster, namespace, "db-down")["spec"]["escalationPolicyRef"] == {"name": "payments"}

    code, _, err = run(*args)
    assert code == 1
    assert err.strip() == f'Error: incident "db-down" already exists in namespace "{namespace}"'


def test_describe_shows_status_the_operator_wrote(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    create_incident(cluster, namespace, "api-slow")
    started = whole_seconds_now() - datetime.timedelta(minutes=20)
    set_status(
        cluster,
        namespace,
        "api-slow",
        {
            "phase": "Triggered",
            "severity": "P2",
            "episode": 1,
            "episodeStartedAt": rfc3339(started),
            "sla": {
                "acknowledgeBy": rfc3339(started + datetime.timedelta(minutes=15)),
                "resolveBy": rfc3339(started + datetime.timedelta(hours=24)),
            },
            "escalation": {"round": 0, "level": 0, "levelName": "on-call"},
            "timeline": [{"at": rfc3339(started), "kind": "Triggered", "message": "opened", "actor": "alice"}],
        },
    )
    code, out, _ = run("describe", "api-slow", "-n", namespace)
    assert code == 0
    assert "OVERDUE by 5m" in out  # the acknowledgement deadline
    assert "left)" in out  # the resolution deadline
    assert "on-call (#0)" in out
    assert "opened" in out

    code, out, _ = run("describe", "api-slow", "-n", namespace, "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out)["status"]["escalation"]["levelName"] == "on-call"


# --- ack, contain, update, resolve -------------------------------------------------------------------


def test_ack_by_the_admin_through_the_console_script(
    cluster: controlplane.ControlPlane, crds: None, namespace: str
) -> None:
    create_incident(cluster, namespace, "checkout-down")
    before = whole_seconds_now()
    result = run_script(cluster, "ack", "checkout-down", "-n", namespace, "--note", "looking at the deploy")
    after = whole_seconds_now()
    assert result.returncode == 0, result.stderr

    user = whoami(cluster)
    if not getattr(cluster, "existing", False):
        assert user == "incidentops-admin"
    obj = get_incident(cluster, namespace, "checkout-down")
    ack = obj["spec"]["acknowledgement"]
    assert ack["by"] == user
    assert ack["note"] == "looking at the deploy"
    assert before <= parse(ack["at"]) <= after
    assert f'incident "checkout-down" acknowledged by {user} at {ack["at"]}' in result.stdout

    # Acknowledged in this episode already: nothing is written, and the output says who did it.
    again = run_script(cluster, "ack", "checkout-down", "-n", namespace)
    assert again.returncode == 0, again.stderr
    assert f"already acknowledged by {user} at {ack['at']}" in again.stdout
    unchanged = get_incident(cluster, namespace, "checkout-down")
    assert unchanged["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_ack_after_a_reopen_writes_a_new_at(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    old = rfc3339(whole_seconds_now() - datetime.timedelta(hours=2))
    create_incident(cluster, namespace, "flaky", acknowledgement={"by": "bob", "at": old, "note": "episode 1"})
    # The operator reopened it: a second episode started after the acknowledgement.
    reopened = whole_seconds_now() - datetime.timedelta(minutes=1)
    set_status(cluster, namespace, "flaky", {"episode": 2, "episodeStartedAt": rfc3339(reopened), "reopenCount": 1})

    code, out, _ = run("ack", "flaky", "-n", namespace)
    assert code == 0, out
    ack = get_incident(cluster, namespace, "flaky")["spec"]["acknowledgement"]
    assert ack["by"] == whoami(cluster)
    assert parse(ack["at"]) >= reopened
    assert "note" not in ack  # the earlier episode's note did not survive the merge patch

    code, out, _ = run("ack", "flaky", "-n", namespace)
    assert code == 0 and "already acknowledged" in out


def test_contain_update_resolve(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    create_incident(cluster, namespace, "payments-down")
    user = whoami(cluster)

    code, out, _ = run("contain", "payments-down", "-n", namespace, "--note", "maintenance page on")
    assert code == 0, out
    code, out, _ = run("update", "payments-down", "-n", namespace, "--message", "Rolled back; watching errors")
    assert code == 0, out
    assert out.startswith('status update posted to incident "payments-down"')
    code, out, _ = run(
        "resolve", "payments-down", "-n", namespace, "--summary", "Rolled back the deploy", "--root-cause", "bad flag"
    )
    assert code == 0, out

    spec = get_incident(cluster, namespace, "payments-down")["spec"]
    assert spec["containment"]["by"] == user and spec["containment"]["note"] == "maintenance page on"
    assert spec["statusUpdate"]["message"] == "Rolled back; watching errors"
    assert spec["statusUpdate"]["by"] == user and parse(spec["statusUpdate"]["at"])
    assert spec["resolution"]["by"] == user
    assert spec["resolution"]["summary"] == "Rolled back the deploy"
    assert spec["resolution"]["rootCause"] == "bad flag"

    # A second update is a new update: a newer `at`, even within the same second.
    first_at = spec["statusUpdate"]["at"]
    code, _, _ = run("update", "payments-down", "-n", namespace, "-m", "All clear")
    assert code == 0
    update = get_incident(cluster, namespace, "payments-down")["spec"]["statusUpdate"]
    assert update["message"] == "All clear" and parse(update["at"]) > parse(first_at)

    rv = get_incident(cluster, namespace, "payments-down")["metadata"]["resourceVersion"]
    code, out, _ = run("resolve", "payments-down", "-n", namespace, "--summary", "again")
    assert code == 0 and "already resolved" in out
    assert get_incident(cluster, namespace, "payments-down")["metadata"]["resourceVersion"] == rv


# --- optimistic concurrency -------------------------------------------------------------------------


def interfere_after_first_read(monkeypatch: pytest.MonkeyPatch, write: Callable[[], None]) -> list[dict[str, Any]]:
    """Make ``write`` happen between the plugin's first read and its patch; returns the patches sent."""
    original_get, original_patch = app.Session.get, app.Session.patch
    reads: list[str] = []
    patches: list[dict[str, Any]] = []

    async def get(self: app.Session, name: str) -> dict[str, Any]:
        body = await original_get(self, name)
        reads.append(name)
        if len(reads) == 1:
            await asyncio.to_thread(write)
        return body

    async def patch(self: app.Session, name: str, body: dict[str, Any]) -> dict[str, Any]:
        patches.append(body)
        return await original_patch(self, name, body)

    monkeypatch.setattr(app.Session, "get", get)
    monkeypatch.setattr(app.Session, "patch", patch)
    return patches


def test_a_concurrent_edit_is_not_overwritten(
    cluster: controlplane.ControlPlane, namespace: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_incident(cluster, namespace, "busy")

    def edit() -> None:
        cluster.kubectl("patch", "incident", "busy", "-n", namespace, "--type=merge", "-p",
                        '{"spec": {"description": "edited meanwhile"}}')  # fmt: skip

    patches = interfere_after_first_read(monkeypatch, edit)
    code, _, err = run("contain", "busy", "-n", namespace)
    assert code == 0, err
    # The first patch carried the resourceVersion read before the edit: the API server refused it (409);
    # the plugin read again and patched on top of the edit.
    assert len(patches) == 2
    assert patches[0]["metadata"]["resourceVersion"] != patches[1]["metadata"]["resourceVersion"]
    spec = get_incident(cluster, namespace, "busy")["spec"]
    assert spec["description"] == "edited meanwhile"
    assert spec["containment"]["by"] == whoami(cluster)


def test_two_people_acknowledging_at_once_leave_one_acknowledgement(
    cluster: controlplane.ControlPlane, namespace: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_incident(cluster, namespace, "race")
    bob = {"by": "bob", "at": rfc3339(whole_seconds_now())}

    def bob_acks() -> None:
        cluster.kubectl("patch", "incident", "race", "-n", namespace, "--type=merge", "-p",
                        json.dumps({"spec": {"acknowledgement": bob}}))  # fmt: skip

    patches = interfere_after_first_read(monkeypatch, bob_acks)
    code, out, err = run("ack", "race", "-n", namespace)
    assert code == 0, err
    assert len(patches) == 1  # refused with 409; the re-read found bob's acknowledgement
    assert f"already acknowledged by bob at {bob['at']}" in out
    assert get_incident(cluster, namespace, "race")["spec"]["acknowledgement"] == bob


# --- identities and refusals ---------------------------------------------------------------------------


def test_a_service_account_acknowledges_as_itself(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    create_incident(cluster, namespace, "queue-stuck")
    kubeconfig, user = service_account(cluster, namespace, "responder", ["get", "patch"])
    assert user == f"system:serviceaccount:{namespace}:responder"

    code, out, err = run("ack", "queue-stuck", "-n", namespace, kubeconfig=kubeconfig)
    assert code == 0, err
    assert get_incident(cluster, namespace, "queue-stuck")["spec"]["acknowledgement"]["by"] == user
    assert f"acknowledged by {user}" in out


def test_a_service_account_without_patch_rights_is_told_so(
    cluster: controlplane.ControlPlane, namespace: str, run: Run
) -> None:
    before = create_incident(cluster, namespace, "queue-stuck")
    kubeconfig, _ = service_account(cluster, namespace, "watcher", ["get", "list"])

    code, out, err = run("ack", "queue-stuck", "-n", namespace, kubeconfig=kubeconfig)
    assert code == 1
    assert out == ""
    assert err.startswith(
        f'Error: forbidden: you are not allowed to patch incidents.incidentops.dev "queue-stuck" '
        f'in namespace "{namespace}" (server: '
    ), err
    after = get_incident(cluster, namespace, "queue-stuck")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # Reading is allowed: list works for this identity; another namespace's incidents are not.
    code, out, _ = run("list", "-n", namespace, kubeconfig=kubeconfig)
    assert code == 0 and "queue-stuck" in out
    code, _, err = run("list", "-A", kubeconfig=kubeconfig)
    assert code == 1 and "forbidden: you are not allowed to list incidents.incidentops.dev in any namespace" in err


def test_a_missing_incident(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    for argv in (["ack", "nope"], ["describe", "nope"], ["resolve", "nope", "--summary", "s"]):
        code, out, err = run(*argv, "-n", namespace)
        assert code == 1
        assert out == ""
        assert err.strip() == f'Error: incident "nope" not found in namespace "{namespace}"'
    result = run_script(cluster, "update", "nope", "-n", namespace, "-m", "x")
    assert result.returncode == 1
    assert result.stderr.strip() == f'Error: incident "nope" not found in namespace "{namespace}"'


def test_the_api_servers_refusal_is_shown(cluster: controlplane.ControlPlane, namespace: str, run: Run) -> None:
    """An admission policy of this namespace insists on a root cause: the server's message reaches the user."""
    create_incident(cluster, namespace, "needs-rca")
    policy = f"require-root-cause-{namespace}"
    message = "a resolution in this namespace needs a root cause"
    cluster.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [
                            {
                                "apiGroups": ["incidentops.dev"],
                                "apiVersions": ["*"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["incidents"],
                            }
                        ]
                    },
                    "validations": [
                        {
                            "expression": "!has(object.spec.resolution) || has(object.spec.resolution.rootCause)",
                            "message": message,
                        }
                    ],
                },
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                    },
                },
            },
        ]
    )
    try:
        probe = {"spec": {"resolution": {"by": "probe", "at": rfc3339(whole_seconds_now()), "summary": "s"}}}

        def enforced() -> bool:
            result = cluster.kubectl(
                "patch", "incident", "needs-rca", "-n", namespace, "--type=merge", "--dry-run=server",
                "-p", json.dumps(probe), check=False,
            )  # fmt: skip
            return result.returncode != 0 and message in result.stderr

        eventually("the admission policy to be enforced", enforced, timeout=60)

        code, out, err = run("resolve", "needs-rca", "-n", namespace, "--summary", "restarted it")
        assert code == 1
        assert out == ""
        assert err.startswith("Error: the API server refused the change: "), err
        assert message in err
        assert "resolution" not in get_incident(cluster, namespace, "needs-rca")["spec"]

        code, _, err = run("resolve", "needs-rca", "-n", namespace, "--summary", "restarted it", "--root-cause", "OOM")
        assert code == 0, err
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding", policy, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "validatingadmissionpolicy", policy, "--ignore-not-found", check=False)


# --- kubectl's flags ---------------------------------------------------------------------------------------


def test_namespaces(cluster: controlplane.ControlPlane, namespace: str, run: Run, tmp_path: Path) -> None:
    other = f"{namespace}-b"
    cluster.kubectl("create", "namespace", other)
    try:
        create_incident(cluster, namespace, "in-a")
        create_incident(cluster, other, "in-b")

        code, out, _ = run("list", "-n", other)
        assert code == 0 and "in-b" in out and "in-a" not in out
        code, out, _ = run("-n", namespace, "list")  # before the command, as kubectl users type it
        assert code == 0 and "in-a" in out and "in-b" not in out

        code, out, _ = run("list", "-A")
        assert code == 0
        rows = {tuple(line.split()[:2]) for line in out.splitlines()[1:]}
        assert {(namespace, "in-a"), (other, "in-b")} <= rows

        # Without -n: the namespace of the kubeconfig's context.
        doc = yaml.safe_load(cluster.kubeconfig.read_text())
        for context in doc["contexts"]:
            context["context"]["namespace"] = other
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(doc))
        code, out, _ = run("list", kubeconfig=kubeconfig)
        assert code == 0 and "in-b" in out and "in-a" not in out
        code, out, _ = run("ack", "in-b", kubeconfig=kubeconfig)
        assert code == 0, out
        assert "acknowledgement" in get_incident(cluster, other, "in-b")["spec"]
        assert "acknowledgement" not in get_incident(cluster, namespace, "in-a")["spec"]

        # An empty namespace is said so, on stderr.
        code, out, err = run("list", "-n", "default")
        assert code == 0 and out == "" and "No incidents found in default namespace." in err
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_contexts(cluster: controlplane.ControlPlane, namespace: str, run: Run, tmp_path: Path) -> None:
    create_incident(cluster, namespace, "ctx")
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    real = doc["contexts"][0]
    doc["contexts"].append({"name": "scoped", "context": {**real["context"], "namespace": namespace}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))

    code, out, _ = run("--context", "scoped", "list", kubeconfig=kubeconfig)
    assert code == 0 and "ctx" in out

    code, out, err = run("list", "--context", "bogus", kubeconfig=kubeconfig)
    assert code == 1 and out == ""
    assert err.startswith(f'Error: context "bogus" not found in kubeconfig {kubeconfig} (contexts: ')
    assert "scoped" in err


def test_the_kubeconfig_environment_variable(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    create_incident(cluster, namespace, "env")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "list", "-n", namespace], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "env" in result.stdout


def test_an_unreachable_cluster(cluster: controlplane.ControlPlane, run: Run, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in doc["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))

    code, out, err = run("list", kubeconfig=kubeconfig)
    assert code == 1 and out == ""
    assert err.startswith(f"Error: cannot reach the cluster at https://127.0.0.1:{port}"), err


def test_kubectl_finds_the_plugin(cluster: controlplane.ControlPlane, crds: None, namespace: str) -> None:
    """``kubectl incident ...`` through kubectl's own plugin discovery (``kubectl-incident`` on PATH)."""
    create_incident(cluster, namespace, "via-kubectl")
    kubectl = shutil.which("kubectl") or str(cluster.kubectl_path)
    env = {**os.environ, "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [kubectl, "incident", "ack", "via-kubectl", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert get_incident(cluster, namespace, "via-kubectl")["spec"]["acknowledgement"]["by"] == whoami(cluster)
