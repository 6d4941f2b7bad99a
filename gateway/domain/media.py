"""Files of received messages that the gateway keeps for good: which parts still point at
a provider's file (an expiring CDN URL), and the unit of work that records how fetching
them went. The fetching itself is gateway/media.py."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Recorded:
    """What recording a try did: whether the message changed, and the data-directory
    paths of files kept for parts that had gone meanwhile (to remove after the commit)."""

    changed: bool
    paths: list[str]


async def record(
    tx: Tx,
    message_id: str,
    outcomes: Mapping[int, MediaPart],
    *,
    attempts: int,
    again_at: int | None,
) -> Recorded:
    """Put the parts fetched (or given up) in place of the provider's, by index, where
    the part is still the one that was fetched; then either try the rest again at
    ``again_at`` or, with nothing left, drop the job. A changed message is announced
    (``message.updated``). A file kept for a part that is gone (the message was erased
    meanwhile) is deleted: nothing of an erased person comes back."""
    message = await tx.messages.get(message_id)
    parts = list(message.parts) if message is not None else []
    changed = False
    unused: list[str] = []
    for index, part in outcomes.items():
        current = parts[index] if index < len(parts) else None
        if isinstance(current, MediaPart) and to_fetch(current) and current.url == part.source_url:
            parts[index] = part
            changed = True
        elif part.attachment_id is not None:
            unused.append(part.attachment_id)
    paths = await tx.erasure.drop_attachments(unused) if unused else []
    if message is None:
        await tx.messages.downloaded(message_id)
        return Recorded(False, paths)
    if changed:
        await tx.messages.set_parts(message_id, parts)
        updated = message.model_copy(update={"parts": parts})
        await tx.emit("message.updated", {"message": updated}, updated.conversation_id)
    if again_at is not None and fetchable(parts):
        await tx.messages.download_again(message_id, attempts, again_at)
    else:
        await tx.messages.downloaded(message_id)
    return Recorded(changed, paths)
