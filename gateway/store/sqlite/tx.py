"""One unit of work's transaction on the writer connection (gateway.store.transaction.Tx)."""

from __future__ import annotations

import sqlite3
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.store.sqlite.agents import AgentTx, AssignmentTx
from gateway.store.sqlite.clocks import ClockTx
from gateway.store.sqlite.contacts import ContactTx
from gateway.store.sqlite.conversations import ConversationTx
from gateway.store.sqlite.erasure import ErasureTx
from gateway.store.sqlite.messages import MessageTx
from gateway.store.sqlite.surveys import SurveyTx
from kernel.events import Event, compose_json

T = TypeVar("T")


def run_to_end(step: Coroutine[Any, Any, T]) -> T:
    """Drive a unit of work that never has to wait (SQLite answers at once)."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError(
        "a unit of work waited for something other than its transaction; SQLite runs "
        "units of work to the end without the event loop"
    )


_APPEND = "INSERT INTO events (type, created_at, conversation_id, data) VALUES (?, ?, ?, ?)"


class SqliteTx:
    """The connection, the transaction's time, and the events written in it.

    The writer has one, handed to each unit of work of a batch in turn (units run one at a
    time, to their end): begin() gives it the batch's time and the unit a list of events
    of its own. Made once, it costs a unit of work nothing."""

    def __init__(self, conn: sqlite3.Connection, now: int = 0) -> None:
        self.conn = conn
        self.events: list[Event] = []
        self.begin(now)
        self.conversations = ConversationTx(self)
        self.messages = MessageTx(self)
        self.contacts = ContactTx(self)
        self.agents = AgentTx(self)
        self.assignments = AssignmentTx(self)
        self.erasure = ErasureTx(self)
        self.surveys = SurveyTx(self)
        self.clocks = ClockTx(self)

    def begin(self, now: int) -> None:
        """A batch starts at ``now`` (microseconds since the epoch)."""
        self.now = now
        self.now_dt = datetime.fromtimestamp(now / 1_000_000, UTC)

    def next_unit(self) -> list[Event]:
        """The next unit of work starts: the list its events go to."""
        self.events = []
        return self.events

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def append_event(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        """Append an event to the outbox, in this transaction."""
        return run_to_end(self.emit(type_, fields, conversation_id))

    async def emit(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        data_json = compose_json(fields)
        cur = self.conn.execute(_APPEND, (type_, self.now, conversation_id, data_json))
        seq = cur.lastrowid
        assert seq is not None
        event = Event(seq, type_, self.now_dt, data_json, conversation_id)
        self.events.append(event)
        return event
