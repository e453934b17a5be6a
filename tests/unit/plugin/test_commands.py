"""The write commands' decisions against an in-memory API server: idempotence within an episode, a new
``at`` after a reopen, re-reading on 409 Conflict, a fresh suffix when a generated name is taken."""

from __future__ import annotations

import argparse
import copy
import datetime
from typing import Any

import pytest

from incidentops.plugin import app
from incidentops.plugin.args import parse
from incidentops.plugin.connection import PluginError

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


class FakeSession(app.Session):
    """A Session whose API server is a dict, with resourceVersion preconditions like the real one."""

    def __init__(self, objects: dict[str, dict[str, Any]], *, user: str = "alice") -> None:
        super().__init__(conn=None, namespace="ops", now=lambda: NOW)  # type: ignore[arg-type]
        self.objects = objects
        self.user = user
        self.patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.interfere: list[dict[str, Any]] = []  # spec changes "someone else" makes right after our next read
        self.namespaces: list[str] = []  # the namespaces asked for with in_namespace

    async def get(self, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise PluginError(f'incident "{name}" not found in namespace "ops"')
        body = copy.deepcopy(self.objects[name])
        if self.interfere:
            self._write(name, self.interfere.pop(0))
        return body

    def in_namespace(self, namespace: str) -> FakeSession:
        self.namespaces.append(namespace)
        self.namespace = namespace  # one in-memory server: the same objects, named from there
        return self

    async def list_incidents(self, all_namespaces: bool) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects.values()]

    async def find(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects[name]) if name in self.objects else None

    def _write(self, name: str, spec: dict[str, Any]) -> None:
        obj = self.objects[name]
        obj["spec"].update(spec)
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)

    async def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[name]
        if patch["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise app.Conflict("the object has been modified")
        self.patches.append(patch)
        self._write(name, patch["spec"])
        return copy.deepcopy(obj)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.objects:
            raise app.AlreadyExists("exists")
        self.created.append(body)
        self.objects[name] = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return copy.deepcopy(self.objects[name])

    async def identity(self) -> str:
        return self.user


def incident(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "namespace": "ops", "resourceVersion": "1"},
        "spec": {"title": "t", **spec},
        "status": {"episode": 1, "episodeStartedAt": "2024-05-01T11:00:00Z"},
    }


async def run(session: FakeSession, argv: list[str]) -> int:
    args: argparse.Namespace = parse(argv)
    return await app.COMMANDS[args.command](session, args)


async def test_ack_writes_by_and_at(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession({"x": incident()})
    assert await run(session, ["ack", "x", "--note", "on it"]) == 0
    assert session.patches == [
        {
            "metadata": {"resourceVersion": "1"},
            "spec": {"acknowledgement": {"by": "alice", "at": "2024-05-01T12:00:00Z", "note": "on it"}},
        }
    ]
    assert 'incident "x" acknowledged by alice at 2024-05-01T12:00:00Z' in capsys.readouterr().out


async def test_ack_in_the_same_episode_does_not_write(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession({"x": incident(acknowledgement={"by": "bob", "at": "2024-05-01T11:30:00Z"})})
    assert await run(session, ["ack", "x"]) == 0
    assert session.patches == []
    out = capsys.readouterr().out
    assert "already acknowledged by bob at 2024-05-01T11:30:00Z (30m ago)" in out


async def test_ack_after_a_reopen_writes_a_new_at() -> None:
    body = incident(acknowledgement={"by": "bob", "at": "2024-05-01T10:30:00Z", "note": "old"})
    body["status"]["episode"] = 2  # reopened at 11:00, after bob's acknowledgement
    session = FakeSession({"x": body})
    assert await run(session, ["ack", "x"]) == 0
    (patch,) = session.patches
    assert patch["spec"]["acknowledgement"] == {"by": "alice", "at": "2024-05-01T12:00:00Z", "note": None}


@pytest.mark.parametrize(("command", "field"), [("contain", "containment"), ("resolve", "resolution")])
async def test_contain_and_resolve_are_idempotent_within_the_episode(command: str, field: str) -> None:
    argv = [command, "x"] + (["--summary", "s"] if command == "resolve" else [])
    session = FakeSession({"x": incident()})
    assert await run(session, argv) == 0
    assert await run(session, argv) == 0
    assert len(session.patches) == 1
    assert session.patches[0]["spec"][field]["by"] == "alice"


async def test_resolve_record() -> None:
    session = FakeSession({"x": incident()})
    assert await run(session, ["resolve", "x", "--summary", "rolled back", "--root-cause", "bad flag"]) == 0
    assert session.patches[0]["spec"]["resolution"] == {
        "by": "alice",
        "at": "2024-05-01T12:00:00Z",
        "summary": "rolled back",
        "rootCause": "bad flag",
    }


async def test_a_conflict_rereads_and_finds_someone_else_acknowledged(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession({"x": incident()})
    session.interfere = [{"acknowledgement": {"by": "bob", "at": "2024-05-01T11:59:59Z"}}]
    assert await run(session, ["ack", "x"]) == 0
    assert session.patches == []  # our patch met a 409; the re-read showed bob was first
    assert session.objects["x"]["spec"]["acknowledgement"]["by"] == "bob"
    assert "already acknowledged by bob" in capsys.readouterr().out


async def test_a_conflict_rereads_and_retries() -> None:
    session = FakeSession({"x": incident()})
    session.interfere = [{"description": "edited meanwhile"}]
    assert await run(session, ["contain", "x"]) == 0
    assert [p["metadata"]["resourceVersion"] for p in session.patches] == ["2"]
    assert session.objects["x"]["spec"]["description"] == "edited meanwhile"


async def test_endless_conflicts_give_up_with_a_message() -> None:
    session = FakeSession({"x": incident()})
    session.interfere = [{"description": str(i)} for i in range(app.WRITE_ATTEMPTS)]
    with pytest.raises(PluginError, match="kept changing"):
        await run(session, ["ack", "x"])


async def test_update_always_writes_a_newer_at() -> None:
    session = FakeSession({"x": incident(statusUpdate={"message": "m", "by": "bob", "at": "2024-05-01T12:00:00Z"})})
    assert await run(session, ["update", "x", "--message", "still down"]) == 0
    assert await run(session, ["update", "x", "--message", "recovering"]) == 0
    ats = [p["spec"]["statusUpdate"]["at"] for p in session.patches]
    assert ats == ["2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z"]
    assert session.objects["x"]["spec"]["statusUpdate"]["message"] == "recovering"


async def test_declare_with_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession({})
    assert await run(session, ["declare", "--title", "DB down", "--severity", "P2", "--name", "db-down"]) == 0
    assert session.created[0]["spec"] == {"title": "DB down", "severity": "P2", "source": {"kind": "manual"}}
    assert 'incident "db-down" declared in namespace "ops" (P2)' in capsys.readouterr().out
    with pytest.raises(PluginError, match='incident "db-down" already exists in namespace "ops"'):
        await run(session, ["declare", "--title", "DB down", "--severity", "P2", "--name", "db-down"])


async def test_declare_draws_another_suffix_when_a_generated_name_is_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    names = iter(["db-down-bbbbb", "db-down-ccccc"])
    monkeypatch.setattr(app.logic, "generate_name", lambda title: next(names))
    session = FakeSession({"db-down-bbbbb": incident()})
    assert await run(session, ["declare", "--title", "DB down", "--severity", "P2", "-o", "name"]) == 0
    assert [c["metadata"]["name"] for c in session.created] == ["db-down-ccccc"]
    assert capsys.readouterr().out.strip() == "incident.incidentops.dev/db-down-ccccc"
