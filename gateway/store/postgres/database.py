"""PostgreSQL plumbing: units of work batched on one writer connection, a pool for reads,
and the event log published in order, whoever wrote it.

Units of work queued while a batch runs form the next batch: one transaction, each unit
in its own SAVEPOINT (a unit that fails is rolled back alone), one COMMIT for all. A
unit's events are appended when its batch ends, under the one row of ``event_head``,
which stays locked until the commit: appends from every replica are serialised there,
so events commit in seq order, without gaps, and the lock is held only for the append
and the commit. Futures resolve after the COMMIT, so "acknowledged" means "durable".

Committed events reach ``on_events`` in seq order: this process's own at once when
nothing came between, otherwise (and when told that another process wrote) read from
the log first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from gateway.store import rows
from gateway.store.postgres.tx import PgTx
from kernel.errors import StoreUnavailable
from kernel.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 64
# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
PG_EPOCH_US = 946_684_800_000_000
TAIL_PAGE = 1000

_APPEND_HEAD = "UPDATE event_head SET last = last + $1 WHERE id = 1 RETURNING last"
_APPEND = (
    "INSERT INTO events (seq, type, created_at, conversation_id, data) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::json[])"
)


# What a lost or refused connection raises: the database cannot be reached now.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
CONNECT_TIMEOUT = 5.0
# Two replicas' transactions taking the same rows in another order: PostgreSQL aborts one
# (a deadlock, or a serialisation failure). Nothing of the aborted unit was committed, so
# it is run again, in a later batch, a few times before its caller sees the error.
RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
MAX_RETRIES = 5


def unavailable(exc: BaseException) -> StoreUnavailable:
    # The driver's message names no secret (the URL's password is never in it).
    return StoreUnavailable(
        f"the database cannot be reached: {type(exc).__name__}", code="store_unavailable"
    )


def us_now() -> int:
    return time.time_ns() // 1000


async def setup_connection(conn: asyncpg.Connection) -> None:
    """Times as integers of microseconds since the Unix epoch, JSON as text: what the
    records and the rows module expect, with no conversion in Python."""
    for name in ("timestamptz", "timestamp"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda us: (us - PG_EPOCH_US,),
            decoder=lambda t: t[0] + PG_EPOCH_US,
            format="tuple",
        )
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=str, format="text"
        )


@dataclass
class _Op:
    work: Callable[[PgTx], Coroutine[Any, Any, Any]]
    future: asyncio.Future[Any]
    alone: bool = False
    retries: int = 0

    def again(self, error: BaseException | None) -> bool:
        """Whether the unit runs again after this error (a lost race, a few times)."""
        if isinstance(error, RETRYABLE) and self.retries < MAX_RETRIES:
            self.retries += 1
            return True
        return False


class Database:
    def __init__(
        self,
        url: str,
        pool: asyncpg.Pool,
        *,
        on_events: Callable[[list[Event]], None] | None,
    ) -> None:
        self.url = url
        self.pool = pool
        self._on_events = on_events
        self._loop = asyncio.get_running_loop()
        self._writer: asyncpg.Connection | None = None
        self._pending: deque[_Op] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.published = 0  # the newest seq handed to on_events
        # Called after this process committed events (replicas tell each other).
        self.on_commit: Callable[[], None] | None = None
        self._publishing = asyncio.Lock()

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int, on_events: Callable[[list[Event]], None] | None
    ) -> Database:
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=pool_size, init=setup_connection, timeout=CONNECT_TIMEOUT
        )
        assert pool is not None
        database = cls(url, pool, on_events=on_events)
        database.published = await database.read(_last_seq)
        return database

    # --- writes --------------------------------------------------------------------

    async def write(
        self, work: Callable[[PgTx], Coroutine[Any, Any, T]], *, alone: bool = False
    ) -> T:
        """Run a unit of work in a write transaction; resolves once it is committed."""
        if self._closed:
            raise RuntimeError("store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Op(work, future, alone))
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush(), name="postgres-flush")
        return await future

    async def _connection(self) -> asyncpg.Connection:
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
            await setup_connection(self._writer)
        return self._writer

    async def _flush(self) -> None:
        pending = self._pending
        while pending:
            batch = [pending.popleft()]
            if not batch[0].alone:
                while pending and len(batch) < MAX_BATCH and not pending[0].alone:
                    batch.append(pending.popleft())
            try:
                try:
                    outcomes, events = await self._run(batch)
                except Exception as exc:
                    if len(batch) == 1 or isinstance(exc, UNREACHABLE):
                        raise
                    # The batch's end failed (appending its events): each unit again on
                    # its own, so that only the one at fault fails.
                    outcomes, events = await self._one_by_one(batch)
            except BaseException as exc:  # never leave a caller waiting forever
                failure = unavailable(exc) if isinstance(exc, UNREACHABLE) else exc
                retried = [op for op in batch if not op.future.done() and op.again(exc)]
                if retried:
                    log.info("a unit of work lost a race (%s); run again", type(exc).__name__)
                    pending.extendleft(reversed(retried))
                for op in batch:
                    if not op.future.done() and op not in retried:
                        op.future.set_exception(failure)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            if events:
                if self.on_commit is not None:
                    self.on_commit()
                try:
                    await self.publish(events)
                except Exception:  # committed: a later catch-up hands them on
                    log.warning("publishing committed events failed; caught up later")
            retried = []
            for op, result, error in outcomes:
                if op.future.done():
                    continue
                if error is not None and op.again(error):
                    retried.append(op)
                elif error is not None:
                    op.future.set_exception(error)
                else:
                    op.future.set_result(result)
            if retried:
                log.info("%d unit(s) of work lost a race; run again", len(retried))
                pending.extendleft(reversed(retried))

    async def _one_by_one(
        self, batch: list[_Op]
    ) -> tuple[list[tuple[_Op, Any, BaseException | None]], list[Event]]:
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        events: list[Event] = []
        for op in batch:
            try:
                done, written = await self._run([op])
            except UNREACHABLE:
                raise
            except Exception as exc:
                outcomes.append((op, None, exc))
            else:
                outcomes.extend(done)
                events.extend(written)
        return outcomes, events

    async def _run(
        self, batch: list[_Op]
    ) -> tuple[list[tuple[_Op, Any, BaseException | None]], list[Event]]:
        """One batch in one transaction; raises when the transaction itself failed."""
        try:
            conn = await self._connection()
        except UNREACHABLE:
            self._writer = None
            raise
        tx = PgTx(conn, us_now())
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        events: list[Event] = []
        transaction = conn.transaction()
        await transaction.start()
        try:
            alone = len(batch) == 1
            for op in batch:
                written = tx.next_unit()
                savepoint = None if alone else conn.transaction()
                if savepoint is not None:
                    await savepoint.start()
                try:
                    result = await op.work(tx)
                except BaseException as exc:
                    if savepoint is None:
                        raise
                    await savepoint.rollback()
                    outcomes.append((op, None, exc))
                else:
                    if savepoint is not None:
                        await savepoint.commit()
                    outcomes.append((op, result, None))
                    events.extend(written)
            if events:
                await self._append(conn, events, tx.now)
            await transaction.commit()
        except BaseException:
            if not conn.is_closed():
                try:
                    await transaction.rollback()
                except Exception:  # a broken connection: the next batch opens a new one
                    self._writer = None
            else:
                self._writer = None
            raise
        return outcomes, events

    async def _append(self, conn: asyncpg.Connection, events: list[Event], now: int) -> None:
        last = await conn.fetchval(_APPEND_HEAD, len(events))
        first = last - len(events) + 1
        for offset, event in enumerate(events):
            event.seq = first + offset
        await conn.execute(
            _APPEND,
            [e.seq for e in events],
            [e.type for e in events],
            [now] * len(events),
            [e.conversation_id for e in events],
            [e.data_json for e in events],
        )

    # --- the event log, in order ---------------------------------------------------

    async def publish(self, events: list[Event]) -> None:
        """Hand committed events to on_events in seq order, reading from the log what
        other processes wrote before them."""
        async with self._publishing:
            if events[0].seq > self.published + 1:
                await self._catch_up(events[0].seq - 1)
            fresh = [e for e in events if e.seq > self.published]
            if fresh:
                self._hand(fresh)

    async def catch_up(self) -> None:
        """Another process may have written events: publish what is new."""
        async with self._publishing:
            await self._catch_up(None)

    async def _catch_up(self, until: int | None) -> None:
        while True:
            found = await self.read(_events_after, self.published, TAIL_PAGE, until)
            if not found:
                return
            self._hand(found)
            if len(found) < TAIL_PAGE:
                return

    def _hand(self, events: list[Event]) -> None:
        self.published = events[-1].seq
        if self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                log.exception("event subscriber failed")

    # --- reads ---------------------------------------------------------------------

    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("store is closed")
        try:
            async with self.pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                return await fn(conn, *args)
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    async def vacuum(self, tables: tuple[str, ...], *, full: bool) -> None:
        """VACUUM (``full``: VACUUM FULL) these tables, outside any transaction."""
        how = "VACUUM (FULL) " if full else "VACUUM "

        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(how + ", ".join(tables))

        await self.read(run)

    # --- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if self._writer is not None and not self._writer.is_closed():
            await self._writer.close()
        await self.pool.close()


async def _last_seq(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT last FROM event_head WHERE id = 1"))


async def _events_after(
    conn: asyncpg.Connection, seq: int, limit: int, until: int | None
) -> list[Event]:
    if until is None:
        found = await conn.fetch(
            "SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
        )
    else:
        found = await conn.fetch(
            "SELECT * FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            seq,
            until,
            limit,
        )
    return [rows.event(r) for r in found]
