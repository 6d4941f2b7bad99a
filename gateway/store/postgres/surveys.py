"""Satisfaction surveys: rows inside units of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.store.records import SURVEY_COLUMNS, SurveyRecord, survey_record

if TYPE_CHECKING:
    from gateway.store.postgres.tx import PgTx

_FIELDS = frozenset(c.strip() for c in SURVEY_COLUMNS.split(","))
_INSERT = (
    f"INSERT INTO surveys ({SURVEY_COLUMNS}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_FIELDS) + 1))})"
)


class SurveyTx:
    def __init__(self, tx: PgTx) -> None:
        self.tx = tx

    async def insert(self, record: SurveyRecord) -> None:
        await self.tx.execute(_INSERT, *record.values())

    async def get(self, survey_id: str) -> SurveyRecord | None:
        row = await self.tx.fetchrow(
            f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE id = $1 FOR UPDATE", survey_id
        )
        return None if row is None else survey_record(row)

    async def of_conversation(self, conversation_id: str) -> SurveyRecord | None:
        row = await self.tx.fetchrow(
            f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE conversation_id = $1 FOR UPDATE",
            conversation_id,
        )
        return None if row is None else survey_record(row)

    async def update(self, survey_id: str, **changes: Any) -> None:
        if not changes:
            return
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"not survey fields: {sorted(unknown)}")
        names = sorted(changes)
        sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, 1))
        await self.tx.execute(
            f"UPDATE surveys SET {sets} WHERE id = ${len(names) + 1}",
            *(changes[n] for n in names),
            survey_id,
        )

    async def due(self, now: int, limit: int) -> list[SurveyRecord]:
        # SKIP LOCKED: a survey another process is sending right now is left to it.
        found = await self.tx.fetch(
            f"SELECT {SURVEY_COLUMNS} FROM surveys "
            "WHERE status = 'scheduled' AND due_at <= $1 ORDER BY due_at, id LIMIT $2 "
            "FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return [survey_record(r) for r in found]

    async def asked_on_chat(
        self, contact_ids: Sequence[str], channel_id: str
    ) -> SurveyRecord | None:
        if not contact_ids:
            return None
        row = await self.tx.fetchrow(
            f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE channel_id = $1 AND way = 'choices' "
            "AND contact_id = ANY($2::text[]) ORDER BY sent_at DESC, id DESC LIMIT 1 "
            "FOR UPDATE",
            channel_id,
            list(contact_ids),
        )
        return None if row is None else survey_record(row)

    async def blank(self, conversation_ids: Sequence[str]) -> None:
        if not conversation_ids:
            return
        await self.tx.execute(
            "UPDATE surveys SET comment = NULL, "
            "reason = CASE WHEN status = 'scheduled' THEN 'erased' ELSE reason END, "
            "status = CASE WHEN status = 'scheduled' THEN 'skipped' ELSE status END "
            "WHERE conversation_id = ANY($1::text[])",
            list(conversation_ids),
        )
