"""Channels added through the admin API, kept sealed."""

from __future__ import annotations

import sqlite3

from gateway.store.base import StoredChannel
from gateway.store.sqlite.engine import Tx
from gateway.store.sqlite.rows import from_us
from kernel.errors import Conflict


def list_all(conn: sqlite3.Connection) -> list[StoredChannel]:
    return [
        StoredChannel(
            id=r["id"],
            type=r["type"],
            sealed=r["sealed"],
            created_at=from_us(r["created_at"]),
            updated_at=from_us(r["updated_at"]),
        )
        for r in conn.execute("SELECT * FROM api_channels ORDER BY id")
    ]


def put(tx: Tx, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
    if new:
        try:
            tx.execute(
                "INSERT INTO api_channels (id, type, sealed, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (channel_id, type_, sealed, tx.now, tx.now),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"channel {channel_id} already exists", code="channel_exists") from None
        return
    tx.execute(
        "UPDATE api_channels SET type = ?, sealed = ?, updated_at = ? WHERE id = ?",
        (type_, sealed, tx.now, channel_id),
    )


def delete(tx: Tx, channel_id: str) -> bool:
    return tx.execute("DELETE FROM api_channels WHERE id = ?", (channel_id,)).rowcount > 0
