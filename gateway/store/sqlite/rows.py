"""Row <-> model conversion for the SQLite backend."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from pydantic import TypeAdapter

from kernel.events import Event
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    ChannelType,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
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


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _json_time(value: int | None) -> str:
    if value is None:
        return "null"
    # what pydantic writes for an aware UTC datetime
    return '"' + from_us(value).isoformat().replace("+00:00", "Z") + '"'


def conversation_json(row: sqlite3.Row, **changed: Any) -> str:
    """``conversation(row).model_dump_json()`` with some columns changed, written without
    building the model: for events written in bulk (routing assigns hundreds at a time).
    The text is the same, byte for byte (tests compare the two)."""
    value = {k: changed[k] if k in changed else row[k] for k in _CONVERSATION}
    skills = value["skills"]
    skills_json = "[]" if skills in ("[]", None) else dumps(json.loads(skills))
    return (
        f'{{"id":{_json_str(value["id"])},"contact_id":{_json_str(value["contact_id"])},'
        f'"channel_id":{_json_str(value["channel_id"])},"status":{_json_str(value["status"])},'
        f'"assignee_id":{_json_str(value["assignee_id"])},"priority":{int(value["priority"])},'
        f'"skills":{skills_json},"language":{_json_str(value["language"])},'
        f'"subject":{_json_str(value["subject"])},'
        f'"created_at":{_json_time(value["created_at"])},'
        f'"first_response_at":{_json_time(value["first_response_at"])},'
        f'"resolved_at":{_json_time(value["resolved_at"])},'
        f'"last_message_at":{_json_time(value["last_message_at"])}}}'
    )


_CONVERSATION = (
    "id",
    "contact_id",
    "channel_id",
    "status",
    "assignee_id",
    "priority",
    "skills",
    "language",
    "subject",
    "created_at",
    "first_response_at",
    "resolved_at",
    "last_message_at",
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
