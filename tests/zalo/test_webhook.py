"""Inbound through the real gateway: POST /webhooks/{channel_id} with Zalo's payloads,
X-ZEvent-Signature, dedupe of resent events, every event kind, bad input."""

from __future__ import annotations

import json
import unicodedata

import pytest

from connectors.zalo.parse import sign
from tests.api.helpers import eventually, get_json, post_json
from tests.providers import Json, all_messages, db_counts, raw_events
from tests.zalo.conftest import PROFILE, Zl
from tests.zalo.helpers import (
    ACCESS,
    APP_SECRET,
    CHANNEL,
    OA_ID,
    OA_SECRET,
    REFRESH,
    USER,
    dump,
    load,
    signed,
)


async def test_a_signed_text_is_stored_before_the_200(zl: Zl) -> None:
    answer = await zl.deliver(load("user_send_text"))
    assert answer == {"received": 1}
    (msg,) = await all_messages(zl)  # stored by the time Zalo has its 200
    assert msg["external_id"] == "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    assert msg["direction"] == "inbound"
    assert msg["parts"] == [{"type": "text", "text": "Shop ơi, áo này còn size M không ạ?"}]
    assert msg["created_at"]
    conv = await get_json(zl.client, f"/v1/conversations/{msg['conversation_id']}")
    contact = await get_json(zl.client, f"/v1/contacts/{conv['contact_id']}")
    identity = contact["identities"][0]
    assert (identity["channel_type"], identity["external_id"]) == ("zalo", USER)


async def test_profile_is_fetched_with_the_access_token_header(zl: Zl) -> None:
    await zl.deliver(load("user_send_text"))

    async def named() -> Json | None:
        page = await get_json(zl.client, f"/v1/conversations?channel_id={CHANNEL}")
        contact: Json = await get_json(zl.client, f"/v1/contacts/{page['items'][0]['contact_id']}")
        return contact if contact["display_name"] == PROFILE["display_name"] else None

    contact = await eventually(named)
    assert contact["identities"][0]["avatar_url"] == PROFILE["avatar"]
    request = zl.zalo.profile.calls.last.request
    assert request.headers["access_token"] == ACCESS
    assert "authorization" not in request.headers
    assert json.loads(request.url.params["data"]) == {"user_id": USER}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-ZEvent-Signature": "mac=" + "0" * 64},
        {"X-ZEvent-Signature": "sha256=" + "0" * 64},
        {"X-ZEvent-Signature": "garbage"},
    ],
    ids=["missing", "wrong", "wrong-scheme", "garbage"],
)
async def test_missing_or_wrong_signature_is_401_and_stores_nothing(
    zl: Zl, headers: dict[str, str]
) -> None:
    before = db_counts(zl.data_dir)
    resp = await zl.post(dump(load("user_send_text")), headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_signature"
    assert db_counts(zl.data_dir) == before


async def test_signatures_under_other_secrets_or_a_changed_body_are_refused(zl: Zl) -> None:
    before = db_counts(zl.data_dir)
    body = dump(load("user_send_text"))
    # the app secret is not the key that signs webhooks
    resp = await zl.post(body, headers=signed(body, APP_SECRET))
    assert resp.status == 401
    # a body changed after signing
    changed = body.replace(b"size M", b"size L")
    resp = await zl.post(changed, headers=signed(body))
    assert resp.status == 401
    # the timestamp signed is the one in the body: another one does not match
    data = load("user_send_text")
    mac = sign(data["app_id"], body, "1767225600001", OA_SECRET)
    resp = await zl.post(body, headers={"X-ZEvent-Signature": mac})
    assert resp.status == 401
    assert db_counts(zl.data_dir) == before


async def test_the_raw_bytes_are_signed_not_a_reencoding(zl: Zl) -> None:
    # Pretty-printed with escapes: the signature covers exactly these bytes.
    body = json.dumps(load("user_send_text"), indent=2, ensure_ascii=True).encode()
    await zl.deliver(body)
    (msg,) = await all_messages(zl)
    assert msg["parts"][0]["text"] == "Shop ơi, áo này còn size M không ạ?"


async def test_a_signature_with_oa_id_first_is_accepted(zl: Zl) -> None:
    body = dump(load("user_send_text"))
    resp = await zl.post(body, headers=signed(body, first=OA_ID))
    assert resp.status == 200
    assert len(await all_messages(zl)) == 1


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        (b'{"event_name": "user_send_text", ', "bad_json", "not JSON"),
        (b"\xff\xfe{}", "not_utf8", "not UTF-8"),
        (b"[1, 2]", "bad_payload", "not a JSON object"),
    ],
)
async def test_malformed_bodies_are_400_with_the_reason(
    zl: Zl, body: bytes, code: str, reason: str
) -> None:
    before = db_counts(zl.data_dir)
    resp = await zl.post(body, headers={"X-ZEvent-Signature": "mac=" + "a" * 64})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert reason in error["message"]
    assert db_counts(zl.data_dir) == before


