"""The embedded SQLite backend: every role of gateway.store.protocols over one database
file (WAL, group commit, versioned migrations)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from gateway.store.protocols import EventsCallback
from gateway.store.sqlite.agents import AgentReads
from gateway.store.sqlite.channels import (
    AttachmentRecords,
    ChannelRecords,
    ChannelState,
    RawEvents,
)
from gateway.store.sqlite.contacts import ContactReads
from gateway.store.sqlite.conversations import ConversationReads
from gateway.store.sqlite.database import Database, connect
from gateway.store.sqlite.events import EventLog
from gateway.store.sqlite.messages import MediaDownloads, MessageReads, OutboundQueue
from gateway.store.sqlite.schema import migrate
from gateway.store.sqlite.stats import StatsReads
from gateway.store.sqlite.templates import Templates
from gateway.store.sqlite.tokens import Tokens
from gateway.store.sqlite.tx import SqliteTx
from gateway.store.sqlite.webhooks import WebhookLog

T = TypeVar("T")

log = logging.getLogger(__name__)

SYNCHRONOUS = {"full", "normal", "extra", "off"}


def parse_url(url: str) -> tuple[str, str]:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``?synchronous=normal``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite url: {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError("sqlite url has no path (expected sqlite:///path/to/file.db)")
    sync = parse_qs(parts.query).get("synchronous", ["full"])[0].lower()
    if sync not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}")
    return path, sync


def _prepare(path: str, sync: str) -> None:
    private_files(path)
    conn = connect(path, synchronous=sync)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    finally:
        conn.close()


def private_files(path: str) -> None:
    """Make the database file readable by its owner only, before SQLite opens it (SQLite
    gives the -wal and -shm files it creates the database file's mode); a folder made for
    it is the owner's only too. Files left readable by others (an older version made
    them so) are narrowed; a folder that already exists is left as it is."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, 0o600)
                log.info("%s was readable by other users: now by its owner only", name)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, and carry on
            log.warning("%s is readable by other users and cannot be changed: %s", name, exc)


class LocalLeases:
    """One process owns an SQLite store: every lease is its own."""

    owner = "local"

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def claim(self, name: str, seconds: float) -> bool:
        self._held.add(name)
        return True

    async def release(self, name: str) -> None:
        self._held.discard(name)

    async def renew(self, seconds: float) -> tuple[list[str], list[str]]:
        return sorted(self._held), []

    async def want(self, name: str) -> None:
        return None


class SqliteStore:
    shared = False  # one process: the file is locked by its writer

    def __init__(self, database: Database) -> None:
        self.database = database
        self.path = database.path
        read, write = self._read, database.write
        self.conversations = ConversationReads(read)
        self.messages = MessageReads(read)
        self.contacts = ContactReads(read)
        self.agents = AgentReads(read)
        self.outbound = OutboundQueue(read, write)
        self.media_downloads = MediaDownloads(read, write)
        self.events = EventLog(read, write)
        self.webhooks = WebhookLog(read, write)
        self.channels = ChannelRecords(read, write)
        self.channel_state = ChannelState(read, write)
        self.raw_events = RawEvents(write)
        self.attachments = AttachmentRecords(read, write)
        self.tokens = Tokens(read, write)
        self.templates = Templates(read, write)
        self.stats = StatsReads(read)
        self.leases = LocalLeases()
        # Units of work go straight to the writer (one coroutine less per unit).
        self.transact = database.write  # type: ignore[method-assign,assignment]

    @classmethod
    async def open(cls, url: str, on_events: EventsCallback | None = None) -> SqliteStore:
        path, sync = parse_url(url)
        await asyncio.to_thread(_prepare, path, sync)
        return cls(Database(path, synchronous=sync, on_events=on_events))

    async def _read(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return await self.database.read(lambda conn: fn(conn, *args))

    async def transact(self, work: Callable[[SqliteTx], Awaitable[T]], *, alone: bool = False) -> T:
        result: T = await self.database.write(work, alone=alone)  # type: ignore[arg-type]
        return result

    async def ping(self) -> None:
        await self.database.read(lambda c: c.execute("SELECT 1").fetchone())

    async def follow(self) -> None:
        return None  # nothing else writes here

    async def reclaim(self, *, thorough: bool) -> None:
        await self.database.truncate_log()

    async def close(self) -> None:
        await self.database.close()
