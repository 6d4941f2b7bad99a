"""Canned replies (``/v1/templates``)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from gateway.store import rows
from gateway.store.records import to_us
from gateway.store.sqlite.reading import Reader, Write
from kernel.errors import Conflict
from kernel.models import Template

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx


def _get(conn: sqlite3.Connection, template_id: str) -> Template | None:
    row = conn.execute("SELECT * FROM templates WHERE id = ?", (template_id,)).fetchone()
    return None if row is None else rows.template(row)


def _all(conn: sqlite3.Connection, name: str | None) -> list[Template]:
    if name is None:
        found = conn.execute("SELECT * FROM templates ORDER BY name, language, id")
    else:
        found = conn.execute(
            "SELECT * FROM templates WHERE name = ? ORDER BY language, id", (name,)
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
        async def work(tx: SqliteTx) -> bool:
            taken = tx.one(
                "SELECT id FROM templates WHERE name = ? AND language = ? AND id <> ?",
                (template.name, template.language, template.id),
            )
            if taken is not None:
                raise rows.template_exists(template)
            values = (
                template.name,
                template.language,
                rows.template_body(template),
                to_us(template.updated_at),
                template.id,
            )
            if not new:
                return (
                    tx.execute(
                        "UPDATE templates SET name = ?, language = ?, body = ?, updated_at = ? "
                        "WHERE id = ?",
                        values,
                    ).rowcount
                    > 0
                )
            try:
                tx.execute(
                    "INSERT INTO templates (name, language, body, updated_at, id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*values, to_us(template.created_at)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"template {template.id} exists", code="template_exists") from None
            return True

        done: bool = await self._write(work)
        return done

    async def delete(self, template_id: str) -> bool:
        async def work(tx: SqliteTx) -> bool:
            return tx.execute("DELETE FROM templates WHERE id = ?", (template_id,)).rowcount > 0

        deleted: bool = await self._write(work)
        return deleted
