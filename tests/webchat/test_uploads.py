"""Files on webchat: a visitor uploads with its token and names the upload in a message
frame; agents' files reach visitors through signed, expiring links."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient, TestServer

from connectors.webchat.connector import WebchatConnector
from connectors.webchat.parse import sign_file, sign_token
from gateway.app import Gateway
from tests.api.helpers import get_json, open_visitor, post_json, say
from tests.conftest import AUTH, GatewayFactory
from tests.media.images import png
from tests.media.uploads import form, upload

Client = TestClient  # type: ignore[type-arg]

LIMITED = """
[[channels]]
id = "webchat"
type = "webchat"
max_upload_bytes = 2048
upload_types = ["image/png", "application/pdf"]
allowed_origins = ["https://shop.example"]

[[channels]]
id = "other"
type = "webchat"

[[agents]]
id = "demo"
presence = "online"
"""


def visitor_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def send_files(ws: Any, client_id: str, ids: list[str], text: str | None = None) -> Any:
    frame: dict[str, Any] = {"type": "message", "client_id": client_id, "attachment_ids": ids}
    if text is not None:
        frame["text"] = text
    await ws.send_json(frame)
    return await ws.receive_json(timeout=5)


async def test_a_customers_photo_reaches_the_agent(client: Client) -> None:
    ws, session = await open_visitor(client)
    photo = png(30, 20, (10, 120, 200))
    up = await upload(
        client,
        photo,
        "ảnh sản phẩm.png",
        "image/png",
        path="/webchat/webchat/uploads",
        headers=visitor_headers(session["token"]),
    )
    assert up["id"].startswith("att_") and up["name"] == "ảnh sản phẩm.png"
    assert up["url"].startswith(f"/webchat/webchat/files/{up['id']}?expires=")
    seen = await client.get(up["url"])  # the visitor's own link, no agent token
    assert await seen.read() == photo

    ack = await send_files(ws, "c1", [up["id"]], text="Mẫu này còn không shop?")
    assert ack["type"] == "ack", ack
    (conv,) = (await get_json(client, "/v1/conversations"))["items"]
    (message,) = (await get_json(client, f"/v1/conversations/{conv['id']}/messages"))["items"]
    text, image = message["parts"]
    assert text == {"type": "text", "text": "Mẫu này còn không shop?"}
    assert image["type"] == "image" and image["attachment_id"] == up["id"]
    assert image["url"].endswith(f"/v1/attachments/{up['id']}")
    resp = await client.get(image["url"], headers=AUTH)
    assert await resp.read() == photo

    # The visitor's history shows it behind a signed link, never the API's URL.
    await ws.send_json({"type": "history"})
    history = await ws.receive_json(timeout=5)
    shown = history["messages"][0]["parts"][1]
    assert shown["url"].startswith(f"/webchat/webchat/files/{up['id']}?")
    assert (await client.get(shown["url"])).status == 200


async def test_a_file_alone_and_a_repeated_frame(client: Client) -> None:
    ws, session = await open_visitor(client)
    up = await upload(
        client,
        b"%PDF-1.4 bao gia",
        "báo giá.pdf",
        "application/pdf",
        path="/webchat/webchat/uploads",
        headers=visitor_headers(session["token"]),
    )
    first = await send_files(ws, "c1", [up["id"], up["id"]])
    again = await send_files(ws, "c1", [up["id"]])
    assert first["type"] == "ack" and again["message_id"] == first["message_id"]
    (conv,) = (await get_json(client, "/v1/conversations"))["items"]
    (message,) = (await get_json(client, f"/v1/conversations/{conv['id']}/messages"))["items"]
    assert [(p["type"], p["name"]) for p in message["parts"]] == [("file", "báo giá.pdf")]


async def test_uploads_are_refused_with_a_reason(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(LIMITED)
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, session = await open_visitor(client)
        token = session["token"]
        path = "/webchat/webchat/uploads"
        mine = visitor_headers(token)
        no_token = await upload(
            client, png(), "a.png", "image/png", path=path, headers={}, status=401
        )
        assert no_token["error"]["code"] == "invalid_token"
        connector = gw.connectors["webchat"]
        assert isinstance(connector, WebchatConnector)
        forged = sign_token(b"another-key-entirely-000000000000", session["visitor_id"], "webchat")
        await upload(
            client,
            png(),
            "a.png",
            "image/png",
            path=path,
            headers=visitor_headers(forged),
            status=401,
        )
        # A token of this channel does not open another one.
        foreign = await upload(
            client,
            png(),
            "a.png",
            "image/png",
            path="/webchat/other/uploads",
            headers=mine,
            status=401,
        )
        assert foreign["error"]["code"] == "invalid_token"
        big = await upload(
            client,
            b"%PDF" + b"0" * 4000,
            "a.pdf",
            "application/pdf",
            path=path,
            headers=mine,
            status=413,
        )
        assert "2048" in big["error"]["message"]
        gif = await upload(
            client,
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            "a.gif",
            "image/gif",
            path=path,
            headers=mine,
            status=415,
        )
        assert gif["error"]["code"] == "unsupported_type"
        strange = await upload(
            client,
            png(),
            "a.png",
            "image/png",
            path=path,
            headers={**mine, "Origin": "https://evil.example"},
            status=403,
        )
        assert strange["error"]["code"] == "origin_not_allowed"
        missing = await upload(
            client,
            png(),
            "a.png",
            "image/png",
            path="/webchat/nope/uploads",
            headers=mine,
            status=404,
        )
        assert missing["error"]["code"] == "channel_not_found"

        # Files kept for another channel, or unknown, cannot be named in a frame.
        agents = await upload(client, png(), "agent.png", "image/png")
        refused = await send_files(ws, "c2", [agents["id"]])
        assert refused["type"] == "error" and refused["code"] == "unknown_attachment"
        assert refused["client_id"] == "c2"
        await ws.send_json({"type": "message", "client_id": "c3", "attachment_ids": ["../x"]})
        bad = await ws.receive_json(timeout=5)
        assert bad["code"] == "bad_frame"
        await ws.send_json({"type": "message", "client_id": "c4", "attachment_ids": []})
        assert (await ws.receive_json(timeout=5))["code"] == "empty_text"
        assert (await get_json(client, "/v1/conversations"))["items"] == []


async def test_the_allowed_origin_may_upload_across_origins(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(LIMITED)
    async with TestClient(TestServer(gw.web_app())) as client:
        _, session = await open_visitor(client)
        origin = {"Origin": "https://shop.example"}
        pre = await client.options(
            "/webchat/webchat/uploads",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert pre.status == 204
        assert pre.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        resp = await client.post(
            "/webchat/webchat/uploads",
            data=form(png(), "a.png", "image/png"),
            headers={**origin, **visitor_headers(session["token"])},
        )
        assert resp.status == 201
        assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        other = await client.options(
            "/webchat/webchat/uploads", headers={"Origin": "https://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in other.headers


async def test_an_agents_file_reaches_the_visitor_by_a_signed_link(
    client: Client, gw: Gateway
) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "Gửi mình ảnh nhé", "c1")
    (conv,) = (await get_json(client, "/v1/conversations"))["items"]
    photo = png(16, 16, (0, 160, 80))
    up = await upload(client, photo, "mẫu.png", "image/png")
    await post_json(
        client,
        f"/v1/conversations/{conv['id']}/messages",
        {"parts": [{"type": "image", "attachment_id": up["id"]}]},
        status=202,
    )
    frame = await ws.receive_json(timeout=5)
    assert frame["type"] == "message"
    (part,) = frame["message"]["parts"]
    assert part["attachment_id"] == up["id"]
    link = urlsplit(part["url"])
    assert link.path == f"/webchat/webchat/files/{up['id']}"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    expires = int(query["expires"])
    assert time.time() + 23 * 3600 < expires <= time.time() + 26 * 3600
    resp = await client.get(part["url"])
    assert await resp.read() == photo
    assert resp.headers["X-Content-Type-Options"] == "nosniff"

    async def status(url: str) -> int:
        return (await client.get(url)).status

    # Expired, tampered, or made for another file: refused.
    connector = gw.connectors["webchat"]
    assert isinstance(connector, WebchatConnector)
    old = int(time.time()) - 10
    signed_old = sign_file(connector._key, "webchat", up["id"], old)
    assert await status(f"{link.path}?expires={old}&sig={signed_old}") == 403
    assert await status(f"{link.path}?expires={expires + 3600}&sig={query['sig']}") == 403
    other = await upload(client, png(), "khác.png", "image/png")
    assert await status(f"/webchat/webchat/files/{other['id']}?{link.query}") == 403
    assert await status(link.path) == 403


async def test_a_conversation_the_business_starts_may_carry_an_upload(client: Client) -> None:
    ws, session = await open_visitor(client)
    await say(ws, "Chào shop", "c1")
    await ws.close()
    conv_id = (await get_json(client, "/v1/conversations?channel_id=webchat"))["items"][0]["id"]
    await post_json(client, f"/v1/conversations/{conv_id}/resolve", {})
    photo = png(14, 14, (90, 90, 200))
    up = await upload(client, photo, "phiếu bảo hành.png", "image/png")
    started = await post_json(
        client,
        "/v1/conversations",
        {
            "channel_id": "webchat",
            "to": {"external_id": session["visitor_id"]},
            "parts": [{"type": "image", "attachment_id": up["id"]}],
        },
        status=201,
    )
    (part,) = started["message"]["parts"]
    assert (part["attachment_id"], part["url"], part["size"]) == (up["id"], up["url"], len(photo))
    missing = await post_json(
        client,
        "/v1/conversations",
        {
            "channel_id": "webchat",
            "to": {"external_id": session["visitor_id"]},
            "parts": [{"type": "image", "attachment_id": "att_" + "1" * 26}],
        },
        status=422,
    )
    assert missing["error"]["code"] == "attachment_not_found"
    ws2, _ = await open_visitor(client, token=session["token"])
    await ws2.send_json({"type": "history", "limit": 10})
    # The started message may still be on its way to the visitor's sockets: a live
    # `message` frame can come before the history's answer.
    frame = await ws2.receive_json(timeout=5)
    while frame["type"] != "history":
        frame = await ws2.receive_json(timeout=5)
    shown = frame["messages"][-1]["parts"][0]
    assert shown["url"].startswith(f"/webchat/webchat/files/{up['id']}?")
    assert await (await client.get(shown["url"])).read() == photo
