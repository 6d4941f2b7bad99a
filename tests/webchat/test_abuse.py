"""Webchat abuse, through real sockets against a gateway: floods are limited per visitor
and per client address, every frame type counts, sockets are capped, and a flood cannot
fill the queue; a busy shop behind one address is never limited."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from tests.api.helpers import open_visitor, say
from tests.conftest import GatewayFactory

Client = TestClient  # type: ignore[type-arg]

AGENT = """
[[agents]]
id = "demo"
capacity = { total = 1000 }
presence = "online"
"""


def _client(gw: Gateway) -> Client:
    # Sockets hold their connection: no pool limit, or the 101st would wait for one.
    return TestClient(TestServer(gw.web_app()), connector=aiohttp.TCPConnector(limit=0))


def _count(gw: Gateway, table: str) -> int:
    path = Path(gw.settings.server.data_dir) / "omnigw.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0])


async def _replies(ws: Any, within: float = 5.0) -> list[dict[str, Any]]:
    """Every frame the server sends until it closes the socket or stays quiet."""
    frames: list[dict[str, Any]] = []
    while True:
        try:
            msg = await ws.receive(timeout=within)
        except TimeoutError:
            return frames
        if msg.type != WSMsgType.TEXT:
            return frames
        frames.append(msg.json())
        within = min(within, 1.0)


async def test_the_message_limit_holds_across_reconnects(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        '[[channels]]\nid = "webchat"\ntype = "webchat"\nrate_per_second = 0.05\nrate_burst = 3\n'
        + AGENT
    )
    async with _client(gw) as client:
        ws, session = await open_visitor(client)
        assert [(await say(ws, f"tin {i}", f"c{i}"))["type"] for i in range(3)] == ["ack"] * 3
        await ws.close()
        # The same visitor on a new socket: its allowance was spent, not renewed.
        again, resumed = await open_visitor(client, token=session["token"])
        assert resumed["visitor_id"] == session["visitor_id"]
        refused = await say(again, "tin 4", "c4")
        assert (refused["type"], refused["code"], refused["client_id"]) == (
            "error",
            "rate_limited",
            "c4",
        )


async def test_a_flood_of_token_less_sockets_cannot_fill_the_queue(
    make_gateway: GatewayFactory,
) -> None:
    """The issue's flood: 300 new visitors from one address, one message each."""
    gw = await make_gateway('[[channels]]\nid = "webchat"\ntype = "webchat"\n' + AGENT)
    async with _client(gw) as client:

        async def visitor(n: int) -> dict[str, Any]:
            ws, _ = await open_visitor(client)
            return await say(ws, f"Khách {n}: còn hàng không ạ?", "c1")

        answers = await asyncio.gather(*(visitor(n) for n in range(300)))
        acked = [a for a in answers if a["type"] == "ack"]
        refused = [a for a in answers if a["type"] == "error"]
        # The default: 100 new conversations per address in 10 minutes.
        assert 100 <= len(acked) <= 102, len(acked)
        assert {(a["code"], a["client_id"]) for a in refused} == {("rate_limited", "c1")}
        assert _count(gw, "conversations") == len(acked)
        assert _count(gw, "contacts") == len(acked)


