"""The webchat protocol (design.md 7a) over a real socket."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from connectors.webchat.parse import sign_token
from gateway.app import Gateway
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

SECRET_CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"
identity_secret = "s3cr3t-identity"
allowed_origins = ["https://shop.example"]
rate_per_second = 2
rate_burst = 3

[[agents]]
id = "demo"
presence = "online"
"""


async def test_session_token_resumes_the_same_visitor(client: Client) -> None:
    ws, first = await open_visitor(client)
    assert first["conversation_id"] is None
    ack = await say(ws, "Chào shop", "c1")
    assert ack == {"type": "ack", "client_id": "c1", "message_id": ack["message_id"]}
    await ws.close()
    ws2, second = await open_visitor(client, token=first["token"])
    assert second["visitor_id"] == first["visitor_id"]
    assert second["conversation_id"] is not None
    await ws2.send_json({"type": "history"})
    history = await ws2.receive_json(timeout=5)
    assert [m["id"] for m in history["messages"]] == [ack["message_id"]]
    assert history["messages"][0]["parts"] == [{"type": "text", "text": "Chào shop"}]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "v1.e30.AAAA",
        "v1." + "x" * 600,
    ],
)
async def test_bad_tokens_get_a_new_visitor(client: Client, token: str) -> None:
    _, session = await open_visitor(client, token=token)
    assert session["visitor_id"].startswith("v_")
    assert session["token"] != token


async def test_forged_or_foreign_tokens_are_refused(client: Client, gw: Gateway) -> None:
    ws, real = await open_visitor(client)
    await say(ws, "bí mật", "c1")
    forged = sign_token(b"not-the-key", real["visitor_id"], "webchat")
    _, s1 = await open_visitor(client, token=forged)
    assert s1["visitor_id"] != real["visitor_id"]
    # a valid signature, but for another channel, must not open this one
    payload, sig = real["token"].split(".")[1:]
    tampered = f"v1.{payload[:-2]}AA.{sig}"
    _, s2 = await open_visitor(client, token=tampered)
    assert s2["visitor_id"] != real["visitor_id"]


async def test_resent_client_id_is_acked_with_the_same_message(client: Client) -> None:
    ws, _ = await open_visitor(client)
    first = await say(ws, "một lần", "same")
    again = await say(ws, "một lần", "same")
    assert again["message_id"] == first["message_id"]
    await ws.send_json({"type": "history"})
    history = await ws.receive_json(timeout=5)
    assert len(history["messages"]) == 1


