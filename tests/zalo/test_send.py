"""Outbound through the real gateway: agent replies become the exact CS message requests
Zalo receives; uploads, the token refresh, and Zalo's error codes (channels.md 2.8)."""

from __future__ import annotations

import asyncio
import json
import struct
import unicodedata
from typing import Any

import pytest

from connectors.base import HealthState
from tests.api.helpers import eventually, get_json
from tests.providers import Json, read_only_db, reply, settled
from tests.zalo.conftest import Zl, ZlFactory, zalo_error
from tests.zalo.helpers import ACCESS, CHANNEL, REFRESH, USER, load


async def customer_writes(zl: Zl) -> str:
    await zl.deliver(load("user_send_text"))
    page = await get_json(zl.client, f"/v1/conversations?channel_id={CHANNEL}")
    return str(page["items"][0]["id"])


def stored_state(zl: Zl) -> dict[str, Any]:
    with read_only_db(zl.data_dir) as conn:
        return {
            r[0]: json.loads(r[1])
            for r in conn.execute(
                "SELECT key, value FROM channel_state WHERE channel_id = ?", (CHANNEL,)
            )
        }


async def test_a_text_reply_is_a_cs_message_with_the_access_token_header(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    # typed with decomposed diacritics: Zalo receives NFC
    text = unicodedata.normalize("NFD", "Dạ còn ạ, shop gửi bạn size M nhé 😊")
    message_id = await reply(zl, conv_id, {"text": text, "reply_to": None})
    sent = await settled(zl, message_id)
    assert sent["status"] == "sent", sent
    assert sent["external_id"] == "zmsg00010123456789abcdef0123456789"
    (request,) = [c.request for c in zl.zalo.send.calls]
    assert request.url == "https://openapi.zalo.test/v3.0/oa/message/cs"
    assert request.headers["access_token"] == ACCESS
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert "access_token" not in str(request.url)
    assert json.loads(request.content) == {
        "recipient": {"user_id": USER},
        "message": {"text": unicodedata.normalize("NFC", text)},
    }


async def test_a_reply_to_a_customer_message_quotes_it(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    messages = await get_json(zl.client, f"/v1/conversations/{conv_id}/messages")
    quoted = messages["items"][0]["id"]
    message_id = await reply(zl, conv_id, {"text": "Dạ có ạ", "reply_to": quoted})
    assert (await settled(zl, message_id))["status"] == "sent"
    assert zl.zalo.bodies()[0]["message"] == {
        "text": "Dạ có ạ",
        "quote_message_id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6",
    }


async def test_long_text_goes_as_several_messages_in_order(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    text = " ".join(["Cảm ơn bạn đã ủng hộ shop."] * 140)  # about 3,800 characters
    message_id = await reply(zl, conv_id, {"text": text})
    sent = await settled(zl, message_id)
    chunks = [b["message"]["text"] for b in zl.zalo.bodies()]
    assert len(chunks) == 2
    assert all(len(c) <= 2000 for c in chunks)
    assert " ".join(chunks) == text
    assert sent["external_id"] == "zmsg00020123456789abcdef0123456789"  # the last one


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GIF = b"GIF89a" + struct.pack("<HH", 320, 240) + b"\x00" * 32


async def test_an_image_reply_is_uploaded_then_sent(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    part = await zl.gw.pipeline.save_attachment(  # a file the agent attached
        zl.gw.connectors[CHANNEL].channel_id,  # type: ignore[index]
        PNG,
        name="ao-thun.png",
        mime="image/png",
    )
    message_id = await reply(
        zl,
        conv_id,
        {
            "parts": [
                {"type": "text", "text": "Ảnh thật nè"},
                {"type": "image", "url": part.url, "name": "ao-thun.png"},
            ]
        },
    )
    assert (await settled(zl, message_id))["status"] == "sent"
    (upload,) = [c.request for c in zl.zalo.upload.calls]
    assert upload.url == "https://openapi.zalo.test/v2.0/oa/upload/image"
    assert upload.headers["access_token"] == ACCESS
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="ao-thun.png"' in upload.content
    assert PNG in upload.content
    assert zl.zalo.bodies() == [
        {"recipient": {"user_id": USER}, "message": {"text": "Ảnh thật nè"}},
        {
            "recipient": {"user_id": USER},
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "media",
                        "elements": [{"media_type": "image", "attachment_id": "att2"}],
                    },
                }
            },
        },
    ]


async def test_gifs_carry_their_size_and_files_go_by_token(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    channel = zl.gw.connectors[CHANNEL].channel_id  # type: ignore[index]
    gif = await zl.gw.pipeline.save_attachment(channel, GIF, name="vui.gif", mime="image/gif")
    pdf = await zl.gw.pipeline.save_attachment(
        channel, b"%PDF-1.4 hoa don", name="hoa-don.pdf", mime="application/pdf"
    )
    zip_ = await zl.gw.pipeline.save_attachment(
        channel, b"PK\x03\x04", name="anh.zip", mime="application/zip"
    )
    message_id = await reply(
        zl,
        conv_id,
        {
            "parts": [
                {"type": "image", "url": gif.url},
                {"type": "file", "url": pdf.url, "name": "hoa-don.pdf"},
                {"type": "file", "url": zip_.url, "name": "anh.zip"},
            ]
        },
    )
    assert (await settled(zl, message_id))["status"] == "sent"
    paths = [c.request.url.path for c in zl.zalo.upload.calls]
    assert paths == ["/v2.0/oa/upload/gif", "/v2.0/oa/upload/file"]
    bodies = [b["message"] for b in zl.zalo.bodies()]
    element = bodies[0]["attachment"]["payload"]["elements"][0]
    assert element == {"media_type": "gif", "attachment_id": "att1", "width": 320, "height": 240}
    assert bodies[1] == {"attachment": {"type": "file", "payload": {"token": "ftoken3"}}}
    # no upload endpoint takes a zip: it goes as a line of text naming it
    assert bodies[2]["text"].startswith("[Tệp] anh.zip")


async def test_an_expired_token_is_refreshed_once_and_the_pair_persists(
    start_zl: ZlFactory,
) -> None:
    zl = await start_zl()
    conv_id = await customer_writes(zl)
    await eventually(lambda: _profile_done(zl))
    zl.zalo.send_script.append(zalo_error(-220, "Access token is expired or removed"))
    message_id = await reply(zl, conv_id, {"text": "Dạ shop đây ạ"})
    sent = await settled(zl, message_id)
    assert sent["status"] == "sent", sent
    assert zl.zalo.token.call_count == 1
    sends = [c.request for c in zl.zalo.send.calls]
    assert [r.headers["access_token"] for r in sends] == [ACCESS, "zalo-access-token-2"]
    assert json.loads(sends[0].content) == json.loads(sends[1].content)
    form = zl.zalo.token.calls.last.request
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form.headers["secret_key"]
    # persisted, encrypted: the tokens are not readable in the store
    state = stored_state(zl)["tokens"]
    assert "zalo-access-token-2" not in json.dumps(state)
    assert REFRESH not in json.dumps(state)
    # a restart keeps using the new pair: no refresh, and the old refresh token is spent
    await zl.gw.stop()
    zl = await start_zl()
    message_id = await reply(zl, conv_id, {"text": "Sau khi khởi động lại"})
    assert (await settled(zl, message_id))["status"] == "sent"
    assert zl.zalo.token.call_count == 1
    assert zl.zalo.send.calls.last.request.headers["access_token"] == "zalo-access-token-2"


async def _profile_done(zl: Zl) -> bool:
    return zl.zalo.profile.call_count >= 1


async def test_concurrent_rejections_share_one_refresh(zl: Zl) -> None:
    await customer_writes(zl)
    await eventually(lambda: _profile_done(zl))
    connector = zl.gw.connectors[CHANNEL]  # type: ignore[index]
    zl.zalo.expire()
    zl.zalo.refresh = REFRESH

    profiles = await asyncio.gather(
        *(connector._api(lambda t: connector.client.profile(t, USER)) for _ in range(5))  # type: ignore[attr-defined]
    )
    assert all(p.name == "Nguyễn Thị Thu" for p in profiles)
    assert zl.zalo.token.call_count == 1


async def test_a_refused_refresh_token_marks_bad_credentials_and_holds(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    await eventually(lambda: _profile_done(zl))
    zl.zalo.expire()
    zl.zalo.refresh = "someone-else-spent-it"
    message_id = await reply(zl, conv_id, {"text": "Chờ chút ạ"})
    connector = zl.gw.connectors[CHANNEL]  # type: ignore[index]

    async def broken() -> bool:
        return connector.health.state == HealthState.BAD_CREDENTIALS

    await eventually(broken)
    msg = await get_json(zl.client, f"/v1/messages/{message_id}")
    assert msg["status"] == "pending"
    assert msg["error"]["code"] == "refresh_failed:-14014"
    assert "Invalid refresh token" in msg["error"]["reason"]
    ready = await (await zl.client.get("/readyz")).json()
    assert ready["channels"][CHANNEL]["state"] == "BAD_CREDENTIALS"
    # the tokens work again (the admin fixed the app): the recheck brings the channel back
    zl.zalo.refresh = REFRESH

    async def back() -> bool:
        return connector.health.state == HealthState.CONNECTED

    await eventually(back)
    assert (await settled(zl, message_id, within=10))["status"] == "sent"


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (-230, "User has not interacted with the OA in the past 7 days", "window_closed:-230"),
        (-213, "User has not followed the OA", "recipient_unavailable:-213"),
        (-201, "message.text is invalid!", "zalo_error:-201"),
    ],
)
async def test_permanent_errors_fail_the_message_with_zalos_reason(
    zl: Zl, code: int, text: str, expected: str
) -> None:
    conv_id = await customer_writes(zl)
    zl.zalo.send_script.append(zalo_error(code, text))
    message_id = await reply(zl, conv_id, {"text": "Muộn rồi"})
    failed = await settled(zl, message_id)
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": expected,
        "reason": f"{text} (Zalo {code})",
        "retryable": False,
    }
    assert zl.zalo.send.call_count == 1


