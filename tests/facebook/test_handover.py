"""Messenger's handover protocol with the documented bodies (Graph API faked with respx):
standby messages kept but not routed while another app owns the thread, control passed
to this app going to humans, control taken by another app holding the conversation
there, and the gateway passing control to a bot's app or taking it for an agent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx
from aiohttp.test_utils import TestClient

from gateway.app import Gateway
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import GatewayFactory
from tests.facebook.conftest import GRAPH_HOST, Fb, GraphFake
from tests.facebook.helpers import PAGE, PSID, TOKEN, config, load, raw
from tests.providers import Served
from tests.webhooks.receiver import Receiver

Client = TestClient  # type: ignore[type-arg]

BOT_APP = "777000000000009"  # the bot platform's app in the fixtures

BOTS = """
[webhook_delivery]
allow_loopback = true

[[bots]]
id = "fbbot"
url = "{url}"
secret = "{secret}"
facebook_app_id = "{app}"
timeout = 300
"""


@pytest.fixture
async def platform() -> AsyncIterator[Receiver]:
    """Where the bot's events are delivered (it answers on Messenger itself)."""
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def thread_control(graph: GraphFake) -> respx.Route:
    route = graph.router.post(
        host=GRAPH_HOST, path__regex=r"^/v25\.0/[0-9]+/(pass|take)_thread_control$"
    )
    route.respond(json={"success": True})
    return route


@pytest.fixture
async def fb(
    graph: GraphFake, make_gateway: GatewayFactory, platform: Receiver
) -> AsyncIterator[Fb]:
    toml = config() + BOTS.format(url=platform.url, secret=new_secret(), app=BOT_APP)
    async with Served(make_gateway) as served:
        gw, client = await served.start(toml)
        yield Fb(gw, client, graph)


def _calls(route: respx.Route) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (c.request.url.path, c.request.url.params["access_token"], json.loads(c.request.content))
        for c in route.calls
    ]


async def _only_conversation(client: Client) -> dict[str, Any]:
    page = await get_json(client, "/v1/conversations")
    (conv,) = page["items"]
    found: dict[str, Any] = conv
    return found


async def _handovers(gw: Gateway) -> list[dict[str, Any]]:
    return [
        e.data for e in await gw.store.events.after(0, 10_000) if e.type == "conversation.handover"
    ]


async def _status(client: Client, conv_id: str, status: str) -> dict[str, Any] | None:
    conv: dict[str, Any] = await get_json(client, f"/v1/conversations/{conv_id}")
    return conv if conv["status"] == status else None


def _standby(text: str, mid: str) -> dict[str, Any]:
    """The documented standby body, with the customer's words."""
    body = load("standby_message")
    message = body["entry"][0]["standby"][0]["message"]
    message["text"], message["mid"] = text, mid
    return body


async def test_standby_messages_are_kept_but_not_routed(
    fb: Fb, thread_control: respx.Route
) -> None:
    await fb.deliver(_standby("Áo này còn size M không?", "m_standby-1"))
    await fb.deliver(_standby("Giao hàng mấy ngày?", "m_standby-2"))
    conv = await _only_conversation(fb.client)
    # Another app owns the thread: held there, not queued, whoever is online.
    assert conv["status"] == "bot" and conv["bot_id"] is None and conv["assignee_id"] is None
    messages = await get_json(fb.client, f"/v1/conversations/{conv['id']}/messages")
    assert [m["parts"][0]["text"] for m in messages["items"]] == [
        "Áo này còn size M không?",
        "Giao hàng mấy ngày?",
    ]
    assert (await get_json(fb.client, "/v1/queue"))["items"] == []
    await fb.gw.assignments.dispatch()  # routing runs: it leaves the conversation alone
    assert (await _status(fb.client, conv["id"], "bot")) is not None
    assert await _handovers(fb.gw) == []
    assert thread_control.calls == []


