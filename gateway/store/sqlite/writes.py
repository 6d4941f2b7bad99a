"""Write operations of the SQLite backend. Each runs inside one transaction (see engine)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.base import AttachmentRecord
from gateway.store.sqlite import contacts, rows
from gateway.store.sqlite.engine import Tx
from gateway.store.sqlite.routing import RoutingState, classify_new, served
from kernel.envelope import InboundMessage, IngestResult, StatusUpdate
from kernel.errors import Invalid, NotFound
from kernel.ids import ContactId, ConversationId, MessageId, new_conversation_id, new_message_id
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
    Part,
    Reaction,
    text_of,
)

QUEUE_SCAN_LIMIT = 500


# --- reading inside a transaction ---------------------------------------------------------


def conversation(tx: Tx, conversation_id: str) -> Conversation:
    row = tx.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    return rows.conversation(row)


def message(tx: Tx, message_id: str) -> Message:
    row = tx.one("SELECT * FROM messages WHERE id = ?", (message_id,))
    if row is None:
        raise NotFound(f"message {message_id} not found", code="message_not_found")
    return rows.message(row)


def conv_event(tx: Tx, type_: str, conv: Conversation, **extra: Any) -> None:
    tx.emit(type_, {"conversation": conv, **extra}, conv.id)


def msg_event(tx: Tx, type_: str, msg: Message) -> None:
    tx.emit(type_, {"message": msg}, msg.conversation_id)


# --- inbound ------------------------------------------------------------------------------


def ingest(
    tx: Tx, msg: InboundMessage, channel_type: ChannelType, routing: RoutingState
) -> IngestResult:
    dup = tx.one(
        "SELECT * FROM messages WHERE channel_id = ? AND external_id = ?",
        (msg.channel_id, msg.external_id),
    )
    if dup is not None:
        status = tx.one("SELECT status FROM conversations WHERE id = ?", (dup["conversation_id"],))
        return IngestResult(
            message=rows.message(dup),
            conversation_id=dup["conversation_id"],
            conversation_status=status["status"] if status else ConversationStatus.RESOLVED,
            contact_id=ContactId(dup["contact_id"]),
            duplicate=True,
        )
    contact_id = contacts.resolve(tx, msg.channel_id, channel_type, msg.sender)
    conv = _thread(tx, msg, contact_id, channel_type, routing)

    inbound = msg.direction == Direction.INBOUND
    reply_to = None
    if msg.reply_to_external_id:
        r = tx.one(
            "SELECT id FROM messages WHERE channel_id = ? AND external_id = ?",
            (msg.channel_id, msg.reply_to_external_id),
        )
        reply_to = r["id"] if r else None
    # Built from what is written rather than read back: this is the hot path.
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
    )
    tx.execute(
        "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, "
        "author_type, author_id, external_id, parts, reply_to, created_at, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            stored.id,
            conv.id,
            conv.contact_id,
            msg.channel_id,
            msg.direction.value,
            stored.author.type.value,
            stored.author.id,
            msg.external_id,
            rows.parts_json(msg.parts),
            reply_to,
            tx.now,
            stored.status.value,
        ),
    )
    if inbound:
        # The provider's own time, when it gives one, starts reply windows (a webhook it
        # retried late must not stretch them); never later than now.
        wrote_at = tx.now if msg.sent_at is None else min(tx.now, rows.to_us(msg.sent_at))
        # awaiting_since: when the customer started waiting for an answer (reassign_after).
        tx.execute(
            "UPDATE conversations SET last_message_at = ?, last_inbound_at = ?, recipient_id = ?, "
            "awaiting_since = COALESCE(awaiting_since, ?) WHERE id = ?",
            (tx.now, wrote_at, msg.sender.external_id, tx.now, conv.id),
        )
    else:
        tx.execute(
            "UPDATE conversations SET last_message_at = ?, awaiting_since = NULL, "
            "first_response_at = COALESCE(first_response_at, ?) WHERE id = ?",
            (tx.now, tx.now, conv.id),
        )
    msg_event(tx, "message.received" if inbound else "message.sent", stored)
    return IngestResult(
        message=stored,
        conversation_id=conv.id,
        conversation_status=conv.status,
        contact_id=contact_id,
    )


@dataclass(frozen=True, slots=True)
class Thread:
    """The little of a conversation the ingest path needs."""

    id: ConversationId
    contact_id: str
    status: ConversationStatus


def _thread(
    tx: Tx,
    msg: InboundMessage,
    contact_id: str,
    channel_type: ChannelType,
    routing: RoutingState,
) -> Thread:
    """The conversation an inbound message joins (opening one if needed)."""
    refs = [r for r in [msg.reply_to_external_id, *msg.thread_refs] if r]
    row = None
    if msg.conversation_hint:
        row = tx.one(
            "SELECT * FROM conversations WHERE id = ? AND channel_id = ?",
            (msg.conversation_hint, msg.channel_id),
        )
    if row is None and refs:
        marks = ",".join("?" * len(refs))
        row = tx.one(
            "SELECT c.* FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            f"WHERE m.channel_id = ? AND m.external_id IN ({marks}) "
            "ORDER BY m.id DESC LIMIT 1",
            (msg.channel_id, *refs),
        )
    if row is not None:
        if row["status"] != ConversationStatus.RESOLVED:
            return Thread(row["id"], row["contact_id"], ConversationStatus(row["status"]))
        other = _open_for(tx, row["contact_id"], msg.channel_id)
        if other is not None:
            return other
        tx.execute(
            "UPDATE conversations SET status = 'queued', assignee_id = NULL, "
            "resolved_at = NULL, queued_at = ?, queue_announced = 0 WHERE id = ?",
            (tx.now, row["id"]),
        )
        reopened = conversation(tx, row["id"])
        conv_event(tx, "conversation.reopened", reopened)
        return Thread(reopened.id, reopened.contact_id, reopened.status)
    found = _open_for(tx, contact_id, msg.channel_id)
    if found is not None:
        return found
    needs = classify_new(
        tx,
        routing,
        channel_id=msg.channel_id,
        channel_type=channel_type.value,
        text=text_of(msg.parts) or (msg.subject or ""),
        declared_language=msg.language,
        contact_id=contact_id,
    )
    skills = dict(needs.requirements.skills)
    created = Conversation(
        id=new_conversation_id(),
        contact_id=ContactId(contact_id),
        channel_id=msg.channel_id,
        status=ConversationStatus.QUEUED,
        priority=needs.priority,
        skills=sorted(skills),
        subject=msg.subject,
        language=needs.language,
        created_at=tx.now_dt,
    )
    tx.execute(
        "INSERT INTO conversations (id, contact_id, channel_id, channel_type, recipient_id, "
        "status, priority, skills, required_skills, routing_rule, subject, language, "
        "created_at, queued_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            created.id,
            contact_id,
            msg.channel_id,
            channel_type.value,
            msg.sender.external_id,
            created.priority,
            json.dumps(created.skills),
            json.dumps(skills),
            needs.rule,
            created.subject,
            created.language,
            tx.now,
            tx.now,
        ),
    )
    conv_event(tx, "conversation.created", created)
    return Thread(created.id, contact_id, created.status)


def _open_for(tx: Tx, contact_id: str, channel_id: str) -> Thread | None:
    """The newest open conversation on a channel of a contact or anyone merged into it."""
    # One equality lookup per member of the merge group (almost always one): each is
    # served by the partial index conversations_one_open. A single IN/JOIN query lets the
    # planner walk every conversation of the channel instead.
    newest = None
    for member in contacts.group(tx, contact_id):
        row = tx.one(
            "SELECT id, contact_id, status FROM conversations WHERE contact_id = ? "
            "AND channel_id = ? AND status != 'resolved'",
            (member, channel_id),
        )
        if row is not None and (newest is None or row["id"] > newest["id"]):
            newest = row
    if newest is None:
        return None
    return Thread(newest["id"], newest["contact_id"], ConversationStatus(newest["status"]))


def update_status(tx: Tx, update: StatusUpdate) -> list[Message]:
    if update.external_ids:
        marks = ",".join("?" * len(update.external_ids))
        found = tx.execute(
            f"SELECT * FROM messages WHERE channel_id = ? AND external_id IN ({marks}) "
            "AND direction = 'outbound' ORDER BY id",
            (update.channel_id, *update.external_ids),
        ).fetchall()
    elif update.watermark is not None and update.recipient_external_id:
        found = tx.execute(
            "SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.channel_id = ? AND c.recipient_id = ? AND m.direction = 'outbound' "
            # compared with when it went out: a message still pending at the watermark
            # was not yet delivered or read, however early it was written
            "AND COALESCE(m.sent_at, m.created_at) <= ? "
            "AND m.status IN ('sent', 'delivered') ORDER BY m.id",
            (
                update.channel_id,
                update.recipient_external_id,
                rows.to_us(update.watermark),
            ),
        ).fetchall()
    else:
        return []
    changed: list[Message] = []
    for row in found:
        current = MessageStatus(row["status"])
        if update.status == MessageStatus.FAILED:
            if current == MessageStatus.FAILED:
                continue
            error = update.error or MessageError(
                code="provider_failed", reason="the channel reported a failure", retryable=False
            )
            tx.execute(
                "UPDATE messages SET status = 'failed', error = ?, next_attempt_at = NULL "
                "WHERE id = ?",
                (error.model_dump_json(), row["id"]),
            )
            updated = message(tx, row["id"])
            msg_event(tx, "message.failed", updated)
            changed.append(updated)
            continue
        if current == MessageStatus.FAILED or current not in STATUS_RANK:
            continue
        if STATUS_RANK.get(update.status, -1) <= STATUS_RANK[current]:
            continue
        tx.execute("UPDATE messages SET status = ? WHERE id = ?", (update.status.value, row["id"]))
        updated = message(tx, row["id"])
        msg_event(tx, f"message.{update.status.value}", updated)
        changed.append(updated)
    return changed


def react(
    tx: Tx,
    channel_id: str,
    message_external_id: str,
    reaction: Reaction | None,
    reactor: Author,
) -> Message | None:
    """Set (or with None, remove) one reactor's reaction on a message; one per reactor."""
    row = tx.one(
        "SELECT * FROM messages WHERE channel_id = ? AND external_id = ?",
        (channel_id, message_external_id),
    )
    if row is None:
        return None
    current = rows.message(row)
    kept = [r for r in current.reactions if r.by != reactor]
    if reaction is None and len(kept) == len(current.reactions):
        return current  # nothing to remove: no change, no event
    updated_list = [*kept, reaction] if reaction is not None else kept
    tx.execute(
        "UPDATE messages SET reactions = ? WHERE id = ?",
        (rows.reactions_json(updated_list) if updated_list else None, current.id),
    )
    updated = current.model_copy(update={"reactions": updated_list})
    tx.emit(
        "message.reacted",
        {
            "message": updated,
            "action": "react" if reaction is not None else "unreact",
            "by": reactor,
        },
        updated.conversation_id,
    )
    return updated


