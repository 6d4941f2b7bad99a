"""Conversations written as JSON straight from their rows (routing's bulk events) must be
the very text pydantic writes for the model."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.records import ConversationRecord
from kernel.models import ConversationStatus
from kernel.text import clean_text

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


def as_record(values: dict[str, object]) -> ConversationRecord:
    fields = {("skills_json" if k == "skills" else k): v for k, v in values.items()}
    return ConversationRecord(channel_type="webchat", recipient_id="v1", **fields)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, database=None)
@given(row_st, st.one_of(st.none(), ident))
def test_conversation_json_is_what_pydantic_writes(
    values: dict[str, object], agent: str | None
) -> None:
    record = as_record(values)
    assert record.model_json() == record.model().model_dump_json()
    changed = record.model().model_copy(
        update={"status": ConversationStatus.ASSIGNED, "assignee_id": agent}
    )
    assert record.model_json(status="assigned", assignee_id=agent) == (changed.model_dump_json())
