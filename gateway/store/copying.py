"""Copying an embedded SQLite installation into an empty PostgreSQL database
(``omnigw migrate-store``), so that replicas serve the same data from then on.

The source is read in one read transaction: a consistent snapshot even while a gateway
is writing to it (WAL lets readers read beside the writer); what is committed after the
snapshot began is not copied. The target is written in one transaction, after its
migrations ran and after checking that it holds nothing: all of it or nothing.

Everything keeps its identity: ids of every row, the event log's seqs (so helpdesks'
``Last-Event-ID`` cursors and webhook ids stay valid; ``event_head`` continues after the
last one), the ids PostgreSQL otherwise hands out itself (routing decisions, raw events,
webhook attempts: their sequences are moved past the copied ids), webhook cursors, and
secrets sealed with the gateway's key (both sides use the same ``OMNIGW_SECRET_KEY``).

The two schemas hold the same things in their own types. SQLite keeps times as integers
of microseconds since the Unix epoch, JSON as text and booleans as 0/1; the PostgreSQL
connection is set up (``setup_connection``) to take times as those integers, so only
booleans are converted here, and JSON goes to COPY as text in json's and jsonb's binary
forms. Files the SQLite backend keeps under ``<data_dir>/attachments/<path>`` go into
``attachment_data``, their records with an empty path, as the PostgreSQL backend keeps
them. Tables are streamed with COPY in batches, not row by row.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from gateway.store.postgres.database import CONNECT_TIMEOUT, UNREACHABLE, setup_connection
from gateway.store.postgres.database import unavailable as pg_unavailable
from gateway.store.postgres.store import run_migrations
from gateway.store.records import SURVEY_COLUMNS
from gateway.store.sqlite.database import connect as sqlite_connect
from gateway.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from gateway.store.sqlite.store import parse_url

T = TypeVar("T")

# Rows read from the source and handed to COPY at a time.
BATCH = 5000


@dataclass(frozen=True)
class Table:
    """A table both backends have, and the columns copied (every column of the SQLite
    table; PostgreSQL's own extras, such as a message's lease, start empty)."""

    name: str
    columns: tuple[str, ...]
    # 0/1 in SQLite, boolean in PostgreSQL.
    booleans: frozenset[str] = frozenset()
    # PostgreSQL generates `id` (GENERATED ALWAYS AS IDENTITY): its sequence is set past
    # the copied ids afterwards.
    identity: bool = False


def _cols(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


# In the order they are written (rows that others refer to come first).
TABLES: tuple[Table, ...] = (
    Table(
        "contacts",
        _cols(
            "id, display_name, phone, phone_verified, email, email_verified, created_at, "
            "merged_into, attributes, last_agent_id, last_served_at, erased_at, name_key"
        ),
        booleans=frozenset({"phone_verified", "email_verified"}),
    ),
    Table("contact_names", _cols("tail, contact_id")),
    Table("contacts_apart", _cols("low, high, created_at")),
    Table(
        "identities",
        _cols(
            "channel_id, external_id, channel_type, contact_id, original_contact_id, "
            "display_name, avatar_url, created_at"
        ),
    ),
    Table(
        "agents",
        _cols(
            "id, name, skills, languages, capacity, presence, presence_changed_at, "
            "last_assigned_at, created_at, updated_at"
        ),
    ),
    Table(
        "conversations",
        _cols(
            "id, contact_id, channel_id, channel_type, recipient_id, status, assignee_id, "
            "priority, skills, language, subject, created_at, first_response_at, resolved_at, "
            "last_message_at, last_inbound_at, queued_at, queue_announced, excluded_agents, "
            "required_skills, routing_rule, assigned_at, awaiting_since, window_warned_at, "
            "start_key, bot_id"
        ),
        booleans=frozenset({"queue_announced"}),
    ),
    Table(
        "messages",
        _cols(
            "id, conversation_id, contact_id, channel_id, direction, author_type, author_id, "
            "external_id, parts, reply_to, created_at, status, error, idempotency_key, "
            "request_hash, attempts, next_attempt_at, reactions, sent_at, peer_id, metadata"
        ),
    ),
    Table("templates", _cols("id, name, language, body, created_at, updated_at")),
    Table("surveys", _cols(SURVEY_COLUMNS)),
    Table(
        "conversation_clocks",
        _cols("conversation_id, channel_id, created_at, policy, sla, next_check, off_hours_until"),
    ),
    Table("events", _cols("seq, type, created_at, conversation_id, data")),
    Table(
        "routing_decisions",
        _cols("id, conversation_id, created_at, agent_id, explanation"),
        identity=True,
    ),
    Table(
        "api_tokens",
        _cols(
            "id, name, token_hash, scopes, agent_id, created_at, last_used_at, revoked_at, bot_id"
        ),
    ),
    Table(
        "raw_events",
        _cols("id, channel_id, kind, reason, payload, created_at, digest"),
        identity=True,
    ),
    Table("channel_state", _cols("channel_id, key, value, updated_at")),
    Table("attachments", _cols("id, channel_id, name, mime, size, sha256, path, created_at")),
    Table(
        "webhook_endpoints",
        _cols(
            "id, url, description, events, source, secrets, created_at, updated_at, "
            "disabled_at, disabled_reason, cursor, failing_since, last_success_at"
        ),
    ),
    Table(
        "webhook_deliveries",
        _cols(
            "endpoint_id, event_seq, conversation_id, status, attempts, next_attempt_at, "
            "last_status_code, last_error, updated_at"
        ),
    ),
    Table(
        "webhook_attempts",
        _cols(
            "id, endpoint_id, event_seq, attempt, at, status_code, latency_ms, outcome, error, "
            "response"
        ),
        identity=True,
    ),
    Table("api_channels", _cols("id, type, sealed, created_at, updated_at")),
    Table("media_downloads", _cols("message_id, channel_id, attempts, next_at, created_at")),
)

# Tables both backends have that are not copied: event-stream tickets live a minute (a
# helpdesk whose ticket was made before the copy makes another).
NOT_COPIED: frozenset[str] = frozenset({"event_tickets"})

# Where the file bytes of attachments go on PostgreSQL (no SQLite table of its own).
ATTACHMENT_DATA = "attachment_data"
# Every table of the target that holds data: one row in any of them and it is not empty.
# (event_head and routing_state always have their one row; leases are no data.)
TARGET_DATA_TABLES: tuple[str, ...] = (*(t.name for t in TABLES), ATTACHMENT_DATA)


class CopyError(Exception):
    """The copy could not be made; nothing was written to the target."""


class TargetNotEmpty(CopyError):
    """The target already holds data (named in ``found``: table -> rows)."""

    def __init__(self, found: dict[str, int]) -> None:
        what = ", ".join(
            f"event_head.last = {n}" if name == "event_head" else f"{name} ({_rows(n)})"
            for name, n in found.items()
        )
        super().__init__(
            f"the target database is not empty: {what}. migrate-store copies only into an "
            "empty database: create a new one (or drop and re-create this one) and run it again"
        )
        self.found = found


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


@dataclass
class CopyReport:
    """What was copied: rows per target table in the order written, the newest event id
    (new events continue after it), and files that could not be copied."""

    rows: dict[str, int] = field(default_factory=dict)
    last_event_id: int = 0
    attachments_root: Path = Path()
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def default_data_dir(sqlite_url: str) -> Path:
    """Where an installation keeps its attachments by default: beside its database file
    (the gateway lays out ``<data_dir>/omnigw.db`` and ``<data_dir>/attachments``)."""
    path, _sync = parse_url(sqlite_url)
    return Path(os.path.dirname(os.path.abspath(path)))


async def copy_sqlite_to_postgres(
    source_url: str, target_url: str, *, data_dir: Path | None = None
) -> CopyReport:
    """Copy everything of the SQLite store at ``source_url`` (attachments under
    ``data_dir/attachments``; default: the database file's folder) into the empty
    PostgreSQL database at ``target_url``, after running its migrations.

    Raises TargetNotEmpty when the target holds anything, CopyError when the source
    cannot be read or the copy fails (nothing is written then), and
    kernel.errors.StoreUnavailable when the target cannot be reached."""
    started = time.perf_counter()
    path, _sync = parse_url(source_url)
    root = (data_dir if data_dir is not None else default_data_dir(source_url)) / "attachments"
    report = CopyReport(attachments_root=root)
    source = await _Snapshot.open(path)
    try:
        await run_migrations(target_url)
        try:
            conn = await asyncpg.connect(target_url, timeout=CONNECT_TIMEOUT)
        except UNREACHABLE as exc:
            raise pg_unavailable(exc) from exc
        try:
            await _copy_codecs(conn)
            async with conn.transaction():
                await _copy(source, conn, report)
        except UNREACHABLE as exc:
            raise pg_unavailable(exc) from exc
        finally:
            await conn.close()
    finally:
        await source.close()
    report.seconds = time.perf_counter() - started
    return report


async def _copy_codecs(conn: asyncpg.Connection) -> None:
    """Times as integers of microseconds (as every store connection takes them); JSON as
    text in the binary forms COPY sends (json: the text; jsonb: a version byte, then the
    text)."""
    await setup_connection(conn)
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: data[1:].decode(),
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=lambda text: text.encode(),
        decoder=lambda data: data.decode(),
        format="binary",
    )


async def _copy(source: _Snapshot, conn: asyncpg.Connection, report: CopyReport) -> None:
    # Held until the commit: no process appends events meanwhile.
    head = int(await conn.fetchval("SELECT last FROM event_head WHERE id = 1 FOR UPDATE"))
    found = await _what_is_there(conn, head)
    if found:
        raise TargetNotEmpty(found)
    for table in TABLES:
        rows = _converted(source, table)
        report.rows[table.name] = await _copy_rows(conn, table.name, table.columns, rows)
        if table.name == "attachments":
            data = _attachment_data(source, report)
            report.rows[ATTACHMENT_DATA] = await _copy_rows(
                conn, ATTACHMENT_DATA, ("id", "data"), data
            )
    for table in TABLES:
        if table.identity:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
    last = await source.value("SELECT COALESCE(MAX(seq), 0) FROM events")
    await conn.execute("UPDATE event_head SET last = $1 WHERE id = 1", last)
    report.last_event_id = last
    # Routing's version moves, so that any process that loaded its agent index from the
    # empty database loads it again.
    await conn.execute("UPDATE routing_state SET version = version + 1 WHERE id = 1")


async def _what_is_there(conn: asyncpg.Connection, head: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for name in TARGET_DATA_TABLES:
        n = int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
        if n:
            found[name] = n
    if head > 0:
        found["event_head"] = head
    return found


async def _copy_rows(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    rows: AsyncIterator[tuple[Any, ...]],
) -> int:
    """COPY the rows into the table; returns how many. A row PostgreSQL refuses is named by
    its first column (its id) in the error."""
    firsts: list[Any] = []

    async def keeping() -> AsyncIterator[tuple[Any, ...]]:
        async for row in rows:
            firsts.append(row[0])
            yield row

    try:
        await conn.copy_records_to_table(table, records=keeping(), columns=list(columns))
    except sqlite3.Error as exc:
        raise CopyError(f"reading {table} from the source failed: {exc}") from exc
    except (asyncpg.PostgresError, TypeError, ValueError) as exc:
        where = ""
        line = re.search(
            r"COPY \w+, line (\d+)(, column (\w+))?", getattr(exc, "context", None) or ""
        )
        if line is not None and 0 < int(line.group(1)) <= len(firsts):
            where = f" ({columns[0]} {firsts[int(line.group(1)) - 1]!r}"
            where += f", column {line.group(3)})" if line.group(3) else ")"
        raise CopyError(f"copying {table} failed{where}: {type(exc).__name__}: {exc}") from exc
    return len(firsts)


async def _converted(source: _Snapshot, table: Table) -> AsyncIterator[tuple[Any, ...]]:
    convert = _converter(table)
    sql = f"SELECT {', '.join(table.columns)} FROM {table.name}"
    async for batch in source.batches(sql):
        for row in batch:
            yield convert(row)


def _converter(table: Table) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    if table.name == "raw_events":
        return _raw_event
    if table.name == "attachments":
        path = table.columns.index("path")
        return lambda row: (*row[:path], "", *row[path + 1 :])
    flags = [i for i, name in enumerate(table.columns) if name in table.booleans]
    if not flags:
        return tuple

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in flags:
            if values[i] is not None:
                values[i] = bool(values[i])
        return tuple(values)

    return convert


def _raw_event(row: tuple[Any, ...]) -> tuple[Any, ...]:
    id_, channel_id, kind, reason, payload, created_at, digest = row
    if digest is None:
        # Kept before SQLite recorded digests (schema 6): such rows never matched a resend
        # there, and must not collide with one another here (digests are unique per
        # channel and required on PostgreSQL). No SHA-256 hex digest looks like this.
        digest = f"sqlite-{id_}"
    # As the PostgreSQL backend keeps them: text cannot hold NUL.
    payload = payload.replace("\x00", "\\u0000")
    reason = reason.replace("\x00", "")
    return (id_, channel_id, kind, reason, payload, created_at, digest)


async def _attachment_data(source: _Snapshot, report: CopyReport) -> AsyncIterator[tuple[Any, ...]]:
    root = report.attachments_root
    async for batch in source.batches("SELECT id, path, size, sha256 FROM attachments"):
        for attachment_id, relative, size, sha256 in batch:
            if not relative:
                continue
            path = root / relative
            if Path(relative).is_absolute() or ".." in Path(relative).parts:
                report.problems.append(
                    f"attachment {attachment_id}: its path {relative!r} is outside "
                    f"{root}; its record is copied, its file is not"
                )
                continue
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                report.problems.append(
                    f"attachment {attachment_id}: {path} is missing; its record is copied, "
                    "its file is not"
                )
                continue
            except OSError as exc:
                raise CopyError(f"attachment {attachment_id}: cannot read {path}: {exc}") from exc
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                report.problems.append(
                    f"attachment {attachment_id}: {path} is not the file recorded "
                    f"({len(data)} bytes, {size} recorded); copied as it is"
                )
            yield (attachment_id, data)


class _Snapshot:
    """The SQLite source, read in one read transaction on one thread of its own."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def open(cls, path: str) -> _Snapshot:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-store")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _begin, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def value(self, sql: str) -> Any:
        return await self._run(lambda: self._conn.execute(sql).fetchone()[0])

    async def batches(self, sql: str) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await self._run(lambda: self._conn.execute(sql))
        try:
            while True:
                batch: list[tuple[Any, ...]] = await self._run(lambda: cursor.fetchmany(BATCH))
                if not batch:
                    return
                yield batch
        finally:
            await self._run(cursor.close)

    async def close(self) -> None:
        def end() -> None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            finally:
                self._conn.close()

        try:
            await self._run(end)
        finally:
            self._executor.shutdown(wait=True)