async def test_history_cursors(client: Client) -> None:
    ws, _ = await open_visitor(client)
    ids = [(await say(ws, f"tin {i}", f"c{i}"))["message_id"] for i in range(6)]
    await ws.send_json({"type": "history", "limit": 2})
    assert [m["id"] for m in (await ws.receive_json())["messages"]] == ids[-2:]
    await ws.send_json({"type": "history", "before": ids[3], "limit": 2})
    assert [m["id"] for m in (await ws.receive_json())["messages"]] == ids[1:3]
    await ws.send_json({"type": "history", "after": ids[1], "limit": 3})
    assert [m["id"] for m in (await ws.receive_json())["messages"]] == ids[2:5]
    await ws.send_json({"type": "history", "limit": 100000})
    assert len((await ws.receive_json())["messages"]) == 6


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{broken", "bad_json"),
        ("[]", "bad_frame"),
        ('"text"', "bad_frame"),
        ('{"type": "shout"}', "unknown_type"),
        ("{}", "unknown_type"),
        ('{"type": "message", "text": "no client id"}', "bad_frame"),
        ('{"type": "message", "client_id": "x", "text": 5}', "bad_frame"),
        ('{"type": "message", "client_id": "x", "text": "   "}', "empty_text"),
        ('{"type": "message", "client_id": "x", "text": "' + "a" * 5001 + '"}', "text_too_long"),
        ('{"type": "typing", "state": "maybe"}', "bad_frame"),
        ('{"type": "history", "limit": -1}', "bad_frame"),
        ('{"type": "identify", "email": "not-an-email"}', "bad_frame"),
        ('{"type": "identify", "phone": "abc"}', "bad_frame"),
        ('{"type": "message", "client_id": "x", "text": "' + "a" * 70_000 + '"}', "too_large"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_survives(
    client: Client, frame: str, code: str
) -> None:
    ws, _ = await open_visitor(client)
    await ws.send_str(frame)
    error = await ws.receive_json(timeout=5)
    assert (error["type"], error["code"]) == ("error", code), error
    assert error["message"]
    ok = await say(ws, "vẫn còn đây", "after-error")
    assert ok["type"] == "ack"


async def test_binary_and_huge_frames(client: Client) -> None:
    ws, _ = await open_visitor(client)
    await ws.send_bytes(b"\x00\x01")
    assert (await ws.receive_json(timeout=5))["code"] == "bad_frame"
    assert (await say(ws, "ok", "c1"))["type"] == "ack"
    await ws.send_str("x" * (2 * 1024 * 1024))
    closing = await ws.receive(timeout=5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    # the server is fine: a new socket works
    ws2, _ = await open_visitor(client)
    assert (await say(ws2, "vẫn ổn", "c2"))["type"] == "ack"


async def test_nothing_is_stored_for_refused_frames(client: Client) -> None:
    ws, _session = await open_visitor(client)
    await ws.send_str('{"type": "message", "client_id": "x", "text": ""}')
    await ws.receive_json()
    await ws.send_json({"type": "history"})
    assert (await ws.receive_json())["messages"] == []
    page = await get_json(client, "/v1/conversations")
    assert page["items"] == []


async def test_agent_reply_and_typing_reach_every_tab(client: Client) -> None:
    tab1, session = await open_visitor(client)
    ack = await say(tab1, "tab một", "c1")
    tab2, again = await open_visitor(client, token=session["token"])
    assert again["visitor_id"] == session["visitor_id"]
    conv_id = again["conversation_id"]
    await post_json(
        client, f"/v1/conversations/{conv_id}/typing", {"state": "on"}, 204
    ) if False else None
    resp = await client.post(
        f"/v1/conversations/{conv_id}/typing", json={"state": "on"}, headers=AUTH
    )
    assert resp.status == 204
    assert await tab1.receive_json(timeout=5) == {"type": "typing", "state": "on"}
    assert await tab2.receive_json(timeout=5) == {"type": "typing", "state": "on"}
    reply = await post_json(
        client, f"/v1/conversations/{conv_id}/messages", {"text": "Chào bạn"}, 202
    )
    for tab in (tab1, tab2):
        frame = await tab.receive_json(timeout=5)
        assert frame["type"] == "message"
        assert frame["message"]["id"] == reply["id"]
        assert frame["message"]["direction"] == "outbound"
    # the visitor's own message, sent in tab 2, shows up in tab 1 too
    own = await say(tab2, "từ tab hai", "c2")
    mirrored = await tab1.receive_json(timeout=5)
    assert mirrored["message"]["id"] == own["message_id"]
    assert ack["message_id"] != own["message_id"]


async def test_visitor_typing_is_streamed_but_never_stored(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "xin chào", "c1")
    await eventually(lambda: _all_convs(client, 1, status="assigned"))
    before = await gw.store.events.last_seq()
    sse = await client.get("/v1/events?ephemeral=typing", headers=AUTH)
    await sse.content.readuntil(b": connected\n\n")
    await ws.send_json({"type": "typing", "state": "on"})
    line = b""
    while b"conversation.typing" not in line:
        line = await sse.content.readline()
    data = json.loads((await sse.content.readline()).decode().removeprefix("data: "))
    assert data["data"]["state"] == "on"
    assert await gw.store.events.last_seq() == before
    sse.close()


async def test_identify_without_secret_describes_but_never_links(client: Client) -> None:
    ws1, _s1 = await open_visitor(client)
    await say(ws1, "một", "c1")
    ws2, _s2 = await open_visitor(client)
    await say(ws2, "hai", "c1")
    for ws in (ws1, ws2):
        await ws.send_json(
            {
                "type": "identify",
                "name": "Lê Minh",
                "email": "minh@example.vn",
                "phone": "0903 123 456",
            }
        )
    convs = await eventually(lambda: _all_convs(client, 2))
    contacts = {c["contact_id"] for c in convs}
    assert len(contacts) == 2
    contact = await eventually(lambda: _named(client, convs[0]["contact_id"]))
    assert contact["email"] == "minh@example.vn"
    assert contact["phone"] == "+84903123456"


async def _all_convs(client: Client, n: int, status: str = "") -> list[dict[str, Any]] | None:
    items = (await get_json(client, f"/v1/conversations?status={status}"))["items"]
    return items if len(items) >= n else None


async def _named(client: Client, contact_id: str) -> dict[str, Any] | None:
    contact = await get_json(client, f"/v1/contacts/{contact_id}")
    return contact if contact["display_name"] == "Lê Minh" else None


async def test_hmac_identity_links_visitors_of_one_user(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(SECRET_CONFIG)
    origin = {"Origin": "https://shop.example"}
    good = hmac.new(b"s3cr3t-identity", b"user-42", hashlib.sha256).hexdigest()
    async with TestClient(TestServer(gw.web_app())) as client:
        phone, _s1 = await open_visitor(client, headers=origin)
        laptop, _s2 = await open_visitor(client, headers=origin)
        await say(phone, "từ điện thoại", "p1")
        await say(laptop, "từ máy tính", "l1")
        await laptop.send_json({"type": "identify", "user_id": "user-42", "hmac": "00" * 32})
        assert (await laptop.receive_json(timeout=5))["code"] == "invalid_identity"
        await laptop.send_json({"type": "identify", "user_id": "user-42"})
        assert (await laptop.receive_json(timeout=5))["code"] == "invalid_identity"
        for ws in (phone, laptop):
            await ws.send_json(
                {"type": "identify", "user_id": "user-42", "hmac": good, "name": "Khách 42"}
            )

        # one contact: the helpdesk sees both devices' messages together (identify frames
        # have no answer: wait until both were taken)...
        async def survivors_now() -> set[str] | None:
            page = await get_json(client, "/v1/conversations")
            contacts = [
                await get_json(client, f"/v1/contacts/{c['contact_id']}") for c in page["items"]
            ]
            found = {c["merged_into"] or c["id"] for c in contacts}
            return found if len(found) == 1 else None

        survivors = await eventually(survivors_now)
        timeline = await get_json(client, f"/v1/contacts/{survivors.pop()}/timeline")
        assert {m["parts"][0]["text"] for m in timeline["items"]} == {
            "từ điện thoại",
            "từ máy tính",
        }
        # ... while each device's widget shows its own
        for ws, text in ((laptop, "từ máy tính"), (phone, "từ điện thoại")):
            await ws.send_json({"type": "history"})
            history = await ws.receive_json(timeout=5)
            assert [m["parts"][0]["text"] for m in history["messages"]] == [text]


async def test_a_merged_contact_s_visitors_each_see_their_own_history(client: Client) -> None:
    # Two customers merged into one contact (by mistake, or by a token that should not
    # have): neither's widget shows the other's messages, or the replies to the other.
    first, s1 = await open_visitor(client)
    second, s2 = await open_visitor(client)
    await say(first, "Tôi là khách thứ nhất", "a1")
    await say(second, "Số thẻ của tôi là 4111", "b1")
    convs = {c["id"]: c for c in (await get_json(client, "/v1/conversations"))["items"]}
    by_visitor = {}
    for conv in convs.values():
        contact = await get_json(client, f"/v1/contacts/{conv['contact_id']}")
        by_visitor[contact["identities"][0]["external_id"]] = conv
    one, two = by_visitor[s1["visitor_id"]], by_visitor[s2["visitor_id"]]
    await post_json(
        client, f"/v1/conversations/{two['id']}/messages", {"text": "Dạ, thẻ 4111 đã nhận"}, 202
    )
    assert (await second.receive_json(timeout=5))["type"] == "message"
    await post_json(
        client, f"/v1/contacts/{one['contact_id']}/merge", {"other_id": two["contact_id"]}
    )
    await say(second, "Còn một câu nữa", "b2")
    await say(first, "Xin chào lần nữa", "a2")

    async def texts(ws: Any) -> list[str]:
        await ws.send_json({"type": "history"})
        while (frame := await ws.receive_json(timeout=5))["type"] != "history":
            pass  # a reply pushed meanwhile
        return [m["parts"][0]["text"] for m in frame["messages"]]

    assert await texts(first) == ["Tôi là khách thứ nhất", "Xin chào lần nữa"]
    assert await texts(second) == [
        "Số thẻ của tôi là 4111",
        "Dạ, thẻ 4111 đã nhận",
        "Còn một câu nữa",
    ]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example", True),
        ("https://SHOP.example/", True),
        ("https://evil.example", False),
        ("null", False),
        (None, True),
    ],
)
async def test_allowed_origins(
    make_gateway: GatewayFactory, origin: str | None, allowed: bool
) -> None:
    gw = await make_gateway(SECRET_CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        headers = {} if origin is None else {"Origin": origin}
        if allowed:
            ws, _ = await open_visitor(client, headers=headers)
            assert (await say(ws, "ok", "c1"))["type"] == "ack"
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await client.ws_connect("/webchat/webchat/ws", headers=headers)
            assert exc.value.status == 403


async def test_own_origin_is_always_allowed(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(SECRET_CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        own = f"http://{client.host}:{client.port}"
        ws, _ = await open_visitor(client, headers={"Origin": own})
        assert (await say(ws, "ok", "c1"))["type"] == "ack"


async def test_rate_limit(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(SECRET_CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, _ = await open_visitor(client)
        frames = [await say(ws, f"spam {i}", f"c{i}") for i in range(6)]
        kinds = [f["type"] for f in frames]
        assert kinds[:3] == ["ack", "ack", "ack"]
        limited = [f for f in frames if f["type"] == "error"]
        assert limited
        assert all(f["code"] == "rate_limited" for f in limited)
        assert {f["client_id"] for f in limited} <= {f"c{i}" for i in range(3, 6)}


async def test_unknown_channel_and_plain_http(client: Client) -> None:
    resp = await client.get("/webchat/nope/ws")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "channel_not_found"
    resp = await client.get("/webchat/webchat/ws")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "websocket_required"


async def test_widget_and_demo_page(client: Client) -> None:
    js = await client.get("/webchat/widget.js")
    assert js.status == 200
    assert "javascript" in js.headers["Content-Type"]
    assert "omnigw-widget" in await js.text()
    page = await client.get("/")
    text = await page.text()
    assert page.status == 200
    assert 'data-channel="webchat"' in text
    assert "/webchat/widget.js" in text
