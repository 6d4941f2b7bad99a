"""Zalo's reply window and ZNS through the real gateway, Zalo faked at the transport in
its wire format: a customer-service message while the customer's window is open; a
`template` part as a ZNS message to the phone (POST /message/template on zns_api_base,
header access_token) when it is not; ZNS errors in the body; ZNS delivery news moving the
message's status; a send the window does not allow refused at once with no call."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx

from connectors.registry import ZALO_TOKENS
from connectors.zalo.connector import ZaloConnector
from kernel.models import utcnow
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory
from tests.providers import Served, settled
from tests.zalo.conftest import ZaloFake, Zl
from tests.zalo.helpers import CHANNEL, USER, config, load, zalo_time
from tests.zalo.test_send import customer_writes

ZNS = "https://business.openapi.zalo.test"
TEMPLATES = 'zns_templates = { order_confirmed = "231245", "giao_hàng" = "231246" }'
PHONE = "0912 345 678"
E164 = "+84912345678"
ORDER = {"type": "template", "name": "order_confirmed", "data": {"order_code": "DH-1042"}}


class ZnsFake:
    """ZNS as respx serves it: success or a scripted error, in Zalo's body format."""

    def __init__(self, router: respx.MockRouter, zalo: ZaloFake) -> None:
        self.zalo = zalo
        self.route = router.post(f"{ZNS}/message/template")
        self.route.side_effect = self.on_send
        self.script: list[httpx.Response] = []
        self.n = 0

    def on_send(self, request: httpx.Request) -> httpx.Response:
        if self.script:
            return self.script.pop(0)
        if request.headers.get("access_token") != self.zalo.access:
            return httpx.Response(200, json={"error": -124, "message": "Access token invalid"})
        self.n += 1
        return httpx.Response(
            200,
            json={
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": f"a1b2c3d4e5f6zns{self.n:04d}",
                    "sent_time": "1767225600000",
                    "quota": {"dailyQuota": "500", "remainingQuota": "499"},
                },
            },
        )

    def calls(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(dict(c.request.headers), json.loads(c.request.content)) for c in self.route.calls]


Started = Callable[..., Awaitable[tuple[Zl, ZnsFake]]]


@pytest.fixture
async def start_zns(zalo: ZaloFake, make_gateway: GatewayFactory) -> AsyncIterator[Started]:
    async with Served(make_gateway) as served:

        async def start(templates: bool = True) -> tuple[Zl, ZnsFake]:
            toml = config(zns_api_base=ZNS)
            if templates:
                toml = toml.replace(
                    f'zns_api_base = "{ZNS}"', f'zns_api_base = "{ZNS}"\n{TEMPLATES}'
                )
            gw, client = await served.start(toml)
            return Zl(gw, client, zalo), ZnsFake(zalo.router, zalo)

        yield start


async def move_clock(zl: Zl, *, hours: float) -> None:
    """Replace the channel's connector by one whose clock runs ``hours`` ahead."""
    old = zl.gw.connectors[CHANNEL]
    assert isinstance(old, ZaloConnector)
    keys = ZALO_TOKENS.keys(zl.gw._derive_key, CHANNEL)
    connector = ZaloConnector(
        old.settings, httpx.AsyncClient(), keys, clock=lambda: utcnow() + timedelta(hours=hours)
    )
    await old.aclose()
    zl.gw.connectors[connector.channel_id] = connector
    await connector.start(zl.gw.pipeline)


