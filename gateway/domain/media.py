"""Files of received messages that the gateway keeps for good: which parts still point at
a provider's file (an expiring CDN URL), and the unit of work that records how fetching
them went. The fetching itself is gateway/media.py."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from gateway.store.transaction import Tx
from kernel.models import MediaPart, Part

# A URL of a file this gateway keeps: nothing to fetch.
OWN_FILE = re.compile(r"/v1/attachments/att_[0-9A-Z]{26}$")


def to_fetch(part: Part) -> bool:
    """A provider's file not kept yet, nor given up."""
    return (
        isinstance(part, MediaPart)
        and part.attachment_id is None
        and part.error is None
        and part.url is not None
        and part.url.lower().startswith(("https://", "http://"))
        and OWN_FILE.search(part.url.split("?", 1)[0]) is None
    )


def fetchable(parts: Sequence[Part]) -> list[int]:
    """Indexes of the parts whose files are to be fetched."""
    return [i for i, part in enumerate(parts) if to_fetch(part)]


async def record(
    tx: Tx,
    message_id: str,
    outcomes: Mapping[int, MediaPart],
    *,
    attempts: int,
    again_at: int | None,
) -> bool:
    """Put the parts fetched (or given up) in place of the provider's, by index, where
    the part is still the one that was fetched; then either try the rest again at
    ``again_at`` or, with nothing left, drop the job. A changed message is announced
    (``message.updated``). Returns whether the message changed."""
    message = await tx.messages.get(message_id)
    if message is None:
        await tx.messages.downloaded(message_id)
        return False
    parts = list(message.parts)
    changed = False
    for index, part in outcomes.items():
        current = parts[index] if index < len(parts) else None
        if isinstance(current, MediaPart) and to_fetch(current) and current.url == part.source_url:
            parts[index] = part
            changed = True
    if changed:
        await tx.messages.set_parts(message_id, parts)
        updated = message.model_copy(update={"parts": parts})
        await tx.emit("message.updated", {"message": updated}, updated.conversation_id)
    if again_at is not None and fetchable(parts):
        await tx.messages.download_again(message_id, attempts, again_at)
    else:
        await tx.messages.downloaded(message_id)
    return changed
