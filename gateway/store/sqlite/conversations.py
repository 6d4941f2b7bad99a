"""Conversations: rows inside units of work, and the API's reads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.store import rows
from gateway.store.records import (
    ConversationFilter,
    ConversationRecord,
    OpenConversation,
    WindowCandidate,
    WindowFacts,
    from_us,
)
from gateway.store.rows import CONVERSATION_COLUMN, CONVERSATION_COLUMNS
from gateway.store.sqlite.reading import Reader, group, marks, page
from kernel.ids import ChannelId, ConversationId
from kernel.models import Conversation, Identity
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

_BY_ID = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
_QUEUED = (
    "SELECT "
    + ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
    + ", r.last_agent_id, r.last_served_at FROM conversations c "
    "INDEXED BY conversations_queue "
    "LEFT JOIN contacts k ON k.id = c.contact_id "
    "LEFT JOIN contacts r ON r.id = COALESCE(k.merged_into, k.id) "
    "WHERE c.status = 'queued' ORDER BY c.priority DESC, c.queued_at, c.id LIMIT ? OFFSET ?"
)
_ON_CHANNEL = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND channel_id = ?"
_INSERT = f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ({', '.join('?' * 24)})"
_UPDATES: dict[tuple[str, ...], str] = {}


def get(conn: sqlite3.Connection, conversation_id: str) -> ConversationRecord | None:
    row = conn.execute(_BY_ID, (conversation_id,)).fetchone()
    return None if row is None else rows.conversation(row)


class ConversationTx:
    __slots__ = ("tx",)

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def get(self, conversation_id: str) -> ConversationRecord | None:
        return get(self.tx.conn, conversation_id)

    async def on_channel(self, conversation_id: str, channel_id: str) -> ConversationRecord | None:
        row = self.tx.one(_ON_CHANNEL, (conversation_id, channel_id))
        return None if row is None else rows.conversation(row)

    async def holding(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> ConversationRecord | None:
        columns = ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
        row = self.tx.one(
            f"SELECT {columns} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            f"WHERE m.channel_id = ? AND m.external_id IN ({marks(external_ids)}) "
            "ORDER BY m.id DESC LIMIT 1",
            (channel_id, *external_ids),
        )
        return None if row is None else rows.conversation(row)

    async def open_of(self, contact_id: str, channel_id: str) -> OpenConversation | None:
        # The newest (e-mail may have several open); served by conversations_open.
        row = self.tx.one(
            "SELECT id, contact_id, status, awaiting_since, first_response_at "
            "FROM conversations WHERE contact_id = ? AND channel_id = ? AND status != 'resolved' "
            "ORDER BY id DESC LIMIT 1",
            (contact_id, channel_id),
        )
        if row is None:
            return None
        return OpenConversation(*row)

    async def insert(self, record: ConversationRecord) -> None:
        self.tx.execute(
            _INSERT,
            (
                record.id,
                record.contact_id,
                record.channel_id,
                record.channel_type,
                record.recipient_id,
                record.status,
                record.assignee_id,
                record.priority,
                record.skills_json,
                record.language,
                record.subject,
                record.created_at,
                record.first_response_at,
                record.resolved_at,
                record.last_message_at,
                record.last_inbound_at,
                record.queued_at,
                int(record.queue_announced),
                record.excluded_agents_json,
                record.required_skills_json,
                record.routing_rule,
                record.assigned_at,
                record.awaiting_since,
                record.bot_id,
            ),
        )

    async def update(self, conversation_id: str, **changes: Any) -> None:
        key = tuple(changes)
        sql = _UPDATES.get(key)
        if sql is None:
            sets, _ = rows.assignments(changes, CONVERSATION_COLUMN)
            sql = _UPDATES[key] = f"UPDATE conversations SET {sets} WHERE id = ?"
        self.tx.execute(sql, (*changes.values(), conversation_id))

    async def queued(self, limit: int, offset: int) -> list[ConversationRecord]:
        return [rows.conversation(r) for r in self.tx.execute(_QUEUED, (limit, offset))]

    async def awaiting_agent(self) -> list[ConversationRecord]:
        return [
            rows.conversation(r)
            for r in self.tx.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
                "INDEXED BY conversations_awaiting "
                "WHERE status = 'assigned' AND awaiting_since IS NOT NULL"
            ).fetchall()
        ]

    async def bot_waiting(self, bot_id: str, since: int) -> list[ConversationRecord]:
        return [
            rows.conversation(r)
            for r in self.tx.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations INDEXED BY conversations_bot "
                "WHERE status = 'bot' AND bot_id = ? AND awaiting_since <= ? "
                "ORDER BY awaiting_since",
                (bot_id, since),
            ).fetchall()
        ]

    async def assigned_to(self, agent_id: str) -> list[ConversationRecord]:
        return [
            rows.conversation(r)
            for r in self.tx.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
                "WHERE status = 'assigned' AND assignee_id = ?",
                (agent_id,),
            ).fetchall()
        ]

    async def loads(self) -> list[tuple[str, str, int]]:
        return [
            (r[0], r[1], r[2])
            for r in self.tx.execute(
                "SELECT assignee_id, channel_type, COUNT(*) FROM conversations "
                "INDEXED BY conversations_assignee WHERE status = 'assigned' "
                "GROUP BY assignee_id, channel_type"
            )
        ]

    async def by_start_key(self, key: str) -> str | None:
        row = self.tx.one("SELECT id FROM conversations WHERE start_key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_start_key(self, conversation_id: str, key: str) -> None:
        self.tx.execute(
            "UPDATE conversations SET start_key = ? WHERE id = ?", (key, conversation_id)
        )

    async def last_inbound(self, contact_ids: Sequence[str], channel_id: str) -> int | None:
        row = self.tx.one(
            "SELECT MAX(last_inbound_at) FROM conversations "
            f"WHERE contact_id IN ({marks(contact_ids)}) AND channel_id = ?",
            (*contact_ids, channel_id),
        )
        return None if row is None or row[0] is None else int(row[0])

    async def window_candidates(
        self,
        channel_types: Sequence[str],
        spans: Sequence[tuple[int, int]],
        now: int,
        limit: int,
    ) -> list[WindowCandidate]:
        columns = ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
        within = " OR ".join("c.last_inbound_at BETWEEN ? AND ?" for _ in spans)
        return [
            WindowCandidate(rows.conversation(tuple(r)[:-2]), r[-2], r[-1])
            for r in self.tx.execute(
                f"SELECT {columns}, c.window_warned_at, COALESCE(p.phone, k.phone) "
                "FROM conversations c LEFT JOIN contacts k ON k.id = c.contact_id "
                "LEFT JOIN contacts p ON p.id = k.merged_into "
                f"WHERE c.status != 'resolved' AND ({within}) "
                f"AND c.channel_type IN ({marks(channel_types)}) "
                "AND (c.window_warned_at IS NULL OR c.window_warned_at <= ?) "
                "ORDER BY c.last_inbound_at LIMIT ?",
                (*[t for span in spans for t in span], *channel_types, now, limit),
            ).fetchall()
        ]

    async def warn_window(self, conversation_id: str, closes_at: int) -> bool:
        done = self.tx.execute(
            "UPDATE conversations SET window_warned_at = ? WHERE id = ? "
            "AND (window_warned_at IS NULL OR window_warned_at != ?)",
            (closes_at, conversation_id, closes_at),
        )
        return done.rowcount == 1

    async def channel_types(self) -> set[str]:
        return {r[0] for r in self.tx.execute("SELECT DISTINCT channel_type FROM conversations")}

    async def handle_time(self, channel_type: str, sample: int) -> float | None:
        row = self.tx.one(
            "SELECT AVG(resolved_at - assigned_at) FROM (SELECT resolved_at, assigned_at "
            "FROM conversations WHERE status = 'resolved' AND channel_type = ? "
            "AND assigned_at IS NOT NULL AND resolved_at > assigned_at "
            "ORDER BY resolved_at DESC LIMIT ?)",
            (channel_type, sample),
        )
        return None if row is None or row[0] is None else float(row[0])


# --- reads --------------------------------------------------------------------------------


def _list(
    conn: sqlite3.Connection, f: ConversationFilter, after: str | None, limit: int
) -> Page[Conversation]:
    where, params = [], []
    if f.status:
        where.append("status = ?")
        params.append(f.status.value)
    if f.assignee_id:
        where.append("assignee_id = ?")
        params.append(f.assignee_id)
    if f.channel_id:
        where.append("channel_id = ?")
        params.append(f.channel_id)
    if f.contact_id:
        ids = group(conn, f.contact_id) or [f.contact_id]
        where.append(f"contact_id IN ({marks(ids)})")
        params.extend(ids)
    if after:
        where.append("id < ?")
        params.append(after)
    sql = f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    items = [rows.conversation(r).model() for r in conn.execute(sql, (*params, limit + 1))]
    return page(Conversation, items, limit)


def _sla(conn: sqlite3.Connection, conversation_id: str) -> str | None:
    row = conn.execute(
        "SELECT sla FROM conversation_clocks WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()
    return None if row is None else row[0]


def _slas(conn: sqlite3.Connection, ids: list[str]) -> dict[str, str]:
    found = conn.execute(
        "SELECT conversation_id, sla FROM conversation_clocks "
        f"WHERE conversation_id IN ({marks(ids)}) AND sla IS NOT NULL",
        ids,
    )
    return {row[0]: row[1] for row in found}


def identity_contact(conn: sqlite3.Connection, channel_id: str, external_id: str) -> str | None:
    row = conn.execute(
        "SELECT contact_id FROM identities WHERE channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    ).fetchone()
    return None if row is None else str(row[0])


def _open_for(conn: sqlite3.Connection, channel_id: str, external_id: str) -> str | None:
    contact_id = identity_contact(conn, channel_id, external_id)
    if contact_id is None:
        return None
    found = [
        row[0]
        for member in group(conn, contact_id)
        for row in conn.execute(
            "SELECT id FROM conversations WHERE contact_id = ? AND channel_id = ? "
            "AND status != 'resolved'",
            (member, channel_id),
        )
    ]
    return max(found) if found else None


def _recipient(conn: sqlite3.Connection, conversation_id: str) -> Identity | None:
    row = conn.execute(
        "SELECT i.* FROM conversations c JOIN identities i "
        "ON i.channel_id = c.channel_id AND i.external_id = c.recipient_id WHERE c.id = ?",
        (conversation_id,),
    ).fetchone()
    return None if row is None else rows.identity(row)


def _decisions(conn: sqlite3.Connection, conversation_id: str) -> list[dict[str, Any]]:
    return [
        {"created_at": from_us(r["created_at"]), **json.loads(r["explanation"])}
        for r in conn.execute(
            "SELECT * FROM routing_decisions WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
    ]


def _window_facts(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, WindowFacts]:
    if not ids:
        return {}
    return {
        r[0]: WindowFacts(r[1], r[2])
        for r in conn.execute(
            "SELECT c.id, c.last_inbound_at, COALESCE(p.phone, k.phone) FROM conversations c "
            "LEFT JOIN contacts k ON k.id = c.contact_id "
            "LEFT JOIN contacts p ON p.id = k.merged_into "
            f"WHERE c.id IN ({marks(ids)})",
            tuple(ids),
        )
    }


class ConversationReads:
    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def get(self, conversation_id: ConversationId) -> Conversation | None:
        found = await self._read(get, conversation_id)
        if found is None:
            return None
        return rows.with_sla(found.model(), await self._read(_sla, conversation_id))

    async def page(
        self, filters: ConversationFilter, cursor: str | None, limit: int
    ) -> Page[Conversation]:
        result: Page[Conversation] = await self._read(_list, filters, decode_cursor(cursor), limit)
        ids = [c.id for c in result.items]
        slas: dict[str, str] = await self._read(_slas, ids) if ids else {}
        if not slas:
            return result
        items = [rows.with_sla(c, slas.get(c.id)) for c in result.items]
        return Page[Conversation](items=items, next_cursor=result.next_cursor)

    async def open_for(self, channel_id: ChannelId, external_id: str) -> ConversationId | None:
        found: ConversationId | None = await self._read(_open_for, channel_id, external_id)
        return found

    async def recipient(self, conversation_id: ConversationId) -> Identity | None:
        found: Identity | None = await self._read(_recipient, conversation_id)
        return found

    async def window_facts(self, ids: Sequence[str]) -> dict[str, WindowFacts]:
        found: dict[str, WindowFacts] = await self._read(_window_facts, list(ids))
        return found

    async def decisions(self, conversation_id: ConversationId) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._read(_decisions, conversation_id)
        return found
