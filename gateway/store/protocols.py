"""What a storage backend implements: small role protocols, no rules.

Two kinds of role:

- **Inside a unit of work** (gateway.store.transaction.Tx): what the domain's rules read
  and write while they decide (gateway.domain). ``Store.transact(work)`` runs
  ``await work(tx)`` in one transaction; committed events are handed, in commit order, to
  the ``on_events`` callback the store was opened with.
- **On the store itself** (this module): reads, and writes with no rule in them; each is
  its own transaction.

Errors are those of kernel.errors (NotFound, Conflict, Invalid, Malformed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gateway.store.contact_search import ContactQuery
from gateway.store.records import (
    AttachmentRecord,
    AttemptLog,
    ChannelSamples,
    ConversationFilter,
    DeliveryRow,
    MediaJob,
    OutboundJob,
    StoredChannel,
    TicketRecord,
    TokenRecord,
    WebhookRecord,
    WindowFacts,
)
from gateway.store.transaction import Work
from kernel.events import Event
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId, TokenId
from kernel.models import (
    Agent,
    Contact,
    Conversation,
    Identity,
    Message,
    MessageError,
    Template,
)
from kernel.pages import Page

T = TypeVar("T")

EventsCallback = Callable[[list[Event]], None]


# --- on the store -------------------------------------------------------------------------


class ConversationReads(Protocol):
    async def get(self, conversation_id: ConversationId) -> Conversation | None: ...
    async def page(
        self, filters: ConversationFilter, cursor: str | None, limit: int
    ) -> Page[Conversation]:
        """Newest first; a contact filter includes its merge group."""
        ...

    async def open_for(self, channel_id: ChannelId, external_id: str) -> ConversationId | None:
        """The newest open conversation on the channel of this identity's merge group."""
        ...

    async def recipient(self, conversation_id: ConversationId) -> Identity | None:
        """The channel identity replies in this conversation go to."""
        ...

    async def window_facts(self, ids: Sequence[str]) -> dict[str, WindowFacts]:
        """What the reply windows of these conversations are worked out from."""

    async def decisions(self, conversation_id: ConversationId) -> list[dict[str, Any]]:
        """Its kept routing decisions, oldest first, each with ``created_at``."""
        ...


class MessageReads(Protocol):
    async def get(self, message_id: MessageId) -> Message | None: ...
    async def page(
        self, conversation_id: ConversationId, cursor: str | None, limit: int
    ) -> Page[Message]:
        """A conversation's messages, oldest first; NotFound for an unknown one."""
        ...

    async def timeline(
        self, contact_id: ContactId, cursor: str | None, limit: int
    ) -> Page[Message]:
        """Every message of the contact's merge group, newest first; NotFound for an
        unknown contact."""
        ...

    async def history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None,
        after: MessageId | None,
        limit: int,
    ) -> list[Message]:
        """This channel identity's own messages (from it or written to it), oldest first:
        the newest before ``before``, or the first after ``after``. Never those of other
        identities of its contact."""
        ...

    async def known(self, channel_id: ChannelId, external_id: str) -> bool:
        """Whether a message with this channel's external id is stored."""
        ...


class ContactReads(Protocol):
    async def get(self, contact_id: ContactId) -> Contact | None: ...
    async def of_identity(self, channel_id: ChannelId, external_id: str) -> ContactId | None:
        """The contact behind a channel identity, if it is known."""
        ...

    async def search(self, query: ContactQuery, cursor: str | None, limit: int) -> Page[Contact]:
        """Contacts not merged away matching every filter given (contact_search.py)."""
        ...

    async def sharing(self, contact_id: ContactId, limit: int) -> list[Contact]:
        """Contacts not merged away, outside this one's merge group, with its phone or
        e-mail (verified or not), oldest first."""
        ...


class AgentReads(Protocol):
    async def get(self, agent_id: AgentId) -> Agent | None: ...
    async def page(self, cursor: str | None, limit: int) -> Page[Agent]: ...


class OutboundQueue(Protocol):
    """Pending outbound messages, as the send path takes them."""

    async def due(self, now: datetime, limit: int) -> list[OutboundJob]:
        """Due messages, oldest first; one waits while an earlier pending message of its
        conversation is not due yet (replies never overtake each other)."""
        ...

    async def next_due(self) -> datetime | None: ...
    async def defer(self, message_id: MessageId, until: datetime, error: MessageError) -> None:
        """Try again at ``until`` (counted as an attempt); only while pending."""
        ...

    async def release_held(self, channel_id: ChannelId, now: datetime) -> int:
        """Make every waiting message of a channel due now; returns how many."""
        ...


