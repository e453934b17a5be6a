"""``kubectl incident drill``: a declared drill, a drill opened by its synthetic alert group, and their
refusals, against an in-memory API server (``test_commands.FakeSession``) and a local HTTP receiver that
parses each POST with the intake's own parser and makes the incident with the intake's own domain
(``alertgroups.new_incident``), as the operator's receiver does."""

from __future__ import annotations

import argparse
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from incidentops.domain import alertgroups
from incidentops.intake.payload import parse as parse_payload
from incidentops.plugin import app, main
from incidentops.plugin.args import parse
from incidentops.plugin.connection import PluginError
from tests.unit.plugin.test_commands import FakeSession

ROOT = Path(__file__).resolve().parents[3]
DRILLS = ROOT / "examples" / "drills"
TOKEN = "drill-token-never-shown"


@dataclass
class FakeReceiver:
    """The operator's receiver, in the small: bearer token, strict parse, the intake's incident."""

    session: FakeSession
    severity: str | None = "P1"  # what "the operator" classifies it as (None: not yet)
    mark_drill: bool = True  # False: an operator from before drills
    posts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "invalid bearer token"}, status=401)
        group = parse_payload(await request.read())
        self.posts.append(await request.json())
        namespace = group.group_labels.get("namespace", "incidentops")
        body = alertgroups.new_incident(group, namespace=namespace).to_dict()
        if not self.mark_drill:
            body["spec"].pop("drill", None)
        body["metadata"]["resourceVersion"] = "1"
        body["status"] = {"severity": self.severity} if self.severity else {}
        self.session.objects[body["metadata"]["name"]] = body
        incident = {"namespace": namespace, "name": body["metadata"]["name"]}
        return web.json_response({"status": "ok", "incident": incident, "created": True, "written": True})


@pytest.fixture
def session() -> FakeSession:
    return FakeSession({})


@pytest.fixture
async def peer(session: FakeSession) -> AsyncIterator[FakeReceiver]:
    receiver = FakeReceiver(session)
    application = web.Application()
    application.router.add_post("/api/v1/alerts", receiver.handle)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    receiver.url = f"http://127.0.0.1:{server.port}"
    yield receiver
    await server.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


async def drill(session: FakeSession, *argv: str) -> int:
    args: argparse.Namespace = parse(["drill", *argv])
    if args.drill_command == "start":
        args.prepared = app.prepare_drill(args)
    return await app.COMMANDS["drill"](session, args)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(text)
    return path


# --- without alerts: declared ---------------------------------------------------------------------


