"""Messages: rows inside units of work, the API's and connectors' reads, and the queue of
pending outbound messages, shared by every replica through leases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store import rows
from gateway.store.postgres import contacts, conversations
from gateway.store.postgres.reading import Reader, Write, count, group, page
from gateway.store.records import (
    ASKED_WITHIN,
    Asked,
    MediaJob,
    OutboundJob,
    StoredMessage,
    asked_from,
    from_us,
    opt_dt,
    to_us,
)
from gateway.store.rows import CONVERSATION_COLUMNS, PHONE_CHANNELS
from kernel.envelope import OutboundMessage
from kernel.errors import NotFound
from kernel.ids import ChannelId, ContactId, ConversationId, MessageId
from kernel.models import Identity, Message, MessageError, MessageStatus, Part, Reaction
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

THREAD_REFS_LIMIT = 30

# The peer: the one given, else the conversation's recipient now.
_INSERT = (
    "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, "
    "author_type, author_id, external_id, parts, reply_to, created_at, status, "
    "idempotency_key, request_hash, next_attempt_at, metadata, peer_id) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
    "COALESCE($17::text, (SELECT recipient_id FROM conversations WHERE id = $2)))"
)


async def get(conn: asyncpg.Connection, message_id: str) -> Message | None:
    row = await conn.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    return None if row is None else rows.message(row)


def _stored(row: Any) -> StoredMessage | None:
    if row is None:
        return None
    return StoredMessage(rows.message(row), row["contact_id"], row["request_hash"])


class MessageTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def by_external(self, channel_id: str, external_id: str) -> StoredMessage | None:
        return _stored(
            await self.tx.fetchrow(
                "SELECT * FROM messages WHERE channel_id = $1 AND external_id = $2",
                channel_id,
                external_id,
            )
        )

    async def by_idempotency_key(self, conversation_id: str, key: str) -> StoredMessage | None:
        return _stored(
            await self.tx.fetchrow(
                "SELECT * FROM messages WHERE conversation_id = $1 AND idempotency_key = $2",
                conversation_id,
                key,
            )
        )

    async def get(self, message_id: str) -> Message | None:
        return await get(self.tx.conn, message_id)

    async def in_conversation(self, message_id: str, conversation_id: str) -> bool:
        found = await self.tx.fetchval(
            "SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2",
            message_id,
            conversation_id,
        )
        return found is not None

    async def asked(self, conversation_id: str) -> Asked | None:
        # Ordered by the whole index (conversation_id, id): with a prepared statement's
        # generic plan, "ORDER BY id" alone may walk the primary key backwards through
        # every conversation's messages to find this one's newest.
        recent = await self.tx.fetch(
            "SELECT id, direction, parts::text FROM messages WHERE conversation_id = $1 "
            "ORDER BY conversation_id DESC, id DESC LIMIT $2",
            conversation_id,
            ASKED_WITHIN,
        )
        return asked_from([(r[0], r[1], r[2]) for r in recent])

    async def insert(
        self,
        message: Message,
        contact_id: str,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        due_at: int | None = None,
        peer_id: str | None = None,
    ) -> None:
        tx = self.tx
        await tx.execute(
            _INSERT,
            message.id,
            message.conversation_id,
            contact_id,
            message.channel_id,
            message.direction.value,
            message.author.type.value,
            message.author.id,
            message.external_id,
            rows.parts_json(message.parts),
            message.reply_to,
            tx.now if message.created_at is tx.now_dt else to_us(message.created_at),
            message.status.value,
            idempotency_key,
            request_hash,
            due_at,
            rows.metadata_json(message.metadata),
            peer_id,
        )

    async def outbound_by_external(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> list[Message]:
        return [
            rows.message(r)
            for r in await self.tx.fetch(
                "SELECT * FROM messages WHERE channel_id = $1 AND external_id = ANY($2::text[]) "
                "AND direction = 'outbound' ORDER BY id",
                channel_id,
                list(external_ids),
            )
        ]

    async def outbound_up_to(
        self, channel_id: str, recipient_id: str, watermark: int
    ) -> list[Message]:
        return [
            rows.message(r)
            for r in await self.tx.fetch(
                "SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE c.channel_id = $1 AND c.recipient_id = $2 AND m.direction = 'outbound' "
                "AND COALESCE(m.sent_at, m.created_at) <= $3 "
                "AND m.status IN ('sent', 'delivered') ORDER BY m.id",
                channel_id,
                recipient_id,
                watermark,
            )
        ]

    async def set_status(
        self, message_id: str, status: MessageStatus, error: MessageError | None = None
    ) -> None:
        if status == MessageStatus.FAILED:
            await self.tx.execute(
                "UPDATE messages SET status = 'failed', error = $1, next_attempt_at = NULL, "
                "lease_owner = NULL, lease_until = NULL WHERE id = $2",
                None if error is None else error.model_dump_json(),
                message_id,
            )
        else:
            await self.tx.execute(
                "UPDATE messages SET status = $1 WHERE id = $2", status.value, message_id
            )

    async def set_sent(self, message_id: str, external_id: str | None, at: int) -> None:
        await self.tx.execute(
            "UPDATE messages SET status = 'sent', external_id = COALESCE($1, external_id), "
            "error = NULL, next_attempt_at = NULL, sent_at = $2, lease_owner = NULL, "
            "lease_until = NULL WHERE id = $3",
            external_id,
            at,
            message_id,
        )

    async def set_reactions(self, message_id: str, reactions: list[Reaction]) -> None:
        await self.tx.execute(
            "UPDATE messages SET reactions = $1 WHERE id = $2",
            rows.reactions_json(reactions) if reactions else None,
            message_id,
        )

    async def set_parts(self, message_id: str, parts: Sequence[Part]) -> None:
        await self.tx.execute(
            "UPDATE messages SET parts = $1 WHERE id = $2", rows.parts_json(list(parts)), message_id
        )

    async def download_later(self, message_id: str, channel_id: str) -> None:
        await self.tx.execute(
            "INSERT INTO media_downloads (message_id, channel_id, next_at, created_at) "
            "VALUES ($1, $2, $3, $3) ON CONFLICT (message_id) DO NOTHING",
            message_id,
            channel_id,
            self.tx.now,
        )

    async def download_again(self, message_id: str, attempts: int, at: int) -> None:
        await self.tx.execute(
            "UPDATE media_downloads SET attempts = $1, next_at = $2 WHERE message_id = $3",
            attempts,
            at,
            message_id,
        )

    async def downloaded(self, message_id: str) -> None:
        await self.tx.execute("DELETE FROM media_downloads WHERE message_id = $1", message_id)


# Due jobs, held for a while by the process that takes them (replicas share the table).
_CLAIM_DOWNLOADS = (
    "UPDATE media_downloads SET next_at = $3 WHERE message_id IN ("
    " SELECT message_id FROM media_downloads WHERE next_at <= $1"
    " ORDER BY next_at, message_id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ") RETURNING message_id, attempts"
)


async def _claim_downloads(
    conn: asyncpg.Connection, now_us: int, limit: int, held_us: int
) -> list[MediaJob]:
    jobs = []
    async with conn.transaction():
        claimed = await conn.fetch(_CLAIM_DOWNLOADS, now_us, limit, held_us)
        for row in sorted(claimed, key=lambda r: str(r["message_id"])):
            message = await get(conn, row["message_id"])
            if message is None:
                await conn.execute(
                    "DELETE FROM media_downloads WHERE message_id = $1", row["message_id"]
                )
                continue
            jobs.append(MediaJob(message=message, attempts=row["attempts"]))
    return jobs


async def _next_download(conn: asyncpg.Connection) -> int | None:
    found = await conn.fetchval("SELECT MIN(next_at) FROM media_downloads")
    return None if found is None else int(found)


class MediaDownloads:
    """Messages whose provider files are still to be fetched, shared by every replica."""

    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def due(self, now: datetime, limit: int, hold_seconds: float) -> list[MediaJob]:
        now_us = to_us(now)
        found: list[MediaJob] = await self._read(
            _claim_downloads, now_us, limit, now_us + int(hold_seconds * 1_000_000)
        )
        return found

    async def next_due(self) -> datetime | None:
        value = await self._read(_next_download)
        return None if value is None else from_us(value)


# --- reads --------------------------------------------------------------------------------


async def _page(
    conn: asyncpg.Connection, conversation_id: str, after: str | None, limit: int
) -> Page[Message]:
    items = [
        rows.message(r)
        for r in await conn.fetch(
            "SELECT * FROM messages WHERE conversation_id = $1 AND id > $2 "
            "ORDER BY conversation_id, id LIMIT $3",
            conversation_id,
            after or "",
            limit + 1,
        )
    ]
    return page(Message, items, limit)


async def _timeline(
    conn: asyncpg.Connection, contact_id: str, before: str | None, limit: int
) -> Page[Message]:
    ids = await group(conn, contact_id)
    if before:
        found = await conn.fetch(
            "SELECT * FROM messages WHERE contact_id = ANY($1::text[]) AND id < $2 "
            "ORDER BY id DESC LIMIT $3",
            ids,
            before,
            limit + 1,
        )
    else:
        found = await conn.fetch(
            "SELECT * FROM messages WHERE contact_id = ANY($1::text[]) ORDER BY id DESC LIMIT $2",
            ids,
            limit + 1,
        )
    return page(Message, [rows.message(r) for r in found], limit)


async def _history(
    conn: asyncpg.Connection,
    channel_id: str,
    external_id: str,
    before: str | None,
    after: str | None,
    limit: int,
) -> list[Message]:
    params: list[Any] = [channel_id, external_id]
    sql = "SELECT * FROM messages WHERE channel_id = $1 AND peer_id = $2"
    if before:
        params.append(before)
        sql += f" AND id < ${len(params)}"
    if after:
        params.append(after)
        sql += f" AND id > ${len(params)}"
    # "after" pages forward from a point; otherwise take the newest before the point.
    params.append(limit)
    way = "ASC" if after else "DESC"  # by the whole index (channel_id, peer_id, id)
    sql += f" ORDER BY channel_id {way}, peer_id {way}, id {way} LIMIT ${len(params)}"
    items = [rows.message(r) for r in await conn.fetch(sql, *params)]
    if not after:
        items.reverse()
    return items


async def _known(conn: asyncpg.Connection, channel_id: str, external_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM messages WHERE channel_id = $1 AND external_id = $2",
        channel_id,
        external_id,
    )
    return found is not None


class MessageReads:
    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def get(self, message_id: MessageId) -> Message | None:
        found: Message | None = await self._read(get, message_id)
        return found

    async def page(
        self, conversation_id: ConversationId, cursor: str | None, limit: int
    ) -> Page[Message]:
        after = decode_cursor(cursor)
        if await self._read(conversations.get, conversation_id) is None:
            raise NotFound(
                f"conversation {conversation_id} not found", code="conversation_not_found"
            )
        found: Page[Message] = await self._read(_page, conversation_id, after, limit)
        return found

    async def timeline(
        self, contact_id: ContactId, cursor: str | None, limit: int
    ) -> Page[Message]:
        before = decode_cursor(cursor)
        if await self._read(contacts.load, contact_id) is None:
            raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
        found: Page[Message] = await self._read(_timeline, contact_id, before, limit)
        return found

    async def history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None,
        after: MessageId | None,
        limit: int,
    ) -> list[Message]:
        found: list[Message] = await self._read(
            _history, channel_id, external_id, before, after, limit
        )
        return found

    async def known(self, channel_id: ChannelId, external_id: str) -> bool:
        found: bool = await self._read(_known, channel_id, external_id)
        return found


# --- the outbound queue -------------------------------------------------------------------

# Due messages, claimed for a while by the replica that will send them. One waits while
# an earlier pending message of its conversation is not due yet or is being sent by
# another replica: replies never overtake each other.
# The phone of a conversation's contact (or of the contact it was merged into).
_PHONE = (
    "SELECT COALESCE(r.phone, k.phone) FROM contacts k "
    "LEFT JOIN contacts r ON r.id = k.merged_into WHERE k.id = $1"
)
_CLAIM = (
    "UPDATE messages SET lease_owner = $3, lease_until = $4 WHERE id IN ("
    " SELECT m.id FROM messages m WHERE m.status = 'pending' AND m.next_attempt_at <= $1"
    " AND (m.lease_until IS NULL OR m.lease_until < $1 OR m.lease_owner = $3)"
    " AND NOT EXISTS (SELECT 1 FROM messages p WHERE p.conversation_id = m.conversation_id"
    "  AND p.status = 'pending' AND p.id < m.id AND (p.next_attempt_at > $1"
    "  OR (p.lease_until >= $1 AND p.lease_owner <> $3)))"
    " ORDER BY m.id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ") RETURNING id"
)


async def _jobs(conn: asyncpg.Connection, ids: list[str]) -> list[OutboundJob]:
    jobs = []
    for m in await conn.fetch("SELECT * FROM messages WHERE id = ANY($1::text[]) ORDER BY id", ids):
        conv = rows.conversation(
            await conn.fetchrow(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1",
                m["conversation_id"],
            )
        )
        # A reply goes to the identity it was written to (the recipient then).
        recipient = m["peer_id"] or conv.recipient_id
        ident = await conn.fetchrow(
            "SELECT * FROM identities WHERE channel_id = $1 AND external_id = $2",
            conv.channel_id,
            recipient,
        )
        reply_ext = None
        if m["reply_to"]:
            reply_ext = await conn.fetchval(
                "SELECT external_id FROM messages WHERE id = $1", m["reply_to"]
            )
        refs = [
            r[0]
            for r in await conn.fetch(
                "SELECT external_id FROM messages WHERE conversation_id = $1 AND id < $2 "
                "AND external_id IS NOT NULL ORDER BY conversation_id DESC, id DESC LIMIT $3",
                m["conversation_id"],
                m["id"],
                THREAD_REFS_LIMIT,
            )
        ]
        refs.reverse()
        last_in = await conn.fetchval(
            "SELECT metadata FROM messages WHERE conversation_id = $1 AND id < $2 "
            "AND direction = 'inbound' ORDER BY conversation_id DESC, id DESC LIMIT 1",
            m["conversation_id"],
            m["id"],
        )
        jobs.append(
            OutboundJob(
                outbound=OutboundMessage(
                    message=rows.message(m),
                    conversation=conv.model(),
                    recipient=rows.identity(ident)
                    if ident is not None
                    else Identity(
                        channel_id=ChannelId(conv.channel_id),
                        channel_type=conv.channel_type,
                        external_id=recipient,
                    ),
                    reply_to_external_id=reply_ext,
                    thread_external_ids=refs,
                    last_inbound_at=opt_dt(conv.last_inbound_at),
                    phone=await conn.fetchval(_PHONE, conv.contact_id)
                    if conv.channel_type in PHONE_CHANNELS
                    else None,
                    last_inbound_metadata=rows.metadata(last_in),
                ),
                attempts=m["attempts"],
            )
        )
    return jobs


async def _claim(
    conn: asyncpg.Connection, now_us: int, limit: int, owner: str, until_us: int
) -> list[OutboundJob]:
    ids = [r[0] for r in await conn.fetch(_CLAIM, now_us, limit, owner, until_us)]
    return await _jobs(conn, ids) if ids else []


async def _next_due(conn: asyncpg.Connection) -> int | None:
    found = await conn.fetchval(
        "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at))) "
        "FROM messages WHERE status = 'pending'"
    )
    return None if found is None else int(found)


class OutboundQueue:
    def __init__(self, reader: Reader, write: Write, owner: str, lease_seconds: float) -> None:
        self._read = reader
        self._write = write
        self._owner = owner
        self._lease_us = int(lease_seconds * 1_000_000)

    async def due(self, now: datetime, limit: int) -> list[OutboundJob]:
        now_us = to_us(now)
        found: list[OutboundJob] = await self._read(
            _claim, now_us, limit, self._owner, now_us + self._lease_us
        )
        return found

    async def next_due(self) -> datetime | None:
        value = await self._read(_next_due)
        return None if value is None else from_us(value)

    async def defer(self, message_id: MessageId, until: datetime, error: MessageError) -> None:
        args = (to_us(until), error.model_dump_json(), message_id)

        async def work(tx: PgTx) -> None:
            await tx.execute(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $1, error = $2, "
                "lease_owner = NULL, lease_until = NULL WHERE id = $3 AND status = 'pending'",
                *args,
            )

        await self._write(work)

    async def release_held(self, channel_id: ChannelId, now: datetime) -> int:
        now_us = to_us(now)

        async def work(tx: PgTx) -> int:
            return count(
                await tx.execute(
                    "UPDATE messages SET next_attempt_at = $1 "
                    "WHERE channel_id = $2 AND status = 'pending' AND next_attempt_at > $1",
                    now_us,
                    channel_id,
                )
            )

        released: int = await self._write(work)
        return released
