"""Agent state indexed for routing decisions that do not scan every agent.

For every channel type, and every (skill, channel type) pair, the online agents with room
on that channel are kept in a sorted list ordered by the choice key (load ratio on that
channel, time of last assignment, id). A decision walks the front of the list for the
rarest required skill and usually stops at its first entry. Every change to an agent
(presence, capacity, skills, an assignment or a release) moves it in its lists.

Pure data structure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sortedcontainers import SortedList

TOTAL = "total"
ONLINE = "online"

Key = tuple[float, float, str]


@dataclass(slots=True)
class AgentState:
    id: str
    presence: str = "offline"
    skills: dict[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset()
    capacity: dict[str, int] = field(default_factory=dict)
    load: dict[str, int] = field(default_factory=dict)
    last_assigned_at: float = 0.0

    @property
    def total_load(self) -> int:
        return sum(self.load.values())

    def has_room(self, channel_type: str) -> bool:
        cap = self.capacity
        limit = cap.get(channel_type)
        if limit is not None and self.load.get(channel_type, 0) >= limit:
            return False
        total = cap.get(TOTAL)
        return total is None or self.total_load < total

    def ratio(self, channel_type: str) -> float:
        """How full the agent is for this channel: the higher of the channel and total ratios."""
        cap = self.capacity
        ratio = 0.0
        limit = cap.get(channel_type)
        if limit:
            ratio = self.load.get(channel_type, 0) / limit
        total = cap.get(TOTAL)
        if total:
            ratio = max(ratio, self.total_load / total)
        return ratio

    def speaks(self, language: str | None) -> bool:
        # No declared languages means the agent was not restricted.
        return language is None or not self.languages or language in self.languages


class AgentIndex:
    def __init__(self, channel_types: Iterable[str] = ()) -> None:
        self.agents: dict[str, AgentState] = {}
        self._channels: set[str] = set()
        # (skill or None, channel type) -> sorted keys of agents available there
        self._lists: dict[tuple[str | None, str], SortedList] = {}
        # agent id -> channel type -> its key in that channel's lists
        self._keys: dict[str, dict[str, Key]] = {}
        self.presence_counts: Counter[str] = Counter()
        self._sorted_ids: list[str] | None = None
        for channel in channel_types:
            self.add_channel(channel)

    # --- structure -------------------------------------------------------------------

    def add_channel(self, channel_type: str) -> None:
        if channel_type in self._channels:
            return
        self._channels.add(channel_type)
        for agent in self.agents.values():
            self._place(agent, channel_type)

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    def _list(self, skill: str | None, channel_type: str) -> SortedList:
        found = self._lists.get((skill, channel_type))
        if found is None:
            found = self._lists[(skill, channel_type)] = SortedList()
        return found

    def _remove(self, agent: AgentState) -> None:
        keys = self._keys.pop(agent.id, {})
        for channel_type, key in keys.items():
            self._lists[(None, channel_type)].remove(key)
            for skill in agent.skills:
                self._lists[(skill, channel_type)].remove(key)

    def _place(self, agent: AgentState, channel_type: str) -> None:
        if agent.presence != ONLINE or not agent.has_room(channel_type):
            return
        key = (agent.ratio(channel_type), agent.last_assigned_at, agent.id)
        self._keys.setdefault(agent.id, {})[channel_type] = key
        self._list(None, channel_type).add(key)
        for skill, level in agent.skills.items():
            if level >= 1:
                self._list(skill, channel_type).add(key)

    def _reindex(self, agent: AgentState) -> None:
        self._remove(agent)
        for channel_type in self._channels:
            self._place(agent, channel_type)

    # --- changes ---------------------------------------------------------------------

    def put(self, agent: AgentState) -> None:
        """Add or replace an agent (its loads included)."""
        old = self.agents.pop(agent.id, None)
        if old is None:
            self._sorted_ids = None
        else:
            self._remove(old)
            self.presence_counts[old.presence] -= 1
        agent.skills = {k: v for k, v in agent.skills.items() if v >= 1}  # level 0: no skill
        for channel_type in agent.load:
            self.add_channel(channel_type)  # before the agent is in: placed once, below
        self.agents[agent.id] = agent
        self.presence_counts[agent.presence] += 1
        for channel_type in self._channels:
            self._place(agent, channel_type)

    def update(
        self,
        agent_id: str,
        *,
        skills: Mapping[str, int] | None = None,
        languages: Iterable[str] | None = None,
        capacity: Mapping[str, int] | None = None,
        presence: str | None = None,
    ) -> AgentState:
        agent = self.agents.get(agent_id) or AgentState(id=agent_id)
        if agent_id not in self.agents:
            self.put(agent)  # (new ids invalidate the sorted id list there)
        self._remove(agent)
        if presence is not None and presence != agent.presence:
            self.presence_counts[agent.presence] -= 1
            self.presence_counts[presence] += 1
            agent.presence = presence
        if skills is not None:
            # a skill at level 0 is no skill
            agent.skills = {k: v for k, v in skills.items() if v >= 1}
        if languages is not None:
            agent.languages = frozenset(languages)
        if capacity is not None:
            agent.capacity = dict(capacity)
        for channel_type in self._channels:
            self._place(agent, channel_type)
        return agent

    def assign(self, agent_id: str, channel_type: str, now: float) -> None:
        agent = self.agents[agent_id]
        self.add_channel(channel_type)
        self._remove(agent)
        agent.load[channel_type] = agent.load.get(channel_type, 0) + 1
        agent.last_assigned_at = now
        for channel in self._channels:
            self._place(agent, channel)

    def release(self, agent_id: str, channel_type: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        self._remove(agent)
        current = agent.load.get(channel_type, 0)
        if current <= 1:
            agent.load.pop(channel_type, None)
        else:
            agent.load[channel_type] = current - 1
        for channel in self._channels:
            self._place(agent, channel)

    # --- queries ---------------------------------------------------------------------

    def sorted_ids(self) -> list[str]:
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.agents)
        return self._sorted_ids

    def available(self, channel_type: str, skill: str | None = None) -> int:
        """How many online agents (with this skill) have room on this channel."""
        found = self._lists.get((skill, channel_type))
        return 0 if found is None else len(found)

    def listed(self, agent_id: str, channel_type: str, skill: str | None) -> bool:
        """Whether the agent is in the available list of (skill, channel)."""
        if channel_type not in self._keys.get(agent_id, {}):
            return False
        return skill is None or self.agents[agent_id].skills.get(skill, 0) >= 1

    def candidates(self, channel_type: str, skill: str | None) -> Iterator[AgentState]:
        """Available agents, best first (lowest load ratio, then longest idle, then id)."""
        found = self._lists.get((skill, channel_type))
        if not found:
            return
        agents = self.agents
        for _ratio, _idle, agent_id in found:
            yield agents[agent_id]

    def any_available(self) -> bool:
        return any(len(lst) for (skill, _c), lst in self._lists.items() if skill is None)

    def snapshot(self) -> dict[str, AgentState]:
        return self.agents

    def check(self) -> None:
        """Assert the lists match the agents (for tests)."""
        for (skill, channel_type), lst in self._lists.items():
            for _r, _t, agent_id in lst:
                agent = self.agents[agent_id]
                assert agent.presence == ONLINE, agent_id
                assert agent.has_room(channel_type), agent_id
                assert skill is None or agent.skills.get(skill, 0) >= 1, agent_id
        for agent in self.agents.values():
            for channel_type in self._channels:
                placed = channel_type in self._keys.get(agent.id, {})
                assert placed == (agent.presence == ONLINE and agent.has_room(channel_type))
