"""Messenger's reply window known before sending, through the real gateway with the Graph
API faked at the transport: every conversation shows it, a send into a closed window is
refused at once (no Graph call, nothing stored), the business starts a conversation only
inside the window, and conversation.window_closing fires once per window."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.windows import LEASE, WindowWatch
from kernel.models import utcnow
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory
from tests.facebook.conftest import Fb, FbFactory, GraphFake
from tests.facebook.helpers import CHANNEL, PSID, PSID2, config
from tests.facebook.test_send import attach_with_clock, customer_writes
from tests.providers import settled

DAY = 1.0
HOUR = 1 / 24
MINUTE = HOUR / 60


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def aged(fb: Fb, conv_id: str, days: float) -> None:
    """Move the channel's clock so that the customer's message is ``days`` old (the
    fixtures are stamped a minute before the session began, minutes ago by now)."""
    page = await get_json(fb.client, f"/v1/conversations/{conv_id}/messages")
    wrote = min(at(m["created_at"]) for m in page["items"])
    state = await window_of(fb, conv_id)
    spans = {"open": timedelta(hours=24), "tag_only": timedelta(days=7)}
    if state["state"] in spans:
        wrote = at(state["closes_at"]) - spans[state["state"]]  # the provider's own time
    await attach_with_clock(fb, days=days - (utcnow() - wrote) / timedelta(days=1))


async def window_of(fb: Fb, conv_id: str) -> dict[str, Any]:
    conv = await get_json(fb.client, f"/v1/conversations/{conv_id}")
    window: dict[str, Any] = conv["reply_window"]
    return window


async def messages_of(fb: Fb, conv_id: str) -> list[dict[str, Any]]:
    page = await get_json(fb.client, f"/v1/conversations/{conv_id}/messages")
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_every_conversation_shows_its_window(fb: Fb) -> None:
    conv_id = await customer_writes(fb)
    (inbound,) = await messages_of(fb, conv_id)
    window = await window_of(fb, conv_id)
    assert window["state"] == "open"
    assert window["free_until"] is None
    # 24 hours from when the customer wrote (Meta's timestamp, a minute before the session)
    closes = at(window["closes_at"])
    assert timedelta(hours=23) < closes - utcnow() <= timedelta(hours=24)
    listed = await get_json(fb.client, f"/v1/conversations?channel_id={CHANNEL}")
    assert [c["reply_window"] for c in listed["items"]] == [window]
    assert inbound["direction"] == "inbound"


@pytest.mark.parametrize(
    ("tag", "ahead", "state", "accepted"),  # ahead: how old the customer's message is
    [
        (False, 23 * HOUR + 59 * MINUTE, "open", True),
        (False, 24 * HOUR + 1 * MINUTE, "closed", False),
        (True, 24 * HOUR + 1 * MINUTE, "tag_only", True),
        (True, 6 * DAY + 22 * HOUR, "tag_only", True),
        (False, 6 * DAY + 22 * HOUR, "closed", False),
        (True, 7 * DAY + 1 * HOUR, "closed", False),
        (False, 7 * DAY + 1 * HOUR, "closed", False),
    ],
)
async def test_window_edges_through_the_api(
    start_fb: FbFactory, tag: bool, ahead: float, state: str, accepted: bool
) -> None:
    fb = await start_fb(human_agent_tag=tag)
    conv_id = await customer_writes(fb)
    await aged(fb, conv_id, ahead)
    assert (await window_of(fb, conv_id))["state"] == state
    before = await messages_of(fb, conv_id)
    resp = await fb.client.post(
        f"/v1/conversations/{conv_id}/messages",
        json={"text": "Shop trả lời bạn đây ạ"},
        headers=AUTH,
    )
    answer = await resp.json()
    if accepted:
        assert resp.status == 202, answer
        assert (await settled(fb, answer["id"]))["status"] == "sent"
        ((_, _, body),) = fb.graph.messages()
        expected = "MESSAGE_TAG" if state == "tag_only" else "RESPONSE"
        assert body["messaging_type"] == expected
    else:
        assert resp.status == 422, answer
        assert answer["error"]["code"] == "window_closed"
        assert answer["error"]["details"]["reply_window"]["state"] == "closed"
        assert fb.graph.messages() == []
        assert await messages_of(fb, conv_id) == before


async def test_the_business_writes_first_inside_the_window(fb: Fb) -> None:
    old = await customer_writes(fb)
    resolved = await post_json(fb.client, f"/v1/conversations/{old}/resolve", {})
    assert resolved["reply_window"]["state"] == "open"  # every answer shows it
    started = await post_json(
        fb.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "to": {"external_id": PSID}, "text": "Đơn hàng đã giao ạ"},
        status=201,
    )
    conv, message = started["conversation"], started["message"]
    assert conv["id"] != old and conv["channel_id"] == CHANNEL
    assert conv["reply_window"]["state"] == "open"  # the customer's last message counts
    assert message["status"] == "pending" and message["conversation_id"] == conv["id"]
    assert message["parts"] == [{"type": "text", "text": "Đơn hàng đã giao ạ"}]
    assert (await settled(fb, message["id"]))["status"] == "sent"
    ((_, _, body),) = fb.graph.messages()
    assert body["recipient"] == {"id": PSID}
    assert body["messaging_type"] == "RESPONSE"
    # the same customer by their contact: their conversation is open now
    refused = await post_json(
        fb.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "contact_id": conv["contact_id"], "text": "Lần nữa"},
        status=409,
    )
    assert refused["error"]["code"] == "conversation_open"
    assert refused["error"]["details"]["conversation_id"] == conv["id"]


async def test_outside_the_window_nothing_is_stored_and_meta_is_not_called(fb: Fb) -> None:
    old = await customer_writes(fb)
    await post_json(fb.client, f"/v1/conversations/{old}/resolve", {})
    await attach_with_clock(fb, days=3)
    seq = await fb.gw.store.events.last_seq()
    refused = await post_json(
        fb.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "to": {"external_id": PSID}, "text": "Khuyến mãi!"},
        status=422,
    )
    assert refused["error"]["code"] == "window_closed"
    assert "human_agent_tag" in refused["error"]["message"]  # what would allow it
    # never wrote at all: closed too, and no contact is made for them
    never = await post_json(
        fb.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "to": {"external_id": PSID2}, "text": "Xin chào"},
        status=422,
    )
    assert never["error"]["code"] == "window_closed"
    later = await fb.gw.store.events.after(seq, 100)
    assert [e.type for e in later if not e.type.startswith("channel.")] == []
    listed = await get_json(fb.client, f"/v1/conversations?channel_id={CHANNEL}")
    assert [c["id"] for c in listed["items"]] == [old]
    assert fb.graph.messages() == []


async def closing_events(fb: Fb) -> list[dict[str, Any]]:
    found = await fb.gw.store.events.after(0, 1000, types=["conversation.window_closing"])
    return [e.data for e in found]


async def test_window_closing_fires_once_per_window(start_fb: FbFactory) -> None:
    fb = await start_fb(human_agent_tag=True)
    conv_id = await customer_writes(fb)
    await fb.gw.windows.sweep()
    assert await closing_events(fb) == []  # 24 hours to go: not yet
    await aged(fb, conv_id, 23 * HOUR + 30 * MINUTE)
    for _ in range(3):
        await fb.gw.windows.sweep()
    (first,) = await closing_events(fb)
    assert first["conversation"]["id"] == conv_id
    assert first["reply_window"]["state"] == "open"
    assert first["conversation"]["reply_window"] == first["reply_window"]
    # another process (or this one restarted) never announces it again
    again = WindowWatch(fb.gw.store, fb.gw.channels, lead=3600, every=3600)
    assert await again.sweep() == 0
    # the human agent window is a window of its own, announced before it closes
    await aged(fb, conv_id, 6 * DAY + 23 * HOUR + 30 * MINUTE)
    await again.sweep()
    await fb.gw.windows.sweep()
    first_, second = await closing_events(fb)
    assert first_ == first
    assert second["reply_window"]["state"] == "tag_only"
    assert at(second["reply_window"]["closes_at"]) - at(first["reply_window"]["closes_at"]) == (
        timedelta(days=6)
    )
    # once closed, nothing more
    await aged(fb, conv_id, 7 * DAY + 1 * HOUR)
    await fb.gw.windows.sweep()
    assert len(await closing_events(fb)) == 2


async def test_replicas_on_postgresql_announce_each_window_once(
    graph: GraphFake, make_gateway: GatewayFactory, pg_url: str
) -> None:
    """Two processes on one PostgreSQL store: one holds the sweep's lease, and even both
    sweeping at once announce a window once."""
    fbs: list[Fb] = []
    try:
        for _ in range(2):
            gw = await make_gateway(config(human_agent_tag=True), **{"store.url": pg_url})
            client = TestClient(TestServer(gw.web_app()))
            await client.start_server()
            fbs.append(Fb(gw, client, graph))
        first, second = fbs
        conv_id = await customer_writes(first)

        async def one_holder() -> bool:
            holders = [f.gw.keeper is not None and f.gw.keeper.holds(LEASE) for f in fbs]
            return holders.count(True) == 1

        await eventually(one_holder)
        for fb in fbs:
            await aged(fb, conv_id, 23 * HOUR + 30 * MINUTE)
        counts = await asyncio.gather(*(f.gw.windows.sweep() for f in fbs for _ in range(3)))
        assert sum(counts) == 1
        (event,) = await closing_events(second)
        assert event["conversation"]["id"] == conv_id
    finally:
        for fb in fbs:
            await fb.client.close()
