"""Per-channel bookkeeping: channels added through the admin API (kept sealed), the small
values connectors keep, provider events kept raw, and files received (their bytes in the
database, so that every replica serves every file)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store.postgres.reading import Reader, Write, count
from gateway.store.records import AttachmentRecord, StoredChannel, dumps, from_us
from kernel.errors import Conflict
from kernel.ids import ChannelId

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx


async def _channels(conn: asyncpg.Connection) -> list[StoredChannel]:
    return [
        StoredChannel(
            id=r["id"],
            type=r["type"],
            sealed=r["sealed"],
            created_at=from_us(r["created_at"]),
            updated_at=from_us(r["updated_at"]),
        )
        for r in await conn.fetch("SELECT * FROM api_channels ORDER BY id")
    ]


class ChannelRecords:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def all(self) -> list[StoredChannel]:
        found: list[StoredChannel] = await self._read(_channels)
        return found

    async def put(self, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
        async def work(tx: PgTx) -> None:
            if new:
                inserted = await tx.execute(
                    "INSERT INTO api_channels (id, type, sealed, created_at, updated_at) "
                    "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
                    channel_id,
                    type_,
                    sealed,
                    tx.now,
                )
                if count(inserted) == 0:
                    raise Conflict(f"channel {channel_id} already exists", code="channel_exists")
                return
            await tx.execute(
                "UPDATE api_channels SET type = $1, sealed = $2, updated_at = $3 WHERE id = $4",
                type_,
                sealed,
                tx.now,
                channel_id,
            )

        await self._write(work)

    async def delete(self, channel_id: str) -> bool:
        async def work(tx: PgTx) -> bool:
            status = await tx.execute("DELETE FROM api_channels WHERE id = $1", channel_id)
            return count(status) > 0

        deleted: bool = await self._write(work)
        return deleted

    async def reseal(self, channel_id: str, old: str, new: str) -> bool:
        async def work(tx: PgTx) -> bool:
            status = await tx.execute(
                "UPDATE api_channels SET sealed = $1 WHERE id = $2 AND sealed = $3",
                new,
                channel_id,
                old,
            )
            return count(status) > 0

        done: bool = await self._write(work)
        return done


async def _load_state(conn: asyncpg.Connection, channel_id: str, key: str) -> Any:
    value = await conn.fetchval(
        "SELECT value FROM channel_state WHERE channel_id = $1 AND key = $2", channel_id, key
    )
    return None if value is None else json.loads(value)


class ChannelState:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def load(self, channel_id: ChannelId, key: str) -> Any:
        return await self._read(_load_state, channel_id, key)

    async def save(self, channel_id: ChannelId, key: str, value: Any) -> None:
        text = dumps(value)

        async def work(tx: PgTx) -> None:
            await tx.execute(
                "INSERT INTO channel_state (channel_id, key, value, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, key) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                channel_id,
                key,
                text,
                tx.now,
            )

        await self._write(work)

    async def replace(self, channel_id: ChannelId, key: str, old: Any, new: Any) -> bool:
        text = dumps(new)

        async def work(tx: PgTx) -> bool:
            value = await tx.fetchval(
                "SELECT value FROM channel_state WHERE channel_id = $1 AND key = $2 FOR UPDATE",
                channel_id,
                key,
            )
            if value is None or json.loads(value) != old:
                return False
            await tx.execute(
                "UPDATE channel_state SET value = $1, updated_at = $2 "
                "WHERE channel_id = $3 AND key = $4",
                text,
                tx.now,
                channel_id,
                key,
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
        # text cannot hold NUL: kept escaped, so the payload is still all there.
        payload = payload.replace("\x00", "\\u0000")

        async def work(tx: PgTx) -> None:
            await tx.execute(
                "INSERT INTO raw_events (channel_id, kind, reason, payload, created_at, digest) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel_id, digest) DO NOTHING",
                channel_id,
                kind,
                reason.replace("\x00", ""),
                payload,
                tx.now,
                digest,
            )

        await self._write(work)


async def _attachment(conn: asyncpg.Connection, attachment_id: str) -> AttachmentRecord | None:
    row = await conn.fetchrow("SELECT * FROM attachments WHERE id = $1", attachment_id)
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


async def _data(conn: asyncpg.Connection, attachment_id: str) -> bytes | None:
    found: bytes | None = await conn.fetchval(
        "SELECT data FROM attachment_data WHERE id = $1", attachment_id
    )
    return found


class AttachmentRecords:
    keeps_data = True

    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def add(self, record: AttachmentRecord, data: bytes | None = None) -> None:
        async def work(tx: PgTx) -> None:
            await tx.execute(
                "INSERT INTO attachments (id, channel_id, name, mime, size, sha256, path, "
                "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                record.id,
                record.channel_id,
                record.name,
                record.mime,
                record.size,
                record.sha256,
                record.path,
                tx.now,
            )
            if data is not None:
                await tx.execute(
                    "INSERT INTO attachment_data (id, data) VALUES ($1, $2)", record.id, data
                )

        await self._write(work)

    async def get(self, attachment_id: str) -> AttachmentRecord | None:
        found: AttachmentRecord | None = await self._read(_attachment, attachment_id)
        return found

    async def data(self, attachment_id: str) -> bytes | None:
        found: bytes | None = await self._read(_data, attachment_id)
        return found
