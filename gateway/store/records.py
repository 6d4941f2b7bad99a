"""What crosses the storage boundary besides the model: rows as the domain reads and
writes them, and the records of the gateway's own bookkeeping (webhooks, tokens, files).

Times are integers of microseconds since the epoch (the domain does arithmetic on them;
a backend with a native time type converts at its edge). Fields named ``*_json`` hold
JSON text as stored: the domain parses them once per distinct value, not once per row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from kernel.envelope import OutboundMessage
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, TokenId
from kernel.models import (
    Agent,
    Conversation,
    ConversationStatus,
    Message,
    Survey,
)

US = 1_000_000


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / US, UTC)


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    if dt.tzinfo is None:  # a naive time is local time, as datetime.timestamp() reads it
        return int(dt.timestamp() * US)
    return (dt - _EPOCH) // _ONE_US


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# --- conversations ------------------------------------------------------------------------


@dataclass(slots=True)
class ConversationRecord:
    """A conversation as stored: the model's fields and what routing keeps beside them."""

    id: str
    contact_id: str
    channel_id: str
    channel_type: str
    # The channel identity replies go to (the customer's external id on the channel).
    recipient_id: str
    status: str
    assignee_id: str | None
    priority: int
    skills_json: str  # the model's `skills`: a JSON list of names
    language: str | None
    subject: str | None
    created_at: int
    first_response_at: int | None = None
    resolved_at: int | None = None
    last_message_at: int | None = None
    # When the customer last wrote (the provider's time when it gives one): reply windows.
    last_inbound_at: int | None = None
    # When it entered the queue (waiting time counts from here).
    queued_at: int | None = None
    # Its place in the queue was announced (conversation.queued) since it last entered.
    queue_announced: bool = False
    excluded_agents_json: str = "[]"  # agents it must not go to again
    required_skills_json: str = "{}"  # {skill: minimum level} routing asks for
    routing_rule: str | None = None
    assigned_at: int | None = None
    # Since when the customer has waited for an answer (None: answered).
    awaiting_since: int | None = None
    # The bot holding it while its status is 'bot'.
    bot_id: str | None = None
    # Read with the queue: who served the contact (its merge group) last, and when.
    last_agent_id: str | None = None
    last_served_at: int | None = None

    def model(self) -> Conversation:
        # (on every path that announces a conversation: no call that is not needed)
        first, resolved, last = self.first_response_at, self.resolved_at, self.last_message_at
        return Conversation(
            id=ConversationId(self.id),
            contact_id=ContactId(self.contact_id),
            channel_id=ChannelId(self.channel_id),
            status=ConversationStatus(self.status),
            assignee_id=self.assignee_id,
            bot_id=self.bot_id,
            priority=self.priority,
            skills=[] if self.skills_json == "[]" else json.loads(self.skills_json),
            language=self.language,
            subject=self.subject,
            created_at=datetime.fromtimestamp(self.created_at / US, UTC),
            first_response_at=None if first is None else datetime.fromtimestamp(first / US, UTC),
            resolved_at=None if resolved is None else datetime.fromtimestamp(resolved / US, UTC),
            last_message_at=None if last is None else datetime.fromtimestamp(last / US, UTC),
        )

    def model_json(self, **changed: Any) -> str:
        """``model().model_dump_json()`` with some fields changed, written without building
        the model: for events written in bulk (a dispatch assigns hundreds at a time). The
        text is the same, byte for byte (tests compare the two)."""
        value = {k: changed[k] if k in changed else getattr(self, k) for k in _MODEL_FIELDS}
        skills = value["skills_json"]
        skills_json = "[]" if skills in ("[]", None) else dumps(json.loads(skills))
        return (
            f'{{"id":{_json_str(value["id"])},"contact_id":{_json_str(value["contact_id"])},'
            f'"channel_id":{_json_str(value["channel_id"])},'
            f'"status":{_json_str(value["status"])},'
            f'"assignee_id":{_json_str(value["assignee_id"])},'
            f'"bot_id":{_json_str(value["bot_id"])},'
            f'"priority":{int(value["priority"])},'
            f'"skills":{skills_json},"language":{_json_str(value["language"])},'
            f'"subject":{_json_str(value["subject"])},'
            f'"created_at":{_json_time(value["created_at"])},'
            f'"first_response_at":{_json_time(value["first_response_at"])},'
            f'"resolved_at":{_json_time(value["resolved_at"])},'
            f'"last_message_at":{_json_time(value["last_message_at"])},'
            '"reply_window":null,"sla":null}'
        )


class WindowFacts(NamedTuple):
    """What a conversation's reply window is worked out from, besides its channel."""

    last_inbound_at: int | None
    phone: str | None  # the contact's (or the contact it was merged into)


class WindowCandidate(NamedTuple):
    """An open conversation whose reply window may close soon."""

    record: ConversationRecord
    warned_at: int | None  # the closing time last announced (conversation.window_closing)
    phone: str | None


