"""What channels bring in: messages (deduplicated, linked to their contact, threaded and
stored with their events in one unit of work), delivery news, reactions, identities."""

from __future__ import annotations

from gateway.domain import bots as handovers
from gateway.domain import choices, clocks, contacts, surveys
from gateway.domain.bots import BotRules
from gateway.domain.media import fetchable
from gateway.domain.state import US, RoutingState
from gateway.domain.threads import open_for, thread_for
from gateway.store.protocols import Store
from gateway.store.records import to_us
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage, IngestResult, Sender, StatusUpdate
from kernel.ids import ChannelId, ContactId, ConversationId, new_message_id
from kernel.models import (
    STATUS_RANK,
    Author,
    AuthorType,
    ChannelType,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageError,
    MessageStatus,
    Reaction,
    text_of,
)


async def ingest(
    tx: Tx,
    msg: InboundMessage,
    channel_type: ChannelType,
    routing: RoutingState,
    bots: BotRules | None = None,
    survey_plan: surveys.Plan | None = None,
) -> IngestResult:
    dup = await tx.messages.by_external(msg.channel_id, msg.external_id)
    if dup is not None:
        joined = await tx.conversations.get(dup.message.conversation_id)
        return IngestResult(
            message=dup.message,
            conversation_id=dup.message.conversation_id,
            conversation_status=joined.status if joined else ConversationStatus.RESOLVED,
            contact_id=ContactId(dup.contact_id),
            duplicate=True,
        )
    contact_id = await contacts.resolve(tx, msg.channel_id, channel_type, msg.sender)
    inbound = msg.direction == Direction.INBOUND
    if survey_plan is not None and inbound and channel_type != ChannelType.EMAIL:
        # An answer to a survey: kept in its (resolved) conversation, never reopening it.
        async def has_open() -> bool:
            return await open_for(tx, contact_id, msg.channel_id) is not None

        pick = await surveys.recognise(
            tx, contact_id, msg.channel_id, text_of(msg.parts), msg.metadata, has_open
        )
        if pick is not None:
            return await _survey_answer(tx, msg, contact_id, pick, survey_plan)
    conv = await thread_for(tx, msg, contact_id, channel_type, routing, bots)

    reply_to = None
    if msg.reply_to_external_id:
        earlier = await tx.messages.by_external(msg.channel_id, msg.reply_to_external_id)
        reply_to = earlier.message.id if earlier else None
    metadata = msg.metadata
    if inbound:
        # An answer to a question the business asked (a choices part): the pick.
        text = text_of(msg.parts)
        metadata = choices.answered(await tx.messages.asked(conv.id), text, metadata)
    stored = Message(
        id=new_message_id(),
        conversation_id=conv.id,
        channel_id=msg.channel_id,
        direction=msg.direction,
        author=Author(
            type=AuthorType.CONTACT if inbound else AuthorType.AGENT,
            id=contact_id if inbound else None,
        ),
        external_id=msg.external_id,
        parts=msg.parts,
        reply_to=reply_to,
        created_at=tx.now_dt,
        status=MessageStatus.RECEIVED if inbound else MessageStatus.SENT,
        metadata=metadata,
    )
    await tx.messages.insert(stored, conv.contact_id, peer_id=msg.sender.external_id)
    if fetchable(stored.parts):
        # The provider's files expire: fetched once the provider has its answer.
        await tx.messages.download_later(stored.id, stored.channel_id)
    if inbound:
        # The provider's own time, when it gives one, starts reply windows (a webhook it
        # retried late must not stretch them); never later than now.
        wrote_at = tx.now if msg.sent_at is None else min(tx.now, to_us(msg.sent_at))
        # awaiting_since: when the customer started waiting for an answer (reassign_after).
        await tx.conversations.update(
            conv.id,
            last_message_at=tx.now,
            last_inbound_at=wrote_at,
            recipient_id=msg.sender.external_id,
            awaiting_since=conv.awaiting_since if conv.awaiting_since is not None else tx.now,
        )
    else:
        await tx.conversations.update(
            conv.id,
            last_message_at=tx.now,
            awaiting_since=None,
            first_response_at=conv.first_response_at
            if conv.first_response_at is not None
            else tx.now,
        )
    await tx.emit(
        "message.received" if inbound else "message.sent",
        {"message": stored},
        stored.conversation_id,
    )
    status: str = conv.status
    if inbound and status == ConversationStatus.BOT and bots is not None:
        held = await tx.conversations.get(conv.id)
        if held is not None and bots.asks_for_person(held.bot_id, text_of(msg.parts)):
            await handovers.to_humans(tx, held, reason=handovers.CUSTOMER_ASKED, by=None)
            status = ConversationStatus.QUEUED
    notices = 0
    if inbound and status != ConversationStatus.BOT:
        # A bot's conversation keeps no human clock and gets no off-hours reply: the bot
        # answers; its clocks start when it hands over.
        wrote = await clocks.customer_wrote(
            tx, routing.clocks, conv.id, msg.channel_id, channel_type.value, tx.now / US
        )
        notices = int(wrote)
    elif not inbound:
        await clocks.answered(tx, conv.id, tx.now / US)
    return IngestResult(
        message=stored,
        conversation_id=conv.id,
        conversation_status=status,
        contact_id=contact_id,
        notices=notices,
    )


