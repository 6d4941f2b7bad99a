"""The e-mail channel end to end against a real Dovecot (IMAP IDLE) and SMTP relay: a
customer's mail becomes a conversation, the agent's reply goes out threaded, the customer's
answer joins the same conversation, and restarts, resyncs, auto-replies, bounces and bad
credentials behave."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

import connectors.email.connector as email_connector
from config import load_settings
from connectors.base import HealthState
from connectors.email.client import ImapClient
from connectors.email.connector import EmailConnector
from gateway.app import Gateway
from gateway.store.records import ConversationFilter
from kernel.ids import ChannelId, ConversationId
from kernel.models import Conversation, MediaPart, Message, MessageStatus, TextPart
from tests.api.helpers import eventually
from tests.api.test_hours import closed_hours
from tests.conftest import ADMIN, AUTH
from tests.email.conftest import PASSWORD, Mailboxes, MailServer
from tests.email.helpers import crafted
from tests.media.images import png
from tests.media.uploads import upload

CHANNEL = ChannelId("mail")
Start = Callable[[str], Awaitable[Gateway]]


class Gateways:
    """Gateways on one data directory, so a restart sees what the last one stored."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[Gateway] = []

    async def start(self, toml: str) -> Gateway:
        path = self.tmp_path / f"omnigw-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(toml, encoding="utf-8")
        settings = load_settings(
            path, env={}, overrides={"server.data_dir": str(self.tmp_path / "data")}
        )
        gw = Gateway(settings, admin_token=ADMIN)
        await gw.start()
        self.running.append(gw)
        return gw

    async def stop(self, gw: Gateway) -> None:
        self.running.remove(gw)
        await gw.close_connections()
        await gw.stop()


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Gateways]:
    gws = Gateways(tmp_path)
    yield gws
    for gw in list(gws.running):
        await gws.stop(gw)


def connector(gw: Gateway) -> EmailConnector:
    conn = gw.connectors[CHANNEL]
    assert isinstance(conn, EmailConnector)
    return conn


async def connected(gw: Gateway, within: float = 10) -> None:
    async def check() -> bool:
        return connector(gw).health.state == HealthState.CONNECTED

    await eventually(check, within=within)


async def conversations(gw: Gateway) -> list[Conversation]:
    page = await gw.store.conversations.page(ConversationFilter(channel_id=CHANNEL), None, 100)
    return sorted(page.items, key=lambda c: c.id)


async def messages(gw: Gateway, conv_id: str) -> list[Message]:
    page = await gw.store.messages.page(ConversationId(conv_id), None, 100)
    return sorted(page.items, key=lambda m: m.id)


async def all_messages(gw: Gateway) -> list[Message]:
    out = []
    for conv in await conversations(gw):
        out += await messages(gw, conv.id)
    return out


def customer_mail(
    mb: Mailboxes,
    subject: str,
    body: str,
    *,
    to: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Nguyễn Văn An <{mb.customer}>"
    msg["To"] = to or mb.support
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="example.org")
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg.set_content(body)
    return msg


def ident(msg: EmailMessage) -> str:
    return str(msg["Message-ID"]).strip("<>")


class RawKept:
    """Records what the connector keeps raw instead of storing as messages."""

    def __init__(self, gw: Gateway) -> None:
        self.reasons: list[str] = []
        original = gw.pipeline.keep_raw

        async def spy(channel_id: ChannelId, kind: str, payload: Any, reason: str) -> None:
            self.reasons.append(reason)
            await original(channel_id, kind, payload, reason)

        gw.pipeline.keep_raw = spy  # type: ignore[method-assign]


