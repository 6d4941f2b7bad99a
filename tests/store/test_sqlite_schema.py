"""SQLite-only: versioned migrations, and how the database runs units of work."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from gateway.store import open_store
from gateway.store.sqlite import schema
from gateway.store.sqlite.database import Database
from gateway.store.sqlite.tx import SqliteTx
from tests.api.helpers import eventually


def unit(fn: Callable[[SqliteTx], Any]) -> Callable[[SqliteTx], Awaitable[Any]]:
    """A unit of work doing ``fn``."""

    async def work(tx: SqliteTx) -> Any:
        return fn(tx)

    return work


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


async def test_an_old_database_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert _versions(path) == [1]
    monkeypatch.undo()
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert _versions(path) == [m[0] for m in schema.MIGRATIONS]
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "conversations_recipient" in names


async def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    with pytest.raises(schema.SchemaTooNew, match="upgrade the gateway"):
        await open_store(f"sqlite:///{path}")


@pytest.mark.parametrize("url", ["sqlite://", "mysql://x", "sqlite:///x.db?synchronous=sometimes"])
async def test_bad_store_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"url|synchronous"):
        await open_store(url)


async def test_a_long_write_alone_does_not_hold_up_short_ones_queued_before_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    engine = Database(str(path), synchronous="FULL", on_events=None)
    try:
        await engine.write(unit(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)")))
        committed_before: list[int] = []

        def short(n: int) -> Callable[[SqliteTx], Awaitable[None]]:
            async def write(tx: SqliteTx) -> None:
                tx.execute("INSERT INTO t VALUES (?)", (n,))

            return write

        async def long(tx: SqliteTx) -> int:
            # what another connection sees: the short writes queued before this one are
            # committed already (in one transaction together, they would not be)
            with closing(sqlite3.connect(path)) as other:
                committed_before.append(other.execute("SELECT COUNT(*) FROM t").fetchone()[0])
            tx.execute("INSERT INTO t VALUES (100)")
            return 100

        # queued in this order before the writer gets to run
        tasks = [asyncio.ensure_future(engine.write(short(n))) for n in range(3)]
        tasks.append(asyncio.ensure_future(engine.write(long, alone=True)))
        tasks.append(asyncio.ensure_future(engine.write(short(7))))
        assert await asyncio.gather(*tasks) == [None, None, None, 100, None]
        assert committed_before == [3]
        rows = await engine.read(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert sorted(r[0] for r in rows) == [0, 1, 2, 7, 100]
    finally:
        await engine.close()


async def test_the_log_is_copied_into_the_database_beside_the_writer(tmp_path: Path) -> None:
    # The writer does not checkpoint in its commits; a thread of its own does, once
    # enough was written: the database file grows while the gateway runs, not only at
    # the end.
    path = tmp_path / "c.db"
    engine = Database(str(path), synchronous="FULL", on_events=None)
    try:
        await engine.write(unit(lambda tx: tx.execute("CREATE TABLE t (n INTEGER, v TEXT)")))
        empty = path.stat().st_size

        def many(start: int) -> Callable[[SqliteTx], Awaitable[None]]:
            async def write(tx: SqliteTx) -> None:
                tx.conn.executemany(
                    "INSERT INTO t VALUES (?, ?)",
                    ((n, "x" * 200) for n in range(start, start + 1000)),
                )

            return write

        for start in range(0, 20_000, 1000):
            await engine.write(many(start))

        async def grown() -> bool:
            return path.stat().st_size > empty + 2_000_000

        assert await eventually(grown)
        count = await engine.read(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone())
        assert count[0] == 20_000
    finally:
        await engine.close()


async def test_a_unit_of_work_that_waits_for_something_else_is_refused(tmp_path: Path) -> None:
    # SQLite runs a unit of work to its end without the event loop: one that awaited
    # anything but its transaction would hold the write transaction open across the loop.
    path = tmp_path / "u.db"
    database = Database(str(path), synchronous="FULL", on_events=None)
    try:
        await database.write(unit(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)")))

        async def waits(tx: SqliteTx) -> None:
            tx.execute("INSERT INTO t VALUES (1)")
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="waited for something other"):
            await database.write(waits)
        await database.write(unit(lambda tx: tx.execute("INSERT INTO t VALUES (2)")))
        rows = await database.read(lambda conn: conn.execute("SELECT n FROM t").fetchall())
        assert [r[0] for r in rows] == [2]  # the refused unit left nothing behind
    finally:
        await database.close()
