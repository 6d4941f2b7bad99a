"""Store backends the contract suite runs against, each with a way to make the database
itself refuse a write (so atomicity is tested through the real engine), and a way to
read its tables directly."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg


@dataclass
class SqliteBackend:
    path: Path

    name = "sqlite"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    async def fail_event_inserts(self, event_type: str) -> None:
        """From now on the database aborts any insert of an event of this type."""
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "CREATE TRIGGER test_fail_events BEFORE INSERT ON events "
                f"WHEN NEW.type = '{event_type}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )

    async def heal(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("DROP TRIGGER IF EXISTS test_fail_events")

    async def execute(self, sql: str) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executescript(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return [tuple(r) for r in conn.execute(sql)]


@dataclass
class PostgresBackend:
    url: str

    name = "postgres"

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fail_event_inserts(self, event_type: str) -> None:
        await self.execute(
            "CREATE FUNCTION test_fail_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.type = '{event_type}' THEN RAISE EXCEPTION 'injected'; END IF; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER test_fail_events BEFORE INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION test_fail_events()"
        )

    async def heal(self) -> None:
        await self.execute(
            "DROP TRIGGER IF EXISTS test_fail_events ON events; "
            "DROP FUNCTION IF EXISTS test_fail_events()"
        )

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()


Backend = SqliteBackend | PostgresBackend

BACKENDS = ["sqlite", "postgres"]