_MODEL_FIELDS = (
    "id",
    "contact_id",
    "channel_id",
    "status",
    "assignee_id",
    "bot_id",
    "priority",
    "skills_json",
    "language",
    "subject",
    "created_at",
    "first_response_at",
    "resolved_at",
    "last_message_at",
)


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _json_time(value: int | None) -> str:
    if value is None:
        return "null"
    # what pydantic writes for an aware UTC datetime
    return '"' + from_us(value).isoformat().replace("+00:00", "Z") + '"'


class OpenConversation(NamedTuple):
    """The little of an open conversation the ingest path needs (a tuple: it is made for
    every message)."""

    id: ConversationId
    contact_id: str
    status: str  # a ConversationStatus's value
    awaiting_since: int | None = None
    first_response_at: int | None = None


class ConversationFilter(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: ConversationStatus | None = None
    assignee_id: AgentId | None = None
    channel_id: ChannelId | None = None
    contact_id: ContactId | None = None


# --- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message with what is kept beside it."""

    message: Message
    contact_id: str
    request_hash: str | None = None


class OutboundJob(BaseModel):
    """A pending outbound message with what its connector needs to send it."""

    model_config = ConfigDict(frozen=True)

    outbound: OutboundMessage
    attempts: int


class MediaJob(BaseModel):
    """A message whose provider files are still to be fetched (gateway.media)."""

    model_config = ConfigDict(frozen=True)

    message: Message
    attempts: int


# --- contacts and agents ------------------------------------------------------------------


@dataclass(slots=True)
class ContactRecord:
    id: str
    display_name: str | None
    phone: str | None
    email: str | None
    created_at: int
    phone_verified: bool = False
    email_verified: bool = False
    merged_into: str | None = None
    attributes_json: str = "{}"


@dataclass(slots=True)
class IdentityRecord:
    channel_id: str
    external_id: str
    channel_type: str  # a ChannelType's value
    contact_id: str
    # The contact it was first linked to: an unmerge brings it back there.
    original_contact_id: str
    display_name: str | None
    avatar_url: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class AgentRecord:
    agent: Agent
    last_assigned_at: int = 0


@dataclass
class AssignmentBatch:
    """The assignments of one dispatch, written together with one statement per table:
    each conversation's new state, the contact's last agent (stickiness), the decision kept
    with its explanation, and each agent's time of last assignment."""

    at: int
    # (agent id, conversation id)
    conversations: list[tuple[str, str]] = field(default_factory=list)
    # (agent id, contact id)
    contacts: list[tuple[str, str]] = field(default_factory=list)
    # (conversation id, agent id, explanation JSON)
    decisions: list[tuple[str, str, str]] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)


# --- figures -----------------------------------------------------------------------------


# The columns of a survey row, in SurveyRecord's order.
SURVEY_COLUMNS = (
    "id, conversation_id, contact_id, channel_id, channel_type, agent_id, language, "
    "questions, status, way, reason, step, created_at, due_at, sent_at, expires_at, "
    "csat, nps, ces, comment, answered_at"
)


@dataclass
class SurveyRecord:
    """A survey as stored: the model's fields and where it stands on a chat channel."""

    id: str
    conversation_id: str
    contact_id: str
    channel_id: str
    channel_type: str
    agent_id: str | None
    language: str | None
    questions: str  # "csat,nps,ces": those asked, in order
    status: str
    way: str | None
    reason: str | None
    # On a chat channel: the question asked last and not answered yet (None: none).
    step: str | None
    created_at: int
    due_at: int
    sent_at: int | None = None
    expires_at: int | None = None
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    comment: str | None = None
    answered_at: int | None = None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name.strip()) for name in SURVEY_COLUMNS.split(","))

    def asked(self) -> list[str]:
        return [q for q in self.questions.split(",") if q]

    def score(self, question: str) -> int | None:
        found: int | None = getattr(self, question)
        return found

    def model(self) -> Survey:
        return Survey(
            id=self.id,
            conversation_id=ConversationId(self.conversation_id),
            contact_id=ContactId(self.contact_id),
            channel_id=ChannelId(self.channel_id),
            agent_id=None if self.agent_id is None else AgentId(self.agent_id),
            status=self.status,
            way=self.way,
            reason=self.reason,
            questions=self.asked(),
            csat=self.csat,
            nps=self.nps,
            ces=self.ces,
            comment=self.comment,
            due_at=from_us(self.due_at),
            sent_at=opt_dt(self.sent_at),
            expires_at=opt_dt(self.expires_at),
            answered_at=opt_dt(self.answered_at),
        )


def survey_record(row: Any) -> SurveyRecord:
    """A survey row (either backend's) as a record."""
    return SurveyRecord(*(row[i] for i in range(len(SURVEY_COLUMNS.split(",")))))


