"""Every request of kube's clients has a deadline, without its caller asking for one.

Against a real TCP server that accepts and then never answers (as a frozen API
server does): the request fails with a time-out after the client's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from incidentops import kube


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A server that reads requests and never answers; its URL."""
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in hung:
            writer.close()
        server.close()
        await server.wait_closed()


def api_at(url: str, request_timeout: float | None) -> kube.ApiClient:
    configuration = client.Configuration()
    configuration.host = url
    return kube.ApiClient(configuration, request_timeout=request_timeout)


async def test_a_request_to_a_silent_server_fails_at_the_clients_deadline(silent_server: str) -> None:
    api = api_at(silent_server, 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await kube.read(api, kube.INCIDENTS, "ops", "db")
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 5
        assert kube.error_kind(caught.value) is kube.ErrorKind.TEMPORARY
    finally:
        await api.close()


async def test_a_callers_own_deadline_wins(silent_server: str) -> None:
    api = api_at(silent_server, 30)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.CoreV1Api(api).read_namespace("ops", _request_timeout=0.2)
        assert time.monotonic() - started < 5
    finally:
        await api.close()


async def test_the_default_deadline_is_the_settings_default() -> None:
    from incidentops.settings import Settings

    assert Settings().api_timeout_seconds == kube.DEFAULT_TIMEOUT == 10
