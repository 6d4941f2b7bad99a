"""API tokens and event-stream tickets, kept as hashes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store.postgres.reading import Reader, Write, count
from gateway.store.records import TicketRecord, TokenRecord, dumps, from_us, opt_dt
from kernel.errors import NotFound
from kernel.ids import AgentId, TokenId

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=TokenId(row["id"]),
        name=row["name"],
        scopes=json.loads(row["scopes"]),
        agent_id=AgentId(row["agent_id"]) if row["agent_id"] else None,
        bot_id=row["bot_id"],
        created_at=from_us(row["created_at"]),
        last_used_at=opt_dt(row["last_used_at"]),
    )


async def _find(conn: asyncpg.Connection, token_hash: str) -> TokenRecord | None:
    row = await conn.fetchrow(
        "SELECT * FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL", token_hash
    )
    return None if row is None else _token(row)


async def _list(conn: asyncpg.Connection) -> list[TokenRecord]:
    return [
        _token(r)
        for r in await conn.fetch("SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY id")
    ]


class Tokens:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def create(
        self,
        token_id: TokenId,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        agent_id: AgentId | None,
        bot_id: str | None = None,
    ) -> TokenRecord:
        async def work(tx: PgTx) -> None:
            await tx.execute(
                "INSERT INTO api_tokens "
                "(id, name, token_hash, scopes, agent_id, created_at, bot_id) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                token_id,
                name,
                token_hash,
                dumps(list(scopes)),
                agent_id,
                tx.now,
                bot_id,
            )

        await self._write(work)
        record = await self.find(token_hash)
        assert record is not None
        return record

    async def find(self, token_hash: str) -> TokenRecord | None:
        found: TokenRecord | None = await self._read(_find, token_hash)
        return found

    async def all(self) -> list[TokenRecord]:
        found: list[TokenRecord] = await self._read(_list)
        return found

    async def revoke(self, token_id: TokenId) -> None:
        async def work(tx: PgTx) -> None:
            status = await tx.execute(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                tx.now,
                token_id,
            )
            if count(status) == 0:
                raise NotFound(f"token {token_id} not found", code="token_not_found")

        await self._write(work)

    async def add_ticket(
        self, ticket_hash: str, token_id: str, token_hash: str, seconds: float
    ) -> datetime:
        async def work(tx: PgTx) -> int:
            await tx.execute("DELETE FROM event_tickets WHERE expires_at <= $1", tx.now)
            expires = tx.now + round(seconds * 1_000_000)
            await tx.execute(
                "INSERT INTO event_tickets "
                "(ticket_hash, token_id, token_hash, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                ticket_hash,
                token_id,
                token_hash,
                tx.now,
                expires,
            )
            return expires

        expires: int = await self._write(work)
        return from_us(expires)

    async def redeem_ticket(self, ticket_hash: str) -> TicketRecord | None:
        async def work(tx: PgTx) -> TicketRecord | None:
            # One statement: of two replicas deleting the same row at once, the second
            # waits for the first's commit and then finds nothing. Deleted whatever it
            # holds: used now, or expired and of no use to anyone.
            row = await tx.fetchrow(
                "DELETE FROM event_tickets WHERE ticket_hash = $1 "
                "RETURNING token_id, token_hash, expires_at",
                ticket_hash,
            )
            if row is None or row["expires_at"] <= tx.now:
                return None
            return TicketRecord(
                token_id=row["token_id"],
                token_hash=row["token_hash"],
                expires_at=from_us(row["expires_at"]),
            )

        found: TicketRecord | None = await self._write(work)
        return found
