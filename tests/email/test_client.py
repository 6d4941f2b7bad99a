"""The network edge on its own: IDLE push, re-issue and loss against the real Dovecot, and
SMTP replies mapped to the send path's error classes (the relay, and a scripted aiosmtpd
for the codes the relay never gives)."""

from __future__ import annotations

import asyncio
import email
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from connectors.email.client import (
    ImapAuthError,
    ImapClient,
    ImapConfigError,
    check_smtp,
    send_mail,
)
from connectors.email.settings import ImapSettings, SmtpSettings
from connectors.errors import (
    AuthError,
    PermanentError,
    RecipientUnavailable,
    TransientError,
)
from tests.email.conftest import PASSWORD, Mailboxes, MailServer


def note(sender: str, to: str, subject: str = "hi") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content("body")
    return msg


async def open_client(server: MailServer, user: str, **kw: Any) -> ImapClient:
    settings = ImapSettings(
        host="127.0.0.1",
        port=server.imap_port,
        security="none",
        username=user,
        password=PASSWORD,
        **kw,
    )
    client = ImapClient(settings, timeout=5, keepalive=10)
    try:
        await client.open()
        await client.select()
    except BaseException:
        await client.close()
        raise
    return client


async def test_idle_push_reissue_and_loss(mail_server: MailServer, mailboxes: Mailboxes) -> None:
    client = await open_client(mail_server, mailboxes.support)
    try:
        assert client.supports_idle
        # nothing happens: IDLE ends on its own at the re-issue time, the session lives on
        t0 = time.monotonic()
        assert await client.idle(0.5) is False
        assert 0.4 < time.monotonic() - t0 < 3
        await client.noop()
        # new mail is pushed while idle
        sending = asyncio.create_task(
            mail_server.send(
                note(mailboxes.customer, mailboxes.support), mailboxes.customer, mailboxes.support
            )
        )
        t0 = time.monotonic()
        assert await client.idle(20) is True
        assert time.monotonic() - t0 < 5
        await sending
        [uid] = await client.uids_after(0)
        raw = await client.fetch(uid)
        assert raw is not None and b"Subject: hi" in raw
        assert await client.size_of(uid) == len(raw)
        assert await client.uids_after(uid) == []  # "n:*" quirk filtered
        # the connection dies while idle: the wait ends at once, not at the re-issue time
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, client.imap.protocol.transport.close)
        t0 = time.monotonic()
        with pytest.raises(ConnectionError):
            await client.idle(30)
        assert time.monotonic() - t0 < 5
    finally:
        await client.close()


async def test_a_missing_folder_is_a_config_error(
    mail_server: MailServer, mailboxes: Mailboxes
) -> None:
    with pytest.raises(ImapConfigError):
        await open_client(mail_server, mailboxes.support, folder="No Such Folder")


# --- SMTP against the real relay -----------------------------------------------------------


def relay(server: MailServer, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=server.smtp_port, **{"security": "none", **kw})


async def test_smtp_outcomes_on_the_relay(mail_server: MailServer, mailboxes: Mailboxes) -> None:
    ok = relay(mail_server)
    await send_mail(
        ok, note(mailboxes.support, mailboxes.customer), sender=mailboxes.support,
        recipients=[mailboxes.customer], timeout=5,
    )  # fmt: skip
    with pytest.raises(RecipientUnavailable) as unknown:
        await send_mail(
            ok, note(mailboxes.support, "nobody@example.test"), sender=mailboxes.support,
            recipients=["nobody@example.test"], timeout=5,
        )  # fmt: skip
    assert "5.1.1" in unknown.value.reason
    wrong = relay(mail_server, username=mailboxes.support, password="nope-not-it")
    with pytest.raises(AuthError) as auth:
        await check_smtp(wrong, 5)
    assert "nope-not-it" not in str(auth.value)
    await check_smtp(relay(mail_server, username=mailboxes.support, password=PASSWORD), 5)
    tls = relay(
        mail_server,
        security="starttls",
        username=mailboxes.support,
        password=PASSWORD,
        ca_file=mail_server.cert,
    )
    await check_smtp(tls, 5)
    untrusted = relay(mail_server, security="starttls")  # the self-signed cert is not trusted
    with pytest.raises(TransientError):
        await check_smtp(untrusted, 5)


