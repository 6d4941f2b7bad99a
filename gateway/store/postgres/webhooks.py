"""Webhook endpoints and their delivery state, inside write transactions.

Per endpoint: `cursor` (every event up to it is delivered, dead, or has a row below),
rows for deliveries that could not go out at once (`pending`: a retry is scheduled;
`waiting`: an earlier event of the same conversation is still unsettled; `dead`: every
attempt failed), and the log of every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from gateway.store.postgres.reading import Reader, Write, count
from gateway.store.records import AttemptLog, DeliveryRow, WebhookRecord, from_us, opt_dt
from kernel.errors import NotFound

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

Conn = Any  # a pooled connection or a unit of work's transaction (same query methods)


def _record(row: Any) -> WebhookRecord:
    return WebhookRecord(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        events=json.loads(row["events"]),
        source=row["source"],
        created_at=from_us(row["created_at"]),
        disabled_at=opt_dt(row["disabled_at"]),
        disabled_reason=row["disabled_reason"],
        failing_since=opt_dt(row["failing_since"]),
        last_success_at=opt_dt(row["last_success_at"]),
        cursor=row["cursor"],
        sealed_secrets=row["secrets"],
    )


async def get(conn: Conn, endpoint_id: str) -> WebhookRecord | None:
    row = await conn.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)
    return None if row is None else _record(row)


async def must_get(tx: PgTx, endpoint_id: str) -> WebhookRecord:
    found = await get(tx, endpoint_id)
    if found is None:
        raise NotFound(f"webhook {endpoint_id} not found", code="webhook_not_found")
    return found


async def list_all(conn: asyncpg.Connection) -> list[WebhookRecord]:
    return [_record(r) for r in await conn.fetch("SELECT * FROM webhook_endpoints ORDER BY id")]


async def upsert(tx: PgTx, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord:
    # One statement: replicas starting together each put the configured endpoints.
    await tx.execute(
        "INSERT INTO webhook_endpoints (id, url, description, events, source, secrets, "
        "created_at, updated_at, cursor) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) "
        "ON CONFLICT (id) DO UPDATE SET url = excluded.url, "
        "description = excluded.description, events = excluded.events, "
        "source = excluded.source, secrets = excluded.secrets, updated_at = excluded.updated_at, "
        "cursor = CASE WHEN $9 THEN webhook_endpoints.cursor ELSE excluded.cursor END",
        record.id,
        record.url,
        record.description,
        json.dumps(record.events),
        record.source,
        record.sealed_secrets,
        tx.now,
        record.cursor,
        keep_cursor,
    )
    return await must_get(tx, record.id)


async def set_enabled(
    tx: PgTx, endpoint_id: str, enabled: bool, reason: str | None
) -> WebhookRecord:
    current = await must_get(tx, endpoint_id)
    if enabled and current.disabled_at is not None:
        await tx.execute(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, "
            "failing_since = NULL, updated_at = $1 WHERE id = $2",
            tx.now,
            endpoint_id,
        )
        await tx.emit("webhook.enabled", {"webhook_id": endpoint_id})
    elif not enabled and current.disabled_at is None:
        await tx.execute(
            "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2, "
            "updated_at = $1 WHERE id = $3",
            tx.now,
            reason,
            endpoint_id,
        )
        await tx.emit("webhook.disabled", {"webhook_id": endpoint_id, "reason": reason})
    return await must_get(tx, endpoint_id)


async def delete(tx: PgTx, endpoint_id: str) -> None:
    await must_get(tx, endpoint_id)
    for table in ("webhook_attempts", "webhook_deliveries"):
        await tx.execute(f"DELETE FROM {table} WHERE endpoint_id = $1", endpoint_id)
    await tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)


async def record_progress(
    tx: PgTx,
    endpoint_id: str,
    *,
    cursor: int | None,
    attempts: Sequence[AttemptLog],
    rows_: Sequence[DeliveryRow],
    settled: Sequence[int],
    success_at: int | None,
    failed_at: int | None,
) -> None:
    """One batch of outcomes: attempts logged, rows written or settled, cursor moved."""
    if attempts:
        await tx.executemany(
            "INSERT INTO webhook_attempts (endpoint_id, event_seq, attempt, at, status_code, "
            "latency_ms, outcome, error, response) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [(endpoint_id, *a) for a in attempts],
        )
    if rows_:
        await tx.executemany(
            "INSERT INTO webhook_deliveries (endpoint_id, event_seq, conversation_id, status, "
            "attempts, next_attempt_at, last_status_code, last_error, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (endpoint_id, event_seq) DO UPDATE "
            "SET status = excluded.status, attempts = excluded.attempts, "
            "next_attempt_at = excluded.next_attempt_at, "
            "last_status_code = excluded.last_status_code, last_error = excluded.last_error, "
            "updated_at = excluded.updated_at",
            [
                (
                    endpoint_id,
                    r.event_seq,
                    r.conversation_id,
                    r.status,
                    r.attempts,
                    r.next_attempt_at,
                    r.last_status_code,
                    r.last_error,
                    tx.now,
                )
                for r in rows_
            ],
        )
    if settled:
        await tx.execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND event_seq = ANY($2)",
            endpoint_id,
            list(settled),
        )
    sets: list[str] = []
    params: list[Any] = []
    if cursor is not None:
        params.append(cursor)
        sets.append(f"cursor = GREATEST(cursor, ${len(params)})")
    if success_at is not None:
        params.append(success_at)
        sets.append(f"last_success_at = ${len(params)}, failing_since = NULL")
    elif failed_at is not None:
        params.append(failed_at)
        sets.append(f"failing_since = COALESCE(failing_since, ${len(params)})")
    if sets:
        params.append(endpoint_id)
        await tx.execute(
            f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = ${len(params)}",
            *params,
        )


async def open_rows(conn: asyncpg.Connection, endpoint_id: str) -> list[DeliveryRow]:
    """Pending and waiting deliveries of an endpoint, in event order."""
    return [
        DeliveryRow(
            event_seq=r["event_seq"],
            conversation_id=r["conversation_id"],
            status=r["status"],
            attempts=r["attempts"],
            next_attempt_at=r["next_attempt_at"],
            last_status_code=r["last_status_code"],
            last_error=r["last_error"],
        )
        for r in await conn.fetch(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 "
            "AND status IN ('pending', 'waiting') ORDER BY event_seq",
            endpoint_id,
        )
    ]


async def attempts_page(
    conn: asyncpg.Connection,
    endpoint_id: str,
    before: int | None,
    limit: int,
    outcome: str | None,
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM webhook_attempts WHERE endpoint_id = $1"
    params: list[Any] = [endpoint_id]
    if before is not None:
        params.append(before)
        sql += f" AND id < ${len(params)}"
    if outcome is not None:
        params.append(outcome)
        sql += f" AND outcome = ${len(params)}"
    params.append(limit)
    sql += f" ORDER BY id DESC LIMIT ${len(params)}"
    return [dict(r) for r in await conn.fetch(sql, *params)]


async def replay(tx: PgTx, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
    """Dead deliveries back to pending, or the cursor back to just after ``since_seq``."""
    await must_get(tx, endpoint_id)
    replayed = 0
    if dead:
        replayed = count(
            await tx.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                "next_attempt_at = $1, updated_at = $1 WHERE endpoint_id = $2 "
                "AND status = 'dead'",
                tx.now,
                endpoint_id,
            )
        )
    if since_seq is not None:
        replayed += int(await tx.fetchval("SELECT COUNT(*) FROM events WHERE seq > $1", since_seq))
        await tx.execute(
            "UPDATE webhook_endpoints SET cursor = LEAST(cursor, $1), updated_at = $2 "
            "WHERE id = $3",
            since_seq,
            tx.now,
            endpoint_id,
        )
        # Deliveries already waiting or pending stay as they are; the rest is sent again.
    return replayed


class WebhookLog:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def _do(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any
    ) -> Any:
        async def work(tx: PgTx) -> Any:
            return await fn(tx, *args, **kwargs)

        return await self._write(work)

    async def put(self, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord:
        found: WebhookRecord = await self._do(upsert, record, keep_cursor=keep_cursor)
        return found

    async def get(self, endpoint_id: str) -> WebhookRecord | None:
        found: WebhookRecord | None = await self._read(get, endpoint_id)
        return found

    async def all(self) -> list[WebhookRecord]:
        found: list[WebhookRecord] = await self._read(list_all)
        return found

    async def delete(self, endpoint_id: str) -> None:
        await self._do(delete, endpoint_id)

    async def set_enabled(
        self, endpoint_id: str, enabled: bool, reason: str | None = None
    ) -> WebhookRecord:
        found: WebhookRecord = await self._do(set_enabled, endpoint_id, enabled, reason)
        return found

    async def reseal(self, endpoint_id: str, old: str, new: str) -> bool:
        async def work(tx: PgTx) -> bool:
            status = await tx.execute(
                "UPDATE webhook_endpoints SET secrets = $1 WHERE id = $2 AND secrets = $3",
                new,
                endpoint_id,
                old,
            )
            return count(status) > 0

        done: bool = await self._do(work)
        return done

    async def record_progress(
        self,
        endpoint_id: str,
        *,
        cursor: int | None,
        attempts: Sequence[AttemptLog],
        rows: Sequence[DeliveryRow],
        settled: Sequence[int],
        success_at: int | None,
        failed_at: int | None,
    ) -> None:
        await self._do(
            record_progress,
            endpoint_id,
            cursor=cursor,
            attempts=attempts,
            rows_=rows,
            settled=settled,
            success_at=success_at,
            failed_at=failed_at,
        )

    async def open_rows(self, endpoint_id: str) -> list[DeliveryRow]:
        found: list[DeliveryRow] = await self._read(open_rows, endpoint_id)
        return found

    async def attempts(
        self, endpoint_id: str, before: int | None, limit: int, outcome: str | None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._read(
            attempts_page, endpoint_id, before, limit, outcome
        )
        return found

    async def replay(self, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
        found: int = await self._do(replay, endpoint_id, since_seq=since_seq, dead=dead)
        return found