class MediaDownloads(Protocol):
    """Messages whose provider files are still to be fetched (written with the message by
    ``MessageRows.download_later``)."""

    async def due(self, now: datetime, limit: int, hold_seconds: float) -> list[MediaJob]:
        """Due jobs, oldest first, each held (not due for anyone) ``hold_seconds`` from
        now, so that another process does not fetch the same files meanwhile; a job
        whose message is gone is dropped."""
        ...

    async def next_due(self) -> datetime | None: ...


class EventLog(Protocol):
    async def after(
        self,
        seq: int,
        limit: int,
        *,
        types: Sequence[str] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[Event]: ...
    async def last_seq(self) -> int: ...
    async def first_at(self, at: datetime) -> int | None:
        """The first event written at or after ``at``."""
        ...

    async def emit(
        self, type_: str, data: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        """Write an event that has no state change of its own (e.g. a channel's state)."""
        ...


class WebhookLog(Protocol):
    """Webhook endpoints and their delivery state: per endpoint a cursor (every event up
    to it is delivered, dead, or has a row), rows for deliveries that wait (`pending`
    retry, `waiting` behind an earlier event of the conversation, `dead`), and the log of
    every attempt."""

    async def put(self, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord: ...
    async def get(self, endpoint_id: str) -> WebhookRecord | None: ...
    async def all(self) -> list[WebhookRecord]: ...
    async def delete(self, endpoint_id: str) -> None: ...
    async def set_enabled(
        self, endpoint_id: str, enabled: bool, reason: str | None = None
    ) -> WebhookRecord:
        """Enable or disable, announced by webhook.enabled / webhook.disabled."""
        ...

    async def reseal(self, endpoint_id: str, old: str, new: str) -> bool:
        """Replace the sealed secrets if they are still ``old`` (a key rotation); False
        when they changed meanwhile or the endpoint is gone."""
        ...

    async def record_progress(
        self,
        endpoint_id: str,
        *,
        cursor: int | None,
        attempts: Sequence[AttemptLog],
        rows: Sequence[DeliveryRow],
        settled: Sequence[int],
        success_at: int | None,
        failed_at: int | None,
    ) -> None:
        """One batch of outcomes: attempts logged, rows written or settled, cursor moved."""
        ...

    async def open_rows(self, endpoint_id: str) -> list[DeliveryRow]:
        """Pending and waiting deliveries, in event order."""
        ...

    async def attempts(
        self, endpoint_id: str, before: int | None, limit: int, outcome: str | None
    ) -> list[dict[str, Any]]:
        """The attempt log, newest first."""
        ...

    async def replay(self, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
        """Dead deliveries back to pending, or the cursor back to ``since_seq``."""
        ...


class ChannelRecords(Protocol):
    """Channels added through the admin API, kept sealed."""

    async def all(self) -> list[StoredChannel]: ...
    async def put(self, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
        """Create (``new``: Conflict if the id is taken) or replace."""
        ...

    async def delete(self, channel_id: str) -> bool: ...
    async def reseal(self, channel_id: str, old: str, new: str) -> bool:
        """Replace the sealed settings if they are still ``old`` (a key rotation); False
        when they changed meanwhile or the channel is gone."""
        ...


class ChannelState(Protocol):
    """Small JSON values a connector keeps (an IMAP checkpoint, a refreshed token pair)."""

    async def load(self, channel_id: ChannelId, key: str) -> Any: ...
    async def save(self, channel_id: ChannelId, key: str, value: Any) -> None: ...
    async def replace(self, channel_id: ChannelId, key: str, old: Any, new: Any) -> bool:
        """Save ``new`` only if the value is still ``old`` (as ``load`` returned it), in
        one transaction; False when it changed meanwhile."""
        ...


class RawEvents(Protocol):
    async def keep(self, channel_id: ChannelId, kind: str, payload: str, reason: str) -> None:
        """Keep a provider event the gateway could not use, as it came (once)."""
        ...


class AttachmentRecords(Protocol):
    # True: the store keeps files' bytes itself (every process serves every file);
    # False: they live in the data directory, at the record's path.
    keeps_data: bool

    async def add(self, record: AttachmentRecord, data: bytes | None = None) -> None:
        """Record a file; its bytes too when the store keeps them."""
        ...

    async def get(self, attachment_id: str) -> AttachmentRecord | None: ...
    async def data(self, attachment_id: str) -> bytes | None:
        """The file's bytes, when the store keeps them."""
        ...


class Leases(Protocol):
    """Work that one process at a time does, among all the processes sharing the store
    (a mailbox's polling, an endpoint's deliveries, a token refresh). A lease lapses
    ``seconds`` after it was last taken or renewed, so a process that dies loses its
    leases within that bound and another takes the work over."""

    owner: str  # this process

    async def claim(self, name: str, seconds: float) -> bool:
        """Take the lease, or keep it when this process holds it; False when another
        process holds it."""
        ...

    async def release(self, name: str) -> None: ...
    async def renew(self, seconds: float) -> tuple[list[str], list[str]]:
        """Push every lease this process holds (named ones, and outbound messages it is
        sending) ``seconds`` into the future. Returns the names still held, and those
        of them another process asked for (see ``want``)."""
        ...

    async def want(self, name: str) -> None:
        """Ask the process holding the lease to hand it over (it does so on its next
        renewal); then ``claim`` it."""
        ...


class Tokens(Protocol):
    async def create(
        self,
        token_id: TokenId,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        agent_id: AgentId | None,
        bot_id: str | None = None,
    ) -> TokenRecord: ...
    async def find(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash, unless revoked."""
        ...

    async def all(self) -> list[TokenRecord]: ...
    async def revoke(self, token_id: TokenId) -> None: ...
    async def add_ticket(
        self, ticket_hash: str, token_id: str, token_hash: str, seconds: float
    ) -> datetime:
        """Keep an event-stream ticket (by its hash) for ``seconds``; returns when it
        expires. Expired tickets are deleted on the way."""
        ...

    async def redeem_ticket(self, ticket_hash: str) -> TicketRecord | None:
        """Use a ticket up: its record, or None when unknown, used or expired. Atomic: of
        two redemptions at once (on two replicas too), one gets it."""
        ...


class Templates(Protocol):
    async def get(self, template_id: str) -> Template | None: ...
    async def all(self, name: str | None = None) -> list[Template]:
        """Every template, or the language variants of one name."""
        ...

    async def put(self, template: Template, *, new: bool) -> bool:
        """Create (``new``) or replace a template; False when there is none to replace.
        Conflict ``template_exists`` when another has its name and language."""
        ...

    async def delete(self, template_id: str) -> bool: ...


class StatsReads(Protocol):
    async def samples(
        self,
        since: datetime,
        until: datetime,
        channel_ids: Sequence[str] | None,
        fcr_window: float = 72 * 3600,
    ) -> dict[str, ChannelSamples]:
        """Per channel, what GET /v1/stats is made of (see gateway.stats); ``fcr_window``:
        seconds after a resolution in which a new conversation of the same contact (its
        merge group, any channel) means it was not resolved at first contact."""
        ...

    async def queue(self) -> dict[str, tuple[int, float | None]]:
        """The queue now: channel -> (conversations queued, seconds the oldest of them
        has waited, None if unknown); channels with none queued are left out."""
        ...


class Store(Protocol):
    """A storage backend. See the module docstring."""

    async def transact(self, work: Work[T], *, alone: bool = False) -> T:
        """Run a unit of work in one transaction. ``alone``: a long one (routing a queue)
        that short ones queued beside it should not wait for, where that matters."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def reclaim(self, *, thorough: bool) -> None:
        """After an erasure or a retention sweep committed: leave no copy of what was
        blanked or deleted in the database's files. SQLite: the write-ahead log is
        emptied (deleted content is zeroed as it goes). PostgreSQL: the tables erasure
        touches are vacuumed; ``thorough``: rewritten (VACUUM FULL, which locks each table
        while it is rewritten), since a plain VACUUM leaves old bytes in pages' free
        space until they are reused."""
        ...

    async def follow(self) -> None:
        """Publish events that other processes sharing the store committed (called on a
        wake-up from them, or on a timer)."""
        ...

    # Whether other processes may share this store (replicas).
    shared: bool

    @property
    def leases(self) -> Leases: ...

    @property
    def conversations(self) -> ConversationReads: ...
    @property
    def messages(self) -> MessageReads: ...
    @property
    def contacts(self) -> ContactReads: ...
    @property
    def agents(self) -> AgentReads: ...
    @property
    def outbound(self) -> OutboundQueue: ...
    @property
    def media_downloads(self) -> MediaDownloads: ...
    @property
    def events(self) -> EventLog: ...
    @property
    def webhooks(self) -> WebhookLog: ...
    @property
    def channels(self) -> ChannelRecords: ...
    @property
    def channel_state(self) -> ChannelState: ...
    @property
    def raw_events(self) -> RawEvents: ...
    @property
    def attachments(self) -> AttachmentRecords: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def templates(self) -> Templates: ...
    @property
    def stats(self) -> StatsReads: ...
