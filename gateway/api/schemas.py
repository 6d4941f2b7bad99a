"""Request and answer bodies of the HTTP API that are not domain models themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from connectors.email.render import RenderError, checked_address
from gateway.attachments import OWN_PATH
from kernel.models import (
    MAX_TEXT,
    ChoicesPart,
    Conversation,
    LinkPart,
    LocationPart,
    MediaPart,
    Message,
    Part,
    Presence,
    TemplatePart,
    Text,
    TextPart,
)
from kernel.text import InvalidPhoneNumber, is_web_url, normalize_email, normalize_phone

SkillName = Annotated[str, Field(min_length=1, max_length=64)]
SkillList = Annotated[list[SkillName], Field(min_length=1, max_length=20)]
SkillLevels = Annotated[
    dict[SkillName, Annotated[int, Field(ge=1, le=10)]], Field(min_length=1, max_length=20)
]
Limit = Annotated[int, Field(ge=1, le=200, description="Page size (1-200).")]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class PageQuery(In):
    cursor: str | None = Field(None, description="next_cursor of the previous page.")
    limit: Limit = 50


class ContactSearchQuery(PageQuery):
    q: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="A name, or its start from any of its words: diacritics and case do "
        'not matter ("nguyen van a" and "van an" find "Nguyễn Văn An"); the words in '
        "order, each whole but the last.",
    )
    phone: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Any form of the number: 0912 345 678, 84912345678, +84 912 345 678."
    )
    email: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    channel_id: Id | None = None
    external_id: Annotated[str, Field(min_length=1, max_length=512)] | None = None


class ConversationQuery(PageQuery):
    status: Literal["queued", "assigned", "resolved"] | None = None
    assignee_id: Id | None = None
    channel_id: Id | None = None
    contact_id: Id | None = None


# What a message the business sends may hold: one cap (kernel.models.MAX_TEXT) for `text`
# and for every text part.
MessageText = Annotated[Text, Field(min_length=1, max_length=MAX_TEXT)]


def _web_url(value: str) -> str:
    if is_web_url(value) or (value.startswith(OWN_PATH) and is_web_url("http://h" + value)):
        return value
    raise ValueError("only http:// and https:// URLs (or the url of a file uploaded here)")


WebUrl = Annotated[str, AfterValidator(_web_url)]


class OutgoingTextPart(TextPart):
    text: MessageText


class OutgoingMediaPart(MediaPart):
    url: WebUrl | None = None


class OutgoingLinkPart(LinkPart):
    url: WebUrl


# The parts a message the business sends may have: those of the model (kernel.models.Part),
# with the limits above.
OutgoingPart = Annotated[
    OutgoingTextPart
    | OutgoingMediaPart
    | LocationPart
    | OutgoingLinkPart
    | ChoicesPart
    | TemplatePart,
    Field(discriminator="type"),
]
OutgoingParts = Annotated[list[OutgoingPart], Field(min_length=1, max_length=20)]


class MessageContent(In):
    """What a message says: ``text``, or ``parts`` for richer content."""

    text: MessageText | None = None
    parts: OutgoingParts | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        template_id = getattr(self, "template_id", None)
        given = [x for x in (self.text, self.parts, template_id) if x is not None]
        if len(given) != 1:
            raise ValueError(
                "give one of text, parts or template_id"
                if "template_id" in type(self).model_fields
                else "give either text or parts"
            )
        if self.text is not None and not self.text.strip():
            raise ValueError("text is empty")
        if getattr(self, "variables", None) and template_id is None:
            raise ValueError("variables go with template_id")
        return self

    def content(self) -> list[Part]:
        return list(self.parts) if self.parts is not None else [TextPart(text=self.text or "")]


VariableName = Annotated[
    str, Field(max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
]


class SendMessage(MessageContent):
    """An agent's reply: ``text``, ``parts`` for richer content, or a canned reply
    (``template_id`` with its ``variables``)."""

    template_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    variables: Annotated[
        dict[VariableName, Annotated[Text, Field(max_length=MAX_TEXT)]], Field(max_length=50)
    ] = Field(
        default_factory=dict,
        description="Values of the template's own variables; the gateway fills in "
        "`contact.*` and `agent.*`. Values are text, put in as they are.",
    )
    reply_to: Id | None = None
    agent_id: Id | None = Field(
        None, description="Author, for admin and integration tokens (default: the assignee)."
    )


# Characters an address given to write to never holds (display names, lists, headers).
_NOT_IN_ADDRESS = frozenset('<>()[]\\,;:"\r\n\t ')


def _address(value: str) -> str:
    email = normalize_email(value)
    try:
        if email is None or any(c in _NOT_IN_ADDRESS for c in email) or len(email) > 254:
            raise RenderError("not an address")
        return checked_address(email)
    except RenderError:
        raise ValueError(
            "not an e-mail address (give the bare address: name@example.com)"
        ) from None


def _one_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a subject is one line of text")
    return value


def _phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except InvalidPhoneNumber as exc:
        raise ValueError(f"not a phone number ({exc})") from None


def _external_id(value: str) -> str:
    value = value.strip()
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("an id on the channel is printable text")
    return value


class Recipient(In):
    """Whom to write to on the channel: exactly one of ``email`` (email channels),
    ``phone`` (Zalo: a ZNS template to the phone) or ``external_id`` (the customer's id on
    the channel: Messenger PSID, Zalo user id, webchat visitor id)."""

    email: Annotated[str, Field(max_length=320), AfterValidator(_address)] | None = None
    phone: Annotated[str, Field(max_length=32), AfterValidator(_phone)] | None = None
    external_id: (
        Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_external_id)] | None
    ) = None

    @model_validator(mode="after")
    def _one(self) -> Recipient:
        if sum(v is not None for v in (self.email, self.phone, self.external_id)) != 1:
            raise ValueError("give exactly one of email, phone, external_id")
        return self


class StartConversation(MessageContent):
    """The business writes first: to a known contact, or to an address on the channel."""

    channel_id: Id
    contact_id: Id | None = None
    to: Recipient | None = None
    subject: (
        Annotated[Text, Field(min_length=1, max_length=998), AfterValidator(_one_line)] | None
    ) = Field(None, description="Email: the new thread's subject.")
    agent_id: Id | None = Field(
        None, description="Author, for admin and integration tokens (an agent token: itself)."
    )

    @model_validator(mode="after")
    def _whom(self) -> StartConversation:
        if (self.contact_id is None) == (self.to is None):
            raise ValueError("give either contact_id or to")
        return self


class StartedConversation(BaseModel):
    conversation: Conversation
    message: Message


class Assign(In):
    agent_id: Id
    force: bool = Field(False, description="Admin only: ignore presence and capacity.")


class Transfer(In):
    agent_id: Id | None = None
    skills: SkillList | SkillLevels | None = Field(
        None, description="Skill names (level 1), or {name: minimum level}."
    )
    force: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Transfer:
        if (self.agent_id is None) == (self.skills is None):
            raise ValueError("give either agent_id or skills")
        return self


class Handover(In):
    to: Literal["humans", "bot"]
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    bot_id: Id | None = Field(
        None,
        description="With `to: bot`: which bot (default: the "
        "bot that takes the conversation's channel).",
    )
    skills: SkillList | SkillLevels | None = Field(
        None, description="With `to: humans`: skill names (level 1), or {name: minimum level}."
    )
    priority: Annotated[int, Field(ge=0, le=10)] | None = None


class Typing(In):
    state: Literal["on", "off"]


class AgentBody(In):
    # `id` and `presence_changed_at` are accepted so an agent read with GET can be sent
    # back as it is; `id` must then match the path.
    id: Id | None = None
    presence_changed_at: datetime | None = None
    name: Annotated[Text, Field(max_length=200)] | None = None
    skills: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[int, Field(ge=0, le=10)]
    ] = Field(default_factory=dict)
    languages: list[Annotated[str, Field(min_length=2, max_length=16)]] = Field(
        default_factory=list
    )
    capacity: dict[
        Annotated[str, Field(min_length=1, max_length=32)], Annotated[int, Field(ge=0, le=10_000)]
    ] = Field(
        default_factory=lambda: {"total": 5},
        description="Maximum open conversations per channel type and in `total`.",
    )
    presence: Presence | None = None


class PresenceBody(In):
    status: Presence


class Merge(In):
    other_id: Id


class IdentityRef(BaseModel):
    """An identity as the contact shows it; fields beyond these two are ignored."""

    model_config = ConfigDict(extra="ignore")

    channel_id: Id
    external_id: Annotated[str, Field(min_length=1, max_length=998)]


class Unmerge(In):
    identity: IdentityRef


class TokenBody(In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Literal["admin", "agent", "integration", "bot"]], Field(min_length=1)]
    agent_id: Id | None = Field(None, description="For agent tokens: the agent they act as.")
    bot_id: Id | None = Field(None, description="For bot tokens: the bot of `[[bots]]`.")


class TokenInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    agent_id: str | None = None
    bot_id: str | None = None
    created_at: datetime


class TokenCreated(TokenInfo):
    token: str = Field(description="Shown once; only its hash is stored.")


class TokenList(BaseModel):
    items: list[TokenInfo]


class EventsQuery(In):
    types: str | None = Field(
        None, description="Comma-separated event types; `*` wildcards (`message.*`)."
    )
    conversation_id: Id | None = None
    last_event_id: str | None = Field(
        None, description="Resume after this event id (same as the Last-Event-ID header)."
    )
    ephemeral: Literal["typing"] | None = Field(
        None, description="Also stream typing signals (no id; never stored)."
    )
    ticket: str | None = Field(
        None,
        max_length=200,
        description="A ticket from POST /v1/events/tickets instead of the Authorization "
        "header (EventSource cannot send one): used up by opening the stream.",
    )


class EventTicket(BaseModel):
    ticket: str = Field(
        description="Opens one stream (GET /v1/events?ticket=) as the token that made it; "
        "only its hash is stored."
    )
    expires_at: datetime = Field(description="Unused after this, it is worth nothing.")


class QueueEntry(BaseModel):
    conversation: Conversation
    position: int = Field(description="Place among queued conversations needing the same.")
    estimated_wait_seconds: float | None = Field(
        description="Place x average handle time / slots of agents who could take it; "
        "null when no online agent could."
    )
    waiting_seconds: float
    requirements: dict[str, Any]
    escalation_step: int
    rule: str | None = None


class QueueList(BaseModel):
    items: list[QueueEntry]


class QueueQuery(In):
    channel_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class RoutingLog(BaseModel):
    conversation_id: str
    decisions: list[dict[str, Any]]
    queue: QueueEntry | None = Field(None, description="Where it stands, while queued.")


AttributeValue = str | int | float | bool


class ContactPatch(In):
    display_name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=64)] | None = None
    attributes: (
        Annotated[
            dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue | None],
            Field(max_length=100),
        ]
        | None
    ) = Field(None, description="Merged into the contact's attributes; null removes one.")


class ChannelInfo(BaseModel):
    id: str
    type: str
    state: str
    detail: str | None = None
    since: datetime
    capabilities: list[str]
    source: Literal["config", "api"] = Field(
        "config", description="Where it is defined: the config file, or the admin API."
    )


class ChannelDetail(ChannelInfo):
    settings: dict[str, Any] = Field(
        description="Its settings without credentials (the same keys as in the config file)."
    )
    secrets: list[str] = Field(
        description="The credentials that are set, by key path; their values are never shown."
    )


class ChannelFields(BaseModel):
    """A channel's settings as in the config file's [[channels]] (`id`, `type` and the
    keys of that type). POST: all of them; PATCH: a JSON merge patch (RFC 7386) of them,
    where credentials left out keep their values."""

    model_config = ConfigDict(extra="allow")


class ChannelList(BaseModel):
    items: list[ChannelInfo]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    # The rest is left out without the token when `[server] metrics_token` is set.
    store: str | None = None
    # Replicas only: "ok", or why Redis cannot be reached (the replica then polls the
    # store, so it stays ready; only what replicas tell each other is slower).
    redis: str | None = None
    channels: dict[str, ChannelInfo] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    version: str
