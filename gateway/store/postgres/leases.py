"""Leases: work one replica at a time does. Times are the database's clock, which every
replica shares."""

from __future__ import annotations

import time

import asyncpg

from gateway.store.postgres.reading import Reader

_CLAIM = (
    "INSERT INTO leases (name, owner, until) "
    "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
    "WHERE leases.owner = excluded.owner OR leases.until < clock_timestamp() "
    "RETURNING owner"
)
_RENEW = (
    "UPDATE leases SET until = clock_timestamp() + make_interval(secs => $2) WHERE owner = $1 "
    "RETURNING name, wanted"
)
# Outbound messages being sent: their lease is on the process clock, as the queue's.
_RENEW_SENDS = (
    "UPDATE messages SET lease_until = $2 "
    "WHERE status = 'pending' AND lease_owner = $1 AND lease_until IS NOT NULL"
)


async def _claim(conn: asyncpg.Connection, name: str, owner: str, seconds: float) -> bool:
    return await conn.fetchval(_CLAIM, name, owner, seconds) is not None


async def _release(conn: asyncpg.Connection, name: str, owner: str) -> None:
    await conn.execute("DELETE FROM leases WHERE name = $1 AND owner = $2", name, owner)


async def _renew(
    conn: asyncpg.Connection, owner: str, seconds: float
) -> tuple[list[str], list[str]]:
    async with conn.transaction():
        held = await conn.fetch(_RENEW, owner, seconds)
        await conn.execute(_RENEW_SENDS, owner, time.time_ns() // 1000 + int(seconds * 1e6))
    return [r[0] for r in held], [r[0] for r in held if r[1]]


async def _want(conn: asyncpg.Connection, name: str, owner: str) -> None:
    await conn.execute(
        "UPDATE leases SET wanted = true WHERE name = $1 AND owner <> $2", name, owner
    )


class Leases:
    def __init__(self, reader: Reader, owner: str) -> None:
        self._read = reader
        self.owner = owner

    async def claim(self, name: str, seconds: float) -> bool:
        taken: bool = await self._read(_claim, name, self.owner, seconds)
        return taken

    async def release(self, name: str) -> None:
        await self._read(_release, name, self.owner)

    async def renew(self, seconds: float) -> tuple[list[str], list[str]]:
        found: tuple[list[str], list[str]] = await self._read(_renew, self.owner, seconds)
        return found

    async def want(self, name: str) -> None:
        await self._read(_want, name, self.owner)
