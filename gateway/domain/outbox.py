"""Messages the business sends: stored pending (idempotently, with an Idempotency-Key),
then sent or failed as the send path reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.domain import clocks, contacts
from gateway.domain.state import RoutingState
from gateway.domain.threads import one_open_per_contact, open_for, open_new
from gateway.store.protocols import Store
from gateway.store.records import US, ContactRecord
from gateway.store.transaction import Tx
from kernel.envelope import Sender
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import (
    ChannelId,
    ContactId,
    ConversationId,
    MessageId,
    new_contact_id,
    new_message_id,
)
from kernel.models import (
    Author,
    AuthorType,
    ChannelType,
    Conversation,
    Direction,
    Message,
    MessageError,
    MessageStatus,
    Part,
    text_of,
)

# Raises kernel.errors.Invalid when the parts may not go out, given when the customer last
# wrote on the channel (None: never seen) and their phone (reply windows, templates).
WindowCheck = Callable[[int | None, str | None], None]


@dataclass(frozen=True)
class Address:
    """Where the business writes first: one of an e-mail address (email channels), a phone
    number in E.164 (Zalo, by ZNS) or the customer's id on the channel."""

    email: str | None = None
    phone: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Started:
    conversation: Conversation
    message: Message
    replayed: bool


async def message(tx: Tx, message_id: str) -> Message:
    found = await tx.messages.get(message_id)
    if found is None:
        raise NotFound(f"message {message_id} not found", code="message_not_found")
    return found


async def _phone(tx: Tx, contact_id: str) -> str | None:
    """The contact's phone (or that of the contact it was merged into)."""
    found = await tx.contacts.get(contact_id)
    if found is not None and found.merged_into is not None:
        found = await tx.contacts.get(found.merged_into) or found
    return None if found is None else found.phone


async def create(
    tx: Tx,
    conversation_id: ConversationId,
    author: Author,
    parts: Sequence[Part],
    reply_to: MessageId | None,
    idempotency_key: str | None,
    request_hash: str | None,
    check: WindowCheck | None = None,
) -> tuple[Message, bool]:
    """Store a message to send as pending; returns (message, replayed). ``check`` refuses
    what the reply window does not let out (a retried request gets its message anyway)."""
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
    if check is not None:
        check(conv.last_inbound_at, await _phone(tx, conv.contact_id))
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
        await clocks.answered(tx, conversation_id, tx.now / US)
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


async def _addressee(
    tx: Tx,
    channel_id: ChannelId,
    channel_type: ChannelType,
    contact_id: ContactId | None,
    to: Address | None,
) -> tuple[ContactId, str]:
    """The contact the business writes to and their id on the channel (found or created
    and linked as on inbound)."""
    if contact_id is not None:
        contact = await contacts.load(tx, contact_id)  # 404 contact_not_found
        contact_id = contact.id
        for identity in contact.identities:
            if identity.channel_id == channel_id:
                return contact_id, identity.external_id
        if channel_type == ChannelType.EMAIL and contact.email:
            return await _addressee(tx, channel_id, channel_type, None, Address(contact.email))
        if channel_type == ChannelType.ZALO and contact.phone:
            return contact_id, contact.phone  # ZNS only: no Zalo user id is known
        raise Invalid(
            f"contact {contact_id} has no identity on channel {channel_id}",
            code="no_identity",
        )
    assert to is not None
    if to.email is not None:
        if channel_type != ChannelType.EMAIL:
            raise Invalid(
                f"to.email is for email channels; {channel_id} is {channel_type.value}",
                code="unsupported_address",
            )
        sender = Sender(external_id=to.email, email=to.email, verified=True)
        return await contacts.resolve(tx, channel_id, channel_type, sender), to.email
    if to.phone is not None:
        if channel_type != ChannelType.ZALO:
            raise Invalid(
                f"to.phone is for Zalo channels (ZNS); {channel_id} is {channel_type.value}",
                code="unsupported_address",
            )
        return await _by_phone(tx, channel_id, to.phone)
    assert to.external_id is not None
    known = await tx.contacts.identity(channel_id, to.external_id)
    if known is not None:
        return ContactId(known.contact_id), to.external_id
    if channel_type == ChannelType.WEBCHAT:
        raise NotFound(
            f"no visitor {to.external_id[:64]!r} on channel {channel_id}",
            code="visitor_not_found",
        )
    if channel_type == ChannelType.EMAIL:
        raise Invalid("an email channel writes to to.email", code="unsupported_address")
    sender = Sender(external_id=to.external_id)
    return await contacts.resolve(tx, channel_id, channel_type, sender), to.external_id


