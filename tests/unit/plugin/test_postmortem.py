"""``kubectl incident postmortem``: printing the draft (or a drill's assessment), asking for one, finishing
it with a URL or action items, against an in-memory API server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from incidentops.plugin.connection import PluginError
from incidentops.plugin.postmortem import parse_action_item

from .test_commands import FakeSession, incident, run


class DraftSession(FakeSession):
    def __init__(self, objects: dict[str, dict[str, Any]], configmaps: dict[str, dict[str, Any]]) -> None:
        super().__init__(objects)
        self.configmaps = configmaps

    async def configmap(self, name: str) -> dict[str, Any] | None:
        return self.configmaps.get(name)


def resolved(state: str = "Draft", ref: str | None = "incidentops-postmortem-abc", **spec: Any) -> dict[str, Any]:
    body = incident(**spec)
    body["status"].update(phase="Resolved", postmortem={"state": state, **({"ref": ref} if ref else {})})
    return body


DRAFT = {"data": {"postmortem.md": "# Incident Post-Mortem: t\n", "facts.json": json.dumps({"kind": "postmortem"})}}


async def test_prints_the_draft(capsys: pytest.CaptureFixture[str]) -> None:
    session = DraftSession({"x": resolved()}, {"incidentops-postmortem-abc": DRAFT})
    assert await run(session, ["postmortem", "x"]) == 0
    assert capsys.readouterr().out == "# Incident Post-Mortem: t\n"
    assert await run(session, ["postmortem", "x", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": "postmortem"}
    assert session.patches == []


async def test_prints_a_drills_assessment(capsys: pytest.CaptureFixture[str]) -> None:
    body = incident(drill=True)
    body["status"].update(phase="Resolved", assessment={"ref": "incidentops-assessment-abc", "passed": False})
    session = DraftSession({"x": body}, {"incidentops-assessment-abc": {"data": {"assessment.md": "# Drill\n"}}})
    assert await run(session, ["postmortem", "x"]) == 0
    assert capsys.readouterr().out == "# Drill\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (incident(), 'incident "x" is Triggered: its post-mortem draft is written when it is resolved'),
        (resolved("NotRequired", None), "kubectl incident postmortem x --draft"),
        (resolved("Pending", None), "being written"),
    ],
)
async def test_explains_why_there_is_no_draft(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        await run(DraftSession({"x": body}, {}), ["postmortem", "x"])


async def test_a_draft_whose_configmap_is_gone_is_an_error() -> None:
    with pytest.raises(PluginError, match="is gone or holds no draft"):
        await run(DraftSession({"x": resolved()}, {}), ["postmortem", "x"])


async def test_draft_requests_one() -> None:
    session = DraftSession({"x": resolved("NotRequired", None)}, {})
    assert await run(session, ["postmortem", "x", "--draft"]) == 0
    assert session.patches == [{"metadata": {"resourceVersion": "1"}, "spec": {"postmortem": {"draft": True}}}]
    assert await run(session, ["postmortem", "x", "--draft"]) == 0
    assert len(session.patches) == 1  # already requested: nothing to write


async def test_complete_with_a_url_and_action_items(capsys: pytest.CaptureFixture[str]) -> None:
    session = DraftSession({"x": resolved()}, {})
    argv = ["postmortem", "x", "--complete", "--url", "https://wiki.example/pm/1"]
    argv += ["--action-item", "title=Alert on 502s;owner=bob;due=2026-12-09;url=https://tracker.example/1"]
    assert await run(session, argv) == 0
    (patch,) = session.patches
    assert patch["spec"]["postmortem"] == {
        "url": "https://wiki.example/pm/1",
        "actionItems": [
            {"title": "Alert on 502s", "owner": "bob", "dueBy": "2026-12-09", "url": "https://tracker.example/1"}
        ],
        "completed": True,
    }
    assert 'post-mortem of incident "x" completed by alice' in capsys.readouterr().out


async def test_complete_keeps_the_action_items_already_there() -> None:
    items = [{"title": "a", "owner": "bob"}]
    session = DraftSession({"x": resolved(postmortem={"actionItems": items})}, {})
    assert await run(session, ["postmortem", "x", "--complete"]) == 0
    assert session.patches[0]["spec"]["postmortem"] == {"actionItems": items, "completed": True}


async def test_complete_needs_a_url_or_an_action_item() -> None:
    session = DraftSession({"x": resolved()}, {})
    with pytest.raises(PluginError, match="needs --url or at least one --action-item"):
        await run(session, ["postmortem", "x", "--complete"])
    assert session.patches == []


async def test_a_conflict_reads_again() -> None:
    session = DraftSession({"x": resolved()}, {})
    session.interfere = [{"roles": {"commander": "carol"}}]
    assert await run(session, ["postmortem", "x", "--complete", "--url", "https://wiki.example/pm/1"]) == 0
    assert session.patches[0]["metadata"]["resourceVersion"] == "2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("owner=bob", "needs title"),
        ("title=x", "needs owner"),
        ("title=x;owner=bob;due=tomorrow", "due must be a date"),
        ("title=x;owner=bob;url=ftp://x", "url must be an http"),
        ("title=x;owner=bob;priority=high", "expected title=...;owner=...;due=...;url=..."),
    ],
)
def test_bad_action_items_are_explained(text: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        parse_action_item(text)
