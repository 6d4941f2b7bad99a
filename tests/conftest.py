from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from gateway.app import Gateway

# Imported so that any test can ask for them; none starts a server until a test does.
from tests.servers import pg_server, pg_url, redis_server, redis_url  # noqa: F401

ADMIN = "test-admin-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways on the embedded default, or on a config given as TOML text."""
    started: list[Gateway] = []

    async def start(toml: str | None = None, **overrides: Any) -> Gateway:
        path = None
        if toml is not None:
            path = tmp_path / f"omnigw-{len(started)}.toml"
            path.write_text(toml, encoding="utf-8")
        settings = load_settings(
            path, env={}, overrides={"server.data_dir": str(tmp_path / "data"), **overrides}
        )
        gw = Gateway(settings, admin_token=ADMIN)
        await gw.start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.close_connections()
        await gw.stop()


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(gw.web_app())) as c:
        yield c
