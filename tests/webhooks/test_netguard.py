"""Where webhook deliveries may connect, checked at every connection (issue 17, defect 3):
IP literals and config endpoints included, IPv6 supported, link-local never. Against real
listeners on this machine's loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config import load_settings
from config.loader import ConfigError
from gateway.app import Gateway
from kernel.netguard import NetGuard, UnsafeAddress, UnsafeUrl
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory
from tests.webhooks.receiver import Delivery, Receiver
from tests.webhooks.test_delivery import FAST, say

STRICT = FAST.replace("allow_loopback = true", "allow_loopback = false")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def hook(url: str, secret: str, ident: str = "helpdesk") -> str:
    return (
        f'\n[[webhooks]]\nid = "{ident}"\nurl = "{url}"\nsecret = "{secret}"\n'
        'events = ["message.received"]\n'
    )


@pytest.mark.parametrize(
    ("address", "why"),
    [("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("10.1.2.3", "private")],
)
def test_config_endpoints_on_addresses_not_allowed_are_refused_at_start(
    tmp_path: Path, address: str, why: str
) -> None:
    path = tmp_path / "omnigw.toml"
    path.write_text(STRICT + hook(f"http://{address}:9/hook", new_secret()), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    (problem,) = caught.value.problems
    assert problem.key == "webhooks[helpdesk].url"
    assert why in problem.message


async def test_a_config_endpoint_on_loopback_is_never_contacted(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The file is refused (the gateway does not start), so the listener hears nothing.
    path = tmp_path / "omnigw.toml"
    path.write_text(STRICT + hook(receiver.url, new_secret()), encoding="utf-8")
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(path, env={}, overrides={"server.data_dir": str(tmp_path / "data")})
    await asyncio.sleep(0.3)
    assert receiver.deliveries == []


async def test_a_stored_ip_literal_endpoint_is_checked_at_connection(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    """An endpoint saved while loopback was allowed is not delivered to once it is not:
    aiohttp never resolves an IP literal, the connection itself is checked."""
    first = await make_gateway(FAST)
    async with TestClient(TestServer(first.web_app())) as client:
        created = await post_json(client, "/v1/webhooks", {"url": receiver.url}, 201)
        await say(first, "v1", 0)
        await eventually(lambda: _heard(receiver, 1))
    await first.close_connections()
    await first.stop()

    heard = len(receiver.deliveries)
    gw = await make_gateway(STRICT)
    async with TestClient(TestServer(gw.web_app())) as client:
        await say(gw, "v1", 1)

        async def failed() -> list[str]:
            log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries?limit=100")
            return [i["error"] or "" for i in log["items"] if i["outcome"] != "succeeded"]

        errors = await eventually(failed)
        assert "may not be called (loopback)" in errors[0]
        await asyncio.sleep(0.5)  # retries included
        assert len(receiver.deliveries) == heard


async def _heard(receiver: Receiver, count: int) -> bool:
    return len(receiver.deliveries) >= count


def _signed_with(secret: str, delivery: Delivery) -> bool:
    try:
        Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_ipv6_endpoints_are_delivered_to(make_gateway: GatewayFactory) -> None:
    six = await Receiver().start("::1")
    try:
        secret = new_secret()
        gw = await make_gateway(FAST + hook(six.url, secret, "six"))
        async with TestClient(TestServer(gw.web_app())) as client:
            created = await post_json(
                client, "/v1/webhooks", {"url": six.url, "events": ["message.received"]}, 201
            )
            await say(gw, "v1", 0)
            await eventually(lambda: _heard(six, 2))
            assert {d.headers["Host"] for d in six.deliveries} == {six.url.split("/")[2]}
            ids = {d.id for d in six.deliveries}
            assert len(ids) == 1  # one event, to both endpoints

            async def logged() -> list[str]:
                log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries")
                return [i["outcome"] for i in log["items"]]

            assert await eventually(logged) == ["succeeded"]
            # Each endpoint's delivery carries its own signature.
            for key in (secret, created["secret"]):
                assert sum(_signed_with(key, d) for d in six.deliveries) == 1
    finally:
        await six.stop()


async def test_ipv6_urls_are_checked_like_ipv4_ones(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(STRICT)
    async with TestClient(TestServer(gw.web_app())) as client:
        # A public IPv6 address is a valid target (nothing is contacted when it is saved).
        await post_json(client, "/v1/webhooks", {"url": "https://[2606:4700:4700::1111]/h"}, 201)
        for url in (
            "http://[::1]:9/x",
            "http://[fe80::1]/x",
            "http://[fe80::1%25eth0]/x",
            "http://[fd00::8]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 to 169.254.169.254
            "http://[2002:7f00:1::]/x",  # 6to4 from 127.0.0.1
            "http://[::]/x",
            "http://[ff02::1]/x",
            "http://127.0.0.1:99999/x",
            "http://[::1/x",
            "http://[2606:4700:4700::1111/x",
        ):
            resp = await client.post("/v1/webhooks", json={"url": url}, headers=AUTH)
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (422, "unsafe_url"), (url, body)


async def test_link_local_is_refused_at_connection_whatever_is_allowed() -> None:
    guard = NetGuard(allow_private=True, allow_loopback=True)
    attempts: list[str] = []

    def factory(addr_info: tuple[object, ...]) -> socket.socket:
        attempts.append(str(addr_info[4][0]))  # type: ignore[index]
        return guard.socket_factory(addr_info)

    connector = aiohttp.TCPConnector(socket_factory=factory)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in ("http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x"):
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await session.get(url, timeout=aiohttp.ClientTimeout(total=5))
            assert isinstance(caught.value.os_error, UnsafeAddress)
            assert "link-local" in str(caught.value)
    assert attempts == ["169.254.169.254", "fe80::1"]
    with pytest.raises(UnsafeUrl, match="link-local"):
        await guard.check_url("http://169.254.169.254/")


async def test_a_name_is_checked_for_every_address_it_resolves_to() -> None:
    strict = NetGuard()
    with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1 \(loopback\)"):
        await strict.check_url("http://localhost:8080/x")
    await NetGuard(allow_loopback=True).check_url("http://localhost:8080/x")
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await strict.check_url("http://no-such-host.invalid/x")


async def test_the_gateway_sessions_refuse_loopback_names_at_connection(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    """A config endpoint by name (not refused at start: names resolve when connected to)
    is checked at each connection: `localhost` is loopback."""
    secret = new_secret()
    url = receiver.url.replace("127.0.0.1", "localhost")
    gw: Gateway = await make_gateway(STRICT + hook(url, secret))
    async with TestClient(TestServer(gw.web_app())) as client:
        await say(gw, "v1", 0)

        async def failed() -> list[str]:
            log = await get_json(client, "/v1/webhooks/helpdesk/deliveries?limit=100")
            return [i["error"] or "" for i in log["items"]]

        errors = await eventually(failed)
        assert "loopback" in errors[0]
        assert receiver.deliveries == []
