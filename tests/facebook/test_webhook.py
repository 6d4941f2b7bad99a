"""Inbound through the real gateway: POST /webhooks/{channel_id} with Meta's payloads
(the fixtures), signatures, dedupe of retried batches, every event kind, bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.facebook.connector import FacebookConnector
from connectors.facebook.parse import sign
from connectors.facebook.settings import FacebookSettings
from kernel.envelope import InboundMessage, IngestResult
from kernel.errors import StoreUnavailable
from tests.api.helpers import eventually, get_json
from tests.facebook.conftest import PROFILE, Fb, FbFactory
from tests.facebook.helpers import (
    APP_SECRET,
    CHANNEL,
    PAGE,
    PAGE2,
    PSID,
    PSID2,
    TOKEN,
    TOKEN2,
    VERIFY_TOKEN,
    dump,
    item,
    load,
    raw,
    signed,
)
from tests.providers import (
    Json,
    all_messages,
    conversations,
    db_counts,
    events,
    messages,
    raw_events,
)

# --- GET verification -------------------------------------------------------------------------


async def test_verification_answers_the_challenge(fb: Fb) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    resp = await fb.client.get(f"/webhooks/{CHANNEL}", params=query)
    assert resp.status == 200
    assert await resp.text() == "1158201444"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403),
        ({"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.verify_token": "ẞ", "hub.challenge": "1"}, 403),
        ({}, 403),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400),
    ],
)
async def test_verification_refusals(fb: Fb, query: dict[str, str], status: int) -> None:
    resp = await fb.client.get(f"/webhooks/{CHANNEL}", params=query)
    assert resp.status == status
    body = await resp.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert VERIFY_TOKEN not in json.dumps(body)


async def test_unknown_channel_is_404(fb: Fb) -> None:
    resp = await fb.client.post("/webhooks/nope", data=raw("message_text"))
    assert resp.status == 404


# --- signature and bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign(b"another-app-secret", raw("message_text"))},
        {"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"},
        {"X-Hub-Signature-256": sign(APP_SECRET.encode(), raw("message_text"))[:-2]},
    ],
)
async def test_missing_or_wrong_signature_is_401_and_stores_nothing(
    fb: Fb, headers: dict[str, str]
) -> None:
    before = db_counts(fb.data_dir)
    resp = await fb.post(raw("message_text"), headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_signature"
    assert db_counts(fb.data_dir) == before


async def test_a_signed_body_changed_in_transit_is_refused(fb: Fb) -> None:
    body = raw("message_text")
    tampered = body.replace(b"size M", b"size L")
    resp = await fb.post(tampered, headers=signed(body))
    assert resp.status == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (raw("batch_mixed")[:-40], "bad_json"),  # truncated
        (raw("message_text").replace(b'"page"', b'"instagram"', 1), "wrong_object"),
        (b'{"object": "page"}', "missing_field"),
        (b'{"entry": []}', "missing_field"),
        (b'{"object": "page", "entry": "x"}', "bad_payload"),
        ("Chào".encode("utf-16"), "not_utf8"),
        (b"\xc3\x28", "not_utf8"),
        (b"[1, 2]", "bad_payload"),
        (b"", "bad_json"),
    ],
)
async def test_bad_bodies_are_400_and_store_nothing(fb: Fb, body: bytes, code: str) -> None:
    before = db_counts(fb.data_dir)
    resp = await fb.post(body)  # correctly signed: the body itself is what is wrong
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert db_counts(fb.data_dir) == before


async def test_huge_bodies_are_413(start_fb: FbFactory) -> None:
    fb = await start_fb(max_body_bytes=64 * 1024)
    before = db_counts(fb.data_dir)
    payload = load("message_text")
    item(payload)["message"]["text"] = "a" * (70 * 1024)
    body = dump(payload)
    resp = await fb.post(body)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream is counted
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    resp = await fb.client.post(f"/webhooks/{CHANNEL}", data=chunks(), headers=signed(body))
    assert resp.status == 413
    assert db_counts(fb.data_dir) == before
    # just under the limit is fine, and larger than the gateway's API body limit would be
    item(payload)["message"]["text"] = "a" * (60 * 1024)
    assert (await fb.post(payload)).status == 200


async def test_batches_over_the_api_body_limit_are_accepted(fb: Fb) -> None:
    payload = load("message_text")
    template = item(payload)
    entry = payload["entry"][0]
    entry["messaging"] = [
        {**template, "message": {"mid": f"m_big-{i}", "text": "ư" * 1500}} for i in range(400)
    ]
    body = dump(payload)
    assert len(body) > fb.gw.settings.server.max_body_bytes
    assert (await fb.deliver(body))["received"] == 400


# --- messages -----------------------------------------------------------------------------------


async def test_a_message_is_stored_before_the_answer_and_routed(fb: Fb) -> None:
    answer = await fb.deliver(raw("message_text"))
    assert answer == {"received": 1}
    # stored before the 200: readable at once, no waiting
    (conv,) = await conversations(fb)
    (msg,) = await messages(fb, conv["id"])
    assert msg["external_id"] == "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ"
    assert msg["direction"] == "inbound" and msg["status"] == "received"
    assert msg["parts"] == [{"type": "text", "text": "Chào shop, áo này còn size M không?"}]
    contact = await get_json(fb.client, f"/v1/contacts/{conv['contact_id']}")
    assert [(i["channel_type"], i["external_id"]) for i in contact["identities"]] == [
        ("facebook", PSID)
    ]

    async def assigned() -> bool:
        c = await get_json(fb.client, f"/v1/conversations/{conv['id']}")
        return bool(c["status"] == "assigned" and c["assignee_id"] == "lan")

    await eventually(assigned)


EXPECTED_PARTS: dict[str, list[Json]] = {
    "message_quick_reply": [
        {"type": "text", "text": "Màu đỏ"},
    ],
    "message_image": [{"type": "image"}],
    "message_audio": [{"type": "audio"}],
    "message_video": [{"type": "video"}],
    "message_file": [{"type": "file", "name": "bang_gia_2026.pdf"}],
    "message_sticker": [{"type": "sticker"}],
    "message_sticker_legacy": [{"type": "sticker"}],
    "message_fallback": [
        {"type": "text", "text": "https://shop.example/ao-so-mi-trang"},
        {
            "type": "link",
            "url": "https://shop.example/ao-so-mi-trang",
            "title": "Áo sơ mi trắng - Shop",
        },
    ],
    "message_reel": [{"type": "link", "title": "Phối đồ mùa hè"}],
    "message_ig_reel": [{"type": "link", "title": "Lookbook"}],
    "message_post": [{"type": "link", "title": "Khuyến mãi tháng 1"}],
    "message_ig_post": [{"type": "link", "title": "Bộ sưu tập mới"}],
    "message_appointment_booking": [
        {"type": "text", "text": "[appointment_booking] Lịch hẹn thử đồ 10:00 15/01"}
    ],
    "message_location": [{"type": "location", "latitude": 10.7769, "longitude": 106.7009}],
    "postback": [
        {"type": "text", "text": "Bắt đầu"},
    ],
    "postback_standby": [{"type": "text", "text": "Xem sản phẩm"}],
    "standby_message": [{"type": "text", "text": "Bot không hiểu, cho em gặp người thật"}],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARTS))
async def test_each_kind_of_customer_message_is_stored(fb: Fb, name: str) -> None:
    await fb.deliver(raw(name))
    (msg,) = await all_messages(fb)
    assert msg["direction"] == "inbound"
    assert len(msg["parts"]) == len(EXPECTED_PARTS[name])
    for part, expected in zip(msg["parts"], EXPECTED_PARTS[name], strict=True):
        assert expected.items() <= part.items(), part
        if part["type"] in ("image", "audio", "video", "file", "sticker"):
            assert part["url"].startswith("https://")  # Meta's URL, kept as it came
    assert msg["metadata"] == EXPECTED_METADATA.get(name, {})
    assert raw_events(fb.data_dir) == []


EXPECTED_METADATA: dict[str, Json] = {
    "message_quick_reply": {"payload": "COLOR_RED", "payload_from": "quick_reply"},
    "postback": {
        "payload": "GET_STARTED",
        "payload_from": "postback",
        "referral": {"source": "SHORTLINK", "type": "OPEN_THREAD", "ref": "summer_sale"},
    },
}


async def test_payloads_never_reach_the_text_nor_the_customer_s_view(fb: Fb) -> None:
    # The quick reply's and the button's developer data are kept as metadata; neither
    # the stored parts nor the event the helpdesk reads carry them as words.
    for name in ("message_quick_reply", "postback", "postback"):
        await fb.deliver(raw(name))
    stored = await all_messages(fb)
    assert len(stored) == 2
    for msg in stored:
        text = json.dumps(msg["parts"], ensure_ascii=False)
        assert "COLOR_RED" not in text and "GET_STARTED" not in text
        assert "payload" not in text


async def test_reply_to_joins_the_quoted_message(fb: Fb) -> None:
    await fb.deliver(raw("message_text"))
    await fb.deliver(raw("message_reply_to"))
    first, second = await all_messages(fb)
    assert second["reply_to"] == first["id"]
    assert second["conversation_id"] == first["conversation_id"]


async def test_same_batch_three_times_gives_one_copy(fb: Fb) -> None:
    for name in ("batch_mixed", "batch_two_pages"):
        for _ in range(3):
            await fb.deliver(raw(name))
    stored = await all_messages(fb)
    assert sorted(m["external_id"] for m in stored) == sorted(
        [
            "m_mixed-0040-Cy9Vu0Bi1No2Mp3Qa4Ws",
            "m_mixed-0041-Ed5Rf6Tg7Yh8Uj9Ik0Ol",
            "m_mixed-0042-Pz1Ax2Sc3Dv4Fb5Gn6Hm",
            "m_batch-0030-Aq1Sw2De3Fr4Gt5Hy6Ju",
            "m_batch-0031-Ki7Lo8Pz9Xa0Sc1Dv2Fb",
            "m_batch-0032-Gn3Hm4Jq5Kw6Le7Zr8Xt",
        ]
    )
    assert len(await events(fb, "message.received")) == 6
    assert len(await events(fb, "conversation.created")) == 2  # one per customer
    assert len(await events(fb, "contact.created")) == 2


async def test_broken_items_are_kept_raw_and_the_rest_stored(fb: Fb) -> None:
    answer = await fb.deliver(raw("batch_with_broken_items"))
    assert answer == {"received": 7}
    stored = await all_messages(fb)
    assert [m["parts"][0]["text"] for m in stored] == ["Tin hợp lệ thứ nhất", "Tin hợp lệ thứ hai"]
    kept = raw_events(fb.data_dir)
    assert [(kind, reason) for kind, reason, _ in kept] == [
        ("message", "invalid message: the message has no sender id"),
        ("message", "invalid message: the message has no mid"),
        ("message", "invalid message: 'message' is not an object"),
        ("item", "invalid item: the item is not a JSON object"),
        ("entry", "invalid entry: the entry has no page id"),
    ]
    assert json.loads(kept[0][2])["item"]["message"]["mid"] == "m_bad-0051-nosender"


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("referral", "referral", "referral (source=SHORTLINK, type=OPEN_THREAD, ref=summer_sale)"),
        (
            "handover_request_thread_control",
            "request_thread_control",
            "handover event request_thread_control",
        ),
        ("handover_app_roles", "app_roles", "handover event app_roles"),
        ("unknown_message_edit", "message_edit", "unknown event kind 'message_edit'"),
    ],
)
async def test_referral_handover_and_unknown_kinds_are_kept_raw(
    fb: Fb, name: str, kind: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    assert (await fb.deliver(raw(name)))["received"] == 1
    ((stored_kind, stored_reason, payload),) = raw_events(fb.data_dir)
    assert (stored_kind, stored_reason) == (kind, reason)
    assert json.loads(payload)["item"] == item(load(name))
    assert reason in caplog.text
    assert await all_messages(fb) == []


async def test_two_pages_and_an_unknown_page(fb: Fb) -> None:
    await fb.deliver(raw("batch_two_pages"))
    convs = await conversations(fb)
    assert len(convs) == 2
    payload = load("message_text")
    payload["entry"][0]["id"] = "104999999999999"
    await fb.deliver(payload)
    ((kind, reason, _),) = raw_events(fb.data_dir)
    assert (kind, reason) == ("message", "page 104999999999999 is not configured on this channel")
    assert len(await all_messages(fb)) == 3


async def test_sticker_sent_twice_as_two_events_is_stored_once(fb: Fb) -> None:
    payload = load("message_sticker")
    first = item(payload)
    sticker, image = first["message"]["attachments"]
    second = json.loads(json.dumps(first))
    first["message"]["attachments"] = [sticker]
    second["message"]["attachments"] = [image]
    second["message"]["mid"] = "m_sticker-0008-second-copy"
    payload["entry"][0]["messaging"].append(second)
    await fb.deliver(payload)
    (msg,) = await all_messages(fb)
    assert [p["type"] for p in msg["parts"]] == ["sticker"]


# --- echoes -------------------------------------------------------------------------------------


async def test_echo_from_the_page_inbox_is_an_outbound_message(fb: Fb) -> None:
    await fb.deliver(raw("message_text"))
    await fb.deliver(raw("echo_page_inbox"))
    customer, human = await all_messages(fb)
    assert human["direction"] == "outbound"
    assert human["status"] == "sent"
    assert human["author"] == {"type": "agent", "id": None}
    assert human["conversation_id"] == customer["conversation_id"]
    assert human["parts"] == [{"type": "text", "text": "Chị ơi em kiểm tra rồi, mai giao nhé"}]
    # the customer is still the identity the conversation replies to
    conv = await get_json(fb.client, f"/v1/conversations/{human['conversation_id']}")
    contact = await get_json(fb.client, f"/v1/contacts/{conv['contact_id']}")
    assert [i["external_id"] for i in contact["identities"]] == [PSID]


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("echo_other_app", [{"type": "image"}]),
        (
            "echo_template",
            [{"type": "text", "text": "[template: generic]\nÁo sơ mi trắng - 350.000đ"}],
        ),
    ],
)
async def test_echoes_from_other_apps_are_stored(fb: Fb, name: str, parts: list[Json]) -> None:
    await fb.deliver(raw(name))
    (msg,) = await all_messages(fb)
    assert msg["direction"] == "outbound"
    assert all(
        expected.items() <= part.items() for part, expected in zip(msg["parts"], parts, strict=True)
    ), msg["parts"]


async def test_echo_of_our_app_is_never_stored(fb: Fb) -> None:
    payload = load("echo_own_app")
    del item(payload)["message"]["metadata"]  # our app_id, no marker: still ours
    await fb.deliver(payload)
    assert await all_messages(fb) == []
    assert raw_events(fb.data_dir) == []


async def test_echo_naming_an_unknown_message_is_kept_raw(fb: Fb) -> None:
    await fb.deliver(raw("echo_own_app"))  # its marker names msg_PLACEHOLDER
    assert await all_messages(fb) == []
    ((kind, reason, _),) = raw_events(fb.data_dir)
    assert (kind, reason) == ("echo", "echo names an unknown message")


# --- profile ------------------------------------------------------------------------------------


async def test_profile_is_fetched_once_in_the_background(fb: Fb) -> None:
    await fb.deliver(raw("message_text"))
    await fb.deliver(raw("message_quick_reply"))
    (conv,) = await conversations(fb)

    async def named() -> Json | None:
        contact: Json = await get_json(fb.client, f"/v1/contacts/{conv['contact_id']}")
        return contact if contact["display_name"] == "Ngọc Trần" else None

    contact = await eventually(named)
    (identity,) = contact["identities"]
    assert identity["display_name"] == "Ngọc Trần"
    assert identity["avatar_url"] == PROFILE["profile_pic"]
    (call,) = fb.graph.profile.calls
    assert call.request.url.path == f"/v25.0/{PSID}"
    assert call.request.url.params["access_token"] == TOKEN
    # a customer of the second page is looked up with that page's token
    await fb.deliver(raw("batch_two_pages"))
    await eventually(lambda: _calls_to(fb, PSID2))
    assert fb.graph.profile.calls.last.request.url.params["access_token"] == TOKEN2


async def _calls_to(fb: Fb, psid: str) -> bool:
    return any(c.request.url.path.endswith(psid) for c in fb.graph.profile.calls)


async def test_profile_failure_never_blocks_the_message(fb: Fb) -> None:
    gate, asked = asyncio.Event(), asyncio.Event()

    async def slow_then_fail(request: httpx.Request) -> httpx.Response:
        asked.set()
        await gate.wait()
        return httpx.Response(500, json={"error": {"code": 2, "message": "Unexpected error"}})

    fb.graph.profile.side_effect = slow_then_fail
    await fb.deliver(raw("message_text"))  # answered while the profile call hangs
    assert len(await all_messages(fb)) == 1
    await asyncio.wait_for(asked.wait(), 5)
    gate.set()
    await eventually(lambda: _calls_to(fb, PSID))
    await fb.deliver(raw("message_quick_reply"))
    assert len(await all_messages(fb)) == 2
    (conv,) = await conversations(fb)
    contact = await get_json(fb.client, f"/v1/contacts/{conv['contact_id']}")
    assert contact["display_name"] is None
    assert fb.graph.profile.call_count == 1  # a failed fetch is not retried per message


# --- when the store fails -------------------------------------------------------------------


class FlakySink:
    """The gateway's sink, failing ingest of one mid a set number of times."""

    def __init__(
        self,
        inner: Any,
        mid: str,
        failures: int,
        keep_raw_fails: bool = False,
        error: Exception | None = None,
    ) -> None:
        self.inner = inner
        self.mid = mid
        self.failures = failures
        self.keep_raw_fails = keep_raw_fails
        self.error = error or RuntimeError("database is locked")

    async def ingest(self, message: InboundMessage) -> IngestResult:
        if message.external_id == self.mid and self.failures > 0:
            self.failures -= 1
            raise self.error
        result: IngestResult = await self.inner.ingest(message)
        return result

    async def keep_raw(self, *args: Any) -> None:
        if self.keep_raw_fails:
            raise RuntimeError("database is gone")
        await self.inner.keep_raw(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def hook(fb: Fb, sink: FlakySink) -> tuple[TestClient, FacebookConnector]:  # type: ignore[type-arg]
    connector = fb.gw.connectors[CHANNEL]
    assert isinstance(connector, FacebookConnector)
    settings = FacebookSettings.model_validate(connector.settings.model_dump())
    flaky = FacebookConnector(settings, httpx.AsyncClient())
    await flaky.start(sink)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/hook", flaky.handle_webhook)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, flaky


async def test_a_store_failure_is_503_so_meta_retries(fb: Fb) -> None:
    body = raw("batch_two_pages")
    sink = FlakySink(fb.gw.pipeline, "m_batch-0031-Ki7Lo8Pz9Xa0Sc1Dv2Fb", failures=1)
    client, connector = await hook(fb, sink)
    try:
        first = await client.post("/hook", data=body, headers=signed(body))
        assert first.status == 503
        assert (await first.json())["error"]["code"] == "retry_later"
        # the others were stored; the retry adds the missing one and nothing twice
        assert len(await all_messages(fb)) == 2
        again = await client.post("/hook", data=body, headers=signed(body))
        assert again.status == 200
        assert len(await all_messages(fb)) == 3
    finally:
        await client.close()
        await connector.aclose()


async def test_an_item_that_keeps_failing_is_kept_raw_after_three_tries(fb: Fb) -> None:
    body = raw("message_text")
    sink = FlakySink(fb.gw.pipeline, "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ", failures=100)
    client, connector = await hook(fb, sink)
    try:
        statuses = [
            (await client.post("/hook", data=body, headers=signed(body))).status for _ in range(3)
        ]
        assert statuses == [503, 503, 200]
        ((kind, reason, _),) = raw_events(fb.data_dir)
        assert (kind, reason) == ("message", "could not be handled after 3 attempts (RuntimeError)")
        sink.keep_raw_fails = True
        sink.mid = "m_quick-0002-Hc3vN8pX1qA6mR0tY5uE"
        quick = raw("message_quick_reply")
        statuses = [
            (await client.post("/hook", data=quick, headers=signed(quick))).status for _ in range(4)
        ]
        assert statuses == [503] * 4  # never acknowledged while nothing can be kept
    finally:
        await client.close()
        await connector.aclose()


async def test_an_item_is_never_given_up_while_the_store_is_unreachable(fb: Fb) -> None:
    # The store answering "unreachable" (PostgreSQL restarting) is not the event's fault:
    # however often Meta retries meanwhile, it ends as a message, never kept raw.
    body = raw("message_text")
    down = StoreUnavailable("the database is unreachable: connection refused")
    sink = FlakySink(fb.gw.pipeline, "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ", failures=5, error=down)
    client, connector = await hook(fb, sink)
    try:
        statuses = [
            (await client.post("/hook", data=body, headers=signed(body))).status for _ in range(6)
        ]
        assert statuses == [503] * 5 + [200]
        assert raw_events(fb.data_dir) == []
        (msg,) = await all_messages(fb)
        assert msg["external_id"] == "m_text-0001-kT9xQ2bV7nL4sW8cR1yZ"
    finally:
        await client.close()
        await connector.aclose()


class FailingReactions(FlakySink):
    """The gateway's sink, failing every reaction."""

    async def react(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is locked")


async def test_a_reaction_that_keeps_failing_is_kept_raw_as_a_reaction(fb: Fb) -> None:
    body = raw("reaction_react")
    client, connector = await hook(fb, FailingReactions(fb.gw.pipeline, "", failures=0))
    try:
        statuses = [
            (await client.post("/hook", data=body, headers=signed(body))).status for _ in range(3)
        ]
        assert statuses == [503, 503, 200]
        ((kind, reason, _),) = raw_events(fb.data_dir)
        assert kind == "reaction"
        assert reason == "could not be handled after 3 attempts (RuntimeError)"
    finally:
        await client.close()
        await connector.aclose()


async def test_secrets_never_reach_answers_or_reprs(fb: Fb) -> None:
    connector = fb.gw.connectors[CHANNEL]
    texts = [repr(connector), repr(connector.settings), str(connector.settings.model_dump())]  # type: ignore[attr-defined]
    channels = await get_json(fb.client, "/v1/channels")
    texts.append(json.dumps(channels))
    for text in texts:
        for secret in (APP_SECRET, VERIFY_TOKEN, TOKEN, TOKEN2):
            assert secret not in text
    assert PAGE in repr(connector) and PAGE2 in repr(connector)
