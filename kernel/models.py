"""The normalised conversation model (design.md section 4), as the API and events show it.

Every model here crosses module boundaries, so all are frozen. Text fields are NFC
normalised on the way in, whatever produced them (a connector, the API, the config).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from kernel.text import clean_text

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


# A channel's id as configured: it appears in URLs (/webhooks/{channel_id}).
ChannelIdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class ConversationStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    # A bot holds it (``bot_id``); routing leaves it alone until a handover.
    BOT = "bot"


class WindowState(StrEnum):
    """Whether the business may write to the customer now (design.md section 10)."""

    OPEN = "open"  # any message
    TAG_ONLY = "tag_only"  # only with a message tag (Messenger's HUMAN_AGENT)
    TEMPLATE_ONLY = "template_only"  # only a provider-approved template (Zalo ZNS)
    CLOSED = "closed"  # nothing until the customer writes again
    UNLIMITED = "unlimited"  # the channel has no window (email, webchat)


class ReplyWindow(Frozen):
    """The reply window, worked out from the channel's rules and the customer's last
    interaction: ``closes_at`` ends the current state, ``free_until`` ends free messages
    where the channel bills later ones (Zalo)."""

    state: WindowState
    closes_at: datetime | None = None
    free_until: datetime | None = None
    reason: str


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
    BOT = "bot"


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


# --- message parts -------------------------------------------------------------------


# The longest text a message the business sends may hold, in `text` and in each text part
# (once a template's variables are filled in too). What customers send is not capped here.
MAX_TEXT = 20_000


class TextPart(Frozen):
    type: Literal["text"] = "text"
    text: Annotated[Text, Field(min_length=1)]


class PartError(Frozen):
    """Why a part's file is not kept (a provider's file that could not be fetched)."""

    code: str
    reason: str


class MediaPart(Frozen):
    type: Literal["image", "audio", "video", "file", "sticker"]
    url: str | None = None
    name: Text | None = None
    mime: str | None = None
    size: Annotated[int, Field(ge=0)] | None = None
    # A file this gateway keeps (POST /v1/attachments, or a provider's file fetched):
    # a part sent by the API may name it instead of giving a url.
    attachment_id: Annotated[str, Field(pattern=r"^att_[0-9A-Z]{26}$")] | None = None
    # Where a provider's file came from, once the gateway keeps its own copy (or failed to).
    source_url: str | None = None
    error: PartError | None = None


class LocationPart(Frozen):
    type: Literal["location"] = "location"
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]


class LinkPart(Frozen):
    type: Literal["link"] = "link"
    url: str
    title: Text | None = None


class Choice(Frozen):
    """One answer the customer can pick: ``id`` comes back in the pick's metadata."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    title: Annotated[Text, Field(min_length=1, max_length=80)]


class ChoicesPart(Frozen):
    """A question with answers to pick from: quick replies or buttons where the channel
    has them, a numbered list where it does not. The pick comes back as an inbound
    message with ``metadata.choice``."""

    type: Literal["choices"] = "choices"
    text: Annotated[Text, Field(min_length=1, max_length=2000)]
    choices: Annotated[list[Choice], Field(min_length=1, max_length=13)]

    @model_validator(mode="after")
    def _distinct(self) -> ChoicesPart:
        if len({c.id for c in self.choices}) != len(self.choices):
            raise ValueError("choice ids must be distinct")
        return self


class TemplatePart(Frozen):
    """A provider-approved template (a Zalo ZNS template) by the ``name`` the channel's
    settings give it, with the values it is filled with. Channels without templates refuse
    it (``unsupported_part``)."""

    type: Literal["template"] = "template"
    name: Annotated[str, Field(min_length=1, max_length=128)]
    language: Annotated[str, Field(min_length=2, max_length=16)] | None = None
    data: dict[str, Annotated[Text, Field(max_length=4000)] | int | float | bool] = Field(
        default_factory=dict, max_length=100
    )


Part = Annotated[
    TextPart | MediaPart | LocationPart | LinkPart | ChoicesPart | TemplatePart,
    Field(discriminator="type"),
]


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


class ConversationSla(Frozen):
    """The SLA policy a conversation is under and its targets' due times (business time
    of its channel's hours); ``breached`` names the targets missed."""

    policy: str
    first_response_due: datetime | None = None
    next_response_due: datetime | None = None
    resolution_due: datetime | None = None
    breached: list[str] = Field(default_factory=list)


class Conversation(Frozen):
    id: ConversationId
    contact_id: ContactId
    channel_id: ChannelId
    status: ConversationStatus
    assignee_id: AgentId | None = None
    # The bot holding it while its status is ``bot``.
    bot_id: str | None = None
    priority: Annotated[int, Field(ge=0, le=10)] = 0
    skills: list[str] = Field(default_factory=list)
    language: str | None = None
    subject: Text | None = None
    created_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    last_message_at: datetime | None = None
    # Worked out when the conversation is shown by the API (null where it is not, e.g. in
    # events other than conversation.window_closing).
    reply_window: ReplyWindow | None = None
    # When an SLA policy applies (shown by the API's conversation reads and SLA events).
    sla: ConversationSla | None = None


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
    # Structured data that is not for reading aloud: a quick reply's or button's
    # ``payload``, the customer's ``choice`` ({id, title}), a Messenger ``referral``, a Zalo
    # ``submit_info``, an email's ``cc``. Developer payloads never appear as text parts.
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class Template(Frozen):
    """A canned reply: ``text`` or ``parts`` with ``{{variables}}``. Templates with the same
    ``name`` are the language variants of one reply."""

    id: str
    name: Text
    language: str
    text: Text | None = None
    parts: list[Part] | None = None
    created_at: datetime
    updated_at: datetime


class Survey(Frozen):
    """A satisfaction survey of one resolved conversation: CSAT (1-5), and when asked NPS
    (0-10) and CES (1-7), with one optional comment. ``way``: ``choices`` (asked on the
    customer's chat channel) or ``link`` (a page of the gateway); ``reason`` says why one
    was skipped."""

    id: str
    conversation_id: ConversationId
    contact_id: ContactId
    channel_id: ChannelId
    agent_id: AgentId | None = None
    status: Literal["scheduled", "sent", "answered", "skipped"]
    way: Literal["choices", "link"] | None = None
    reason: str | None = None
    questions: list[Literal["csat", "nps", "ces"]]
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    nps: Annotated[int, Field(ge=0, le=10)] | None = None
    ces: Annotated[int, Field(ge=1, le=7)] | None = None
    comment: Text | None = None
    due_at: datetime
    sent_at: datetime | None = None
    expires_at: datetime | None = None
    answered_at: datetime | None = None


class Agent(Frozen):
    id: AgentId
    name: Text | None = None
    skills: dict[str, Annotated[int, Field(ge=0, le=10)]] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    capacity: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    presence: Presence = Presence.OFFLINE
    presence_changed_at: datetime | None = None


def rfc3339(dt: datetime) -> str:
    """``2026-11-24T02:43:22.123456Z``: UTC, always six digits of microseconds."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")[:-6] + "Z"
