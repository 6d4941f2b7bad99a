"""GET /v1/events: the durable event log as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from kernel.envelope import InboundMessage, Sender
from kernel.ids import ChannelId
from kernel.models import TextPart
from tests.api.helpers import eventually, open_visitor, say
from tests.api.sse import SseEvent, read_event, read_events
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]


async def test_stream_replays_from_an_id_then_goes_live(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "một", "c1")
    await gw.queue.settle()
    everything = await gw.store.events.after(0, 1000)
    assert len(everything) >= 5
    resp = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": everything[1].id})
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    replay = await read_events(resp, len(everything) - 2)
    assert [e.id for e in replay] == [e.id for e in everything[2:]]
    for sse, stored in zip(replay, everything[2:], strict=True):
        assert sse.event == stored.type
        assert sse.data == json.loads(stored.envelope())
    await say(ws, "hai", "c2")
    live = await read_events(resp, 1)
    assert live[0].event == "message.received"
    assert live[0].data["data"]["message"]["parts"][0]["text"] == "hai"
    assert int(live[0].id or 0) > int(everything[-1].id)


async def test_without_last_event_id_only_new_events(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await say(ws, "cũ", "c1")
    await gw.queue.settle()
    resp = await client.get("/v1/events?types=message.received", headers=AUTH)
    assert await read_event(resp) == "connected"
    await say(ws, "mới", "c2")
    (event,) = await read_events(resp, 1)
    assert event.data["data"]["message"]["parts"][0]["text"] == "mới"


async def test_query_parameter_resume_and_filters(client: Client, gw: Gateway) -> None:
    ws1, _ = await open_visitor(client)
    ws2, _ = await open_visitor(client)
    await say(ws1, "khách 1", "a")
    await say(ws2, "khách 2", "b")
    await gw.queue.settle()
    convs = {
        e.data["conversation"]["id"]
        for e in await gw.store.events.after(0, 100)
        if e.type == "conversation.created"
    }
    target = sorted(convs)[0]
    resp = await client.get(
        f"/v1/events?last_event_id=0&types=conversation.*,message.received&conversation_id={target}",
        headers=AUTH,
    )
    got = await read_events(resp, 3)
    assert [e.event for e in got] == [
        "conversation.created",
        "message.received",
        "conversation.assigned",
    ]
    for e in got:
        conv = e.data["data"].get("conversation") or {
            "id": e.data["data"]["message"]["conversation_id"]
        }
        assert conv["id"] == target


@pytest.mark.parametrize("value", ["abc", "-5", "1.5"])
async def test_bad_last_event_id(client: Client, value: str) -> None:
    resp = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": value})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_event_id"


async def test_events_need_a_token(client: Client) -> None:
    assert (await client.get("/v1/events")).status == 401


async def test_heartbeats_keep_an_idle_stream_open(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(**{"events.sse_heartbeat_seconds": 0.2})
    async with TestClient(TestServer(gw.web_app())) as client:
        resp = await client.get("/v1/events", headers=AUTH)
        assert await read_event(resp) == "connected"
        assert await asyncio.wait_for(read_event(resp), 2) == "heartbeat"
        assert await asyncio.wait_for(read_event(resp), 2) == "heartbeat"


async def test_a_reader_far_behind_the_memory_ring_reads_the_store(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(**{"events.ring_size": 100})
    async with TestClient(TestServer(gw.web_app())) as client:
        for _v in range(8):
            ws, _ = await open_visitor(client)
            for i in range(15):
                assert (await say(ws, f"tin {i}", f"c{i}"))["type"] == "ack"
        await gw.queue.settle()
        stored = await gw.store.events.after(0, 10_000)
        assert len(stored) > 100
        resp = await client.get("/v1/events?last_event_id=0", headers=AUTH)
        streamed = await read_events(resp, len(stored))
        assert [e.id for e in streamed] == [e.id for e in stored]
        assert isinstance(streamed[0], SseEvent)


async def test_a_reader_that_stops_reading_is_cut_off_and_resumes_without_a_gap(
    make_gateway: GatewayFactory,
) -> None:
    """A client that stops reading is disconnected after `slow_consumer_seconds` instead of
    making the gateway buffer for it; the last id it did receive resumes the stream with
    nothing skipped."""
    gw = await make_gateway(**{"events.slow_consumer_seconds": 0.5})
    text = "Tôi cần hỗ trợ về đơn hàng số 12345, xin cảm ơn. " * 400  # ~20 kB a message
    for n in range(400):  # ~8 MB of events: more than any socket buffers hold
        await gw.pipeline.ingest(
            InboundMessage(
                channel_id=ChannelId("webchat"),
                external_id=f"slow:{n}",
                sender=Sender(external_id=f"visitor-{n % 7}"),
                parts=[TextPart(text=text)],
            )
        )
    await gw.queue.settle()
    stored = [e.id for e in await gw.store.events.after(0, 100_000)]
    async with TestClient(TestServer(gw.web_app())) as client:
        port = client.server.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # The stream reader stops taking bytes from the socket past its 64 kB limit.
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(
            f"GET /v1/events?last_event_id=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {AUTH['Authorization']}\r\n\r\n".encode()
        )
        await writer.drain()
        # Stop reading: the gateway's writes stall, and it must give up on this client.
        await eventually(lambda: _sse_clients(gw, 1), within=5)
        await eventually(lambda: _sse_clients(gw, 0), within=10)
        try:
            received = await asyncio.wait_for(reader.read(), 10)  # what reached us; then EOF
        finally:
            writer.close()
            await writer.wait_closed()
        got = re.findall(rb"^id: (\d+)\n(?:[^\n]*\n)*?\n", received, flags=re.M)
        got_ids = [g.decode() for g in got]
        assert got_ids == stored[: len(got_ids)]  # in order, no gap, complete events only
        assert len(got_ids) < len(stored)  # it really was cut off before the end

        resp = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": got_ids[-1]})
        rest = await read_events(resp, len(stored) - len(got_ids))
        assert [e.id for e in rest] == stored[len(got_ids) :]


async def _sse_clients(gw: Gateway, n: int) -> bool:
    return gw.lifecycle.streams == n


async def test_a_revoked_token_loses_its_open_stream(client: Client, gw: Gateway) -> None:
    made = await client.post(
        "/v1/tokens", json={"name": "helpdesk", "scopes": ["integration"]}, headers=AUTH
    )
    assert made.status == 201
    token = await made.json()
    bearer = {"Authorization": f"Bearer {token['token']}"}
    resp = await client.get("/v1/events?types=message.received", headers=bearer)
    assert resp.status == 200
    assert await read_event(resp) == "connected"
    # Another token made or revoked leaves this stream alone.
    other = await (
        await client.post("/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers=AUTH)
    ).json()
    assert (await client.delete(f"/v1/tokens/{other['id']}", headers=AUTH)).status == 204
    ws, _ = await open_visitor(client)
    await say(ws, "vẫn nhận", "c1")
    (event,) = await asyncio.wait_for(read_events(resp, 1), 5)
    assert event.data["data"]["message"]["parts"][0]["text"] == "vẫn nhận"

    assert (await client.delete(f"/v1/tokens/{token['id']}", headers=AUTH)).status == 204

    async def ended() -> str:
        while True:
            try:
                item = await read_event(resp)
            except EOFError:
                return "ended"
            assert not isinstance(item, SseEvent), item  # nothing more is sent to it

    assert await asyncio.wait_for(ended(), 5) == "ended"
    assert (await client.get("/v1/events", headers=bearer)).status == 401
    await eventually(lambda: _no_streams(gw))


async def _no_streams(gw: Gateway) -> bool:
    return gw.lifecycle.streams == 0
