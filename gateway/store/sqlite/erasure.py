"""Erasing a person and the retention sweep: rows blanked or deleted inside a unit of work
(gateway.store.transaction.ErasureRows). The writer runs with ``secure_delete`` on, so
what is blanked or deleted does not stay behind in the file's free space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.store.sqlite.reading import marks

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

_CONTACT_EVENT = "type LIKE 'contact.%' AND instr(data, ?) > 0"


class ErasureTx:
    __slots__ = ("tx",)

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def erased_at(self, contact_id: str) -> int | None:
        row = self.tx.one("SELECT erased_at FROM contacts WHERE id = ?", (contact_id,))
        return None if row is None or row[0] is None else int(row[0])

    async def conversations_of(self, contact_ids: Sequence[str]) -> list[str]:
        return [
            r[0]
            for r in self.tx.execute(
                f"SELECT id FROM conversations WHERE contact_id IN ({marks(contact_ids)}) "
                "ORDER BY id",
                tuple(contact_ids),
            )
        ]

    async def resolved_before(self, before: int, limit: int) -> list[str]:
        return [
            r[0]
            for r in self.tx.execute(
                "SELECT c.id FROM conversations c WHERE c.status = 'resolved' "
                "AND c.resolved_at < ? AND (c.subject IS NOT NULL OR EXISTS ("
                "SELECT 1 FROM messages m WHERE m.conversation_id = c.id "
                "AND (m.parts != '[]' OR m.metadata IS NOT NULL))) "
                "ORDER BY c.resolved_at, c.id LIMIT ?",
                (before, limit),
            )
        ]

    async def message_parts(self, conversation_ids: Sequence[str]) -> list[str]:
        return [
            r[0]
            for r in self.tx.execute(
                f"SELECT parts FROM messages WHERE conversation_id IN ({marks(conversation_ids)})",
                tuple(conversation_ids),
            )
        ]

    async def blank_messages(self, conversation_ids: Sequence[str], error_json: str) -> int:
        cur = self.tx.execute(
            "UPDATE messages SET parts = '[]', metadata = NULL, external_id = NULL, "
            "peer_id = NULL, "
            "idempotency_key = NULL, request_hash = NULL, "
            "error = CASE WHEN status = 'pending' THEN ? WHEN error IS NULL THEN NULL "
            "ELSE json_set(error, '$.reason', 'erased') END, "
            "status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, "
            "next_attempt_at = NULL "
            f"WHERE conversation_id IN ({marks(conversation_ids)})",
            (error_json, *conversation_ids),
        )
        return cur.rowcount

    async def blank_conversations(
        self, conversation_ids: Sequence[str], *, recipient: bool
    ) -> None:
        sets = "subject = NULL" + (", recipient_id = ''" if recipient else "")
        self.tx.execute(
            f"UPDATE conversations SET {sets} WHERE id IN ({marks(conversation_ids)})",
            tuple(conversation_ids),
        )

    async def blank_contacts(self, contact_ids: Sequence[str], at: int) -> None:
        ids = tuple(contact_ids)
        self.tx.execute(
            f"DELETE FROM identities WHERE contact_id IN ({marks(ids)}) "
            f"OR original_contact_id IN ({marks(ids)})",
            ids + ids,
        )
        # The folded name and its tails are the name too (contact search).
        self.tx.execute(f"DELETE FROM contact_names WHERE contact_id IN ({marks(ids)})", ids)
        self.tx.execute(
            f"DELETE FROM contacts_apart WHERE low IN ({marks(ids)}) OR high IN ({marks(ids)})",
            ids + ids,
        )
        self.tx.execute(
            "UPDATE contacts SET display_name = NULL, phone = NULL, phone_verified = 0, "
            "email = NULL, email_verified = 0, attributes = '{}', name_key = '', erased_at = ? "
            f"WHERE id IN ({marks(ids)})",
            (at, *ids),
        )

    async def events_of(
        self, conversation_ids: Sequence[str], contact_ids: Sequence[str]
    ) -> list[tuple[int, str]]:
        found: dict[int, str] = {}
        if conversation_ids:
            for seq, data in self.tx.execute(
                f"SELECT seq, data FROM events WHERE conversation_id IN "
                f"({marks(conversation_ids)})",
                tuple(conversation_ids),
            ):
                found[seq] = data
        for contact_id in contact_ids:
            for seq, data in self.tx.execute(
                f"SELECT seq, data FROM events WHERE {_CONTACT_EVENT}", (contact_id,)
            ):
                found[seq] = data
        return sorted(found.items())

    async def rewrite_event(self, seq: int, data_json: str) -> None:
        self.tx.execute("UPDATE events SET data = ? WHERE seq = ?", (data_json, seq))

    async def blank_attempts(self, seqs: Sequence[int], needles: Sequence[str]) -> int:
        changed = 0
        for start in range(0, len(seqs), 500):
            chunk = tuple(seqs[start : start + 500])
            changed += self.tx.execute(
                "UPDATE webhook_attempts SET response = NULL, error = NULL "
                f"WHERE event_seq IN ({marks(chunk)})",
                chunk,
            ).rowcount
            self.tx.execute(
                "UPDATE webhook_deliveries SET last_error = NULL "
                f"WHERE event_seq IN ({marks(chunk)})",
                chunk,
            )
        for needle in needles:
            changed += self.tx.execute(
                "UPDATE webhook_attempts SET response = NULL, error = NULL "
                "WHERE instr(response, ?) > 0 OR instr(error, ?) > 0",
                (needle, needle),
            ).rowcount
            self.tx.execute(
                "UPDATE webhook_deliveries SET last_error = NULL WHERE instr(last_error, ?) > 0",
                (needle,),
            )
        return changed

    async def drop_raw_events(
        self, *, needles: Sequence[str] = (), before: int | None = None, limit: int = 0
    ) -> int:
        dropped = 0
        for needle in needles:
            dropped += self.tx.execute(
                "DELETE FROM raw_events WHERE instr(payload, ?) > 0", (needle,)
            ).rowcount
        if before is not None:
            dropped += self.tx.execute(
                "DELETE FROM raw_events WHERE id IN (SELECT id FROM raw_events "
                "WHERE created_at < ? ORDER BY created_at LIMIT ?)",
                (before, limit),
            ).rowcount
        return dropped

    async def drop_channel_state(self, naming: Sequence[str]) -> int:
        return sum(
            self.tx.execute(
                "DELETE FROM channel_state WHERE instr(key, ?) > 0", (external_id,)
            ).rowcount
            for external_id in naming
        )

    async def drop_attempts(self, before: int, limit: int) -> int:
        return self.tx.execute(
            "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts "
            "WHERE at < ? ORDER BY at LIMIT ?)",
            (before, limit),
        ).rowcount

    async def drop_attachments(
        self, attachment_ids: Sequence[str] = (), *, before: int | None = None, limit: int = 0
    ) -> list[str]:
        if before is not None:
            rows = self.tx.execute(
                "SELECT id, path FROM attachments WHERE created_at < ? ORDER BY created_at LIMIT ?",
                (before, limit),
            ).fetchall()
        elif attachment_ids:
            rows = self.tx.execute(
                f"SELECT id, path FROM attachments WHERE id IN ({marks(attachment_ids)})",
                tuple(attachment_ids),
            ).fetchall()
        else:
            return []
        ids = tuple(r[0] for r in rows)
        if ids:
            self.tx.execute(f"DELETE FROM attachments WHERE id IN ({marks(ids)})", ids)
        return [r[1] or "" for r in rows]