async def reply_as_agent(client: TestClient, conv_id: str, text: str) -> str:  # type: ignore[type-arg]
    resp = await client.post(
        f"/v1/conversations/{conv_id}/messages", json={"text": text}, headers=AUTH
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def sent(gw: Gateway, message_id: str, within: float = 10) -> Message:
    async def check() -> Message | None:
        msg = await gw.store.messages.get(message_id)  # type: ignore[arg-type]
        return msg if msg is not None and msg.status != MessageStatus.PENDING else None

    msg: Message = await eventually(check, within=within)
    return msg


async def inbox(server: MailServer, user: str, count: int) -> list[EmailMessage]:
    async def check() -> list[EmailMessage] | None:
        found = await server.read_mailbox(user)
        return found if len(found) >= count else None

    found: list[EmailMessage] = await eventually(check, within=10)
    return found


# --- the whole round trip ------------------------------------------------------------------


async def test_mail_round_trip_threaded_and_restart_safe(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    toml = mail_server.channel_toml(mailboxes.support)
    gw = await gateways.start(toml)
    await connected(gw)

    # 1. The customer writes; the IDLE connection hears of it at once (polling would take
    #    poll_interval_seconds = 60 s, the IDLE re-issue 30 s).
    first = customer_mail(
        mailboxes, "Đơn hàng #42 chưa tới", "Chào shop, đơn #42 của mình chưa tới."
    )
    t0 = time.monotonic()
    await mail_server.send(first, mailboxes.customer, mailboxes.support)

    async def one_conversation() -> list[Conversation] | None:
        found = await conversations(gw)
        return found if found else None

    conv = (await eventually(one_conversation, within=8))[0]
    assert time.monotonic() - t0 < 5
    assert conv.subject == "Đơn hàng #42 chưa tới"
    [inbound] = await messages(gw, conv.id)
    assert inbound.external_id == ident(first)
    assert inbound.parts[0] == TextPart(text="Chào shop, đơn #42 của mình chưa tới.")
    assert [getattr(p, "name", None) for p in inbound.parts[1:]] == ["original.eml"]
    contact = await gw.store.contacts.get(conv.contact_id)
    assert contact is not None and contact.email == mailboxes.customer
    assert contact.display_name == "Nguyễn Văn An"

    # 2. The agent answers through the API; it goes out by SMTP, threaded.
    async with TestClient(TestServer(gw.web_app())) as client:
        reply_id = await reply_as_agent(client, conv.id, "Dạ, shop kiểm tra ngay ạ.")
        out = await sent(gw, reply_id)
    assert out.status == MessageStatus.SENT, out.error
    assert out.external_id is not None and out.external_id.startswith(f"ogw.{conv.id}.")
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    assert delivered["Message-ID"] == f"<{out.external_id}>"
    assert delivered["In-Reply-To"] == f"<{ident(first)}>"
    assert f"<{ident(first)}>" in delivered["References"]
    assert delivered["Subject"] == "Re: Đơn hàng #42 chưa tới"
    assert delivered["From"].addresses[0].display_name == "Cửa hàng Hoa Mai"
    assert delivered["From"].addresses[0].addr_spec == mailboxes.support
    assert delivered["Auto-Submitted"] is None
    body = delivered.get_body(("plain",))
    assert body is not None and "Dạ, shop kiểm tra ngay ạ." in body.get_content()

    # 3. Restart: the checkpoint holds, nothing is read or sent twice.
    await gateways.stop(gw)
    gw = await gateways.start(toml)
    await connected(gw)
    await asyncio.sleep(1.0)  # a resync, if there wrongly were one, would be done by now
    assert len(await all_messages(gw)) == 2
    # The conversation is closed meanwhile: only threading can bring the answer back to it.
    await gw.assignments.resolve(ConversationId(conv.id))

    # 4. The customer answers our reply from their client (quoting it).
    answer = customer_mail(
        mailboxes,
        "Re: Đơn hàng #42 chưa tới",
        "Cảm ơn shop nhiều!\n\nOn Mon, 5 Jan 2026 at 10:00, Cửa hàng Hoa Mai "
        f"<{mailboxes.support}> wrote:\n> Dạ, shop kiểm tra ngay ạ.\n",
        in_reply_to=out.external_id,
        references=[ident(first), out.external_id],
    )
    await mail_server.send(answer, mailboxes.customer, mailboxes.support)

    async def three() -> list[Message] | None:
        found = await messages(gw, conv.id)
        return found if len(found) == 3 else None

    thread = await eventually(three, within=8)
    assert thread[2].external_id == ident(answer)
    assert thread[2].parts[0] == TextPart(text="Cảm ơn shop nhiều!")  # quote cut off
    assert thread[2].reply_to == out.id
    again = await gw.store.conversations.get(ConversationId(conv.id))
    assert again is not None and again.status != "resolved"  # reopened

    # 5. The same subject without threading headers is a new conversation, though the
    #    customer's first one is still open: each mail thread is its own conversation.
    lookalike = customer_mail(mailboxes, "Re: Đơn hàng #42 chưa tới", "Một câu hỏi khác.")
    await mail_server.send(lookalike, mailboxes.customer, mailboxes.support)

    async def two_conversations() -> list[Conversation] | None:
        found = await conversations(gw)
        return found if len(found) == 2 else None

    convs = await eventually(two_conversations, within=8)
    assert [c.status != "resolved" for c in convs] == [True, True]
    assert convs[0].contact_id == convs[1].contact_id
    assert len(await all_messages(gw)) == 4
    assert len(await mail_server.read_mailbox(mailboxes.customer)) == 1  # nothing resent


# --- stopping ------------------------------------------------------------------------------


class StalledServer(ImapClient):
    """Hears nothing more from the server once its IDLE is sent (early) or acknowledged: to
    the client, a server too loaded to answer DONE or LOGOUT before the next cancel."""

    early = False
    idling: ClassVar[list[StalledServer]] = []

    async def idle(self, reissue: float) -> bool:
        protocol = self.imap.protocol
        hear = protocol.data_received
        self.socket = protocol.transport.get_extra_info("socket")
        self.stalled = asyncio.Event()
        if self.early:
            self.stalled.set()

        def data_received(data: bytes) -> None:
            if not self.stalled.is_set():
                hear(data)
                if data.startswith(b"+"):  # the server's "+ idling"
                    self.stalled.set()

        protocol.data_received = data_received
        self.idling.append(self)
        return await super().idle(reissue)


@pytest.mark.parametrize("early", [False, True], ids=["idle-acknowledged", "idle-starting"])
async def test_a_gateway_stopped_while_idle_leaves_no_socket_open(
    mail_server: MailServer,
    mailboxes: Mailboxes,
    gateways: Gateways,
    monkeypatch: pytest.MonkeyPatch,
    early: bool,
) -> None:
    monkeypatch.setattr(StalledServer, "early", early)
    monkeypatch.setattr(StalledServer, "idling", [])
    monkeypatch.setattr(email_connector, "ImapClient", StalledServer)
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))

    async def stalled() -> StalledServer | None:
        found = StalledServer.idling
        if found and found[0].stalled.is_set() and found[0].imap.has_pending_idle():
            return found[0]
        return None

    client = await eventually(stalled, within=10)
    # DONE and LOGOUT go unanswered, and the stop cancels again while they wait. The socket
    # is closed when the stop returns, not when the garbage collector finds it (a
    # ResourceWarning then, in whichever test runs).
    await gateways.stop(gw)
    assert client.socket.fileno() == -1


