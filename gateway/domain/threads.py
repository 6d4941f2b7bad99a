"""Which conversation an inbound message joins.

In order: the conversation the channel names (a verified threading token), the one
holding a message it replies to or refers to (e-mail In-Reply-To / References), then, on
chat channels only, the contact's open conversation on the channel; otherwise a new one,
classified by the routing rules.

On chat channels (webchat, Zalo, Messenger) a contact has one open conversation per
channel: a resolved conversation that a reply names is reopened unless another one is
open there, which the message then joins. On e-mail each thread is its own conversation
(design.md 10): a mail joins only the thread it names, reopening it if resolved, and any
other mail opens a new conversation, even from a sender who has one open.
"""

from __future__ import annotations

import json

from gateway.domain import clocks
from gateway.domain.bots import BotRules
from gateway.domain.state import US, RoutingState
from gateway.store.records import ConversationRecord, OpenConversation
from gateway.store.transaction import Tx
from kernel.envelope import InboundMessage
from kernel.ids import ChannelId, ContactId, ConversationId, new_conversation_id
from kernel.models import ChannelType, Conversation, ConversationStatus, text_of


async def open_for(tx: Tx, contact_id: str, channel_id: str) -> OpenConversation | None:
    """The newest open conversation on a channel of a contact or anyone merged into it."""
    # One lookup per member of the merge group (almost always one): each is served by an
    # index on (contact, channel) of open conversations.
    newest = None
    for member in await tx.contacts.members(contact_id):
        found = await tx.conversations.open_of(member, channel_id)
        if found is not None and (newest is None or found.id > newest.id):
            newest = found
    return newest


def one_open_per_contact(channel_type: ChannelType | str) -> bool:
    """Whether a contact has at most one open conversation on a channel of this type."""
    return ChannelType(channel_type) != ChannelType.EMAIL


def _open(record: ConversationRecord) -> OpenConversation:
    return OpenConversation(
        ConversationId(record.id),
        record.contact_id,
        record.status,
        record.awaiting_since,
        record.first_response_at,
    )


async def thread_for(
    tx: Tx,
    msg: InboundMessage,
    contact_id: str,
    channel_type: ChannelType,
    routing: RoutingState,
    bots: BotRules | None = None,
) -> OpenConversation:
    """The conversation an inbound message joins (opening one if needed: held by a bot
    when one takes the channel or the routing rule that classified it)."""
    refs = [r for r in [msg.reply_to_external_id, *msg.thread_refs] if r]
    named = None
    if msg.conversation_hint:
        named = await tx.conversations.on_channel(msg.conversation_hint, msg.channel_id)
    if named is None and refs:
        named = await tx.conversations.holding(msg.channel_id, refs)
    single = one_open_per_contact(channel_type)
    if named is not None:
        if named.status != ConversationStatus.RESOLVED:
            return _open(named)
        other = await open_for(tx, named.contact_id, msg.channel_id) if single else None
        if other is not None:
            return other
        await reopen_record(tx, named)
        return _open(named)
    found = await open_for(tx, contact_id, msg.channel_id) if single else None
    if found is not None:
        return found
    created = await open_new(
        tx,
        routing,
        contact_id=contact_id,
        channel_id=msg.channel_id,
        channel_type=channel_type,
        recipient_id=msg.sender.external_id,
        subject=msg.subject,
        text=text_of(msg.parts) or (msg.subject or ""),
        language=msg.language,
        bots=bots,
        standby=msg.standby,
    )
    return _open(created)


async def open_new(
    tx: Tx,
    routing: RoutingState,
    *,
    contact_id: str,
    channel_id: ChannelId,
    channel_type: ChannelType,
    recipient_id: str,
    subject: str | None,
    text: str,
    language: str | None,
    last_inbound_at: int | None = None,
    bots: BotRules | None = None,
    standby: bool = False,
) -> ConversationRecord:
    """A new conversation, classified by the routing rules, announced: queued, or held
    by a bot when one takes the channel or the rule (``bots``), or by the app owning the
    thread (``standby``, Messenger's handover protocol)."""
    needs = await routing.classify_new(
        tx,
        channel_id=channel_id,
        channel_type=channel_type.value,
        text=text,
        declared_language=language,
        contact_id=contact_id,
    )
    skills = dict(needs.requirements.skills)
    bot = None if bots is None or standby else bots.for_new(channel_id, needs.rule)
    # Seen on Messenger's standby channel: an app outside the gateway holds the thread.
    held = bot is not None or standby
    status = ConversationStatus.BOT if held else ConversationStatus.QUEUED
    created = ConversationRecord(
        id=new_conversation_id(),
        contact_id=contact_id,
        channel_id=channel_id,
        channel_type=channel_type.value,
        recipient_id=recipient_id,
        status=status.value,
        assignee_id=None,
        priority=needs.priority,
        skills_json=json.dumps(sorted(skills)),
        language=needs.language,
        subject=subject,
        created_at=tx.now,
        last_inbound_at=last_inbound_at,
        queued_at=None if held else tx.now,
        required_skills_json=json.dumps(skills),
        routing_rule=needs.rule,
        bot_id=None if bot is None else bot.id,
    )
    await tx.conversations.insert(created)
    await clocks.start(tx, routing.clocks, created, tx.now / US)
    announced = Conversation(
        id=ConversationId(created.id),
        contact_id=ContactId(contact_id),
        channel_id=channel_id,
        status=status,
        bot_id=created.bot_id,
        priority=needs.priority,
        skills=sorted(skills),
        subject=subject,
        language=needs.language,
        created_at=tx.now_dt,
    )  # (what created.model() gives, made straight: every new conversation comes here)
    await tx.emit("conversation.created", {"conversation": announced}, created.id)
    return created


async def reopen_record(tx: Tx, record: ConversationRecord) -> None:
    """Put a resolved conversation back in the queue (the record is changed to match)."""
    record.status = ConversationStatus.QUEUED.value
    record.assignee_id = None
    record.bot_id = None
    record.resolved_at = None
    record.queued_at = tx.now
    record.queue_announced = False
    await tx.conversations.update(
        record.id,
        status=record.status,
        assignee_id=None,
        bot_id=None,
        resolved_at=None,
        queued_at=tx.now,
        queue_announced=False,
    )
    # A survey not sent yet is not sent (gateway.domain.surveys): resolved again, it is.
    survey = await tx.surveys.of_conversation(record.id)
    if survey is not None and survey.status == "scheduled":
        await tx.surveys.update(survey.id, status="skipped", reason="reopened")
    await tx.emit("conversation.reopened", {"conversation": record.model()}, record.id)
