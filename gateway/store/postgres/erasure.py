"""Erasing a person and the retention sweep: rows blanked or deleted inside a unit of work
(gateway.store.transaction.ErasureRows). Dead row versions are left to ``Store.reclaim``
(VACUUM), run after the commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx


class ErasureTx:
    __slots__ = ("tx",)

    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def erased_at(self, contact_id: str) -> int | None:
        found = await self.tx.fetchval("SELECT erased_at FROM contacts WHERE id = $1", contact_id)
        return None if found is None else int(found)

    async def conversations_of(self, contact_ids: Sequence[str]) -> list[str]:
        found = await self.tx.fetch(
            "SELECT id FROM conversations WHERE contact_id = ANY($1::text[]) ORDER BY id",
            list(contact_ids),
        )
        return [r[0] for r in found]

    async def resolved_before(self, before: int, limit: int) -> list[str]:
        found = await self.tx.fetch(
            "SELECT c.id FROM conversations c WHERE c.status = 'resolved' "
            "AND c.resolved_at < $1 AND (c.subject IS NOT NULL OR EXISTS ("
            "SELECT 1 FROM messages m WHERE m.conversation_id = c.id "
            "AND (m.parts <> '[]'::jsonb OR m.metadata IS NOT NULL))) "
            "ORDER BY c.resolved_at, c.id LIMIT $2",
            before,
            limit,
        )
        return [r[0] for r in found]

    async def message_parts(self, conversation_ids: Sequence[str]) -> list[str]:
        found = await self.tx.fetch(
            "SELECT parts FROM messages WHERE conversation_id = ANY($1::text[])",
            list(conversation_ids),
        )
        return [r[0] for r in found]

    async def blank_messages(self, conversation_ids: Sequence[str], error_json: str) -> int:
        status = await self.tx.execute(
            "UPDATE messages SET parts = '[]'::jsonb, metadata = NULL, external_id = NULL, "
            "peer_id = NULL, "
            "idempotency_key = NULL, request_hash = NULL, "
            "error = CASE WHEN status = 'pending' THEN $2::jsonb WHEN error IS NULL THEN NULL "
            "ELSE jsonb_set(error, '{reason}', '\"erased\"') END, "
            "status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END, "
            "next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL "
            "WHERE conversation_id = ANY($1::text[])",
            list(conversation_ids),
            error_json,
        )
        return int(status.split()[-1])

    async def blank_conversations(
        self, conversation_ids: Sequence[str], *, recipient: bool
    ) -> None:
        sets = "subject = NULL" + (", recipient_id = ''" if recipient else "")
        await self.tx.execute(
            f"UPDATE conversations SET {sets} WHERE id = ANY($1::text[])",
            list(conversation_ids),
        )

    async def blank_contacts(self, contact_ids: Sequence[str], at: int) -> None:
        ids = list(contact_ids)
        await self.tx.execute(
            "DELETE FROM identities WHERE contact_id = ANY($1::text[]) "
            "OR original_contact_id = ANY($1::text[])",
            ids,
        )
        # The folded name and its tails are the name too (contact search).
        await self.tx.execute("DELETE FROM contact_names WHERE contact_id = ANY($1::text[])", ids)
        await self.tx.execute(
            "DELETE FROM contacts_apart WHERE low = ANY($1::text[]) OR high = ANY($1::text[])",
            ids,
        )
        await self.tx.execute(
            "UPDATE contacts SET display_name = NULL, phone = NULL, phone_verified = false, "
            "email = NULL, email_verified = false, attributes = '{}', name_key = '', "
            "erased_at = $2 WHERE id = ANY($1::text[])",
            ids,
            at,
        )

    async def events_of(
        self, conversation_ids: Sequence[str], contact_ids: Sequence[str]
    ) -> list[tuple[int, str]]:
        found: dict[int, str] = {}
        if conversation_ids:
            for row in await self.tx.fetch(
                "SELECT seq, data FROM events WHERE conversation_id = ANY($1::text[])",
                list(conversation_ids),
            ):
                found[int(row[0])] = row[1]
        for contact_id in contact_ids:
            for row in await self.tx.fetch(
                "SELECT seq, data FROM events WHERE type LIKE 'contact.%' "
                "AND strpos(data::text, $1) > 0",
                contact_id,
            ):
                found[int(row[0])] = row[1]
        return sorted(found.items())

    async def rewrite_event(self, seq: int, data_json: str) -> None:
        await self.tx.execute("UPDATE events SET data = $1::json WHERE seq = $2", data_json, seq)

    async def blank_attempts(self, seqs: Sequence[int], needles: Sequence[str]) -> int:
        changed = 0
        if seqs:
            status = await self.tx.execute(
                "UPDATE webhook_attempts SET response = NULL, error = NULL "
                "WHERE event_seq = ANY($1::bigint[])",
                list(seqs),
            )
            changed += int(status.split()[-1])
            await self.tx.execute(
                "UPDATE webhook_deliveries SET last_error = NULL "
                "WHERE event_seq = ANY($1::bigint[])",
                list(seqs),
            )
        for needle in needles:
            status = await self.tx.execute(
                "UPDATE webhook_attempts SET response = NULL, error = NULL "
                "WHERE strpos(response, $1) > 0 OR strpos(error, $1) > 0",
                needle,
            )
            changed += int(status.split()[-1])
            await self.tx.execute(
                "UPDATE webhook_deliveries SET last_error = NULL WHERE strpos(last_error, $1) > 0",
                needle,
            )
        return changed

    async def drop_raw_events(
        self, *, needles: Sequence[str] = (), before: int | None = None, limit: int = 0
    ) -> int:
        dropped = 0
        for needle in needles:
            status = await self.tx.execute(
                "DELETE FROM raw_events WHERE strpos(payload, $1) > 0", needle
            )
            dropped += int(status.split()[-1])
        if before is not None:
            status = await self.tx.execute(
                "DELETE FROM raw_events WHERE id IN (SELECT id FROM raw_events "
                "WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                before,
                limit,
            )
            dropped += int(status.split()[-1])
        return dropped

    async def drop_channel_state(self, naming: Sequence[str]) -> int:
        dropped = 0
        for external_id in naming:
            status = await self.tx.execute(
                "DELETE FROM channel_state WHERE strpos(key, $1) > 0", external_id
            )
            dropped += int(status.split()[-1])
        return dropped

    async def drop_attempts(self, before: int, limit: int) -> int:
        status = await self.tx.execute(
            "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts "
            "WHERE at < $1 ORDER BY at LIMIT $2)",
            before,
            limit,
        )
        return int(status.split()[-1])

    async def drop_attachments(
        self, attachment_ids: Sequence[str] = (), *, before: int | None = None, limit: int = 0
    ) -> list[str]:
        if before is not None:
            rows = await self.tx.fetch(
                "DELETE FROM attachments WHERE id IN (SELECT id FROM attachments "
                "WHERE created_at < $1 ORDER BY created_at LIMIT $2) RETURNING path",
                before,
                limit,
            )
        elif attachment_ids:
            rows = await self.tx.fetch(
                "DELETE FROM attachments WHERE id = ANY($1::text[]) RETURNING path",
                list(attachment_ids),
            )
        else:
            return []
        # attachment_data goes with them (ON DELETE CASCADE)
        return [r[0] or "" for r in rows]
