"""Messages the business sends: stored pending (idempotently, with an Idempotency-Key),
then sent or failed as the send path reports."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.protocols import Store
from gateway.store.transaction import Tx
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import ConversationId, MessageId, new_message_id
from kernel.models import (
    Author,
    AuthorType,
    Direction,
    Message,
    MessageError,
    MessageStatus,
    Part,
)


async def message(tx: Tx, message_id: str) -> Message:
    found = await tx.messages.get(message_id)
    if found is None:
        raise NotFound(f"message {message_id} not found", code="message_not_found")
    return found


async def create(
    tx: Tx,
    conversation_id: ConversationId,
    author: Author,
    parts: Sequence[Part],
    reply_to: MessageId | None,
    idempotency_key: str | None,
    request_hash: str | None,
) -> tuple[Message, bool]:
    """Store a message to send as pending; returns (message, replayed)."""
    conv = await tx.conversations.get(conversation_id)
    if conv is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    if await tx.erasure.erased_at(conv.contact_id) is not None:
        raise Conflict(
            f"the customer of conversation {conversation_id} was erased: nobody to write to",
            code="contact_erased",
        )
    if idempotency_key is not None:
        earlier = await tx.messages.by_idempotency_key(conversation_id, idempotency_key)
        if earlier is not None:
            if earlier.request_hash != request_hash:
                raise Invalid(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            return earlier.message, True
    if reply_to is not None and not await tx.messages.in_conversation(reply_to, conversation_id):
        raise Invalid(
            f"reply_to {reply_to} is not a message of this conversation",
            code="invalid_reply_to",
        )
    pending = Message(
        id=new_message_id(),
        conversation_id=conversation_id,
        channel_id=conv.channel_id,
        direction=Direction.OUTBOUND,
        author=author,
        parts=list(parts),
        reply_to=reply_to,
        created_at=tx.now_dt,
        status=MessageStatus.PENDING,
    )
    await tx.messages.insert(
        pending,
        conv.contact_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        due_at=tx.now,
    )
    if author.type == AuthorType.AGENT:
        await tx.conversations.update(
            conversation_id,
            last_message_at=tx.now,
            awaiting_since=None,
            first_response_at=conv.first_response_at
            if conv.first_response_at is not None
            else tx.now,
        )
        if author.id is not None:
            await tx.contacts.served(conv.contact_id, author.id, tx.now)
    elif author.type == AuthorType.BOT:
        # A bot's answer stops its clock (bots' timeout), not the humans' first response.
        await tx.conversations.update(conversation_id, last_message_at=tx.now, awaiting_since=None)
    else:
        await tx.conversations.update(conversation_id, last_message_at=tx.now)
    return await message(tx, pending.id), False


async def mark_sent(tx: Tx, message_id: MessageId, external_id: str | None) -> Message:
    current = await message(tx, message_id)
    if current.status != MessageStatus.PENDING:
        return current
    await tx.messages.set_sent(message_id, external_id, tx.now)
    sent = await message(tx, message_id)
    await tx.emit("message.sent", {"message": sent}, sent.conversation_id)
    return sent


async def mark_failed(tx: Tx, message_id: MessageId, error: MessageError) -> Message:
    current = await message(tx, message_id)
    if current.status != MessageStatus.PENDING:
        return current
    await tx.messages.set_status(message_id, MessageStatus.FAILED, error)
    failed = await message(tx, message_id)
    await tx.emit("message.failed", {"message": failed}, failed.conversation_id)
    return failed


class Outbox:
    """Pending outbound messages and their outcome, each call one unit of work."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        conversation_id: ConversationId,
        author: Author,
        parts: Sequence[Part],
        *,
        reply_to: MessageId | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[Message, bool]:
        """Store a message as pending. Returns (message, replayed)."""

        async def work(tx: Tx) -> tuple[Message, bool]:
            return await create(
                tx, conversation_id, author, parts, reply_to, idempotency_key, request_hash
            )

        return await self.store.transact(work)

    async def mark_sent(self, message_id: MessageId, external_id: str | None) -> Message:
        async def work(tx: Tx) -> Message:
            return await mark_sent(tx, message_id, external_id)

        return await self.store.transact(work)

    async def mark_failed(self, message_id: MessageId, error: MessageError) -> Message:
        async def work(tx: Tx) -> Message:
            return await mark_failed(tx, message_id, error)

        return await self.store.transact(work)
