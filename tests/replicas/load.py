"""Customers, agents and observers for multi-replica tests, all through the public
contracts: webchat sockets, signed Messenger webhooks, the HTTP API, SSE and webhook
deliveries. The providers' APIs (Meta's Graph API) are local HTTP servers speaking their
wire format: the replicas are other processes, out of reach of an in-process fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

from connectors.facebook.parse import SIGNATURE_HEADER, sign
from tests.e2e.server import AUTH, GatewayProcess

FB_CHANNEL = "fb-shop"
FB_PAGE = "104000000000001"
FB_SECRET = "fb-app-secret-for-replica-tests"
FB_TOKEN = "EAAGpageTOKENforREPLICAtests0123456789"
HOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FRAME_TIMEOUT = 15.0
SSE_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)


# --- Meta's Graph API, and the helpdesk's webhook endpoint ----------------------------------


class LocalServer:
    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class GraphApi(LocalServer):
    """The Send API, profiles and the token check, in Meta's wire format."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []  # every message request's JSON body
        self.mids = itertools.count(1)
        self.app.router.add_get("/v25.0/me", self._me)
        self.app.router.add_post("/v25.0/{page}/messages", self._send)
        self.app.router.add_get("/v25.0/{psid}", self._profile)

    @property
    def api_base(self) -> str:
        return self.url + "/v25.0"

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response({"id": FB_PAGE, "name": "Shop"})

    async def _profile(self, request: web.Request) -> web.Response:
        return web.json_response({"first_name": "Khách", "last_name": request.match_info["psid"]})

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = {"recipient_id": body["recipient"]["id"]}
        if "message" in body:
            self.sent.append(body)
            answer["message_id"] = f"m_out-{next(self.mids):06d}"
        return web.json_response(answer)


class HookReceiver(LocalServer):
    """A helpdesk's endpoint: verifies every delivery with the `standardwebhooks` package
    and keeps (webhook-id, event) of each, duplicates included."""

    def __init__(self) -> None:
        super().__init__()
        self.verifier = Webhook(HOOK_SECRET)
        self.deliveries: list[tuple[str, dict[str, Any]]] = []
        self.bad = 0
        self.app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.bad += 1
            return web.Response(status=400)
        self.deliveries.append((request.headers["webhook-id"], event))
        return web.Response(status=204)

    def by_event(self) -> dict[str, set[str]]:
        """event id -> the webhook-ids it came with (one, however often it came)."""
        found: dict[str, set[str]] = defaultdict(set)
        for webhook_id, event in self.deliveries:
            found[event["id"]].add(webhook_id)
        return found


def channels_config(graph: GraphApi) -> list[dict[str, Any]]:
    return [
        {"id": "webchat", "type": "webchat"},
        {
            "id": FB_CHANNEL,
            "type": "facebook",
            "app_secret": FB_SECRET,
            "verify_token": "verify-token-for-replica-tests",
            "pages": [{"id": FB_PAGE, "access_token": FB_TOKEN}],
            "api_base": graph.api_base,
            "human_agent_tag": True,
        },
    ]


# --- customers --------------------------------------------------------------------------------


