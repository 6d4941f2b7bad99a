"""A Messenger channel added through the admin API: its credentials work at once and
after a restart, and are never shown."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory
from tests.facebook.conftest import GraphFake
from tests.facebook.helpers import (
    API,
    APP_SECRET,
    CHANNEL,
    PAGE,
    TOKEN,
    VERIFY_TOKEN,
    raw,
    signed,
)

SETTINGS = {
    "id": CHANNEL,
    "type": "facebook",
    "app_secret": APP_SECRET,
    "verify_token": VERIFY_TOKEN,
    "pages": [{"id": PAGE, "access_token": TOKEN}],
    "api_base": API,
}


async def _received(client: TestClient) -> list[Any]:  # type: ignore[type-arg]
    page = await get_json(client, f"/v1/conversations?channel_id={CHANNEL}")
    return page["items"]  # type: ignore[no-any-return]


async def test_credentials_work_and_stay_hidden(
    graph: GraphFake, make_gateway: GatewayFactory
) -> None:
    gw = await make_gateway()
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await post_json(client, "/v1/channels", SETTINGS, 201)
        assert created["secrets"] == ["app_secret", "verify_token", "pages[0].access_token"]
        assert created["settings"]["pages"] == [{"id": PAGE}]
        shown = await client.get(f"/v1/channels/{CHANNEL}", headers=AUTH)
        for value in (APP_SECRET, VERIFY_TOKEN, TOKEN):
            assert value not in str(created)
            assert value not in await shown.text()

        challenge = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "42",
        }
        resp = await client.get(f"/webhooks/{CHANNEL}", params=challenge)
        assert (resp.status, await resp.text()) == (200, "42")
        body = raw("message_text")
        forged = await client.post(f"/webhooks/{CHANNEL}", data=body, headers=signed(body, "nope"))
        assert forged.status == 401
        resp = await client.post(f"/webhooks/{CHANNEL}", data=body, headers=signed(body))
        assert resp.status == 200
        await eventually(lambda: _received(client))

    await gw.close_connections()
    await gw.stop()
    gw2 = await make_gateway()
    async with TestClient(TestServer(gw2.web_app())) as client:
        forged = await client.post(f"/webhooks/{CHANNEL}", data=body, headers=signed(body, "nope"))
        assert forged.status == 401
        resp = await client.post(f"/webhooks/{CHANNEL}", data=body, headers=signed(body))
        assert resp.status == 200  # the same event again: deduplicated, still accepted
        assert len(await _received(client)) == 1