async def test_saying_nothing_opens_no_conversation(client: Client, gw: Gateway) -> None:
    ws, _ = await open_visitor(client)
    await ws.send_json({"type": "typing", "state": "on"})
    await ws.send_json({"type": "history"})
    assert (await ws.receive_json(timeout=5))["messages"] == []
    await ws.send_json({"type": "typing", "state": "off"})
    await ws.close()
    await gw.pipeline.drain()
    assert _count(gw, "conversations") == 0


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "history", "limit": 50},
        {"type": "typing", "state": "on"},
        {"type": "identify", "name": "Bão"},
        {"type": "shout"},  # refused frames count too
    ],
    ids=lambda f: str(f["type"]),
)
async def test_every_frame_type_is_limited(
    make_gateway: GatewayFactory, frame: dict[str, Any]
) -> None:
    gw = await make_gateway('[[channels]]\nid = "webchat"\ntype = "webchat"\n' + AGENT)
    async with _client(gw) as client:
        ws, _ = await open_visitor(client)
        for i in range(10):
            assert (await say(ws, "x" * 400 + f" {i}", f"c{i}"))["type"] == "ack"
        for _ in range(500):
            await ws.send_json(frame)
        replies = await _replies(ws)
        histories = [r for r in replies if r["type"] == "history"]
        limited = [r for r in replies if r.get("code") == "rate_limited"]
        assert limited, f"500 {frame['type']} frames and none refused"
        # The default: 60 frames at once per visitor (then 10 a second).
        assert len(histories) <= 70
        # Refused: 50 error frames at once (then one a second), then the socket is closed.
        assert len(limited) <= 60
        # A socket that goes on flooding is closed with a reason.
        assert ws.closed
        assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_open_sockets_are_capped_per_address(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway('[[channels]]\nid = "webchat"\ntype = "webchat"\n' + AGENT)
    async with _client(gw) as client:
        opened = await asyncio.gather(*(open_visitor(client) for _ in range(500)))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/webchat/webchat/ws")
        assert refused.value.status == 429
        await opened[0][0].close()
        # One closed, one more may open.
        ws, _ = await open_visitor(client)
        assert (await say(ws, "vẫn vào được", "c1"))["type"] == "ack"


async def test_a_busy_shop_behind_one_address_is_never_limited(
    make_gateway: GatewayFactory,
) -> None:
    """50 visitors behind one office NAT address chatting as people do, on the defaults:
    each opens the widget (identify, history), types and writes, moves to another page
    (a new socket with the same token) and goes on."""
    gw = await make_gateway('[[channels]]\nid = "webchat"\ntype = "webchat"\n' + AGENT)
    rng = random.Random(17)

    async with _client(gw) as client:

        async def page(ws: Any, n: int, first: int, count: int) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            await ws.send_json({"type": "identify", "name": f"Khách {n}"})
            await ws.send_json({"type": "history", "limit": 50})
            got.append(await ws.receive_json(timeout=10))
            for i in range(first, first + count):
                await ws.send_json({"type": "typing", "state": "on"})
                await asyncio.sleep(rng.uniform(0.05, 0.4))
                await ws.send_json({"type": "typing", "state": "off"})
                got.append(await say(ws, f"Khách {n}, câu {i}: áo này còn size M không?", f"c{i}"))
            return got

        async def visitor(n: int) -> list[dict[str, Any]]:
            await asyncio.sleep(rng.uniform(0, 1))
            ws, session = await open_visitor(client)
            got = await page(ws, n, 0, 4)
            await ws.close()
            ws, _ = await open_visitor(client, token=session["token"])
            got += await page(ws, n, 4, 3)
            await ws.close()
            return got

        frames = [f for got in await asyncio.gather(*(visitor(n) for n in range(50))) for f in got]
        errors = [f for f in frames if f["type"] == "error"]
        assert errors == []
        assert sum(1 for f in frames if f["type"] == "ack") == 50 * 7
        assert _count(gw, "conversations") == 50


def _proxied(trusted: bool) -> str:
    server = '[server]\ntrusted_proxies = ["127.0.0.1"]\n\n' if trusted else ""
    return (
        server
        + '[[channels]]\nid = "webchat"\ntype = "webchat"\naddress_sockets = 2\nmax_sockets = 6\n'
        + AGENT
    )


async def _handshake(client: Client, forwarded_for: str) -> tuple[int, Any]:
    """101 and the open socket, or the status with the JSON body and headers of a refused
    handshake (asked again as plain GET: a refusal takes nothing, so it is the same)."""
    headers = {"X-Forwarded-For": forwarded_for}
    try:
        ws = await client.ws_connect("/webchat/webchat/ws", headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status
    else:
        assert (await ws.receive_json(timeout=5))["type"] == "session"
        return 101, ws
    resp = await client.get(
        "/webchat/webchat/ws",
        headers={
            **headers,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == status
    return status, (await resp.json(), resp.headers)


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(_proxied(trusted=False))
    async with _client(gw) as client:
        assert (await _handshake(client, "203.0.113.1"))[0] == 101
        assert (await _handshake(client, "203.0.113.2"))[0] == 101
        # Anyone can write the header: without a trusted proxy all three are one peer.
        status, (body, headers) = await _handshake(client, "203.0.113.3")
        assert status == 429
        assert body["error"]["code"] == "rate_limited"
        assert int(headers["Retry-After"]) >= 1


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(_proxied(trusted=True))
    async with _client(gw) as client:
        assert (await _handshake(client, "203.0.113.1"))[0] == 101
        assert (await _handshake(client, "203.0.113.1"))[0] == 101
        assert (await _handshake(client, "203.0.113.1"))[0] == 429
        # What the client wrote itself is left of what the proxy appended.
        assert (await _handshake(client, "203.0.113.2, 203.0.113.1"))[0] == 429
        assert (await _handshake(client, "203.0.113.2"))[0] == 101
        assert (await _handshake(client, "2001:db8:1:2::5"))[0] == 101
        # Another address of the same IPv6 /64 is the same client.
        assert (await _handshake(client, "2001:db8:1:2::6"))[0] == 101
        assert (await _handshake(client, "2001:db8:1:2::7"))[0] == 429
        assert (await _handshake(client, "198.51.100.7"))[0] == 101
        # Six open: the channel is full for everyone.
        status, (body, _) = await _handshake(client, "198.51.100.8")
        assert status == 503
        assert body["error"]["code"] == "too_many_sockets"


async def test_a_connect_flood_from_one_address_is_refused(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        '[[channels]]\nid = "webchat"\ntype = "webchat"\n'
        "address_frames_per_second = 1\naddress_frames_burst = 20\n" + AGENT
    )
    async with _client(gw) as client:
        statuses = []
        for _ in range(30):
            try:
                ws = await client.ws_connect("/webchat/webchat/ws")
            except aiohttp.WSServerHandshakeError as exc:
                statuses.append(exc.status)
            else:
                statuses.append(101)
                await ws.close()
        assert statuses.count(101) in (20, 21), statuses
        assert set(statuses) == {101, 429}


async def test_new_visitors_count_once_however_they_come_back(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        '[[channels]]\nid = "webchat"\ntype = "webchat"\naddress_conversations = 3\n' + AGENT
    )
    async with _client(gw) as client:
        # A returning visitor who only identifies, page after page, counts once.
        first, session = await open_visitor(client)
        for _ in range(4):
            await first.send_json({"type": "identify", "name": "Khách quen"})
            await first.close()
            first, _ = await open_visitor(client, token=session["token"])
        answers = [await say(first, "chào", "c1")]
        for n in range(4):
            # A token taken and used on a new socket makes no difference.
            ws, fresh = await open_visitor(client)
            await ws.close()
            ws, _ = await open_visitor(client, token=fresh["token"])
            await ws.send_json({"type": "identify", "name": f"Khách {n}"})
            if n >= 2:  # the address's three are spent: identify is refused first
                refused = await ws.receive_json(timeout=5)
                assert (refused["code"], refused.get("client_id")) == ("rate_limited", None)
            answers.append(await say(ws, "chào", "c1"))
        assert [a["type"] for a in answers] == ["ack"] * 3 + ["error"] * 2
        assert {(a.get("code"), a["client_id"]) for a in answers[3:]} == {("rate_limited", "c1")}
        assert _count(gw, "contacts") == 3
        assert _count(gw, "conversations") == 3
