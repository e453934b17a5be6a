"""``kubectl incident report``: its flags, bad input refused clearly, and the report it prints from the
incidents and policies an in-memory API server holds."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from incidentops.plugin import app
from incidentops.plugin.args import parse

NOW = datetime.datetime(2026, 12, 2, 9, 0, tzinfo=datetime.UTC)


def incident(
    name: str, created: str, severity: str, *, policy: str = "team/paging", tta: int | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "team", "creationTimestamp": created, "resourceVersion": "1"},
        "spec": {"title": name, "severity": severity},
        "status": {
            "severity": severity,
            "episode": 1,
            "episodeStartedAt": created,
            "escalationPolicy": policy,
            **({"metrics": {"timeToAcknowledgeSeconds": tta}} if tta is not None else {}),
        },
    }


class ReportSession(app.Session):
    def __init__(self, items: list[dict[str, Any]], policies: dict[tuple[str, str], dict[str, Any]]) -> None:
        super().__init__(conn=None, namespace="team", now=lambda: NOW)  # type: ignore[arg-type]
        self.items = items
        self.policies = policies
        self.listed: list[bool] = []

    async def list_incidents(self, all_namespaces: bool) -> list[dict[str, Any]]:
        self.listed.append(all_namespaces)
        return self.items

    async def policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.policies.get((namespace, name))


PAGING = {
    "metadata": {"name": "paging", "namespace": "team"},
    "spec": {"severities": {"P1": {"acknowledgeWithin": "5m"}}},
}


async def run(session: app.Session, argv: list[str]) -> int:
    args = parse(argv)
    return await app.COMMANDS[args.command](session, args)


async def test_json_of_a_month_with_the_policy_targets(capsys: pytest.CaptureFixture[str]) -> None:
    items = [
        incident("a", "2026-11-03T10:00:00Z", "P1", tta=120),
        incident("b", "2026-11-20T10:00:00Z", "P2"),
        incident("c", "2026-10-20T10:00:00Z", "P2"),
    ]
    session = ReportSession(items, {("team", "paging"): PAGING})
    assert await run(session, ["report", "--month", "2026-11", "-o", "json", "-A"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert session.listed == [True]
    assert out["period"] == "2026-11" and out["scope"] == "all namespaces"
    assert out["totals"]["incidents"] == 2 and out["totals"]["trend"] == {"previous": 1, "change": 1, "percent": 100.0}
    p1 = out["bySeverity"][0]
    assert (p1["count"], p1["mttaSeconds"], p1["acknowledgeTargetSeconds"]) == (1, 120.0, 300)


async def test_markdown_of_the_last_30_days_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    session = ReportSession([incident("a", "2026-11-29T10:00:00Z", "P1")], {})
    assert await run(session, ["report"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Incident Report - 30d to 2026-12-02 09:00 UTC\n")
    assert "- **Total incidents**: 1 (none the period before)" in captured.out
    assert "| P1 | 1 |" in captured.out
    assert "team/paging could not be read" in captured.err  # held to the default targets, and told so


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--month", "2026-13"], "'2026-13' is not a month"),
        (["report", "--month", "nov"], "use YYYY-MM"),
        (["report", "--since", "30"], "use a number and h, d or w"),
        (["report", "--since", "30d", "--month", "2026-11"], "not allowed with argument"),
        (["report", "-o", "yaml"], "invalid choice"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app.main(argv) == 2
    assert message in capsys.readouterr().err
