"""GET /metrics as Prometheus reads it (prometheus_client's own text parser), moved by real
traffic: webchat messages, a queued conversation, webhook deliveries to a local receiver,
channels in trouble; the token that guards it and the details of /readyz; and that
nothing secret or a customer's shows in it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import re
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from config import ConfigError, load_settings
from gateway.app import Gateway
from gateway.metrics import METHODS
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.conftest import ADMIN, AUTH, GatewayFactory
from tests.webhooks.receiver import Delivery, Receiver

Client = TestClient  # type: ignore[type-arg]

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
IDENTITY_SECRET = "webchat-identity-secret-not-to-be-shown"

# The names the hand-written version served, with their types: measured from outside.
EARLIER = {
    "omnigw_inbound_messages_total": "counter",
    "omnigw_inbound_duplicates_total": "counter",
    "omnigw_outbound_sent_total": "counter",
    "omnigw_outbound_failed_total": "counter",
    "omnigw_outbound_deferred_total": "counter",
    "omnigw_http_requests_total": "counter",
    "omnigw_webchat_sockets": "gauge",
    "omnigw_sse_clients": "gauge",
    "omnigw_event_log_last_id": "gauge",
}


@dataclass
class Scrape:
    """One exposition, parsed by prometheus_client."""

    text: str
    types: dict[str, str]  # sample names a family serves -> the family's type
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        types: dict[str, str] = {}
        samples = {}
        for family in text_string_to_metric_families(text):
            # a counter family is named without `_total`; its samples carry it
            name = family.name + ("_total" if family.type == "counter" else "")
            types[name] = family.type
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return cls(text, types, samples)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def get(self, name: str, **labels: str) -> float:
        return self.value(name, **labels) or 0.0

    def labelled(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


async def scrape(client: Client, headers: dict[str, str] | None = None) -> Scrape:
    resp = await client.get("/metrics", headers=headers or {})
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape.parse(text)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def serve(make_gateway: GatewayFactory) -> AsyncIterator[Any]:
    """Start a gateway from TOML and serve it; returns (gateway, client)."""
    clients: list[Client] = []

    async def start(toml: str | None = None, **overrides: Any) -> tuple[Gateway, Client]:
        gw = await make_gateway(toml, **overrides)
        client = TestClient(TestServer(gw.web_app()))
        await client.start_server()
        clients.append(client)
        return gw, client

    yield start
    for client in clients:
        await client.close()


# --- names -------------------------------------------------------------------------------


def readme_names() -> set[str]:
    """The metric names the README's Metrics section lists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(omnigw_[a-z_]+)", section))


async def test_every_earlier_name_is_kept_and_every_name_is_in_the_readme(
    client: Client,
) -> None:
    ws, _ = await open_visitor(client)
    assert (await say(ws, "Xin chào", "c1"))["type"] == "ack"
    found = await scrape(client)
    for name, kind in EARLIER.items():
        assert found.types.get(name) == kind, name
    served = {n for n in found.types if n.startswith("omnigw_")}
    # a histogram's samples are its name with _bucket, _sum and _count
    assert served == readme_names()
    # the same families as OpenMetrics, for a scraper that asks for it
    resp = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert 'omnigw_inbound_messages_total{channel="webchat"} 1.0' in await resp.text()
    await ws.close()


# --- traffic -----------------------------------------------------------------------------


async def test_webchat_traffic_and_requests_move_the_values(client: Client, gw: Gateway) -> None:
    before = await scrape(client)
    assert before.value("omnigw_inbound_messages_total", channel="webchat") is None
    assert before.get("omnigw_webchat_sockets") == 0
    ws, _ = await open_visitor(client)
    assert (await say(ws, "Tôi cần hỗ trợ đơn hàng", "c1"))["type"] == "ack"
    assert (await say(ws, "Tôi cần hỗ trợ đơn hàng", "c1"))["type"] == "ack"  # the same again
    assert (await say(ws, "Còn hàng không?", "c2"))["type"] == "ack"
    await get_json(client, "/v1/conversations")
    await get_json(client, "/v1/conversations/conv_nope", status=404)
    found = await scrape(client)
    assert found.get("omnigw_inbound_messages_total", channel="webchat") == 2
    assert found.get("omnigw_inbound_duplicates_total", channel="webchat") == 1
    assert found.get("omnigw_ingest_ack_seconds_count", channel="webchat") == 3
    assert 0 < found.get("omnigw_ingest_ack_seconds_sum", channel="webchat") < 30
    assert found.get("omnigw_ingest_ack_seconds_bucket", channel="webchat", le="+Inf") == 3
    assert found.get("omnigw_webchat_sockets") == 1
    assert found.get("omnigw_event_log_last_id") == gw.bus.last_seq > 0
    listed = {"method": "GET", "route": "/v1/conversations"}
    assert found.get("omnigw_http_request_duration_seconds_count", **listed) == 1
    one = {"method": "GET", "route": "/v1/conversations/{id}"}
    assert found.get("omnigw_http_request_duration_seconds_count", **one) == 1
    assert found.get("omnigw_http_requests_total", code="4xx") >= 1
    await ws.close()

    async def closed() -> bool:
        return (await scrape(client)).get("omnigw_webchat_sockets") == 0

    await eventually(closed)
    # an event stream counts while it is open
    async with client.get("/v1/events", headers=AUTH) as stream:
        assert stream.status == 200
        assert (await scrape(client)).get("omnigw_sse_clients") == 1

    async def ended() -> Scrape | None:
        found = await scrape(client)
        return found if found.get("omnigw_sse_clients") == 0 else None

    found = await eventually(ended)
    # their requests are counted, not timed: they last as long as the client stays
    timed = found.labelled("omnigw_http_request_duration_seconds_count")
    assert {"method": "GET", "route": "/webchat/{channel_id}/ws"} not in timed
    assert {"method": "GET", "route": "/v1/events"} not in timed
    assert found.get("omnigw_http_requests_total", code="1xx") >= 1  # the socket's upgrade


