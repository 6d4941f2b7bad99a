"""Conversations: rows inside units of work, and the API's reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store import rows
from gateway.store.postgres.reading import Reader, group, page, updates
from gateway.store.records import (
    ConversationFilter,
    ConversationRecord,
    OpenConversation,
    WindowCandidate,
    WindowFacts,
    from_us,
)
from gateway.store.rows import CONVERSATION_COLUMN, CONVERSATION_COLUMNS
from kernel.ids import ChannelId, ConversationId
from kernel.models import Conversation, Identity
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

_C = ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
_BY_ID = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
_ON_CHANNEL = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND channel_id = $2"
_HOLDING = (
    f"SELECT {_C} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
    "WHERE m.channel_id = $1 AND m.external_id = ANY($2::text[]) ORDER BY m.id DESC LIMIT 1"
)
_OPEN_OF = (
    "SELECT id, contact_id, status, awaiting_since, first_response_at FROM conversations "
    "WHERE contact_id = $1 AND channel_id = $2 AND status <> 'resolved' ORDER BY id DESC LIMIT 1"
)
_INSERT = (
    f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, 25))})"
)
_WINDOW_CANDIDATES = (
    f"SELECT {_C}, c.window_warned_at, COALESCE(p.phone, k.phone) "
    "FROM conversations c LEFT JOIN contacts k ON k.id = c.contact_id "
    "LEFT JOIN contacts p ON p.id = k.merged_into "
    "WHERE c.status <> 'resolved' AND EXISTS (SELECT 1 FROM unnest($1::bigint[], "
    "$2::bigint[]) AS s(lo, hi) WHERE c.last_inbound_at BETWEEN to_timestamp(s.lo / 1e6) "
    "AND to_timestamp(s.hi / 1e6)) "
    "AND c.channel_type = ANY($3::text[]) "
    "AND (c.window_warned_at IS NULL OR c.window_warned_at <= $4) "
    "ORDER BY c.last_inbound_at LIMIT $5"
)
_QUEUED = (
    f"SELECT {_C}, r.last_agent_id, r.last_served_at FROM conversations c "
    "LEFT JOIN contacts k ON k.id = c.contact_id "
    "LEFT JOIN contacts r ON r.id = COALESCE(k.merged_into, k.id) "
    "WHERE c.status = 'queued' ORDER BY c.priority DESC, c.queued_at, c.id LIMIT $1 OFFSET $2"
)
_AWAITING = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE status = 'assigned' AND awaiting_since IS NOT NULL"
)
_ASSIGNED_TO = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE status = 'assigned' AND assignee_id = $1"
)
_BOT_WAITING = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE status = 'bot' AND bot_id = $1 AND awaiting_since <= $2 ORDER BY awaiting_since"
)
_LOADS = (
    "SELECT assignee_id, channel_type, COUNT(*) FROM conversations "
    "WHERE status = 'assigned' GROUP BY assignee_id, channel_type"
)
_HANDLE_TIME = (
    "SELECT AVG(resolved_at - assigned_at) FROM (SELECT resolved_at, assigned_at "
    "FROM conversations WHERE status = 'resolved' AND channel_type = $1 "
    "AND assigned_at IS NOT NULL AND resolved_at > assigned_at "
    "ORDER BY resolved_at DESC LIMIT $2) AS recent"
)
_UPDATES: dict[tuple[str, ...], str] = {}


async def get(conn: asyncpg.Connection, conversation_id: str) -> ConversationRecord | None:
    row = await conn.fetchrow(_BY_ID, conversation_id)
    return None if row is None else rows.conversation(row)


async def _sla(conn: asyncpg.Connection, conversation_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT sla FROM conversation_clocks WHERE conversation_id = $1", conversation_id
    )
    return found


async def _slas(conn: asyncpg.Connection, ids: list[str]) -> dict[str, str]:
    found = await conn.fetch(
        "SELECT conversation_id, sla FROM conversation_clocks "
        "WHERE conversation_id = ANY($1::text[]) AND sla IS NOT NULL",
        ids,
    )
    return {row[0]: row[1] for row in found}


class ConversationTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def get(self, conversation_id: str) -> ConversationRecord | None:
        return await get(self.tx.conn, conversation_id)

    async def on_channel(self, conversation_id: str, channel_id: str) -> ConversationRecord | None:
        row = await self.tx.fetchrow(_ON_CHANNEL, conversation_id, channel_id)
        return None if row is None else rows.conversation(row)

    async def holding(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> ConversationRecord | None:
        row = await self.tx.fetchrow(_HOLDING, channel_id, list(external_ids))
        return None if row is None else rows.conversation(row)

    async def open_of(self, contact_id: str, channel_id: str) -> OpenConversation | None:
        row = await self.tx.fetchrow(_OPEN_OF, contact_id, channel_id)
        return None if row is None else OpenConversation(*row)

    async def insert(self, record: ConversationRecord) -> None:
        await self.tx.execute(
            _INSERT,
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
            bool(record.queue_announced),
            record.excluded_agents_json,
            record.required_skills_json,
            record.routing_rule,
            record.assigned_at,
            record.awaiting_since,
            record.bot_id,
        )

    async def update(self, conversation_id: str, **changes: Any) -> None:
        key = tuple(changes)
        sql = _UPDATES.get(key)
        if sql is None:
            sql = _UPDATES[key] = (
                f"UPDATE conversations SET {updates(key, CONVERSATION_COLUMN)} "
                f"WHERE id = ${len(key) + 1}"
            )
        await self.tx.execute(sql, *changes.values(), conversation_id)

    async def queued(self, limit: int, offset: int) -> list[ConversationRecord]:
        return [rows.conversation(r) for r in await self.tx.fetch(_QUEUED, limit, offset)]

    async def awaiting_agent(self) -> list[ConversationRecord]:
        return [rows.conversation(r) for r in await self.tx.fetch(_AWAITING)]

    async def bot_waiting(self, bot_id: str, since: int) -> list[ConversationRecord]:
        return [rows.conversation(r) for r in await self.tx.fetch(_BOT_WAITING, bot_id, since)]

    async def assigned_to(self, agent_id: str) -> list[ConversationRecord]:
        return [rows.conversation(r) for r in await self.tx.fetch(_ASSIGNED_TO, agent_id)]

    async def loads(self) -> list[tuple[str, str, int]]:
        return [(r[0], r[1], r[2]) for r in await self.tx.fetch(_LOADS)]

    async def by_start_key(self, key: str) -> str | None:
        found = await self.tx.fetchval("SELECT id FROM conversations WHERE start_key = $1", key)
        return None if found is None else str(found)

    async def set_start_key(self, conversation_id: str, key: str) -> None:
        await self.tx.execute(
            "UPDATE conversations SET start_key = $1 WHERE id = $2", key, conversation_id
        )

    async def last_inbound(self, contact_ids: Sequence[str], channel_id: str) -> int | None:
        found = await self.tx.fetchval(
            "SELECT MAX(last_inbound_at) FROM conversations "
            "WHERE contact_id = ANY($1::text[]) AND channel_id = $2",
            list(contact_ids),
            channel_id,
        )
        return None if found is None else int(found)

    async def window_candidates(
        self,
        channel_types: Sequence[str],
        spans: Sequence[tuple[int, int]],
        now: int,
        limit: int,
    ) -> list[WindowCandidate]:
        return [
            WindowCandidate(rows.conversation(tuple(r)[:-2]), r[-2], r[-1])
            for r in await self.tx.fetch(
                _WINDOW_CANDIDATES,
                [lo for lo, _ in spans],
                [hi for _, hi in spans],
                list(channel_types),
                now,
                limit,
            )
        ]

    async def warn_window(self, conversation_id: str, closes_at: int) -> bool:
        done = await self.tx.execute(
            "UPDATE conversations SET window_warned_at = $1 WHERE id = $2 "
            "AND window_warned_at IS DISTINCT FROM $1",
            closes_at,
            conversation_id,
        )
        return done == "UPDATE 1"

    async def channel_types(self) -> set[str]:
        found = await self.tx.fetch("SELECT DISTINCT channel_type FROM conversations")
        return {r[0] for r in found}

    async def handle_time(self, channel_type: str, sample: int) -> float | None:
        found = await self.tx.fetchval(_HANDLE_TIME, channel_type, sample)
        return None if found is None else found.total_seconds() * 1_000_000


# --- reads --------------------------------------------------------------------------------


async def _page(
    conn: asyncpg.Connection, f: ConversationFilter, after: str | None, limit: int
) -> Page[Conversation]:
    where: list[str] = []
    params: list[Any] = []

    def arg(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if f.status:
        where.append(f"status = {arg(f.status.value)}")
    if f.assignee_id:
        where.append(f"assignee_id = {arg(f.assignee_id)}")
    if f.channel_id:
        where.append(f"channel_id = {arg(f.channel_id)}")
    if f.contact_id:
        ids = await group(conn, f.contact_id) or [f.contact_id]
        where.append(f"contact_id = ANY({arg(ids)}::text[])")
    if after:
        where.append(f"id < {arg(after)}")
    sql = f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id DESC LIMIT {arg(limit + 1)}"
    items = [rows.conversation(r).model() for r in await conn.fetch(sql, *params)]
    return page(Conversation, items, limit)


async def identity_contact(
    conn: asyncpg.Connection, channel_id: str, external_id: str
) -> str | None:
    found = await conn.fetchval(
        "SELECT contact_id FROM identities WHERE channel_id = $1 AND external_id = $2",
        channel_id,
        external_id,
    )
    return None if found is None else str(found)


async def _open_for(conn: asyncpg.Connection, channel_id: str, external_id: str) -> str | None:
    contact_id = await identity_contact(conn, channel_id, external_id)
    if contact_id is None:
        return None
    found = await conn.fetchval(
        "SELECT MAX(id) FROM conversations WHERE contact_id = ANY($1::text[]) "
        "AND channel_id = $2 AND status <> 'resolved'",
        await group(conn, contact_id),
        channel_id,
    )
    return None if found is None else str(found)


async def _recipient(conn: asyncpg.Connection, conversation_id: str) -> Identity | None:
    row = await conn.fetchrow(
        "SELECT i.* FROM conversations c JOIN identities i "
        "ON i.channel_id = c.channel_id AND i.external_id = c.recipient_id WHERE c.id = $1",
        conversation_id,
    )
    return None if row is None else rows.identity(row)


async def _decisions(conn: asyncpg.Connection, conversation_id: str) -> list[dict[str, Any]]:
    return [
        {"created_at": from_us(r["created_at"]), **json.loads(r["explanation"])}
        for r in await conn.fetch(
            "SELECT * FROM routing_decisions WHERE conversation_id = $1 ORDER BY id",
            conversation_id,
        )
    ]


async def _window_facts(conn: asyncpg.Connection, ids: list[str]) -> dict[str, WindowFacts]:
    if not ids:
        return {}
    return {
        r[0]: WindowFacts(r[1], r[2])
        for r in await conn.fetch(
            "SELECT c.id, c.last_inbound_at, COALESCE(p.phone, k.phone) FROM conversations c "
            "LEFT JOIN contacts k ON k.id = c.contact_id "
            "LEFT JOIN contacts p ON p.id = k.merged_into WHERE c.id = ANY($1::text[])",
            ids,
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
        found: Page[Conversation] = await self._read(_page, filters, decode_cursor(cursor), limit)
        ids = [c.id for c in found.items]
        slas: dict[str, str] = await self._read(_slas, ids) if ids else {}
        if not slas:
            return found
        items = [rows.with_sla(c, slas.get(c.id)) for c in found.items]
        return Page[Conversation](items=items, next_cursor=found.next_cursor)

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
