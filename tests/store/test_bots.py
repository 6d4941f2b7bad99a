"""Bots' conversations and their handovers as units of work, over every backend: held
by a bot and left alone by routing, the bot's clock, handovers both ways with the
agent's room freed, and Messenger's thread control."""

from __future__ import annotations

import asyncio
import time

import pytest

from config.bots import BotSettings
from gateway.domain import bots
from gateway.domain.bots import BotRules
from gateway.domain.clocks import Clocks
from gateway.domain.inbox import Inbox
from gateway.domain.state import RoutingState
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage, Sender
from kernel.errors import Conflict
from kernel.ids import AgentId, ChannelId, ConversationId
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    ChannelType,
    Conversation,
    ConversationStatus,
    Presence,
    TextPart,
)
from kernel.webhook_signing import new_secret
from routing.hours import BusinessHoursSettings, Calendar
from routing.settings import RoutingSettings
from tests.store.conftest import Domain, Recorder

WEB = ChannelId("webchat")
RULES = BotRules(
    (
        BotSettings(
            id="triage",
            url="https://bots.example/triage",
            secret=new_secret(),
            channels=[WEB],
            timeout=0.2,
        ),
        BotSettings(
            id="sales",
            url="https://bots.example/sales",
            secret=new_secret(),
            timeout=60,
            facebook_app_id="777000000000009",
        ),
    )
)


def said(external_id: str, sender: str, text: str = "Xin chào") -> InboundMessage:
    return InboundMessage(
        channel_id=WEB,
        external_id=external_id,
        sender=Sender(external_id=sender),
        parts=[TextPart(text=text)],
    )


@pytest.fixture
def with_bots(domain: Domain) -> Domain:
    domain.inbox = Inbox(domain.store, domain.inbox.routing, RULES)
    return domain


async def _online(domain: Domain, capacity: int = 1) -> None:
    await domain.assignments.put_agent(
        Agent(id=AgentId("lan"), capacity={"total": capacity}, presence=Presence.ONLINE)
    )


async def _conversation(store: Store, conversation_id: str) -> Conversation:
    found = await store.conversations.get(ConversationId(conversation_id))
    assert found is not None
    return found


async def test_a_bots_conversation_is_left_alone_by_routing(
    with_bots: Domain, recorder: Recorder
) -> None:
    await _online(with_bots)
    result = await with_bots.inbox.ingest(said("w-1", "visitor-1"), ChannelType.WEBCHAT)
    assert result.conversation_status == ConversationStatus.BOT
    await with_bots.assignments.dispatch()
    conv = await _conversation(with_bots.store, result.conversation_id)
    assert (conv.status, conv.bot_id, conv.assignee_id) == ("bot", "triage", None)
    listed = await with_bots.store.conversations.page(
        ConversationFilter(status=ConversationStatus.BOT), None, 10
    )
    assert [c.id for c in listed.items] == [result.conversation_id]
    assert "conversation.assigned" not in recorder.types()


async def test_the_bots_clock_runs_from_the_customer_and_stops_at_its_answer(
    with_bots: Domain, recorder: Recorder
) -> None:
    await _online(with_bots)
    answered = await with_bots.inbox.ingest(said("w-1", "visitor-1"), ChannelType.WEBCHAT)
    await with_bots.outbox.create(
        answered.conversation_id, bots.bot_author("triage"), [TextPart(text="Em chào anh")]
    )
    silent = await with_bots.inbox.ingest(said("w-2", "visitor-2"), ChannelType.WEBCHAT)
    await asyncio.sleep(0.4)  # past the 0.2 s timeout (longer only helps)

    async def sweep(tx: Tx) -> list[Conversation]:
        return await bots.release_overdue(tx, RULES)

    moved = await with_bots.store.transact(sweep)
    assert [c.id for c in moved] == [silent.conversation_id]
    assert moved[0].status == ConversationStatus.QUEUED
    answered_now = await _conversation(with_bots.store, answered.conversation_id)
    assert answered_now.status == ConversationStatus.BOT
    assert answered_now.first_response_at is None  # a bot's answer is not the humans' FRT
    handover = next(e for e in recorder.events if e.type == "conversation.handover")
    assert handover.data["reason"] == "bot_timeout" and handover.data["to"] == "humans"
    assert await with_bots.store.transact(sweep) == []  # handed over once


