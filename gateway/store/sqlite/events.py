"""The event log (the outbox): reads, and events written with no state change of their own."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.store import rows
from gateway.store.records import to_us
from gateway.store.sqlite.reading import Reader, Write, marks
from kernel.events import Event
from kernel.ids import ConversationId

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx


def after(
    conn: sqlite3.Connection,
    seq: int,
    limit: int,
    types: Sequence[str] | None,
    conversation_id: str | None,
) -> list[Event]:
    sql, params = "SELECT * FROM events WHERE seq > ?", [seq]
    if conversation_id:
        sql += " AND conversation_id = ?"
        params.append(conversation_id)  # type: ignore[arg-type]
    if types:
        sql += f" AND type IN ({marks(types)})"
        params.extend(types)  # type: ignore[arg-type]
    sql += " ORDER BY seq LIMIT ?"
    return [rows.event(r) for r in conn.execute(sql, (*params, limit))]


def last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(row[0])


def first_at(conn: sqlite3.Connection, at_us: int) -> int | None:
    row = conn.execute("SELECT MIN(seq) FROM events WHERE created_at >= ?", (at_us,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


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
        async def work(tx: SqliteTx) -> Event:
            return tx.append_event(type_, data, conversation_id)

        event: Event = await self._write(work)
        return event
