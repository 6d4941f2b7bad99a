"""API requests per token: a burst, then a steady rate; beyond it 429 with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import get_json, post_json
from tests.conftest import ADMIN, GatewayFactory

Client = TestClient  # type: ignore[type-arg]


async def _client(make_gateway: GatewayFactory, rate: float, burst: int) -> Any:
    gw = await make_gateway(
        None, **{"server.api_rate_per_second": rate, "server.api_rate_burst": burst}
    )
    return TestClient(TestServer(gw.web_app()))


@pytest.fixture
async def limited(make_gateway: GatewayFactory) -> AsyncIterator[Client]:
    async with await _client(make_gateway, rate=2.0, burst=4) as client:
        yield client


async def test_beyond_the_burst_is_429_with_retry_after(limited: Client) -> None:
    other = await post_json(limited, "/v1/tokens", {"name": "app", "scopes": ["integration"]}, 201)
    for _ in range(3):  # the token request above took the first of 4
        await get_json(limited, "/v1/conversations")
    resp = await limited.get("/v1/conversations", headers=_auth("admin"))
    body = await resp.json()
    assert resp.status == 429, body
    assert resp.headers["Retry-After"] == "1"  # 0.5 s to the next request, rounded up
    assert body["error"]["code"] == "rate_limited"
    assert 0 < body["error"]["details"]["retry_after_seconds"] <= 0.5
    # another token has a bucket of its own
    theirs = {"Authorization": f"Bearer {other['token']}"}
    assert (await limited.get("/v1/conversations", headers=theirs)).status == 200
    # a bad token is refused for what it is, and unlimited endpoints stay open
    assert (await limited.get("/v1/conversations", headers=_auth("nope"))).status == 401
    for _ in range(10):
        assert (await limited.get("/healthz")).status == 200
    # the bucket refills at its rate
    await asyncio.sleep(body["error"]["details"]["retry_after_seconds"] + 0.05)
    await get_json(limited, "/v1/conversations")
    assert (await limited.get("/v1/conversations", headers=_auth("admin"))).status == 429


async def test_zero_turns_the_limit_off(make_gateway: GatewayFactory) -> None:
    async with await _client(make_gateway, rate=0, burst=1) as client:
        for _ in range(30):
            await get_json(client, "/v1/conversations")


def _auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN if who == 'admin' else who}"}