class SurveySample(NamedTuple):
    """A survey sent in the stats window: who served, and what was answered."""

    agent_id: str | None
    csat: int | None
    nps: int | None
    ces: int | None


class ResolvedSample(NamedTuple):
    """A conversation resolved in the stats window, for FCR across channels."""

    first_contact: bool  # never reopened nor transferred
    contained: bool  # no agent wrote in it and none was assigned (no human)
    came_back: bool  # its contact opened a new conversation within the FCR window
    window_open: bool  # the FCR window has not ended yet (and it did not come back)


@dataclass
class ClockRecord:
    """A conversation's clocks: its SLA (``sla_json``: routing.sla.SlaClock as stored)
    and until when it has had its off-hours reply (the opening that ends that closed
    period). ``next_check``: when the SLA sweep must look at it again."""

    conversation_id: str
    channel_id: str
    created_at: int
    policy: str | None = None
    sla_json: str | None = None
    next_check: int | None = None
    off_hours_until: int | None = None


@dataclass
class ChannelSamples:
    """What the store found for one channel: counts and every duration, in seconds."""

    created: int = 0
    unanswered: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    first_contact: int = 0
    sla_breaches: int = 0
    sla_breached_conversations: int = 0
    queue_wait: list[float] = field(default_factory=list)
    queue_length: int = 0
    oldest_waiting: float | None = None
    surveys: list[SurveySample] = field(default_factory=list)
    resolved: list[ResolvedSample] = field(default_factory=list)
    # SLA clocks (as stored) of the conversations opened in the window.
    sla_clocks: list[str] = field(default_factory=list)

    def add(self, other: ChannelSamples) -> None:
        self.created += other.created
        self.unanswered += other.unanswered
        self.first_response += other.first_response
        self.resolution += other.resolution
        self.first_contact += other.first_contact
        self.sla_breaches += other.sla_breaches
        self.sla_breached_conversations += other.sla_breached_conversations
        self.queue_wait += other.queue_wait
        self.queue_length += other.queue_length
        self.surveys += other.surveys
        self.resolved += other.resolved
        self.sla_clocks += other.sla_clocks
        if other.oldest_waiting is not None:
            self.oldest_waiting = max(self.oldest_waiting or 0.0, other.oldest_waiting)


# --- the gateway's own bookkeeping ----------------------------------------------------------


class AttachmentRecord(BaseModel):
    """A file received on a channel, kept in the data directory."""

    model_config = ConfigDict(frozen=True)

    id: str
    channel_id: ChannelId
    name: str | None = None
    mime: str
    size: int
    sha256: str
    path: str


class StoredChannel(BaseModel):
    """A channel added through the admin API: its whole settings, credentials included,
    kept sealed (encrypted with the gateway's secret key)."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    sealed: str
    created_at: datetime
    updated_at: datetime


class WebhookRecord(BaseModel):
    """A webhook endpoint. Its secrets are kept sealed (encrypted) here."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    description: str | None = None
    events: list[str]
    source: str = "api"
    created_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    cursor: int = 0
    sealed_secrets: str = Field(repr=False)


class DeliveryRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_seq: int
    conversation_id: str | None = None
    status: str  # pending | waiting | dead
    attempts: int = 0
    next_attempt_at: int | None = None  # microseconds since the epoch
    last_status_code: int | None = None
    last_error: str | None = None


class AttemptLog(NamedTuple):
    """One attempt of a delivery, as the delivery worker writes it (one per request sent:
    a plain tuple, in the order of the attempt log's columns)."""

    event_seq: int
    attempt: int
    at: int  # microseconds since the epoch
    status_code: int | None
    latency_ms: float | None
    outcome: str  # succeeded | retry | dead | disabled
    error: str | None
    response: str | None


class TokenRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: TokenId
    name: str
    scopes: list[str]
    agent_id: AgentId | None = None
    bot_id: str | None = None  # for tokens of scope bot: the bot they speak for
    created_at: datetime
    last_used_at: datetime | None = None


class TicketRecord(BaseModel):
    """An event-stream ticket when it is redeemed: the token it was made with (by id and
    hash, to look the token up again)."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    token_hash: str = Field(repr=False)
    expires_at: datetime


# How many of a conversation's newest messages are looked through for the business's
# latest (a customer writing more in a row than this is not answering a question).
ASKED_WITHIN = 20


@dataclass(frozen=True)
class Asked:
    """The business's latest message in a conversation, as a possible question: its parts
    as stored, and whether the customer wrote after it."""

    message_id: str
    parts_json: str
    answered: bool


def asked_from(recent: list[tuple[str, str, str]]) -> Asked | None:
    """From a conversation's newest messages (id, direction, parts), newest first."""
    answered = False
    for message_id, direction, parts_json in recent:
        if direction == "outbound":
            return Asked(message_id, parts_json, answered)
        answered = True
    return None