async def test_labels_stay_bounded_whatever_clients_send(client: Client) -> None:
    for i in range(5):
        await client.get(f"/no/such/route-{i}-Nguyễn")
        await client.request("PROPFIND", f"/v1/conversations/conv-{i}")
        await client.get(f"/v1/conversations/conv-{i}", headers=AUTH)
    rng = random.Random(17)
    alphabet = string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@/"
    for _ in range(200):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).lstrip("/")
        method = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 8)))
        with contextlib.suppress(ValueError):  # a path yarl itself refuses
            await client.request(rng.choice([method, "GET", "POST", "DELETE"]), path)
    found = await scrape(client)
    labels = found.labelled("omnigw_http_request_duration_seconds_count")
    templates = {r.canonical for r in client.app.router.resources()} | {"unmatched"}
    assert {label["route"] for label in labels} <= templates
    assert {label["method"] for label in labels} <= {*METHODS, "other"}
    assert {"method": "GET", "route": "unmatched"} in labels
    assert {"method": "other", "route": "unmatched"} in labels
    assert (
        found.get(
            "omnigw_http_request_duration_seconds_count",
            method="GET",
            route="/v1/conversations/{id}",
        )
        == 5
    )
    assert "route-" not in found.text
    assert "conv-" not in found.text
    assert "PROPFIND" not in found.text


QUEUED = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "offline"
capacity = { total = 5 }
"""


async def test_the_queue_length_and_its_oldest_wait(serve: Any) -> None:
    _gw, client = await serve(QUEUED)
    empty = await scrape(client)
    assert empty.get("omnigw_queued_conversations", channel="webchat") == 0
    assert empty.value("omnigw_queue_oldest_wait_seconds", channel="webchat") == 0
    ws, _ = await open_visitor(client)
    assert (await say(ws, "Có ai không ạ?", "c1"))["type"] == "ack"
    other, _ = await open_visitor(client)
    assert (await say(other, "Cho mình hỏi", "c1"))["type"] == "ack"

    async def queued() -> Scrape | None:
        found = await scrape(client)
        return found if found.get("omnigw_queued_conversations", channel="webchat") else None

    first = await eventually(queued)
    assert first.get("omnigw_queued_conversations", channel="webchat") == 2
    await asyncio.sleep(0.2)
    later = await scrape(client)
    waited = later.get("omnigw_queue_oldest_wait_seconds", channel="webchat")
    assert waited >= first.get("omnigw_queue_oldest_wait_seconds", channel="webchat") + 0.15
    # an agent comes online: the queue is served
    resp = await client.put("/v1/agents/lan/presence", json={"status": "online"}, headers=AUTH)
    assert resp.status == 200

    async def served() -> bool:
        found = await scrape(client)
        return found.get("omnigw_queued_conversations", channel="webchat") == 0

    await eventually(served)
    assert (await scrape(client)).get("omnigw_queue_oldest_wait_seconds", channel="webchat") == 0
    await ws.close()
    await other.close()


HOOKED = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
capacity = { total = 100 }

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 60]
timeout = 2
"""


