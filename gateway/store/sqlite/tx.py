"""One unit of work's transaction on the writer connection (gateway.store.transaction.Tx)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from gateway.store.sqlite.agents import AgentTx, AssignmentTx
from gateway.store.sqlite.contacts import ContactTx
from gateway.store.sqlite.conversations import ConversationTx
from gateway.store.sqlite.messages import MessageTx
from kernel.events import Event, compose_json


class SqliteTx:
    """The connection, the transaction's time, and the events written in it."""

    def __init__(self, conn: sqlite3.Connection, now: int) -> None:
        self.conn = conn
        self.now = now
        self.events: list[Event] = []
        self._now_dt: datetime | None = None
        # (functools.cached_property takes a lock on every read in Python 3.11: too slow
        # for what every statement of a unit of work goes through)
        self.conversations = ConversationTx(self)
        self.messages = MessageTx(self)
        self.contacts = ContactTx(self)
        self.agents = AgentTx(self)
        self.assignments = AssignmentTx(self)

    @property
    def now_dt(self) -> datetime:
        if self._now_dt is None:
            self._now_dt = datetime.fromtimestamp(self.now / 1_000_000, UTC)
        return self._now_dt

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def append_event(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        """Append an event to the outbox, in this transaction."""
        data_json = compose_json(fields)
        cur = self.conn.execute(
            "INSERT INTO events (type, created_at, conversation_id, data) VALUES (?, ?, ?, ?)",
            (type_, self.now, conversation_id, data_json),
        )
        seq = cur.lastrowid
        assert seq is not None
        event = Event(seq, type_, self.now_dt, data_json, conversation_id)
        self.events.append(event)
        return event

    async def emit(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        return self.append_event(type_, fields, conversation_id)
