"""Agents and assignments: rows inside units of work, and reads."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from gateway.store import rows
from gateway.store.records import AgentRecord, AssignmentBatch, dumps
from gateway.store.sqlite.contacts import SERVED
from gateway.store.sqlite.reading import Reader, page
from kernel.ids import AgentId
from kernel.models import Agent, Presence
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

_RECORD = (
    "INSERT INTO routing_decisions (conversation_id, created_at, agent_id, explanation) "
    "VALUES (?, ?, ?, ?)"
)


def _record(row: sqlite3.Row) -> AgentRecord:
    return AgentRecord(rows.agent(row), row["last_assigned_at"])


class AgentTx:
    __slots__ = ("tx",)

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def get(self, agent_id: str) -> AgentRecord | None:
        row = self.tx.one("SELECT * FROM agents WHERE id = ?", (agent_id,))
        return None if row is None else _record(row)

    async def all(self) -> list[AgentRecord]:
        return [_record(r) for r in self.tx.execute("SELECT * FROM agents")]

    async def insert(self, agent: Agent, at: int) -> None:
        self.tx.execute(
            "INSERT INTO agents (id, name, skills, languages, capacity, presence, "
            "presence_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                agent.id,
                agent.name,
                dumps(agent.skills),
                dumps(agent.languages),
                dumps(agent.capacity),
                agent.presence.value,
                at,
                at,
                at,
            ),
        )

    async def update_profile(self, agent: Agent, at: int) -> None:
        self.tx.execute(
            "UPDATE agents SET name = ?, skills = ?, languages = ?, capacity = ?, updated_at = ? "
            "WHERE id = ?",
            (
                agent.name,
                dumps(agent.skills),
                dumps(agent.languages),
                dumps(agent.capacity),
                at,
                agent.id,
            ),
        )

    async def set_presence(self, agent_id: str, presence: Presence, at: int) -> None:
        self.tx.execute(
            "UPDATE agents SET presence = ?, presence_changed_at = ? WHERE id = ?",
            (presence.value, at, agent_id),
        )

    async def set_assigned(self, agent_id: str, at: int) -> None:
        self.tx.execute("UPDATE agents SET last_assigned_at = ? WHERE id = ?", (at, agent_id))


class AssignmentTx:
    __slots__ = ("tx", "version")

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx
        # One process writes the file: it routes alone, and its version is its own count.
        self.version = 0

    async def lock_routing(self) -> int:
        return self.version

    async def routing_changed(self) -> int:
        self.version += 1
        return self.version

    async def record_decision(
        self, conversation_id: str, agent_id: str | None, explanation_json: str, at: int
    ) -> None:
        self.tx.execute(_RECORD, (conversation_id, at, agent_id, explanation_json))

    async def write(self, batch: AssignmentBatch) -> None:
        if not batch.conversations:
            return
        conn, at = self.tx.conn, batch.at
        conn.executemany(
            "UPDATE conversations SET status = 'assigned', assignee_id = ?, assigned_at = ?, "
            "queue_announced = 0 WHERE id = ? AND status = 'queued'",
            [(agent_id, at, conv_id) for agent_id, conv_id in batch.conversations],
        )
        conn.executemany(SERVED, [(agent_id, at, contact) for agent_id, contact in batch.contacts])
        conn.executemany(
            _RECORD,
            [(conv_id, at, agent_id, expl) for conv_id, agent_id, expl in batch.decisions],
        )
        conn.executemany(
            "UPDATE agents SET last_assigned_at = ? WHERE id = ?",
            [(at, agent_id) for agent_id in batch.agents],
        )


# --- reads --------------------------------------------------------------------------------


def _get(conn: sqlite3.Connection, agent_id: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else rows.agent(row)


def _list(conn: sqlite3.Connection, after: str | None, limit: int) -> Page[Agent]:
    items = [
        rows.agent(r)
        for r in conn.execute(
            "SELECT * FROM agents WHERE id > ? ORDER BY id LIMIT ?", (after or "", limit + 1)
        )
    ]
    return page(Agent, items, limit)


class AgentReads:
    def __init__(self, reader: Reader) -> None:
        self._read = reader

    async def get(self, agent_id: AgentId) -> Agent | None:
        found: Agent | None = await self._read(_get, agent_id)
        return found

    async def page(self, cursor: str | None, limit: int) -> Page[Agent]:
        found: Page[Agent] = await self._read(_list, decode_cursor(cursor), limit)
        return found
