"""The queue as agents' tools see it (places and estimated waits, worked out by
routing.waits), and the notice that tells a waiting customer where they stand."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.domain.notices import write_notice
from gateway.domain.state import US, RoutingState
from gateway.store.records import ConversationRecord
from gateway.store.transaction import Tx
from kernel.models import Conversation
from routing.engine import Decision, Need, queue_order
from routing.index import AgentIndex
from routing.rules import Requirements, effective
from routing.waits import estimated_wait, positions, slots

# The queue is looked at this far (a dispatch, the queue's view).
QUEUE_SCAN_LIMIT = 2000
# Resolved conversations an average handle time is measured over.
AHT_SAMPLE = 200

_NONE_EXCLUDED: frozenset[str] = frozenset()


def need_of(record: ConversationRecord, state: RoutingState) -> Need:
    """What a queued conversation (read with the queue) needs."""
    excluded = record.excluded_agents_json
    last_at = record.last_served_at
    return Need(
        conversation_id=record.id,
        channel_type=record.channel_type,
        base=state.requirements(record.required_skills_json, record.language),
        ladder=state.ladder(record.routing_rule),
        priority=record.priority,
        queued_at=(record.queued_at or record.created_at) / US,
        excluded=_NONE_EXCLUDED if excluded == "[]" else frozenset(json.loads(excluded)),
        sticky_agent=record.last_agent_id,
        sticky_at=None if last_at is None else last_at / US,
    )


@dataclass
class Estimator:
    """Estimated waits during one unit of work: each channel type's average handle time
    is measured once, and each kind of need's slots counted once."""

    state: RoutingState
    index: AgentIndex
    tx: Tx
    _aht: dict[str, float] = field(default_factory=dict)
    _slots: dict[tuple[str, Requirements], int] = field(default_factory=dict)

    async def aht(self, channel_type: str) -> float:
        if channel_type not in self._aht:
            measured = await self.tx.conversations.handle_time(channel_type, AHT_SAMPLE)
            self._aht[channel_type] = (
                measured / US if measured else self.state.settings.average_handle_time
            )
        return self._aht[channel_type]

    async def estimate(
        self, channel_type: str, req: Requirements, position: int, record: ConversationRecord
    ) -> float | None:
        """Seconds until served: handling time counted in the channel's business hours."""
        key = (channel_type, req)
        if key not in self._slots:
            self._slots[key] = slots(self.index, channel_type, req)
        if self._slots[key] <= 0:
            return None  # nobody online could ever take it: no honest estimate
        handling = estimated_wait(position, await self.aht(channel_type), self._slots[key])
        return self.state.clocks.business_wait(
            record.channel_id, channel_type, handling, self.tx.now / US, record.routing_rule
        )


async def queue_view(
    tx: Tx, state: RoutingState, channel_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The queue in dispatch order, with each conversation's place and estimated wait."""
    index = await state.index(tx, changes=False)
    now = tx.now / US
    queued = await tx.conversations.queued(QUEUE_SCAN_LIMIT, 0)
    needs = [need_of(r, state) for r in queued]
    for channel_type in {n.channel_type for n in needs}:
        index.add_channel(channel_type)
    reqs = {n.conversation_id: effective(n.base, n.ladder, now - n.queued_at) for n in needs}
    decisions = {cid: Decision(cid, None, "", req, step) for cid, (req, step) in reqs.items()}
    places = positions(needs, decisions)
    estimator = Estimator(state, index, tx)
    by_id = {r.id: r for r in queued}
    out = []
    for need in queue_order(needs):
        record = by_id[need.conversation_id]
        if channel_id is not None and record.channel_id != channel_id:
            continue
        req, step = reqs[need.conversation_id]
        position = places[need.conversation_id]
        out.append(
            {
                "conversation": record.model(),
                "position": position,
                "estimated_wait_seconds": await estimator.estimate(
                    need.channel_type, req, position, record
                ),
                "waiting_seconds": round(max(0.0, now - need.queued_at), 1),
                "requirements": req.as_dict(),
                "escalation_step": step,
                "rule": record.routing_rule,
            }
        )
        if len(out) >= limit:
            break
    return out


async def tell_customer(
    tx: Tx, state: RoutingState, conv: Conversation, position: int, wait: float | None
) -> bool:
    """Write the queue notice for a customer who has to wait (sent by the send path);
    whether one was written."""
    settings = state.settings.queue_message
    if not settings.enabled or wait is None or wait < settings.min_wait:
        return False
    language = conv.language or state.settings.default_language
    template = settings.texts.get(language) or settings.texts.get(state.settings.default_language)
    if not template:
        return False
    text = template.format(position=position, minutes=max(1, math.ceil(wait / 60)))
    await write_notice(tx, conv, text)
    return True