# --- what never opens a conversation -------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


async def test_auto_replies_bulk_and_own_mail_are_kept_raw(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    kept = RawKept(gw)
    await connected(gw)
    for name in ("auto_reply.eml", "outlook_oof.eml", "bulk_list.eml"):
        await mail_server.send(
            (FIXTURES / name).read_bytes(), mailboxes.customer, mailboxes.support
        )
    own = customer_mail(mailboxes, "loop", "our own mail coming back")
    own.replace_header("From", mailboxes.support)
    await mail_server.send(own, mailboxes.support, mailboxes.support)
    marker = customer_mail(mailboxes, "real question", "Có ai không?")
    await mail_server.send(marker, mailboxes.customer, mailboxes.support)

    async def one() -> list[Conversation] | None:
        found = await conversations(gw)
        return found or None

    [conv] = await eventually(one, within=8)  # UIDs are taken in order: the others are done
    assert [m.external_id for m in await messages(gw, conv.id)] == [ident(marker)]
    assert len(kept.reasons) == 4
    assert "auto reply: Auto-Submitted" in kept.reasons[0]
    assert "X-Auto-Response-Suppress" in kept.reasons[1]
    assert "bulk" in kept.reasons[2]
    assert "own address" in kept.reasons[3]


async def test_a_mail_of_too_many_parts_is_kept_raw_unparsed(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    kept = RawKept(gw)
    await connected(gw)
    # The reported attack: 2 MB, 60,000 parts, 10-20 s of parsing (under max_message_bytes).
    await mail_server.send(crafted(60_000), mailboxes.customer, mailboxes.support)
    marker = customer_mail(mailboxes, "after it", "Câu hỏi thật.")
    await mail_server.send(marker, mailboxes.customer, mailboxes.support)
    [conv] = await eventually(lambda: conversations(gw), within=15)
    assert [m.external_id for m in await messages(gw, conv.id)] == [ident(marker)]
    assert kept.reasons == ["not parsed: 60001 MIME parts, over max_message_parts (500)"]


async def test_a_bounce_marks_the_reply_failed(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    kept = RawKept(gw)
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "hi", "hello"), mailboxes.customer, mailboxes.support
    )
    [conv] = await eventually(lambda: conversations(gw), within=8)
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Chào bạn"))
    assert out.status == MessageStatus.SENT and out.external_id
    dsn = (FIXTURES / "bounce_dsn.eml").read_bytes()
    dsn = dsn.replace(b"original-outbound-1@shop.example", out.external_id.encode())
    await mail_server.send(dsn, "mailer-daemon@mx.shop.example", mailboxes.support)

    async def failed() -> Message | None:
        msg = await gw.store.messages.get(out.id)
        return msg if msg is not None and msg.status == MessageStatus.FAILED else None

    bounced = await eventually(failed, within=8)
    assert bounced.error is not None and bounced.error.code == "bounced"
    assert "5.1.1" in bounced.error.reason and not bounced.error.retryable
    assert len(await conversations(gw)) == 1
    assert any("1 sent message(s) marked" in r for r in kept.reasons)


# --- resync, flags, polling --------------------------------------------------------------


async def test_uidvalidity_change_resyncs_without_duplicates(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    toml = mail_server.channel_toml(mailboxes.support).replace(
        "initial_sync_days = 0", "initial_sync_days = 1"
    )
    gw = await gateways.start(toml)
    await connected(gw)
    first = customer_mail(mailboxes, "one", "first message")
    await mail_server.send(first, mailboxes.customer, mailboxes.support)
    await eventually(lambda: all_messages(gw), within=8)
    key = connector(gw).checkpoint_key

    async def advanced() -> dict[str, int] | None:  # the checkpoint moves after the store
        state = await gw.store.channel_state.load(CHANNEL, key)
        return state if state and state["last_uid"] >= 1 else None

    real = await eventually(advanced, within=5)
    # The server renumbered the folder (a restore, a migration): the saved UIDs mean nothing.
    await gw.store.channel_state.save(
        CHANNEL, key, {"uidvalidity": real["uidvalidity"] - 7, "last_uid": 99}
    )
    await gateways.stop(gw)
    gw = await gateways.start(toml)
    kept = RawKept(gw)
    await connected(gw)
    second = customer_mail(mailboxes, "two", "second message")
    await mail_server.send(second, mailboxes.customer, mailboxes.support)

    async def both() -> list[Message] | None:
        found = await all_messages(gw)
        return found if len(found) >= 2 else None

    found = await eventually(both, within=8)
    assert sorted(m.external_id or "" for m in found) == sorted([ident(first), ident(second)])
    resynced = {"uidvalidity": real["uidvalidity"], "last_uid": real["last_uid"] + 1}

    async def checkpointed() -> dict[str, int] | None:  # saved just after the store
        state = await gw.store.channel_state.load(CHANNEL, key)
        return state if state == resynced else None

    await eventually(checkpointed, within=5)
    assert kept.reasons == []
    # The first mail, read again in the resync, kept no second copy of its files.
    kept_files = list((gw.settings.server.data_dir / "attachments").glob("*/att_*"))
    assert len(kept_files) == 2  # one original.eml per message


async def flags(server: MailServer, user: str) -> list[str]:
    async with server.session(user) as client:
        r = await client.imap.fetch("1:*", "(FLAGS)")
    return [line.decode() for line in r.lines[:-1] if isinstance(line, bytes)]


@pytest.mark.parametrize("mark_seen", [False, True])
async def test_peek_or_mark_seen_and_polling_without_idle(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways, mark_seen: bool
) -> None:
    extra = f"idle = false\npoll_interval_seconds = 1\nmark_seen = {str(mark_seen).lower()}"
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support, extra))
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "hi", "hello"), mailboxes.customer, mailboxes.support
    )
    await eventually(lambda: all_messages(gw), within=8)

    async def flagged() -> list[str] | None:
        found = await flags(mail_server, mailboxes.support)
        return found if found and (("\\Seen" in found[0]) == mark_seen) else None

    await eventually(flagged, within=5)