async def test_nothing_listening_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = SmtpSettings(host="127.0.0.1", port=port, security="none")
    with pytest.raises(TransientError):
        await send_mail(closed, note("a@b.example", "c@d.example"), sender="a@b.example",
                        recipients=["c@d.example"], timeout=2)  # fmt: skip


# --- SMTP replies the relay never gives -----------------------------------------------------


class Scripted:
    """An SMTP server whose RCPT and DATA answers are set by the recipient's local part."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        local = address.split("@")[0]
        if local.startswith("rcpt"):
            return f"{local[4:7]} {local[7:].replace('-', '.')} scripted refusal"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        local = envelope.rcpt_tos[0].split("@")[0]
        if local.startswith("data"):
            return f"{local[4:7]} {local[7:].replace('-', '.')} scripted refusal"
        return "250 OK"


@pytest.fixture(scope="module")
def scripted_smtp() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Scripted(), hostname="127.0.0.1", port=port)
    ctl.start()
    yield port
    ctl.stop()


@pytest.mark.parametrize(
    ("recipient", "error", "code"),
    [
        ("rcpt5505-1-1", RecipientUnavailable, "recipient_unavailable"),
        ("rcpt5535-7-1", RecipientUnavailable, "recipient_unavailable"),
        ("rcpt4524-2-2", TransientError, "smtp_temporary"),
        ("data5545-7-1", PermanentError, "smtp_rejected"),
        ("data5525-2-2", PermanentError, "smtp_rejected"),
        ("data4514-3-0", TransientError, "smtp_temporary"),
        ("data5505-1-1", RecipientUnavailable, "recipient_unavailable"),
    ],
)
async def test_smtp_codes_map_to_error_classes(
    scripted_smtp: int, recipient: str, error: type[Exception], code: str
) -> None:
    settings = SmtpSettings(host="127.0.0.1", port=scripted_smtp, security="none")
    to = f"{recipient}@example.org"
    with pytest.raises(error) as exc:
        await send_mail(settings, note("a@shop.example", to), sender="a@shop.example",
                        recipients=[to], timeout=5)  # fmt: skip
    assert type(exc.value) is error
    assert exc.value.code == code  # type: ignore[attr-defined]


async def test_passwords_stay_out_of_debug_logs(
    mail_server: MailServer, mailboxes: Mailboxes, caplog: pytest.LogCaptureFixture
) -> None:
    secret = 'Qu"ote\\d-pa55'
    settings = ImapSettings(
        host="127.0.0.1",
        port=mail_server.imap_port,
        security="none",
        username=mailboxes.support,
        password=secret,
    )
    client = ImapClient(settings, timeout=5, keepalive=10)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ImapAuthError) as exc:
            await client.open()
        await client.close()
    assert "Sending" in caplog.text  # the library did log its traffic...
    assert 'Qu"ote' not in caplog.text and 'Qu\\\\"ote' not in caplog.text  # ...but not this
    assert secret not in str(exc.value) and secret not in repr(settings)


class Keep:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        return "250 OK"


async def test_smtp_over_implicit_tls(mail_server: MailServer) -> None:
    """security = "tls": TLS from the first byte (port 465 style), certificate checked."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(mail_server.cert, mail_server.dir / "tls.key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    keep = Keep()
    ctl = Controller(keep, hostname="127.0.0.1", port=port, ssl_context=context)
    ctl.start()
    try:
        trusted = SmtpSettings(
            host="127.0.0.1", port=port, security="tls", ca_file=mail_server.cert
        )
        await send_mail(trusted, note("a@shop.example", "khach@example.org", "Xin chào"),
                        sender="a@shop.example", recipients=["khach@example.org"],
                        timeout=5)  # fmt: skip
        [got] = keep.received
        assert email.message_from_bytes(got, policy=policy.default)["Subject"] == "Xin chào"
        untrusted = SmtpSettings(host="127.0.0.1", port=port, security="tls")
        with pytest.raises(TransientError):
            await check_smtp(untrusted, 5)
        plain = SmtpSettings(host="127.0.0.1", port=port, security="none")
        with pytest.raises(TransientError):  # no TLS spoken to a TLS port: not delivered
            await send_mail(plain, note("a@shop.example", "khach@example.org"),
                            sender="a@shop.example", recipients=["khach@example.org"],
                            timeout=2)  # fmt: skip
        assert len(keep.received) == 1
    finally:
        ctl.stop()
