"""What an agent or a helpdesk does: reply, assign, transfer, resolve, reopen, agents and
their presence, contacts. Each command carries the change out through the domain and
wakes whatever has to act on it at once (the send path for a new reply, the queue for
freed or new capacity), so no caller can forget a wake-up."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from connectors.base import Connector, HealthState, SocketConnector
from gateway.attachments import Attachments
from gateway.channels import LiveChannels
from gateway.domain import templates
from gateway.domain.assignments import Assignments
from gateway.domain.bots import BotRules, bot_author
from gateway.domain.contacts import Contacts
from gateway.domain.erasure import Erasure
from gateway.domain.outbox import Address, Outbox, Started, WindowCheck
from gateway.retention import Retention
from gateway.store.protocols import Store
from gateway.windows import ReplyWindows, ensure_allowed
from kernel.errors import Invalid, NotFound
from kernel.ids import AgentId, ChannelId, ContactId, ConversationId, MessageId
from kernel.models import (
    Agent,
    Author,
    AuthorType,
    Contact,
    Conversation,
    Message,
    Part,
    Presence,
)


class Commands:
    def __init__(
        self,
        store: Store,
        assignments: Assignments,
        outbox: Outbox,
        contacts: Contacts,
        channels: LiveChannels,
        retention: Retention,
        attachments: Attachments,
        *,
        wake_queue: Callable[[], None],
        wake_sender: Callable[[], None],
        bots: BotRules | None = None,
    ) -> None:
        self.bots = bots or BotRules()
        self.windows = ReplyWindows(store, channels)
        self.store = store
        self.assignments = assignments
        self.outbox = outbox
        self.contacts = contacts
        self.channels = channels
        self.retention = retention
        self.attachments = attachments
        self._wake_queue = wake_queue
        self._wake_sender = wake_sender
        # Replicas: tell the others an agent is typing (channel, customer, on).
        self.on_typing: Callable[[ChannelId, str, bool], None] | None = None
        # Surveys: a resolution may have made one due (no delay).
        self.on_resolved: Callable[[], None] | None = None

    # --- replies ------------------------------------------------------------------------

    async def send(
        self,
        conversation: Conversation,
        parts: Sequence[Part],
        *,
        agent_id: AgentId | None,
        reply_to: MessageId | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        bot_id: str | None = None,
    ) -> tuple[Message, bool]:
        """Store a reply as pending and wake the send path; returns (message, replayed).
        ``agent_id``: the author (None: the conversation's assignee, if any); ``bot_id``:
        a bot's reply instead."""
        if agent_id is not None and await self.store.agents.get(agent_id) is None:
            raise Invalid(f"agent {agent_id} not found", code="agent_not_found")
        author = agent_id if agent_id is not None else conversation.assignee_id
        parts = await self.attachments.resolve(parts)  # files named by attachment_id
        message, replayed = await self.outbox.create(
            conversation.id,
            Author(type=AuthorType.AGENT, id=author) if bot_id is None else bot_author(bot_id),
            parts,
            reply_to=reply_to,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            check=self._window_check(self.channels.get(conversation.channel_id), parts),
        )
        if not replayed:
            self._wake_sender()
        return message, replayed

    async def fill_template(
        self,
        conversation: Conversation,
        template_id: str,
        variables: Mapping[str, str],
        *,
        agent_id: AgentId | None,
    ) -> list[Part]:
        """A canned reply's parts for this conversation: the variant in its language, with
        the contact's, the author's and the given variables filled in (422 when one has no
        value), before anything is stored."""
        chosen = await self.store.templates.get(template_id)
        if chosen is None:
            raise Invalid(f"template {template_id} not found", code="template_not_found")
        family = await self.store.templates.all(chosen.name)
        template = templates.variant(family, chosen, conversation.language)
        contact = await self.store.contacts.get(conversation.contact_id)
        author = agent_id if agent_id is not None else conversation.assignee_id
        agent = await self.store.agents.get(author) if author is not None else None
        values = {**templates.known_values(contact, agent), **variables}
        return templates.render(template, values)

    @staticmethod
    def _window_check(
        connector: Connector | None, parts: Sequence[Part], *, always: bool = False
    ) -> WindowCheck | None:
        """Known before sending: a send the channel's window or parts do not allow is
        refused (422) with nothing stored and no provider called. None where nothing needs
        checking (no window on the channel, no template): the send path stays as cheap."""
        if connector is None:
            return None  # the send path fails it (channel_unavailable)
        if not (always or connector.window_ends or any(p.type == "template" for p in parts)):
            return None

        def check(last_inbound_us: int | None, phone: str | None) -> None:
            ensure_allowed(connector, parts, last_inbound_us, phone)

        return check

    async def start(
        self,
        channel_id: ChannelId,
        parts: Sequence[Part],
        *,
        contact_id: ContactId | None,
        to: Address | None,
        subject: str | None,
        agent_id: AgentId | None,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> Started:
        """The business starts a conversation (POST /v1/conversations): refused at once,
        nothing stored, when the channel's window or parts do not allow it."""
        connector = self.channels.get(channel_id)
        parts = await self.attachments.resolve(parts)  # files named by attachment_id
        check = self._window_check(connector, parts, always=True)
        if connector is None or check is None:
            raise NotFound(f"channel {channel_id} not found", code="channel_not_found")
        if agent_id is not None and await self.store.agents.get(agent_id) is None:
            raise Invalid(f"agent {agent_id} not found", code="agent_not_found")
        started = await self.outbox.start(
            self.assignments.state,
            channel_id=channel_id,
            channel_type=connector.type,
            contact_id=contact_id,
            to=to,
            author=Author(type=AuthorType.AGENT, id=agent_id),
            parts=parts,
            subject=subject,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            check=check,
        )
        if not started.replayed:
            self._wake_sender()
            self._wake_queue()
        return started

    async def typing(self, conversation: Conversation, on: bool) -> None:
        """Show the customer that an agent is typing, where the channel can."""
        connector = self.channels.get(conversation.channel_id)
        if connector is None or connector.health.state != HealthState.CONNECTED:
            return
        recipient = await self.store.conversations.recipient(conversation.id)
        if recipient is not None:
            await connector.send_typing(recipient, on)
            if self.on_typing is not None and isinstance(connector, SocketConnector):
                # The customer's socket may be held by another replica.
                self.on_typing(recipient.channel_id, recipient.external_id, on)

    async def mark_read(self, conversation: Conversation) -> None:
        """Tell the customer their messages were seen, where the channel can."""
        connector = self.channels.get(conversation.channel_id)
        if connector is None or connector.health.state != HealthState.CONNECTED:
            return
        recipient = await self.store.conversations.recipient(conversation.id)
        if recipient is not None:
            await connector.mark_read(recipient)

    # --- who handles what ---------------------------------------------------------------

    async def assign(
        self, conversation_id: ConversationId, agent_id: AgentId, *, force: bool = False
    ) -> Conversation:
        conversation = await self.assignments.assign(conversation_id, agent_id, force=force)
        self._wake_queue()
        return conversation

    async def transfer(
        self,
        conversation_id: ConversationId,
        *,
        agent_id: AgentId | None = None,
        skills: Mapping[str, int] | None = None,
        force: bool = False,
    ) -> Conversation:
        """To another agent, or back to the queue needing these skills."""
        if agent_id is not None:
            conversation = await self.assignments.assign(conversation_id, agent_id, force=force)
        else:
            conversation = await self.assignments.transfer_to_skills(
                conversation_id, dict(skills or {})
            )
        self._wake_queue()
        return conversation

    async def handover(
        self,
        conversation_id: ConversationId,
        *,
        to: str,
        bot_id: str | None = None,
        reason: str | None = None,
        by: Author | None = None,
        skills: Mapping[str, int] | None = None,
        priority: int | None = None,
    ) -> Conversation:
        """Pass control to the humans (the queue) or to a bot; ``by`` a bot hands over
        only what it holds."""
        conversation = await self.assignments.handover(
            self.bots,
            conversation_id,
            to=to,
            bot_id=bot_id,
            reason=reason,
            by=by,
            skills=skills,
            priority=priority,
        )
        self._wake_queue()
        return conversation

    async def resolve(self, conversation_id: ConversationId) -> Conversation:
        conversation = await self.assignments.resolve(conversation_id)
        self._wake_queue()  # capacity freed
        if self.on_resolved is not None:
            self.on_resolved()
        return conversation

    async def reopen(self, conversation_id: ConversationId) -> Conversation:
        conversation = await self.assignments.reopen(conversation_id)
        self._wake_queue()
        return conversation

    async def put_agent(self, agent: Agent, *, keep_presence: bool) -> tuple[Agent, bool]:
        """Create or replace an agent; returns (agent, created)."""
        stored = await self.assignments.put_agent(agent, keep_presence=keep_presence)
        self._wake_queue()
        return stored

    async def set_presence(self, agent_id: AgentId, presence: Presence) -> Agent:
        agent = await self.assignments.set_presence(agent_id, presence)
        if presence == Presence.ONLINE:
            self._wake_queue()
        return agent

    # --- contacts -----------------------------------------------------------------------

    async def update_contact(
        self,
        contact_id: ContactId,
        *,
        display_name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        attributes: dict[str, object] | None = None,
    ) -> Contact:
        return await self.contacts.update(
            contact_id, display_name=display_name, email=email, phone=phone, attributes=attributes
        )

    async def merge(self, contact_id: ContactId, other_id: ContactId) -> Contact:
        return await self.contacts.merge(contact_id, other_id)

    async def unmerge(
        self, contact_id: ContactId, channel_id: ChannelId, external_id: str
    ) -> Contact:
        return await self.contacts.unmerge(contact_id, channel_id, external_id)

    async def erase_contact(self, contact_id: ContactId) -> Erasure:
        """Erase the person (gateway.domain.erasure); their replies still waiting fail."""
        return await self.retention.erase(contact_id)
