"""Row <-> model conversion for the SQLite backend."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from gateway.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from gateway.models import (
    Agent,
    Author,
    AuthorType,
    ChannelType,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Event,
    Identity,
    Message,
    MessageError,
    MessageStatus,
    Part,
    Presence,
    Reaction,
)

_parts = TypeAdapter(list[Part])
_reactions = TypeAdapter(list[Reaction])


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def to_us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def reactions_json(reactions: list[Reaction]) -> str:
    return _reactions.dump_json(reactions, exclude_none=True).decode()


def parts_json(parts: list[Part] | tuple[Part, ...]) -> str:
    return _parts.dump_json(list(parts), exclude_none=True).decode()


def message(row: sqlite3.Row) -> Message:
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
    )


def conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=ConversationId(row["id"]),
        contact_id=ContactId(row["contact_id"]),
        channel_id=ChannelId(row["channel_id"]),
        status=ConversationStatus(row["status"]),
        assignee_id=row["assignee_id"],
        priority=row["priority"],
        skills=json.loads(row["skills"]),
        language=row["language"],
        subject=row["subject"],
        created_at=from_us(row["created_at"]),
        first_response_at=opt_dt(row["first_response_at"]),
        resolved_at=opt_dt(row["resolved_at"]),
        last_message_at=opt_dt(row["last_message_at"]),
    )


def identity(row: sqlite3.Row) -> Identity:
    return Identity(
        channel_id=ChannelId(row["channel_id"]),
        channel_type=ChannelType(row["channel_type"]),
        external_id=row["external_id"],
        display_name=row["display_name"],
        avatar_url=row["avatar_url"],
    )


def contact(row: sqlite3.Row, identities: list[Identity]) -> Contact:
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


def agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=AgentId(row["id"]),
        name=row["name"],
        skills=json.loads(row["skills"]),
        languages=json.loads(row["languages"]),
        capacity=json.loads(row["capacity"]),
        presence=Presence(row["presence"]),
        presence_changed_at=opt_dt(row["presence_changed_at"]),
    )


def event(row: sqlite3.Row) -> Event:
    return Event(
        row["seq"], row["type"], from_us(row["created_at"]), row["data"], row["conversation_id"]
    )
