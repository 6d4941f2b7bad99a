"""A real HTTP receiver on loopback whose answers a test scripts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None  # what the receiver answered

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


Behaviour = Callable[[Delivery, int], Awaitable[web.StreamResponse]]


async def ok(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Receiver:
    behaviour: Behaviour = ok
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, host: str = "127.0.0.1") -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        app.router.add_post("/elsewhere", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/hook"
        self.elsewhere: list[Delivery] = []
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        delivery = Delivery(dict(request.headers), await request.read(), time.monotonic())
        self.deliveries.append(delivery)
        self.arrived.set()
        response = await self.behaviour(delivery, len(self.deliveries))
        delivery.status = response.status
        return response

    def accepted(self) -> list[Delivery]:
        """Deliveries answered with a 2xx, in the order they arrived."""
        return [d for d in self.deliveries if d.status is not None and 200 <= d.status < 300]

    async def _elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.elsewhere.append(
            Delivery(dict(request.headers), await request.read(), time.monotonic())
        )
        return web.Response(status=204)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery checked by the standardwebhooks library (raises if one fails)."""
        hook = Webhook(secret)
        return [hook.verify(d.body, d.headers) for d in self.deliveries]

    def ids(self) -> set[str]:
        return {d.id for d in self.deliveries}
