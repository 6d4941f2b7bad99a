"""Logging in: the admin token's length, and failed logins throttled per client address."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import ConfigError, load_settings
from gateway.api.logins import bucket_of
from gateway.app import Gateway
from tests.api.helpers import post_json
from tests.conftest import ADMIN, AUTH, GatewayFactory


@pytest.mark.parametrize("token", ["x", "change-me", "a" * 31])
def test_a_short_admin_token_is_refused(tmp_path: Path, token: str) -> None:
    settings = load_settings(None, env={}, overrides={"server.data_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as refused:
        Gateway(settings, admin_token=token)
    (problem,) = refused.value.problems
    assert problem.key == "OMNIGW_ADMIN_TOKEN"
    assert f"{len(token)} characters" in problem.message and "at least 32" in problem.message
    assert token not in str(refused.value)
    assert Gateway(settings, admin_token="a" * 32).admin_token == "a" * 32


def test_serve_refuses_a_short_admin_token_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "OMNIGW_ADMIN_TOKEN": "hunter2-is-short"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "OMNIGW_ADMIN_TOKEN" in result.stderr and "at least 32" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "listening" not in result.stdout


Client = TestClient  # type: ignore[type-arg]


async def _limited(make_gateway: GatewayFactory, per_minute: float, burst: int, **more: Any) -> Any:
    gw = await make_gateway(
        None,
        **{
            "server.login_failures_per_minute": per_minute,
            "server.login_failures_burst": burst,
            **more,
        },
    )
    return TestClient(TestServer(gw.web_app()))


def _bearer(token: str, forwarded_for: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return headers


async def _status(client: Client, headers: dict[str, str]) -> int:
    async with client.get("/v1/conversations", headers=headers) as resp:
        return resp.status


async def test_failed_logins_from_an_address_are_throttled(make_gateway: GatewayFactory) -> None:
    async with await _limited(make_gateway, per_minute=60, burst=3) as client:
        assert await _status(client, AUTH) == 200  # the admin token, from this address
        fresh = await post_json(
            client, "/v1/tokens", {"name": "app", "scopes": ["integration"]}, 201
        )
        for guess in range(3):
            assert await _status(client, _bearer(f"guess-{guess}")) == 401
        resp = await client.get("/v1/conversations", headers=_bearer("guess-3"))
        body = await resp.json()
        assert resp.status == 429, body
        assert resp.headers["Retry-After"] == "1"  # one failure a second
        assert body["error"]["code"] == "too_many_failed_logins"
        assert 0 < body["error"]["details"]["retry_after_seconds"] <= 1
        # while it waits, no token from here is tried, a right one included...
        assert await _status(client, _bearer(fresh["token"])) == 429
        assert await _status(client, {}) == 429
        # ... except one accepted from here before; and routes without tokens stay open
        assert await _status(client, AUTH) == 200
        assert (await client.get("/healthz")).status == 200
        # one more guess a second
        await asyncio.sleep(body["error"]["details"]["retry_after_seconds"] + 0.05)
        assert await _status(client, _bearer("guess-4")) == 401
        assert await _status(client, _bearer("guess-5")) == 429
        await asyncio.sleep(1.05)
        assert await _status(client, _bearer(fresh["token"])) == 200


async def test_successes_never_count(make_gateway: GatewayFactory) -> None:
    async with await _limited(make_gateway, per_minute=1, burst=2) as client:
        for _ in range(30):
            assert await _status(client, AUTH) == 200
        assert await _status(client, _bearer("guess-1")) == 401
        assert await _status(client, _bearer("guess-2")) == 401
        assert await _status(client, _bearer("guess-3")) == 429


async def test_each_client_address_has_its_own_count(make_gateway: GatewayFactory) -> None:
    # Behind a trusted proxy the client is the address it forwards; anywhere else the
    # peer itself, whatever X-Forwarded-For says.
    async with await _limited(
        make_gateway, per_minute=1, burst=2, **{"server.trusted_proxies": ["127.0.0.0/8"]}
    ) as client:
        for guess in range(2):
            assert await _status(client, _bearer(f"g{guess}", "203.0.113.7")) == 401
        assert await _status(client, _bearer("g3", "203.0.113.7")) == 429
        assert await _status(client, _bearer("g3", "198.51.100.1, 203.0.113.7")) == 429
        assert await _status(client, _bearer("g3", "198.51.100.1")) == 401
        assert await _status(client, _bearer(ADMIN, "198.51.100.2")) == 200
    async with await _limited(make_gateway, per_minute=1, burst=2) as client:
        for guess in range(2):
            assert await _status(client, _bearer(f"g{guess}", f"203.0.113.{guess}")) == 401
        assert await _status(client, _bearer("g3", "192.0.2.99")) == 429


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_an_ipv6_client_is_counted_by_its_64(address: str, bucket: str) -> None:
    assert bucket_of(address) == bucket


async def test_zero_turns_the_limit_off(make_gateway: GatewayFactory) -> None:
    async with await _limited(make_gateway, per_minute=0, burst=1) as client:
        for guess in range(30):
            assert await _status(client, _bearer(f"guess-{guess}")) == 401