async def test_a_signed_object_without_event_name_is_400(zl: Zl) -> None:
    data = load("user_send_text")
    del data["event_name"]
    resp = await zl.post(dump(data))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "missing_field"


async def test_huge_bodies_are_413(zl: Zl) -> None:
    data = load("user_send_text")
    data["message"]["text"] = "a" * (2 * 1024 * 1024)
    resp = await zl.post(dump(data))
    assert resp.status == 413


async def test_a_resent_event_is_stored_once(zl: Zl) -> None:
    body = dump(load("user_send_text"))
    for _ in range(3):
        await zl.deliver(body)
    assert len(await all_messages(zl)) == 1
    assert db_counts(zl.data_dir)["messages"] == 1


EXPECTED_PARTS: dict[str, list[Json]] = {
    "user_send_image": [
        {"type": "text", "text": "Mẫu này nè"},
        {
            "type": "image",
            "url": "https://photo-stal-1.zadn.vn/full/ab12.jpg",
            "name": None,
            "mime": None,
            "size": None,
        },
    ],
    "user_send_gif": [
        {
            "type": "image",
            "url": "https://photo-stal-1.zadn.vn/full/g1.gif",
            "name": None,
            "mime": "image/gif",
            "size": None,
        }
    ],
    "user_send_sticker": [
        {
            "type": "sticker",
            "url": "https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=46991&size=130",
            "name": "sticker 5f8cd02bb8e851b608f9",
            "mime": None,
            "size": None,
        }
    ],
    "user_send_file": [
        {
            "type": "file",
            "url": "https://f10-zpc.zdn.vn/7283/hoa-don.pdf",
            "name": "Hóa đơn tháng 12.pdf",
            "mime": None,
            "size": 48213,
        }
    ],
    "user_send_audio": [
        {
            "type": "audio",
            "url": "https://voice-stal.zadn.vn/v/aa11.amr",
            "name": None,
            "mime": None,
            "size": None,
        }
    ],
    "user_send_video": [
        {
            "type": "video",
            "url": "https://video-stal.zadn.vn/v/v1.mp4",
            "name": None,
            "mime": None,
            "size": None,
        }
    ],
    "user_send_location": [{"type": "location", "latitude": 10.7769, "longitude": 106.7009}],
    "user_send_link": [
        {"type": "link", "url": "https://shop.example/ao-thun", "title": "Áo thun cotton"}
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARTS))
async def test_each_kind_of_user_message_is_stored(zl: Zl, name: str) -> None:
    data = load(name)
    await zl.deliver(data)
    (msg,) = await all_messages(zl)
    assert msg["external_id"] == data["message"]["msg_id"]
    # Media parts also say whether the gateway keeps the file (not yet, here).
    kept = {"attachment_id": None, "source_url": None, "error": None}
    expected = [
        p if "url" not in p or p["type"] == "link" else {**p, **kept} for p in EXPECTED_PARTS[name]
    ]
    assert msg["parts"] == expected


