"""One unit of work's transaction on the writer connection (gateway.store.transaction.Tx).
Events are kept until the batch ends: Database appends them then, in order."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.store.postgres.agents import AgentTx, AssignmentTx
from gateway.store.postgres.clocks import ClockTx
from gateway.store.postgres.contacts import ContactTx
from gateway.store.postgres.conversations import ConversationTx
from gateway.store.postgres.erasure import ErasureTx
from gateway.store.postgres.messages import MessageTx
from gateway.store.postgres.surveys import SurveyTx
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
        self.erasure = ErasureTx(self)
        self.surveys = SurveyTx(self)
        self.clocks = ClockTx(self)

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
        return await self.conn.fetchrow(sql, *without_nul(args))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        found: list[Any] = await self.conn.fetch(sql, *without_nul(args))
        return found

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *without_nul(args))

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self.conn.execute(sql, *without_nul(args))
        return status

    async def executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        await self.conn.executemany(sql, [without_nul(a) for a in args])


def without_nul(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments with U+0000 taken out of their text (PostgreSQL's text and jsonb
    cannot hold it; the API and the webchat refuse it, but a provider's payload may carry
    one, and it must not make the event fail for ever)."""
    for arg in args:
        if arg.__class__ is str and ("\x00" in arg or "\\u0000" in arg):
            return tuple(_strip(a) for a in args)
    return args


# A JSON \u0000 escape (not a literal backslash's "\\u0000"): kept are the backslashes
# before it that escape each other.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _strip(arg: Any) -> Any:
    if arg.__class__ is not str:
        return arg
    return _JSON_NUL.sub(r"\1", arg.replace("\x00", ""))
