"""API tokens and event-stream tickets, kept as hashes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.store.records import TicketRecord, TokenRecord, dumps, from_us, opt_dt
from gateway.store.sqlite.reading import Reader, Write
from kernel.errors import NotFound
from kernel.ids import AgentId, TokenId

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx


def _token(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(
        id=TokenId(row["id"]),
        name=row["name"],
        scopes=json.loads(row["scopes"]),
        agent_id=AgentId(row["agent_id"]) if row["agent_id"] else None,
        bot_id=row["bot_id"],
        created_at=from_us(row["created_at"]),
        last_used_at=opt_dt(row["last_used_at"]),
    )


def _find(conn: sqlite3.Connection, token_hash: str) -> TokenRecord | None:
    row = conn.execute(
        "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    ).fetchone()
    return None if row is None else _token(row)


def _list(conn: sqlite3.Connection) -> list[TokenRecord]:
    return [
        _token(r)
        for r in conn.execute("SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY id")
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
        async def work(tx: SqliteTx) -> None:
            tx.execute(
                "INSERT INTO api_tokens "
                "(id, name, token_hash, scopes, agent_id, created_at, bot_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, name, token_hash, dumps(list(scopes)), agent_id, tx.now, bot_id),
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
        async def work(tx: SqliteTx) -> None:
            cur = tx.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (tx.now, token_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"token {token_id} not found", code="token_not_found")

        await self._write(work)

    async def add_ticket(
        self, ticket_hash: str, token_id: str, token_hash: str, seconds: float
    ) -> datetime:
        async def work(tx: SqliteTx) -> int:
            tx.execute("DELETE FROM event_tickets WHERE expires_at <= ?", (tx.now,))
            expires = tx.now + round(seconds * 1_000_000)
            tx.execute(
                "INSERT INTO event_tickets "
                "(ticket_hash, token_id, token_hash, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (ticket_hash, token_id, token_hash, tx.now, expires),
            )
            return expires

        expires: int = await self._write(work)
        return from_us(expires)

    async def redeem_ticket(self, ticket_hash: str) -> TicketRecord | None:
        async def work(tx: SqliteTx) -> TicketRecord | None:
            # Deleted whatever it holds: used now, or expired and of no use to anyone.
            row = tx.one(
                "DELETE FROM event_tickets WHERE ticket_hash = ? "
                "RETURNING token_id, token_hash, expires_at",
                (ticket_hash,),
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
