from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from incidentops.notify.base import EVENTS, ChannelConfigError
from incidentops.notify.email import EmailChannel, message_id
from incidentops.notify.templates import render

from .conftest import EVENT_DETAILS, SmtpHandler, SmtpPeer, fast_retry, free_port, make_incident, make_notification

TO = ["oncall@example.com", "lead@example.com"]
SENDER = "incidentops@example.com"


def mailer(peer: SmtpPeer, **kwargs: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "to": TO,
        "sender": SENDER,
        "host": peer.host,
        "port": peer.port,
        "starttls": False,
        "retry": fast_retry(),
        "timeout": 2.0,
        "name": "mail",
    }
    values.update(kwargs)
    return EmailChannel(**values)


@pytest.mark.parametrize("event", EVENTS)
async def test_sends_mail_with_stable_headers(smtp_peer: SmtpPeer, event: str) -> None:
    n = make_notification(event, details=EVENT_DETAILS[event])
    outcome = await mailer(smtp_peer).send(n)
    assert outcome.delivered and outcome.status_code == 250 and outcome.attempts == 1, outcome.reason
    (mail,) = smtp_peer.handler.mails
    assert mail.mail_from == SENDER and mail.rcpt_tos == TO
    msg = mail.message
    rendered = render(event, n)
    assert msg["Subject"] == rendered.subject
    assert msg["From"] == SENDER and msg["To"] == ", ".join(TO)
    assert msg["Message-ID"] == f"<{n.key}@incidentops>"
    assert msg["X-Incidentops-Key"] == n.key
    assert msg["X-Incidentops-Event"] == event
    assert msg["X-Incidentops-Incident"] == "shop/checkout-5f3a9c"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Incidentops-Drill"] is None
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == rendered.text
    assert "<html" in html.get_content()


async def test_a_resend_is_the_same_message(smtp_peer: SmtpPeer) -> None:
    n = make_notification()
    await mailer(smtp_peer).send(n)
    await mailer(smtp_peer).send(n)
    first, second = (m.message for m in smtp_peer.handler.mails)
    assert first["Message-ID"] == second["Message-ID"] == message_id(n.key)
    assert first["Date"] == second["Date"]
    assert first["References"] == second["References"]


async def test_drill_mail(smtp_peer: SmtpPeer) -> None:
    await mailer(smtp_peer).send(make_notification(incident=make_incident(drill=True)))
    msg = smtp_peer.handler.mails[0].message
    assert msg["Subject"].startswith("[DRILL]") and msg["X-Incidentops-Drill"] == "true"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().startswith("[DRILL]")


async def test_temporary_failure_is_retried(smtp_peer: SmtpPeer) -> None:
    smtp_peer.handler.data_replies.append("451 4.3.0 Try again later")
    outcome = await mailer(smtp_peer).send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (True, 2, 250)
    assert len(smtp_peer.handler.mails) == 1


async def test_unknown_recipients_are_final(smtp_peer: SmtpPeer) -> None:
    for rcpt in TO:
        smtp_peer.handler.refuse[rcpt] = "550 5.1.1 No such user"
    outcome = await mailer(smtp_peer).send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 1, 550)
    assert "all recipients refused (SMTP 550: 5.1.1 No such user)" in outcome.reason


async def test_partly_refused_recipients(smtp_peer: SmtpPeer) -> None:
    smtp_peer.handler.refuse["lead@example.com"] = "550 5.1.1 No such user"
    outcome = await mailer(smtp_peer).send(make_notification())
    assert outcome.delivered
    assert outcome.reason == "accepted for 1 of 2 recipients; refused: lead@example.com (550)"


async def test_connection_refused_is_retried() -> None:
    channel = EmailChannel(
        to=TO,
        sender=SENDER,
        host="127.0.0.1",
        port=free_port(),
        starttls=False,
        retry=fast_retry(attempts=2),
        timeout=1.0,
    )
    outcome = await channel.send(make_notification())
    assert (outcome.delivered, outcome.attempts) == (False, 2)
    assert outcome.reason == "connection failed (Connection refused) (gave up after 2 attempts)"


