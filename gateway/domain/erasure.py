"""Erasing a person, and forgetting old conversations (the retention sweep).

Erasure takes out everything that names or describes the person: the contact and every
contact merged into it (one person), their identities, their messages' content and
files, the data of the events that carried any of it, webhook answers logged for those
events, and kept provider events that mention them. The rows themselves stay (a contact
with no name, conversations with their times, messages with their direction, status and
times, events with their types), so figures over any window add up the same after.

A conversation forgotten by the retention sweep loses its messages' content and files,
its subject, and the content of its events' data, the same way; its contact stays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gateway.store.records import ContactRecord
from gateway.store.transaction import Tx
from kernel.errors import Gone, NotFound
from kernel.ids import ATTACHMENT_ID, ContactId
from kernel.models import Identity, MessageError, rfc3339

_ATTACHMENT = re.compile(ATTACHMENT_ID)

# What a message still waiting to be sent becomes when its recipient is erased.
ERASED = MessageError(
    code="contact_erased", reason="the recipient's data was erased", retryable=False
)

# Keys whose values are a person's, wherever they appear in an event's data: what they
# become. (A message's parts, a contact's profile and identities, a conversation's
# subject, an identity's external id.)
_BLANK: dict[str, Any] = {
    "display_name": None,
    "phone": None,
    "email": None,
    "avatar_url": None,
    "external_id": None,
    "subject": None,
    "text": None,
    "comment": None,
    "parts": [],
    "identities": [],
    "attributes": {},
    "metadata": {},
}

# Values shorter than this are not looked for in provider payloads and webhook answers
# (they would match unrelated text).
MIN_NEEDLE = 4


class Erasure(BaseModel):
    """What DELETE /v1/contacts/{id} erased."""

    contact_id: ContactId = Field(description="The person: the contact others were merged into.")
    erased_contact_ids: list[ContactId] = Field(description="It and every contact merged into it.")
    conversation_ids: list[str] = Field(description="Their conversations, kept anonymised.")
    messages: int = Field(description="Messages whose content was erased.")
    attachments: int = Field(description="Files deleted.")
    events: int = Field(description="Events whose data was rewritten.")
    raw_events: int = Field(description="Kept provider events deleted.")
    erased_at: datetime


@dataclass
class Forgotten:
    """What one unit of forgetting did; ``paths``: files to remove once committed."""

    messages: int = 0
    events: list[int] = field(default_factory=list)
    attachments: int = 0
    paths: list[str] = field(default_factory=list)
    raw_events: int = 0


def redact(value: Any) -> Any:
    """An event's data with every value of a person blanked (see _BLANK); a failure keeps
    its code, not its reason (a bounce names the address)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _BLANK:
                blank = _BLANK[key]
                out[key] = type(blank)() if blank is not None else None
            elif key == "error" and isinstance(item, dict) and "reason" in item:
                out[key] = {**redact(item), "reason": "erased"}
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def needles(records: Iterable[ContactRecord], identities: Iterable[Identity]) -> list[str]:
    """The person's values to look for in what the gateway kept as text (provider
    payloads, webhook answers): names, addresses, phone numbers (as +84..., 84... and
    0...), external ids."""
    found: set[str] = set()
    for r in records:
        found.update(v for v in (r.display_name, r.email) if v)
        if r.phone:
            found.add(r.phone)
            digits = r.phone.lstrip("+")
            found.add(digits)
            if digits.startswith("84"):
                found.add("0" + digits[2:])
    for i in identities:
        found.update(v for v in (i.external_id, i.display_name, i.avatar_url) if v)
    return sorted(v for v in found if len(v) >= MIN_NEEDLE)


async def forget(
    tx: Tx,
    conversation_ids: Sequence[str],
    contact_ids: Sequence[str],
    values: Sequence[str],
    *,
    recipient: bool,
) -> Forgotten:
    """Blank these conversations' messages, files and events (and the contact events of
    ``contact_ids``); with ``recipient``, who they were written to as well."""
    done = Forgotten()
    attachment_ids: set[str] = set()
    if conversation_ids:
        for parts in await tx.erasure.message_parts(conversation_ids):
            attachment_ids.update(_ATTACHMENT.findall(parts))
        done.messages = await tx.erasure.blank_messages(conversation_ids, ERASED.model_dump_json())
        await tx.erasure.blank_conversations(conversation_ids, recipient=recipient)
        await tx.surveys.blank(conversation_ids)  # a survey's comment is the person's words
    for seq, data_json in await tx.erasure.events_of(conversation_ids, contact_ids):
        data = json.loads(data_json)
        blanked = redact(data)
        if blanked != data:
            await tx.erasure.rewrite_event(
                seq, json.dumps(blanked, ensure_ascii=False, separators=(",", ":"))
            )
            done.events.append(seq)
    done.paths = await tx.erasure.drop_attachments(sorted(attachment_ids))
    done.attachments = len(attachment_ids)
    await tx.erasure.blank_attempts(done.events, values)
    if values:
        done.raw_events = await tx.erasure.drop_raw_events(needles=values)
    return done


async def erase(tx: Tx, contact_id: ContactId) -> tuple[Erasure, Forgotten]:
    """Erase the person this contact is part of (see the module's docstring); announced
    by ``contact.erased``, whose data names ids only. Gone when already erased."""
    record = await tx.contacts.get(contact_id)
    if record is None:
        raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
    root = ContactId(record.merged_into or contact_id)
    erased_at = await tx.erasure.erased_at(root)
    if erased_at is not None:
        raise Gone(
            f"contact {contact_id} was erased",
            code="contact_erased",
            details={"contact_id": root},
        )
    members = [ContactId(m) for m in await tx.contacts.members(root)]
    contact = await tx.contacts.load(root)
    records = [r for r in [await tx.contacts.get(m) for m in members] if r is not None]
    values = needles(records, contact.identities if contact is not None else ())
    conversation_ids = await tx.erasure.conversations_of(members)
    done = await forget(tx, conversation_ids, members, values, recipient=True)
    if contact is not None:
        await tx.erasure.drop_channel_state(
            [i.external_id for i in contact.identities if len(i.external_id) >= MIN_NEEDLE]
        )
    await tx.erasure.blank_contacts(members, tx.now)
    await tx.emit(
        "contact.erased",
        {
            "contact_id": root,
            "erased_contact_ids": members,
            "conversation_ids": conversation_ids,
            "erased_at": rfc3339(tx.now_dt),
        },
    )
    report = Erasure(
        contact_id=root,
        erased_contact_ids=members,
        conversation_ids=conversation_ids,
        messages=done.messages,
        attachments=done.attachments,
        events=len(done.events),
        raw_events=done.raw_events,
        erased_at=tx.now_dt,
    )
    return report, done


async def forget_resolved(tx: Tx, before: int, limit: int) -> tuple[int, Forgotten]:
    """Forget up to ``limit`` conversations resolved before ``before`` (microseconds);
    returns how many, and what was done."""
    conversation_ids = await tx.erasure.resolved_before(before, limit)
    if not conversation_ids:
        return 0, Forgotten()
    return len(conversation_ids), await forget(tx, conversation_ids, (), (), recipient=False)
