"""What the SQLite backend's reads share: running on a reader connection, pages, merge
groups."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from kernel.pages import Page, encode_cursor

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

T = TypeVar("T")

# Runs a unit of work in a write transaction (Database.write).
Write = Callable[[Callable[["SqliteTx"], Coroutine[Any, Any, Any]]], Awaitable[Any]]


class Reader(Protocol):
    """Runs ``fn(connection, *args)`` on a reader thread."""

    async def __call__(self, fn: Any, /, *args: Any) -> Any: ...


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?`` for an IN list of these values (always bound, never inlined)."""
    return ",".join("?" * len(values))


def group(conn: sqlite3.Connection, contact_id: str) -> list[str]:
    """A contact and every contact merged into it."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM contacts WHERE id = ? OR merged_into = ?", (contact_id, contact_id)
        )
    ]


def page(kind: type[T], items: list[T], limit: int) -> Page[T]:
    """The first ``limit`` items (``limit + 1`` were read) and the cursor after the last,
    by its id."""
    cursor = None
    if len(items) > limit:
        items = items[:limit]
        cursor = encode_cursor(cast(Any, items[-1]).id)
    return Page[kind](items=items, next_cursor=cursor)  # type: ignore[valid-type]
