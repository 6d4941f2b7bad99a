"""Conversations and their messages."""

from __future__ import annotations

import hashlib
from typing import cast

from gateway.api.auth import MANAGE, WITH_BOT
from gateway.api.errors import Forbidden
from gateway.api.schemas import (
    Assign,
    ConversationQuery,
    Handover,
    PageQuery,
    QueueEntry,
    QueueList,
    QueueQuery,
    RoutingLog,
    SendMessage,
    StartConversation,
    StartedConversation,
    Transfer,
    Typing,
)
from gateway.api.spec import REPLAYED, Header, Operations, Req
from gateway.domain.outbox import Address
from gateway.store.records import ConversationFilter
from kernel.errors import Invalid, NotFound
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from kernel.models import Author, AuthorType, Conversation, ConversationStatus, Message
from kernel.pages import Page

TAG = "conversations"
operations = Operations()


async def _conversation(req: Req) -> Conversation:
    conv_id = ConversationId(req.param("id"))
    conv = await req.ctx.store.conversations.get(conv_id)
    if conv is None:
        raise NotFound(f"conversation {conv_id} not found", code="conversation_not_found")
    bot = req.principal.bot if req.principal is not None else None
    if bot is not None and (conv.status != ConversationStatus.BOT or conv.bot_id != bot):
        raise Forbidden(
            f"conversation {conv_id} is not held by bot {bot}", code="not_with_this_bot"
        )
    return conv


