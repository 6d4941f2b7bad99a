"""Two replicas behind a real nginx running deploy/nginx.conf: the webchat widget in
headless Chromium, the event stream unbuffered, requests spread over both replicas, the
body limit, a replica stopping under a visitor. PostgreSQL and Redis are the test servers
of tests/servers.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import async_playwright, expect

from tests.api.sse import SseEvent, read_event
from tests.e2e.server import AUTH, GatewayProcess
from tests.e2e.test_browser import (
    LAUNCH_ARGS,
    OTHER_TEXT,
    REPLY_TEXT,
    VISITOR_TEXT,
    T,
    chromium_path,
    eventually,
    open_chat,
)
from tests.replicas.cluster import Cluster
from tests.replicas.load import api
from tests.replicas.nginx import Nginx

AGENT = {"id": "demo", "presence": "online"}
MAX_BODY = 1024 * 1024  # server.max_body_bytes by default; deploy/nginx.conf says 1m
SSE_BOUND = 1.0  # seconds an event stream's frame may take through nginx
HEARTBEAT = 0.5  # events.sse_heartbeat_seconds here: short, so a held one shows


@contextlib.asynccontextmanager
async def balanced(
    tmp_path: Path, pg_url: str, redis_url: str, **config: Any
) -> AsyncIterator[tuple[Cluster, Nginx]]:
    async with Cluster.started(
        tmp_path, pg_url, redis_url, replicas=2, agents=[AGENT], **config
    ) as cluster:
        upstreams = [f"127.0.0.1:{gw.port}" for gw in cluster.replicas]
        async with Nginx.started(upstreams, tmp_path / "nginx") as nginx:
            try:
                yield cluster, nginx
            except BaseException:
                print(cluster.logs())
                print(f"--- nginx error log ---\n{nginx.error_log()[-4000:]}")
                print(f"--- nginx access log ---\n{nginx.access_log()[-4000:]}")
                raise


async def gauges(http: aiohttp.ClientSession, cluster: Cluster, name: str) -> list[int]:
    """A gauge of /metrics (omnigw_webchat_sockets, omnigw_sse_clients) of each replica,
    asked directly, not through nginx."""
    pattern = re.compile(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    values = []
    for gw in cluster.replicas:
        async with http.get(gw.url("/metrics")) as resp:
            text = await resp.text()
            assert resp.status == 200, text
        match = pattern.search(text)
        assert match, text
        values.append(int(float(match.group(1))))
    return values


async def holder(http: aiohttp.ClientSession, cluster: Cluster, name: str) -> int:
    """The replica with the one connection counted by the gauge ``name``."""

    async def one() -> tuple[int] | None:
        values = await gauges(http, cluster, name)
        return (values.index(1),) if sorted(values) == [0, 1] else None

    (index,) = await eventually(one, f"one replica to count one in {name}")
    return int(index)


async def test_widget_through_nginx_chats_with_an_agent_on_the_other_replica(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with (
        balanced(tmp_path, pg_url, redis_url) as (cluster, nginx),
        aiohttp.ClientSession() as http,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            # open_chat() asks its gateway for url("/") only: nginx's it is.
            chat = await open_chat(await browser.new_context(), nginx)
            assert chat.page.url == nginx.url("/")
            assert chat.socket_urls[0].startswith(nginx.ws_url), chat.socket_urls
            own_id = await chat.send(VISITOR_TEXT)

            # The replica nginx gave the socket to, told by each replica's own figures.
            held_by = await holder(http, cluster, "omnigw_webchat_sockets")
            other = cluster[1 - held_by]
            print(f"socket on replica {held_by}; the agent replies through replica {1 - held_by}")

            async def assigned() -> dict[str, Any] | None:
                status, body = await api(http, other, "GET", "/v1/conversations")
                assert status == 200, body
                items = body["items"]
                if len(items) == 1 and items[0]["status"] == "assigned":
                    conv: dict[str, Any] = items[0]
                    return conv
                return None

            conv = await eventually(assigned, "the conversation to be assigned")
            assert conv["assignee_id"] == "demo", conv
            status, stored = await api(
                http, other, "GET", f"/v1/conversations/{conv['id']}/messages"
            )
            assert status == 200, stored
            assert [(m["id"], m["direction"]) for m in stored["items"]] == [(own_id, "inbound")]
            assert stored["items"][0]["parts"] == [{"type": "text", "text": VISITOR_TEXT}]

            status, reply = await api(
                http,
                other,
                "POST",
                f"/v1/conversations/{conv['id']}/messages",
                json={"text": REPLY_TEXT},
            )
            assert status == 202, reply
            shown = chat.page.locator(
                f'#omnigw-messages .omnigw-msg[data-message-id="{reply["id"]}"]'
            )
            await expect(shown).to_have_attribute("data-direction", "outbound", timeout=T)
            await expect(shown.locator(".omnigw-text")).to_have_text(REPLY_TEXT, timeout=T)
            assert await chat.thread() == [
                (own_id, "inbound", "sent", VISITOR_TEXT),
                (reply["id"], "outbound", None, REPLY_TEXT),
            ]
            assert len(chat.socket_urls) == 1, "the socket must not have dropped"
            assert chat.dialogs == []
            assert chat.errors == []
        finally:
            await browser.close()


async def test_event_stream_through_nginx_is_not_held_back(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with (
        balanced(
            tmp_path, pg_url, redis_url, sections={"events": {"sse_heartbeat_seconds": HEARTBEAT}}
        ) as (cluster, nginx),
        aiohttp.ClientSession() as http,
    ):
        arrivals: asyncio.Queue[tuple[float, SseEvent | str]] = asyncio.Queue()

        async def read(resp: aiohttp.ClientResponse) -> None:
            while True:
                item = await read_event(resp)
                await arrivals.put((time.monotonic(), item))

        async def next_item(within: float) -> tuple[float, SseEvent | str]:
            async with asyncio.timeout(within):
                return await arrivals.get()

        asked = time.monotonic()
        async with http.get(nginx.url("/v1/events"), headers=AUTH) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"].startswith("text/event-stream"), resp.headers
            assert "Content-Encoding" not in resp.headers, "the stream must not be compressed"
            reader = asyncio.create_task(read(resp))
            try:
                at, first = await next_item(SSE_BOUND)
                print(f"': connected' through nginx {1000 * (at - asked):.0f} ms after asking")
                assert first == "connected", first

                # Idle: the heartbeat comment comes through on its own, not held for more.
                async with asyncio.timeout(HEARTBEAT + SSE_BOUND):
                    while (await arrivals.get())[1] != "heartbeat":
                        pass

                async with http.ws_connect(nginx.ws_url, headers={"Origin": nginx.base_url}) as ws:
                    session = await ws.receive_json(timeout=10)
                    assert session["type"] == "session", session
                    sse_on = await holder(http, cluster, "omnigw_sse_clients")
                    ws_on = await holder(http, cluster, "omnigw_webchat_sockets")
                    print(f"stream from replica {sse_on}, socket on replica {ws_on}")
                    sent = time.monotonic()
                    await ws.send_json({"type": "message", "client_id": "c1", "text": "Chào"})
                    ack = await ws.receive_json(timeout=10)
                    acked = time.monotonic()
                    assert ack["type"] == "ack", ack

                    while True:
                        at, item = await next_item(10)
                        if isinstance(item, SseEvent) and item.event == "message.received":
                            break
                assert item.data["data"]["message"]["id"] == ack["message_id"], item
                print(
                    f"message.received through nginx {1000 * (at - acked):.0f} ms after the "
                    f"ack ({1000 * (at - sent):.0f} ms after sending)"
                )
                assert at - acked < SSE_BOUND, f"the event took {at - acked:.2f}s after the ack"
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                    await reader


def served(gw: GatewayProcess, path: str) -> int:
    """How many requests for ``path`` the replica's access log shows."""
    return gw.stderr_text().count(f'"GET {path}" ')


