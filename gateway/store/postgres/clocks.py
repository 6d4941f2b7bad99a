"""Conversations' SLA clocks and off-hours replies (gateway.store.transaction.ClockRows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.store.records import ClockRecord

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

COLUMNS = "conversation_id, channel_id, created_at, policy, sla, next_check, off_hours_until"
_UPSERT = (
    f"INSERT INTO conversation_clocks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
    "ON CONFLICT (conversation_id) DO UPDATE SET policy = excluded.policy, "
    "sla = excluded.sla, next_check = excluded.next_check, "
    "off_hours_until = excluded.off_hours_until"
)


class ClockTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def get(self, conversation_id: str) -> ClockRecord | None:
        row = await self.tx.fetchrow(
            f"SELECT {COLUMNS} FROM conversation_clocks WHERE conversation_id = $1",
            conversation_id,
        )
        return None if row is None else ClockRecord(*row)

    async def put(self, record: ClockRecord) -> None:
        await self.tx.execute(
            _UPSERT,
            record.conversation_id,
            record.channel_id,
            record.created_at,
            record.policy,
            record.sla_json,
            record.next_check,
            record.off_hours_until,
        )

    async def due(self, now: int, limit: int) -> list[ClockRecord]:
        found = await self.tx.fetch(
            f"SELECT {COLUMNS} FROM conversation_clocks WHERE next_check <= $1 "
            "ORDER BY next_check LIMIT $2",
            now,
            limit,
        )
        return [ClockRecord(*row) for row in found]

    async def notified(self, contact_id: str, channel_id: str, until: int) -> bool:
        found = await self.tx.fetchval(
            "SELECT 1 FROM conversations c JOIN conversation_clocks k "
            "ON k.conversation_id = c.id WHERE c.contact_id = $1 AND c.channel_id = $2 "
            "AND k.off_hours_until = $3 LIMIT 1",
            contact_id,
            channel_id,
            until,
        )
        return found is not None

    async def next_check(self) -> int | None:
        found: int | None = await self.tx.fetchval(
            "SELECT MIN(next_check) FROM conversation_clocks"
        )
        return found