async def _by_phone(tx: Tx, channel_id: ChannelId, phone: str) -> tuple[ContactId, str]:
    found = await tx.contacts.oldest_verified(email=None, phone=phone)
    if found is None:
        contact_id = new_contact_id()
        await tx.contacts.insert(
            ContactRecord(
                id=contact_id, display_name=None, phone=phone, email=None, created_at=tx.now
            )
        )
        await tx.emit("contact.created", {"contact": await contacts.load(tx, contact_id)})
        return contact_id, phone
    contact = await contacts.load(tx, found)
    for identity in contact.identities:
        if identity.channel_id == channel_id:
            return contact.id, identity.external_id
    return contact.id, phone


async def start(
    tx: Tx,
    routing: RoutingState,
    *,
    channel_id: ChannelId,
    channel_type: ChannelType,
    contact_id: ContactId | None,
    to: Address | None,
    author: Author,
    parts: Sequence[Part],
    subject: str | None,
    idempotency_key: str | None,
    request_hash: str | None,
    check: WindowCheck,
) -> Started:
    """The business starts a conversation: the contact found or created, the window
    checked, a new conversation (queued like any) and its first message, pending."""
    if idempotency_key is not None:
        earlier_id = await tx.conversations.by_start_key(idempotency_key)
        if earlier_id is not None:
            earlier = await tx.messages.by_idempotency_key(earlier_id, idempotency_key)
            record = await tx.conversations.get(earlier_id)
            assert earlier is not None and record is not None
            if earlier.request_hash != request_hash:
                raise Invalid(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            return Started(record.model(), earlier.message, True)
    contact_id, recipient_id = await _addressee(tx, channel_id, channel_type, contact_id, to)
    # On a chat channel a contact has one open conversation (what they write next joins
    # it); on e-mail each thread is its own conversation, so a start is a new thread.
    already = (
        await open_for(tx, contact_id, channel_id) if one_open_per_contact(channel_type) else None
    )
    if already is not None:
        raise Conflict(
            f"the contact already has conversation {already.id} open on {channel_id}: "
            "send to it (POST /v1/conversations/{id}/messages)",
            code="conversation_open",
            details={"conversation_id": already.id},
        )
    members = await tx.contacts.members(contact_id)
    last = await tx.conversations.last_inbound(members or [contact_id], channel_id)
    contact = await contacts.load(tx, contact_id)
    check(last, contact.phone)
    created = await open_new(
        tx,
        routing,
        contact_id=contact_id,
        channel_id=channel_id,
        channel_type=channel_type,
        recipient_id=recipient_id,
        subject=subject,
        text=text_of(list(parts)) or (subject or ""),
        language=None,
        last_inbound_at=last,
    )
    if idempotency_key is not None:
        await tx.conversations.set_start_key(created.id, idempotency_key)
    message, _ = await create(
        tx,
        ConversationId(created.id),
        author,
        parts,
        None,
        idempotency_key,
        request_hash,
    )
    record = await tx.conversations.get(created.id)
    assert record is not None
    return Started(record.model(), message, False)


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
        check: WindowCheck | None = None,
    ) -> tuple[Message, bool]:
        """Store a message as pending. Returns (message, replayed)."""

        async def work(tx: Tx) -> tuple[Message, bool]:
            return await create(
                tx, conversation_id, author, parts, reply_to, idempotency_key, request_hash, check
            )

        return await self.store.transact(work)

    async def start(
        self,
        routing: RoutingState,
        *,
        channel_id: ChannelId,
        channel_type: ChannelType,
        contact_id: ContactId | None,
        to: Address | None,
        author: Author,
        parts: Sequence[Part],
        subject: str | None,
        idempotency_key: str | None,
        request_hash: str | None,
        check: WindowCheck,
    ) -> Started:
        """Start a conversation from the business side (see :func:`start`)."""

        async def work(tx: Tx) -> Started:
            return await start(
                tx,
                routing,
                channel_id=channel_id,
                channel_type=channel_type,
                contact_id=contact_id,
                to=to,
                author=author,
                parts=parts,
                subject=subject,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                check=check,
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
