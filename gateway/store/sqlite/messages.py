"""Messages: rows inside units of work, the API's and connectors' reads, and the queue of
pending outbound messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.store import rows
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
from gateway.store.sqlite import contacts, conversations
from gateway.store.sqlite.reading import Reader, Write, group, marks, page
from kernel.envelope import OutboundMessage
from kernel.errors import NotFound
from kernel.ids import ChannelId, ContactId, ConversationId, MessageId
from kernel.models import Identity, Message, MessageError, MessageStatus, Part, Reaction
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

THREAD_REFS_LIMIT = 30

_INSERT = (
    "INSERT INTO messages (id, conversation_id, contact_id, channel_id, direction, "
    "author_type, author_id, external_id, parts, reply_to, created_at, status, metadata, peer_id"
)
# The peer given, else the conversation's recipient now.
_PEER = "COALESCE(?, (SELECT recipient_id FROM conversations WHERE id = ?))"
# A message that arrived (most of them) and one to send.
_INSERT_RECEIVED = _INSERT + f") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_PEER})"
_INSERT_TO_SEND = (
    _INSERT + ", idempotency_key, request_hash, next_attempt_at) "
    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_PEER}, ?, ?, ?)"
)


def get(conn: sqlite3.Connection, message_id: str) -> Message | None:
    row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
    return None if row is None else rows.message(row)


def _stored(row: sqlite3.Row | None) -> StoredMessage | None:
    if row is None:
        return None
    return StoredMessage(rows.message(row), row["contact_id"], row["request_hash"])


class MessageTx:
    __slots__ = ("tx",)

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def by_external(self, channel_id: str, external_id: str) -> StoredMessage | None:
        return _stored(
            self.tx.one(
                "SELECT * FROM messages WHERE channel_id = ? AND external_id = ?",
                (channel_id, external_id),
            )
        )

    async def by_idempotency_key(self, conversation_id: str, key: str) -> StoredMessage | None:
        return _stored(
            self.tx.one(
                "SELECT * FROM messages WHERE conversation_id = ? AND idempotency_key = ?",
                (conversation_id, key),
            )
        )

    async def get(self, message_id: str) -> Message | None:
        return get(self.tx.conn, message_id)

    async def in_conversation(self, message_id: str, conversation_id: str) -> bool:
        row = self.tx.one(
            "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
            (message_id, conversation_id),
        )
        return row is not None

    async def asked(self, conversation_id: str) -> Asked | None:
        recent = self.tx.execute(
            "SELECT id, direction, parts FROM messages WHERE conversation_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (conversation_id, ASKED_WITHIN),
        ).fetchall()
        return asked_from([tuple(r) for r in recent])

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
        values = (
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
            # the unit's own time, as it is (most messages are written at it)
            tx.now if message.created_at is tx.now_dt else to_us(message.created_at),
            message.status.value,
            rows.metadata_json(message.metadata),
            peer_id,
            message.conversation_id,
        )
        if idempotency_key is None and request_hash is None and due_at is None:
            tx.execute(_INSERT_RECEIVED, values)
        else:
            tx.execute(_INSERT_TO_SEND, (*values, idempotency_key, request_hash, due_at))

    async def outbound_by_external(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> list[Message]:
        return [
            rows.message(r)
            for r in self.tx.execute(
                f"SELECT * FROM messages WHERE channel_id = ? AND external_id IN "
                f"({marks(external_ids)}) AND direction = 'outbound' ORDER BY id",
                (channel_id, *external_ids),
            ).fetchall()
        ]

    async def outbound_up_to(
        self, channel_id: str, recipient_id: str, watermark: int
    ) -> list[Message]:
        return [
            rows.message(r)
            for r in self.tx.execute(
                "SELECT m.* FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE c.channel_id = ? AND c.recipient_id = ? AND m.direction = 'outbound' "
                "AND COALESCE(m.sent_at, m.created_at) <= ? "
                "AND m.status IN ('sent', 'delivered') ORDER BY m.id",
                (channel_id, recipient_id, watermark),
            ).fetchall()
        ]

    async def set_status(
        self, message_id: str, status: MessageStatus, error: MessageError | None = None
    ) -> None:
        if status == MessageStatus.FAILED:
            self.tx.execute(
                "UPDATE messages SET status = 'failed', error = ?, next_attempt_at = NULL "
                "WHERE id = ?",
                (None if error is None else error.model_dump_json(), message_id),
            )
        else:
            self.tx.execute(
                "UPDATE messages SET status = ? WHERE id = ?", (status.value, message_id)
            )

    async def set_sent(self, message_id: str, external_id: str | None, at: int) -> None:
        self.tx.execute(
            "UPDATE messages SET status = 'sent', external_id = COALESCE(?, external_id), "
            "error = NULL, next_attempt_at = NULL, sent_at = ? WHERE id = ?",
            (external_id, at, message_id),
        )

    async def set_reactions(self, message_id: str, reactions: list[Reaction]) -> None:
        self.tx.execute(
            "UPDATE messages SET reactions = ? WHERE id = ?",
            (rows.reactions_json(reactions) if reactions else None, message_id),
        )

    async def set_parts(self, message_id: str, parts: Sequence[Part]) -> None:
        self.tx.execute(
            "UPDATE messages SET parts = ? WHERE id = ?", (rows.parts_json(list(parts)), message_id)
        )

    async def download_later(self, message_id: str, channel_id: str) -> None:
        self.tx.execute(
            "INSERT OR IGNORE INTO media_downloads (message_id, channel_id, next_at, created_at) "
            "VALUES (?, ?, ?, ?)",
            (message_id, channel_id, self.tx.now, self.tx.now),
        )

    async def download_again(self, message_id: str, attempts: int, at: int) -> None:
        self.tx.execute(
            "UPDATE media_downloads SET attempts = ?, next_at = ? WHERE message_id = ?",
            (attempts, at, message_id),
        )

    async def downloaded(self, message_id: str) -> None:
        self.tx.execute("DELETE FROM media_downloads WHERE message_id = ?", (message_id,))


class MediaDownloads:
    """Messages whose provider files are still to be fetched."""

    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def due(self, now: datetime, limit: int, hold_seconds: float) -> list[MediaJob]:
        now_us = to_us(now)
        held = now_us + int(hold_seconds * 1_000_000)

        async def work(tx: SqliteTx) -> list[MediaJob]:
            jobs = []
            for row in tx.execute(
                "SELECT message_id, attempts FROM media_downloads WHERE next_at <= ? "
                "ORDER BY next_at, message_id LIMIT ?",
                (now_us, limit),
            ).fetchall():
                message = get(tx.conn, row["message_id"])
                if message is None:
                    tx.execute(
                        "DELETE FROM media_downloads WHERE message_id = ?", (row["message_id"],)
                    )
                    continue
                tx.execute(
                    "UPDATE media_downloads SET next_at = ? WHERE message_id = ?",
                    (held, row["message_id"]),
                )
                jobs.append(MediaJob(message=message, attempts=row["attempts"]))
            return jobs

        found: list[MediaJob] = await self._write(work)
        return found

    async def next_due(self) -> datetime | None:
        value = await self._read(_next_download)
        return None if value is None else from_us(value)


def _next_download(conn: sqlite3.Connection) -> int | None:
    found = conn.execute("SELECT MIN(next_at) FROM media_downloads").fetchone()[0]
    return None if found is None else int(found)


# --- reads --------------------------------------------------------------------------------


def _list(
    conn: sqlite3.Connection, conversation_id: str, after: str | None, limit: int
) -> Page[Message]:
    items = [
        rows.message(r)
        for r in conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
            (conversation_id, after or "", limit + 1),
        )
    ]
    return page(Message, items, limit)


def _timeline(
    conn: sqlite3.Connection, contact_id: str, before: str | None, limit: int
) -> Page[Message]:
    ids = group(conn, contact_id)
    params: list[Any] = [*ids]
    sql = f"SELECT * FROM messages WHERE contact_id IN ({marks(ids)})"
    if before:
        sql += " AND id < ?"
        params.append(before)
    sql += " ORDER BY id DESC LIMIT ?"
    items = [rows.message(r) for r in conn.execute(sql, (*params, limit + 1))]
    return page(Message, items, limit)


def _history(
    conn: sqlite3.Connection,
    channel_id: str,
    external_id: str,
    before: str | None,
    after: str | None,
    limit: int,
) -> list[Message]:
    params: list[Any] = [channel_id, external_id]
    sql = "SELECT * FROM messages WHERE channel_id = ? AND peer_id = ?"
    if before:
        sql += " AND id < ?"
        params.append(before)
    if after:
        sql += " AND id > ?"
        params.append(after)
    # "after" pages forward from a point; otherwise take the newest before the point.
    sql += " ORDER BY id " + ("ASC" if after else "DESC") + " LIMIT ?"
    items = [rows.message(r) for r in conn.execute(sql, (*params, limit))]
    if not after:
        items.reverse()
    return items


def _known(conn: sqlite3.Connection, channel_id: str, external_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM messages WHERE channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    ).fetchone()
    return row is not None


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
        found: Page[Message] = await self._read(_list, conversation_id, after, limit)
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


# The phone of a conversation's contact (or of the contact it was merged into).
_PHONE = (
    "SELECT COALESCE(r.phone, k.phone) FROM contacts k "
    "LEFT JOIN contacts r ON r.id = k.merged_into WHERE k.id = ?"
)


def _due(conn: sqlite3.Connection, now_us: int, limit: int) -> list[OutboundJob]:
    jobs = []
    # A message waits while an earlier pending message of its conversation is not due yet,
    # so a retried reply is never overtaken by the next one.
    for m in conn.execute(
        "SELECT * FROM messages m WHERE m.status = 'pending' AND m.next_attempt_at <= ? "
        "AND NOT EXISTS (SELECT 1 FROM messages p WHERE p.conversation_id = m.conversation_id "
        "AND p.status = 'pending' AND p.id < m.id AND p.next_attempt_at > ?) "
        "ORDER BY m.id LIMIT ?",
        (now_us, now_us, limit),
    ).fetchall():
        conv = rows.conversation(
            conn.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                (m["conversation_id"],),
            ).fetchone()
        )
        # A reply goes to the identity it was written to (the recipient then).
        recipient = m["peer_id"] or conv.recipient_id
        ident = conn.execute(
            "SELECT * FROM identities WHERE channel_id = ? AND external_id = ?",
            (conv.channel_id, recipient),
        ).fetchone()
        reply_ext = None
        if m["reply_to"]:
            r = conn.execute(
                "SELECT external_id FROM messages WHERE id = ?", (m["reply_to"],)
            ).fetchone()
            reply_ext = r[0] if r else None
        refs = [
            r[0]
            for r in conn.execute(
                "SELECT external_id FROM messages WHERE conversation_id = ? AND id < ? "
                "AND external_id IS NOT NULL ORDER BY id DESC LIMIT ?",
                (m["conversation_id"], m["id"], THREAD_REFS_LIMIT),
            )
        ]
        refs.reverse()
        last_in = conn.execute(
            "SELECT metadata FROM messages WHERE conversation_id = ? AND id < ? "
            "AND direction = 'inbound' ORDER BY id DESC LIMIT 1",
            (m["conversation_id"], m["id"]),
        ).fetchone()
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
                    phone=conn.execute(_PHONE, (conv.contact_id,)).fetchone()[0]
                    if conv.channel_type in PHONE_CHANNELS
                    else None,
                    last_inbound_metadata=rows.metadata(last_in[0] if last_in else None),
                ),
                attempts=m["attempts"],
            )
        )
    return jobs


def _next_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM messages WHERE status = 'pending'"
    ).fetchone()
    return None if row[0] is None else int(row[0])


class OutboundQueue:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def due(self, now: datetime, limit: int) -> list[OutboundJob]:
        found: list[OutboundJob] = await self._read(_due, to_us(now), limit)
        return found

    async def next_due(self) -> datetime | None:
        value = await self._read(_next_due)
        return None if value is None else from_us(value)

    async def defer(self, message_id: MessageId, until: datetime, error: MessageError) -> None:
        params = (to_us(until), error.model_dump_json(), message_id)

        async def work(tx: SqliteTx) -> None:
            tx.execute(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?, error = ? "
                "WHERE id = ? AND status = 'pending'",
                params,
            )

        await self._write(work)

    async def release_held(self, channel_id: ChannelId, now: datetime) -> int:
        now_us = to_us(now)

        async def work(tx: SqliteTx) -> int:
            cur = tx.execute(
                "UPDATE messages SET next_attempt_at = ? "
                "WHERE channel_id = ? AND status = 'pending' AND next_attempt_at > ?",
                (now_us, channel_id, now_us),
            )
            return int(cur.rowcount)

        released: int = await self._write(work)
        return released
