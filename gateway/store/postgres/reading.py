"""What the PostgreSQL backend's queries share: running on a pooled connection, pages,
merge groups, UPDATE lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import asyncpg

from kernel.pages import Page, encode_cursor

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

T = TypeVar("T")

# Runs a unit of work in a write transaction (Database.write).
Write = Callable[[Callable[["PgTx"], Coroutine[Any, Any, Any]]], Awaitable[Any]]


class Reader(Protocol):
    """Runs ``await fn(connection, *args)`` on a pooled connection."""

    async def __call__(self, fn: Any, /, *args: Any) -> Any: ...


async def group(conn: asyncpg.Connection, contact_id: str) -> list[str]:
    """A contact and every contact merged into it."""
    found = await conn.fetch(
        "SELECT id FROM contacts WHERE id = $1 OR merged_into = $1", contact_id
    )
    return [r[0] for r in found]


def page(kind: type[T], items: list[T], limit: int) -> Page[T]:
    """The first ``limit`` items (``limit + 1`` were read) and the cursor after the last,
    by its id."""
    cursor = None
    if len(items) > limit:
        items = items[:limit]
        cursor = encode_cursor(cast(Any, items[-1]).id)
    return Page[kind](items=items, next_cursor=cursor)  # type: ignore[valid-type]


def updates(fields: Sequence[str], column: dict[str, str]) -> str:
    """``a = $1, b = $2`` for these fields (record names to columns)."""
    return ", ".join(f"{column.get(k, k)} = ${i}" for i, k in enumerate(fields, 1))


def count(status: str) -> int:
    """The row count of a command's status ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0
