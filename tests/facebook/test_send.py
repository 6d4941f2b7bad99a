"""Outbound through the real gateway: agent replies become the exact Send API requests
Meta would receive; the window, long texts, attachments, every Graph error of table 1.8,
typing and seen, and the page a customer belongs to across restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

import gateway.outbound as outbound_worker
from connectors.base import HealthState
from connectors.errors import WindowClosed
from connectors.facebook.connector import FacebookConnector
from kernel.envelope import OutboundMessage
from kernel.ids import ConversationId
from kernel.models import utcnow
from tests.api.helpers import eventually, get_json, post_json
from tests.api.sse import read_events
from tests.conftest import AUTH
from tests.facebook.conftest import Fb, FbFactory
from tests.facebook.helpers import (
    APP_SECRET,
    CHANNEL,
    PAGE,
    PAGE2,
    PSID,
    PSID2,
    TOKEN,
    TOKEN2,
    item,
    load,
    raw,
)
from tests.facebook.test_client import TABLE_1_8, graph_error
from tests.providers import reply, settled


def now_ms() -> int:
    return int(time.time() * 1000)


async def customer_writes(fb: Fb, name: str = "message_text") -> str:
    """A customer message arrives; returns its conversation id."""
    await fb.deliver(raw(name))
    page = await get_json(fb.client, f"/v1/conversations?channel_id={CHANNEL}")
    psid = PSID2 if name == "batch_two_pages" else PSID
    for conv in page["items"]:
        contact = await get_json(fb.client, f"/v1/contacts/{conv['contact_id']}")
        if contact["identities"][0]["external_id"] == psid:
            return str(conv["id"])
    raise AssertionError("no conversation for the customer")


async def test_end_to_end(fb: Fb) -> None:
    stream = await fb.client.get(
        "/v1/events?types=message.sent,message.delivered,message.read", headers=AUTH
    )
    conv_id = await customer_writes(fb)

    async def routed() -> bool:
        conv = await get_json(fb.client, f"/v1/conversations/{conv_id}")
        return bool(conv["assignee_id"] == "lan")

    await eventually(routed)
    text = "Dạ còn ạ, shop gửi bạn size M nhé 😊"
    message_id = await reply(fb, conv_id, {"text": text})
    sent = await settled(fb, message_id)
    assert sent["status"] == "sent", sent

    # exactly what Meta receives
    ((path, token, body),) = fb.graph.messages()
    assert path == f"/v25.0/{PAGE}/messages"
    assert token == TOKEN
    assert body == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": text, "metadata": f"omnigw:{message_id}:1/1"},
    }
    request = fb.graph.send.calls.last.request
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert dict(request.url.params) == {"access_token": TOKEN, "appsecret_proof": proof}
    assert request.headers["content-type"] == "application/json"
    mid = sent["external_id"]
    assert mid == "m_out-0001-sent-by-graph-fake"

    # our own echo comes back: matched, not stored a second time
    echo = load("echo_own_app")
    echo_item = item(echo)
    echo_item["message"].update(mid=mid, metadata=f"omnigw:{message_id}:1/1", text=text)
    echo_item["timestamp"] = now_ms()
    await fb.deliver(echo)
    stored = await get_json(fb.client, f"/v1/conversations/{conv_id}/messages")
    assert [m["direction"] for m in stored["items"]] == ["inbound", "outbound"]

    # delivered, by mid and watermark
    delivery = load("delivery")
    item(delivery)["delivery"] = {"mids": [mid], "watermark": now_ms()}
    item(delivery)["timestamp"] = now_ms()
    await fb.deliver(delivery)
    assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "delivered"

    # read, by watermark
    read = load("read")
    item(read)["read"] = {"watermark": now_ms()}
    await fb.deliver(read)
    assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "read"

    # ...and announced as events, in order, on the stream
    got = await read_events(stream, 3)
    assert [(e.event, e.data["data"]["message"]["id"]) for e in got] == [
        ("message.sent", message_id),
        ("message.delivered", message_id),
        ("message.read", message_id),
    ]
    assert got[2].data["data"]["message"]["status"] == "read"
    # a late, replayed delivery never undoes the read
    await fb.deliver(delivery)
    assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "read"


async def test_reactions_on_our_message(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    message_id = await reply(fb, conv_id, {"text": "Dạ"})
    mid = (await settled(fb, message_id))["external_id"]
    react = load("reaction_react")
    item(react)["reaction"]["mid"] = mid
    await fb.deliver(react)
    msg = await get_json(fb.client, f"/v1/messages/{message_id}")
    ((reaction),) = msg["reactions"]
    assert (reaction["reaction"], reaction["emoji"], reaction["by"]["type"]) == (
        "love",
        "❤",
        "contact",
    )
    unreact = load("reaction_unreact")
    item(unreact)["reaction"]["mid"] = mid
    await fb.deliver(unreact)
    assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["reactions"] == []
    actions = [
        e.data["action"] for e in await fb.gw.store.events.after(0, 1000, types=["message.reacted"])
    ]
    assert actions == ["react", "unreact"]


async def test_our_echo_before_the_send_returns(fb: Fb) -> None:
    """Meta may deliver the echo before it answers the Send API call."""
    conv_id = await customer_writes(fb)
    echoed: list[int] = []

    async def echo_first(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        echo = load("echo_own_app")
        item(echo)["message"].update(mid="m_out-echo-first", metadata=body["message"]["metadata"])
        echoed.append((await fb.post(echo)).status)
        return httpx.Response(200, json={"recipient_id": PSID, "message_id": "m_out-echo-first"})

    fb.graph.send.side_effect = echo_first
    message_id = await reply(fb, conv_id, {"text": "nhanh"})
    msg = await settled(fb, message_id)
    assert echoed == [200]
    assert (msg["status"], msg["external_id"]) == ("sent", "m_out-echo-first")
    sent_events = await fb.gw.store.events.after(0, 1000, types=["message.sent"])
    assert len(sent_events) == 1


async def test_watermarks_move_every_message_up_to_them(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    first = await reply(fb, conv_id, {"text": "một"})
    second = await reply(fb, conv_id, {"text": "hai"})
    await settled(fb, first)
    await settled(fb, second)
    delivery = load("delivery")
    item(delivery)["delivery"] = {"watermark": now_ms()}  # no mids: the watermark alone
    await fb.deliver(delivery)
    for message_id in (first, second):
        assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "delivered"
    read = load("read")
    item(read)["read"] = {"watermark": now_ms()}
    await fb.deliver(read)
    for message_id in (first, second):
        assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "read"
    assert len(await fb.gw.store.events.after(0, 1000, types=["message.delivered"])) == 2
    assert len(await fb.gw.store.events.after(0, 1000, types=["message.read"])) == 2


async def test_a_read_watermark_before_a_message_leaves_it_alone(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    message_id = await reply(fb, conv_id, {"text": "một"})
    await settled(fb, message_id)
    read = load("read")
    item(read)["read"] = {"watermark": now_ms() - 3_600_000}  # read up to an hour ago
    await fb.deliver(read)
    assert (await get_json(fb.client, f"/v1/messages/{message_id}"))["status"] == "sent"


async def test_echo_of_an_earlier_part_does_not_settle_the_message(fb: Fb) -> None:
    """Only the echo of the last request names the receipt's mid."""
    conv_id = await customer_writes(fb)

    async def echo_part_one_while_sending_part_two(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["message"]["metadata"].endswith(":2/2"):
            echo = load("echo_own_app")
            metadata = body["message"]["metadata"].replace(":2/2", ":1/2")
            item(echo)["message"].update(mid="m_out-0001-sent-by-graph-fake", metadata=metadata)
            assert (await fb.post(echo)).status == 200
        return fb.graph.ok(request)

    fb.graph.send.side_effect = echo_part_one_while_sending_part_two
    message_id = await reply(fb, conv_id, {"text": "chữ " * 600})  # two requests
    msg = await settled(fb, message_id)
    assert msg["external_id"] == "m_out-0002-sent-by-graph-fake"
    assert len(await fb.gw.store.events.after(0, 1000, types=["message.sent"])) == 1


# --- long texts and attachments -----------------------------------------------------------------


async def test_long_text_goes_in_order_and_the_receipt_is_the_last_mid(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    paragraphs = [f"Đoạn {i}: " + "chữ " * 300 for i in range(4)]  # ~1,200 characters each
    text = "\n\n".join(p.strip() for p in paragraphs)
    message_id = await reply(fb, conv_id, {"text": text})
    msg = await settled(fb, message_id)
    bodies = [body for _, _, body in fb.graph.messages()]
    assert [b["message"]["metadata"] for b in bodies] == [
        f"omnigw:{message_id}:{i}/4" for i in range(1, 5)
    ]
    assert [b["message"]["text"] for b in bodies] == [p.strip() for p in paragraphs]
    assert msg["external_id"] == "m_out-0004-sent-by-graph-fake"


async def test_a_retried_long_text_does_not_resend_what_went_out(
    fb: Fb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound_worker, "BACKOFF", (0.05,))
    conv_id = await customer_writes(fb)
    script = [fb.graph.ok, lambda r: httpx.Response(500, json=graph_error(2, "Unexpected error"))]

    def flaky(request: httpx.Request) -> httpx.Response:
        return script.pop(0)(request) if script else fb.graph.ok(request)

    fb.graph.send.side_effect = flaky
    text = "\n\n".join(f"Phần {i} " + "nội dung " * 200 for i in range(3))
    message_id = await reply(fb, conv_id, {"text": text})
    msg = await settled(fb, message_id)
    markers = [body["message"]["metadata"] for _, _, body in fb.graph.messages()]
    assert markers == [
        f"omnigw:{message_id}:1/3",
        f"omnigw:{message_id}:2/3",  # failed: 500, code 2
        f"omnigw:{message_id}:2/3",  # retried; part 1 was not sent again
        f"omnigw:{message_id}:3/3",
    ]
    assert msg["status"] == "sent"
    assert msg["external_id"] == "m_out-0003-sent-by-graph-fake"


async def test_attachments_go_by_url_and_other_parts_as_text(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    parts = [
        {"type": "text", "text": "Bảng size đây ạ"},
        {"type": "image", "url": "https://cdn.shop.example/size.png"},
        {"type": "file", "url": "https://cdn.shop.example/bang-gia.pdf", "name": "bang-gia.pdf"},
        {"type": "link", "url": "https://shop.example/ao", "title": "Áo sơ mi"},
        {"type": "location", "latitude": 10.7769, "longitude": 106.7009},
    ]
    message_id = await reply(fb, conv_id, {"parts": parts})
    await settled(fb, message_id)
    messages = [body["message"] for _, _, body in fb.graph.messages()]
    assert [{k: v for k, v in m.items() if k != "metadata"} for m in messages] == [
        {"text": "Bảng size đây ạ"},
        {"attachment": {"type": "image", "payload": {"url": "https://cdn.shop.example/size.png"}}},
        {
            "attachment": {
                "type": "file",
                "payload": {"url": "https://cdn.shop.example/bang-gia.pdf"},
            }
        },
        {
            "text": "Áo sơ mi: https://shop.example/ao\n📍 10.7769, 106.7009 "
            "https://www.openstreetmap.org/?mlat=10.7769&mlon=106.7009"
        },
    ]


# --- the window ---------------------------------------------------------------------------------


async def attach_with_clock(fb: Fb, *, days: float) -> FacebookConnector:
    """Replace the channel's connector by one whose clock runs ``days`` ahead."""
    old = fb.gw.connectors[CHANNEL]
    assert isinstance(old, FacebookConnector)
    connector = FacebookConnector(
        old.settings, httpx.AsyncClient(), clock=lambda: utcnow() + timedelta(days=days)
    )
    await old.aclose()
    fb.gw.connectors[connector.channel_id] = connector
    await connector.start(fb.gw.pipeline)
    return connector


async def test_tagged_reply_after_24_hours(start_fb: FbFactory) -> None:
    fb = await start_fb(human_agent_tag=True)
    conv_id = await customer_writes(fb)
    await attach_with_clock(fb, days=3)
    message_id = await reply(fb, conv_id, {"text": "Xin lỗi đã trả lời muộn"})
    assert (await settled(fb, message_id))["status"] == "sent"
    ((_, _, body),) = fb.graph.messages()
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize(("tag", "days"), [(False, 2), (True, 8)])
async def test_closed_window_refused_at_once_without_a_call(
    start_fb: FbFactory, tag: bool, days: float
) -> None:
    """Known before sending: 422 window_closed, nothing stored, Meta never called."""
    fb = await start_fb(human_agent_tag=tag)
    conv_id = await customer_writes(fb)
    await attach_with_clock(fb, days=days)
    before = (await get_json(fb.client, f"/v1/conversations/{conv_id}/messages"))["items"]
    refused = await post_json(
        fb.client, f"/v1/conversations/{conv_id}/messages", {"text": "muộn quá"}, status=422
    )
    assert refused["error"]["code"] == "window_closed"
    assert refused["error"]["details"]["reply_window"]["state"] == "closed"
    assert refused["error"]["details"]["allowed"] == []
    after = (await get_json(fb.client, f"/v1/conversations/{conv_id}/messages"))["items"]
    assert after == before
    assert fb.graph.messages() == []
    assert await fb.gw.store.events.after(0, 1000, types=["message.failed"]) == []


async def test_window_closed_raised_directly(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    connector = await attach_with_clock(fb, days=2)
    conv = await fb.gw.store.conversations.get(ConversationId(conv_id))
    recipient = await fb.gw.store.conversations.recipient(ConversationId(conv_id))
    assert conv is not None and recipient is not None
    (inbound,) = (await fb.gw.store.messages.page(conv.id, None, 10)).items
    with pytest.raises(WindowClosed):
        await connector.send(
            OutboundMessage(
                message=inbound, conversation=conv, recipient=recipient, last_inbound_at=utcnow()
            )
        )
    assert fb.graph.send.call_count == 0


# --- Graph errors through the gateway -----------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "subcode", "message", "cls", "code_string"), TABLE_1_8)
async def test_table_1_8_through_the_gateway(
    fb: Fb,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: int,
    subcode: int | None,
    message: str,
    cls: type,
    code_string: str,
) -> None:
    monkeypatch.setattr(outbound_worker, "BACKOFF", (0.05,))
    conv_id = await customer_writes(fb)
    failures = [httpx.Response(status, json=graph_error(code, message, subcode))]

    def once_then_ok(request: httpx.Request) -> httpx.Response:
        return failures.pop() if failures else fb.graph.ok(request)

    fb.graph.send.side_effect = once_then_ok
    if code == 190:
        fb.graph.me.respond(400, json=graph_error(190, "Invalid OAuth access token."))
    message_id = await reply(fb, conv_id, {"text": "thử"})
    connector = fb.gw.connectors[CHANNEL]

    if not cls.retryable:  # permanent: failed at once with Graph's numbers and reason
        msg = await settled(fb, message_id)
        assert msg["status"] == "failed"
        assert msg["error"]["code"] == code_string
        assert message in msg["error"]["reason"]
        assert msg["error"]["retryable"] is False
        (event,) = await fb.gw.store.events.after(0, 1000, types=["message.failed"])
        assert event.data["message"]["error"] == msg["error"]
        assert fb.graph.send.call_count == 1
        return

    if code == 190:  # auth: held, channel BAD_CREDENTIALS, back once the token works
        await eventually(lambda: _state(connector, HealthState.BAD_CREDENTIALS))
        held = await get_json(fb.client, f"/v1/messages/{message_id}")
        assert held["status"] == "pending"
        assert held["error"]["code"] == code_string
        ready = await get_json(fb.client, "/readyz")
        assert ready["channels"][CHANNEL]["state"] == "BAD_CREDENTIALS"
        await eventually(lambda: _recheck_tried(fb))
        assert fb.graph.send.call_count == 1  # nothing sent while broken
        fb.graph.me.respond(200, json={"id": PAGE})  # a human fixed the token
        await eventually(lambda: _state(connector, HealthState.CONNECTED))

    msg = await settled(fb, message_id, within=10)  # transient / rate limited: retried
    assert msg["status"] == "sent"
    assert fb.graph.send.call_count == 2
    assert await fb.gw.store.events.after(0, 1000, types=["message.failed"]) == []
    if code == 190:
        states = [
            e.data["state"]
            for e in await fb.gw.store.events.after(0, 1000, types=["channel.state_changed"])
        ]
        assert states[-2:] == ["BAD_CREDENTIALS", "CONNECTED"]


async def _state(connector: Any, state: HealthState) -> bool:
    return bool(connector.health.state == state)


async def _recheck_tried(fb: Fb) -> bool:
    return fb.graph.me.call_count >= 2


async def test_permission_errors_mark_the_channel_bad_config(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    fb.graph.send.side_effect = [
        httpx.Response(403, json=graph_error(200, "(#200) Requires pages_messaging permission")),
    ]
    message_id = await reply(fb, conv_id, {"text": "x"})
    assert (await settled(fb, message_id))["status"] == "failed"
    connector = fb.gw.connectors[CHANNEL]
    assert connector.health.state == HealthState.BAD_CONFIG
    fb.graph.send.side_effect = fb.graph.ok
    assert (await settled(fb, await reply(fb, conv_id, {"text": "y"})))["status"] == "sent"
    assert connector.health.state == HealthState.CONNECTED


async def test_rate_limit_retry_after_is_honoured(fb: Fb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound_worker, "BACKOFF", (60.0,))  # only Retry-After can be quick
    conv_id = await customer_writes(fb)
    fb.graph.send.side_effect = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        fb.graph.ok,
    ]
    message_id = await reply(fb, conv_id, {"text": "x"})
    assert (await settled(fb, message_id))["status"] == "sent"


# --- which page sends ---------------------------------------------------------------------------


async def test_the_customers_page_sends_even_after_a_restart(
    start_fb: FbFactory,
) -> None:
    fb = await start_fb()
    conv_id = await customer_writes(fb, "batch_two_pages")  # PSID2 wrote to the second page
    await fb.gw.stop()
    fb = await start_fb()  # same data directory, fresh process state
    message_id = await reply(fb, conv_id, {"text": "Trang hai trả lời"})
    assert (await settled(fb, message_id))["status"] == "sent"
    ((path, token, body),) = fb.graph.messages()
    assert (path, token, body["recipient"]) == (f"/v25.0/{PAGE2}/messages", TOKEN2, {"id": PSID2})


# --- typing and seen ------------------------------------------------------------------------


async def test_typing_and_seen_are_throttled(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    base = f"/v1/conversations/{conv_id}"
    for state in ("on", "on", "off", "off", "on"):
        resp = await fb.client.post(f"{base}/typing", json={"state": state}, headers=AUTH)
        assert resp.status == 204
    for _ in range(3):
        assert (await fb.client.post(f"{base}/read", headers=AUTH)).status == 204
    path = f"/v25.0/{PAGE}/messages"
    assert fb.graph.actions() == [
        (path, PSID, "typing_on"),
        (path, PSID, "typing_off"),
        (path, PSID, "mark_seen"),
    ]
    assert all(c.request.url.params["access_token"] == TOKEN for c in fb.graph.send.calls)


async def test_typing_failures_never_fail_the_agents_call(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    fb.graph.send.side_effect = [httpx.ConnectError("down")]
    resp = await fb.client.post(
        f"/v1/conversations/{conv_id}/typing", json={"state": "on"}, headers=AUTH
    )
    assert resp.status == 204
    connector = fb.gw.connectors[CHANNEL]
    assert connector.health.state == HealthState.TRANSIENT_DISCONNECT
    fb.graph.send.side_effect = fb.graph.ok
    assert (await settled(fb, await reply(fb, conv_id, {"text": "x"})))["status"] == "sent"
    assert connector.health.state == HealthState.CONNECTED


async def test_profile_is_refreshed_daily(fb: Fb) -> None:
    await fb.deliver(raw("message_text"))

    async def fetched() -> bool:  # the fetch time is kept in the channel's durable state
        state = await fb.gw.pipeline.load_state(CHANNEL, f"customer:{PSID}")  # type: ignore[arg-type]
        return isinstance(state, dict) and "profile_at" in state

    await eventually(fetched)
    assert fb.graph.profile.call_count == 1
    await attach_with_clock(fb, days=0.5)  # a restart, 12 hours later
    await fb.deliver(raw("message_quick_reply"))
    second = load("message_reply_to")
    await fb.deliver(second)
    assert fb.graph.profile.call_count == 1  # fetched 12 hours ago: fresh
    await attach_with_clock(fb, days=1.5)
    item(second)["message"]["mid"] = "m_after-a-day"
    await fb.deliver(second)
    await eventually(lambda: _profile_calls(fb, 2))


async def _profile_calls(fb: Fb, count: int) -> bool:
    return bool(fb.graph.profile.call_count == count)


CHOICES = {
    "type": "choices",
    "text": "Bạn muốn nhận hàng lúc nào ạ?",
    "choices": [
        {"id": "morning", "title": "Buổi sáng"},
        {"id": "evening", "title": "Buổi tối"},
    ],
}


async def test_choices_go_as_quick_replies_and_the_tap_comes_back_as_the_pick(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    message_id = await reply(fb, conv_id, {"parts": [CHOICES]})
    assert (await settled(fb, message_id))["status"] == "sent"
    ((_, _, body),) = fb.graph.messages()
    assert body["message"] == {
        "text": "Bạn muốn nhận hàng lúc nào ạ?",
        "quick_replies": [
            {"content_type": "text", "title": "Buổi sáng", "payload": "morning"},
            {"content_type": "text", "title": "Buổi tối", "payload": "evening"},
        ],
        "metadata": f"omnigw:{message_id}:1/1",
    }

    # The customer taps a chip: Meta sends its title as text and our payload beside it.
    tap = load("message_quick_reply")
    tap_item = item(tap)
    tap_item["message"].update(
        mid="m_tap-0001", text="Buổi tối", quick_reply={"payload": "evening"}
    )
    tap_item["timestamp"] = now_ms()
    await fb.deliver(tap)
    stored = await get_json(fb.client, f"/v1/conversations/{conv_id}/messages")
    picked = stored["items"][-1]
    assert picked["parts"] == [{"type": "text", "text": "Buổi tối"}]
    assert picked["metadata"] == {
        "payload": "evening",
        "payload_from": "quick_reply",
        "choice": {"id": "evening", "title": "Buổi tối"},
    }


async def test_choices_too_long_for_chips_are_numbered(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    long = {
        "type": "choices",
        "text": "Chọn giúp shop ạ:",
        "choices": [
            {"id": "a", "title": "Giao tận nhà trong giờ hành chính"},
            {"id": "b", "title": "Nhận tại cửa hàng gần nhất"},
        ],
    }
    message_id = await reply(fb, conv_id, {"parts": [long]})
    assert (await settled(fb, message_id))["status"] == "sent"
    ((_, _, body),) = fb.graph.messages()
    assert body["message"]["text"] == (
        "Chọn giúp shop ạ:\n1. Giao tận nhà trong giờ hành chính\n2. Nhận tại cửa hàng gần nhất"
    )
    assert body["message"]["quick_replies"] == [
        {"content_type": "text", "title": "1", "payload": "a"},
        {"content_type": "text", "title": "2", "payload": "b"},
    ]
