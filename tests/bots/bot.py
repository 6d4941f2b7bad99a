"""A small bot, as a bot platform would write one: an aiohttp server that verifies each
signed delivery with the standardwebhooks library, then answers the customer or hands
the conversation over through the gateway's API with its own token."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Bot:
    secret: str
    # "answer": reply to every customer message (handing over when asked to buy);
    # "silent": acknowledge and never answer; "fail": answer every delivery with 500.
    mode: str = "answer"
    gateway: str = ""  # the gateway's base URL
    token: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)  # verified, in order
    refused: int = 0  # deliveries whose signature did not verify
    url: str = ""
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Bot:
        app = web.Application()
        app.router.add_post("/bot", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/bot"
        return self

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def types(self, conversation_id: str | None = None) -> list[str]:
        return [
            e["type"]
            for e in self.events
            if conversation_id is None or _conversation_of(e) == conversation_id
        ]

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=401)
        if self.mode == "fail":
            return web.Response(status=500, text="bot crashed")
        event = json.loads(body)
        self.events.append(event)
        if self.mode == "answer" and event["type"] == "message.received":
            task = asyncio.ensure_future(self._answer(event["data"]["message"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    async def _answer(self, message: dict[str, Any]) -> None:
        conversation = message["conversation_id"]
        text = " ".join(p.get("text", "") for p in message["parts"]).lower()
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(self.gateway, headers=headers) as session:
            if "mua" in text:
                await session.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"text": "Dạ, em chuyển anh/chị sang bộ phận bán hàng ạ."},
                )
                await session.post(
                    f"/v1/conversations/{conversation}/handover",
                    json={"to": "humans", "reason": "wants_to_buy", "skills": ["sales"]},
                )
                return
            await session.post(
                f"/v1/conversations/{conversation}/messages",
                json={"text": "Xin chào! Em là trợ lý tự động, em giúp gì được ạ?"},
            )


def _conversation_of(event: dict[str, Any]) -> str | None:
    data = event["data"]
    if "conversation" in data:
        found: str = data["conversation"]["id"]
        return found
    if "message" in data:
        found = data["message"]["conversation_id"]
        return found
    return None
