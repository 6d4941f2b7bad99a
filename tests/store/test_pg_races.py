"""PostgreSQL: units of work of two replicas that take the same rows in the opposite order
deadlock; PostgreSQL aborts one, and the writer runs it again instead of failing it."""

from __future__ import annotations

import asyncio

import asyncpg

from gateway.store.postgres.database import Database
from gateway.store.postgres.store import run_migrations
from gateway.store.postgres.tx import PgTx


async def test_a_unit_aborted_by_a_deadlock_runs_again(pg_url: str) -> None:
    await run_migrations(pg_url)
    setup = await asyncpg.connect(pg_url)
    try:
        await setup.execute(
            "CREATE TABLE race (id text PRIMARY KEY, n integer NOT NULL);"
            "INSERT INTO race VALUES ('a', 0), ('b', 0)"
        )
    finally:
        await setup.close()
    first = await Database.open(pg_url, pool_size=2, on_events=None)
    second = await Database.open(pg_url, pool_size=2, on_events=None)
    both_hold_one = asyncio.Barrier(2)

    def taking(one: str, other: str):  # type: ignore[no-untyped-def]
        tries = 0

        async def work(tx: PgTx) -> int:
            nonlocal tries
            tries += 1
            await tx.execute("UPDATE race SET n = n + 1 WHERE id = $1", one)
            if tries == 1:  # the first time, both transactions hold their first row
                await asyncio.wait_for(both_hold_one.wait(), 10)
            await tx.execute("UPDATE race SET n = n + 1 WHERE id = $1", other)
            return tries

        return work

    try:
        tries = await asyncio.gather(first.write(taking("a", "b")), second.write(taking("b", "a")))
    finally:
        await first.close()
        await second.close()
    # One of them lost the race and ran again; both committed, each once.
    assert sorted(tries) == [1, 2]
    check = await asyncpg.connect(pg_url)
    try:
        rows = await check.fetch("SELECT id, n FROM race ORDER BY id")
    finally:
        await check.close()
    assert [(r["id"], r["n"]) for r in rows] == [("a", 2), ("b", 2)]
