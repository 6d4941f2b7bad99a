"""The event log (the outbox): reads, and events written with no state change of their own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store import rows
from gateway.store.postgres.reading import Reader, Write
from gateway.store.records import to_us
from kernel.events import Event
from kernel.ids import ConversationId

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx


async def after(
    conn: asyncpg.Connection,
    seq: int,
    limit: int,
    types: Sequence[str] | None,
    conversation_id: str | None,
) -> list[Event]:
    sql, params = "SELECT * FROM events WHERE seq > $1", [seq]
    if conversation_id:
        params.append(conversation_id)  # type: ignore[arg-type]
        sql += f" AND conversation_id = ${len(params)}"
    if types:
        params.append(list(types))  # type: ignore[arg-type]
        sql += f" AND type = ANY(${len(params)}::text[])"
    params.append(limit)
    sql += f" ORDER BY seq LIMIT ${len(params)}"
    return [rows.event(r) for r in await conn.fetch(sql, *params)]


async def last_seq(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT last FROM event_head WHERE id = 1"))


async def first_at(conn: asyncpg.Connection, at_us: int) -> int | None:
    found = await conn.fetchval("SELECT MIN(seq) FROM events WHERE created_at >= $1", at_us)
    return None if found is None else int(found)


class EventLog:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def after(
        self,
        seq: int,
        limit: int,
        *,
        types: Sequence[str] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[Event]:
        found: list[Event] = await self._read(after, seq, limit, types, conversation_id)
        return found

    async def last_seq(self) -> int:
        found: int = await self._read(last_seq)
        return found

    async def first_at(self, at: datetime) -> int | None:
        found: int | None = await self._read(first_at, to_us(at))
        return found

    async def emit(
        self, type_: str, data: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        async def work(tx: PgTx) -> Event:
            return await tx.emit(type_, data, conversation_id)

        event: Event = await self._write(work)
        return event