async def test_config_errors_mark_the_channel_bad_config(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    zl.zalo.send_script.append(zalo_error(-209, "Not supported this api"))
    message_id = await reply(zl, conv_id, {"text": "x"})
    assert (await settled(zl, message_id))["error"]["code"] == "config:-209"
    assert zl.gw.connectors[CHANNEL].health.state == HealthState.BAD_CONFIG  # type: ignore[index]


async def test_a_rate_limit_is_retried_then_sent(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    zl.zalo.send_script.append(zalo_error(-32, "Your application/OA reached limit call api"))
    message_id = await reply(zl, conv_id, {"text": "Thử lại"})

    async def deferred() -> Json | None:
        msg: Json = await get_json(zl.client, f"/v1/messages/{message_id}")
        return msg if msg["error"] else None

    held = await eventually(deferred)
    assert held["status"] == "pending"
    assert held["error"]["code"] == "rate_limited:-32"
    assert held["error"]["retryable"] is True
    sent = await settled(zl, message_id, within=10)
    assert sent["status"] == "sent"
    assert zl.zalo.send.call_count == 2


async def test_choices_go_as_buttons_and_a_tap_comes_back_as_the_pick(zl: Zl) -> None:
    conv_id = await customer_writes(zl)
    question = {
        "type": "choices",
        "text": "Bạn muốn nhận hàng lúc nào ạ?",
        "choices": [
            {"id": "morning", "title": "Buổi sáng"},
            {"id": "evening", "title": "Buổi tối"},
        ],
    }
    message_id = await reply(zl, conv_id, {"parts": [question]})
    assert (await settled(zl, message_id))["status"] == "sent"
    assert zl.zalo.bodies()[0] == {
        "recipient": {"user_id": USER},
        "message": {
            "text": "Bạn muốn nhận hàng lúc nào ạ?",
            "attachment": {
                "type": "template",
                "payload": {
                    "buttons": [
                        {"title": "Buổi sáng", "type": "oa.query.show", "payload": "Buổi sáng"},
                        {"title": "Buổi tối", "type": "oa.query.show", "payload": "Buổi tối"},
                    ]
                },
            },
        },
    }
    # A tap: Zalo sends the button's payload as the customer's own text.
    tap = load("user_send_text")
    tap["message"] = {"msg_id": "b1" * 16, "text": "Buổi tối"}
    await zl.deliver(tap)
    stored = await get_json(zl.client, f"/v1/conversations/{conv_id}/messages")
    picked = stored["items"][-1]
    assert picked["parts"] == [{"type": "text", "text": "Buổi tối"}]
    assert picked["metadata"] == {"choice": {"id": "evening", "title": "Buổi tối"}}


async def test_stand_ins_speak_the_conversation_s_language(zl: Zl) -> None:
    conv_id = await customer_writes(zl)  # written in Vietnamese
    conv = await get_json(zl.client, f"/v1/conversations/{conv_id}")
    assert conv["language"] == "vi"
    sticker = {"type": "sticker", "url": "https://cdn.shop.example/s/1.png", "name": "cười"}
    message_id = await reply(zl, conv_id, {"parts": [sticker]})
    assert (await settled(zl, message_id))["status"] == "sent"
    assert zl.zalo.bodies()[0]["message"] == {
        "text": "[Nhãn dán] cười https://cdn.shop.example/s/1.png"
    }
