"""Agents and assignments: rows inside units of work, and reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store import rows
from gateway.store.postgres.contacts import SERVED
from gateway.store.postgres.reading import Reader, page
from gateway.store.records import AgentRecord, AssignmentBatch, dumps
from kernel.ids import AgentId
from kernel.models import Agent, Presence
from kernel.pages import Page, decode_cursor

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

_RECORD = (
    "INSERT INTO routing_decisions (conversation_id, created_at, agent_id, explanation) "
    "VALUES ($1, $2, $3, $4)"
)


def _record(row: Any) -> AgentRecord:
    return AgentRecord(rows.agent(row), row["last_assigned_at"])


class AgentTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def get(self, agent_id: str) -> AgentRecord | None:
        row = await self.tx.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
        return None if row is None else _record(row)

    async def all(self) -> list[AgentRecord]:
        return [_record(r) for r in await self.tx.fetch("SELECT * FROM agents")]

    async def insert(self, agent: Agent, at: int) -> None:
        await self.tx.execute(
            "INSERT INTO agents (id, name, skills, languages, capacity, presence, "
            "presence_changed_at, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
            agent.id,
            agent.name,
            dumps(agent.skills),
            dumps(agent.languages),
            dumps(agent.capacity),
            agent.presence.value,
            at,
        )

    async def update_profile(self, agent: Agent, at: int) -> None:
        await self.tx.execute(
            "UPDATE agents SET name = $1, skills = $2, languages = $3, capacity = $4, "
            "updated_at = $5 WHERE id = $6",
            agent.name,
            dumps(agent.skills),
            dumps(agent.languages),
            dumps(agent.capacity),
            at,
            agent.id,
        )

    async def set_presence(self, agent_id: str, presence: Presence, at: int) -> None:
        await self.tx.execute(
            "UPDATE agents SET presence = $1, presence_changed_at = $2 WHERE id = $3",
            presence.value,
            at,
            agent_id,
        )

    async def set_assigned(self, agent_id: str, at: int) -> None:
        await self.tx.execute("UPDATE agents SET last_assigned_at = $1 WHERE id = $2", at, agent_id)


class AssignmentTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def lock_routing(self) -> int:
        # The row stays locked until the transaction ends: one process routes at a time.
        found = await self.tx.fetchval("SELECT version FROM routing_state WHERE id = 1 FOR UPDATE")
        return int(found)

    async def routing_changed(self) -> int:
        found = await self.tx.fetchval(
            "UPDATE routing_state SET version = version + 1 WHERE id = 1 RETURNING version"
        )
        return int(found)

    async def record_decision(
        self, conversation_id: str, agent_id: str | None, explanation_json: str, at: int
    ) -> None:
        await self.tx.execute(_RECORD, conversation_id, at, agent_id, explanation_json)

    async def write(self, batch: AssignmentBatch) -> None:
        if not batch.conversations:
            return
        tx, at = self.tx, batch.at
        await tx.execute(
            "UPDATE conversations c SET status = 'assigned', assignee_id = a.agent, "
            "assigned_at = $3, queue_announced = false "
            "FROM unnest($1::text[], $2::text[]) AS a(agent, conv) "
            "WHERE c.id = a.conv AND c.status = 'queued'",
            [agent for agent, _ in batch.conversations],
            [conv for _, conv in batch.conversations],
            at,
        )
        await tx.executemany(SERVED, [(agent, at, contact) for agent, contact in batch.contacts])
        await tx.execute(
            "INSERT INTO routing_decisions (conversation_id, created_at, agent_id, explanation) "
            "SELECT conv, $4, agent, expl FROM unnest($1::text[], $2::text[], $3::json[]) "
            "AS d(conv, agent, expl)",
            [conv for conv, _, _ in batch.decisions],
            [agent for _, agent, _ in batch.decisions],
            [expl for _, _, expl in batch.decisions],
            at,
        )
        await tx.execute(
            "UPDATE agents SET last_assigned_at = $2 WHERE id = ANY($1::text[])",
            sorted(batch.agents),
            at,
        )


# --- reads --------------------------------------------------------------------------------


async def _get(conn: asyncpg.Connection, agent_id: str) -> Agent | None:
    row = await conn.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
    return None if row is None else rows.agent(row)


async def _page(conn: asyncpg.Connection, after: str | None, limit: int) -> Page[Agent]:
    items = [
        rows.agent(r)
        for r in await conn.fetch(
            "SELECT * FROM agents WHERE id > $1 ORDER BY id LIMIT $2", after or "", limit + 1
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
        found: Page[Agent] = await self._read(_page, decode_cursor(cursor), limit)
        return found
