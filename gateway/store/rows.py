"""Rows of a SQL backend to models and records, and back.

A row is what the driver returns: Row or asyncpg.Record both answer ``row[name]``
and unpack in column order. Times are integers of microseconds since the epoch, JSON
columns are JSON text (each backend's connection is set up to read them so)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from gateway.store.records import (
    US,
    ContactRecord,
    ConversationRecord,
    IdentityRecord,
    from_us,
    opt_dt,
)
from kernel.errors import Conflict
from kernel.events import Event
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    ChannelType,
    Contact,
    Conversation,
    ConversationSla,
    Direction,
    Identity,
    Message,
    MessageError,
    MessageStatus,
    Part,
    Presence,
    Reaction,
    Template,
)
from routing.sla import SlaClock

# sqlite3.Row or asyncpg.Record
Row = Any

_parts = TypeAdapter(list[Part])
_reactions = TypeAdapter(list[Reaction])


def reactions_json(reactions: list[Reaction]) -> str:
    return _reactions.dump_json(reactions, exclude_none=True).decode()


def metadata_json(metadata: dict[str, Any]) -> str | None:
    """A message's metadata as stored: NULL when empty, as most messages have none."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":")) if metadata else None


def template_body(template: Template) -> str:
    """What a template says, as stored: ``{"text": ...}`` or ``{"parts": [...]}``."""
    return template.model_dump_json(include={"text", "parts"}, exclude_none=True)


def template(row: Row) -> Template:
    body = json.loads(row["body"])
    return Template(
        id=row["id"],
        name=row["name"],
        language=row["language"],
        text=body.get("text"),
        parts=_parts.validate_python(body["parts"]) if "parts" in body else None,
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
    )


def template_exists(template: Template) -> Conflict:
    return Conflict(
        f"a template named {template.name!r} in {template.language!r} exists",
        code="template_exists",
    )


def parts_json(parts: list[Part] | tuple[Part, ...]) -> str:
    return _parts.dump_json(list(parts), exclude_none=True).decode()


def message(row: Row) -> Message:
    error = row["error"]
    reactions = row["reactions"]
    return Message(
        id=MessageId(row["id"]),
        conversation_id=ConversationId(row["conversation_id"]),
        channel_id=ChannelId(row["channel_id"]),
        direction=Direction(row["direction"]),
        author=Author(type=AuthorType(row["author_type"]), id=row["author_id"]),
        external_id=row["external_id"],
        parts=_parts.validate_json(row["parts"]),
        reply_to=row["reply_to"],
        created_at=from_us(row["created_at"]),
        status=MessageStatus(row["status"]),
        error=MessageError.model_validate_json(error) if error else None,
        reactions=_reactions.validate_json(reactions) if reactions else [],
        metadata=metadata(row["metadata"]),
    )


def metadata(stored: Any) -> dict[str, Any]:
    """A message's metadata as read back ({} for NULL)."""
    if not stored:
        return {}
    # SQLite keeps text; asyncpg hands jsonb over as text too (no codec is set for it).
    found = json.loads(stored) if isinstance(stored, str | bytes) else stored
    return found if isinstance(found, dict) else {}


# Channel types that can send to a contact's phone (Zalo ZNS): the outbound queue reads the
# phone along with their messages.
PHONE_CHANNELS = frozenset({"zalo"})

# Columns in the order of ConversationRecord's fields.
CONVERSATION_COLUMNS = (
    "id, contact_id, channel_id, channel_type, recipient_id, status, assignee_id, priority, "
    "skills, language, subject, created_at, first_response_at, resolved_at, last_message_at, "
    "last_inbound_at, queued_at, queue_announced, excluded_agents, required_skills, "
    "routing_rule, assigned_at, awaiting_since, bot_id"
)
# ConversationRecord's fields that are stored under another column name.
CONVERSATION_COLUMN = {
    "skills_json": "skills",
    "excluded_agents_json": "excluded_agents",
    "required_skills_json": "required_skills",
}


def conversation(row: Row) -> ConversationRecord:
    """A row read with CONVERSATION_COLUMNS (and, for the queue, the contact's last agent
    and when it served)."""
    return ConversationRecord(*row)


CONTACT_COLUMNS = (
    "id, display_name, phone, email, created_at, phone_verified, email_verified, merged_into, "
    "attributes"
)
CONTACT_COLUMN = {"attributes_json": "attributes"}


def contact_record(row: Row) -> ContactRecord:
    """A row read with CONTACT_COLUMNS."""
    return ContactRecord(*row)


# Columns in the order of IdentityRecord's fields.
IDENTITY_COLUMNS = (
    "channel_id, external_id, channel_type, contact_id, original_contact_id, display_name, "
    "avatar_url, created_at"
)


def identity_record(row: Row) -> IdentityRecord:
    """A row read with IDENTITY_COLUMNS."""
    return IdentityRecord(*row)


def assignments(fields: dict[str, Any], column: dict[str, str]) -> tuple[str, tuple[Any, ...]]:
    """``a = ?, b = ?`` for an UPDATE of these fields (record names to columns), and the
    values."""
    return ", ".join(f"{column.get(k, k)} = ?" for k in fields), tuple(fields.values())


def identity(row: Row) -> Identity:
    return Identity(
        channel_id=ChannelId(row["channel_id"]),
        channel_type=ChannelType(row["channel_type"]),
        external_id=row["external_id"],
        display_name=row["display_name"],
        avatar_url=row["avatar_url"],
    )


def contact(row: Row, identities: list[Identity]) -> Contact:
    return Contact(
        id=ContactId(row["id"]),
        display_name=row["display_name"],
        phone=row["phone"],
        email=row["email"],
        identities=identities,
        created_at=from_us(row["created_at"]),
        merged_into=row["merged_into"],
        attributes=json.loads(row["attributes"] or "{}"),
    )


def agent(row: Row) -> Agent:
    return Agent(
        id=AgentId(row["id"]),
        name=row["name"],
        skills=json.loads(row["skills"]),
        languages=json.loads(row["languages"]),
        capacity=json.loads(row["capacity"]),
        presence=Presence(row["presence"]),
        presence_changed_at=opt_dt(row["presence_changed_at"]),
    )


def event(row: Row) -> Event:
    return Event(
        row["seq"], row["type"], from_us(row["created_at"]), row["data"], row["conversation_id"]
    )


def sla_view(stored: str | None) -> ConversationSla | None:
    """A stored SLA clock as ``Conversation.sla``."""
    if not stored:
        return None
    clock = SlaClock.from_json(stored)
    due = {k: None if v is None else from_us(round(v * US)) for k, v in clock.due_times().items()}
    return ConversationSla(
        policy=clock.policy,
        first_response_due=due["first_response"],
        next_response_due=due["next_response"],
        resolution_due=due["resolution"],
        breached=list(clock.breached),
    )


def with_sla(conversation: Conversation, stored: str | None) -> Conversation:
    view = sla_view(stored)
    return conversation if view is None else conversation.model_copy(update={"sla": view})
