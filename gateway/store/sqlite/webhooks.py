"""Webhook endpoints and their delivery state, inside write transactions.

Per endpoint: `cursor` (every event up to it is delivered, dead, or has a row below),
rows for deliveries that could not go out at once (`pending`: a retry is scheduled;
`waiting`: an earlier event of the same conversation is still unsettled; `dead`: every
attempt failed), and the log of every attempt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.store.records import AttemptLog, DeliveryRow, WebhookRecord, from_us, opt_dt
from gateway.store.sqlite.reading import Reader, Write
from kernel.errors import NotFound

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx


def _record(row: sqlite3.Row) -> WebhookRecord:
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


def get(conn: sqlite3.Connection | SqliteTx, endpoint_id: str) -> WebhookRecord | None:
    row = conn.execute("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    return None if row is None else _record(row)


def must_get(tx: SqliteTx, endpoint_id: str) -> WebhookRecord:
    found = get(tx, endpoint_id)
    if found is None:
        raise NotFound(f"webhook {endpoint_id} not found", code="webhook_not_found")
    return found


def list_all(conn: sqlite3.Connection) -> list[WebhookRecord]:
    return [_record(r) for r in conn.execute("SELECT * FROM webhook_endpoints ORDER BY id")]


def upsert(tx: SqliteTx, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord:
    existing = get(tx, record.id)
    if existing is None:
        tx.execute(
            "INSERT INTO webhook_endpoints (id, url, description, events, source, secrets, "
            "created_at, updated_at, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.url,
                record.description,
                json.dumps(record.events),
                record.source,
                record.sealed_secrets,
                tx.now,
                tx.now,
                record.cursor,
            ),
        )
    else:
        tx.execute(
            "UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, source = ?, "
            "secrets = ?, updated_at = ?, cursor = ? WHERE id = ?",
            (
                record.url,
                record.description,
                json.dumps(record.events),
                record.source,
                record.sealed_secrets,
                tx.now,
                existing.cursor if keep_cursor else record.cursor,
                record.id,
            ),
        )
    return must_get(tx, record.id)


def set_enabled(tx: SqliteTx, endpoint_id: str, enabled: bool, reason: str | None) -> WebhookRecord:
    current = must_get(tx, endpoint_id)
    if enabled and current.disabled_at is not None:
        tx.execute(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, "
            "failing_since = NULL, updated_at = ? WHERE id = ?",
            (tx.now, endpoint_id),
        )
        tx.append_event("webhook.enabled", {"webhook_id": endpoint_id})
    elif not enabled and current.disabled_at is None:
        tx.execute(
            "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? "
            "WHERE id = ?",
            (tx.now, reason, tx.now, endpoint_id),
        )
        tx.append_event("webhook.disabled", {"webhook_id": endpoint_id, "reason": reason})
    return must_get(tx, endpoint_id)


def delete(tx: SqliteTx, endpoint_id: str) -> None:
    must_get(tx, endpoint_id)
    for table in ("webhook_attempts", "webhook_deliveries"):
        tx.execute(f"DELETE FROM {table} WHERE endpoint_id = ?", (endpoint_id,))
    tx.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))


def record_progress(
    tx: SqliteTx,
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
        tx.conn.executemany(
            "INSERT INTO webhook_attempts (endpoint_id, event_seq, attempt, at, status_code, "
            "latency_ms, outcome, error, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(endpoint_id, *a) for a in attempts],
        )
    if rows_:
        tx.conn.executemany(
            "INSERT INTO webhook_deliveries (endpoint_id, event_seq, conversation_id, status, "
            "attempts, next_attempt_at, last_status_code, last_error, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, event_seq) DO UPDATE "
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
        tx.conn.executemany(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = ? AND event_seq = ?",
            [(endpoint_id, seq) for seq in settled],
        )
    sets, params = [], []
    if cursor is not None:
        sets.append("cursor = MAX(cursor, ?)")
        params.append(cursor)
    if success_at is not None:
        sets.append("last_success_at = ?, failing_since = NULL")
        params.append(success_at)
    elif failed_at is not None:
        sets.append("failing_since = COALESCE(failing_since, ?)")
        params.append(failed_at)
    if sets:
        tx.execute(
            f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = ?",
            (*params, endpoint_id),
        )


def open_rows(conn: sqlite3.Connection, endpoint_id: str) -> list[DeliveryRow]:
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
        for r in conn.execute(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? "
            "AND status IN ('pending', 'waiting') ORDER BY event_seq",
            (endpoint_id,),
        )
    ]


def attempts_page(
    conn: sqlite3.Connection,
    endpoint_id: str,
    before: int | None,
    limit: int,
    outcome: str | None,
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM webhook_attempts WHERE endpoint_id = ?"
    params: list[Any] = [endpoint_id]
    if before is not None:
        sql += " AND id < ?"
        params.append(before)
    if outcome is not None:
        sql += " AND outcome = ?"
        params.append(outcome)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [dict(r) for r in conn.execute(sql, params)]


def replay(tx: SqliteTx, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
    """Dead deliveries back to pending, or the cursor back to just after ``since_seq``."""
    must_get(tx, endpoint_id)
    count = 0
    if dead:
        count = tx.execute(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
            "next_attempt_at = ?, updated_at = ? WHERE endpoint_id = ? AND status = 'dead'",
            (tx.now, tx.now, endpoint_id),
        ).rowcount
    if since_seq is not None:
        row = tx.one("SELECT COUNT(*) FROM events WHERE seq > ?", (since_seq,))
        count += int(row[0]) if row else 0
        tx.execute(
            "UPDATE webhook_endpoints SET cursor = MIN(cursor, ?), updated_at = ? WHERE id = ?",
            (since_seq, tx.now, endpoint_id),
        )
        # Deliveries already waiting or pending stay as they are; the rest is sent again.
    return count


class WebhookLog:
    def __init__(self, reader: Reader, write: Write) -> None:
        self._read = reader
        self._write = write

    async def _do(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def work(tx: SqliteTx) -> Any:
            return fn(tx, *args, **kwargs)

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
        def work(tx: SqliteTx) -> bool:
            cursor = tx.execute(
                "UPDATE webhook_endpoints SET secrets = ? WHERE id = ? AND secrets = ?",
                (new, endpoint_id, old),
            )
            return cursor.rowcount > 0

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
