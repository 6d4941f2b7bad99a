from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AUTH


async def open_visitor(
    client: TestClient, token: str | None = None, *, channel: str = "webchat", **kw: Any
) -> tuple[Any, dict[str, Any]]:  # type: ignore[type-arg]
    """Connect a webchat visitor; returns the socket and its session frame."""
    url = f"/webchat/{channel}/ws" + (f"?token={token}" if token else "")
    ws = await client.ws_connect(url, **kw)
    session = await ws.receive_json(timeout=5)
    assert session["type"] == "session"
    return ws, session


async def say(ws: Any, text: str, client_id: str) -> dict[str, Any]:
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    frame: dict[str, Any] = await ws.receive_json(timeout=5)
    return frame


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Poll until ``check`` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {within}s; last value: {last!r}")


async def get_json(
    client: TestClient, path: str, status: int = 200, headers: dict[str, str] | None = None
) -> Any:  # type: ignore[type-arg]
    resp = await client.get(path, headers=AUTH if headers is None else headers)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def post_json(
    client: TestClient,
    path: str,
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:  # type: ignore[type-arg]
    resp = await client.post(path, json=body, headers=AUTH if headers is None else headers)
    data = await resp.json()
    assert resp.status == status, data
    return data
