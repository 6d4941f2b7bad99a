"""The business writes first to a known webchat visitor: the message waits for their next
visit and is in their history then; an unknown visitor is refused with nothing stored."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import Gateway
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say

Client = TestClient  # type: ignore[type-arg]


async def test_a_known_visitor_sees_it_on_their_next_visit(client: Client, gw: Gateway) -> None:
    ws, session = await open_visitor(client)
    await say(ws, "Chào shop", "c1")
    await ws.close()
    conv_id = (await get_json(client, "/v1/conversations?channel_id=webchat"))["items"][0]["id"]
    await post_json(client, f"/v1/conversations/{conv_id}/resolve", {})

    started = await post_json(
        client,
        "/v1/conversations",
        {
            "channel_id": "webchat",
            "to": {"external_id": session["visitor_id"]},
            "text": "Đơn hàng của bạn đã giao ✅",
        },
        status=201,
    )
    conv, msg = started["conversation"], started["message"]
    assert conv["id"] != conv_id
    assert conv["reply_window"] == {
        "state": "unlimited",
        "closes_at": None,
        "free_until": None,
        "reason": "the channel has no reply window",
    }

    async def settled() -> bool:
        found = await get_json(client, f"/v1/messages/{msg['id']}")
        return bool(found["status"] != "pending")

    await eventually(settled)
    ws2, again = await open_visitor(client, token=session["token"])
    assert again["conversation_id"] == conv["id"]
    await ws2.send_json({"type": "history", "limit": 10})
    history = (await ws2.receive_json(timeout=5))["messages"]
    assert history[-1]["id"] == msg["id"]
    assert history[-1]["parts"] == [{"type": "text", "text": "Đơn hàng của bạn đã giao ✅"}]


async def test_an_unknown_visitor_and_a_template_are_refused(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "Chào shop", "c1")
    conv_id = (await get_json(client, "/v1/conversations?channel_id=webchat"))["items"][0]["id"]
    template = {"type": "template", "name": "order_confirmed", "data": {"order": "DH-1"}}
    refused = await post_json(
        client, f"/v1/conversations/{conv_id}/messages", {"parts": [template]}, status=422
    )
    assert refused["error"]["code"] == "unsupported_part"
    await post_json(client, f"/v1/conversations/{conv_id}/resolve", {})
    seq = await gw.store.events.last_seq()
    for visitor, status, code in (
        ("v_nobody", 404, "visitor_not_found"),
        ("v_\u0000bad", 400, None),
        ("   ", 400, None),
    ):
        refused = await post_json(
            client,
            "/v1/conversations",
            {"channel_id": "webchat", "to": {"external_id": visitor}, "text": "Xin chào"},
            status=status,
        )
        if code is not None:
            assert refused["error"]["code"] == code
    assert [c["id"] for c in (await get_json(client, "/v1/conversations"))["items"]] == [conv_id]
    later = await gw.store.events.after(seq, 100)
    assert [e.type for e in later if not e.type.startswith("channel.")] == []