async def test_the_whole_session_is_bounded_by_one_deadline() -> None:
    """A server that answers every step just within a per-step time-out cannot stretch the session."""
    step = 0.3

    async def slow_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(step)
            writer.write(b"220 slow.example ESMTP\r\n")
            await writer.drain()
            while line := await reader.readline():
                await asyncio.sleep(step)
                writer.write(b"221 bye\r\n" if line.upper().startswith(b"QUIT") else b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(slow_smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = EmailChannel(
        to=TO, sender=SENDER, host="127.0.0.1", port=port, starttls=False, retry=fast_retry(attempts=1), timeout=1.0
    )
    async with server:
        started = time.monotonic()
        outcome = await channel.send(make_notification())
        took = time.monotonic() - started
    # Greeting, EHLO, MAIL, RCPT x2, DATA, the message: ~2 s of steps of 0.3 s each.
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert outcome.reason == "timed out after 1s"
    assert took < 1.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"to": []}, "no recipients"),
        ({"to": ["not-an-address"]}, "recipient 'not-an-address'"),
        ({"sender": "x@y\r\nBcc: z@w"}, "sender"),
        ({"username": "u", "password": "p", "starttls": False}, "only sent over STARTTLS"),
        ({"username": "u", "starttls": True}, "both a username and a password"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"to": TO, "sender": SENDER, "host": "localhost", "starttls": False}
    values.update(kwargs)
    with pytest.raises(ChannelConfigError, match=match):
        EmailChannel(**values)


# --- STARTTLS and AUTH against a TLS-speaking peer ------------------------------------

PASSWORD = "s3cret-Passw0rd-never-shown"


def _self_signed(tmp: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, pem


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"notifier"
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SmtpPeer, bytes]]:
    cert, key, pem = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        yield SmtpPeer("127.0.0.1", port, handler), pem
    finally:
        controller.stop()


async def test_starttls_and_auth(tls_peer: tuple[SmtpPeer, bytes]) -> None:
    peer, pem = tls_peer
    peer.handler.reset()
    trust = ssl.create_default_context(cadata=pem.decode())
    channel = mailer(peer, starttls=True, username="notifier", password=PASSWORD, tls_context=trust)
    outcome = await channel.send(make_notification())
    assert outcome.delivered, outcome.reason
    assert len(peer.handler.mails) == 1


async def test_wrong_password_is_final_and_not_shown(
    tls_peer: tuple[SmtpPeer, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    peer, pem = tls_peer
    peer.handler.reset()
    trust = ssl.create_default_context(cadata=pem.decode())
    wrong = "Wr0ng-" + PASSWORD
    channel = mailer(peer, starttls=True, username="notifier", password=wrong, tls_context=trust)
    outcome = await channel.send(make_notification())
    assert (outcome.delivered, outcome.attempts, outcome.status_code) == (False, 1, 535)
    assert outcome.reason == "authentication failed (SMTP 535) (not retried)"
    assert wrong not in caplog.text and wrong not in repr(channel)
    assert peer.handler.mails == []


async def test_untrusted_certificate_is_final(tls_peer: tuple[SmtpPeer, bytes]) -> None:
    peer, _ = tls_peer
    outcome = await mailer(peer, starttls=True, username="notifier", password=PASSWORD).send(make_notification())
    assert (outcome.delivered, outcome.attempts) == (False, 1)
    assert outcome.reason.startswith("TLS error (CERTIFICATE_VERIFY_FAILED)")


async def test_server_requiring_starttls_refuses_plain(tls_peer: tuple[SmtpPeer, bytes]) -> None:
    peer, _ = tls_peer
    outcome = await mailer(peer, starttls=False).send(make_notification())
    assert not outcome.delivered and outcome.status_code == 530
