"""intake.probes.ApiCheck: /readyz's look at the API server, bounded in time and asked once per ttl."""

from __future__ import annotations

import asyncio

import pytest

from incidentops.intake.probes import ApiCheck
from tests.unit.kubefake import api_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """The API server as the probe sees it: answers, fails with ``error``, or never answers (``hang``)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.error: BaseException | None = None
        self.hang = False

    async def __call__(self) -> str:
        self.asked.append(asyncio.get_running_loop().time())
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(0)  # an answer takes a turn of the loop, so probes can overlap
        if self.error is not None:
            raise self.error
        return "v1.33.0"


async def test_an_answer_is_kept_for_the_ttl_and_asked_again_after_it() -> None:
    server, clock = Server(), Clock()
    check = ApiCheck(server, ttl=5, timeout=2, clock=clock)
    assert await check.problem() is None
    clock.now += 4.9
    assert await check.problem() is None
    assert len(server.asked) == 1, "one request within the ttl"
    server.error = api_error(503, "Service Unavailable", message="etcd is down")
    clock.now += 0.1
    problem = await check.problem()
    assert problem == "the Kubernetes API is not reachable: 503 Service Unavailable: etcd is down"
    assert len(server.asked) == 2
    server.error = None
    assert await check.problem() == problem, "a failure is kept for the ttl as well"
    clock.now += 5
    assert await check.problem() is None


async def test_probes_that_come_together_share_one_request() -> None:
    server = Server()
    check = ApiCheck(server, ttl=5, timeout=2, clock=Clock())
    assert await asyncio.gather(*(check.problem() for _ in range(10))) == [None] * 10
    assert len(server.asked) == 1


@pytest.mark.looptime
async def test_a_server_that_does_not_answer_is_a_problem_at_the_deadline() -> None:
    server = Server()
    server.hang = True
    check = ApiCheck(server, ttl=5, timeout=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await check.problem() == "the Kubernetes API did not answer within 2s"
    assert loop.time() - started == pytest.approx(2, abs=0.01)


async def test_a_refused_connection_or_a_bad_token_is_a_problem_with_its_reason() -> None:
    server, clock = Server(), Clock()
    check = ApiCheck(server, ttl=5, timeout=2, clock=clock)
    server.error = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6443)")
    assert await check.problem() == (
        "the Kubernetes API is not reachable: ConnectionRefusedError: [Errno 111] Connect call failed "
        "('127.0.0.1', 6443)"
    )
    clock.now += 5
    server.error = api_error(401, "Unauthorized")
    assert await check.problem() == "the Kubernetes API is not reachable: 401 Unauthorized"