async def test_handovers_both_ways_free_the_agents_room(with_bots: Domain) -> None:
    await _online(with_bots, capacity=1)
    first = await with_bots.inbox.ingest(said("w-1", "visitor-1"), ChannelType.WEBCHAT)
    second = await with_bots.inbox.ingest(said("w-2", "visitor-2"), ChannelType.WEBCHAT)
    by_bot = Author(type=AuthorType.BOT, id="triage")
    await with_bots.assignments.handover(
        RULES, first.conversation_id, to="humans", bot_id=None, reason="x", by=by_bot,
        skills={"sales": 1}, priority=4,
    )  # fmt: skip
    await with_bots.assignments.dispatch()
    conv = await _conversation(with_bots.store, first.conversation_id)
    # Nobody has the skill "sales": it waits for one, at the priority the bot gave.
    assert (conv.status, conv.bot_id, conv.skills, conv.priority) == ("queued", None, ["sales"], 4)
    await with_bots.assignments.handover(
        RULES, second.conversation_id, to="humans", bot_id=None, reason=None, by=by_bot
    )
    await with_bots.assignments.dispatch()
    taken = await _conversation(with_bots.store, second.conversation_id)
    assert (taken.status, taken.assignee_id) == ("assigned", "lan")
    # Lan (room for one) gives it to the sales bot: the room is free again.
    back = await with_bots.assignments.handover(
        RULES, second.conversation_id, to="bot", bot_id="sales", reason="after hours", by=None
    )
    assert (back.status, back.bot_id, back.assignee_id) == ("bot", "sales", None)
    third = await with_bots.inbox.ingest(said("w-3", "visitor-3"), ChannelType.WEBCHAT)
    await with_bots.assignments.assign(third.conversation_id, AgentId("lan"))
    assert (await _conversation(with_bots.store, third.conversation_id)).assignee_id == "lan"
    # A bot hands over only what it holds.
    with pytest.raises(Conflict):
        await with_bots.assignments.handover(
            RULES, second.conversation_id, to="humans", bot_id=None, reason=None, by=by_bot
        )


async def test_messenger_thread_control_moves_the_conversation(with_bots: Domain) -> None:
    await _online(with_bots, capacity=1)
    standby = InboundMessage(
        channel_id=WEB,
        external_id="s-1",
        sender=Sender(external_id="visitor-9"),
        parts=[TextPart(text="Còn hàng không?")],
        standby=True,
    )
    result = await with_bots.inbox.ingest(standby, ChannelType.WEBCHAT)
    conv = await _conversation(with_bots.store, result.conversation_id)
    assert (conv.status, conv.bot_id) == ("bot", None)  # held by the app owning the thread
    moved = await with_bots.inbox.thread_control(result.conversation_id, None, "from bot")
    assert moved is not None and moved.status == ConversationStatus.QUEUED
    await with_bots.assignments.dispatch()
    assert (await _conversation(with_bots.store, result.conversation_id)).assignee_id == "lan"
    taken = await with_bots.inbox.thread_control(result.conversation_id, "777000000000009", None)
    assert taken is not None and (taken.status, taken.bot_id) == ("bot", "sales")
    # Lan's room is free again.
    other = await with_bots.inbox.ingest(said("w-5", "visitor-5"), ChannelType.WEBCHAT)
    await with_bots.assignments.assign(other.conversation_id, AgentId("lan"))
    # Control passed again to where it already is: nothing moves.
    again = await with_bots.inbox.thread_control(result.conversation_id, "777000000000009", None)
    assert again is None


async def test_a_bots_conversation_gets_no_off_hours_reply_while_the_bot_holds_it(
    store: Store,
) -> None:
    # Open one minute a week: closed whenever this runs (skipped in that minute).
    closed = BusinessHoursSettings(id="night", hours={"mon": ["00:00-00:01"]}, channels=["webchat"])
    if Calendar(closed).is_open(time.time()):
        pytest.skip("the one open minute of the week")
    hours = Clocks([closed], default_language="vi")
    state = RoutingState(RoutingSettings(), clocks=hours)
    with_bot = Inbox(store, state, RULES)
    without = Inbox(store, state)

    held = await with_bot.ingest(said("b1", "v-bot"), ChannelType.WEBCHAT)
    assert held.conversation_status == ConversationStatus.BOT
    human = await without.ingest(said("h1", "v-human"), ChannelType.WEBCHAT)

    async def automatic(conversation_id: str) -> list[str]:
        page = await store.messages.page(ConversationId(conversation_id), None, 50)
        return [m.id for m in page.items if m.author.type == AuthorType.SYSTEM]

    assert await automatic(held.conversation_id) == []  # the bot answers, not the clock
    assert len(await automatic(human.conversation_id)) == 1