# --- TLS, credentials, secrets -----------------------------------------------------------


async def test_imap_over_tls_and_smtp_with_starttls_and_auth(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    tls = {"username": mailboxes.support, "password": PASSWORD, "ca_file": mail_server.cert}
    toml = mail_server.channel_toml(
        mailboxes.support,
        imap={"port": mail_server.imaps_port, "security": "tls", **tls},
        smtp={"security": "starttls", **tls},
    )
    gw = await gateways.start(toml)
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "tls", "qua TLS"), mailboxes.customer, mailboxes.support
    )
    [conv] = await eventually(lambda: conversations(gw), within=8)
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Đã nhận"))
    assert out.status == MessageStatus.SENT, out.error
    await inbox(mail_server, mailboxes.customer, 1)


async def test_imap_starttls_is_used_when_asked(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    toml = mail_server.channel_toml(
        mailboxes.support, imap={"security": "starttls", "ca_file": mail_server.cert}
    )
    gw = await gateways.start(toml)
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "s", "starttls"), mailboxes.customer, mailboxes.support
    )
    await eventually(lambda: all_messages(gw), within=8)


async def test_bad_imap_password_shows_on_readyz_and_nowhere_else(
    mail_server: MailServer,
    mailboxes: Mailboxes,
    gateways: Gateways,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wr0ng-imap-pa55word"
    toml = mail_server.channel_toml(mailboxes.support, imap={"password": wrong})
    gw = await gateways.start(toml)

    async def refused() -> bool:
        return connector(gw).health.state == HealthState.BAD_CREDENTIALS

    await eventually(refused, within=8)
    async with TestClient(TestServer(gw.web_app())) as client:
        ready = await (await client.get("/readyz")).json()
        listed = await (await client.get("/v1/channels", headers=AUTH)).text()
    assert ready["channels"]["mail"]["state"] == "BAD_CREDENTIALS"
    everything = repr(gw.settings) + str(ready) + listed + caplog.text
    assert wrong not in everything
    assert PASSWORD not in repr(gw.settings)


async def test_smtp_auth_failure_holds_messages_until_the_login_works(
    mail_server: MailServer,
    mailboxes: Mailboxes,
    gateways: Gateways,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(email_connector, "SMTP_RECHECK_INITIAL", 0.2)
    wrong = "Wr0ng-smtp-pa55word"
    toml = mail_server.channel_toml(
        mailboxes.support, smtp={"username": mailboxes.support, "password": wrong}
    )
    gw = await gateways.start(toml)
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "hi", "hello"), mailboxes.customer, mailboxes.support
    )
    [conv] = await eventually(lambda: conversations(gw), within=8)
    async with TestClient(TestServer(gw.web_app())) as client:
        reply_id = await reply_as_agent(client, conv.id, "xin chào")

        async def refused() -> bool:
            return connector(gw).health.state == HealthState.BAD_CREDENTIALS

        await eventually(refused, within=8)
        ready = await (await client.get("/readyz")).json()
    assert ready["channels"]["mail"]["state"] == "BAD_CREDENTIALS"

    # The channel's state changes as the login fails; the send path records the deferral
    # on the message just after.
    async def deferred() -> Any:
        found = await gw.store.messages.get(reply_id)  # type: ignore[arg-type]
        return found if found is not None and found.error is not None else None

    held = await eventually(deferred, within=8)
    assert held is not None and held.status == MessageStatus.PENDING
    assert held.error is not None and held.error.code == "auth_failed"
    assert wrong not in held.error.reason
    # The admin fixes the password: the periodic login check brings the channel back.
    conn = connector(gw)
    fixed = conn.settings.smtp.model_copy(update={"password": SecretStr(PASSWORD)})
    conn.settings = conn.settings.model_copy(update={"smtp": fixed})
    await connected(gw, within=8)


