"""Who handles what, changed by hand or by presence: assign, transfer, resolve, reopen,
agents and their presence, and the service that runs all of routing's units of work."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.domain import bots, clocks, surveys
from gateway.domain.dispatch import DispatchResult, dispatch, exclude, record, requeue
from gateway.domain.state import US, RoutingState
from gateway.domain.threads import one_open_per_contact, reopen_record
from gateway.domain.waits import queue_view
from gateway.store.protocols import Store
from gateway.store.records import ConversationRecord
from gateway.store.transaction import Tx
from kernel.errors import Conflict, NotFound
from kernel.ids import AgentId, ChannelId, ConversationId
from kernel.models import Agent, Author, AuthorType, Conversation, ConversationStatus, Presence
from routing.engine import Decision
from routing.index import AgentIndex, AgentState


async def conversation(tx: Tx, conversation_id: str) -> ConversationRecord:
    found = await tx.conversations.get(conversation_id)
    if found is None:
        raise NotFound(f"conversation {conversation_id} not found", code="conversation_not_found")
    return found


def check_agent(index: AgentIndex, agent_id: str, channel_type: str, force: bool) -> AgentState:
    """The agent, if it may take a conversation of this channel type now (or ``force``)."""
    agent = index.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    if force:
        return agent
    if agent.presence != Presence.ONLINE:
        raise Conflict(
            f"agent {agent_id} is {agent.presence}",
            code="agent_unavailable",
            details={"presence": agent.presence},
        )
    if not agent.has_room(channel_type):
        raise Conflict(
            f"agent {agent_id} is at capacity",
            code="agent_at_capacity",
            details={"load": dict(agent.load), "capacity": dict(agent.capacity)},
        )
    return agent


async def assign(
    tx: Tx, state: RoutingState, conversation_id: ConversationId, agent_id: AgentId, force: bool
) -> Conversation:
    """Assign (or transfer, when already assigned) to one agent, honouring capacity and
    presence unless ``force``."""
    index = await state.index(tx)
    conv = await conversation(tx, conversation_id)
    if conv.status == ConversationStatus.RESOLVED:
        raise Conflict("conversation is resolved; reopen it first", code="conversation_resolved")
    if conv.status == ConversationStatus.ASSIGNED and conv.assignee_id == agent_id:
        return conv.model()
    check_agent(index, agent_id, conv.channel_type, force)
    if conv.status == ConversationStatus.BOT:
        # An agent can always take a bot's conversation: control passes to the humans.
        await bots.to_humans(
            tx,
            conv,
            reason=bots.AGENT_TOOK,
            by=Author(type=AuthorType.AGENT, id=agent_id),
            action="take",
        )
    previous = conv.assignee_id if conv.status == ConversationStatus.ASSIGNED else None
    conv.status, conv.assignee_id = ConversationStatus.ASSIGNED.value, agent_id
    conv.assigned_at, conv.queue_announced = tx.now, False
    await tx.conversations.update(
        conversation_id,
        status=conv.status,
        assignee_id=agent_id,
        assigned_at=tx.now,
        queue_announced=False,
    )
    await tx.agents.set_assigned(agent_id, tx.now)
    if previous is not None:
        index.release(previous, conv.channel_type)
        await exclude(tx, conv, previous)
    index.assign(agent_id, conv.channel_type, tx.now / US)
    await tx.contacts.served(conv.contact_id, agent_id, tx.now)
    decision = Decision(
        conversation_id,
        agent_id,
        "assigned by hand" + (" (forced)" if force else ""),
        policy="manual",
    )
    await record(tx, decision)
    model = conv.model()
    if previous is not None:
        await tx.emit(
            "conversation.transferred",
            {
                "conversation": model,
                "from_agent_id": previous,
                "to_agent_id": agent_id,
                "forced": force,
            },
            model.id,
        )
    else:
        await tx.emit(
            "conversation.assigned",
            {"conversation": model, "agent_id": agent_id, "routing": decision.summary()},
            model.id,
        )
    return model


async def transfer_to_skills(
    tx: Tx, state: RoutingState, conversation_id: ConversationId, skills: Mapping[str, int]
) -> Conversation:
    """Back to the queue with new required skills, without the agent who had it."""
    index = await state.index(tx)
    conv = await conversation(tx, conversation_id)
    if conv.status == ConversationStatus.RESOLVED:
        raise Conflict("conversation is resolved; reopen it first", code="conversation_resolved")
    if conv.status == ConversationStatus.BOT:
        return await bots.to_humans(tx, conv, reason=None, by=None, skills=skills)
    previous = conv.assignee_id if conv.status == ConversationStatus.ASSIGNED else None
    conv.skills_json = json.dumps(sorted(skills))
    conv.required_skills_json = json.dumps(dict(skills))
    await requeue(tx, conv, queued_at=tx.now, announced=False)
    await tx.conversations.update(
        conversation_id,
        skills_json=conv.skills_json,
        required_skills_json=conv.required_skills_json,
    )
    if previous is not None:
        index.release(previous, conv.channel_type)
        await exclude(tx, conv, previous)
    model = conv.model()
    await tx.emit(
        "conversation.transferred",
        {"conversation": model, "from_agent_id": previous, "to_skills": dict(skills)},
        model.id,
    )
    return model


async def resolve(
    tx: Tx,
    state: RoutingState,
    conversation_id: ConversationId,
    survey_plan: surveys.Plan | None = None,
) -> Conversation:
    index = await state.index(tx)
    conv = await conversation(tx, conversation_id)
    if conv.status == ConversationStatus.RESOLVED:
        raise Conflict("conversation is already resolved", code="conversation_resolved")
    was_assigned = conv.status == ConversationStatus.ASSIGNED and conv.assignee_id
    conv.status, conv.resolved_at = ConversationStatus.RESOLVED.value, tx.now
    conv.queue_announced, conv.awaiting_since = False, None
    await tx.conversations.update(
        conversation_id,
        status=conv.status,
        resolved_at=tx.now,
        queue_announced=False,
        awaiting_since=None,
    )
    if was_assigned and conv.assignee_id:
        index.release(conv.assignee_id, conv.channel_type)
    await clocks.resolved(tx, conversation_id, tx.now / US)
    model = conv.model()
    await tx.emit("conversation.resolved", {"conversation": model}, model.id)
    if survey_plan is not None:
        await surveys.schedule(tx, conv, survey_plan)
    return model


async def reopen(tx: Tx, conversation_id: ConversationId) -> Conversation:
    conv = await conversation(tx, conversation_id)
    if conv.status != ConversationStatus.RESOLVED:
        raise Conflict("conversation is not resolved", code="conversation_open")
    single = one_open_per_contact(conv.channel_type)
    other = await tx.conversations.open_of(conv.contact_id, conv.channel_id) if single else None
    if other is not None:
        raise Conflict(
            "the contact already has an open conversation on this channel",
            code="open_conversation_exists",
            details={"conversation_id": other.id},
        )
    await reopen_record(tx, conv)
    return conv.model()


# --- agents -------------------------------------------------------------------------------


async def agent(tx: Tx, agent_id: str) -> Agent:
    found = await tx.agents.get(agent_id)
    if found is None:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    return found.agent


async def _presence_event(tx: Tx, agent_id: str, status: Presence, previous: str | None) -> None:
    await tx.emit(
        "agent.presence_changed",
        {"agent_id": agent_id, "status": status.value, "previous": previous},
    )


async def put_agent(
    tx: Tx, state: RoutingState, new: Agent, keep_presence: bool
) -> tuple[Agent, bool]:
    """Create or replace an agent. Returns (agent, created)."""
    index = await state.index(tx)
    existing = await tx.agents.get(new.id)
    if existing is None:
        await tx.agents.insert(new, tx.now)
        index.update(
            new.id,
            skills=new.skills,
            languages=new.languages,
            capacity=new.capacity,
            presence=new.presence.value,
        )
        if new.presence != Presence.OFFLINE:
            await _presence_event(tx, new.id, new.presence, None)
        return await agent(tx, new.id), True
    await tx.agents.update_profile(new, tx.now)
    index.update(new.id, skills=new.skills, languages=new.languages, capacity=new.capacity)
    if not keep_presence and new.presence != existing.agent.presence:
        await set_presence(tx, state, new.id, new.presence)
    return await agent(tx, new.id), False


async def set_presence(tx: Tx, state: RoutingState, agent_id: AgentId, presence: Presence) -> Agent:
    index = await state.index(tx)
    previous = (await agent(tx, agent_id)).presence
    if previous != presence:
        await tx.agents.set_presence(agent_id, presence, tx.now)
        index.update(agent_id, presence=presence.value)
        await _presence_event(tx, agent_id, presence, previous.value)
        policy = {
            Presence.AWAY: state.settings.on_away,
            Presence.OFFLINE: state.settings.on_offline,
        }.get(presence, "keep")
        if policy == "requeue":
            await _requeue_agent(tx, index, agent_id, f"agent_{presence.value}")
    return await agent(tx, agent_id)


async def _requeue_agent(tx: Tx, index: AgentIndex, agent_id: str, reason: str) -> None:
    for conv in await tx.conversations.assigned_to(agent_id):
        # A customer already waiting keeps their place in the queue. This event is the
        # announcement: dispatch will not announce it again.
        waiting = conv.awaiting_since if conv.awaiting_since is not None else tx.now
        await requeue(tx, conv, queued_at=waiting, announced=True)
        index.release(agent_id, conv.channel_type)
        await tx.emit(
            "conversation.queued",
            {"conversation": conv.model(), "reason": reason, "previous_agent_id": agent_id},
            conv.id,
        )


# --- the service --------------------------------------------------------------------------


class Assignments:
    """Routing's units of work over a store: each may change the agent index, so a failed
    one drops it (RoutingState.run)."""

    def __init__(self, store: Store, state: RoutingState) -> None:
        self.store = store
        self.state = state
        self._draining = False  # the last dispatch stopped at its limit: more to come
        # Set when surveys are on: a resolution schedules one.
        self.surveys: surveys.Plan | None = None

    async def dispatch(self) -> DispatchResult:
        """Requeue breached assignments, route the queue in order (priority, then waiting
        time) and announce who waits."""
        state = self.state

        async def work(tx: Tx) -> DispatchResult:
            return await dispatch(tx, state)

        # A dispatch that assigns little shares its transaction (and its fsync) with the
        # work beside it; while a long queue is being served, each dispatch gets one of its
        # own so that the work beside it is not held up.
        result = await state.run(self.store, work, alone=self._draining)
        self._draining = result.more
        return result

    async def assign(
        self, conversation_id: ConversationId, agent_id: AgentId, *, force: bool = False
    ) -> Conversation:
        state = self.state

        async def work(tx: Tx) -> Conversation:
            return await assign(tx, state, conversation_id, agent_id, force)

        return await state.run(self.store, work)

    async def transfer_to_skills(
        self, conversation_id: ConversationId, skills: Mapping[str, int]
    ) -> Conversation:
        state = self.state

        async def work(tx: Tx) -> Conversation:
            return await transfer_to_skills(tx, state, conversation_id, skills)

        return await state.run(self.store, work)

    async def resolve(self, conversation_id: ConversationId) -> Conversation:
        state, plan = self.state, self.surveys

        async def work(tx: Tx) -> Conversation:
            return await resolve(tx, state, conversation_id, plan)

        return await state.run(self.store, work)

    async def reopen(self, conversation_id: ConversationId) -> Conversation:
        async def work(tx: Tx) -> Conversation:
            return await reopen(tx, conversation_id)

        return await self.state.run(self.store, work)

    async def handover(
        self,
        rules: bots.BotRules,
        conversation_id: ConversationId,
        *,
        to: str,
        bot_id: str | None,
        reason: str | None,
        by: Author | None,
        skills: Mapping[str, int] | None = None,
        priority: int | None = None,
    ) -> Conversation:
        """Pass control of a conversation to the humans or to a bot (bots.handover)."""
        state = self.state

        async def work(tx: Tx) -> Conversation:
            index = await state.index(tx)
            conv, previous = await bots.handover(
                tx,
                rules,
                conversation_id,
                to=to,
                bot_id=bot_id,
                reason=reason,
                by=by,
                skills=skills,
                priority=priority,
            )
            if previous is not None:
                index.release(previous, (await conversation(tx, conversation_id)).channel_type)
            return conv

        return await state.run(self.store, work)

    async def queue(self, channel_id: ChannelId | None, limit: int) -> list[dict[str, Any]]:
        """Queued conversations in dispatch order with place and estimated wait."""
        state = self.state

        async def work(tx: Tx) -> list[dict[str, Any]]:
            return await queue_view(tx, state, channel_id, limit)

        return await state.run(self.store, work)

    async def put_agent(self, new: Agent, *, keep_presence: bool = True) -> tuple[Agent, bool]:
        state = self.state

        async def work(tx: Tx) -> tuple[Agent, bool]:
            return await put_agent(tx, state, new, keep_presence)

        return await state.run(self.store, work)

    async def set_presence(self, agent_id: AgentId, presence: Presence) -> Agent:
        state = self.state

        async def work(tx: Tx) -> Agent:
            return await set_presence(tx, state, agent_id, presence)

        return await state.run(self.store, work)