def _idempotency_key(req: Req) -> str | None:
    key = req.header("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Invalid("Idempotency-Key must be 1 to 255 characters", code="bad_idempotency_key")
    return key


def _author(req: Req, given: str | None) -> str | None:
    """Who writes: an agent token writes as its own agent; others name one (or none)."""
    principal = req.principal
    assert principal is not None
    if principal.bot is not None:
        return None  # a bot writes as itself
    if principal.agent_id is not None and not principal.is_admin:
        if given not in (None, principal.agent_id):
            raise Forbidden("an agent token sends as its own agent", code="not_your_agent")
        return principal.agent_id
    return given


@operations.add(
    "GET",
    "/v1/conversations",
    summary="List conversations, newest first",
    tag=TAG,
    query=ConversationQuery,
    response=Page[Conversation],
)
async def list_conversations(req: Req) -> Page[Conversation]:
    q = cast(ConversationQuery, req.query)
    filters = ConversationFilter(
        status=q.status,
        assignee_id=q.assignee_id,
        channel_id=q.channel_id,
        contact_id=q.contact_id,
    )
    found = await req.ctx.store.conversations.page(filters, q.cursor, q.limit)
    items = await req.ctx.commands.windows.show(found.items)
    return found.model_copy(update={"items": items})


@operations.add(
    "POST",
    "/v1/conversations",
    summary="Start a conversation: the business writes first",
    description="To a known contact (contact_id) or an address on the channel (to.email, "
    "to.phone, to.external_id; the contact is found or created as on inbound). Answers 201 "
    "with the conversation and its first message (pending); the delivery outcome arrives "
    "as message.* events. Refused at once, nothing stored, with 422 window_closed when the "
    "channel's reply window does not allow it (details name the window and what it would "
    "allow), and 409 conversation_open when the contact already has a conversation open "
    "on a chat channel. With an Idempotency-Key, a repeated request returns the first "
    "answer.",
    tag=TAG,
    body=StartConversation,
    response=StartedConversation,
    status=201,
    errors=(404, 409, 422),
    headers=(Header("Idempotency-Key", "Makes retries of this request safe (max 255 chars)."),),
)
async def start_conversation(req: Req) -> StartedConversation:
    body = cast(StartConversation, req.body)
    key = _idempotency_key(req)
    author = _author(req, body.agent_id)
    to = body.to
    started = await req.ctx.commands.start(
        ChannelId(body.channel_id),
        body.content(),
        contact_id=ContactId(body.contact_id) if body.contact_id is not None else None,
        to=Address(email=to.email, phone=to.phone, external_id=to.external_id)
        if to is not None
        else None,
        subject=body.subject,
        agent_id=AgentId(author) if author is not None else None,
        idempotency_key=key,
        request_hash=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
    )
    if started.replayed:
        req.request[REPLAYED] = True
    conversation = await req.ctx.commands.windows.one(started.conversation)
    return StartedConversation(conversation=conversation, message=started.message)


@operations.add(
    "GET",
    "/v1/conversations/{id}",
    summary="Get a conversation",
    tag=TAG,
    response=Conversation,
    errors=(404,),
    scopes=WITH_BOT,
)
async def get_conversation(req: Req) -> Conversation:
    return await req.ctx.commands.windows.one(await _conversation(req))


@operations.add(
    "GET",
    "/v1/conversations/{id}/messages",
    summary="List a conversation's messages, oldest first",
    tag=TAG,
    query=PageQuery,
    response=Page[Message],
    errors=(404,),
    scopes=WITH_BOT,
)
async def list_messages(req: Req) -> Page[Message]:
    q = cast(PageQuery, req.query)
    if req.principal is not None and req.principal.bot is not None:
        await _conversation(req)  # a bot reads only what it holds
    return await req.ctx.store.messages.page(ConversationId(req.param("id")), q.cursor, q.limit)


@operations.add(
    "POST",
    "/v1/conversations/{id}/messages",
    summary="Send a reply to the customer",
    description="Stores the message as pending and answers 202; the delivery outcome "
    "arrives as message.sent / message.failed events. With an Idempotency-Key, repeating "
    "the request returns the first message instead of sending twice.",
    tag=TAG,
    body=SendMessage,
    response=Message,
    status=202,
    errors=(404, 422),
    headers=(Header("Idempotency-Key", "Makes retries of this request safe (max 255 chars)."),),
    scopes=WITH_BOT,
)
async def send_message(req: Req) -> Message:
    body = cast(SendMessage, req.body)
    conv = await _conversation(req)
    key = _idempotency_key(req)
    author = _author(req, body.agent_id)
    if body.template_id is not None:
        parts = await req.ctx.commands.fill_template(
            conv,
            body.template_id,
            body.variables,
            agent_id=AgentId(author) if author is not None else None,
        )
    else:
        parts = body.content()
    message, replayed = await req.ctx.commands.send(
        conv,
        parts,
        agent_id=AgentId(author) if author is not None else None,
        reply_to=MessageId(body.reply_to) if body.reply_to else None,
        idempotency_key=key,
        request_hash=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
        bot_id=req.principal.bot if req.principal is not None else None,
    )
    if replayed:
        req.request[REPLAYED] = True
    return message


@operations.add(
    "GET",
    "/v1/messages/{id}",
    summary="Get one message (e.g. to follow its delivery status)",
    tag=TAG,
    response=Message,
    errors=(404,),
)
async def get_message(req: Req) -> Message:
    message = await req.ctx.store.messages.get(MessageId(req.param("id")))
    if message is None:
        raise NotFound(f"message {req.param('id')} not found", code="message_not_found")
    return message


@operations.add(
    "POST",
    "/v1/conversations/{id}/assign",
    summary="Assign to an agent",
    tag=TAG,
    body=Assign,
    response=Conversation,
    errors=(404, 409),
)
async def assign(req: Req) -> Conversation:
    body = cast(Assign, req.body)
    principal = req.principal
    assert principal is not None
    if body.force and not principal.is_admin:
        raise Forbidden("only admin tokens may force an assignment", code="force_needs_admin")
    changed = await req.ctx.commands.assign(
        ConversationId(req.param("id")), AgentId(body.agent_id), force=body.force
    )
    return await req.ctx.commands.windows.one(changed)


@operations.add(
    "POST",
    "/v1/conversations/{id}/transfer",
    summary="Transfer to another agent, or back to the queue with new skills",
    tag=TAG,
    body=Transfer,
    response=Conversation,
    errors=(404, 409),
)
async def transfer(req: Req) -> Conversation:
    body = cast(Transfer, req.body)
    principal = req.principal
    assert principal is not None
    if body.force and not principal.is_admin:
        raise Forbidden("only admin tokens may force a transfer", code="force_needs_admin")
    skills = body.skills
    changed = await req.ctx.commands.transfer(
        ConversationId(req.param("id")),
        agent_id=AgentId(body.agent_id) if body.agent_id is not None else None,
        skills=dict.fromkeys(skills, 1) if isinstance(skills, list) else dict(skills or {}),
        force=body.force,
    )
    return await req.ctx.commands.windows.one(changed)


@operations.add(
    "POST",
    "/v1/conversations/{id}/handover",
    summary="Hand a conversation over to the humans or to a bot",
    description="To humans: the bot's conversation goes to the queue (optionally needing "
    "`skills`, at `priority`) with everything said so far. To a bot: from the humans or "
    "from another bot (`bot_id`). Announced by conversation.handover. A bot's token hands "
    "over only the conversations its bot holds.",
    tag=TAG,
    body=Handover,
    response=Conversation,
    errors=(404, 409, 422),
    scopes=WITH_BOT,
)
async def handover(req: Req) -> Conversation:
    body = cast(Handover, req.body)
    principal = req.principal
    assert principal is not None
    if principal.bot is not None:
        by = Author(type=AuthorType.BOT, id=principal.bot)
    elif principal.agent_id is not None:
        by = Author(type=AuthorType.AGENT, id=principal.agent_id)
    else:
        by = Author(type=AuthorType.SYSTEM, id=principal.token_id)
    skills = body.skills
    return await req.ctx.commands.handover(
        ConversationId(req.param("id")),
        to=body.to,
        bot_id=body.bot_id,
        reason=body.reason,
        by=by,
        skills=dict.fromkeys(skills, 1) if isinstance(skills, list) else dict(skills or {}),
        priority=body.priority,
    )


@operations.add(
    "POST",
    "/v1/conversations/{id}/resolve",
    summary="Resolve",
    tag=TAG,
    response=Conversation,
    errors=(404, 409),
)
async def resolve(req: Req) -> Conversation:
    changed = await req.ctx.commands.resolve(ConversationId(req.param("id")))
    return await req.ctx.commands.windows.one(changed)


@operations.add(
    "POST",
    "/v1/conversations/{id}/reopen",
    summary="Reopen a resolved conversation (it is routed again)",
    tag=TAG,
    response=Conversation,
    errors=(404, 409),
)
async def reopen(req: Req) -> Conversation:
    changed = await req.ctx.commands.reopen(ConversationId(req.param("id")))
    return await req.ctx.commands.windows.one(changed)


@operations.add(
    "POST",
    "/v1/conversations/{id}/typing",
    summary="Show the customer that an agent is typing (where the channel can)",
    tag=TAG,
    body=Typing,
    status=204,
    errors=(404,),
)
async def typing(req: Req) -> None:
    body = cast(Typing, req.body)
    conv = await _conversation(req)
    await req.ctx.commands.typing(conv, body.state == "on")


@operations.add(
    "POST",
    "/v1/conversations/{id}/read",
    summary="The agent has read the conversation: the customer sees it (where the channel can)",
    tag=TAG,
    status=204,
    errors=(404,),
)
async def mark_read(req: Req) -> None:
    conv = await _conversation(req)
    await req.ctx.commands.mark_read(conv)


@operations.add(
    "GET",
    "/v1/conversations/{id}/routing",
    summary="Why the conversation went where it went",
    tag=TAG,
    scopes=MANAGE,
    response=RoutingLog,
    errors=(404,),
)
async def routing_log(req: Req) -> RoutingLog:
    conv = await _conversation(req)
    decisions = await req.ctx.store.conversations.decisions(conv.id)
    entry = None
    if conv.status == "queued":
        for item in await req.ctx.assignments.queue(None, 1000):
            if item["conversation"].id == conv.id:
                entry = QueueEntry(**item)
                break
    return RoutingLog(conversation_id=conv.id, decisions=decisions, queue=entry)


@operations.add(
    "GET",
    "/v1/queue",
    summary="Queued conversations in the order they will be served, with places and "
    "estimated waits",
    tag=TAG,
    query=QueueQuery,
    response=QueueList,
)
async def queue(req: Req) -> QueueList:
    q = cast(QueueQuery, req.query)
    channel = ChannelId(q.channel_id) if q.channel_id else None
    items = await req.ctx.assignments.queue(channel, q.limit)
    return QueueList(items=[QueueEntry(**i) for i in items])
