"""The normalised conversation model (design.md section 4), as the API and events show it.

Every model here crosses module boundaries, so all are frozen. Text fields are NFC
normalised on the way in, whatever produced them (a connector, the API, the config).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from gateway.text import clean_text

Text = Annotated[str, AfterValidator(clean_text)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChannelType(StrEnum):
    EMAIL = "email"
    ZALO = "zalo"
    FACEBOOK = "facebook"
    WEBCHAT = "webchat"


class ConversationStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# A status only moves forward: a late "delivered" never undoes "read".
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}


class AuthorType(StrEnum):
    CONTACT = "contact"
    AGENT = "agent"
    SYSTEM = "system"


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


# --- message parts -------------------------------------------------------------------


class TextPart(Frozen):
    type: Literal["text"] = "text"
    text: Annotated[Text, Field(min_length=1)]


class MediaPart(Frozen):
    type: Literal["image", "audio", "video", "file", "sticker"]
    url: str | None = None
    name: Text | None = None
    mime: str | None = None
    size: Annotated[int, Field(ge=0)] | None = None


class LocationPart(Frozen):
    type: Literal["location"] = "location"
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]


class LinkPart(Frozen):
    type: Literal["link"] = "link"
    url: str
    title: Text | None = None


Part = Annotated[TextPart | MediaPart | LocationPart | LinkPart, Field(discriminator="type")]


def text_of(parts: list[Part] | tuple[Part, ...]) -> str:
    """The text parts of a message joined by blank lines."""
    return "\n\n".join(p.text for p in parts if isinstance(p, TextPart))


# --- entities --------------------------------------------------------------------------


class Identity(Frozen):
    channel_id: ChannelId
    channel_type: ChannelType
    external_id: str
    display_name: Text | None = None
    avatar_url: str | None = None


class Contact(Frozen):
    id: ContactId
    display_name: Text | None = None
    phone: str | None = None
    email: str | None = None
    identities: list[Identity] = Field(default_factory=list)
    created_at: datetime
    merged_into: ContactId | None = None
    # Facts a helpdesk or CRM keeps about the contact (vip, tier, city...); routing rules
    # can match on them.
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Conversation(Frozen):
    id: ConversationId
    contact_id: ContactId
    channel_id: ChannelId
    status: ConversationStatus
    assignee_id: AgentId | None = None
    priority: Annotated[int, Field(ge=0, le=10)] = 0
    skills: list[str] = Field(default_factory=list)
    language: str | None = None
    subject: Text | None = None
    created_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    last_message_at: datetime | None = None


class Author(Frozen):
    type: AuthorType
    id: str | None = None


class MessageError(Frozen):
    code: str
    reason: str
    retryable: bool


class Reaction(Frozen):
    """A reaction on a message: ``emoji`` when the channel gives one, ``reaction`` when it
    names it (Facebook: like, love, ...)."""

    emoji: str | None = None
    reaction: str | None = None
    by: Author
    at: datetime


class Message(Frozen):
    id: MessageId
    conversation_id: ConversationId
    channel_id: ChannelId
    direction: Direction
    author: Author
    external_id: str | None = None
    parts: list[Part]
    reply_to: MessageId | None = None
    created_at: datetime
    status: MessageStatus
    error: MessageError | None = None
    reactions: list[Reaction] = Field(default_factory=list)


class Agent(Frozen):
    id: AgentId
    name: Text | None = None
    skills: dict[str, Annotated[int, Field(ge=0, le=10)]] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    capacity: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    presence: Presence = Presence.OFFLINE
    presence_changed_at: datetime | None = None


class EventEnvelope(Frozen):
    """How an event is sent (SSE data, webhook body): ``id`` is monotonic in the log."""

    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]


def rfc3339(dt: datetime) -> str:
    """``2026-11-24T02:43:22.123456Z``: UTC, always six digits of microseconds."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")[:-6] + "Z"


class RawJSON(str):
    """A value that is already JSON text, to be embedded as it is by compose_json."""

    __slots__ = ()


def compose_json(fields: dict[str, Any]) -> str:
    """A JSON object whose model values are serialised by pydantic (in Rust), once."""
    items = []
    for key, value in fields.items():
        if isinstance(value, RawJSON):
            text = str.__str__(value)
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        items.append(f"{encode_basestring(key)}:{text}")
    return "{" + ",".join(items) + "}"


class Event:
    """One entry of the durable event log, kept as the JSON it is sent as.

    The JSON is made once, when the event is written; every reader (SSE clients,
    webhooks) reuses it. ``data`` parses it on demand for code that needs the values.
    """

    __slots__ = ("_data", "_envelope", "conversation_id", "created_at", "data_json", "seq", "type")

    def __init__(
        self,
        seq: int,
        type: str,
        created_at: datetime,
        data_json: str,
        conversation_id: str | None = None,
    ) -> None:
        self.seq = seq
        self.type = type
        self.created_at = created_at
        self.data_json = data_json
        self.conversation_id = conversation_id
        self._envelope: str | None = None
        self._data: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return format_event_id(self.seq)

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.data_json)
        return self._data

    def envelope(self) -> str:
        """``{"id", "type", "created_at", "data"}`` as JSON text."""
        if self._envelope is None:
            self._envelope = (
                f'{{"id":"{self.id}","type":{encode_basestring(self.type)},'
                f'"created_at":"{rfc3339(self.created_at)}","data":{self.data_json}}}'
            )
        return self._envelope

    def __repr__(self) -> str:
        return f"Event({self.id} {self.type})"


EVENT_TYPES = (
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.reacted",
    "conversation.created",
    "conversation.queued",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.resolved",
    "conversation.reopened",
    "sla.breached",
    "contact.created",
    "contact.merged",
    "agent.presence_changed",
    "channel.state_changed",
    "webhook.disabled",
    "webhook.enabled",
)

EVENT_ID_WIDTH = 16


def format_event_id(seq: int) -> str:
    """Event ids are zero-padded decimals: they compare the same as strings and as numbers."""
    return str(seq).zfill(EVENT_ID_WIDTH)
