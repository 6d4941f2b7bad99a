"""The PostgreSQL backend: every role of gateway.store.protocols, shared by any number of
gateway processes (replicas) on one database."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from gateway.store.postgres.agents import AgentReads
from gateway.store.postgres.channels import (
    AttachmentRecords,
    ChannelRecords,
    ChannelState,
    RawEvents,
)
from gateway.store.postgres.contacts import ContactReads
from gateway.store.postgres.conversations import ConversationReads
from gateway.store.postgres.database import CONNECT_TIMEOUT, UNREACHABLE, Database, unavailable
from gateway.store.postgres.events import EventLog
from gateway.store.postgres.leases import Leases
from gateway.store.postgres.messages import MediaDownloads, MessageReads, OutboundQueue
from gateway.store.postgres.schema import migrate
from gateway.store.postgres.stats import StatsReads
from gateway.store.postgres.templates import Templates
from gateway.store.postgres.tokens import Tokens
from gateway.store.postgres.tx import PgTx
from gateway.store.postgres.webhooks import WebhookLog
from gateway.store.protocols import EventsCallback
from kernel.ids import ulid

T = TypeVar("T")

DEFAULT_POOL_SIZE = 10
# What erasure and the retention sweep blank or delete: vacuumed after them, so that dead
# row versions (holding the old values) are cleared from the tables' files.
RECLAIMED = (
    "contacts",
    "identities",
    "contact_names",
    "contacts_apart",
    "conversations",
    "messages",
    "events",
    "raw_events",
    "channel_state",
    "attachments",
    "attachment_data",
    "webhook_attempts",
    "webhook_deliveries",
)
DEFAULT_LEASE_SECONDS = 10.0


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def process_name() -> str:
    """Who holds a lease: this host and process, and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{ulid()[-8:]}"


async def run_migrations(url: str) -> int:
    """Bring the database's schema to this version's (``omnigw migrate``)."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except UNREACHABLE as exc:
        raise unavailable(exc) from exc
    try:
        return await migrate(conn)
    finally:
        await conn.close()


class PostgresStore:
    shared = True

    def __init__(self, database: Database, *, owner: str, lease_seconds: float) -> None:
        self.database = database
        self.url = database.url
        read, write = self._read, database.write
        self.conversations = ConversationReads(read)
        self.messages = MessageReads(read)
        self.contacts = ContactReads(read)
        self.agents = AgentReads(read)
        self.outbound = OutboundQueue(read, write, owner, lease_seconds)
        self.media_downloads = MediaDownloads(read)
        self.events = EventLog(read, write)
        self.webhooks = WebhookLog(read, write)
        self.channels = ChannelRecords(read, write)
        self.channel_state = ChannelState(read, write)
        self.raw_events = RawEvents(write)
        self.attachments = AttachmentRecords(read, write)
        self.tokens = Tokens(read, write)
        self.templates = Templates(read, write)
        self.stats = StatsReads(read)
        self.leases = Leases(read, owner)
        self.transact = database.write  # type: ignore[method-assign,assignment]

    @classmethod
    async def open(
        cls,
        url: str,
        on_events: EventsCallback | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        on_commit: Callable[[], None] | None = None,
    ) -> PostgresStore:
        await run_migrations(url)
        try:
            database = await Database.open(url, pool_size=pool_size, on_events=on_events)
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        database.on_commit = on_commit
        return cls(database, owner=process_name(), lease_seconds=lease_seconds)

    async def _read(self, fn: Callable[..., Awaitable[Any]], /, *args: Any) -> Any:
        return await self.database.read(fn, *args)

    async def transact(self, work: Callable[[PgTx], Awaitable[T]], *, alone: bool = False) -> T:
        result: T = await self.database.write(work, alone=alone)  # type: ignore[arg-type]
        return result

    async def ping(self) -> None:
        await self.database.read(_ping)

    async def follow(self) -> None:
        await self.database.catch_up()

    async def reclaim(self, *, thorough: bool) -> None:
        await self.database.vacuum(RECLAIMED, full=thorough)

    async def close(self) -> None:
        await self.database.close()


async def _ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")
