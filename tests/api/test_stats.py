"""GET /v1/stats through a real gateway: figures checked against the conversations'
own timestamps as the API shows them, per channel and in total."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from kernel.envelope import InboundMessage, Sender
from kernel.ids import ChannelId
from kernel.models import TextPart
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

CHANNELS = """
[[channels]]
id = "webchat"
type = "webchat"
rate_burst = 1000
rate_per_second = 1000

[[channels]]
id = "shop"
type = "webchat"
"""


def agent(aid: str, presence: str = "online") -> str:
    return f'\n[[agents]]\nid = "{aid}"\npresence = "{presence}"\ncapacity = {{ total = 5 }}\n'


async def customer(gw: Gateway, channel: str, visitor: str, text: str = "Xin chào") -> str:
    result = await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId(channel),
            external_id=f"{visitor}:{text}",
            sender=Sender(external_id=visitor),
            parts=[TextPart(text=text)],
        )
    )
    return str(result.conversation_id)


@pytest.fixture
async def started(make_gateway: GatewayFactory) -> AsyncIterator[tuple[Gateway, Client]]:
    gw = await make_gateway(CHANNELS + agent("lan") + agent("minh"))
    async with TestClient(TestServer(gw.web_app())) as client:
        yield gw, client


def ts(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def seconds(a: str | None, b: str | None) -> float:
    return round((ts(b) - ts(a)).total_seconds(), 3)


async def assigned(client: Client, conv_id: str) -> dict[str, Any] | None:
    conv: dict[str, Any] = await get_json(client, f"/v1/conversations/{conv_id}")
    return conv if conv["status"] == "assigned" else None


def by_channel(stats: dict[str, Any]) -> dict[str, Any]:
    return {c["channel_id"]: c for c in stats["channels"]}


async def test_figures_follow_the_conversations(started: tuple[Gateway, Client]) -> None:
    gw, client = started
    a = await customer(gw, "webchat", "v-a")
    b = await customer(gw, "webchat", "v-b")
    c = await customer(gw, "shop", "v-c")
    for conv_id in (a, b, c):
        await eventually(lambda conv_id=conv_id: assigned(client, conv_id))
    # a and c are answered; b never is
    for conv_id in (a, c):
        await asyncio.sleep(0.02)  # a first response time the clock can see
        await post_json(
            client, f"/v1/conversations/{conv_id}/messages", {"text": "Dạ, em chào anh ạ"}, 202
        )
    # a is resolved at once; c is transferred first (not a first-contact resolution); b is
    # resolved, reopened and resolved again (neither)
    await post_json(client, f"/v1/conversations/{a}/resolve", None)
    current = await get_json(client, f"/v1/conversations/{c}")
    other = "minh" if current["assignee_id"] == "lan" else "lan"
    await post_json(client, f"/v1/conversations/{c}/transfer", {"agent_id": other})
    await post_json(client, f"/v1/conversations/{c}/resolve", None)
    await post_json(client, f"/v1/conversations/{b}/resolve", None)
    await post_json(client, f"/v1/conversations/{b}/reopen", None)
    await asyncio.sleep(0.02)
    await post_json(client, f"/v1/conversations/{b}/resolve", None)

    convs = {cid: await get_json(client, f"/v1/conversations/{cid}") for cid in (a, b, c)}
    stats = await get_json(client, "/v1/stats")
    channels = by_channel(stats)
    assert set(channels) == {"webchat", "shop"}
    web, shop = channels["webchat"], channels["shop"]
    assert web["channel_type"] == "webchat"
    assert web["conversations_created"] == 2
    assert shop["conversations_created"] == 1

    frt_a = seconds(convs[a]["created_at"], convs[a]["first_response_at"])
    assert frt_a > 0
    assert web["frt"]["count"] == 1
    assert web["frt"]["unanswered"] == 1
    assert web["frt"]["average_seconds"] == pytest.approx(frt_a, abs=0.002)
    assert web["frt"]["max_seconds"] == pytest.approx(frt_a, abs=0.002)
    frt_c = seconds(convs[c]["created_at"], convs[c]["first_response_at"])
    assert shop["frt"]["median_seconds"] == pytest.approx(frt_c, abs=0.002)

    art = sorted(seconds(convs[x]["created_at"], convs[x]["resolved_at"]) for x in (a, b))
    assert web["art"]["count"] == 2
    assert web["art"]["average_seconds"] == pytest.approx(sum(art) / 2, abs=0.002)
    assert web["art"]["median_seconds"] == pytest.approx(art[0], abs=0.002)  # nearest rank
    assert web["art"]["max_seconds"] == pytest.approx(art[1], abs=0.002)
    assert web["conversations_resolved"] == 2

    assert web["fcr"] == {"resolved": 2, "first_contact": 1, "rate": 0.5}
    assert shop["fcr"] == {"resolved": 1, "first_contact": 0, "rate": 0.0}

    for figures, convs_in in ((web, (a, b)), (shop, (c,))):
        assert figures["queue_wait"]["count"] == len(convs_in)
        assert figures["queue_length"] == 0
        assert figures["queue_wait"]["oldest_waiting_seconds"] is None
        assert figures["sla_breaches"] == 0

    total = stats["total"]
    assert total["conversations_created"] == 3
    assert total["frt"]["count"] == 2
    assert total["frt"]["max_seconds"] == pytest.approx(max(frt_a, frt_c), abs=0.002)
    assert total["fcr"] == {"resolved": 3, "first_contact": 1, "rate": 0.3333}

    # one channel only
    only = await get_json(client, "/v1/stats?channel_id=shop")
    assert [ch["channel_id"] for ch in only["channels"]] == ["shop"]
    assert only["total"]["conversations_created"] == 1


async def test_the_window_bounds_what_is_counted(started: tuple[Gateway, Client]) -> None:
    gw, client = started
    first = await customer(gw, "webchat", "v-early")
    await eventually(lambda: assigned(client, first))
    conv = await get_json(client, f"/v1/conversations/{first}")
    created = ts(conv["created_at"])
    await asyncio.sleep(0.01)
    second = await customer(gw, "webchat", "v-late")
    await eventually(lambda: assigned(client, second))
    await post_json(client, f"/v1/conversations/{first}/resolve", None)

    def window(since: datetime, until: datetime) -> str:
        return f"/v1/stats?since={quote(since.isoformat())}&until={quote(until.isoformat())}"

    # only the first conversation's opening is inside [created, created + 1 µs)
    just_first = await get_json(client, window(created, created + timedelta(microseconds=1)))
    assert just_first["total"]["conversations_created"] == 1
    assert just_first["total"]["conversations_resolved"] == 0  # resolved after the window
    later = await get_json(client, window(created + timedelta(microseconds=1), datetime.now(UTC)))
    assert later["total"]["conversations_created"] == 1
    assert later["total"]["conversations_resolved"] == 1
    assert later["total"]["fcr"]["rate"] == 1.0
    empty = await get_json(
        client, window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))
    )
    assert empty["total"]["conversations_created"] == 0
    assert empty["total"]["frt"]["average_seconds"] is None
    assert empty["total"]["fcr"]["rate"] is None
    assert empty["since"] == "2020-01-01T00:00:00.000000Z"
    # an offset whose "+" was left unencoded arrives as a space: still understood
    vn = (created + timedelta(hours=7)).replace(tzinfo=None).isoformat()
    spaced = await get_json(client, f"/v1/stats?since={vn}%2B07:00".replace("%2B", "+"))
    assert spaced["since"] == created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert spaced["total"]["conversations_created"] == 2


async def test_the_queue_now(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(CHANNELS + agent("lan", presence="offline"))
    async with TestClient(TestServer(gw.web_app())) as client:
        waiting = [await customer(gw, "shop", f"v{i}") for i in range(3)]
        await gw.queue.settle()
        await asyncio.sleep(0.05)
        shop = by_channel(await get_json(client, "/v1/stats"))["shop"]
        assert shop["queue_length"] == 3
        assert shop["queue_wait"]["count"] == 0  # nobody assigned yet
        assert shop["queue_wait"]["oldest_waiting_seconds"] >= 0.05
        await client.put(
            "/v1/agents/lan/presence",
            json={"status": "online"},
            headers=AUTH,
        )
        for conv_id in waiting:
            await eventually(lambda conv_id=conv_id: assigned(client, conv_id))
        shop = by_channel(await get_json(client, "/v1/stats"))["shop"]
        assert shop["queue_length"] == 0
        assert shop["queue_wait"]["count"] == 3
        assert shop["queue_wait"]["median_seconds"] >= 0.05


async def test_sla_breaches_are_counted(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        CHANNELS + "[routing]\nreassign_after = { webchat = 0.3 }\n" + agent("lan") + agent("minh")
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        conv_id = await customer(gw, "webchat", "v-sla")
        await eventually(lambda: assigned(client, conv_id))
        assert by_channel(await get_json(client, "/v1/stats"))["webchat"]["sla_breaches"] == 0

        async def breached() -> dict[str, Any] | None:
            web: dict[str, Any] = by_channel(await get_json(client, "/v1/stats"))["webchat"]
            return web if web["sla_breaches"] else None

        # nobody answers: the assignment is taken back after 0.3 s (and again from the
        # next agent), each time with an sla.breached event
        web = await eventually(breached)
        assert web["sla_breached_conversations"] == 1
        assert by_channel(await get_json(client, "/v1/stats"))["shop"]["sla_breaches"] == 0


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("since=yesterday", 400, "validation_error"),
        ("since=2026-11-24T00:00:00", 400, "validation_error"),  # no time zone
        ("until=2026-13-01T00:00:00Z", 400, "validation_error"),
        ("bogus=1", 400, "validation_error"),
        ("since=2026-11-24T00:00:00Z&until=2026-11-24T00:00:00Z", 422, "invalid_window"),
        ("since=2026-11-25T00:00:00Z&until=2026-11-24T00:00:00Z", 422, "invalid_window"),
        ("channel_id=nowhere", 404, "channel_not_found"),
    ],
)
async def test_bad_queries(
    started: tuple[Gateway, Client], query: str, status: int, code: str
) -> None:
    _, client = started
    body = await get_json(client, f"/v1/stats?{query}", status)
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_needs_a_token(started: tuple[Gateway, Client]) -> None:
    _, client = started
    resp = await client.get("/v1/stats")
    assert resp.status == 401
