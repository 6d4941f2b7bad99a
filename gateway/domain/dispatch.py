"""Dispatching the queue: the routing engine's decisions committed, waits announced, and
assignments whose customer waited too long taken back (reassign_after).

A dispatch assigns at most DISPATCH_CHUNK conversations in one unit of work: a long queue
meeting free capacity is served in several short ones, with other work between them, and
``more`` says so. The queue is read in serving order a page at a time, as far as the
engine gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.domain import clocks
from gateway.domain.state import US, RoutingState
from gateway.domain.waits import QUEUE_SCAN_LIMIT, Estimator, need_of, tell_customer
from gateway.store.records import AssignmentBatch, ConversationRecord, dumps
from gateway.store.transaction import Tx
from kernel.events import RawJSON
from kernel.models import ConversationStatus
from routing.engine import Decision, DispatchRun, Need
from routing.index import AgentIndex
from routing.rules import next_step_at
from routing.waits import positions

# Assignments per dispatch: about 30-50 ms of the event loop's thread on SQLite.
DISPATCH_CHUNK = 256
# The first page of the queue read by a dispatch; the rest, up to the scan limit, only
# if the engine gets past it.
FIRST_PAGE = DISPATCH_CHUNK + 64


@dataclass
class DispatchResult:
    decisions: list[Decision]
    # When the queue should be looked at again even if nothing happens (an escalation
    # step or a reassign deadline), as a Unix time.
    next_wakeup: float | None = None
    # Messages written for customers (queue position notices) that now wait to be sent.
    customer_messages: int = 0
    # The dispatch stopped at its limit of assignments: run it again.
    more: bool = False


def explained(decision: Decision) -> tuple[RawJSON, str]:
    """The decision's summary (for its event) and its whole explanation (kept), as JSON:
    the explanation is the summary with the skipped agents added."""
    summary = dumps(decision.summary())
    skipped = dumps(decision.skipped_by_reason())
    return RawJSON(summary), f'{summary[:-1]},"skipped":{skipped}}}'


async def record(tx: Tx, decision: Decision) -> None:
    """Keep a decision with its explanation."""
    await tx.assignments.record_decision(
        decision.conversation_id, decision.agent_id, explained(decision)[1], tx.now
    )


async def exclude(tx: Tx, record_: ConversationRecord, agent_id: str) -> None:
    """The conversation must not go to this agent again."""
    excluded = set(json.loads(record_.excluded_agents_json))
    excluded.add(agent_id)
    record_.excluded_agents_json = json.dumps(sorted(excluded))
    await tx.conversations.update(record_.id, excluded_agents_json=record_.excluded_agents_json)


async def dispatch(tx: Tx, state: RoutingState) -> DispatchResult:
    """Requeue breached assignments, then route the queue in order and announce waits."""
    index = await state.index(tx)
    now = tx.now / US
    next_sla = _soonest(
        await sweep(tx, state, index, now),
        await clocks.sweep(tx, state.clocks, now) if state.clocks.policies else None,
    )
    by_id: dict[str, ConversationRecord] = {}
    unannounced: set[str] = set()
    needs: list[Need] = []
    run = DispatchRun(state.engine, index, now, explain=unannounced, limit=DISPATCH_CHUNK)
    offset, size = 0, FIRST_PAGE
    while offset < QUEUE_SCAN_LIMIT and not run.full:
        size = min(size, QUEUE_SCAN_LIMIT - offset)
        found = await tx.conversations.queued(size, offset)
        page = []
        for queued in found:
            need = need_of(queued, state)
            index.add_channel(need.channel_type)
            if not queued.queue_announced:
                unannounced.add(need.conversation_id)
            by_id[need.conversation_id] = queued
            page.append(need)
        decided = run.offer(page)
        needs.extend(page[:decided])
        for left in page[decided:]:  # not looked at: neither decided nor announced
            unannounced.discard(left.conversation_id)
        if len(found) < size:
            break
        offset += size
        size = QUEUE_SCAN_LIMIT

    decisions = run.decisions
    if not decisions:
        return DispatchResult([], next_sla)
    result = DispatchResult(decisions, more=run.full)
    by_conv = {d.conversation_id: d for d in decisions}
    places = positions(needs, by_conv) if unannounced else {}
    estimator = Estimator(state, index, tx)
    wakeups = [next_sla] if next_sla is not None else []
    batch = AssignmentBatch(at=tx.now)
    for need in needs:
        decision = by_conv[need.conversation_id]
        queued = by_id[need.conversation_id]
        agent_id = decision.agent_id
        if agent_id is not None:
            summary, explanation = explained(decision)
            batch.conversations.append((agent_id, queued.id))
            batch.contacts.append((agent_id, queued.contact_id))
            batch.decisions.append((queued.id, agent_id, explanation))
            batch.agents.add(agent_id)
            # The record was read in this unit of work: no need to read it back.
            conv = queued.model_json(status="assigned", assignee_id=agent_id)
            await tx.emit(
                "conversation.assigned",
                {"conversation": RawJSON(conv), "agent_id": agent_id, "routing": summary},
                queued.id,
            )
            due = _reassign_due(state, queued, now)
            if due is not None:  # the sweep above could not know this assignment yet
                wakeups.append(due)
            continue
        at = next_step_at(need.queued_at, need.ladder, now)
        if at is not None:
            wakeups.append(at)
        if need.conversation_id in unannounced:
            position = places[need.conversation_id]
            wait = await estimator.estimate(
                need.channel_type, decision.requirements, position, queued
            )
            await tx.conversations.update(queued.id, queue_announced=True)
            await record(tx, decision)
            model = queued.model()
            await tx.emit(
                "conversation.queued",
                {
                    "conversation": model,
                    "position": position,
                    "estimated_wait_seconds": wait,
                    "routing": decision.summary(),
                },
                queued.id,
            )
            if await tell_customer(tx, state, model, position, wait):
                result.customer_messages += 1
    await tx.assignments.write(batch)
    result.next_wakeup = min(wakeups) if wakeups else None
    return result


def _soonest(*times: float | None) -> float | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def _reassign_due(state: RoutingState, queued: ConversationRecord, now: float) -> float | None:
    """When an assignment made now is taken back if the waiting customer gets no answer."""
    if not state.settings.reassign_after or queued.awaiting_since is None:
        return None
    threshold = state.settings.reassign_after_for(queued.channel_id, queued.channel_type)
    return None if threshold is None else now + threshold


async def sweep(tx: Tx, state: RoutingState, index: AgentIndex, now: float) -> float | None:
    """Requeue assignments whose customer waited too long for the agent; returns when the
    next one would breach."""
    if not state.settings.reassign_after:
        return None
    next_at: float | None = None
    for conv in await tx.conversations.awaiting_agent():
        threshold = state.settings.reassign_after_for(conv.channel_id, conv.channel_type)
        if threshold is None:
            continue
        assert conv.awaiting_since is not None
        started = max(conv.awaiting_since, conv.assigned_at or 0) / US
        due = started + threshold
        if due > now:
            next_at = due if next_at is None else min(next_at, due)
            continue
        agent_id = conv.assignee_id
        assert agent_id is not None
        await requeue(tx, conv, queued_at=conv.awaiting_since, announced=False)
        await exclude(tx, conv, agent_id)
        index.release(agent_id, conv.channel_type)
        await tx.emit(
            "sla.breached",
            {
                "conversation": conv.model(),
                "agent_id": agent_id,
                "kind": "reassign_after",
                "threshold_seconds": threshold,
                "waited_seconds": round(now - started, 1),
            },
            conv.id,
        )
    return next_at


async def requeue(tx: Tx, conv: ConversationRecord, *, queued_at: int, announced: bool) -> None:
    """Back to the queue without an agent (the record is changed to match)."""
    conv.status = ConversationStatus.QUEUED.value
    conv.assignee_id = None
    conv.queued_at = queued_at
    conv.queue_announced = announced
    await tx.conversations.update(
        conv.id,
        status=conv.status,
        assignee_id=None,
        queued_at=queued_at,
        queue_announced=announced,
    )
