"""Messages the gateway itself writes to a customer (a queue notice, an off-hours
reply): stored pending for the send path, authored ``system`` (e-mail marks them
Auto-Submitted: auto-replied)."""

from __future__ import annotations

from typing import Any

from gateway.store.transaction import Tx
from kernel.ids import new_message_id
from kernel.models import (
    Author,
    AuthorType,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    TextPart,
)


async def write_notice(
    tx: Tx, conv: Conversation, text: str, metadata: dict[str, Any] | None = None
) -> Message:
    """Store a system message to the conversation's customer, due now."""
    notice = Message(
        id=new_message_id(),
        conversation_id=conv.id,
        channel_id=conv.channel_id,
        direction=Direction.OUTBOUND,
        author=Author(type=AuthorType.SYSTEM),
        parts=[TextPart(text=text)],
        created_at=tx.now_dt,
        status=MessageStatus.PENDING,
        metadata=metadata or {},
    )
    await tx.messages.insert(notice, conv.contact_id, due_at=tx.now)
    return notice
