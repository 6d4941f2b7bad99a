"""Numbers from outside are ASCII digits: "¹" or "٣" pass str.isdigit() but int() refuses
them, which must be a refusal, never a crash."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from gateway.webhooks.sending import parse_retry_after
from kernel.pages import encode_cursor
from tests.api.helpers import post_json
from tests.conftest import AUTH, GatewayFactory


def test_retry_after_in_other_digits_is_no_delay() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("¹") is None
    assert parse_retry_after("٣٠") is None


async def test_a_delivery_log_cursor_in_other_digits_is_400(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway("[webhook_delivery]\nallow_loopback = true\n")
    async with TestClient(TestServer(gw.web_app())) as client:
        hook = await post_json(
            client, "/v1/webhooks", {"url": "http://127.0.0.1:9/in", "events": ["*"]}, 201
        )
        for key in ("¹", "٣", "12a"):
            resp = await client.get(
                f"/v1/webhooks/{hook['id']}/deliveries?cursor={encode_cursor(key)}",
                headers=AUTH,
            )
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"]["code"] == "invalid_cursor"