async def test_a_customer_asking_for_a_person_takes_the_thread_from_the_app(
    fb: Fb, thread_control: respx.Route
) -> None:
    # The documented standby body: "Bot không hiểu, cho em gặp người thật".
    await fb.deliver(raw("standby_message"))
    conv = await _only_conversation(fb.client)
    assigned = await eventually(lambda: _status(fb.client, conv["id"], "assigned"))
    assert assigned["assignee_id"] == "lan"
    (handover,) = await _handovers(fb.gw)
    assert handover["reason"] == "customer_asked"
    assert handover["from"] == {"type": "bot", "id": None}
    await eventually(lambda: _has_calls(thread_control, 1))
    ((path, _token, body),) = _calls(thread_control)
    assert path == f"/v25.0/{PAGE}/take_thread_control"
    assert body == {"recipient": {"id": PSID}, "metadata": "customer_asked"}


async def test_control_passed_to_this_app_goes_to_humans(
    fb: Fb, thread_control: respx.Route
) -> None:
    await fb.deliver(_standby("Cho hỏi đơn hàng 1234", "m_standby-3"))
    conv = await _only_conversation(fb.client)
    # The bot platform passes the thread to this app (the documented callback).
    await fb.deliver(raw("handover_pass_thread_control"))
    assigned = await eventually(lambda: _status(fb.client, conv["id"], "assigned"))
    assert assigned["assignee_id"] == "lan"
    (handover,) = await _handovers(fb.gw)
    assert handover["to"] == "humans" and handover["reason"] == "thread_passed"
    assert handover["detail"] == "handover from bot"
    assert thread_control.calls == []  # Messenger moved it: nothing to tell Messenger


async def test_control_taken_by_the_bot_app_then_the_agent_takes_it_back(
    fb: Fb, thread_control: respx.Route, platform: Receiver
) -> None:
    # The thread starts with this app: the customer is served by an agent.
    await fb.deliver(raw("message_text"))
    conv = await _only_conversation(fb.client)
    await eventually(lambda: _status(fb.client, conv["id"], "assigned"))
    # The bot's app takes the thread: the conversation is held by its bot.
    await fb.deliver(raw("handover_take_thread_control"))
    held = await eventually(lambda: _status(fb.client, conv["id"], "bot"))
    assert held["bot_id"] == "fbbot" and held["assignee_id"] is None
    taken = (await _handovers(fb.gw))[-1]
    assert (taken["to"], taken["reason"], taken["bot_id"]) == ("bot", "thread_taken", "fbbot")
    assert taken["from"] == {"type": "agent", "id": "lan"}
    # The agent takes it back: control of the thread is taken on Messenger.
    took = await post_json(fb.client, f"/v1/conversations/{conv['id']}/assign", {"agent_id": "lan"})
    assert took["status"] == "assigned"
    await eventually(lambda: _has_calls(thread_control, 1))
    ((path, token, body),) = _calls(thread_control)
    assert path == f"/v25.0/{PAGE}/take_thread_control" and token == TOKEN
    assert body == {"recipient": {"id": PSID}, "metadata": "agent_took"}
    # The bot platform got the conversation's events while its bot held it.
    types = [d.envelope["type"] for d in platform.deliveries]
    assert "conversation.handover" in types


async def test_a_handover_to_the_bot_passes_control_to_its_app(
    fb: Fb, thread_control: respx.Route
) -> None:
    await fb.deliver(raw("message_text"))
    conv = await _only_conversation(fb.client)
    await eventually(lambda: _status(fb.client, conv["id"], "assigned"))
    moved = await post_json(
        fb.client,
        f"/v1/conversations/{conv['id']}/handover",
        {"to": "bot", "bot_id": "fbbot", "reason": "after hours"},
    )
    assert moved["status"] == "bot" and moved["bot_id"] == "fbbot"
    await eventually(lambda: _has_calls(thread_control, 1))
    ((path, _token, body),) = _calls(thread_control)
    assert path == f"/v25.0/{PAGE}/pass_thread_control"
    assert body == {"recipient": {"id": PSID}, "target_app_id": BOT_APP, "metadata": "after hours"}
    # Nothing is left with the agent.
    mine = await get_json(fb.client, "/v1/conversations?status=assigned&assignee_id=lan")
    assert mine["items"] == []


async def _has_calls(route: respx.Route, count: int) -> bool:
    return len(route.calls) >= count