async def _survey_answer(
    tx: Tx,
    msg: InboundMessage,
    contact_id: ContactId,
    pick: surveys.Pick,
    plan: surveys.Plan | None,
) -> IngestResult:
    """A pick of a survey's answer: stored in the survey's conversation as the customer's
    message, which stays as it is (resolved), and recorded on the survey."""
    # Its id first: the next question, written now, is newer than the answer.
    message_id = new_message_id()
    outcome = await surveys.take(tx, pick, plan)
    conversation_id = ConversationId(pick.survey.conversation_id)
    stored = Message(
        id=message_id,
        conversation_id=conversation_id,
        channel_id=msg.channel_id,
        direction=Direction.INBOUND,
        author=Author(type=AuthorType.CONTACT, id=contact_id),
        external_id=msg.external_id,
        parts=msg.parts,
        created_at=tx.now_dt,
        status=MessageStatus.RECEIVED,
        metadata=surveys.pick_metadata(msg.metadata, pick, outcome),
    )
    await tx.messages.insert(stored, pick.survey.contact_id, peer_id=msg.sender.external_id)
    wrote_at = tx.now if msg.sent_at is None else min(tx.now, to_us(msg.sent_at))
    await tx.conversations.update(conversation_id, last_message_at=tx.now, last_inbound_at=wrote_at)
    await tx.emit("message.received", {"message": stored}, conversation_id)
    return IngestResult(
        message=stored,
        conversation_id=conversation_id,
        conversation_status=ConversationStatus.RESOLVED,
        contact_id=contact_id,
        notices=int(outcome == "answered"),  # the next question, or the thanks
    )


async def update_status(tx: Tx, update: StatusUpdate) -> list[Message]:
    if update.external_ids:
        found = await tx.messages.outbound_by_external(update.channel_id, update.external_ids)
    elif update.watermark is not None and update.recipient_external_id:
        # compared with when it went out: a message still pending at the watermark was
        # not yet delivered or read, however early it was written
        found = await tx.messages.outbound_up_to(
            update.channel_id, update.recipient_external_id, to_us(update.watermark)
        )
    else:
        return []
    changed: list[Message] = []
    for message in found:
        current = message.status
        if update.status == MessageStatus.FAILED:
            if current == MessageStatus.FAILED:
                continue
            error = update.error or MessageError(
                code="provider_failed", reason="the channel reported a failure", retryable=False
            )
            await tx.messages.set_status(message.id, MessageStatus.FAILED, error)
        elif current == MessageStatus.FAILED or current not in STATUS_RANK:
            continue
        elif STATUS_RANK.get(update.status, -1) <= STATUS_RANK[current]:
            continue  # a status only moves forward: a late "delivered" never undoes "read"
        else:
            await tx.messages.set_status(message.id, update.status)
        updated = await tx.messages.get(message.id)
        assert updated is not None
        await tx.emit(
            f"message.{update.status.value}", {"message": updated}, updated.conversation_id
        )
        changed.append(updated)
    return changed


async def react(
    tx: Tx,
    channel_id: str,
    message_external_id: str,
    reaction: Reaction | None,
    reactor: Author,
) -> Message | None:
    """Set (or with None, remove) one reactor's reaction on a message; one per reactor."""
    found = await tx.messages.by_external(channel_id, message_external_id)
    if found is None:
        return None
    current = found.message
    kept = [r for r in current.reactions if r.by != reactor]
    if reaction is None and len(kept) == len(current.reactions):
        return current  # nothing to remove: no change, no event
    reactions = [*kept, reaction] if reaction is not None else kept
    await tx.messages.set_reactions(current.id, reactions)
    updated = current.model_copy(update={"reactions": reactions})
    await tx.emit(
        "message.reacted",
        {
            "message": updated,
            "action": "react" if reaction is not None else "unreact",
            "by": reactor,
        },
        updated.conversation_id,
    )
    return updated


class Inbox:
    """Channels' traffic in, each call one unit of work."""

    def __init__(self, store: Store, routing: RoutingState, bots: BotRules | None = None) -> None:
        self.store = store
        self.routing = routing
        self.bots = bots
        # Set when surveys are on: a customer's pick of a survey answer is recognised.
        self.surveys: surveys.Plan | None = None

    async def ingest(self, message: InboundMessage, channel_type: ChannelType) -> IngestResult:
        routing, bots, plan = self.routing, self.bots, self.surveys

        async def work(tx: Tx) -> IngestResult:
            return await ingest(tx, message, channel_type, routing, bots, plan)

        return await self.store.transact(work)

    async def update_status(self, update: StatusUpdate) -> list[Message]:
        async def work(tx: Tx) -> list[Message]:
            return await update_status(tx, update)

        return await self.store.transact(work)

    async def thread_control(
        self, conversation_id: str, owner_app_id: str | None, detail: str | None
    ) -> Conversation | None:
        """The channel moved control of the thread (bots.thread_control)."""
        rules, state = self.bots or BotRules(), self.routing

        async def work(tx: Tx) -> Conversation | None:
            index = await state.index(tx)
            moved, previous = await handovers.thread_control(
                tx, rules, conversation_id, owner_app_id, detail
            )
            if moved is not None and previous is not None:
                record = await tx.conversations.get(conversation_id)
                assert record is not None
                index.release(previous, record.channel_type)
            return moved

        return await state.run(self.store, work)

    async def react(
        self,
        channel_id: ChannelId,
        message_external_id: str,
        reaction: Reaction | None,
        reactor: Author,
    ) -> Message | None:
        async def work(tx: Tx) -> Message | None:
            return await react(tx, channel_id, message_external_id, reaction, reactor)

        return await self.store.transact(work)

    async def link_identity(
        self,
        channel_id: ChannelId,
        channel_type: ChannelType,
        sender: Sender,
        *,
        link_to: Sender | None = None,
    ) -> ContactId:
        """Create or update the contact behind a channel identity; with ``link_to``, the
        two identities' contacts become one (the older survives)."""

        async def work(tx: Tx) -> ContactId:
            return await contacts.resolve_linked(tx, channel_id, channel_type, sender, link_to)

        return await self.store.transact(work)