async def test_plus_address_reply_to_joins_without_threading_headers(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(
        mail_server.channel_toml(mailboxes.support, "plus_address_reply_to = true")
    )
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "hỏi", "câu hỏi"), mailboxes.customer, mailboxes.support
    )
    [conv] = await eventually(lambda: conversations(gw), within=8)
    async with TestClient(TestServer(gw.web_app())) as client:
        await sent(gw, await reply_as_agent(client, conv.id, "trả lời"))
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    reply_to = delivered["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith(mailboxes.support.split("@")[0] + "+ogw.")
    await gw.assignments.resolve(ConversationId(conv.id))
    # A client that drops In-Reply-To/References but answers to Reply-To.
    answer = customer_mail(mailboxes, "hỏi lại", "vẫn chưa rõ", to=reply_to)
    await mail_server.send(answer, mailboxes.customer, reply_to)

    async def joined() -> list[Message] | None:
        found = await messages(gw, conv.id)
        return found if len(found) == 3 else None

    await eventually(joined, within=8)
    assert len(await conversations(gw)) == 1


async def test_attachments_in_and_out(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    await connected(gw)
    raw = (FIXTURES / "attachments.eml").read_bytes()
    raw = raw.replace(b"hung@example.vn", mailboxes.customer.encode())
    await mail_server.send(raw, mailboxes.customer, mailboxes.support)
    [conv] = await eventually(lambda: conversations(gw), within=8)
    [inbound] = await messages(gw, conv.id)
    files = {p.name: p for p in inbound.parts if isinstance(p, MediaPart)}
    assert set(files) == {"photo.png", "hoá đơn.pdf", "attachment-3.bin", "message.html"} | {
        "original.eml"
    }
    photo, page = files["photo.png"], files["message.html"]
    assert photo.type == "image" and photo.url and page.url
    async with TestClient(TestServer(gw.web_app())) as client:
        html = await (await client.get(page.url, headers=AUTH)).text()
        assert f'src="{photo.url}"' in html  # the inline image points at the stored file
        assert "cid:" not in html
        # The agent sends the customer's photo back with a note.
        resp = await client.post(
            f"/v1/conversations/{conv.id}/messages",
            json={"parts": [{"type": "text", "text": "Ảnh này ạ?"}, photo.model_dump()]},
            headers=AUTH,
        )
        assert resp.status == 202, await resp.text()
        out = await sent(gw, str((await resp.json())["id"]))
    assert out.status == MessageStatus.SENT, out.error
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    [attached] = list(delivered.iter_attachments())
    assert attached.get_filename() == "photo.png"
    assert attached.get_content().startswith(b"\x89PNG")


# --- Cc ------------------------------------------------------------------------------------


async def test_replies_keep_the_customers_cc(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    friend = mail_server.mailboxes().customer  # a real mailbox: the relay refuses others
    toml = mail_server.channel_toml(mailboxes.support)
    gw = await gateways.start(toml)
    await connected(gw)
    first = customer_mail(mailboxes, "Đặt hàng cho công ty", "Anh Lan cùng theo dõi nhé.")
    # Our own address and the sender in Cc are never kept; the friend is.
    first["Cc"] = f"Chị Lan <{friend}>, Hỗ trợ <{mailboxes.support}>, {mailboxes.customer}"
    await mail_server.send(first, mailboxes.customer, mailboxes.support)
    [conv] = await eventually(lambda: conversations(gw), within=8)
    [received] = await messages(gw, conv.id)
    assert received.metadata == {"cc": [{"email": friend, "name": "Chị Lan"}]}

    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Dạ, shop gửi cả hai ạ."))
    assert out.status == MessageStatus.SENT, out.error
    [to_customer] = await inbox(mail_server, mailboxes.customer, 1)
    [to_friend] = await inbox(mail_server, friend, 1)
    for delivered in (to_customer, to_friend):
        assert [(a.display_name, a.addr_spec) for a in delivered["Cc"].addresses] == [
            ("Chị Lan", friend)
        ]
        assert delivered["Message-ID"] == f"<{out.external_id}>"
    assert [m["Subject"] for m in await mail_server.read_mailbox(mailboxes.support)] == [
        "Đặt hàng cho công ty"  # the customer's mail only: no copy of the reply to us
    ]

    # keep_cc = false: the reply goes to the customer alone.
    await gateways.stop(gw)
    gw = await gateways.start(
        toml.replace("initial_sync_days = 0", "keep_cc = false\ninitial_sync_days = 0")
    )
    await connected(gw)
    async with TestClient(TestServer(gw.web_app())) as client:
        alone = await sent(gw, await reply_as_agent(client, conv.id, "Chỉ gửi anh ạ."))
    assert alone.status == MessageStatus.SENT, alone.error
    second = (await inbox(mail_server, mailboxes.customer, 2))[1]
    assert second["Message-ID"] == f"<{alone.external_id}>" and second["Cc"] is None
    assert len(await mail_server.read_mailbox(friend)) == 1


async def test_an_agents_uploads_go_as_mail_attachments(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    await connected(gw)
    mail = EmailMessage()
    mail["From"], mail["To"] = mailboxes.customer, mailboxes.support
    mail["Subject"] = "Xin báo giá"
    mail["Message-ID"] = make_msgid(domain="example.org")
    mail.set_content("Shop gửi giúp mình báo giá và ảnh mẫu nhé.")
    await mail_server.send(mail, mailboxes.customer, mailboxes.support)
    [conv] = await eventually(lambda: conversations(gw), within=8)
    photo = png(12, 9)
    quote_pdf = b"%PDF-1.4\n% bao gia\n"
    async with TestClient(TestServer(gw.web_app())) as client:
        image = await upload(client, photo, "ảnh mẫu.png", "image/png")
        pdf = await upload(client, quote_pdf, "báo giá.pdf", "application/pdf")
        resp = await client.post(
            f"/v1/conversations/{conv.id}/messages",
            json={
                "parts": [
                    {"type": "text", "text": "Gửi bạn báo giá và ảnh mẫu ạ."},
                    {"type": "file", "attachment_id": pdf["id"]},
                    {"type": "image", "attachment_id": image["id"]},
                ]
            },
            headers=AUTH,
        )
        assert resp.status == 202, await resp.text()
        out = await sent(gw, str((await resp.json())["id"]))
    assert out.status == MessageStatus.SENT, out.error
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    attached = {a.get_filename(): a for a in delivered.iter_attachments()}
    assert set(attached) == {"báo giá.pdf", "ảnh mẫu.png"}
    assert attached["báo giá.pdf"].get_content() == quote_pdf
    assert attached["báo giá.pdf"].get_content_type() == "application/pdf"
    assert attached["ảnh mẫu.png"].get_content() == photo
    body = delivered.get_body(preferencelist=("plain",))
    assert body is not None and "Gửi bạn báo giá và ảnh mẫu ạ." in body.get_content()


async def test_an_off_hours_reply_is_marked_auto_replied(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    hours, _opens = closed_hours(str(CHANNEL))
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support) + hours)
    await connected(gw)
    first = customer_mail(mailboxes, "Hỏi giờ mở cửa", "Shop còn mở không ạ?")
    await mail_server.send(first, mailboxes.customer, mailboxes.support)
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    # RFC 3834: an automatic answer, which the customer's own auto-responder must not answer
    assert delivered["Auto-Submitted"] == "auto-replied"
    assert delivered["In-Reply-To"] == f"<{ident(first)}>"
    assert "ngoài giờ làm việc" in delivered.get_body(("plain",)).get_content()
    await asyncio.sleep(0.5)
    assert len(await mail_server.read_mailbox(mailboxes.customer)) == 1
