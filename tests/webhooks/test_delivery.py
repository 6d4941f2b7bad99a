"""Webhook delivery against real local receivers: signing, order, failures, retries,
disabling, rotation, replay, SSRF guard, and the admin API."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks import Webhook

from gateway.app import Gateway
from kernel.envelope import InboundMessage, Sender
from kernel.ids import ChannelId
from kernel.models import TextPart
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory
from tests.webhooks.receiver import Delivery, Receiver

FAST = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
capacity = { total = 100 }

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1, 0.2]
timeout = 1
concurrency = 8
rotation_overlap = 0.5
"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def say(gw: Gateway, visitor: str, n: int, text: str = "xin chào") -> None:
    await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId("webchat"),
            external_id=f"{visitor}:{n}",
            sender=Sender(external_id=visitor),
            parts=[TextPart(text=text)],
        )
    )


async def subscribe(
    client: TestClient, url: str, events: list[str] | None = None, status: int = 201
) -> dict[str, Any]:  # type: ignore[type-arg]
    body: dict[str, Any] = {"url": url, "description": "helpdesk"}
    if events is not None:
        body["events"] = events
    return await post_json(client, "/v1/webhooks", body, status)  # type: ignore[no-any-return]


async def expected(gw: Gateway, after: int, types: tuple[str, ...] = ()) -> list[str]:
    return [
        e.id
        for e in await gw.store.events.after(after, 100_000)
        if not types or e.type.startswith(types)
    ]


async def test_deliveries_are_signed_filtered_and_complete(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        start = await gw.store.events.last_seq()
        created = await subscribe(client, receiver.url, ["message.*", "conversation.assigned"])
        assert created["secret"].startswith("whsec_")
        listed = await get_json(client, "/v1/webhooks")
        assert "secret" not in listed["items"][0]
        for v in range(5):
            for n in range(3):
                await say(gw, f"v{v}", n, "Tôi cần hỗ trợ đơn hàng")
        await gw.queue.settle()
        wanted = await expected(gw, start, ("message.", "conversation.assigned"))
        assert len(wanted) == 20
        await eventually(lambda: _has(receiver, wanted))
        envelopes = receiver.verified(created["secret"])
        assert {e["type"] for e in envelopes} == {"message.received", "conversation.assigned"}
        for delivery, envelope in zip(receiver.deliveries, envelopes, strict=True):
            assert delivery.id == envelope["id"]
            assert delivery.headers["Content-Type"] == "application/json"
        texts = {
            e["data"]["message"]["parts"][0]["text"]
            for e in envelopes
            if e["type"] == "message.received"
        }
        assert texts == {"Tôi cần hỗ trợ đơn hàng"}
        log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries?limit=100")
        assert {i["outcome"] for i in log["items"]} == {"succeeded"}
        assert all(i["status_code"] == 204 and i["latency_ms"] >= 0 for i in log["items"])


async def _has(receiver: Receiver, wanted: list[str]) -> bool:
    return set(wanted) <= receiver.ids()


async def test_flaky_endpoint_gets_everything_in_order_per_conversation(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    # Each event fails a few times (its own seeded number, fewer than the retry ladder
    # has attempts) before it is accepted, so the test is deterministic yet every
    # conversation sees retries interleaved with later events.
    tries: dict[str, int] = {}

    async def flaky(d: Delivery, _n: int) -> web.StreamResponse:
        tries[d.id] = tries.get(d.id, 0) + 1
        rng = random.Random(d.id)
        failures = rng.randint(0, 4)
        if tries[d.id] <= failures:
            return web.Response(status=rng.choice([500, 502, 503]))
        return web.Response(status=200)

    receiver.behaviour = flaky
    gw = await make_gateway(
        FAST.replace(
            "retry_schedule = [0, 0.05, 0.1, 0.2]",
            "retry_schedule = [0" + ", 0.02" * 11 + "]",
        )
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        start = await gw.store.events.last_seq()
        created = await subscribe(client, receiver.url, ["message.received"])
        for n in range(8):
            for v in range(4):
                await say(gw, f"v{v}", n, f"tin {n}")
        wanted = await expected(gw, start, ("message.received",))

        async def all_accepted() -> bool:
            return set(wanted) <= {d.id for d in receiver.accepted()}

        await eventually(all_accepted, within=15)
        receiver.verified(created["secret"])
        assert any(s is not None and s >= 500 for s in await _statuses(client, created["id"]))
        by_conversation: dict[str, list[int]] = {}
        for d in receiver.accepted():
            env = d.envelope
            by_conversation.setdefault(env["data"]["message"]["conversation_id"], []).append(
                int(env["id"])
            )
        assert set(by_conversation) and sum(map(len, by_conversation.values())) >= len(wanted)
        for seqs in by_conversation.values():
            # an event is accepted only after every earlier event of its conversation was
            assert _first_seen_order_is_sorted(seqs)


def _first_seen_order_is_sorted(seqs: list[int]) -> bool:
    seen: list[int] = []
    for s in seqs:
        if s not in seen:
            seen.append(s)
    return seen == sorted(seen)


async def _statuses(client: TestClient, endpoint: str) -> list[int | None]:  # type: ignore[type-arg]
    log = await get_json(client, f"/v1/webhooks/{endpoint}/deliveries?limit=200")
    return [i["status_code"] for i in log["items"]]


async def test_retry_after_is_honoured(make_gateway: GatewayFactory, receiver: Receiver) -> None:
    async def throttled(_d: Delivery, n: int) -> web.StreamResponse:
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(status=200)

    receiver.behaviour = throttled
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        await subscribe(client, receiver.url, ["message.received"])
        await say(gw, "v1", 0)
        await eventually(lambda: _count(receiver, 2), within=5)
        gap = receiver.deliveries[1].at - receiver.deliveries[0].at
        assert gap >= 0.95  # the schedule alone would have retried after 0.05 s
        assert receiver.deliveries[0].id == receiver.deliveries[1].id


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.deliveries) >= n


async def test_410_disables_the_endpoint_with_an_event(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    async def gone(_d: Delivery, _n: int) -> web.StreamResponse:
        return web.Response(status=410)

    receiver.behaviour = gone
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        await say(gw, "v1", 0)

        async def disabled() -> bool:
            info = await get_json(client, f"/v1/webhooks/{created['id']}")
            return info["enabled"] is False

        await eventually(disabled)
        events = [e for e in await gw.store.events.after(0, 10_000) if e.type == "webhook.disabled"]
        assert events[-1].data == {
            "webhook_id": created["id"],
            "reason": "the endpoint answered 410 Gone",
        }
        count = len(receiver.deliveries)
        await say(gw, "v1", 1)
        await asyncio.sleep(0.3)
        assert len(receiver.deliveries) == count  # nothing more to a disabled endpoint
        # re-enabled: the held delivery and the new one arrive
        receiver.behaviour = _ok
        resp = await client.patch(
            f"/v1/webhooks/{created['id']}", json={"enabled": True}, headers=AUTH
        )
        assert (await resp.json())["enabled"] is True
        wanted = [
            e.id for e in await gw.store.events.after(0, 10_000) if e.type == "message.received"
        ]
        await eventually(lambda: _has(receiver, wanted))


async def _ok(_d: Delivery, _n: int) -> web.StreamResponse:
    return web.Response(status=200)


async def test_redirects_are_failures_then_dead_then_replayable(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    async def moved(_d: Delivery, _n: int) -> web.StreamResponse:
        return web.Response(
            status=302, headers={"Location": receiver.url.replace("/hook", "/elsewhere")}
        )

    receiver.behaviour = moved
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        await say(gw, "v1", 0)

        async def dead() -> bool:
            log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries?outcome=dead")
            return bool(log["items"])

        await eventually(dead, within=5)
        assert len(receiver.deliveries) == 4  # every attempt of the schedule, then dead
        assert receiver.elsewhere == []  # redirects are never followed
        log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries")
        assert [i["outcome"] for i in log["items"]] == ["dead", "retry", "retry", "retry"]
        assert log["items"][0]["status_code"] == 302
        receiver.behaviour = _ok
        replayed = await post_json(client, f"/v1/webhooks/{created['id']}/replay", {"dead": True})
        assert replayed["replayed"] == 1
        await eventually(lambda: _count(receiver, 5))
        assert receiver.deliveries[-1].id == receiver.deliveries[0].id


async def test_timeouts_are_retried(make_gateway: GatewayFactory, receiver: Receiver) -> None:
    async def slow_then_ok(_d: Delivery, n: int) -> web.StreamResponse:
        if n == 1:
            await asyncio.sleep(1.5)  # past the 1 s timeout
        return web.Response(status=200)

    receiver.behaviour = slow_then_ok
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        await say(gw, "v1", 0)
        await eventually(lambda: _count(receiver, 2), within=5)
        log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries")
        outcomes = [(i["outcome"], i["error"]) for i in log["items"]]
        assert ("retry", "timeout") in outcomes


async def test_a_dead_endpoint_never_delays_another(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    hung = await Receiver().start()
    release = asyncio.Event()

    async def hang(_d: Delivery, _n: int) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    hung.behaviour = hang
    try:
        gw = await make_gateway(FAST.replace("timeout = 1", "timeout = 20"))
        async with TestClient(TestServer(gw.web_app())) as client:
            await subscribe(client, hung.url, ["message.received"])
            await subscribe(client, receiver.url, ["message.received"])
            start = await gw.store.events.last_seq()
            for n in range(20):
                await say(gw, f"v{n}", 0)
            wanted = await expected(gw, start, ("message.received",))
            await eventually(lambda: _has(receiver, wanted), within=3)
            assert len(hung.deliveries) == 8  # its concurrency limit, all still hanging
    finally:
        release.set()
        await hung.stop()


async def test_secret_rotation_signs_with_both_during_the_overlap(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        old = created["secret"]
        rotated = await post_json(
            client, f"/v1/webhooks/{created['id']}/rotate", {"overlap": 0.6}, 200
        )
        new = rotated["secret"]
        assert new != old
        await say(gw, "v1", 0)
        await eventually(lambda: _count(receiver, 1))
        during = receiver.deliveries[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(during.body, during.headers)
        Webhook(new).verify(during.body, during.headers)
        await asyncio.sleep(0.7)
        await say(gw, "v1", 1)
        await eventually(lambda: _count(receiver, 2))
        after = receiver.deliveries[-1]
        Webhook(new).verify(after.body, after.headers)
        with pytest.raises(Exception, match="signature"):
            Webhook(old).verify(after.body, after.headers)


async def test_replay_since_an_event_id_resends_with_the_same_ids(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        for n in range(3):
            await say(gw, "v1", n)
        await eventually(lambda: _count(receiver, 3))
        first_ids = [d.id for d in receiver.deliveries]
        await post_json(
            client, f"/v1/webhooks/{created['id']}/replay", {"since_event_id": first_ids[0]}
        )
        await eventually(lambda: _count(receiver, 5))
        assert [d.id for d in receiver.deliveries[3:]] == first_ids[1:]
        bad = await post_json(client, f"/v1/webhooks/{created['id']}/replay", {}, 400)
        assert bad["error"]["code"] == "validation_error"


async def test_endpoints_failing_too_long_are_disabled(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    async def broken(_d: Delivery, _n: int) -> web.StreamResponse:
        return web.Response(status=500, text="internal error with details")

    receiver.behaviour = broken
    gw = await make_gateway(
        FAST.replace(
            "retry_schedule = [0, 0.05, 0.1, 0.2]",
            "retry_schedule = [0" + ", 0.1" * 9 + "]\ndisable_after = 0.3",
        )
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        created = await subscribe(client, receiver.url, ["message.received"])
        await say(gw, "v1", 0)

        async def disabled() -> bool:
            return (await get_json(client, f"/v1/webhooks/{created['id']}"))["enabled"] is False

        await eventually(disabled, within=5)
        info = await get_json(client, f"/v1/webhooks/{created['id']}")
        assert info["disabled_reason"] == "it kept failing for too long"
        log = await get_json(client, f"/v1/webhooks/{created['id']}/deliveries")
        assert log["items"][-1]["response_excerpt"] == "internal error with details"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/x",
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
    ],
)
async def test_ssrf_guard_refuses_internal_targets(make_gateway: GatewayFactory, url: str) -> None:
    gw = await make_gateway(FAST.replace("allow_loopback = true", "allow_loopback = false"))
    async with TestClient(TestServer(gw.web_app())) as client:
        resp = await client.post("/v1/webhooks", json={"url": url}, headers=AUTH)
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "unsafe_url"


async def test_link_local_is_refused_even_when_private_networks_are_allowed(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FAST + "allow_private_networks = true\n")
    async with TestClient(TestServer(gw.web_app())) as client:
        ok = await client.post("/v1/webhooks", json={"url": "http://10.0.0.8/hook"}, headers=AUTH)
        assert ok.status == 201
        metadata = await client.post(
            "/v1/webhooks", json={"url": "http://169.254.169.254/x"}, headers=AUTH
        )
        assert metadata.status == 422


async def test_configured_endpoints(make_gateway: GatewayFactory, receiver: Receiver) -> None:
    secret = new_secret()
    config = (
        FAST
        + f'\n[[webhooks]]\nid = "helpdesk"\nurl = "{receiver.url}"\n'
        + f'events = ["message.received"]\nsecret = "{secret}"\n'
    )
    gw = await make_gateway(config)
    async with TestClient(TestServer(gw.web_app())) as client:
        info = await get_json(client, "/v1/webhooks/helpdesk")
        assert (info["source"], info["events"]) == ("config", ["message.received"])
        await say(gw, "v1", 0)
        await eventually(lambda: _count(receiver, 1))
        receiver.verified(secret)
        resp = await client.patch(
            "/v1/webhooks/helpdesk", json={"url": "https://x.example/h"}, headers=AUTH
        )
        assert resp.status == 409
        assert (await client.delete("/v1/webhooks/helpdesk", headers=AUTH)).status == 409
        assert (
            await client.patch("/v1/webhooks/helpdesk", json={"enabled": False}, headers=AUTH)
        ).status == 200


async def test_admin_api_errors(make_gateway: GatewayFactory, receiver: Receiver) -> None:
    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        assert (await client.get("/v1/webhooks/nope", headers=AUTH)).status == 404
        bad_secret = await client.post(
            "/v1/webhooks", json={"url": receiver.url, "secret": "plain"}, headers=AUTH
        )
        assert bad_secret.status == 422
        bad_events = await client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["Message Received"]}, headers=AUTH
        )
        assert bad_events.status == 400
        created = await subscribe(client, receiver.url)
        assert (await client.delete(f"/v1/webhooks/{created['id']}", headers=AUTH)).status == 204
        assert (await client.get(f"/v1/webhooks/{created['id']}", headers=AUTH)).status == 404
        integ = await post_json(
            client, "/v1/tokens", {"name": "hd", "scopes": ["integration"]}, 201
        )
        forbidden = await client.get(
            "/v1/webhooks", headers={"Authorization": f"Bearer {integ['token']}"}
        )
        assert forbidden.status == 403


async def test_an_endpoint_taken_out_of_the_config_file_is_removed(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    endpoint = (
        f'\n[[webhooks]]\nid = "helpdesk"\nurl = "{receiver.url}"\n'
        f'events = ["message.received"]\nsecret = "{new_secret()}"\n'
    )
    gw = await make_gateway(FAST + endpoint)
    await gw.webhooks.deliveries.stop()  # leave a delivery waiting for it
    await say(gw, "v1", 0)
    await gw.close_connections()
    await gw.stop()

    gw = await make_gateway(FAST)
    async with TestClient(TestServer(gw.web_app())) as client:
        assert (await client.get("/v1/webhooks/helpdesk", headers=AUTH)).status == 404
        assert (await get_json(client, "/v1/webhooks"))["items"] == []
        await say(gw, "v1", 1)
        await gw.queue.settle()
        await asyncio.sleep(0.3)
        assert receiver.deliveries == []
