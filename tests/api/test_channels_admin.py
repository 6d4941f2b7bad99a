"""Channels added, changed and removed through the admin API while the gateway runs:
they work at once, survive a restart, and their credentials are never shown nor kept
readable at rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import get_json, open_visitor, post_json, say
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]
SECRET = "visitor-hmac-secret-Zx81"


async def _patch(client: Client, path: str, body: Any, status: int = 200) -> Any:
    resp = await client.patch(path, json=body, headers=AUTH)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def test_add_use_change_restart_and_remove(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway()
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await post_json(
            client,
            "/v1/channels",
            {
                "id": "shop",
                "type": "webchat",
                "identity_secret": SECRET,
                "allowed_origins": ["https://shop.example"],
            },
            201,
        )
        assert created["source"] == "api"
        assert created["settings"]["allowed_origins"] == ["https://shop.example"]
        assert "identity_secret" not in created["settings"]
        assert created["secrets"] == ["identity_secret"]
        assert SECRET not in str(created)
        listed = {c["id"]: c for c in (await get_json(client, "/v1/channels"))["items"]}
        assert listed["shop"]["source"] == "api"
        assert listed["webchat"]["source"] == "config"

        # it works at once: a visitor writes on it
        ws, _ = await open_visitor(client, channel="shop")
        assert (await say(ws, "Chào shop", "c1"))["type"] == "ack"
        await ws.close()
        convs = await get_json(client, "/v1/conversations?channel_id=shop")
        assert len(convs["items"]) == 1

        # change: a merge patch; credentials left out are kept
        changed = await _patch(
            client, "/v1/channels/shop", {"allowed_origins": ["https://other.example"]}
        )
        assert changed["settings"]["allowed_origins"] == ["https://other.example"]
        assert changed["secrets"] == ["identity_secret"]
        await _patch(client, "/v1/channels/shop", {"type": "facebook"}, 422)
        await _patch(client, "/v1/channels/shop", {"rate_burst": 0}, 400)
        assert (await get_json(client, "/v1/channels/shop"))["settings"]["rate_burst"] == 20

    # nothing of the settings is readable at rest
    db = sqlite3.connect(tmp_path / "data" / "omnigw.db")
    (sealed,) = db.execute("SELECT sealed FROM api_channels WHERE id = 'shop'").fetchone()
    db.close()
    assert SECRET not in sealed and "other.example" not in sealed

    # a restart starts it again, as last changed
    await gw.close_connections()
    await gw.stop()
    gw2 = await make_gateway()
    async with TestClient(TestServer(gw2.web_app())) as client:
        again = await get_json(client, "/v1/channels/shop")
        assert again["settings"]["allowed_origins"] == ["https://other.example"]
        assert again["secrets"] == ["identity_secret"]
        assert again["state"] == "CONNECTED"
        # credentials can be removed (null), then the channel no longer has them
        cleared = await _patch(client, "/v1/channels/shop", {"identity_secret": None})
        assert cleared["secrets"] == []

        resp = await client.delete("/v1/channels/shop", headers=AUTH)
        assert resp.status == 204
        await get_json(client, "/v1/channels/shop", 404)
        assert (await client.get("/webchat/shop/ws")).status == 404
        # its conversation stays
        assert len((await get_json(client, "/v1/conversations?channel_id=shop"))["items"]) == 1
    await gw2.close_connections()
    await gw2.stop()
    gw3 = await make_gateway()
    assert "shop" not in gw3.connectors


async def test_what_cannot_be_done(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    async with TestClient(TestServer(gw.web_app())) as client:
        # the config file's channel
        body = await _patch(client, "/v1/channels/webchat", {"rate_burst": 5}, 409)
        assert body["error"]["code"] == "channel_in_config"
        resp = await client.delete("/v1/channels/webchat", headers=AUTH)
        assert resp.status == 409
        dup = await post_json(client, "/v1/channels", {"id": "webchat", "type": "webchat"}, 409)
        assert dup["error"]["code"] == "channel_exists"
        # bad settings, each named
        bad = await post_json(client, "/v1/channels", {"id": "x", "type": "pigeon"}, 400)
        assert bad["error"]["code"] == "validation_error"
        bad = await post_json(client, "/v1/channels", {"type": "webchat"}, 400)
        assert any(d["field"] and "id" in d["field"] for d in bad["error"]["details"])
        bad = await post_json(
            client, "/v1/channels", {"id": "x", "type": "webchat", "colour": "red"}, 400
        )
        assert any("colour" in (d["field"] or "") for d in bad["error"]["details"])
        await post_json(client, "/v1/channels", [1, 2], 400)
        # unknown ones
        await _patch(client, "/v1/channels/nowhere", {"rate_burst": 5}, 404)
        assert (await client.delete("/v1/channels/nowhere", headers=AUTH)).status == 404
        # admins only
        token = await post_json(
            client, "/v1/tokens", {"name": "app", "scopes": ["integration"]}, 201
        )
        resp = await client.post(
            "/v1/channels",
            json={"id": "y", "type": "webchat"},
            headers={"Authorization": f"Bearer {token['token']}"},
        )
        assert resp.status == 403
        assert "y" not in gw.connectors