async def test_webhook_deliveries_backlog_and_latency_per_endpoint(
    serve: Any, receiver: Receiver
) -> None:
    _gw, client = await serve(HOOKED)
    hook = await post_json(
        client, "/v1/webhooks", {"url": receiver.url, "events": ["message.received"]}, 201
    )
    endpoint = hook["id"]
    ws, _ = await open_visitor(client)
    assert (await say(ws, "Xin chào", "c1"))["type"] == "ack"

    async def delivered() -> Scrape | None:
        found = await scrape(client)
        ok = found.get("omnigw_webhook_attempts_total", endpoint=endpoint, result="succeeded")
        return (
            found
            if ok == 1 and found.get("omnigw_webhook_backlog_events", endpoint=endpoint) == 0
            else None
        )

    found = await eventually(delivered)
    assert len(receiver.accepted()) == 1
    assert found.get("omnigw_webhook_delivery_seconds_count", endpoint=endpoint) == 1
    assert 0 < found.get("omnigw_webhook_delivery_seconds_sum", endpoint=endpoint) < 30
    assert found.get("omnigw_webhook_request_duration_seconds_count", endpoint=endpoint) == 1
    assert found.get("omnigw_webhook_retrying_deliveries", endpoint=endpoint) == 0
    assert found.get("omnigw_webhook_oldest_wait_seconds", endpoint=endpoint) == 0
    # every result is shown from the start, at 0, so that alerts on a rate have a series
    assert found.value("omnigw_webhook_attempts_total", endpoint=endpoint, result="dead") == 0

    # the receiver fails: a retry is due in a minute, and the wait shows
    async def unavailable(_d: Delivery, _n: int) -> web.StreamResponse:
        return web.Response(status=503)

    receiver.behaviour = unavailable
    assert (await say(ws, "Còn ở đó không?", "c2"))["type"] == "ack"

    async def retrying() -> Scrape | None:
        found = await scrape(client)
        waiting = found.get("omnigw_webhook_retrying_deliveries", endpoint=endpoint)
        return found if waiting == 1 else None

    first = await eventually(retrying)
    assert first.get("omnigw_webhook_attempts_total", endpoint=endpoint, result="retry") == 1
    assert first.get("omnigw_webhook_delivery_seconds_count", endpoint=endpoint) == 1
    await asyncio.sleep(0.2)
    later = await scrape(client)
    waited = later.get("omnigw_webhook_oldest_wait_seconds", endpoint=endpoint)
    assert waited >= first.get("omnigw_webhook_oldest_wait_seconds", endpoint=endpoint) + 0.15
    assert receiver.url not in later.text
    assert str(receiver.url.split(":")[2].split("/")[0]) not in later.text  # nor its port
    # deleted: its series go with it
    resp = await client.delete(f"/v1/webhooks/{endpoint}", headers=AUTH)
    assert resp.status == 204
    gone = await scrape(client)
    assert f'endpoint="{endpoint}"' not in gone.text
    await ws.close()


async def test_each_channel_shows_one_state_the_one_readyz_gives(
    serve: Any, unused_tcp_port: int
) -> None:
    # A mailbox whose IMAP server does not answer: the channel is in trouble.
    toml = f"""
[[channels]]
id = "webchat"
type = "webchat"

[[channels]]
id = "mail"
type = "email"
address = "support@shop.example"
imap.host = "127.0.0.1"
imap.port = {unused_tcp_port}
imap.security = "none"
imap.username = "support"
imap.password = "imap-password-not-to-be-shown"
smtp = {{ host = "127.0.0.1", port = {unused_tcp_port}, security = "none" }}
"""
    _gw, client = await serve(toml)

    async def in_trouble() -> Scrape | None:
        found = await scrape(client)
        on = {
            (labels["channel"], labels["state"])
            for labels in found.labelled("omnigw_channel_state")
            if found.get("omnigw_channel_state", **labels) == 1
        }
        return (
            found
            if ("webchat", "CONNECTED") in on
            and not any(c == "mail" and s in ("CONNECTED", "CONNECTING") for c, s in on)
            else None
        )

    found = await eventually(in_trouble, within=10)
    ready = await get_json(client, "/readyz", headers={})
    for channel in ("webchat", "mail"):
        states = {
            labels["state"]: found.get("omnigw_channel_state", **labels)
            for labels in found.labelled("omnigw_channel_state")
            if labels["channel"] == channel
        }
        assert len(states) == 7  # every state of the vocabulary, so a change leaves no gap
        assert [s for s, v in states.items() if v == 1] == [ready["channels"][channel]["state"]]
    assert {labels["type"] for labels in found.labelled("omnigw_channel_state")} == {
        "webchat",
        "email",
    }
    assert "imap-password-not-to-be-shown" not in found.text