async def test_unknown_kinds_are_kept_raw_and_the_others_unaffected(zl: Zl) -> None:
    await zl.deliver(load("user_send_text"))
    unknown = load("unknown_react_message")
    assert (await zl.deliver(unknown)) == {"received": 1}
    await zl.deliver(load("follow"))
    await zl.deliver(load("user_send_image"))
    ids = [m["external_id"] for m in await all_messages(zl)]
    assert sorted(ids) == ["a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "img0c0ffee0000000000000000000001"]
    kept = raw_events(zl.data_dir)
    assert [k for k, _, _ in kept] == ["user_react_message", "follow"]
    assert "unknown event kind" in kept[0][1]
    assert json.loads(kept[0][2]) == unknown  # kept as it came


async def test_broken_events_are_kept_raw_with_a_200(zl: Zl) -> None:
    data = load("user_send_text")
    del data["message"]["msg_id"]
    await zl.deliver(data)
    other_oa = load("user_send_text")
    other_oa["recipient"]["id"] = "111"
    await zl.deliver(other_oa)
    assert await all_messages(zl) == []
    reasons = [r for _, r, _ in raw_events(zl.data_dir)]
    assert reasons[0] == "invalid user_send_text: the message has no msg_id"
    assert "is not the one configured" in reasons[1]


async def test_vietnamese_is_stored_in_nfc(zl: Zl) -> None:
    data = load("user_send_text")
    decomposed = unicodedata.normalize("NFD", "Cảm ơn shop, giao hàng nhanh quá!")
    data["message"]["text"] = decomposed
    await zl.deliver(data)
    (msg,) = await all_messages(zl)
    assert msg["parts"][0]["text"] == unicodedata.normalize("NFC", decomposed)
    assert msg["parts"][0]["text"] != decomposed


async def test_an_oa_message_typed_elsewhere_is_an_outbound_message(zl: Zl) -> None:
    await zl.deliver(load("user_send_text"))
    await zl.deliver(load("oa_send_text"))
    await zl.deliver(load("oa_send_text"))  # resent: once
    msgs = await all_messages(zl)
    assert [(m["direction"], m["parts"][0].get("text")) for m in msgs] == [
        ("inbound", "Shop ơi, áo này còn size M không ạ?"),
        ("outbound", "Dạ shop chào bạn ạ"),
    ]
    assert len({m["conversation_id"] for m in msgs}) == 1


@pytest.mark.parametrize(
    ("name", "status"), [("user_received_message", "delivered"), ("user_seen_message", "read")]
)
async def test_delivery_and_seen_events_move_our_message(zl: Zl, name: str, status: str) -> None:
    await zl.deliver(load("user_send_text"))
    page = await get_json(zl.client, f"/v1/conversations?channel_id={CHANNEL}")
    conv_id = page["items"][0]["id"]
    msg = await post_json(
        zl.client, f"/v1/conversations/{conv_id}/messages", {"text": "Dạ còn ạ"}, status=202
    )

    async def sent() -> Json | None:
        m: Json = await get_json(zl.client, f"/v1/messages/{msg['id']}")
        return m if m["status"] == "sent" else None

    external_id = (await eventually(sent))["external_id"]
    # our own echo: not stored a second time
    echo = load("oa_send_text")
    echo["message"]["msg_id"] = external_id
    await zl.deliver(echo)
    event = load(name)
    event["message"]["msg_ids"] = [external_id]
    await zl.deliver(event)
    after = await get_json(zl.client, f"/v1/messages/{msg['id']}")
    assert after["status"] == status
    assert len(await all_messages(zl)) == 2


async def test_secrets_never_reach_answers_or_reprs(zl: Zl) -> None:
    connector = zl.gw.connectors[CHANNEL]  # type: ignore[index]
    texts = [
        repr(connector),
        repr(connector.settings),  # type: ignore[attr-defined]
        str(connector.settings.model_dump()),  # type: ignore[attr-defined]
        json.dumps(await get_json(zl.client, "/v1/channels")),
    ]
    for text in texts:
        for secret in (APP_SECRET, OA_SECRET, ACCESS, REFRESH):
            assert secret not in text
    assert OA_ID in repr(connector)
