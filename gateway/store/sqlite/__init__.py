"""The embedded SQLite backend (WAL, group commit, versioned migrations)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.stats import ChannelSamples
from gateway.store.base import (
    AttachmentRecord,
    AttemptLog,
    ConversationFilter,
    DeliveryRow,
    DispatchResult,
    EventsCallback,
    OutboundJob,
    Page,
    StoredChannel,
    TokenRecord,
    WebhookRecord,
    decode_cursor,
)
from gateway.store.sqlite import (
    channels,
    contacts,
    reads,
    routing,
    rows,
    stats,
    webhooks,
    writes,
)
from gateway.store.sqlite.engine import Engine, Tx, connect, us_now
from gateway.store.sqlite.routing import RoutingState
from gateway.store.sqlite.schema import migrate
from kernel.envelope import InboundMessage, IngestResult, Sender, StatusUpdate
from kernel.errors import NotFound
from kernel.events import Event
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId, TokenId
from kernel.models import (
    Agent,
    Author,
    ChannelType,
    Contact,
    Conversation,
    Identity,
    Message,
    MessageError,
    Part,
    Presence,
    Reaction,
)
from routing.settings import RoutingSettings

SYNCHRONOUS = {"full", "normal", "extra", "off"}


def parse_url(url: str) -> tuple[str, str]:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db``, ``?synchronous=normal``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite url: {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError("sqlite url has no path (expected sqlite:///path/to/file.db)")
    sync = parse_qs(parts.query).get("synchronous", ["full"])[0].lower()
    if sync not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}")
    return path, sync


def _prepare(path: str, sync: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = connect(path, synchronous=sync)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    finally:
        conn.close()


class SqliteStore:
    def __init__(self, engine: Engine, routing: RoutingState) -> None:
        self._engine = engine
        self._routing = routing
        self.path = engine.path
        self._draining = False  # the last dispatch stopped at its limit: more to come

    @classmethod
    async def open(
        cls,
        url: str,
        on_events: EventsCallback | None = None,
        *,
        routing: RoutingSettings | None = None,
        channel_types: Iterable[str] = (),
    ) -> SqliteStore:
        path, sync = parse_url(url)
        await asyncio.to_thread(_prepare, path, sync)
        state = RoutingState(routing or RoutingSettings(), channel_types)
        engine = Engine(path, synchronous=sync, on_events=on_events, on_failure=state.invalidate)
        return cls(engine, state)

    async def close(self) -> None:
        await self._engine.close()

    async def ping(self) -> None:
        await self._engine.read(lambda c: c.execute("SELECT 1").fetchone())

    def _w(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._engine.write(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)

    def _r(self, fn: Any, *args: Any) -> Any:
        return self._engine.read(lambda conn: fn(conn, *args))

    # --- inbound -------------------------------------------------------------------

    async def ingest(self, message: InboundMessage, channel_type: ChannelType) -> IngestResult:
        result: IngestResult = await self._engine.write(
            lambda tx: writes.ingest(tx, message, channel_type, self._routing)
        )
        return result

    async def update_identity(
        self,
        channel_id: ChannelId,
        channel_type: ChannelType,
        sender: Sender,
        *,
        link_to: Sender | None = None,
    ) -> ContactId:
        result: ContactId = await self._engine.write(
            lambda tx: contacts.resolve_linked(tx, channel_id, channel_type, sender, link_to)
        )
        return result

    async def update_status(self, update: StatusUpdate) -> list[Message]:
        result: list[Message] = await self._engine.write(
            lambda tx: writes.update_status(tx, update)
        )
        return result

    async def react(
        self,
        channel_id: ChannelId,
        message_external_id: str,
        reaction: Reaction | None,
        reactor: Author,
    ) -> Message | None:
        result: Message | None = await self._engine.write(
            lambda tx: writes.react(tx, channel_id, message_external_id, reaction, reactor)
        )
        return result

    async def keep_raw(self, channel_id: ChannelId, kind: str, payload: str, reason: str) -> None:
        await self._engine.write(lambda tx: writes.keep_raw(tx, channel_id, kind, payload, reason))

    async def load_state(self, channel_id: ChannelId, key: str) -> Any:
        def q(conn: Any) -> Any:
            row = conn.execute(
                "SELECT value FROM channel_state WHERE channel_id = ? AND key = ?",
                (channel_id, key),
            ).fetchone()
            return None if row is None else rows_json(row[0])

        return await self._engine.read(q)

    async def save_state(self, channel_id: ChannelId, key: str, value: Any) -> None:
        text = rows.dumps(value)
        await self._engine.write(
            lambda tx: tx.execute(
                "INSERT INTO channel_state (channel_id, key, value, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (channel_id, key) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                (channel_id, key, text, tx.now),
            )
        )

    async def add_attachment(self, record: AttachmentRecord) -> None:
        await self._engine.write(lambda tx: writes.add_attachment(tx, record))

    async def get_attachment(self, attachment_id: str) -> AttachmentRecord | None:
        result: AttachmentRecord | None = await self._r(reads.get_attachment, attachment_id)
        return result

    # --- outbound ------------------------------------------------------------------

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
        result: tuple[Message, bool] = await self._engine.write(
            lambda tx: writes.create_outbound(
                tx, conversation_id, author, parts, reply_to, idempotency_key, request_hash
            )
        )
        return result

    async def due_outbound(self, now: datetime, limit: int) -> list[OutboundJob]:
        result: list[OutboundJob] = await self._r(reads.due_outbound, rows.to_us(now), limit)
        return result

    async def next_outbound_due(self) -> datetime | None:
        value = await self._r(reads.next_outbound_due)
        return None if value is None else rows.from_us(value)

    async def mark_sent(self, message_id: MessageId, external_id: str | None) -> Message:
        result: Message = await self._engine.write(
            lambda tx: writes.mark_sent(tx, message_id, external_id)
        )
        return result

    async def mark_failed(self, message_id: MessageId, error: MessageError) -> Message:
        result: Message = await self._engine.write(
            lambda tx: writes.mark_failed(tx, message_id, error)
        )
        return result

    async def defer_outbound(
        self, message_id: MessageId, until: datetime, error: MessageError
    ) -> None:
        until_us = rows.to_us(until)
        await self._engine.write(lambda tx: writes.defer_outbound(tx, message_id, until_us, error))

    async def release_held(self, channel_id: ChannelId, now: datetime) -> int:
        now_us = rows.to_us(now)
        released: int = await self._engine.write(
            lambda tx: writes.release_held(tx, channel_id, now_us)
        )
        return released

    # --- conversations and routing -------------------------------------------------

    async def dispatch(self) -> DispatchResult:
        # A dispatch that assigns little shares its transaction (and its fsync) with the
        # writes beside it; while a long queue is being served, each dispatch gets a
        # transaction of its own so that those writes are not held up by it.
        result: DispatchResult = await self._engine.write(
            lambda tx: routing.dispatch(tx, self._routing), alone=self._draining
        )
        self._draining = result.more
        return result

    async def assign(
        self,
        conversation_id: ConversationId,
        agent_id: AgentId,
        *,
        force: bool = False,
    ) -> Conversation:
        result: Conversation = await self._engine.write(
            lambda tx: routing.assign(tx, self._routing, conversation_id, agent_id, force)
        )
        return result

    async def transfer_to_skills(
        self, conversation_id: ConversationId, skills: Mapping[str, int]
    ) -> Conversation:
        result: Conversation = await self._engine.write(
            lambda tx: routing.transfer_to_skills(tx, self._routing, conversation_id, skills)
        )
        return result

    async def resolve(self, conversation_id: ConversationId) -> Conversation:
        result: Conversation = await self._engine.write(
            lambda tx: routing.resolve(tx, self._routing, conversation_id)
        )
        return result

    async def reopen(self, conversation_id: ConversationId) -> Conversation:
        result: Conversation = await self._engine.write(
            lambda tx: routing.reopen(tx, conversation_id)
        )
        return result

    async def queue(self, channel_id: ChannelId | None, limit: int) -> list[dict[str, Any]]:
        # Computed with the routing index, which lives on the writer's side.
        result: list[dict[str, Any]] = await self._engine.write(
            lambda tx: routing.queue_view(tx, self._routing, channel_id, limit)
        )
        return result

    async def list_api_channels(self) -> list[StoredChannel]:
        result: list[StoredChannel] = await self._r(channels.list_all)
        return result

    async def put_api_channel(self, channel_id: str, type_: str, sealed: str, *, new: bool) -> None:
        await self._engine.write(lambda tx: channels.put(tx, channel_id, type_, sealed, new=new))

    async def delete_api_channel(self, channel_id: str) -> bool:
        result: bool = await self._engine.write(lambda tx: channels.delete(tx, channel_id))
        return result

    async def stats_samples(
        self, since: datetime, until: datetime, channel_ids: Sequence[str] | None
    ) -> dict[str, ChannelSamples]:
        result: dict[str, ChannelSamples] = await self._r(
            stats.samples, rows.to_us(since), rows.to_us(until), us_now(), channel_ids
        )
        return result

    async def routing_decisions(self, conversation_id: ConversationId) -> list[dict[str, Any]]:
        def q(conn: Any) -> list[dict[str, Any]]:
            return [
                {"created_at": rows.from_us(r["created_at"]), **rows_json(r["explanation"])}
                for r in conn.execute(
                    "SELECT * FROM routing_decisions WHERE conversation_id = ? ORDER BY id",
                    (conversation_id,),
                )
            ]

        result: list[dict[str, Any]] = await self._engine.read(q)
        return result

    # --- agents --------------------------------------------------------------------

    async def put_agent(self, agent: Agent, *, keep_presence: bool = True) -> tuple[Agent, bool]:
        result: tuple[Agent, bool] = await self._engine.write(
            lambda tx: routing.put_agent(tx, self._routing, agent, keep_presence)
        )
        return result

    async def set_presence(self, agent_id: AgentId, presence: Presence) -> Agent:
        result: Agent = await self._engine.write(
            lambda tx: routing.set_presence(tx, self._routing, agent_id, presence)
        )
        return result

    async def get_agent(self, agent_id: AgentId) -> Agent | None:
        result: Agent | None = await self._r(reads.get_agent, agent_id)
        return result

    async def list_agents(self, cursor: str | None, limit: int) -> Page[Agent]:
        result: Page[Agent] = await self._r(reads.list_agents, decode_cursor(cursor), limit)
        return result

    # --- contacts ------------------------------------------------------------------

    async def get_contact(self, contact_id: ContactId) -> Contact | None:
        result: Contact | None = await self._r(reads.get_contact, contact_id)
        return result

    async def update_contact(
        self,
        contact_id: ContactId,
        *,
        display_name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        attributes: dict[str, object] | None = None,
    ) -> Contact:
        result: Contact = await self._engine.write(
            lambda tx: contacts.update(
                tx,
                contact_id,
                display_name=display_name,
                email=email,
                phone=phone,
                attributes=attributes,
            )
        )
        return result

    async def merge_contacts(self, contact_id: ContactId, other_id: ContactId) -> Contact:
        def op(tx: Tx) -> Contact:
            contacts.merge(tx, contact_id, other_id)
            merged: Contact = contacts.load_contact(tx, contact_id)
            return merged

        result: Contact = await self._engine.write(op)
        return result

    async def unmerge_identity(
        self, contact_id: ContactId, channel_id: ChannelId, external_id: str
    ) -> Contact:
        def op(tx: Tx) -> Contact:
            target = contacts.unmerge(tx, contact_id, channel_id, external_id)
            detached: Contact = contacts.load_contact(tx, target)
            return detached

        result: Contact = await self._engine.write(op)
        return result

    # --- reads ---------------------------------------------------------------------

    async def get_conversation(self, conversation_id: ConversationId) -> Conversation | None:
        result: Conversation | None = await self._r(reads.get_conversation, conversation_id)
        return result

    async def list_conversations(
        self, filters: ConversationFilter, cursor: str | None, limit: int
    ) -> Page[Conversation]:
        result: Page[Conversation] = await self._r(
            reads.list_conversations, filters, decode_cursor(cursor), limit
        )
        return result

    async def get_message(self, message_id: MessageId) -> Message | None:
        result: Message | None = await self._r(reads.get_message, message_id)
        return result

    async def list_messages(
        self, conversation_id: ConversationId, cursor: str | None, limit: int
    ) -> Page[Message]:
        after = decode_cursor(cursor)
        if await self.get_conversation(conversation_id) is None:
            raise NotFound(
                f"conversation {conversation_id} not found", code="conversation_not_found"
            )
        result: Page[Message] = await self._r(reads.list_messages, conversation_id, after, limit)
        return result

    async def timeline(
        self, contact_id: ContactId, cursor: str | None, limit: int
    ) -> Page[Message]:
        before = decode_cursor(cursor)
        if await self.get_contact(contact_id) is None:
            raise NotFound(f"contact {contact_id} not found", code="contact_not_found")
        result: Page[Message] = await self._r(reads.timeline, contact_id, before, limit)
        return result

    async def channel_history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None,
        after: MessageId | None,
        limit: int,
    ) -> list[Message]:
        result: list[Message] = await self._r(
            reads.channel_history, channel_id, external_id, before, after, limit
        )
        return result

    async def open_conversation(
        self, channel_id: ChannelId, external_id: str
    ) -> ConversationId | None:
        result: ConversationId | None = await self._r(
            reads.open_conversation, channel_id, external_id
        )
        return result

    async def message_known(self, channel_id: ChannelId, external_id: str) -> bool:
        known: bool = await self._r(reads.message_known, channel_id, external_id)
        return known

    async def identity_contact(self, channel_id: ChannelId, external_id: str) -> ContactId | None:
        result: ContactId | None = await self._r(reads.identity_contact, channel_id, external_id)
        return result

    async def conversation_recipient(self, conversation_id: ConversationId) -> Identity | None:
        result: Identity | None = await self._r(reads.conversation_recipient, conversation_id)
        return result

    # --- events --------------------------------------------------------------------

    async def emit(
        self, type: str, data: dict[str, Any], conversation_id: str | None = None
    ) -> Event:
        result: Event = await self._engine.write(lambda tx: tx.emit(type, data, conversation_id))
        return result

    async def events_after(
        self,
        seq: int,
        limit: int,
        *,
        types: Sequence[str] | None = None,
        conversation_id: ConversationId | None = None,
    ) -> list[Event]:
        result: list[Event] = await self._r(reads.events_after, seq, limit, types, conversation_id)
        return result

    async def last_event_seq(self) -> int:
        result: int = await self._r(reads.last_event_seq)
        return result

    # --- webhooks --------------------------------------------------------------------

    async def put_webhook(self, record: WebhookRecord, *, keep_cursor: bool) -> WebhookRecord:
        result: WebhookRecord = await self._engine.write(
            lambda tx: webhooks.upsert(tx, record, keep_cursor=keep_cursor)
        )
        return result

    async def get_webhook(self, endpoint_id: str) -> WebhookRecord | None:
        result: WebhookRecord | None = await self._r(webhooks.get, endpoint_id)
        return result

    async def list_webhooks(self) -> list[WebhookRecord]:
        result: list[WebhookRecord] = await self._r(webhooks.list_all)
        return result

    async def delete_webhook(self, endpoint_id: str) -> None:
        await self._engine.write(lambda tx: webhooks.delete(tx, endpoint_id))

    async def set_webhook_enabled(
        self, endpoint_id: str, enabled: bool, reason: str | None = None
    ) -> WebhookRecord:
        result: WebhookRecord = await self._engine.write(
            lambda tx: webhooks.set_enabled(tx, endpoint_id, enabled, reason)
        )
        return result

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
    ) -> None:
        await self._engine.write(
            lambda tx: webhooks.record_progress(
                tx,
                endpoint_id,
                cursor=cursor,
                attempts=attempts,
                rows_=rows,
                settled=settled,
                success_at=success_at,
                failed_at=failed_at,
            )
        )

    async def webhook_open_rows(self, endpoint_id: str) -> list[DeliveryRow]:
        result: list[DeliveryRow] = await self._r(webhooks.open_rows, endpoint_id)
        return result

    async def webhook_attempts(
        self, endpoint_id: str, before: int | None, limit: int, outcome: str | None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._r(
            webhooks.attempts_page, endpoint_id, before, limit, outcome
        )
        return result

    async def replay_webhook(self, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
        result: int = await self._engine.write(
            lambda tx: webhooks.replay(tx, endpoint_id, since_seq=since_seq, dead=dead)
        )
        return result

    async def first_event_at(self, at: datetime) -> int | None:
        result: int | None = await self._r(webhooks.first_event_at_or_after, rows.to_us(at))
        return result

    # --- API tokens ----------------------------------------------------------------

    async def create_token(
        self,
        token_id: TokenId,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        agent_id: AgentId | None,
    ) -> TokenRecord:
        await self._engine.write(
            lambda tx: writes.create_token(tx, token_id, name, token_hash, scopes, agent_id)
        )
        record = await self.find_token(token_hash)
        assert record is not None
        return record

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        result: TokenRecord | None = await self._r(reads.find_token, token_hash)
        return result

    async def list_tokens(self) -> list[TokenRecord]:
        result: list[TokenRecord] = await self._r(reads.list_tokens)
        return result

    async def revoke_token(self, token_id: TokenId) -> None:
        await self._engine.write(lambda tx: writes.revoke_token(tx, token_id))


def rows_json(text: str) -> Any:
    return json.loads(text)
