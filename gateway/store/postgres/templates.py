"""Canned replies (``/v1/templates``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from gateway.store import rows
from gateway.store.postgres.reading import Reader, Write, count
from gateway.store.records import to_us
from kernel.models import Template

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx


async def _get(conn: asyncpg.Connection, template_id: str) -> Template | None:
    row = await conn.fetchrow("SELECT * FROM templates WHERE id = $1", template_id)
    return None if row is None else rows.template(row)


async def _all(conn: asyncpg.Connection, name: str | None) -> list[Template]:
    if name is None:
        found = await conn.fetch("SELECT * FROM templates ORDER BY name, language, id")
    else:
        found = await conn.fetch(
            "SELECT * FROM templates WHERE name = $1 ORDER BY language, id", name
        )
    return [rows.template(r) for r in found]


class Templates:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def get(self, template_id: str) -> Template | None:
        found: Template | None = await self._read(_get, template_id)
        return found

    async def all(self, name: str | None = None) -> list[Template]:
        found: list[Template] = await self._read(_all, name)
        return found

    async def put(self, template: Template, *, new: bool) -> bool:
        async def work(tx: PgTx) -> bool:
            # Two replicas creating the same name and language: the unique index orders
            # them; the lock makes the loser see the winner's row here.
            await tx.execute("LOCK TABLE templates IN SHARE ROW EXCLUSIVE MODE")
            taken = await tx.fetchval(
                "SELECT id FROM templates WHERE name = $1 AND language = $2 AND id <> $3",
                template.name,
                template.language,
                template.id,
            )
            if taken is not None:
                raise rows.template_exists(template)
            args = (
                template.name,
                template.language,
                rows.template_body(template),
                to_us(template.updated_at),
                template.id,
            )
            if not new:
                status = await tx.execute(
                    "UPDATE templates SET name = $1, language = $2, body = $3, updated_at = $4 "
                    "WHERE id = $5",
                    *args,
                )
                return count(status) > 0
            await tx.execute(
                "INSERT INTO templates (name, language, body, updated_at, id, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                *args,
                to_us(template.created_at),
            )
            return True

        done: bool = await self._write(work)
        return done

    async def delete(self, template_id: str) -> bool:
        async def work(tx: PgTx) -> bool:
            return count(await tx.execute("DELETE FROM templates WHERE id = $1", template_id)) > 0

        deleted: bool = await self._write(work)
        return deleted