async def set_phone(zl: Zl, contact_id: str) -> None:
    resp = await zl.client.patch(f"/v1/contacts/{contact_id}", json={"phone": PHONE}, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def window(zl: Zl, conv_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await get_json(zl.client, f"/v1/conversations/{conv_id}"))[
        "reply_window"
    ]
    return found


async def contact_of(zl: Zl, conv_id: str) -> str:
    return str((await get_json(zl.client, f"/v1/conversations/{conv_id}"))["contact_id"])


@pytest.mark.parametrize(
    ("hours", "state", "free"),
    [(47, "open", True), (49, "open", False), (7 * 24 + 1, "template_only", None)],
)
async def test_windows_at_47_h_49_h_and_7_days(
    start_zns: Started, hours: float, state: str, free: bool | None
) -> None:
    zl, zns = await start_zns()
    conv_id = await customer_writes(zl)
    await set_phone(zl, await contact_of(zl, conv_id))
    await move_clock(zl, hours=hours)
    shown = await window(zl, conv_id)
    assert shown["state"] == state
    resp = await zl.client.post(
        f"/v1/conversations/{conv_id}/messages", json={"text": "Dạ shop đây ạ"}, headers=AUTH
    )
    answer = await resp.json()
    if state == "open":
        assert shown["free_until"] is not None
        assert ("(free)" in shown["reason"]) is free
        assert resp.status == 202, answer
        assert (await settled(zl, answer["id"]))["status"] == "sent"
        assert len(zl.zalo.bodies()) == 1
    else:
        assert resp.status == 422, answer
        assert answer["error"]["code"] == "window_closed"
        assert answer["error"]["details"]["allowed"] == ["template"]
        assert zl.zalo.bodies() == [] and zns.calls() == []


async def test_after_7_days_a_template_goes_out_by_zns(start_zns: Started) -> None:
    zl, zns = await start_zns()
    conv_id = await customer_writes(zl)
    await set_phone(zl, await contact_of(zl, conv_id))
    await move_clock(zl, hours=8 * 24)
    msg = await post_json(
        zl.client, f"/v1/conversations/{conv_id}/messages", {"parts": [ORDER]}, status=202
    )
    sent = await settled(zl, msg["id"])
    assert sent["status"] == "sent"
    ((headers, body),) = zns.calls()
    assert headers["access_token"] == zl.zalo.access
    assert body == {
        "phone": "84912345678",
        "template_id": "231245",
        "template_data": {"order_code": "DH-1042"},
        "tracking_id": msg["id"],
    }
    assert zl.zalo.bodies() == []  # not a CS message
    assert sent["external_id"] == "a1b2c3d4e5f6zns0001"
    # ZNS's delivery news names the msg_id it gave
    news = load("zns_user_received_message")
    news["message"]["msg_id"] = sent["external_id"]
    news["message"]["tracking_id"] = msg["id"]
    news["timestamp"] = zalo_time(time.time() + 8 * 24 * 3600)  # the channel's now
    await zl.deliver(news)

    async def delivered() -> bool:
        found = await get_json(zl.client, f"/v1/messages/{msg['id']}")
        return bool(found["status"] == "delivered")

    await eventually(delivered)


async def test_zns_errors_in_the_body_fail_the_message(start_zns: Started) -> None:
    zl, zns = await start_zns()
    conv_id = await customer_writes(zl)
    await set_phone(zl, await contact_of(zl, conv_id))
    zns.script.append(
        httpx.Response(200, json={"error": -108, "message": "Phone number is invalid"})
    )
    msg = await post_json(
        zl.client, f"/v1/conversations/{conv_id}/messages", {"parts": [ORDER]}, status=202
    )
    failed = await settled(zl, msg["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "zalo_error:-108"
    assert "Phone number is invalid" in failed["error"]["reason"]
    assert failed["error"]["retryable"] is False


async def test_templates_refused_where_they_cannot_go(start_zns: Started) -> None:
    zl, zns = await start_zns(templates=False)
    conv_id = await customer_writes(zl)
    await set_phone(zl, await contact_of(zl, conv_id))
    url = f"/v1/conversations/{conv_id}/messages"
    no_zns = await post_json(zl.client, url, {"parts": [ORDER]}, status=422)
    assert no_zns["error"]["code"] == "unsupported_part"
    await move_clock(zl, hours=8 * 24)
    assert (await window(zl, conv_id))["state"] == "closed"  # no ZNS: nothing goes out
    closed = await post_json(zl.client, url, {"text": "Xin chào"}, status=422)
    assert closed["error"]["details"] == {
        "reply_window": await window(zl, conv_id),
        "allowed": [],
    }
    assert zns.calls() == [] and zl.zalo.bodies() == []


async def test_template_names_and_the_phone_are_checked_before_storing(
    start_zns: Started,
) -> None:
    zl, zns = await start_zns()
    conv_id = await customer_writes(zl)
    url = f"/v1/conversations/{conv_id}/messages"
    no_phone = await post_json(zl.client, url, {"parts": [ORDER]}, status=422)
    assert no_phone["error"]["code"] == "phone_unknown"
    await set_phone(zl, await contact_of(zl, conv_id))
    unknown = {**ORDER, "name": "<script>alert(1)</script>"}
    refused = await post_json(zl.client, url, {"parts": [unknown]}, status=422)
    assert refused["error"]["code"] == "unknown_template"
    assert refused["error"]["details"] == {"templates": ["giao_hàng", "order_confirmed"]}
    items = (await get_json(zl.client, f"/v1/conversations/{conv_id}/messages"))["items"]
    assert [m["direction"] for m in items] == ["inbound"]
    assert zns.calls() == []


async def test_the_business_writes_first_to_a_phone(start_zns: Started) -> None:
    zl, zns = await start_zns()
    body = {"channel_id": CHANNEL, "to": {"phone": PHONE}, "parts": [ORDER]}
    started = await post_json(
        zl.client, "/v1/conversations", body, status=201, headers={**AUTH, "Idempotency-Key": "k1"}
    )
    conv, msg = started["conversation"], started["message"]
    assert conv["reply_window"]["state"] == "template_only"
    contact = await get_json(zl.client, f"/v1/contacts/{conv['contact_id']}")
    assert contact["phone"] == E164 and contact["identities"] == []
    assert (await settled(zl, msg["id"]))["status"] == "sent"
    ((_, sent),) = zns.calls()
    assert sent["phone"] == "84912345678" and sent["tracking_id"] == msg["id"]
    # the same request again: the same answer, nothing sent twice
    again = await post_json(
        zl.client, "/v1/conversations", body, status=201, headers={**AUTH, "Idempotency-Key": "k1"}
    )
    assert again["conversation"]["id"] == conv["id"] and again["message"]["id"] == msg["id"]
    other = {**body, "parts": [{**ORDER, "data": {"order_code": "DH-9999"}}]}
    reused = await post_json(
        zl.client, "/v1/conversations", other, status=422, headers={**AUTH, "Idempotency-Key": "k1"}
    )
    assert reused["error"]["code"] == "idempotency_key_reused"
    # text to a phone cannot go: no window without a Zalo user
    text = await post_json(
        zl.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "to": {"phone": "+84987654321"}, "text": "Chào bạn"},
        status=422,
    )
    assert text["error"]["code"] == "window_closed"
    assert text["error"]["details"]["allowed"] == ["template"]
    assert len(zns.calls()) == 1


async def test_the_business_writes_first_to_a_zalo_user_inside_the_window(
    start_zns: Started,
) -> None:
    zl, zns = await start_zns()
    old = await customer_writes(zl)
    await post_json(zl.client, f"/v1/conversations/{old}/resolve", {})
    started = await post_json(
        zl.client,
        "/v1/conversations",
        {"channel_id": CHANNEL, "to": {"external_id": USER}, "text": "Shop hỏi thăm ạ"},
        status=201,
    )
    assert started["conversation"]["reply_window"]["state"] == "open"
    assert (await settled(zl, started["message"]["id"]))["status"] == "sent"
    (cs,) = zl.zalo.bodies()
    assert cs["recipient"] == {"user_id": USER}
    assert cs["message"]["text"] == "Shop hỏi thăm ạ"
    assert zns.calls() == []
