"""Conversations written as JSON straight from their rows (routing's bulk events) must be
the very text pydantic writes for the model."""

from __future__ import annotations

import json
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.sqlite import rows
from kernel.models import ConversationStatus
from kernel.text import clean_text

COLUMNS = (
    "id, contact_id, channel_id, status, assignee_id, priority, skills, language, subject, "
    "created_at, first_response_at, resolved_at, last_message_at"
)

# stored subjects went through the model: cleaned text
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30).map(clean_text)
ident = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
# microseconds since the epoch, 1970..2100, including whole seconds (no fraction)
when = st.one_of(
    st.integers(0, 4_102_444_800_000_000),
    st.integers(0, 4_102_444_800).map(lambda s: s * 1_000_000),
)
row_st = st.fixed_dictionaries(
    {
        "id": ident,
        "contact_id": ident,
        "channel_id": ident,
        "status": st.sampled_from(["queued", "assigned", "resolved"]),
        "assignee_id": st.one_of(st.none(), ident),
        "priority": st.integers(0, 10),
        "skills": st.lists(ident, max_size=4).map(
            lambda s: json.dumps(sorted(set(s)), ensure_ascii=False)
        ),
        "language": st.one_of(st.none(), st.sampled_from(["vi", "en", "zh"])),
        "subject": st.one_of(st.none(), text, st.just('Đơn hàng "DH123"\n\tbị vỡ')),
        "created_at": when,
        "first_response_at": st.one_of(st.none(), when),
        "resolved_at": st.one_of(st.none(), when),
        "last_message_at": st.one_of(st.none(), when),
    }
)


def as_row(values: dict[str, object]) -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute(f"CREATE TABLE c ({COLUMNS})")
    names = [c.strip() for c in COLUMNS.split(",")]
    conn.execute(f"INSERT INTO c VALUES ({', '.join('?' * 13)})", [values[n] for n in names])
    row: sqlite3.Row = conn.execute(f"SELECT {COLUMNS} FROM c").fetchone()
    conn.close()
    return row


@settings(max_examples=300, deadline=None, database=None)
@given(row_st, st.one_of(st.none(), ident))
def test_conversation_json_is_what_pydantic_writes(
    values: dict[str, object], agent: str | None
) -> None:
    row = as_row(values)
    assert rows.conversation_json(row) == rows.conversation(row).model_dump_json()
    changed = rows.conversation(row).model_copy(
        update={"status": ConversationStatus.ASSIGNED, "assignee_id": agent}
    )
    assert rows.conversation_json(row, status="assigned", assignee_id=agent) == (
        changed.model_dump_json()
    )
