"""The business starts an e-mail thread through the real Dovecot and SMTP relay: a new
thread with its own Message-ID and the given subject, the customer's answer threaded into
it, and addresses that are not addresses refused with nothing stored."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kernel.models import MessageStatus, TextPart
from tests.api.helpers import eventually
from tests.conftest import AUTH
from tests.email.conftest import Mailboxes, MailServer
from tests.email.test_mailbox import (
    CHANNEL,
    Gateways,
    connected,
    conversations,
    customer_mail,
    gateways,
    inbox,
    messages,
    sent,
)

__all__ = ["gateways"]  # the fixture, shared with test_mailbox

SUBJECT = "Xác nhận đơn hàng #77"


async def start(client: TestClient, body: dict[str, Any], status: int) -> Any:  # type: ignore[type-arg]
    resp = await client.post("/v1/conversations", json=body, headers=AUTH)
    answer = await resp.json()
    assert resp.status == status, answer
    return answer


async def test_a_new_thread_and_the_answer_joins_it(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    await connected(gw)
    async with TestClient(TestServer(gw.web_app())) as client:
        body = {
            "channel_id": CHANNEL,
            "to": {"email": mailboxes.customer.upper()},
            "subject": SUBJECT,
            "text": "Chào anh An, đơn #77 đã được xác nhận.",
        }
        started = await start(client, body, 201)
        conv, first = started["conversation"], started["message"]
        assert conv["subject"] == SUBJECT and conv["reply_window"]["state"] == "unlimited"
        out = await sent(gw, first["id"])
        assert out.status == MessageStatus.SENT, out.error
        [mail] = await inbox(mail_server, mailboxes.customer, 1)
        assert mail["Message-ID"] == f"<{out.external_id}>"
        assert mail["Subject"] == SUBJECT  # a new thread: no "Re:"
        assert mail["In-Reply-To"] is None and mail["References"] is None
        contact = await gw.store.contacts.get(conv["contact_id"])
        assert contact is not None and contact.email == mailboxes.customer

        # the customer answers it: the same conversation
        assert out.external_id is not None
        answer = customer_mail(
            mailboxes,
            f"Re: {SUBJECT}",
            "Cảm ơn shop!",
            in_reply_to=out.external_id,
            references=[out.external_id],
        )
        await mail_server.send(answer, mailboxes.customer, mailboxes.support)

        async def two() -> list[Any] | None:
            found = await messages(gw, conv["id"])
            return found if len(found) == 2 else None

        thread = await eventually(two, within=8)
        assert thread[1].parts[0] == TextPart(text="Cảm ơn shop!")
        assert thread[1].reply_to == out.id
        assert len(await conversations(gw)) == 1

        # the agent's next reply is threaded as usual
        resp = await client.post(
            f"/v1/conversations/{conv['id']}/messages", json={"text": "Dạ vâng ạ"}, headers=AUTH
        )
        assert resp.status == 202
        second = await sent(gw, (await resp.json())["id"])
        mails = await inbox(mail_server, mailboxes.customer, 2)
        follow = next(m for m in mails if m["Message-ID"] == f"<{second.external_id}>")
        assert follow["Subject"] == f"Re: {SUBJECT}"
        assert f"<{answer['Message-ID'].strip('<>')}>" == follow["In-Reply-To"]

        # each e-mail thread is its own conversation: another start is a new thread, even
        # while the first is open
        again = await start(client, {**body, "subject": "Đơn #78"}, 201)
        assert again["conversation"]["id"] != conv["id"]
        assert again["conversation"]["contact_id"] == conv["contact_id"]
        third = await sent(gw, again["message"]["id"])
        mails = await inbox(mail_server, mailboxes.customer, 3)
        new = next(m for m in mails if m["Message-ID"] == f"<{third.external_id}>")
        assert new["Subject"] == "Đơn #78" and new["In-Reply-To"] is None


async def test_hostile_input_gets_a_clear_4xx_and_nothing_is_stored(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    seq = await gw.store.events.last_seq()
    base = {"channel_id": CHANNEL, "text": "Xin chào"}
    async with TestClient(TestServer(gw.web_app())) as client:
        for to in (
            "not-an-address",
            "an@example.org\r\nBcc: victim@example.org",
            "Nguyễn Văn An <an@example.org>",
            "an@example.org, other@example.org",
            "an@@example.org",
            "@example.org",
            "an@example",
            "x" * 400 + "@example.org",
        ):
            bad = await start(client, {**base, "to": {"email": to}}, 400)
            assert bad["error"]["code"] in ("bad_request", "validation_error"), bad
            assert "e-mail address" in bad["error"]["message"] or bad["error"]["details"]
        for body, status, code in (
            (
                {**base, "to": {"email": mailboxes.customer}, "subject": "a\r\nBcc: x@y.z"},
                400,
                None,
            ),
            ({**base, "to": {}}, 400, None),
            ({**base, "to": {"email": mailboxes.customer, "phone": "0912345678"}}, 400, None),
            ({**base, "contact_id": "ct_x", "to": {"email": mailboxes.customer}}, 400, None),
            ({"channel_id": CHANNEL, "to": {"email": mailboxes.customer}}, 400, None),
            (
                {**base, "channel_id": "no-such-channel", "to": {"email": "a@b.org"}},
                404,
                "channel_not_found",
            ),
            ({**base, "contact_id": "ct_01NOSUCHCONTACT"}, 404, "contact_not_found"),
            ({**base, "to": {"phone": "0912345678"}}, 422, "unsupported_address"),
            ({**base, "to": {"external_id": "visitor-1"}}, 422, "unsupported_address"),
            (
                {
                    **base,
                    "to": {"email": mailboxes.customer},
                    "parts": [{"type": "template", "name": "order_confirmed", "data": {}}],
                },
                400,
                None,
            ),
            (
                {
                    "channel_id": CHANNEL,
                    "to": {"email": mailboxes.customer},
                    "parts": [{"type": "template", "name": "order_confirmed", "data": {}}],
                },
                422,
                "unsupported_part",
            ),
        ):
            bad = await start(client, body, status)
            if code is not None:
                assert bad["error"]["code"] == code, bad
    assert await conversations(gw) == []
    events = await gw.store.events.after(seq, 100)
    assert [e.type for e in events if not e.type.startswith("channel.")] == []
