"""A secret key that is lost or changed never takes the gateway down: what it sealed is
shown disabled with the reason, everything else keeps working, and a lost key file is
never silently replaced while the store holds something sealed with it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks import Webhook

from gateway.app import Gateway
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import AUTH, GatewayFactory
from tests.keys.helpers import CONFIG, IDENTITY_SECRET, KEY_A, KEY_B, add_channel, add_webhook
from tests.webhooks.receiver import Receiver


async def _stop(gw: Gateway) -> None:
    await gw.close_connections()
    await gw.stop()


async def _hook(client: TestClient, hook_id: str) -> dict:  # type: ignore[type-arg]
    return await get_json(client, f"/v1/webhooks/{hook_id}")  # type: ignore[no-any-return]


async def test_a_lost_key_file_is_not_replaced_and_what_it_sealed_waits_for_it(
    make_gateway: GatewayFactory,
    tmp_path: Path,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_secret = new_secret()
    elsewhere = receiver.url.replace("/hook", "/elsewhere")
    config = CONFIG + f'[[webhooks]]\nurl = "{elsewhere}"\nsecret = "{config_secret}"\n'
    gw = await make_gateway(config)
    async with TestClient(TestServer(gw.web_app())) as client:
        hook = await add_webhook(client, receiver.url)
        await add_channel(client)
    await _stop(gw)
    key_file = tmp_path / "data" / "secret.key"
    saved = key_file.read_bytes()
    key_file.unlink()

    caplog.set_level(logging.ERROR)
    gw = await make_gateway(config)  # starts: nothing sealed is fatal
    assert not key_file.exists(), "a new key was generated while sealed rows exist"
    assert "no secret key" in caplog.text
    async with TestClient(TestServer(gw.web_app())) as client:
        ready = await get_json(client, "/readyz", headers={})
        assert ready["status"] == "ready"
        # the API channel and the config's webchat (visitor tokens need the key) say why
        for channel in ("shop", "webchat"):
            state = ready["channels"][channel]
            assert state["state"] == "BAD_CREDENTIALS", state
            assert "secret key" in state["detail"], state
        assert (await client.get("/webchat/webchat/ws")).status == 503
        shown = await _hook(client, hook["id"])
        assert shown["enabled"] is False
        assert "secret key" in shown["disabled_reason"]
        # nothing new can be sealed without a key, and the answer says so
        resp = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=AUTH)
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "secret_key_missing"
        # what needs no key still works: the API reads the store, and the config file's
        # endpoint signs with the file's secret
        assert (await get_json(client, "/v1/conversations"))["items"] == []
        resp = await client.put("/v1/agents/lan/presence", json={"status": "away"}, headers=AUTH)
        assert resp.status == 200, await resp.text()
        await eventually(lambda: _elsewhere(receiver), within=10)
        Webhook(config_secret).verify(receiver.elsewhere[-1].body, receiver.elsewhere[-1].headers)
        assert not receiver.deliveries  # the API endpoint waits for the key
    await _stop(gw)
    assert not key_file.exists()

    # the key comes back: everything works again, nothing was lost meanwhile
    key_file.write_bytes(saved)
    gw = await make_gateway(config)
    async with TestClient(TestServer(gw.web_app())) as client:
        assert (await _hook(client, hook["id"]))["enabled"] is True
        ready = await get_json(client, "/readyz", headers={})
        assert ready["channels"]["shop"]["state"] == "CONNECTED"
        ws, _ = await open_visitor(client, channel="shop")
        assert (await say(ws, "Chào shop", "c1"))["type"] == "ack"
        await ws.close()
        await eventually(lambda: _arrived(receiver), within=10)
    receiver.verified(hook["secret"])


async def _arrived(receiver: Receiver) -> bool:
    return bool(receiver.accepted())


async def _elsewhere(receiver: Receiver) -> bool:
    return bool(receiver.elsewhere)


async def test_a_changed_key_disables_what_it_cannot_open_and_the_rest_runs(
    make_gateway: GatewayFactory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY_A)
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        hook = await add_webhook(client, receiver.url)
        await add_channel(client)
    await _stop(gw)

    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY_B)
    caplog.set_level(logging.ERROR)
    gw = await make_gateway(CONFIG)  # before: ValueError from the webhook dispatcher
    assert "secret key" in caplog.text
    async with TestClient(TestServer(gw.web_app())) as client:
        ready = await get_json(client, "/readyz", headers={})
        assert ready["status"] == "ready"
        shop = ready["channels"]["shop"]
        assert shop["state"] == "BAD_CREDENTIALS" and "secret key" in shop["detail"], shop
        assert ready["channels"]["webchat"]["state"] == "CONNECTED"  # needs a key, not that one
        detail = await get_json(client, "/v1/channels/shop")
        assert detail["source"] == "api" and detail["secrets"] == []
        shown = await _hook(client, hook["id"])
        assert shown["enabled"] is False and "secret key" in shown["disabled_reason"]
        # the config's webchat works under the new key
        ws, _ = await open_visitor(client)
        assert (await say(ws, "xin chào", "c1"))["type"] == "ack"
        await ws.close()

        # the admin gives the channel its settings again, and the endpoint a new secret
        resp = await client.patch(
            "/v1/channels/shop",
            json={"id": "shop", "type": "webchat", "identity_secret": IDENTITY_SECRET},
            headers=AUTH,
        )
        assert resp.status == 200, await resp.json()
        assert (await resp.json())["secrets"] == ["identity_secret"]
        rotated = await post_json(client, f"/v1/webhooks/{hook['id']}/rotate", {}, 200)
        assert (await _hook(client, hook["id"]))["enabled"] is True
        ws, _ = await open_visitor(client, channel="shop")
        assert (await say(ws, "Chào shop", "c2"))["type"] == "ack"
        await ws.close()
        await eventually(lambda: _arrived(receiver), within=10)
    receiver.verified(rotated["secret"])
    await _stop(gw)

    # a restart with the new key: all of it sealed under that key now
    caplog.clear()
    gw = await make_gateway(CONFIG)
    async with TestClient(TestServer(gw.web_app())) as client:
        assert (await get_json(client, "/readyz", headers={}))["channels"]["shop"][
            "state"
        ] == "CONNECTED"
        assert (await _hook(client, hook["id"]))["enabled"] is True
