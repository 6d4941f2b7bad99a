"""One unit of work's transaction on the writer connection (gateway.store.transaction.Tx).
Events are kept until the batch ends: Database appends them then, in order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.store.postgres.agents import AgentTx, AssignmentTx
from gateway.store.postgres.contacts import ContactTx
from gateway.store.postgres.conversations import ConversationTx
from gateway.store.postgres.messages import MessageTx
from kernel.events import Event, compose_json


class PgTx:
    def __init__(self, conn: asyncpg.Connection, now: int) -> None:
        self.conn = conn
        self.now = now
        self.now_dt = datetime.fromtimestamp(now / 1_000_000, UTC)
        self.events: list[Event] = []
        self.conversations = ConversationTx(self)
        self.messages = MessageTx(self)
        self.contacts = ContactTx(self)
        self.agents = AgentTx(self)
        self.assignments = AssignmentTx(self)

    def next_unit(self) -> list[Event]:
        """The next unit of work starts: the list its events go to."""
        self.events = []
        return self.events

    async def emit(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        # Its seq is given when the batch's events are appended (before the commit).
        event = Event(0, type_, self.now_dt, compose_json(fields), conversation_id)
        self.events.append(event)
        return event

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        found: list[Any] = await self.conn.fetch(sql, *args)
        return found

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self.conn.execute(sql, *args)
        return status

    async def executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        await self.conn.executemany(sql, args)