async def test_each_gateway_counts_its_own(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    one = await make_gateway(**{"server.data_dir": str(tmp_path / "one")})
    two = await make_gateway(**{"server.data_dir": str(tmp_path / "two")})
    async with (
        TestClient(TestServer(one.web_app())) as c1,
        TestClient(TestServer(two.web_app())) as c2,
    ):
        ws, _ = await open_visitor(c1)
        assert (await say(ws, "Xin chào", "c1"))["type"] == "ack"
        assert (await scrape(c1)).get("omnigw_inbound_messages_total", channel="webchat") == 1
        assert (await scrape(c2)).value("omnigw_inbound_messages_total", channel="webchat") is None
        await ws.close()


# --- the token ---------------------------------------------------------------------------

GUARDED = f"""
[server]
metrics_token = "{METRICS_TOKEN}"

[[channels]]
id = "webchat"
type = "webchat"
identity_secret = "{IDENTITY_SECRET}"

[[agents]]
id = "lan"
presence = "online"
capacity = {{ total = 5 }}

[webhook_delivery]
allow_loopback = true

[[webhooks]]
id = "helpdesk"
url = "{{url}}"
secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1zaG93LXVw"
"""


async def test_the_token_guards_metrics_and_the_details_of_readyz(
    serve: Any, receiver: Receiver
) -> None:
    gw, client = await serve(GUARDED.replace("{url}", receiver.url))
    resp = await client.get("/metrics")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "invalid_token"
    agent = await post_json(
        client, "/v1/tokens", {"name": "lan", "scopes": ["agent"], "agent_id": "lan"}, 201
    )
    as_agent = {"Authorization": f"Bearer {agent['token']}"}
    denied = await client.get("/metrics", headers=as_agent)
    assert denied.status == 403
    assert (await denied.json())["error"]["code"] == "insufficient_scope"
    assert (await scrape(client, METRICS_AUTH)).types["omnigw_inbound_messages_total"]
    assert (await scrape(client, AUTH)).types["omnigw_webchat_sockets"] == "gauge"
    # the metrics token opens nothing else
    other = await client.get("/v1/conversations", headers=METRICS_AUTH)
    assert other.status == 403
    # /readyz: the status to anyone, the details with the token
    bare = await client.get("/readyz")
    assert bare.status == 200
    assert await bare.json() == {"status": "ready"}
    full = await get_json(client, "/readyz", headers=METRICS_AUTH)
    assert full["channels"]["webchat"]["state"] == "CONNECTED"
    assert full["store"] == "ok"
    assert (await get_json(client, "/readyz", headers=AUTH))["store"] == "ok"
    assert (await client.get("/readyz", headers=as_agent)).status == 403
    assert (await client.get("/readyz", headers={"Authorization": "Bearer nope"})).status == 401
    await gw.store.close()
    gone = await client.get("/readyz")
    assert gone.status == 503
    assert await gone.json() == {"status": "not_ready"}


async def test_no_secret_and_no_customer_value_shows_in_metrics(
    serve: Any, receiver: Receiver
) -> None:
    _gw, client = await serve(GUARDED.replace("{url}", receiver.url))
    ws, session = await open_visitor(client)
    user_id = "khach-48213"
    await ws.send_json(
        {
            "type": "identify",
            "name": "Trần Thị Ngọc",
            "email": "ngoc.tran@khach.example",
            "user_id": user_id,
            "hmac": hmac.new(IDENTITY_SECRET.encode(), user_id.encode(), "sha256").hexdigest(),
        }
    )
    assert (await say(ws, "Đơn DH48213 giao chưa ạ?", "c1"))["type"] == "ack"

    async def delivered() -> bool:
        return bool(receiver.accepted())

    await eventually(delivered)
    found = await scrape(client, METRICS_AUTH)
    assert found.get("omnigw_inbound_messages_total", channel="webchat") == 1
    for value in (
        METRICS_TOKEN,
        ADMIN,
        IDENTITY_SECRET,
        user_id,
        "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1zaG93LXVw",
        receiver.url,
        session["token"],
        session["visitor_id"],
        "Trần",
        "ngoc.tran",
        "DH48213",
    ):
        assert value not in found.text, value
    await ws.close()


def test_a_short_metrics_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "omnigw.toml"
    path.write_text('[server]\nmetrics_token = "short-but-secret"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={})
    (problem,) = refused.value.problems
    assert problem.key == "server.metrics_token"
    assert "at least 32" in problem.message
    assert "short-but-secret" not in str(refused.value)
    settings = load_settings(None, env={"OMNIGW_SERVER_METRICS_TOKEN": METRICS_TOKEN})
    assert settings.server.metrics_token.get_secret_value() == METRICS_TOKEN
    assert METRICS_TOKEN not in repr(settings)


async def test_metrics_answer_without_the_queue_while_the_store_is_gone(
    client: Client, gw: Gateway
) -> None:
    assert (await scrape(client)).value("omnigw_queued_conversations", channel="webchat") == 0
    await gw.store.close()
    found = await scrape(client)
    assert found.labelled("omnigw_queued_conversations") == []  # absent, not stale
    assert found.labelled("omnigw_queue_oldest_wait_seconds") == []
    assert found.value("omnigw_webchat_sockets") == 0  # the rest is there
