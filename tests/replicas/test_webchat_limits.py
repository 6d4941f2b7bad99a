"""Webchat's limits per visitor and per client address hold across replicas through
Redis, and per process while Redis is away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.replicas.limits import SharedBuckets
from gateway.replicas.link import RedisLink
from kernel.ratelimit import Bucket
from tests.api.helpers import open_visitor
from tests.conftest import GatewayFactory

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def links(redis_url: str) -> AsyncIterator[tuple[RedisLink, RedisLink]]:
    a, b = RedisLink(redis_url), RedisLink(redis_url)
    for link in (a, b):
        link.on("leases", lambda _payload: None)  # a link listens to something
        await link.start()
        assert link.up, link.state
    yield a, b
    await a.close()
    await b.close()


async def test_shared_buckets_are_one_bucket_for_every_replica(
    links: tuple[RedisLink, RedisLink],
) -> None:
    a, b = SharedBuckets(links[0]), SharedBuckets(links[1])
    wide, narrow = Bucket("wide", 0.01, 10), Bucket("narrow", 0.01, 3)
    assert await a.take(wide, narrow) == 0.0
    assert await b.take(wide, narrow) == 0.0
    assert await a.take(wide, narrow, cost=1) == 0.0
    assert await b.take(wide, narrow) > 50  # 0.01 a second: about 100 s to the next
    # all or nothing: the refusal left the wide bucket's tokens where they were
    assert [await (a, b)[n % 2].take(wide) for n in range(7)] == [0.0] * 7
    assert await a.take(wide) > 0
    assert await a.take(Bucket("costly", 1.0, 4), cost=3) == 0.0
    assert 1.9 < await b.take(Bucket("costly", 1.0, 4), cost=3) <= 2.0
    # cost 0 only looks
    once = Bucket("once", 0.001, 1)
    assert await a.take(once, cost=0) == 0.0
    assert await b.take(once, cost=0) == 0.0
    assert await b.take(once) == 0.0
    assert await a.take(once, cost=0) > 0


async def test_while_redis_is_away_each_replica_keeps_its_own(
    links: tuple[RedisLink, RedisLink],
) -> None:
    a = SharedBuckets(links[0])
    links[0].up = False  # what the link says when Redis cannot be reached
    b = Bucket("k", 0.01, 2)
    assert [await a.take(b) for _ in range(2)] == [0.0, 0.0]
    assert await a.take(b) > 0
    # Redis itself was never asked
    assert await SharedBuckets(links[1]).take(b) == 0.0


async def say(ws: Any, text: str, client_id: str) -> dict[str, Any]:
    """The ack or error of a message (a replica may also show the message itself)."""
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=5)
        if frame["type"] in ("ack", "error"):
            return frame


LIMITED = """
[[channels]]
id = "webchat"
type = "webchat"
rate_per_second = 0.01
rate_burst = 3
address_conversations = 4
"""


async def test_a_visitor_and_an_address_are_limited_across_replicas(
    pg_url: str, redis_url: str, make_gateway: GatewayFactory
) -> None:
    toml = f'[store]\nurl = "{pg_url}"\n\n[redis]\nurl = "{redis_url}"\n' + LIMITED
    one, two = await make_gateway(toml), await make_gateway(toml)
    async with (
        TestClient(TestServer(one.web_app())) as a,
        TestClient(TestServer(two.web_app())) as b,
    ):
        ws, session = await open_visitor(a)
        assert [(await say(ws, f"tin {i}", f"c{i}"))["type"] for i in range(3)] == ["ack"] * 3
        # The same visitor on the other replica: the allowance spent on the first holds.
        other, _ = await open_visitor(b, token=session["token"])
        refused = await say(other, "tin 4", "c4")
        assert (refused["type"], refused["code"]) == ("error", "rate_limited")
        # New conversations from one address: 4 in all, whichever replica they reach.
        answers = []
        for n in range(5):
            ws, _ = await open_visitor((a, b)[n % 2])
            answers.append((await say(ws, f"khách {n}", "c1"))["type"])
        assert answers == ["ack"] * 3 + ["error"] * 2
