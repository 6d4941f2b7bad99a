"""Webhooks across kill -9: a backlog in progress is delivered completely after a restart,
every delivery verified with the standardwebhooks library, duplicates only as the same
webhook-id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from kernel.webhook_signing import new_secret
from tests.e2e.server import AUTH, astart_gateway
from tests.webhooks.receiver import Delivery, Receiver


@pytest.mark.timeout(120)
async def test_a_killed_backlog_is_delivered_after_restart(tmp_path: Path) -> None:
    received = asyncio.Event()

    async def slow(_d: Delivery, n: int) -> web.StreamResponse:
        await asyncio.sleep(0.01)  # a backlog builds up behind a slowish receiver
        if n >= 40:
            received.set()
        return web.Response(status=200)

    receiver = await Receiver(behaviour=slow).start()
    secret = new_secret()
    config = tmp_path / "omnigw.toml"
    config.write_text(
        f"""
[[channels]]
id = "webchat"
type = "webchat"
rate_per_second = 1000
rate_burst = 1000

[[agents]]
id = "demo"
presence = "online"
capacity = {{ total = 1000 }}

[webhook_delivery]
allow_loopback = true
concurrency = 2
retry_schedule = [0, 0.1, 0.2, 0.5, 1]

[[webhooks]]
id = "helpdesk"
url = "{receiver.url}"
secret = "{secret}"
""",
        encoding="utf-8",
    )
    data = tmp_path / "data"
    gw = await astart_gateway(data, tmp_path / "logs", config)
    try:
        async with aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(gw.ws_url) for _ in range(10)]
            for ws in sockets:
                await ws.receive_json()
            for n in range(10):
                for i, ws in enumerate(sockets):
                    await ws.send_json(
                        {"type": "message", "client_id": f"{i}-{n}", "text": f"tin {n}"}
                    )
                    assert (await ws.receive_json())["type"] == "ack"
            await asyncio.wait_for(received.wait(), 20)
            gw.kill()  # mid-backlog: about 40 of ~200 events delivered
            assert gw.proc.returncode == -9
            before_restart = len(receiver.deliveries)
            gw = await astart_gateway(data, tmp_path / "logs", config)
            async with http.get(gw.url("/v1/events?last_event_id=0"), headers=AUTH) as _probe:
                pass
            # every event in the log reaches the receiver
            deadline = time.monotonic() + 60
            while True:
                expected = await _all_event_ids(http, gw.url("/v1/events?last_event_id=0"))
                if expected and expected <= receiver.ids():
                    break
                assert time.monotonic() < deadline, f"missing {len(expected - receiver.ids())}"
                await asyncio.sleep(0.2)
            envelopes = receiver.verified(secret)
            assert {e["id"] for e in envelopes} == receiver.ids()
            assert len(expected) > before_restart
            # duplicates are only the same event again, under the same webhook-id
            for delivery, envelope in zip(receiver.deliveries, envelopes, strict=True):
                assert delivery.id == envelope["id"]
    finally:
        gw.terminate()
        await receiver.stop()


async def _all_event_ids(http: aiohttp.ClientSession, url: str) -> set[str]:
    """Every event id in the log, read through the SSE stream until it goes quiet."""
    ids: set[str] = set()
    async with http.get(url, headers=AUTH) as resp:
        try:
            while True:
                line = await asyncio.wait_for(resp.content.readline(), 0.5)
                if line.startswith(b"id: "):
                    ids.add(line[4:].decode().strip())
        except TimeoutError:
            return ids