async def test_a_scenario_without_alerts_declares_a_drill(
    session: FakeSession, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await drill(session, "start", "--scenario", str(DRILLS / "security-tabletop.yaml")) == 0
    [created] = session.created
    assert session.namespaces == ["payments"], "the scenario's namespace"
    assert created["metadata"]["name"].startswith("drill-tabletop-unauthorised-access-")
    spec = created["spec"]
    assert spec["drill"] is True
    assert (spec["title"], spec["severity"], spec["type"]) == (
        "Tabletop: unauthorised access to the checkout database",
        "P1",
        "security",
    )
    assert spec["source"] == {"kind": "manual"}
    assert spec["escalationPolicyRef"] == {"name": "payments"}
    assert spec["drillTargets"] == {"acknowledge": "15m", "contain": "1h", "resolve": "4h"}
    assert spec["targets"] == [{"kind": "Deployment", "name": "checkout", "namespace": "payments"}]
    assert [a["name"] for a in spec["actions"]] == ["evidence", "quarantine-checkout"]
    out = capsys.readouterr()
    assert f'drill "{created["metadata"]["name"]}" declared in namespace "payments" (P1, security, DRILL)' in out.out
    assert out.err == ""


async def test_a_declared_drill_takes_the_name_given(session: FakeSession, tmp_path: Path) -> None:
    path = write(tmp_path, "title: Database restore\nseverity: P2\n")
    assert await drill(session, "start", "--scenario", str(path), "--name", "restore-q2", "-o", "name") == 0
    assert [c["metadata"]["name"] for c in session.created] == ["restore-q2"]
    assert "drillTargets" not in session.created[0]["spec"]
    with pytest.raises(PluginError, match='incident "restore-q2" already exists'):
        await drill(session, "start", "--scenario", str(path), "--name", "restore-q2")


async def test_a_cluster_that_drops_drill_targets_is_said(
    session: FakeSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Until the CRD has spec.drillTargets the API server prunes it; the drill still starts, and says so."""
    create = session.create

    async def pruning(body: dict[str, Any]) -> dict[str, Any]:
        kept = copy.deepcopy(body)
        kept["spec"].pop("drillTargets", None)
        return await create(kept)

    session.create = pruning  # type: ignore[method-assign]
    path = write(tmp_path, "title: t\nseverity: P3\ntargets: {acknowledge: 5m}\n")
    assert await drill(session, "start", "--scenario", str(path)) == 0
    assert "does not keep spec.drillTargets" in capsys.readouterr().err


def test_the_namespace_of_the_scenario_and_of_n_must_agree(tmp_path: Path) -> None:
    path = write(tmp_path, "title: t\nseverity: P3\nnamespace: shop\n")
    args = parse(["drill", "start", "--scenario", str(path), "-n", "ops"])
    with pytest.raises(PluginError, match='namespace "shop" does not match the namespace "ops" of -n'):
        app.prepare_drill(args)
    assert app.prepare_drill(parse(["drill", "start", "--scenario", str(path), "-n", "shop"])).namespace == "shop"


def test_the_receiver_flags_go_with_alerts_only(tmp_path: Path, token_file: Path) -> None:
    declared = write(tmp_path, "title: t\nseverity: P3\n")
    with pytest.raises(PluginError, match="for a scenario with alerts; this one has none"):
        app.prepare_drill(parse(["drill", "start", "--scenario", str(declared), "--receiver", "http://x:1"]))
    alerts = DRILLS / "checkout-gameday.yaml"
    with pytest.raises(PluginError, match="--receiver URL --token-file FILE"):
        app.prepare_drill(parse(["drill", "start", "--scenario", str(alerts), "--receiver", "http://x:1"]))
    with pytest.raises(PluginError, match="the receiver names an alert-born incident"):
        app.prepare_drill(
            parse(
                [
                    *("drill", "start", "--scenario", str(alerts), "--receiver", "http://x:1"),
                    *("--token-file", str(token_file), "--name", "x"),
                ]
            )
        )
    with pytest.raises(PluginError, match="is not an http:// or https:// URL"):
        app.prepare_drill(
            parse(["drill", "start", "--scenario", str(alerts), "--receiver", "x:1", "--token-file", str(token_file)])
        )
    with pytest.raises(PluginError, match="cannot read the token file"):
        app.prepare_drill(
            parse(["drill", "start", "--scenario", str(alerts), "--receiver", "http://x:1", "--token-file", "/nope"])
        )
    start = app.prepare_drill(
        parse(
            ["drill", "start", "--scenario", str(alerts), "--receiver", "http://x:1", "--token-file", str(token_file)]
        )
    )
    assert (start.url, start.token) == ("http://x:1/api/v1/alerts", TOKEN)


def test_a_bad_scenario_is_an_error_before_any_cluster_is_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "title: t\nseverity: P9\n")
    # No kubeconfig exists there: the scenario's error comes first.
    code = main(["--kubeconfig", str(tmp_path / "nowhere"), "drill", "start", "--scenario", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"Error: {path} is not a valid drill scenario:\n  line 2: severity: ")
    assert "Traceback" not in err


# --- with alerts: through the receiver ------------------------------------------------------------


async def test_a_scenario_with_alerts_posts_the_group_and_completes_the_drill_the_receiver_opened(
    session: FakeSession, peer: FakeReceiver, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario_file = str(DRILLS / "checkout-gameday.yaml")
    argv = ["start", "--scenario", scenario_file, "--receiver", peer.url, "--token-file", str(token_file)]
    assert await drill(session, *argv) == 0
    [posted] = peer.posts
    assert posted["commonLabels"][alertgroups.DRILL_LABEL] == "true"
    assert posted["groupLabels"]["namespace"] == "payments"
    assert session.created == [], "the receiver creates it, not the plugin"
    [(name, incident)] = session.objects.items()
    assert session.namespaces == ["payments"], "read where the receiver put it"
    assert incident["spec"]["drill"] is True
    assert incident["spec"]["drillTargets"] == {"detect": "5m", "acknowledge": "5m", "contain": "15m", "resolve": "1h"}
    assert [a["name"] for a in incident["spec"]["actions"]] == ["maintenance-page"]
    [patch] = session.patches
    assert patch["metadata"] == {"resourceVersion": "1"}, "added under the version read, which was a drill"
    out = capsys.readouterr()
    assert f'drill "{name}" started in namespace "payments": 1 alert(s) posted to {peer.url}/api/v1/alerts' in out.out
    assert "classified P1, as the scenario expects" in out.out
    assert TOKEN not in out.out + out.err


async def test_a_classification_other_than_the_scenarios_is_warned_about(
    session: FakeSession, peer: FakeReceiver, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.severity = "P3"
    argv = ["start", "--scenario", str(DRILLS / "notification-failure.yaml"), "--receiver", peer.url]
    assert await drill(session, *argv, "--token-file", str(token_file), "-o", "name") == 0
    out = capsys.readouterr()
    [name] = session.objects
    assert out.out.strip() == f"incident.incidentops.dev/{name}"
    assert "warning: classified P3, the scenario expects P2" in out.err


async def test_an_unclassified_drill_is_said_after_the_timeout(
    session: FakeSession, peer: FakeReceiver, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.severity = None
    argv = ["start", "--scenario", str(DRILLS / "notification-failure.yaml"), "--receiver", peer.url]
    assert await drill(session, *argv, "--token-file", str(token_file), "--timeout", "300ms") == 0
    assert "not classified yet (is the operator running?)" in capsys.readouterr().out


async def test_an_incident_the_receiver_did_not_mark_a_drill_gets_nothing_added_and_is_reported(
    session: FakeSession, peer: FakeReceiver, token_file: Path
) -> None:
    peer.mark_drill = False
    argv = ["start", "--scenario", str(DRILLS / "checkout-gameday.yaml"), "--receiver", peer.url]
    with pytest.raises(PluginError, match=r"without marking it a drill .* REAL incident"):
        await drill(session, *argv, "--token-file", str(token_file))
    assert session.patches == [], "no action is requested on a real incident"


async def test_a_refused_token_is_explained_without_showing_it(
    session: FakeSession, peer: FakeReceiver, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    argv = ["start", "--scenario", str(DRILLS / "checkout-gameday.yaml"), "--receiver", peer.url]
    with pytest.raises(PluginError, match=r"refused the token \(401\)") as caught:
        await drill(session, *argv, "--token-file", str(wrong))
    assert "not-the-token" not in str(caught.value)
    assert session.objects == {}


async def test_an_unreachable_receiver_is_explained(session: FakeSession, token_file: Path) -> None:
    argv = ["start", "--scenario", str(DRILLS / "checkout-gameday.yaml"), "--receiver", "http://127.0.0.1:9"]
    with pytest.raises(PluginError, match=r"cannot reach the receiver at http://127\.0\.0\.1:9/api/v1/alerts"):
        await drill(session, *argv, "--token-file", str(token_file))


# --- list ------------------------------------------------------------------------------------------


async def test_drill_list_shows_drills_only(session: FakeSession, capsys: pytest.CaptureFixture[str]) -> None:
    base = {"metadata": {"name": "", "namespace": "ops", "resourceVersion": "1"}, "spec": {"title": "t"}}
    for name, is_drill in (("real-one", False), ("gameday", True)):
        body = copy.deepcopy(base)
        body["metadata"]["name"] = name
        body["spec"]["drill"] = is_drill
        session.objects[name] = body
    assert await drill(session, "list") == 0
    out = capsys.readouterr().out
    assert "gameday" in out and "real-one" not in out
    session.objects.pop("gameday")
    assert await drill(session, "ls") == 0
    assert "No drills found in ops namespace." in capsys.readouterr().err