@dataclass
class Customers:
    """Webchat visitors and Messenger users writing to replicas in turn. A customer whose
    replica stops answering goes to the next one and sends again what was not
    acknowledged (webchat: same client_id; Messenger: the same event, as Meta retries)."""

    replicas: list[GatewayProcess]
    alive: Callable[[int], bool] = lambda _i: True
    acked: dict[str, str] = field(default_factory=dict)  # external id -> message id
    sent_webhooks: Counter[str] = field(default_factory=Counter)  # mid -> times posted
    visitor_ids: dict[int, str] = field(default_factory=dict)
    tokens: dict[int, str] = field(default_factory=dict)
    retries: int = 0

    def _replica(self, n: int) -> GatewayProcess:
        for step in range(len(self.replicas)):
            index = (n + step) % len(self.replicas)
            if self.alive(index):
                return self.replicas[index]
        raise RuntimeError("no replica is alive")

    async def visitor(
        self, http: aiohttp.ClientSession, n: int, messages: int, pause: float = 0.0
    ) -> None:
        sent = 0
        attempt = 0
        while sent < messages:
            gw = self._replica(n + attempt)
            token = self.tokens.get(n)
            url = gw.ws_url + (f"?token={token}" if token else "")
            try:
                # Each customer on a device of its own (the replicas trust 127.0.0.1).
                address = {"X-Forwarded-For": f"198.18.{n // 250}.{n % 250 + 1}"}
                async with http.ws_connect(url, headers=address) as ws:
                    session = await ws.receive_json(timeout=FRAME_TIMEOUT)
                    assert session["type"] == "session", session
                    self.tokens[n] = session["token"]
                    self.visitor_ids[n] = session["visitor_id"]
                    while sent < messages:
                        client_id = f"m{sent}"
                        text = f"Khách {n} nhắn lần {sent}: đơn hàng #{10_000 + n} ở đâu rồi ạ?"
                        await ws.send_json(
                            {"type": "message", "client_id": client_id, "text": text}
                        )
                        while True:
                            frame = await ws.receive_json(timeout=FRAME_TIMEOUT)
                            if frame.get("type") == "ack" and frame["client_id"] == client_id:
                                break
                            assert frame.get("type") != "error", frame
                        self.acked[f"{session['visitor_id']}:{client_id}"] = frame["message_id"]
                        sent += 1
                        if pause:
                            await asyncio.sleep(pause)
            except (aiohttp.ClientError, TimeoutError, ConnectionError, TypeError) as exc:
                # The replica went away (TypeError: a closed socket's frame is not JSON).
                attempt += 1
                self.retries += 1
                if attempt > 50:
                    raise RuntimeError(f"visitor {n} could not send: {exc!r}") from exc
                await asyncio.sleep(0.2)

    async def messenger_user(
        self, http: aiohttp.ClientSession, n: int, messages: int, pause: float = 0.0
    ) -> None:
        psid = f"70{n:014d}"
        for i in range(messages):
            mid = f"m_in-{n:04d}-{i:04d}"
            now = int(time.time() * 1000)
            body = json.dumps(
                {
                    "object": "page",
                    "entry": [
                        {
                            "id": FB_PAGE,
                            "time": now,
                            "messaging": [
                                {
                                    "sender": {"id": psid},
                                    "recipient": {"id": FB_PAGE},
                                    "timestamp": now,
                                    "message": {"mid": mid, "text": f"Shop ơi, lần {i} của {n}"},
                                }
                            ],
                        }
                    ],
                },
                ensure_ascii=True,
            ).encode()
            headers = {
                SIGNATURE_HEADER: sign(FB_SECRET.encode(), body),
                "Content-Type": "application/json",
            }
            attempt = 0
            while True:
                gw = self._replica(n + i + attempt)
                self.sent_webhooks[mid] += 1
                try:
                    async with http.post(
                        gw.url(f"/webhooks/{FB_CHANNEL}"), data=body, headers=headers
                    ) as resp:
                        if resp.status == 200:
                            self.acked[mid] = mid
                            break
                except (aiohttp.ClientError, ConnectionError):
                    pass
                attempt += 1  # as Meta does: the same event again, later
                self.retries += 1
                if attempt > 600:
                    raise RuntimeError(f"messenger user {n} could not deliver {mid}")
                await asyncio.sleep(0.2)
            if pause:
                await asyncio.sleep(pause)


# --- observers --------------------------------------------------------------------------------


class Stream:
    """GET /v1/events on one replica, every event kept in order."""

    def __init__(self, gw: GatewayProcess, last_event_id: str | None = None) -> None:
        self.gw = gw
        self.last_event_id = last_event_id
        self.events: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.task = asyncio.create_task(self._read(http))
        async with asyncio.timeout(FRAME_TIMEOUT):
            await self.connected.wait()

    async def _read(self, http: aiohttp.ClientSession) -> None:
        headers = dict(AUTH)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        async with http.get(self.gw.url("/v1/events"), headers=headers, timeout=SSE_TIMEOUT) as r:
            assert r.status == 200, await r.text()
            self.connected.set()
            data: list[str] = []
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    self.events.append(json.loads("\n".join(data)))
                    data = []
                    self.changed.set()

    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    async def until(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.changed.wait()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def streaming(
    http: aiohttp.ClientSession, gw: GatewayProcess, last_event_id: str | None = None
) -> AsyncIterator[Stream]:
    stream = Stream(gw, last_event_id)
    await stream.start(http)
    try:
        yield stream
    finally:
        await stream.close()


async def api(
    http: aiohttp.ClientSession, gw: GatewayProcess, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, gw.url(path), headers=AUTH, **kwargs) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def eventually(
    check: Callable[[], Any], within: float, every: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``await check()`` until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")
