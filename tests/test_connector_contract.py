"""The connector contract through the real gateway: the send path's error classes,
pollers' reconnects and webhook dispatch. The connectors here are scripted providers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import Capability, HealthState, PollingConnector, WebhookConnector
from connectors.errors import AuthError, RateLimited, SendError, TransientError, WindowClosed
from gateway.app import Gateway
from kernel.envelope import InboundMessage, OutboundMessage, Sender, SendReceipt
from kernel.ids import ChannelId
from kernel.models import ChannelType, MediaPart, MessageStatus, TextPart
from tests.api.helpers import eventually
from tests.conftest import AUTH


class Scripted(WebhookConnector):
    """Answers sends from a script of outcomes and records what it was asked to send."""

    type: ClassVar[ChannelType] = ChannelType.ZALO
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.TEXT})

    def __init__(self, channel_id: str, script: list[Exception | str]) -> None:
        super().__init__(ChannelId(channel_id))
        self.script = script
        self.sent: list[OutboundMessage] = []

    async def start(self, sink):  # type: ignore[no-untyped-def]
        await super().start(sink)
        self.set_health(HealthState.CONNECTED)

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        self.sent.append(outbound)
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        return SendReceipt(external_id=f"ext-{len(self.sent)}")

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        result = await self.sink.ingest(
            InboundMessage(
                channel_id=self.channel_id,
                external_id=body["id"],
                sender=Sender(external_id=body["from"]),
                parts=[TextPart(text=body["text"])],
            )
        )
        return web.json_response({"stored": result.message.id})


async def attach(gw: Gateway, connector: Scripted | PollingConnector) -> None:
    gw.connectors[connector.channel_id] = connector
    await connector.start(gw.pipeline)


async def customer_conversation(gw: Gateway, channel: str) -> str:
    result = await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId(channel),
            external_id="in-1",
            sender=Sender(external_id="zalo-user"),
            parts=[TextPart(text="alo")],
        )
    )
    return result.conversation_id


async def reply(client: TestClient, conv_id: str, body: dict[str, object]) -> str:  # type: ignore[type-arg]
    resp = await client.post(f"/v1/conversations/{conv_id}/messages", json=body, headers=AUTH)
    assert resp.status == 202
    return str((await resp.json())["id"])


def status_of(gw: Gateway, message_id: str) -> Callable[[], object]:
    async def check() -> object:
        msg = await gw.store.messages.get(message_id)  # type: ignore[arg-type]
        return msg if msg is not None and msg.status != MessageStatus.PENDING else None

    return check


async def test_sent_with_degraded_parts_and_the_external_id(gw: Gateway) -> None:
    scripted = Scripted("zalo", [])
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    async with TestClient(TestServer(gw.web_app())) as client:
        msg_id = await reply(
            client,
            conv_id,
            {
                "parts": [
                    {"type": "text", "text": "Ảnh đây"},
                    {"type": "image", "url": "https://x/a.png"},
                ]
            },
        )
        msg = await eventually(status_of(gw, msg_id))
    assert msg.status == MessageStatus.SENT
    assert msg.external_id == "ext-1"
    sent = scripted.sent[0]
    assert sent.recipient.external_id == "zalo-user"
    assert sent.message.parts == [TextPart(text="Ảnh đây\n[Image] https://x/a.png")]
    stored = await gw.store.messages.get(msg_id)  # type: ignore[arg-type]
    assert stored is not None
    assert isinstance(stored.parts[1], MediaPart)  # the store keeps what the agent wrote


async def test_permanent_errors_fail_at_once_with_their_reason(gw: Gateway) -> None:
    scripted = Scripted("zalo", [WindowClosed("outside the 24h window")])
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    async with TestClient(TestServer(gw.web_app())) as client:
        msg_id = await reply(client, conv_id, {"text": "muộn quá"})
        msg = await eventually(status_of(gw, msg_id))
    assert msg.status == MessageStatus.FAILED
    assert (msg.error.code, msg.error.retryable) == ("window_closed", False)
    assert len(scripted.sent) == 1
    events = await gw.store.events.after(0, 1000, types=["message.failed"])
    assert events[-1].data["message"]["error"]["reason"] == "outside the 24h window"


async def test_transient_errors_retry_and_keep_order(gw: Gateway) -> None:
    scripted = Scripted(
        "zalo", [TransientError("502 from provider"), RateLimited("slow down", retry_after=0.05)]
    )
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    import gateway.outbound as outbound

    original = outbound.BACKOFF
    outbound.BACKOFF = (0.05,)
    try:
        async with TestClient(TestServer(gw.web_app())) as client:
            first = await reply(client, conv_id, {"text": "một"})
            second = await reply(client, conv_id, {"text": "hai"})
            await eventually(status_of(gw, second), within=10)
            msg1 = await gw.store.messages.get(first)  # type: ignore[arg-type]
    finally:
        outbound.BACKOFF = original
    assert msg1 is not None and msg1.status == MessageStatus.SENT
    texts = [o.message.parts[0].text for o in scripted.sent]  # type: ignore[union-attr]
    # "hai" never overtakes "một", however often "một" had to be retried
    assert texts == ["một", "một", "một", "hai"]


async def test_broken_credentials_hold_messages_and_mark_the_channel(gw: Gateway) -> None:
    scripted = Scripted("zalo", [AuthError("token expired")])
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    async with TestClient(TestServer(gw.web_app())) as client:
        msg_id = await reply(client, conv_id, {"text": "chờ"})

        async def broken() -> bool:
            return scripted.health.state == HealthState.BAD_CREDENTIALS

        await eventually(broken)
        ready = await (await client.get("/readyz")).json()
        assert ready["channels"]["zalo"]["state"] == "BAD_CREDENTIALS"

        # The state changes as the send fails; the deferral is written on the message after.
        async def deferred() -> bool:
            found = await gw.store.messages.get(msg_id)  # type: ignore[arg-type]
            return found is not None and found.error is not None

        await eventually(deferred)
        msg = await gw.store.messages.get(msg_id)  # type: ignore[arg-type]
        assert msg is not None and msg.status == MessageStatus.PENDING
        assert msg.error is not None and msg.error.code == "auth_failed"
    events = await gw.store.events.after(0, 1000, types=["channel.state_changed"])
    assert events[-1].data["state"] == "BAD_CREDENTIALS"


async def test_unexpected_connector_crash_is_retried_not_lost(gw: Gateway) -> None:
    scripted = Scripted("zalo", [RuntimeError("bug in a connector")])
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    async with TestClient(TestServer(gw.web_app())) as client:
        msg_id = await reply(client, conv_id, {"text": "vẫn gửi"})

        async def deferred() -> bool:
            msg = await gw.store.messages.get(msg_id)  # type: ignore[arg-type]
            return msg is not None and msg.error is not None

        await eventually(deferred)
    msg = await gw.store.messages.get(msg_id)  # type: ignore[arg-type]
    assert msg is not None and msg.status == MessageStatus.PENDING
    assert msg.error is not None and msg.error.retryable
    assert "bug in a connector" not in msg.error.reason  # internals stay in the log


async def test_plain_send_error_fails(gw: Gateway) -> None:
    scripted = Scripted("zalo", [SendError("rejected", code="invalid_payload")])
    await attach(gw, scripted)
    conv_id = await customer_conversation(gw, "zalo")
    async with TestClient(TestServer(gw.web_app())) as client:
        msg = await eventually(status_of(gw, await reply(client, conv_id, {"text": "x"})))
    assert msg.error.code == "invalid_payload"


async def test_webhook_route_reaches_the_channel_and_404s_others(gw: Gateway) -> None:
    await attach(gw, Scripted("zalo", []))
    async with TestClient(TestServer(gw.web_app())) as client:
        ok = await client.post(
            "/webhooks/zalo", json={"id": "w1", "from": "u1", "text": "qua webhook"}
        )
        assert ok.status == 200
        stored = (await ok.json())["stored"]
        assert (await gw.store.messages.get(stored)) is not None
        missing = await client.post("/webhooks/nope", json={})
        assert missing.status == 404
        socket_channel = await client.post("/webhooks/webchat", json={})
        assert socket_channel.status == 404


class FlakyPoller(PollingConnector):
    type: ClassVar[ChannelType] = ChannelType.EMAIL
    backoff_initial = 0.01
    backoff_max = 0.02

    def __init__(self) -> None:
        super().__init__(ChannelId("mailbox"))
        self.attempts = 0
        self.connected = asyncio.Event()

    async def run_once(self) -> None:
        self.attempts += 1
        if self.attempts < 3:
            raise ConnectionError("server went away")
        self.set_health(HealthState.CONNECTED)
        self.connected.set()
        await asyncio.Event().wait()

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        raise TransientError("not used")


async def test_poller_reconnects_with_backoff_and_reports_health(gw: Gateway) -> None:
    poller = FlakyPoller()
    await attach(gw, poller)
    await asyncio.wait_for(poller.connected.wait(), 5)
    assert poller.attempts == 3
    await gw.pipeline.drain()
    states = [
        e.data["state"]
        for e in await gw.store.events.after(0, 1000, types=["channel.state_changed"])
        if e.data["channel_id"] == "mailbox"
    ]
    assert states == [
        "TRANSIENT_DISCONNECT",
        "CONNECTING",
        "TRANSIENT_DISCONNECT",
        "CONNECTING",
        "CONNECTED",
    ]
    await poller.aclose()
    assert poller.health.state == HealthState.STOPPED


async def test_the_zalo_connector_is_built_from_config_and_takes_webhooks(
    make_gateway: Callable[..., Any],
) -> None:
    from connectors.zalo.connector import ZaloConnector
    from tests.zalo.helpers import CHANNEL, config

    gw = await make_gateway(config())
    connector = gw.connectors[ChannelId(CHANNEL)]
    assert isinstance(connector, ZaloConnector) and isinstance(connector, WebhookConnector)
    assert connector.type == ChannelType.ZALO
    assert connector.health.state == HealthState.CONNECTED
    # parts the channel cannot show are degraded before send() sees them
    assert Capability.TEXT in connector.capabilities
    assert Capability.AUDIO not in connector.capabilities
    async with TestClient(TestServer(gw.web_app())) as client:
        unsigned = await client.post(f"/webhooks/{CHANNEL}", json={"event_name": "follow"})
        assert unsigned.status == 401
        ready = await (await client.get("/readyz")).json()
        assert ready["channels"][CHANNEL]["state"] == "CONNECTED"
