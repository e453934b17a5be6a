"""Kopf starts only once our resources are served (it is told which exist once, as it starts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import pytest
from kopf._cogs.clients import scanning

from incidentops import kube
from incidentops.handlers import runtime
from tests.unit.kubefake import api_error


async def test_kopf_waits_for_the_crds_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[Any] = [["incidents", "escalationpolicies"], api_error(503), ["escalationpolicies"], []]

    async def unserved(api: Any, resources: Any) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)

    monkeypatch.setattr(kube, "unserved", unserved)
    with caplog.at_level(logging.WARNING, logger="incidentops"):
        assert await runtime.served(object(), asyncio.Event(), interval=0.001) is True
    assert not answers, "asked until everything was served"
    waiting = [r.getMessage() for r in caplog.records if "waiting for the API server" in r.getMessage()]
    assert waiting == ["waiting for the API server to serve incidents, escalationpolicies (are the CRDs installed?)"]


async def test_a_stop_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = asyncio.Event()

    async def unserved(api: Any, resources: Any) -> list[str]:
        stop.set()
        return ["incidents"]

    monkeypatch.setattr(kube, "unserved", unserved)
    assert await runtime.served(object(), stop, interval=60) is False


def test_kopf_scan_cut_short_is_a_warning_line_and_other_leftovers_keep_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise aiohttp.ClientConnectionError("Connection closed")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        # Kopf's own coroutine (a group it has nothing to read for, so no request is made).
        scan = asyncio.ensure_future(scanning._read_old_api(groups=["none"], settings=None, logger=None))  # type: ignore[arg-type]
        await scan
        other = loop.create_task(fail())
        with contextlib.suppress(aiohttp.ClientError):
            await other
        closed = aiohttp.ClientConnectionError("Connection closed")
        for task in (scan, other):
            context = {"message": "Task exception was never retrieved", "exception": closed, "future": task}
            runtime.quiet_kopf_scan_leftovers(loop, context)

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", "Kopf's resource scan was cut short: ClientConnectionError: Connection closed") in lines
    assert any(level == "ERROR" and "never retrieved" in message for level, message in lines), lines
