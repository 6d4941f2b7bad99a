"""What routing keeps beside the store: its settings and the agent index.

The index is loaded from the store on first use and changed by every unit of work that
changes agents or assignments, inside that unit. When a unit that may have changed it
fails (itself, or the commit it was part of), the index is dropped and loaded again by
the next one, so it never drifts from what was committed. Units of work run one at a
time, so two decisions can never hand out the same conversation or the same free slot.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from gateway.domain.clocks import Clocks
from gateway.store.protocols import Store
from gateway.store.transaction import Tx
from routing.index import AgentIndex, AgentState
from routing.rulebook import RuleBook
from routing.rules import Classification
from routing.settings import RoutingSettings

T = TypeVar("T")
US = 1_000_000


class RoutingState(RuleBook):
    """Routing's rules and the agent index of one store."""

    def __init__(
        self,
        settings: RoutingSettings,
        channel_types: Iterable[str] = (),
        clocks: Clocks | None = None,
    ) -> None:
        super().__init__(settings)
        self.channel_types = set(channel_types)
        # Business hours and SLA policies.
        self.clocks = clocks or Clocks(default_language=settings.default_language)
        self._index: AgentIndex | None = None
        self._version = -1  # routing's version the index was loaded or last changed at

    def invalidate(self) -> None:
        self._index = None

    async def index(self, tx: Tx, *, changes: bool = True) -> AgentIndex:
        """The agent index, with routing held by this unit of work until it ends (other
        processes route one at a time too); reloaded when another process changed
        agents or assignments since. ``changes``: the unit may change them."""
        version = await tx.assignments.lock_routing()
        if self._index is None or version != self._version:
            self._index = await load_index(tx, self.channel_types)
            self._version = version
        if changes:
            self._version = await tx.assignments.routing_changed()
        return self._index

    async def run(
        self, store: Store, work: Callable[[Tx], Awaitable[T]], *, alone: bool = False
    ) -> T:
        """Run a unit of work that may change the index; a failure drops the index."""
        try:
            return await store.transact(work, alone=alone)
        except BaseException:
            self.invalidate()
            raise

    async def classify_new(
        self,
        tx: Tx,
        *,
        channel_id: str,
        channel_type: str,
        text: str,
        declared_language: str | None,
        contact_id: str,
    ) -> Classification:
        """What a new conversation needs, by the rules and its contact's attributes."""
        attributes: dict[str, Any] = json.loads(await tx.contacts.root_attributes_json(contact_id))
        return self.classify(
            channel_id=channel_id,
            channel_type=channel_type,
            text=text,
            declared_language=declared_language,
            attributes=attributes,
        )


async def load_index(tx: Tx, channel_types: Iterable[str]) -> AgentIndex:
    loads: dict[str, dict[str, int]] = {}
    types = set(channel_types)
    for agent_id, channel_type, count in await tx.conversations.loads():
        loads.setdefault(agent_id, {})[channel_type] = count
        types.add(channel_type)
    types |= await tx.conversations.channel_types()
    index = AgentIndex(types)
    for record in await tx.agents.all():
        agent = record.agent
        index.put(
            AgentState(
                id=agent.id,
                presence=agent.presence.value,
                skills={k: v for k, v in agent.skills.items() if v >= 1},
                languages=frozenset(agent.languages),
                capacity=dict(agent.capacity),
                load=loads.get(agent.id, {}),
                last_assigned_at=record.last_assigned_at / US,
            )
        )
    return index
