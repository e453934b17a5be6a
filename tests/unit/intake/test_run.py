"""intake.run_receiver: off without a token, serves until stopped, TLS from files, certificates reloaded,
ready only while the API server answers (a real client against local servers that answer /version, never
answer, or are not there)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from incidentops import kube
from incidentops.intake import server
from incidentops.intake.server import run_receiver
from incidentops.settings import Settings
from incidentops.testing.controlplane import free_port
from tests.unit.kube.test_client import api_at, silent_server

__all__ = ["silent_server"]  # a fixture of test_client, used here too

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def self_signed(directory: Path, common_name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    for path, data in (
        (cert_file, cert.public_bytes(serialization.Encoding.PEM)),
        (
            key_file,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    ):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return cert_file, key_file


@asynccontextmanager
async def version_server(asked: list[float] | None = None) -> AsyncIterator[str]:
    """An API server that answers ``GET /version`` (noting when in ``asked``); its URL."""
    app = web.Application()

    async def version(request: web.Request) -> web.Response:
        if asked is not None:
            asked.append(time.monotonic())
        return web.json_response(VERSION)

    app.router.add_get("/version/", version)  # where kubernetes_asyncio asks (the API server serves both)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving(settings: Settings, api: kube.ApiClient | None = None) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    async with version_server() as url:
        api = api or api_at(url, 5)
        task = asyncio.create_task(run_receiver(settings, api, stop))
        try:
            yield task
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await api.close()


async def get(url: str, context: ssl.SSLContext | None = None) -> int:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url, ssl=context if context is not None else False) as response:
                    return response.status
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_without_a_token_file_the_receiver_is_off(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, "incidentops.intake")
    async with serving(Settings(receiver_port=port, bind_address="127.0.0.1")) as task:
        await asyncio.sleep(0.1)
        assert not task.done(), "it waits for the stop flag, so the operator runs on"
        with pytest.raises(aiohttp.ClientConnectorError):
            async with aiohttp.ClientSession() as session:
                await session.get(f"http://127.0.0.1:{port}/healthz")
    assert "receiver is off" in caplog.text


async def test_serves_http_until_stopped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    port = free_port()
    settings = Settings(receiver_port=port, bind_address="127.0.0.1", token_file=tmp_path / "token")
    async with serving(settings):
        assert await get(f"http://127.0.0.1:{port}/readyz") == 200
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/healthz")


async def test_a_token_file_that_is_not_there_yet_is_not_ready(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(receiver_port=port, bind_address="127.0.0.1", token_file=tmp_path / "later")
    async with serving(settings):
        assert await get(f"http://127.0.0.1:{port}/readyz") == 503
        (tmp_path / "later").write_text("t")
        assert await get(f"http://127.0.0.1:{port}/readyz") == 200


async def test_tls_with_certificate_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_CERT_CHECK_SECONDS", 0.05)
    (tmp_path / "token").write_text("t")
    cert_file, key_file = self_signed(tmp_path, "first")
    port = free_port()
    settings = Settings(
        receiver_port=port,
        bind_address="127.0.0.1",
        token_file=tmp_path / "token",
        tls_cert_file=cert_file,
        tls_key_file=key_file,
    )

    def trusting(path: Path) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(path))

    async with serving(settings):
        first = cert_file.read_bytes()
        (tmp_path / "first.pem").write_bytes(first)
        assert await get(f"https://127.0.0.1:{port}/healthz", trusting(tmp_path / "first.pem")) == 200
        with pytest.raises(aiohttp.ClientError):
            await _plain(port)  # plain HTTP is not served

        self_signed(tmp_path, "second")  # renewed in place, as cert-manager does
        (tmp_path / "second.pem").write_bytes(cert_file.read_bytes())

        async def serves_second() -> bool:
            try:
                return await get(f"https://127.0.0.1:{port}/healthz", trusting(tmp_path / "second.pem")) == 200
            except aiohttp.ClientConnectorCertificateError:
                return False

        for _ in range(100):
            if await serves_second():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the renewed certificate was never served")


async def _plain(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status


def test_tls_needs_both_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    settings = Settings(token_file=tmp_path / "token", tls_cert_file=tmp_path / "tls.crt")

    async def main() -> None:
        await run_receiver(settings, object(), asyncio.Event())  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="both"):
        asyncio.run(main())


@pytest.fixture
def quick_readiness(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(server, "READY_API_TTL_SECONDS", 0.0)  # every probe asks: the test sees each change
    monkeypatch.setattr(server, "READY_API_TIMEOUT_SECONDS", 0.3)
    yield


async def readiness(url: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_not_ready_while_the_api_server_does_not_answer_or_is_not_there(
    tmp_path: Path, silent_server: str, quick_readiness: None
) -> None:
    (tmp_path / "token").write_text("t")
    port = free_port()
    settings = Settings(receiver_port=port, bind_address="127.0.0.1", token_file=tmp_path / "token")
    async with serving(settings, api_at(silent_server, 10)):
        assert await get(f"http://127.0.0.1:{port}/healthz") == 200
        started = time.monotonic()
        status, data = await readiness(f"http://127.0.0.1:{port}/readyz")
        assert (status, data["error"]) == (503, "the Kubernetes API did not answer within 0.3s")
        assert time.monotonic() - started < 3, "within the probe's own timeout"
    closed = f"http://127.0.0.1:{free_port()}"
    async with serving(settings, api_at(closed, 10)):
        assert await get(f"http://127.0.0.1:{port}/healthz") == 200
        status, data = await readiness(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and data["error"].startswith("the Kubernetes API is not reachable: "), data


async def test_the_api_is_asked_once_per_ttl_however_often_the_probes_come(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    asked: list[float] = []
    port = free_port()
    settings = Settings(receiver_port=port, bind_address="127.0.0.1", token_file=tmp_path / "token")
    async with version_server(asked) as url, serving(settings, api_at(url, 5)):
        started = time.monotonic()
        for _ in range(20):
            assert await get(f"http://127.0.0.1:{port}/readyz") == 200
        took = time.monotonic() - started
    # One request per ttl (20 probes take far less than one on any machine, but a slow one may cross it).
    assert 1 <= len(asked) <= 1 + took / server.READY_API_TTL_SECONDS, f"{len(asked)} requests in {took:.2f}s"