def _begin(path: str) -> sqlite3.Connection:
    """A connection inside a read transaction whose snapshot is taken now."""
    if not os.path.isfile(path):  # connecting would make an empty one
        raise CopyError(f"there is no SQLite database at {path}")
    try:
        conn = sqlite_connect(path, synchronous="full", readonly=True)
    except sqlite3.Error as exc:
        raise CopyError(f"cannot open the SQLite database {path}: {exc}") from exc
    conn.row_factory = None  # plain tuples
    try:
        conn.execute("BEGIN")
        # The first read takes the snapshot every later read of this transaction sees.
        has_log = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()[0]
        if not has_log:
            raise CopyError(f"{path} is not a database of this gateway (no schema_migrations)")
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        known = {step for step, _ in SQLITE_MIGRATIONS}
        newest = SQLITE_MIGRATIONS[-1][0]
        version = max(applied, default=0)
        if applied - known:
            raise CopyError(
                f"{path} has schema version {version}, newer than this gateway knows "
                f"({newest}): run migrate-store of the gateway version that wrote it"
            )
        if known - applied:
            raise CopyError(
                f"{path} has schema version {version}, older than this gateway's ({newest}): "
                "bring it up to date first (`omnigw migrate` with its configuration, or start "
                "the gateway on it once)"
            )
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise CopyError(f"cannot read the SQLite database {path}: {exc}") from exc
        raise
    return conn
