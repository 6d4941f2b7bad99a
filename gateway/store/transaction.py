"""What the domain's rules read and write inside a unit of work: the transaction's roles.

``Store.transact(work)`` (gateway.store.protocols) runs ``await work(tx)`` in one
transaction: its writes and the events it emits (the transactional outbox) commit
together or not at all. A unit of work awaits only its transaction's methods: a backend
may run it without ever yielding to the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gateway.store.records import (
    AgentRecord,
    Asked,
    AssignmentBatch,
    ClockRecord,
    ContactRecord,
    ConversationRecord,
    IdentityRecord,
    OpenConversation,
    StoredMessage,
    SurveyRecord,
    WindowCandidate,
)
from kernel.events import Event
from kernel.models import (
    Agent,
    Contact,
    Message,
    MessageError,
    MessageStatus,
    Part,
    Presence,
    Reaction,
)

T = TypeVar("T")


class ConversationRows(Protocol):
    async def get(self, conversation_id: str) -> ConversationRecord | None: ...

    async def on_channel(self, conversation_id: str, channel_id: str) -> ConversationRecord | None:
        """The conversation, if it is one of this channel's."""
        ...

    async def holding(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> ConversationRecord | None:
        """The newest conversation holding a message of the channel with one of these
        external ids."""
        ...

    async def open_of(self, contact_id: str, channel_id: str) -> OpenConversation | None:
        """This contact's (not its merge group's) newest open conversation on the channel."""
        ...

    async def insert(self, record: ConversationRecord) -> None: ...

    async def update(self, conversation_id: str, **changes: Any) -> None:
        """Set fields (ConversationRecord's names) of one conversation."""
        ...

    async def queued(self, limit: int, offset: int) -> list[ConversationRecord]:
        """Queued conversations in serving order (priority, then entry, then id), with
        the contact's last agent (last_agent_id, last_served_at) read with them."""
        ...

    async def awaiting_agent(self) -> list[ConversationRecord]:
        """Assigned conversations whose customer waits for an answer."""
        ...

    async def bot_waiting(self, bot_id: str, since: int) -> list[ConversationRecord]:
        """The bot's conversations whose customer has waited for an answer since ``since``
        or longer, longest first."""
        ...

    async def assigned_to(self, agent_id: str) -> list[ConversationRecord]: ...

    async def loads(self) -> list[tuple[str, str, int]]:
        """(agent id, channel type, assigned conversations) for every agent with any."""
        ...

    async def by_start_key(self, key: str) -> str | None:
        """The conversation a POST /v1/conversations with this Idempotency-Key started."""

    async def set_start_key(self, conversation_id: str, key: str) -> None: ...

    async def last_inbound(self, contact_ids: Sequence[str], channel_id: str) -> int | None:
        """When these contacts last wrote on the channel, over all their conversations."""

    async def window_candidates(
        self,
        channel_types: Sequence[str],
        spans: Sequence[tuple[int, int]],
        now: int,
        limit: int,
    ) -> list[WindowCandidate]:
        """Open conversations on these channel types whose customer last wrote within one
        of the spans (inclusive), oldest interaction first, leaving out those whose window
        closing after ``now`` was announced already."""

    async def warn_window(self, conversation_id: str, closes_at: int) -> bool:
        """Note that the window closing at ``closes_at`` was announced; False when it was
        already (by this process or another)."""

    async def channel_types(self) -> set[str]:
        """Every channel type a conversation was ever opened on."""
        ...

    async def handle_time(self, channel_type: str, sample: int) -> float | None:
        """Mean assigned-to-resolved time, in microseconds, of the channel type's newest
        ``sample`` resolved conversations; None without any."""
        ...


class MessageRows(Protocol):
    async def by_external(self, channel_id: str, external_id: str) -> StoredMessage | None: ...
    async def by_idempotency_key(self, conversation_id: str, key: str) -> StoredMessage | None: ...
    async def get(self, message_id: str) -> Message | None: ...
    async def in_conversation(self, message_id: str, conversation_id: str) -> bool: ...

    async def asked(self, conversation_id: str) -> Asked | None:
        """The business's latest message among the conversation's newest few (a question
        the customer may be answering), or None."""
        ...

    async def insert(
        self,
        message: Message,
        contact_id: str,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        due_at: int | None = None,
        peer_id: str | None = None,
    ) -> None:
        """Store a message; ``due_at``: when a pending one is to be sent; ``peer_id``:
        the external id of the channel identity it came from or is written to (default:
        the conversation's recipient now)."""
        ...

    async def outbound_by_external(
        self, channel_id: str, external_ids: Sequence[str]
    ) -> list[Message]: ...

    async def outbound_up_to(
        self, channel_id: str, recipient_id: str, watermark: int
    ) -> list[Message]:
        """Sent or delivered messages to this channel identity that went out (or were
        written, if never sent) at or before ``watermark``, oldest first."""
        ...

    async def set_status(
        self, message_id: str, status: MessageStatus, error: MessageError | None = None
    ) -> None:
        """Move to a status; FAILED keeps ``error`` and is no longer due."""
        ...

    async def set_sent(self, message_id: str, external_id: str | None, at: int) -> None:
        """Sent: the channel's id for it (if it gave one), no error, no longer due."""
        ...

    async def set_reactions(self, message_id: str, reactions: list[Reaction]) -> None: ...

    async def set_parts(self, message_id: str, parts: Sequence[Part]) -> None:
        """Replace a message's parts (its files once the gateway keeps them)."""
        ...

    async def download_later(self, message_id: str, channel_id: str) -> None:
        """The message's provider files are to be fetched (gateway.media), from now."""
        ...

    async def download_again(self, message_id: str, attempts: int, at: int) -> None:
        """The files still to fetch are tried again at ``at`` (microseconds)."""
        ...

    async def downloaded(self, message_id: str) -> None:
        """Nothing of the message is left to fetch."""
        ...


class ContactRows(Protocol):
    async def identity(self, channel_id: str, external_id: str) -> IdentityRecord | None: ...
    async def set_identity_profile(
        self,
        channel_id: str,
        external_id: str,
        display_name: str | None,
        avatar_url: str | None,
    ) -> None: ...
    async def insert(self, record: ContactRecord) -> None: ...
    async def insert_identity(self, record: IdentityRecord) -> None: ...
    async def get(self, contact_id: str) -> ContactRecord | None: ...

    async def update(self, contact_id: str, **changes: Any) -> None:
        """Set fields (ContactRecord's names) of one contact."""
        ...

    async def oldest_verified(self, *, email: str | None, phone: str | None) -> str | None:
        """The oldest contact (not merged away) with this verified email, else with this
        verified phone."""
        ...

    async def sharing_verified(
        self, contact_id: str, email: str | None, phone: str | None
    ) -> list[str]:
        """The contact and every other (not merged away) with this verified email or
        phone, oldest first."""
        ...

    async def members(self, contact_id: str) -> list[str]:
        """The contact and every contact merged into it."""
        ...

    async def oldest(self, contact_ids: Sequence[str]) -> list[str]:
        """These contacts, oldest first."""
        ...

    async def root_attributes_json(self, contact_id: str) -> str:
        """The attributes of the contact it was merged into (or its own)."""
        ...

    async def fold(self, survivor: str, other: str) -> None:
        """``other`` and whatever was merged into it now belong to ``survivor``, with
        their identities."""
        ...

    async def restore(self, original: str, from_contact: str) -> None:
        """Undo a merge: ``original`` stands alone again with the identities it brought."""
        ...

    async def move_identity(self, channel_id: str, external_id: str, contact_id: str) -> None:
        """The identity belongs to (and was first linked to) ``contact_id`` from now on."""
        ...

    async def identity_count(self, contact_id: str) -> int: ...
    async def set_apart(self, a: str, b: str, apart: bool, at: int) -> None:
        """Whether two contacts were separated by hand (then nothing links them by
        itself): set by an unmerge, cleared by a merge through the API."""
        ...

    async def apart(self, a: str, b: str) -> bool:
        """Whether two contacts were separated by hand."""
        ...

    async def load(self, contact_id: str) -> Contact | None:
        """The contact as the API shows it, with its identities."""
        ...

    async def served(self, contact_id: str, agent_id: str, at: int) -> None:
        """Remember who served the contact's merge group last (stickiness)."""
        ...


class AgentRows(Protocol):
    async def get(self, agent_id: str) -> AgentRecord | None: ...
    async def all(self) -> list[AgentRecord]: ...
    async def insert(self, agent: Agent, at: int) -> None: ...
    async def update_profile(self, agent: Agent, at: int) -> None:
        """Name, skills, languages and capacity; presence stays."""
        ...

    async def set_presence(self, agent_id: str, presence: Presence, at: int) -> None: ...
    async def set_assigned(self, agent_id: str, at: int) -> None:
        """When the agent was last given a conversation."""
        ...


class ClockRows(Protocol):
    """Conversations' SLA clocks and off-hours replies (records.ClockRecord)."""

    async def get(self, conversation_id: str) -> ClockRecord | None: ...

    async def put(self, record: ClockRecord) -> None:
        """Insert or replace the conversation's clocks."""
        ...

    async def due(self, now: int, limit: int) -> list[ClockRecord]:
        """Clocks whose next_check has come, soonest first."""
        ...

    async def notified(self, contact_id: str, channel_id: str, until: int) -> bool:
        """Whether a conversation of this contact on this channel had the off-hours reply
        of the closed period that ends at ``until``."""
        ...

    async def next_check(self) -> int | None:
        """The soonest next_check of all."""
        ...


class AssignmentRows(Protocol):
    async def lock_routing(self) -> int:
        """Wait until no other process is routing, and hold routing until this
        transaction ends; returns routing's version (see routing_changed)."""
        ...

    async def routing_changed(self) -> int:
        """This transaction may change agents or assignments: routing's version moves
        (a process keeping an agent index reloads it when the version is not its own)."""
        ...

    async def record_decision(
        self, conversation_id: str, agent_id: str | None, explanation_json: str, at: int
    ) -> None:
        """Keep a routing decision with its explanation."""
        ...

    async def write(self, batch: AssignmentBatch) -> None:
        """Write a dispatch's assignments (of conversations that are still queued)."""
        ...


class ErasureRows(Protocol):
    """What erasing a person and the retention sweep read and blank (gateway.domain.erasure).
    Rows are kept, with the person's values taken out, so that figures still add up."""

    async def erased_at(self, contact_id: str) -> int | None: ...

    async def conversations_of(self, contact_ids: Sequence[str]) -> list[str]: ...

    async def resolved_before(self, before: int, limit: int) -> list[str]:
        """Resolved conversations (resolved before ``before``) whose messages still hold
        anything, oldest first."""
        ...

    async def message_parts(self, conversation_ids: Sequence[str]) -> list[str]:
        """The parts (JSON) of every message of these conversations."""
        ...

    async def blank_messages(self, conversation_ids: Sequence[str], error_json: str) -> int:
        """Every message of these conversations keeps its place, times and status but no
        content: no parts or metadata, no external or peer id, no idempotency key; a failure keeps
        only its code. Pending ones fail with ``error_json``. Returns how many."""
        ...

    async def blank_conversations(
        self, conversation_ids: Sequence[str], *, recipient: bool
    ) -> None:
        """No subject; with ``recipient``, no recipient either."""
        ...

    async def blank_contacts(self, contact_ids: Sequence[str], at: int) -> None:
        """No name, phone, e-mail or attributes, erased at ``at``; their identities go."""
        ...

    async def events_of(
        self, conversation_ids: Sequence[str], contact_ids: Sequence[str]
    ) -> list[tuple[int, str]]:
        """(seq, data JSON) of the events of these conversations, and of the contact
        events naming one of these contacts."""
        ...

    async def rewrite_event(self, seq: int, data_json: str) -> None: ...

    async def blank_attempts(self, seqs: Sequence[int], needles: Sequence[str]) -> int:
        """Webhook attempts (and deliveries) of these events, or whose answer or error
        mentions one of ``needles``, keep no answer and no error text."""
        ...

    async def drop_raw_events(
        self, *, needles: Sequence[str] = (), before: int | None = None, limit: int = 0
    ) -> int:
        """Delete kept provider events mentioning one of ``needles``, or (``before``) up
        to ``limit`` of those kept before then. Returns how many."""
        ...

    async def drop_channel_state(self, naming: Sequence[str]) -> int:
        """Delete values connectors keep under a key naming one of these external ids
        (Messenger's ``customer:<psid>``). Returns how many."""
        ...

    async def drop_attempts(self, before: int, limit: int) -> int:
        """Delete up to ``limit`` webhook attempts made before ``before``."""
        ...

    async def drop_attachments(
        self, attachment_ids: Sequence[str] = (), *, before: int | None = None, limit: int = 0
    ) -> list[str]:
        """Delete these attachments, or up to ``limit`` of those kept before ``before``,
        with their bytes if the store keeps them; returns, for each, the path of its file
        in the data directory, to remove after the commit ("" when the store kept it)."""
        ...


class SurveyRows(Protocol):
    async def insert(self, record: SurveyRecord) -> None: ...
    async def get(self, survey_id: str) -> SurveyRecord | None: ...
    async def of_conversation(self, conversation_id: str) -> SurveyRecord | None: ...

    async def update(self, survey_id: str, **changes: Any) -> None:
        """Set fields (SurveyRecord's names) of one survey."""
        ...

    async def due(self, now: int, limit: int) -> list[SurveyRecord]:
        """Scheduled surveys whose time has come, the earliest first."""
        ...

    async def asked_on_chat(
        self, contact_ids: Sequence[str], channel_id: str
    ) -> SurveyRecord | None:
        """The newest survey asked with choices of any of these contacts on the channel."""
        ...

    async def blank(self, conversation_ids: Sequence[str]) -> None:
        """These conversations' surveys lose their comment; one not sent yet is skipped
        (reason ``erased``)."""
        ...


class Tx(Protocol):
    """One unit of work's transaction."""

    @property
    def now(self) -> int:
        """The transaction's time, in microseconds since the epoch."""
        ...

    @property
    def now_dt(self) -> datetime: ...

    @property
    def conversations(self) -> ConversationRows: ...
    @property
    def messages(self) -> MessageRows: ...
    @property
    def contacts(self) -> ContactRows: ...
    @property
    def agents(self) -> AgentRows: ...
    @property
    def assignments(self) -> AssignmentRows: ...
    @property
    def erasure(self) -> ErasureRows: ...
    @property
    def surveys(self) -> SurveyRows: ...
    @property
    def clocks(self) -> ClockRows: ...

    async def emit(
        self, type_: str, fields: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        """Append an event to the outbox, in this transaction. ``fields`` values that are
        models are serialised as the API shows them."""
        ...


Work = Callable[[Tx], Awaitable[T]]
