"""Per-channel bookkeeping: channels added through the admin API (kept sealed), the small
values connectors keep, provider events kept raw, and files received."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.store.records import AttachmentRecord, StoredChannel, dumps, from_us
from gateway.store.sqlite.reading import Reader, Write
from kernel.errors import Conflict
from kernel.ids import ChannelId

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx


def _channels(conn: sqlite3.Connection) -> list[StoredChannel]:
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


class ChannelRecords:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def all(self) -> list[StoredChannel]:
        found: list[StoredChannel] = await self._read(_channels)
        return found

    async def put(self, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
        async def work(tx: SqliteTx) -> None:
            if new:
                try:
                    tx.execute(
                        "INSERT INTO api_channels (id, type, sealed, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (channel_id, type_, sealed, tx.now, tx.now),
                    )
                except sqlite3.IntegrityError:
                    raise Conflict(
                        f"channel {channel_id} already exists", code="channel_exists"
                    ) from None
                return
            tx.execute(
                "UPDATE api_channels SET type = ?, sealed = ?, updated_at = ? WHERE id = ?",
                (type_, sealed, tx.now, channel_id),
            )

        await self._write(work)

    async def delete(self, channel_id: str) -> bool:
        async def work(tx: SqliteTx) -> bool:
            return tx.execute("DELETE FROM api_channels WHERE id = ?", (channel_id,)).rowcount > 0

        deleted: bool = await self._write(work)
        return deleted

    async def reseal(self, channel_id: str, old: str, new: str) -> bool:
        async def work(tx: SqliteTx) -> bool:
            cursor = tx.execute(
                "UPDATE api_channels SET sealed = ? WHERE id = ? AND sealed = ?",
                (new, channel_id, old),
            )
            return cursor.rowcount > 0

        done: bool = await self._write(work)
        return done


def _load_state(conn: sqlite3.Connection, channel_id: str, key: str) -> Any:
    row = conn.execute(
        "SELECT value FROM channel_state WHERE channel_id = ? AND key = ?", (channel_id, key)
    ).fetchone()
    return None if row is None else json.loads(row[0])


class ChannelState:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def load(self, channel_id: ChannelId, key: str) -> Any:
        return await self._read(_load_state, channel_id, key)

    async def save(self, channel_id: ChannelId, key: str, value: Any) -> None:
        text = dumps(value)

        async def work(tx: SqliteTx) -> None:
            tx.execute(
                "INSERT INTO channel_state (channel_id, key, value, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (channel_id, key) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                (channel_id, key, text, tx.now),
            )

        await self._write(work)

    async def replace(self, channel_id: ChannelId, key: str, old: Any, new: Any) -> bool:
        text = dumps(new)

        async def work(tx: SqliteTx) -> bool:
            row = tx.one(
                "SELECT value FROM channel_state WHERE channel_id = ? AND key = ?",
                (channel_id, key),
            )
            if row is None or json.loads(row[0]) != old:
                return False
            tx.execute(
                "UPDATE channel_state SET value = ?, updated_at = ? "
                "WHERE channel_id = ? AND key = ?",
                (text, tx.now, channel_id, key),
            )
            return True

        done: bool = await self._write(work)
        return done


class RawEvents:
    def __init__(self, write: Write) -> None:
        self._write = write

    async def keep(self, channel_id: ChannelId, kind: str, payload: str, reason: str) -> None:
        # Providers resend batches: the same payload is kept once.
        digest = hashlib.sha256(f"{kind}\0{payload}".encode()).hexdigest()

        async def work(tx: SqliteTx) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO raw_events (channel_id, kind, reason, payload, created_at, "
                "digest) VALUES (?, ?, ?, ?, ?, ?)",
                (channel_id, kind, reason, payload, tx.now, digest),
            )

        await self._write(work)


def _attachment(conn: sqlite3.Connection, attachment_id: str) -> AttachmentRecord | None:
    row = conn.execute("SELECT * FROM attachments WHERE id = ?", (attachment_id,)).fetchone()
    if row is None:
        return None
    return AttachmentRecord(
        id=row["id"],
        channel_id=row["channel_id"],
        name=row["name"],
        mime=row["mime"],
        size=row["size"],
        sha256=row["sha256"],
        path=row["path"],
    )


class AttachmentRecords:
    keeps_data = False  # files live in the data directory

    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def add(self, record: AttachmentRecord, data: bytes | None = None) -> None:
        async def work(tx: SqliteTx) -> None:
            tx.execute(
                "INSERT INTO attachments (id, channel_id, name, mime, size, sha256, path, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.channel_id,
                    record.name,
                    record.mime,
                    record.size,
                    record.sha256,
                    record.path,
                    tx.now,
                ),
            )

        await self._write(work)

    async def get(self, attachment_id: str) -> AttachmentRecord | None:
        found: AttachmentRecord | None = await self._read(_attachment, attachment_id)
        return found

    async def data(self, attachment_id: str) -> bytes | None:
        return None
