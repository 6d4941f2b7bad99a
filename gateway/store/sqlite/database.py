"""SQLite plumbing: units of work batched under group commit, and a few readers.

A unit of work is ``async def work(tx)`` (gateway.store.protocols). Whatever is queued
runs as one batch on the event loop's own thread, each unit in its own SAVEPOINT of one
``BEGIN IMMEDIATE`` transaction, and only the COMMIT (with its fsync) goes to a thread:
a burst of messages costs one fsync, a unit that fails is rolled back alone (its change
and its events together), and the SQL never has to hand the GIL back and forth with the
loop. SQLite answers at once, so a unit never has to wait: its coroutine is driven to
the end in one step, without the event loop (one that tried to wait would be a bug, and
is refused). Futures resolve only after the COMMIT, so "acknowledged" means "durable".

Readers are separate connections on threads (WAL lets them read during writes).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.store.sqlite.tx import SqliteTx, run_to_end
from kernel.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")

# A batch runs on the event loop's thread: keep it short enough not to stall it.
MAX_BATCH = 64
# The write-ahead log is copied into the database once this many rows were written
# since the last time (about as often as SQLite's own default of 1,000 pages), or after
# a second with anything written.
CHECKPOINT_ROWS = 4000
CHECKPOINT_INTERVAL = 1.0


def us_now() -> int:
    return time.time_ns() // 1000


def connect(path: str, *, synchronous: str, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


@dataclass
class _Op:
    work: Callable[[SqliteTx], Coroutine[Any, Any, Any]]
    future: asyncio.Future[Any]
    alone: bool = False


# (op, result, error, the events it wrote)
_Outcome = tuple[_Op, Any, BaseException | None, "list[Event] | None"]


class Database:
    def __init__(
        self,
        path: str,
        *,
        synchronous: str,
        on_events: Callable[[list[Event]], None] | None,
        readers: int = 2,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self._on_events = on_events
        self._loop = asyncio.get_running_loop()
        self._conn = connect(path, synchronous=synchronous)
        self._conn.execute("PRAGMA journal_mode = WAL")
        # What is deleted or overwritten is zeroed in the file, not left in free pages
        # (an erased person's values must not be found in it afterwards).
        self._conn.execute("PRAGMA secure_delete = ON")
        # The writer never checkpoints inside a commit (copying the log into the database
        # and syncing it there would hold up every write): a thread of its own does it
        # beside the writes, without blocking them (passive checkpoints), as often as
        # SQLite would have.
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._tx = SqliteTx(self._conn)  # handed to each unit of work in turn
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-wal")
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0
        self._checkpointed_rows = 0
        self._pending: deque[_Op] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._closed = False

    # --- writes --------------------------------------------------------------------

    async def write(
        self, work: Callable[[SqliteTx], Coroutine[Any, Any, T]], *, alone: bool = False
    ) -> T:
        """Run a unit of work in a write transaction; resolves once it is committed.
        ``alone``: a long unit (routing a queue) gets a transaction of its own, so that
        short ones queued beside it are committed, and acknowledged, without waiting."""
        if self._closed:
            raise RuntimeError("store is closed")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Op(work, future, alone))
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush(), name="sqlite-flush")
        return await future

    async def _flush(self) -> None:
        pending = self._pending
        while pending:
            batch = [pending.popleft()]
            if not batch[0].alone:
                while pending and len(batch) < MAX_BATCH and not pending[0].alone:
                    batch.append(pending.popleft())
            try:
                outcomes, to_commit = self._execute(batch)
                if to_commit:
                    try:
                        await self._loop.run_in_executor(self._committer, self._commit)
                    except sqlite3.Error as exc:
                        log.error("commit failed: %s", exc)
                        outcomes = [(op, None, exc, None) for op, _, _, _ in outcomes]
            except BaseException as exc:  # never leave a caller waiting forever
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                outcomes = [(op, None, exc, None) for op in batch]
                self._complete(outcomes)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self._complete(outcomes)
            self._checkpoint_soon()
            if pending:
                # Let the writers just acknowledged run (answer their clients) before the
                # next batch holds the loop's thread.
                await asyncio.sleep(0)

    def _checkpoint_soon(self) -> None:
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        written = self._conn.total_changes - self._checkpointed_rows
        now = time.monotonic()
        if written < CHECKPOINT_ROWS and (
            not written or now - self._last_checkpoint < CHECKPOINT_INTERVAL
        ):
            return
        self._last_checkpoint = now
        self._checkpointed_rows = self._conn.total_changes
        self._checkpointing = self._loop.run_in_executor(self._checkpointer, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = connect(self.path, synchronous=self.synchronous)
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # the next one tries again; the log just grows meanwhile
            log.warning("WAL checkpoint failed: %s", exc)

    async def truncate_log(self) -> None:
        """Copy the write-ahead log into the database and empty it: old versions of
        pages (with what was since deleted) no longer lie in it."""
        await self._loop.run_in_executor(self._checkpointer, self._truncate)

    def _truncate(self) -> None:
        if self._checkpoint_conn is None:
            self._checkpoint_conn = connect(self.path, synchronous=self.synchronous)
        for _ in range(20):
            busy = self._checkpoint_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy[0]:
                return
            time.sleep(0.1)  # a reader or the writer is in the way: again, shortly
        log.warning("the write-ahead log could not be emptied: readers kept it busy")

    def _close_checkpointer(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _execute(self, batch: list[_Op]) -> tuple[list[_Outcome], bool]:
        """Run a batch inside one open transaction; returns outcomes and whether to commit."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(op, None, exc, None) for op in batch], False
        tx = self._tx
        tx.begin(us_now())
        if len(batch) == 1:
            # Alone in its transaction: a failure rolls the whole transaction back instead.
            op = batch[0]
            events = tx.next_unit()
            try:
                result = run_to_end(op.work(tx))
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return [(op, None, exc, None)], False
            return [(op, result, None, events)], True
        outcomes: list[_Outcome] = []
        for op in batch:
            events = tx.next_unit()
            conn.execute("SAVEPOINT op")
            try:
                result = run_to_end(op.work(tx))
            except BaseException as exc:  # the op's own failure: undo only this op
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((op, None, exc, None))
            else:
                conn.execute("RELEASE op")
                outcomes.append((op, result, None, events))
        return outcomes, True

    def _complete(self, outcomes: list[_Outcome]) -> None:
        # Events first, in commit order, so anyone woken by a future sees them published.
        events = [e for _, _, _, written in outcomes if written for e in written]
        if events and self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                log.exception("event subscriber failed")
        for op, result, exc, _tx in outcomes:
            if op.future.done():
                continue
            if exc is not None:
                op.future.set_exception(exc)
            else:
                op.future.set_result(result)

    # --- reads ---------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self.synchronous, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("store is closed")
        return await self._loop.run_in_executor(self._pool, lambda: fn(self._reader()))

    # --- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        self._committer.shutdown(wait=True)
        self._checkpointer.submit(self._close_checkpointer)
        self._checkpointer.shutdown(wait=True)
        self._conn.close()  # the last connection to close checkpoints what is left
        self._pool.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
