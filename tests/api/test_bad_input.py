"""Bad input over the API and the webchat socket gets a 400 or an error frame: never a 500,
a dropped socket, or a traceback in the log (issue 17, defects 7 and 8)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kernel.ids import ChannelId
from tests.api.helpers import eventually, get_json, open_visitor, say
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"
identity_secret = "s3cr3t-identity-for-bad-input"

[[agents]]
id = "lan"
presence = "online"
capacity = { total = 100 }
"""
JSON = {**AUTH, "Content-Type": "application/json"}


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def conversation(client: Client) -> tuple[Any, str]:
    ws, _session = await open_visitor(client)
    assert (await say(ws, "Xin chào", "c1"))["type"] == "ack"

    async def found() -> str | None:
        page = await get_json(client, "/v1/conversations")
        return page["items"][0]["id"] if page["items"] else None

    return ws, await eventually(found)


async def answer(
    client: Client, path: str, raw: bytes, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    resp = await client.request(method, path, data=io.BytesIO(raw), headers=JSON)
    return resp.status, await resp.json()


async def test_deep_nesting_and_lone_surrogates_are_400s(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        _ws, conv = await conversation(client)
        send = f"/v1/conversations/{conv}/messages"
        deep = b'{"text": "a", "reply_to": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        status, body = await answer(client, send, deep)
        assert (status, body["error"]["code"]) == (400, "invalid_json")
        assert "nested" in body["error"]["message"]
        # Deep enough to pass the decoder, too deep for anything after it.
        status, body = await answer(
            client,
            "/v1/agents/lan/presence",
            b'{"status": ' + b"[" * 200 + b"]" * 200 + b"}",
            "PUT",
        )
        assert (status, body["error"]["code"]) == (400, "invalid_json")
        for raw in (
            b'{"text": "ch\\ud800o"}',
            b'{"text": "ok", "agent_id": "\\udfff"}',
            b'{"parts": [{"type": "text", "text": "\\udc00"}]}',
            b'{"text": "ok", "\\ud83d": 1}',
        ):
            status, body = await answer(client, send, raw)
            assert (status, body["error"]["code"]) == (400, "invalid_json"), raw
            assert "lone surrogate" in body["error"]["message"]
        # A surrogate pair is one character, and welcome.
        status, body = await answer(client, send, b'{"text": "c\\u1ea3m \\ud83d\\ude00"}')
        assert status == 202, body
        assert body["parts"] == [{"type": "text", "text": "cảm 😀"}]
        messages = await get_json(client, send)
        assert [m["direction"] for m in messages["items"]] == ["inbound", "outbound"]
    no_tracebacks(caplog)


async def test_parts_have_the_text_cap_and_web_urls_only(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        _ws, conv = await conversation(client)
        send = f"/v1/conversations/{conv}/messages"
        cap = 20_000
        refused: list[tuple[dict[str, Any], str]] = [
            ({"text": "a" * (cap + 1)}, "text"),
            ({"parts": [{"type": "text", "text": "a" * (cap + 1)}]}, "parts.0.text.text"),
            ({"parts": [{"type": "text", "text": "ạ" * 300_000}]}, "parts.0.text.text"),
            ({"parts": [{"type": "link", "url": "javascript:alert(1)"}]}, "parts.0.link.url"),
            ({"parts": [{"type": "link", "url": "JavaScript:alert(1)"}]}, "parts.0.link.url"),
            ({"parts": [{"type": "image", "url": "javascript:alert(1)"}]}, "parts.0.image.url"),
            ({"parts": [{"type": "file", "url": "data:text/html,<b>x</b>"}]}, "parts.0.file.url"),
            ({"parts": [{"type": "video", "url": "file:///etc/passwd"}]}, "parts.0.video.url"),
            ({"parts": [{"type": "link", "url": "//evil.example/x"}]}, "parts.0.link.url"),
            ({"parts": [{"type": "link", "url": "https://"}]}, "parts.0.link.url"),
            (
                {"parts": [{"type": "link", "url": "https://x.example/\nSet-Cookie"}]},
                "parts.0.link.url",
            ),
        ]
        for body, field in refused:
            raw = json.dumps(body, ensure_ascii=False).encode()
            status, answered = await answer(client, send, raw)
            assert status == 400, (body, answered)
            fields = [d["field"] for d in answered["error"]["details"]]
            assert fields == [field], answered
        accepted = [
            {"text": "a" * cap},
            {"parts": [{"type": "text", "text": "ạ" * cap}]},
            {"parts": [{"type": "link", "url": "https://shop.example/áo-thun", "title": "Áo"}]},
            {"parts": [{"type": "image", "url": "HTTP://cdn.example/a.png"}]},
        ]
        for body in accepted:
            resp = await client.post(send, json=body, headers=AUTH)
            assert resp.status == 202, (body, await resp.json())
        # A file kept here is named by its own URL, a path when no public_url is set.
        saved = await gw.pipeline.save_attachment(
            ChannelId("webchat"), b"%PDF-1.4", name="a.pdf", mime="application/pdf"
        )
        own = saved.url or ""
        assert own.startswith("/v1/attachments/att_")
        resp = await client.post(
            send, json={"parts": [{"type": "file", "url": own, "name": "a.pdf"}]}, headers=AUTH
        )
        assert resp.status == 202, await resp.json()
        messages = await get_json(client, f"{send}?limit=200")
        assert len(messages["items"]) == 1 + len(accepted) + 1


async def test_bad_frames_get_error_frames_and_the_socket_stays(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, _session = await open_visitor(client)
        frames = [
            ('{"type": "message", "client_id": "d", "text": ' + "[" * 30_000, "bad_json"),
            ('{"type": "typing", "state": ' + "[" * 100 + "]" * 100 + "}", "bad_json"),
            ('{"type": "message", "client_id": "s1", "text": "a\\ud800"}', "bad_frame"),
            ('{"type": "identify", "name": "Kh\\udc00ch"}', "bad_frame"),
            ('{"type": "message", "client_id": "\\udbff", "text": "x"}', "bad_frame"),
            (json.dumps({"type": "identify", "user_id": "u1", "hmac": "ạ" * 64}), None),
            (json.dumps({"type": "identify", "user_id": "u1", "hmac": "é"}), None),
            ('{"type": "history", "limit": NaN}', "bad_json"),
        ]
        for raw, code in frames:
            await ws.send_str(raw)
            frame = await ws.receive_json(timeout=5)
            assert frame["type"] == "error", (raw[:60], frame)
            assert frame["code"] == (code or "invalid_identity"), (raw[:60], frame)
        # ...and the socket still works.
        assert (await say(ws, "vẫn ổn", "c9"))["type"] == "ack"
        good = hmac.new(b"s3cr3t-identity-for-bad-input", b"u1", hashlib.sha256).hexdigest()
        await ws.send_json({"type": "identify", "user_id": "u1", "hmac": good.upper()})
        await ws.send_json({"type": "typing", "state": "on"})
        assert not ws.closed
    no_tracebacks(caplog)


async def test_templates_take_the_same_parts(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        for parts in (
            [{"type": "link", "url": "javascript:alert(1)", "title": "{{x}}"}],
            [{"type": "image", "url": "data:image/png;base64,AAAA"}],
            [{"type": "text", "text": "a" * 20_001}],
        ):
            body = {"name": "xấu", "parts": parts}
            raw = json.dumps(body).encode()
            status, answered = await answer(client, "/v1/templates", raw)
            assert (status, answered["error"]["code"]) == (400, "validation_error"), answered
        good = {
            "name": "tốt",
            "parts": [
                {"type": "text", "text": "Chào {{contact.display_name}}"},
                {"type": "link", "url": "https://shop.example/don-hang", "title": "Đơn hàng"},
                {"type": "choices", "text": "Bạn cần gì?", "choices": [{"id": "a", "title": "A"}]},
            ],
        }
        status, answered = await answer(client, "/v1/templates", json.dumps(good).encode())
        assert status == 201, answered
        assert (await get_json(client, "/v1/templates"))["items"][0]["name"] == "tốt"