async def test_requests_spread_over_both_replicas(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with (
        balanced(tmp_path, pg_url, redis_url) as (cluster, nginx),
        aiohttp.ClientSession() as http,
    ):
        path = "/readyz"  # not /healthz: Nginx.started asks it, logged maybe only now
        before = [served(gw, path) for gw in cluster.replicas]
        n = 20
        for _ in range(n):
            async with http.get(nginx.url(path)) as resp:
                assert resp.status == 200, await resp.text()

        def counts() -> list[int] | None:
            now = [served(gw, path) - b for gw, b in zip(cluster.replicas, before, strict=True)]
            return now if sum(now) >= n else None

        spread = await eventually(counts, f"the replicas to log {n} requests")
        print(f"{n} requests through nginx served per replica: {spread}")
        assert sum(spread) == n, spread
        assert all(count > 0 for count in spread), spread
        upstreams = set(re.findall(rf"GET {path} 200 upstream=(\S+)", nginx.access_log()))
        assert upstreams == {f"127.0.0.1:{gw.port}" for gw in cluster.replicas}, upstreams


async def test_body_limit_is_the_gateways(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    async with (
        balanced(tmp_path, pg_url, redis_url) as (cluster, nginx),
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        path = f"/v1/conversations/c_{uuid.uuid4().hex}/messages"
        headers = {"Content-Type": "application/json"}

        async def post(url: str, size: int) -> tuple[int, dict[str, Any]]:
            async with http.post(url, data=io.BytesIO(b" " * size), headers=headers) as resp:
                assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
                return resp.status, json.loads(await resp.text())

        # At the limit nginx passes the body on: the gateway itself answers (not 413).
        status, body = await post(nginx.url(path), MAX_BODY)
        assert status != 413, body
        # Above it nginx and a replica refuse it alike, in the gateway's error shape.
        for url in (nginx.url(path), cluster[0].url(path)):
            status, body = await post(url, MAX_BODY + 1)
            assert status == 413, (url, body)
            assert body["error"]["code"] == "payload_too_large", (url, body)
        # nginx refused it itself: the body never went to a replica.
        await eventually(
            lambda: f"POST {path} 413 upstream=-\n" in nginx.access_log(),
            "nginx's log of its own 413",
        )


async def test_widget_moves_to_the_other_replica_when_its_own_stops(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with (
        balanced(tmp_path, pg_url, redis_url) as (cluster, nginx),
        aiohttp.ClientSession() as http,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            chat = await open_chat(await browser.new_context(), nginx)
            first_id = await chat.send(VISITOR_TEXT)
            (first,) = await chat.wait_sessions(1)
            held_by = await holder(http, cluster, "omnigw_webchat_sockets")
            survivor = cluster[1 - held_by]

            # A rolling restart's first step: the replica closes its sockets as it stops.
            stopped = time.monotonic()
            await asyncio.to_thread(cluster[held_by].terminate)
            _, second = await chat.wait_sessions(2)
            await chat.wait_connected()
            print(f"reconnected through nginx {time.monotonic() - stopped:.2f}s after the stop")
            assert second["visitor_id"] == first["visitor_id"], (first, second)
            assert second["conversation_id"] is not None, second
            second_id = await chat.send(OTHER_TEXT)

            conv_id = second["conversation_id"]
            status, stored = await api(
                http, survivor, "GET", f"/v1/conversations/{conv_id}/messages"
            )
            assert status == 200, stored
            assert [m["id"] for m in stored["items"]] == [first_id, second_id], stored
            status, reply = await api(
                http,
                survivor,
                "POST",
                f"/v1/conversations/{conv_id}/messages",
                json={"text": REPLY_TEXT},
            )
            assert status == 202, reply
            shown = chat.page.locator(
                f'#omnigw-messages .omnigw-msg[data-message-id="{reply["id"]}"]'
            )
            await expect(shown.locator(".omnigw-text")).to_have_text(REPLY_TEXT, timeout=T)
            # nginx passes over the stopped replica.
            for _ in range(4):
                async with http.get(nginx.url("/healthz")) as resp:
                    assert resp.status == 200, await resp.text()
            assert chat.dialogs == []
            assert chat.errors == []
        finally:
            await browser.close()
