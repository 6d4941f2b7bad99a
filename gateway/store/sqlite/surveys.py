"""Satisfaction surveys: rows inside units of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.store.records import SURVEY_COLUMNS, SurveyRecord, survey_record

if TYPE_CHECKING:
    from gateway.store.sqlite.tx import SqliteTx

_FIELDS = frozenset(c.strip() for c in SURVEY_COLUMNS.split(","))
_INSERT = f"INSERT INTO surveys ({SURVEY_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"


class SurveyTx:
    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx

    async def insert(self, record: SurveyRecord) -> None:
        self.tx.execute(_INSERT, record.values())

    async def get(self, survey_id: str) -> SurveyRecord | None:
        row = self.tx.one(f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE id = ?", (survey_id,))
        return None if row is None else survey_record(row)

    async def of_conversation(self, conversation_id: str) -> SurveyRecord | None:
        row = self.tx.one(
            f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE conversation_id = ?", (conversation_id,)
        )
        return None if row is None else survey_record(row)

    async def update(self, survey_id: str, **changes: Any) -> None:
        if not changes:
            return
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"not survey fields: {sorted(unknown)}")
        names = sorted(changes)
        self.tx.execute(
            f"UPDATE surveys SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
            (*(changes[n] for n in names), survey_id),
        )

    async def due(self, now: int, limit: int) -> list[SurveyRecord]:
        return [
            survey_record(r)
            for r in self.tx.execute(
                f"SELECT {SURVEY_COLUMNS} FROM surveys INDEXED BY surveys_due "
                "WHERE status = 'scheduled' AND due_at <= ? ORDER BY due_at, id LIMIT ?",
                (now, limit),
            )
        ]

    async def asked_on_chat(
        self, contact_ids: Sequence[str], channel_id: str
    ) -> SurveyRecord | None:
        if not contact_ids:
            return None
        row = self.tx.one(
            f"SELECT {SURVEY_COLUMNS} FROM surveys WHERE channel_id = ? AND way = 'choices' "
            f"AND contact_id IN ({', '.join('?' * len(contact_ids))}) "
            "ORDER BY sent_at DESC, id DESC LIMIT 1",
            (channel_id, *contact_ids),
        )
        return None if row is None else survey_record(row)

    async def blank(self, conversation_ids: Sequence[str]) -> None:
        if not conversation_ids:
            return
        self.tx.execute(
            "UPDATE surveys SET comment = NULL, "
            "reason = CASE WHEN status = 'scheduled' THEN 'erased' ELSE reason END, "
            "status = CASE WHEN status = 'scheduled' THEN 'skipped' ELSE status END "
            f"WHERE conversation_id IN ({', '.join('?' * len(conversation_ids))})",
            tuple(conversation_ids),
        )
