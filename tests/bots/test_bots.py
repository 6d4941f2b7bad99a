"""Bots first, humans after, with a real bot over HTTP: signed events of its own
conversations only, answers authored by the bot, handovers by the bot, by an agent, and
by the gateway when the bot fails (down, answering 500, silent) or the customer asks for
a person."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.bots.bot import Bot
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
skills = {{ sales = 3 }}
capacity = {{ total = 10 }}

[webhook_delivery]
allow_loopback = true

[[bots]]
id = "triage"
url = "{triage_url}"
secret = "{triage_secret}"
channels = ["webchat"]
timeout = {timeout}
retry_schedule = [0, 0.1]

[[bots]]
id = "sales"
url = "{sales_url}"
secret = "{sales_secret}"
timeout = 30
"""


async def _start(
    make_gateway: GatewayFactory, triage: Bot, sales: Bot, bot_timeout: float = 30
) -> tuple[Gateway, Client]:
    gw = await make_gateway(
        CONFIG.format(
            triage_url=triage.url,
            triage_secret=triage.secret,
            sales_url=sales.url,
            sales_secret=sales.secret,
            timeout=bot_timeout,
        )
    )
    client = TestClient(TestServer(gw.web_app()))
    await client.start_server()
    for bot, bot_id in ((triage, "triage"), (sales, "sales")):
        made = await post_json(
            client, "/v1/tokens", {"name": bot_id, "scopes": ["bot"], "bot_id": bot_id}, 201
        )
        bot.token, bot.gateway = made["token"], str(client.make_url(""))
    return gw, client


@pytest.fixture
async def bots() -> AsyncIterator[tuple[Bot, Bot]]:
    triage, sales = await Bot(new_secret()).start(), await Bot(new_secret()).start()
    yield triage, sales
    await triage.stop()
    await sales.stop()


async def _handovers(gw: Gateway, conversation_id: str) -> list[dict[str, Any]]:
    return [
        e.data
        for e in await gw.store.events.after(0, 10_000)
        if e.type == "conversation.handover" and e.conversation_id == conversation_id
    ]


