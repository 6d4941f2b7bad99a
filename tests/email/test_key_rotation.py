"""E-mail threading across a key rotation, against the real Dovecot and SMTP relay. A
customer who answers to the plus-address Reply-To of a reply (no threading headers: only
the address's signature names the conversation) joins its conversation while the key
that signed it is listed, after the new one; once it is removed the address names
nothing, and those signed with the new key keep threading."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from gateway.keys import KEY_CHECK, key_check, rotate
from kernel.ids import ConversationId
from kernel.models import Conversation, Message, MessageStatus
from kernel.secrets import Keyring
from tests.api.helpers import eventually
from tests.email.conftest import Mailboxes, MailServer
from tests.email.test_mailbox import (
    Gateways,
    connected,
    conversations,
    customer_mail,
    inbox,
    messages,
    reply_as_agent,
    sent,
)
from tests.email.test_mailbox import gateways as gateways

OLD = "old-secret-key-of-the-mail-test-0123456789abcdef"
NEW = "new-secret-key-of-the-mail-test-0123456789abcdef"


async def _agent_replies(gw: Gateway, conv_id: str, text: str) -> Message:
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv_id, text))
    assert out.status == MessageStatus.SENT, out.error
    return out


async def test_plus_addresses_of_the_old_key_thread_until_it_is_removed(
    mail_server: MailServer,
    mailboxes: Mailboxes,
    gateways: Gateways,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    toml = mail_server.channel_toml(mailboxes.support, "plus_address_reply_to = true")

    async def count(n: int) -> list[Conversation] | None:
        found = await conversations(gw)
        return found if len(found) == n else None

    async def in_thread(conv_id: str, n: int) -> list[Message] | None:
        found = await messages(gw, conv_id)
        return found if len(found) == n else None

    async def write_to(address: str, text: str) -> None:
        mail = customer_mail(mailboxes, "Re: đơn #7", text, to=address)
        await mail_server.send(mail, mailboxes.customer, address)

    # The old key alone: the agent's reply carries a Reply-To the old key signed.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", OLD)
    gw = await gateways.start(toml)
    await connected(gw)
    await write_to(mailboxes.support, "Đơn #7 giao khi nào ạ?")
    [conv] = await eventually(lambda: count(1), within=8)
    await _agent_replies(gw, conv.id, "Dạ mai giao ạ.")
    [delivered] = await inbox(mail_server, mailboxes.customer, 1)
    by_old = delivered["Reply-To"].addresses[0].addr_spec
    await gateways.stop(gw)

    # The new key first, the old one after: an answer to the old address joins.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", f"{NEW},{OLD}")
    gw = await gateways.start(toml)
    await connected(gw)
    await gw.assignments.resolve(ConversationId(conv.id))  # only the address brings it back
    await write_to(by_old, "Cảm ơn shop!")
    await eventually(lambda: in_thread(conv.id, 3), within=8)
    await _agent_replies(gw, conv.id, "Dạ vâng ạ.")
    replies = await inbox(mail_server, mailboxes.customer, 2)
    by_new = replies[1]["Reply-To"].addresses[0].addr_spec
    assert by_new != by_old  # signed with the new key
    done = await rotate(gw.store, Keyring([NEW.encode(), OLD.encode()]), {})
    assert done.complete
    assert await gw.store.channel_state.load(*KEY_CHECK) == [key_check(NEW.encode())]
    await gateways.stop(gw)

    # The new key alone: the old address names nothing (a new conversation); the new
    # key's still brings the answer back to its conversation.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", NEW)
    gw = await gateways.start(toml)
    await connected(gw)
    await gw.assignments.resolve(ConversationId(conv.id))
    await write_to(by_old, "Còn một câu nữa.")
    found = await eventually(lambda: count(2), within=8)
    [other] = [c for c in found if c.id != conv.id]
    await gw.assignments.resolve(ConversationId(other.id))
    await write_to(by_new, "Và đây là câu cuối.")
    thread = await eventually(lambda: in_thread(conv.id, 5), within=8)
    assert "câu cuối" in str(thread[-1].parts[0])
    assert len(await conversations(gw)) == 2
