"""Places in the queue and estimated waits. Pure: the caller gives the average handle
time it measured.

A conversation's place is among those needing the same kind of agent (channel type and
requirements); its estimated wait is that place x the average handle time / the slots of
the online agents who could take it.
"""

from __future__ import annotations

from collections.abc import Mapping

from routing.engine import Decision, Need, queue_order
from routing.index import AgentIndex
from routing.rules import Requirements


def positions(needs: list[Need], decisions: Mapping[str, Decision]) -> dict[str, int]:
    """1-based place of each still-queued conversation among those needing the same."""
    counters: dict[tuple[str, Requirements], int] = {}
    out: dict[str, int] = {}
    for need in queue_order(needs):
        decision = decisions.get(need.conversation_id)
        if decision is not None and decision.agent_id is not None:
            continue
        req = decision.requirements if decision is not None else need.base
        key = (need.channel_type, req)
        counters[key] = counters.get(key, 0) + 1
        out[need.conversation_id] = counters[key]
    return out


def slots(index: AgentIndex, channel_type: str, req: Requirements) -> int:
    """How many conversations of this kind the online agents who could take them hold at
    once (their capacity on the channel, or in total)."""
    total = 0
    for agent in index.agents.values():
        if agent.presence != "online":
            continue
        if not req.any_agent:
            if any(agent.skills.get(s, 0) < lvl for s, lvl in req.skills):
                continue
            if not agent.speaks(req.language):
                continue
        limits = [v for k, v in agent.capacity.items() if k in (channel_type, "total")]
        total += min(limits) if limits else 1
    return total


def estimated_wait(position: int, handle_time: float, slots: int) -> float | None:
    """Seconds; None when nobody online could ever take it (no honest estimate)."""
    if slots <= 0:
        return None
    return round(position * handle_time / slots, 1)