async def _status(client: Client, conversation_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await get_json(client, f"/v1/conversations/{conversation_id}")
    return found


async def test_the_bot_answers_first_then_hands_over_to_humans(
    make_gateway: GatewayFactory, bots: tuple[Bot, Bot]
) -> None:
    triage, sales = bots
    gw, client = await _start(make_gateway, triage, sales)
    try:
        ws, session = await open_visitor(client)
        await say(ws, "Xin chào shop", "c1")
        conv_id = session["conversation_id"] or (
            await eventually(lambda: _first_conversation(client))
        )
        conv = await _status(client, conv_id)
        assert conv["status"] == "bot" and conv["bot_id"] == "triage"
        assert conv["assignee_id"] is None

        # The bot got the conversation's events, signed (its Bot verifies each), and its
        # answer reaches the customer authored by the bot.
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "message"
        assert frame["message"]["author"] == {"type": "bot", "id": "triage"}
        assert frame["message"]["parts"][0]["text"].startswith("Xin chào! Em là trợ lý")
        assert triage.types(conv_id)[:2] == ["conversation.created", "message.received"]
        assert triage.refused == 0 and sales.events == []

        # The customer wants to buy: the bot hands over, with its reason and skills.
        await say(ws, "Tôi muốn mua hàng", "c2")
        handed = await eventually(lambda: _handovers(gw, conv_id), within=10)
        assert handed[0]["to"] == "humans" and handed[0]["reason"] == "wants_to_buy"
        assert handed[0]["from"] == {"type": "bot", "id": "triage"}
        assert handed[0]["by"] == {"type": "bot", "id": "triage"}
        assigned = await eventually(lambda: _assigned(client, conv_id, "lan"), within=10)
        assert assigned["skills"] == ["sales"] and assigned["bot_id"] is None
        # The agent sees everything said so far, the bot's answers included.
        messages = await get_json(client, f"/v1/conversations/{conv_id}/messages")
        authors = [m["author"]["type"] for m in messages["items"]]
        assert authors == ["contact", "bot", "contact", "bot"]

        # The bot got the handover, and nothing of the conversation after it.
        await eventually(lambda: _has(triage, conv_id, "conversation.handover"), within=10)
        await say(ws, "Chào chị Lan", "c3")
        await eventually(lambda: _message_count(client, conv_id, 5))
        after = triage.types(conv_id)
        assert after[-1] == "conversation.handover"
        assert "conversation.assigned" not in after

        # The bot's token no longer reads or answers it.
        headers = {"Authorization": f"Bearer {triage.token}"}
        resp = await client.post(
            f"/v1/conversations/{conv_id}/messages", json={"text": "còn em"}, headers=headers
        )
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "not_with_this_bot"
        resp = await client.post(
            f"/v1/conversations/{conv_id}/handover", json={"to": "humans"}, headers=headers
        )
        assert resp.status == 409
        # ... and cannot do what agents do.
        resp = await client.post(f"/v1/conversations/{conv_id}/resolve", json={}, headers=headers)
        assert resp.status == 403
        await ws.close()
    finally:
        await client.close()


async def test_a_chain_triage_bot_then_sales_bot_then_humans(
    make_gateway: GatewayFactory, bots: tuple[Bot, Bot]
) -> None:
    triage, sales = bots
    triage.mode = sales.mode = "silent"
    gw, client = await _start(make_gateway, triage, sales)
    try:
        ws, _session = await open_visitor(client)
        await say(ws, "Cho hỏi giá", "c1")
        conv_id = await eventually(lambda: _first_conversation(client))
        await eventually(lambda: _has(triage, conv_id, "message.received"), within=10)
        # The triage bot passes control to the sales bot.
        triage_auth = {"Authorization": f"Bearer {triage.token}"}
        passed = await post_json(
            client,
            f"/v1/conversations/{conv_id}/handover",
            {"to": "bot", "bot_id": "sales", "reason": "pricing"},
            headers=triage_auth,
        )
        assert passed["status"] == "bot" and passed["bot_id"] == "sales"
        await say(ws, "Áo size M bao nhiêu?", "c2")
        await eventually(lambda: _has(sales, conv_id, "message.received"), within=10)
        assert sales.types(conv_id)[0] == "conversation.handover"
        # The triage bot got the handover that took it away, and nothing after.
        await eventually(lambda: _has(triage, conv_id, "conversation.handover"), within=10)
        assert triage.types(conv_id).count("message.received") == 1
        # The sales bot hands over to humans; humans could give it back to a bot.
        sales_auth = {"Authorization": f"Bearer {sales.token}"}
        await post_json(
            client,
            f"/v1/conversations/{conv_id}/handover",
            {"to": "humans", "reason": "order", "priority": 5},
            headers=sales_auth,
        )
        taken = await eventually(lambda: _assigned(client, conv_id, "lan"), within=10)
        assert taken["priority"] == 5
        back = await post_json(
            client,
            f"/v1/conversations/{conv_id}/handover",
            {"to": "bot", "bot_id": "triage", "reason": "after hours"},
        )
        assert back["status"] == "bot" and back["assignee_id"] is None
        chain = [(h["from"]["type"], h["to"], h["bot_id"]) for h in await _handovers(gw, conv_id)]
        assert chain == [
            ("bot", "bot", "sales"),
            ("bot", "humans", None),
            ("agent", "bot", "triage"),
        ]
        # An agent can always take a bot's conversation.
        took = await post_json(client, f"/v1/conversations/{conv_id}/assign", {"agent_id": "lan"})
        assert took["status"] == "assigned"
        last = (await _handovers(gw, conv_id))[-1]
        assert last["action"] == "take" and last["reason"] == "agent_took"
        assert last["by"] == {"type": "agent", "id": "lan"}
        await ws.close()
    finally:
        await client.close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/bot"  # nothing listens there any more


@pytest.mark.parametrize(
    ("fault", "text", "reason", "detail"),
    [
        ("down", "Xin chào", "bot_unreachable", None),
        ("fail", "Xin chào", "bot_unreachable", "HTTP 500"),
        ("silent", "Xin chào", "bot_timeout", None),
        ("answer", "cho toi gap nhan vien voi", "customer_asked", None),
        ("answer", "Tôi cần TƯ VẤN VIÊN", "customer_asked", None),
    ],
)
async def test_faults_end_with_a_handover_and_the_reason(
    make_gateway: GatewayFactory,
    bots: tuple[Bot, Bot],
    fault: str,
    text: str,
    reason: str,
    detail: str | None,
) -> None:
    triage, sales = bots
    triage.mode = fault
    if fault == "down":
        triage.url = _closed_port_url()
    # Only the silent bot's case waits for the clock; the others must not race it.
    gw, client = await _start(
        make_gateway, triage, sales, bot_timeout=1.5 if fault == "silent" else 60
    )
    try:
        ws, _session = await open_visitor(client)
        await say(ws, text, "c1")
        conv_id = await eventually(lambda: _first_conversation(client))
        handed = await eventually(lambda: _handovers(gw, conv_id), within=20)
        assert len(handed) == 1
        assert handed[0]["reason"] == reason and handed[0]["to"] == "humans"
        assert handed[0]["by"] is None  # the gateway moved it
        if detail is not None:
            assert handed[0]["detail"] == detail
        assigned = await eventually(lambda: _assigned(client, conv_id, "lan"), within=10)
        assert assigned["bot_id"] is None
        await ws.close()
    finally:
        await client.close()


async def test_a_bot_token_needs_its_bot(
    make_gateway: GatewayFactory, bots: tuple[Bot, Bot]
) -> None:
    triage, sales = bots
    _gw, client = await _start(make_gateway, triage, sales)
    try:
        for body, code in [
            ({"name": "b", "scopes": ["bot"]}, "bot_id_required"),
            ({"name": "b", "scopes": ["integration"], "bot_id": "triage"}, "bot_id_required"),
            ({"name": "b", "scopes": ["bot"], "bot_id": "nobody"}, "bot_not_found"),
        ]:
            answer = await post_json(client, "/v1/tokens", body, 422)
            assert answer["error"]["code"] == code
        listed = await get_json(client, "/v1/tokens")
        assert {t["bot_id"] for t in listed["items"]} == {"triage", "sales"}
    finally:
        await client.close()


async def _first_conversation(client: Client) -> str | None:
    page = await get_json(client, "/v1/conversations", headers=AUTH)
    return page["items"][0]["id"] if page["items"] else None


async def _assigned(client: Client, conversation_id: str, agent: str) -> dict[str, Any] | None:
    conv = await _status(client, conversation_id)
    return conv if conv["status"] == "assigned" and conv["assignee_id"] == agent else None


async def _has(bot: Bot, conversation_id: str, event_type: str) -> bool:
    return event_type in bot.types(conversation_id)


async def _message_count(client: Client, conversation_id: str, count: int) -> bool:
    page = await get_json(client, f"/v1/conversations/{conversation_id}/messages")
    return len(page["items"]) >= count


async def test_bad_handovers_get_clear_errors(
    make_gateway: GatewayFactory, bots: tuple[Bot, Bot]
) -> None:
    triage, sales = bots
    triage.mode = "silent"
    _gw, client = await _start(make_gateway, triage, sales)
    try:
        ws, _session = await open_visitor(client)
        await say(ws, "Xin chào", "c1")
        conv_id = await eventually(lambda: _first_conversation(client))
        url = f"/v1/conversations/{conv_id}/handover"
        for body, status, code in [
            ({"to": "robots"}, 400, None),
            ({}, 400, None),
            ({"to": "humans", "priority": 11}, 400, None),
            ({"to": "bot", "bot_id": "nobody"}, 422, "bot_not_found"),
            ({"to": "bot", "bot_id": "triage"}, 409, "already_there"),
        ]:
            answer = await post_json(client, url, body, status)
            if code is not None:
                assert answer["error"]["code"] == code
        await post_json(client, "/v1/conversations/nope/handover", {"to": "humans"}, 404)
        await post_json(client, url, {"to": "humans"})
        answer = await post_json(client, url, {"to": "humans"}, 409)
        assert answer["error"]["code"] == "not_with_bot"
        await ws.close()
    finally:
        await client.close()
