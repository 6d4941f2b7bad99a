"""One customer, one story: the same person by e-mail (a real Dovecot and SMTP relay) and
on the website chat becomes one contact as soon as the site vouches for the address; a
value nothing vouches for is only suggested; an unmerge undoes the link."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import GatewayFactory
from tests.email.conftest import Mailboxes, MailServer
from tests.email.test_mailbox import connected, customer_mail

SECRET = "identity-secret-for-the-shop"

CHATS = f"""
[[channels]]
id = "chat"
type = "webchat"
identity_secret = "{SECRET}"

[[channels]]
id = "chat-open"
type = "webchat"
"""


async def test_signed_identify_and_mail_are_one_contact_and_unmerge_undoes_it(
    mail_server: MailServer, mailboxes: Mailboxes, make_gateway: GatewayFactory
) -> None:
    gw = await make_gateway(mail_server.channel_toml(mailboxes.support) + CHATS)
    await connected(gw)
    async with TestClient(TestServer(gw.web_app())) as client:
        # 1. The customer writes by e-mail: the sender's address is verified.
        mail = customer_mail(mailboxes, "Đơn hàng #7", "Chào shop, đơn #7 đâu rồi?")
        await mail_server.send(mail, mailboxes.customer, mailboxes.support)

        async def mail_contact() -> Any:
            page = await get_json(client, f"/v1/contacts?email={mailboxes.customer}")
            return page["items"][0] if page["items"] else None

        by_mail = await eventually(mail_contact, within=10)

        # 2. Logged in on the shop's site, the same person chats; the site signs who it is.
        ws, session = await open_visitor(client, channel="chat")
        assert (await say(ws, "Em hỏi đơn #7 trên web ạ", "c1"))["type"] == "ack"
        signature = hmac.new(SECRET.encode(), b"shop-user-7", hashlib.sha256).hexdigest()
        await ws.send_json(
            {
                "type": "identify",
                "user_id": "shop-user-7",
                "hmac": signature,
                "name": "Nguyễn Văn An",
                "email": mailboxes.customer.upper(),
                "phone": "0912 345 678",
            }
        )

        async def linked() -> Any:
            page = await get_json(client, f"/v1/contacts?external_id={session['visitor_id']}")
            found = page["items"]
            return found[0] if found and len(found[0]["identities"]) == 3 else None

        contact = await eventually(linked)
        assert contact["id"] == by_mail["id"]  # the older contact survives
        assert contact["email"] == mailboxes.customer
        assert contact["phone"] == "+84912345678"
        assert {(i["channel_id"], i["external_id"]) for i in contact["identities"]} == {
            ("mail", mailboxes.customer),
            ("chat", session["visitor_id"]),
            ("chat", "user:shop-user-7"),
        }
        timeline = await get_json(client, f"/v1/contacts/{contact['id']}/timeline")
        assert sorted(m["channel_id"] for m in timeline["items"]) == ["chat", "mail"]
        events = await gw.store.events.after(0, 1000, types=["contact.merged"])
        assert [e.data["contact"]["id"] for e in events] == [contact["id"]]

        # 3. A phone typed into a widget nobody signs: never merged, only suggested.
        typed, _ = await open_visitor(client, channel="chat-open")
        await say(typed, "Cho em hỏi", "t1")
        await typed.send_json({"type": "identify", "name": "nguyen van an", "phone": "84912345678"})

        async def suggested() -> Any:
            page = await get_json(client, f"/v1/contacts/{contact['id']}/suggestions")
            return page["items"] or None

        [suggestion] = await eventually(suggested)
        assert suggestion["reasons"] == ["same_phone", "same_name"]
        assert suggestion["contact"]["id"] != contact["id"]
        found = await get_json(client, "/v1/contacts?phone=%2B84%20912%20345%20678")
        assert {c["id"] for c in found["items"]} == {contact["id"], suggestion["contact"]["id"]}
        assert len(await gw.store.events.after(0, 1000, types=["contact.merged"])) == 1

        # 4. Unmerge: the visitor's own contact comes back, with an event saying so.
        restored = await post_json(
            client,
            f"/v1/contacts/{contact['id']}/unmerge",
            {"identity": {"channel_id": "chat", "external_id": session["visitor_id"]}},
        )
        assert restored["id"] != contact["id"] and restored["merged_into"] is None
        assert [i["external_id"] for i in restored["identities"]] == [session["visitor_id"]]
        [event] = await gw.store.events.after(0, 1000, types=["contact.unmerged"])
        assert event.data["contact"]["id"] == contact["id"]
        assert event.data["unmerged_contact"]["id"] == restored["id"]
        for cid, channel in ((contact["id"], "mail"), (restored["id"], "chat")):
            timeline = await get_json(client, f"/v1/contacts/{cid}/timeline")
            assert [m["channel_id"] for m in timeline["items"]] == [channel]
        # the widget identifies again (as it does on every page): they stay apart
        await ws.send_json(
            {
                "type": "identify",
                "user_id": "shop-user-7",
                "hmac": signature,
                "email": mailboxes.customer,
            }
        )
        assert (await say(ws, "Em là người khác ạ", "c2"))["type"] == "ack"
        assert len(await gw.store.events.after(0, 1000, types=["contact.merged"])) == 1
        again = await get_json(client, f"/v1/contacts/{restored['id']}")
        assert again["merged_into"] is None
        await ws.close()
        await typed.close()
