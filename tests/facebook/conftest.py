"""A gateway with a Messenger channel, and the Graph API faked at httpx's transport."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
import respx

from tests.conftest import GatewayFactory
from tests.facebook.helpers import APP_SECRET, CHANNEL, config, dump, signed
from tests.providers import Json, ProviderGateway, Served

GRAPH_HOST = "graph.test"
PROFILE = {
    "first_name": "Ngọc",
    "last_name": "Trần",
    "profile_pic": "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=7012&height=50",
}


@dataclass
class GraphFake:
    """The Graph API as respx serves it: Send API, profiles, token checks."""

    router: respx.MockRouter
    send: respx.Route
    profile: respx.Route
    me: respx.Route
    mids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def calls(self, route: respx.Route) -> list[httpx.Request]:
        return [c.request for c in route.calls]

    def messages(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(path, access_token, JSON body) of every Send API message request."""
        return [
            (r.url.path, r.url.params["access_token"], body)
            for r in self.calls(self.send)
            if "message" in (body := json.loads(r.content))
        ]

    def actions(self) -> list[tuple[str, str, str]]:
        """(path, recipient, sender_action) of every typing / seen request."""
        return [
            (r.url.path, body["recipient"]["id"], body["sender_action"])
            for r in self.calls(self.send)
            if "sender_action" in (body := json.loads(r.content))
        ]

    def ok(self, request: httpx.Request) -> httpx.Response:
        """Meta's success answer: a new mid for a message, the recipient for an action."""
        body = json.loads(request.content)
        answer = {"recipient_id": body["recipient"]["id"]}
        if "message" in body:
            answer["message_id"] = f"m_out-{next(self.mids):04d}-sent-by-graph-fake"
        return httpx.Response(200, json=answer)


@pytest.fixture
def graph() -> Iterator[GraphFake]:
    with respx.mock(assert_all_called=False) as router:
        fake = GraphFake(
            router=router,
            send=router.post(host=GRAPH_HOST, path__regex=r"^/v25\.0/[0-9]+/messages$"),
            profile=router.get(host=GRAPH_HOST, path__regex=r"^/v25\.0/[0-9]+$"),
            me=router.get(host=GRAPH_HOST, path="/v25.0/me"),
        )
        fake.send.side_effect = fake.ok
        fake.profile.respond(json=PROFILE)
        fake.me.respond(json={"id": "104000000000001", "name": "Shop"})
        yield fake


@dataclass
class Fb(ProviderGateway):
    """The gateway with the test Messenger channel; Meta's side is ``graph``."""

    graph: GraphFake

    channel: ClassVar[str] = CHANNEL

    def encode(self, payload: Json) -> bytes:
        return dump(payload)

    def signed_headers(self, body: bytes) -> dict[str, str]:
        return signed(body)


FbFactory = Callable[..., Awaitable[Fb]]


@pytest.fixture
async def start_fb(graph: GraphFake, make_gateway: GatewayFactory) -> AsyncIterator[FbFactory]:
    """Start a gateway with the test Messenger channel (options go to the channel)."""
    async with Served(make_gateway) as served:

        async def start(**options: Any) -> Fb:
            gw, client = await served.start(config(**options))
            return Fb(gw, client, graph)

        yield start


@pytest.fixture
async def fb(start_fb: FbFactory) -> Fb:
    return await start_fb()


__all__ = ["APP_SECRET", "Fb", "FbFactory", "GraphFake"]
