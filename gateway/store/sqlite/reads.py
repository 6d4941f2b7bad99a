"""Read queries of the SQLite backend; each runs on a reader connection."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store.base import (
    AttachmentRecord,
    ConversationFilter,
    OutboundJob,
    Page,
    TokenRecord,
    encode_cursor,
)
from gateway.store.sqlite import rows
from kernel.envelope import OutboundMessage
from kernel.events import Event
from kernel.ids import AgentId, TokenId
from kernel.models import Agent, Contact, Conversation, Identity, Message

THREAD_REFS_LIMIT = 30


def _page(items: list[Any], limit: int, key: str) -> tuple[list[Any], str | None]:
    if len(items) > limit:
        items = items[:limit]
        return items, encode_cursor(getattr(items[-1], key))
    return items, None


def group(conn: sqlite3.Connection, contact_id: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM contacts WHERE id = ? OR merged_into = ?", (contact_id, contact_id)
        )
    ]


def marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def get_conversation(conn: sqlite3.Connection, conversation_id: str) -> Conversation | None:
    row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return None if row is None else rows.conversation(row)


def list_conversations(
    conn: sqlite3.Connection, f: ConversationFilter, after: str | None, limit: int
) -> Page[Conversation]:
    where, params = [], []
    if f.status:
        where.append("status = ?")
        params.append(f.status.value)
    if f.assignee_id:
        where.append("assignee_id = ?")
        params.append(f.assignee_id)
    if f.channel_id:
        where.append("channel_id = ?")
        params.append(f.channel_id)
    if f.contact_id:
        ids = group(conn, f.contact_id) or [f.contact_id]
        where.append(f"contact_id IN ({marks(ids)})")
        params.extend(ids)
    if after:
        where.append("id < ?")
        params.append(after)
    sql = "SELECT * FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    items = [rows.conversation(r) for r in conn.execute(sql, (*params, limit + 1))]
    page, cursor = _page(items, limit, "id")
    return Page[Conversation](items=page, next_cursor=cursor)


def get_message(conn: sqlite3.Connection, message_id: str) -> Message | None:
    row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
    return None if row is None else rows.message(row)


def list_messages(
    conn: sqlite3.Connection, conversation_id: str, after: str | None, limit: int
) -> Page[Message]:
    items = [
        rows.message(r)
        for r in conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
            (conversation_id, after or "", limit + 1),
        )
    ]
    page, cursor = _page(items, limit, "id")
    return Page[Message](items=page, next_cursor=cursor)


def get_contact(conn: sqlite3.Connection, contact_id: str) -> Contact | None:
    row = conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    if row is None:
        return None
    idents = [
        rows.identity(r)
        for r in conn.execute(
            "SELECT * FROM identities WHERE contact_id = ? ORDER BY created_at, channel_id, "
            "external_id",
            (contact_id,),
        )
    ]
    return rows.contact(row, idents)


def timeline(
    conn: sqlite3.Connection, contact_id: str, before: str | None, limit: int
) -> Page[Message]:
    ids = group(conn, contact_id)
    params: list[Any] = [*ids]
    sql = f"SELECT * FROM messages WHERE contact_id IN ({marks(ids)})"
    if before:
        sql += " AND id < ?"
        params.append(before)
    sql += " ORDER BY id DESC LIMIT ?"
    items = [rows.message(r) for r in conn.execute(sql, (*params, limit + 1))]
    page, cursor = _page(items, limit, "id")
    return Page[Message](items=page, next_cursor=cursor)


def message_known(conn: sqlite3.Connection, channel_id: str, external_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM messages WHERE channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    ).fetchone()
    return row is not None


def identity_contact(conn: sqlite3.Connection, channel_id: str, external_id: str) -> str | None:
    row = conn.execute(
        "SELECT contact_id FROM identities WHERE channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    ).fetchone()
    return None if row is None else str(row[0])


def channel_history(
    conn: sqlite3.Connection,
    channel_id: str,
    external_id: str,
    before: str | None,
    after: str | None,
    limit: int,
) -> list[Message]:
    contact_id = identity_contact(conn, channel_id, external_id)
    if contact_id is None:
        return []
    ids = group(conn, contact_id)
    params: list[Any] = [*ids, channel_id]
    sql = f"SELECT * FROM messages WHERE contact_id IN ({marks(ids)}) AND channel_id = ?"
    if before:
        sql += " AND id < ?"
        params.append(before)
    if after:
        sql += " AND id > ?"
        params.append(after)
    # "after" pages forward from a point; otherwise take the newest before the point.
    sql += " ORDER BY id " + ("ASC" if after else "DESC") + " LIMIT ?"
    items = [rows.message(r) for r in conn.execute(sql, (*params, limit))]
    if not after:
        items.reverse()
    return items


def open_conversation(conn: sqlite3.Connection, channel_id: str, external_id: str) -> str | None:
    contact_id = identity_contact(conn, channel_id, external_id)
    if contact_id is None:
        return None
    found = [
        row[0]
        for member in group(conn, contact_id)
        for row in conn.execute(
            "SELECT id FROM conversations WHERE contact_id = ? AND channel_id = ? "
            "AND status != 'resolved'",
            (member, channel_id),
        )
    ]
    return max(found) if found else None


def get_agent(conn: sqlite3.Connection, agent_id: str) -> Agent | None:
    row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else rows.agent(row)


def list_agents(conn: sqlite3.Connection, after: str | None, limit: int) -> Page[Agent]:
    items = [
        rows.agent(r)
        for r in conn.execute(
            "SELECT * FROM agents WHERE id > ? ORDER BY id LIMIT ?", (after or "", limit + 1)
        )
    ]
    page, cursor = _page(items, limit, "id")
    return Page[Agent](items=page, next_cursor=cursor)


def events_after(
    conn: sqlite3.Connection,
    seq: int,
    limit: int,
    types: Sequence[str] | None,
    conversation_id: str | None,
) -> list[Event]:
    sql, params = "SELECT * FROM events WHERE seq > ?", [seq]
    if conversation_id:
        sql += " AND conversation_id = ?"
        params.append(conversation_id)  # type: ignore[arg-type]
    if types:
        sql += f" AND type IN ({marks(types)})"
        params.extend(types)  # type: ignore[arg-type]
    sql += " ORDER BY seq LIMIT ?"
    return [rows.event(r) for r in conn.execute(sql, (*params, limit))]


def last_event_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(row[0])


def due_outbound(conn: sqlite3.Connection, now_us: int, limit: int) -> list[OutboundJob]:
    jobs = []
    # A message waits while an earlier pending message of its conversation is not due yet,
    # so a retried reply is never overtaken by the next one.
    for m in conn.execute(
        "SELECT * FROM messages m WHERE m.status = 'pending' AND m.next_attempt_at <= ? "
        "AND NOT EXISTS (SELECT 1 FROM messages p WHERE p.conversation_id = m.conversation_id "
        "AND p.status = 'pending' AND p.id < m.id AND p.next_attempt_at > ?) "
        "ORDER BY m.id LIMIT ?",
        (now_us, now_us, limit),
    ).fetchall():
        conv_row = conn.execute(
            "SELECT * FROM conversations WHERE id = ?", (m["conversation_id"],)
        ).fetchone()
        ident = conn.execute(
            "SELECT * FROM identities WHERE channel_id = ? AND external_id = ?",
            (conv_row["channel_id"], conv_row["recipient_id"]),
        ).fetchone()
        reply_ext = None
        if m["reply_to"]:
            r = conn.execute(
                "SELECT external_id FROM messages WHERE id = ?", (m["reply_to"],)
            ).fetchone()
            reply_ext = r[0] if r else None
        refs = [
            r[0]
            for r in conn.execute(
                "SELECT external_id FROM messages WHERE conversation_id = ? AND id < ? "
                "AND external_id IS NOT NULL ORDER BY id DESC LIMIT ?",
                (m["conversation_id"], m["id"], THREAD_REFS_LIMIT),
            )
        ]
        refs.reverse()
        jobs.append(
            OutboundJob(
                outbound=OutboundMessage(
                    message=rows.message(m),
                    conversation=rows.conversation(conv_row),
                    recipient=rows.identity(ident)
                    if ident is not None
                    else Identity(
                        channel_id=conv_row["channel_id"],
                        channel_type=conv_row["channel_type"],
                        external_id=conv_row["recipient_id"],
                    ),
                    reply_to_external_id=reply_ext,
                    thread_external_ids=refs,
                    last_inbound_at=rows.opt_dt(conv_row["last_inbound_at"]),
                ),
                attempts=m["attempts"],
            )
        )
    return jobs


def next_outbound_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM messages WHERE status = 'pending'"
    ).fetchone()
    return None if row[0] is None else int(row[0])


def _token(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(
        id=TokenId(row["id"]),
        name=row["name"],
        scopes=json.loads(row["scopes"]),
        agent_id=AgentId(row["agent_id"]) if row["agent_id"] else None,
        created_at=rows.from_us(row["created_at"]),
        last_used_at=rows.opt_dt(row["last_used_at"]),
    )


def find_token(conn: sqlite3.Connection, token_hash: str) -> TokenRecord | None:
    row = conn.execute(
        "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    ).fetchone()
    return None if row is None else _token(row)


def list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    return [
        _token(r)
        for r in conn.execute("SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY id")
    ]


def conversation_recipient(conn: sqlite3.Connection, conversation_id: str) -> Identity | None:
    row = conn.execute(
        "SELECT i.* FROM conversations c JOIN identities i "
        "ON i.channel_id = c.channel_id AND i.external_id = c.recipient_id WHERE c.id = ?",
        (conversation_id,),
    ).fetchone()
    return None if row is None else rows.identity(row)


def get_attachment(conn: sqlite3.Connection, attachment_id: str) -> AttachmentRecord | None:
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