def keep_raw(tx: Tx, channel_id: str, kind: str, payload: str, reason: str) -> None:
    # Providers resend batches: the same payload is kept once.
    digest = hashlib.sha256(f"{kind}\0{payload}".encode()).hexdigest()
    tx.execute(
        "INSERT OR IGNORE INTO raw_events (channel_id, kind, reason, payload, created_at, "
        "digest) VALUES (?, ?, ?, ?, ?, ?)",
        (channel_id, kind, reason, payload, tx.now, digest),
    )


def add_attachment(tx: Tx, record: AttachmentRecord) -> None:
    tx.execute(
        "INSERT INTO attachments (id, channel_id, name, mime, size, sha256, path, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.channel_id,
            record.name,
            record.mime,
            record.size,
            record.sha256,
            record.path,
            tx.now,
        ),
    )


# --- outbound -----------------------------------------------------------------------------


def create_outbound(
    tx: Tx,
    conversation_id: ConversationId,
    author: Author,
    parts: Sequence[Part],
    reply_to: MessageId | None,
    idempotency_key: str | None,
    request_hash: str | None,
) -> tuple[Message, bool]:
    conv = conversation(tx, conversation_id)
    if idempotency_key is not None:
        row = tx.one(
            "SELECT * FROM messages WHERE conversation_id = ? AND idempotency_key = ?",
            (conversation_id, idempotency_key),
        )
        if row is not None:
            if row["request_hash"] != request_hash:
                raise Invalid(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            return rows.message(row), True
    if reply_to is not None:
        r = tx.one(
            "SELECT id FROM messages WHERE id = ? AND conversation_id = ?",
            (reply_to, conversation_id),
        )
        if r is None:
            raise Invalid(
                f"reply_to {reply_to} is not a message of this conversation",
                code="invalid_reply_to",
            )
    message_id = new_message_id()
    tx.execute(
        "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, "
        "author_type, author_id, parts, reply_to, created_at, status, idempotency_key, "
        "request_hash, next_attempt_at) "
        "VALUES (?, ?, ?, ?, 'outbound', ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
        (
            message_id,
            conversation_id,
            conv.contact_id,
            conv.channel_id,
            author.type.value,
            author.id,
            rows.parts_json(list(parts)),
            reply_to,
            tx.now,
            idempotency_key,
            request_hash,
            tx.now,
        ),
    )
    if author.type == AuthorType.AGENT:
        tx.execute(
            "UPDATE conversations SET last_message_at = ?, awaiting_since = NULL, "
            "first_response_at = COALESCE(first_response_at, ?) WHERE id = ?",
            (tx.now, tx.now, conversation_id),
        )
        if author.id is not None:
            served(tx, conv.contact_id, author.id)
    else:
        tx.execute(
            "UPDATE conversations SET last_message_at = ? WHERE id = ?",
            (tx.now, conversation_id),
        )
    return message(tx, message_id), False


def mark_sent(tx: Tx, message_id: MessageId, external_id: str | None) -> Message:
    current = message(tx, message_id)
    if current.status != MessageStatus.PENDING:
        return current
    tx.execute(
        "UPDATE messages SET status = 'sent', external_id = COALESCE(?, external_id), "
        "error = NULL, next_attempt_at = NULL, sent_at = ? WHERE id = ?",
        (external_id, tx.now, message_id),
    )
    sent = message(tx, message_id)
    msg_event(tx, "message.sent", sent)
    return sent


def mark_failed(tx: Tx, message_id: MessageId, error: MessageError) -> Message:
    current = message(tx, message_id)
    if current.status != MessageStatus.PENDING:
        return current
    tx.execute(
        "UPDATE messages SET status = 'failed', error = ?, next_attempt_at = NULL WHERE id = ?",
        (error.model_dump_json(), message_id),
    )
    failed = message(tx, message_id)
    msg_event(tx, "message.failed", failed)
    return failed


def defer_outbound(tx: Tx, message_id: MessageId, until_us: int, error: MessageError) -> None:
    tx.execute(
        "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?, error = ? "
        "WHERE id = ? AND status = 'pending'",
        (until_us, error.model_dump_json(), message_id),
    )


def release_held(tx: Tx, channel_id: str, now_us: int) -> int:
    cur = tx.execute(
        "UPDATE messages SET next_attempt_at = ? "
        "WHERE channel_id = ? AND status = 'pending' AND next_attempt_at > ?",
        (now_us, channel_id, now_us),
    )
    return int(cur.rowcount)


# --- tokens -------------------------------------------------------------------------------


def create_token(
    tx: Tx,
    token_id: str,
    name: str,
    token_hash: str,
    scopes: Sequence[str],
    agent_id: str | None,
) -> None:
    tx.execute(
        "INSERT INTO api_tokens (id, name, token_hash, scopes, agent_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (token_id, name, token_hash, rows.dumps(list(scopes)), agent_id, tx.now),
    )


def revoke_token(tx: Tx, token_id: str) -> None:
    cur = tx.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (tx.now, token_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"token {token_id} not found", code="token_not_found")
