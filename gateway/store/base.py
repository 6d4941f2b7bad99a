"""What the gateway asks of a history store, whatever the backend.

Every write method is one transaction: the state change and the events announcing it
(the transactional outbox) commit together or not at all. Committed events are handed,
in commit order, to the ``on_events`` callback given at open.

Errors (in :mod:`kernel.errors`): ``NotFound``, ``Conflict``, ``Invalid``, ``Malformed``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gateway.stats import ChannelSamples
from kernel.envelope import InboundMessage, IngestResult, OutboundMessage, Sender, StatusUpdate
from kernel.errors import Malformed
from kernel.events import Event
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId, TokenId
from kernel.models import (
    Agent,
    Author,
    ChannelType,
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    Message,
    MessageError,
    Part,
    Presence,
    Reaction,
)
from routing.engine import Decision
from routing.settings import RoutingSettings

T = TypeVar("T")

EventsCallback = Callable[[list[Event]], None]


class Page(BaseModel, Generic[T]):
    """One page of a cursor-paginated list."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key inside a cursor; a cursor that was not made here is a 400."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Malformed("invalid cursor", code="invalid_cursor") from None
    if not isinstance(key, str):
        raise Malformed("invalid cursor", code="invalid_cursor")
    return key


class ConversationFilter(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: ConversationStatus | None = None
    assignee_id: AgentId | None = None
    channel_id: ChannelId | None = None
    contact_id: ContactId | None = None


class OutboundJob(BaseModel):
    """A pending outbound message with what its connector needs to send it."""

    model_config = ConfigDict(frozen=True)

    outbound: OutboundMessage
    attempts: int


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


@dataclass
class DispatchResult:
    decisions: list[Decision]
    # When the queue should be looked at again even if nothing happens (an escalation
    # step or a reassign deadline), as a Unix time.
    next_wakeup: float | None = None
    # Messages written for customers (queue position notices) that now wait to be sent.
    customer_messages: int = 0
    # The dispatch stopped at its limit of assignments per transaction: run it again.
    more: bool = False


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
    """One attempt of a delivery, as the dispatcher writes it (one per request sent:
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
    created_at: datetime
    last_used_at: datetime | None = None


class Store(Protocol):
    """The history store. See the module docstring for the transaction rules."""

    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # --- inbound ---------------------------------------------------------------------
    async def ingest(self, message: InboundMessage, channel_type: ChannelType) -> IngestResult: ...
    async def update_identity(
        self,
        channel_id: ChannelId,
        channel_type: ChannelType,
        sender: Sender,
        *,
        link_to: Sender | None = None,
    ) -> ContactId: ...
    async def update_status(self, update: StatusUpdate) -> list[Message]: ...
    async def react(
        self,
        channel_id: ChannelId,
        message_external_id: str,
        reaction: Reaction | None,
        reactor: Author,
    ) -> Message | None:
        """Set or (None) remove a reactor's reaction; None when the message is unknown."""
        ...

    async def keep_raw(self, channel_id: ChannelId, kind: str, payload: str, reason: str) -> None:
        """Keep a provider event the gateway could not use, as it came."""
        ...

    async def add_attachment(self, record: AttachmentRecord) -> None: ...
    async def load_state(self, channel_id: ChannelId, key: str) -> Any: ...
    async def save_state(self, channel_id: ChannelId, key: str, value: Any) -> None: ...
    async def get_attachment(self, attachment_id: str) -> AttachmentRecord | None: ...

    # --- outbound --------------------------------------------------------------------
    async def create_outbound(
        self,
        conversation_id: ConversationId,
        author: Author,
        parts: Sequence[Part],
        *,
        reply_to: MessageId | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> tuple[Message, bool]:
        """Store an agent's message as pending. Returns (message, replayed)."""
        ...

    async def due_outbound(self, now: datetime, limit: int) -> list[OutboundJob]: ...
    async def release_held(self, channel_id: ChannelId, now: datetime) -> int:
        """Make every waiting outbound message of a channel due now (the channel has
        recovered); returns how many."""
        ...

    async def next_outbound_due(self) -> datetime | None: ...
    async def mark_sent(self, message_id: MessageId, external_id: str | None) -> Message: ...
    async def mark_failed(self, message_id: MessageId, error: MessageError) -> Message: ...
    async def defer_outbound(
        self, message_id: MessageId, until: datetime, error: MessageError
    ) -> None: ...

    # --- conversations and routing ---------------------------------------------------
    async def dispatch(self) -> DispatchResult:
        """Requeue breached assignments, route the queue in order (priority, then waiting
        time) and announce who waits."""
        ...

    async def queue(self, channel_id: ChannelId | None, limit: int) -> list[dict[str, Any]]:
        """Queued conversations in dispatch order with place and estimated wait."""
        ...

    async def list_api_channels(self) -> list[StoredChannel]: ...

    async def put_api_channel(self, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
        """Create (`new`: Conflict if the id is taken) or replace a stored channel."""
        ...

    async def delete_api_channel(self, channel_id: str) -> bool: ...

    async def stats_samples(
        self, since: datetime, until: datetime, channel_ids: Sequence[str] | None
    ) -> dict[str, ChannelSamples]:
        """Per channel, what GET /v1/stats is made of (see gateway.stats): conversations
        opened and resolved in [since, until), SLA breaches in it, and the queue now.
        Only the channels asked for (all when None), only those with anything to say."""
        ...

    async def assign(
        self, conversation_id: ConversationId, agent_id: AgentId, *, force: bool = False
    ) -> Conversation:
        """Assign (or transfer, when already assigned) to one agent, honouring capacity
        and presence unless ``force``."""
        ...

    async def transfer_to_skills(
        self, conversation_id: ConversationId, skills: Mapping[str, int]
    ) -> Conversation:
        """Requeue with new required skills, excluding the agent who had it."""
        ...

    async def routing_decisions(self, conversation_id: ConversationId) -> list[dict[str, Any]]: ...
    async def resolve(self, conversation_id: ConversationId) -> Conversation: ...
    async def reopen(self, conversation_id: ConversationId) -> Conversation: ...

    # --- agents ----------------------------------------------------------------------
    async def put_agent(self, agent: Agent, *, keep_presence: bool = True) -> tuple[Agent, bool]:
        """Create or replace an agent. Returns (agent, created)."""
        ...

    async def set_presence(self, agent_id: AgentId, presence: Presence) -> Agent: ...
    async def get_agent(self, agent_id: AgentId) -> Agent | None: ...
    async def list_agents(self, cursor: str | None, limit: int) -> Page[Agent]: ...

    # --- contacts --------------------------------------------------------------------
    async def get_contact(self, contact_id: ContactId) -> Contact | None: ...
    async def update_contact(
        self,
        contact_id: ContactId,
        *,
        display_name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        attributes: dict[str, object] | None = None,
    ) -> Contact: ...
    async def merge_contacts(self, contact_id: ContactId, other_id: ContactId) -> Contact: ...
    async def unmerge_identity(
        self, contact_id: ContactId, channel_id: ChannelId, external_id: str
    ) -> Contact: ...

    # --- reads -----------------------------------------------------------------------
    async def get_conversation(self, conversation_id: ConversationId) -> Conversation | None: ...
    async def list_conversations(
        self, filters: ConversationFilter, cursor: str | None, limit: int
    ) -> Page[Conversation]: ...
    async def get_message(self, message_id: MessageId) -> Message | None: ...
    async def list_messages(
        self, conversation_id: ConversationId, cursor: str | None, limit: int
    ) -> Page[Message]: ...
    async def timeline(
        self, contact_id: ContactId, cursor: str | None, limit: int
    ) -> Page[Message]: ...
    async def channel_history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None,
        after: MessageId | None,
        limit: int,
    ) -> list[Message]: ...
    async def open_conversation(
        self, channel_id: ChannelId, external_id: str
    ) -> ConversationId | None: ...
    async def message_known(self, channel_id: ChannelId, external_id: str) -> bool:
        """Whether a message with this channel's external id is stored."""
        ...

    async def identity_contact(self, channel_id: ChannelId, external_id: str) -> ContactId | None:
        """The contact behind a channel identity, if it is known."""
        ...

    async def conversation_recipient(self, conversation_id: ConversationId) -> Identity | None:
        """The channel identity replies in this conversation go to."""
        ...

    # --- events ----------------------------------------------------------------------
    async def emit(
        self, type: str, data: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        """Write an event that has no state change of its own (e.g. channel state)."""
        ...

    async def events_after(
        self,
        seq: int,
        limit: int,
        *,
        types: Sequence[str] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[Event]: ...
    async def last_event_seq(self) -> int: ...

    # --- webhooks --------------------------------------------------------------------
    async def put_webhook(self, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord: ...
    async def get_webhook(self, endpoint_id: str) -> WebhookRecord | None: ...
    async def list_webhooks(self) -> list[WebhookRecord]: ...
    async def delete_webhook(self, endpoint_id: str) -> None: ...
    async def set_webhook_enabled(
        self, endpoint_id: str, enabled: bool, reason: str | None = None
    ) -> WebhookRecord: ...
    async def record_webhook_progress(
        self,
        endpoint_id: str,
        *,
        cursor: int | None,
        attempts: Sequence[AttemptLog],
        rows: Sequence[DeliveryRow],
        settled: Sequence[int],
        success_at: int | None,
        failed_at: int | None,
    ) -> None: ...
    async def webhook_open_rows(self, endpoint_id: str) -> list[DeliveryRow]: ...
    async def webhook_attempts(
        self, endpoint_id: str, before: int | None, limit: int, outcome: str | None
    ) -> list[dict[str, Any]]: ...
    async def replay_webhook(
        self, endpoint_id: str, *, since_seq: int | None, dead: bool
    ) -> int: ...
    async def first_event_at(self, at: datetime) -> int | None: ...

    # --- API tokens ------------------------------------------------------------------
    async def create_token(
        self,
        token_id: TokenId,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        agent_id: AgentId | None,
    ) -> TokenRecord: ...
    async def find_token(self, token_hash: str) -> TokenRecord | None: ...
    async def list_tokens(self) -> list[TokenRecord]: ...
    async def revoke_token(self, token_id: TokenId) -> None: ...


async def open_store(
    url: str,
    on_events: EventsCallback | None = None,
    *,
    routing: RoutingSettings | None = None,
    channel_types: Iterable[str] = (),
) -> Store:
    """Open the backend named by ``url`` (``sqlite:///path``)."""
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(
            url, on_events=on_events, routing=routing, channel_types=channel_types
        )
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported store url scheme {scheme!r} (expected sqlite:///path)")
