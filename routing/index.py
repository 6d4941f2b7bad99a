"""Agent state indexed for routing decisions that do not scan every agent.

For every channel type, and every (skill, level, channel type), the online agents with
room on that channel are kept in a heap ordered by the choice key (load ratio on that
channel, time of last assignment, id). A decision walks the front of the heaps for the
rarest required skill at the levels it accepts, and usually stops at its first entry.

Every change to an agent (presence, capacity, skills, an assignment or a release) gives
it a fresh entry in each of its heaps; the old entries are left where they are and
skipped (and dropped) when met: an entry is current only while it is the very object
the agent's placement holds. Heaps are compacted when stale entries outnumber current
ones, so a change costs a few heap pushes instead of moves in sorted lists.

Pure data structure: no I/O, no clock.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from heapq import heappop, heappush

TOTAL = "total"
ONLINE = "online"

Entry = tuple[float, float, str]
# (skill or None, level (0 for the list of every agent), channel type)
ListKey = tuple[str | None, int, str]

# A heap is rebuilt without its stale entries when it holds more than this many entries
# per current one (plus a little slack for small heaps).
COMPACT_FACTOR = 3
COMPACT_SLACK = 64

_NOWHERE: dict[str, Entry] = {}


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
        self._heaps: dict[ListKey, list[Entry]] = {}
        # per heap: agent id -> the entry standing for the agent there (any other entry
        # of the agent in that heap is stale)
        self._anchors: dict[ListKey, dict[str, Entry]] = {}
        # how many agents each heap currently holds
        self._counts: dict[ListKey, int] = {}
        # agent id -> channel type -> its current key, for the channels it has room on
        self._placed: dict[str, dict[str, Entry]] = {}
        # skill -> the levels agents have it at, highest first
        self._levels: dict[str, list[int]] = {}
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
            self._place(agent)

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    def _new_heap(self, key: ListKey) -> list[Entry]:
        heap: list[Entry] = []
        self._heaps[key] = heap
        self._anchors[key] = {}
        self._counts[key] = 0
        skill, level, _channel = key
        if skill is not None:
            levels = self._levels.setdefault(skill, [])
            if level not in levels:
                levels.append(level)
                levels.sort(reverse=True)
        return heap

    @staticmethod
    def _heap_keys(agent: AgentState, channel_type: str) -> list[ListKey]:
        keys: list[ListKey] = [(None, 0, channel_type)]
        keys.extend([(skill, level, channel_type) for skill, level in agent.skills.items()])
        return keys

    def _compact(self, key: ListKey, heap: list[Entry]) -> None:
        """Rebuild a heap from its anchored agents, at their current keys."""
        channel = key[2]
        anchors = self._anchors[key]
        placed = self._placed
        fresh = []
        for agent_id in anchors:
            current = placed[agent_id][channel]
            anchors[agent_id] = current
            fresh.append(current)
        heap[:] = fresh
        heapq.heapify(heap)

    def _enter(self, agent_id: str, keys: list[ListKey], entry: Entry) -> None:
        heaps = self._heaps
        counts = self._counts
        for key in keys:
            heap = heaps.get(key)
            if heap is None:
                heap = self._new_heap(key)
            anchors = self._anchors[key]
            if agent_id not in anchors:
                counts[key] += 1
            anchors[agent_id] = entry
            heappush(heap, entry)
            if len(heap) > COMPACT_FACTOR * counts[key] + COMPACT_SLACK:
                self._compact(key, heap)

    def _leave(self, agent_id: str, keys: list[ListKey]) -> None:
        counts = self._counts
        all_anchors = self._anchors
        for key in keys:
            anchors = all_anchors.get(key)
            if anchors is not None and anchors.pop(agent_id, None) is not None:
                counts[key] -= 1

    def _remove(self, agent: AgentState) -> None:
        """Take the agent out of every heap (its entries there turn stale)."""
        placed = self._placed.pop(agent.id, None)
        if placed:
            for channel_type in placed:
                self._leave(agent.id, self._heap_keys(agent, channel_type))

    def _place(self, agent: AgentState) -> None:
        """Bring the agent's keys up to date on every channel: it enters the heaps of
        channels where it now has room and leaves those where it has none. A key that
        grew (an assignment) is not pushed: the old entry stays as the agent's anchor,
        and is replaced when it comes to the top (it can only be too early there); a key
        that shrank (a release) is pushed at once."""
        current = self._placed.get(agent.id)
        if current is None:
            current = self._placed[agent.id] = {}
        online = agent.presence == ONLINE
        cap = agent.capacity
        load = agent.load
        total_cap = cap.get(TOTAL)
        total_load = sum(load.values())
        full = total_cap is not None and total_load >= total_cap
        total_ratio = total_load / total_cap if total_cap else 0.0
        for channel_type in self._channels:
            entry: Entry | None = None
            if online and not full:
                limit = cap.get(channel_type)
                ratio = total_ratio
                used = load.get(channel_type, 0)
                if limit is None or used < limit:
                    if limit and used / limit > ratio:
                        ratio = used / limit
                    entry = (ratio, agent.last_assigned_at, agent.id)
            before = current.get(channel_type)
            if entry is None:
                if before is not None:
                    del current[channel_type]
                    self._leave(agent.id, self._heap_keys(agent, channel_type))
                continue
            current[channel_type] = entry
            if before is None or entry < before:
                self._enter(agent.id, self._heap_keys(agent, channel_type), entry)
        if not current:
            del self._placed[agent.id]

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
        self._place(agent)

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
        if presence is not None and presence != agent.presence:
            self.presence_counts[agent.presence] -= 1
            self.presence_counts[presence] += 1
            agent.presence = presence
        if skills is not None:
            # a skill at level 0 is no skill; other heaps, so out of the old ones first
            self._remove(agent)
            agent.skills = {k: v for k, v in skills.items() if v >= 1}
        if languages is not None:
            agent.languages = frozenset(languages)
        if capacity is not None:
            agent.capacity = dict(capacity)
        self._place(agent)
        return agent

    def assign(self, agent_id: str, channel_type: str, now: float) -> None:
        agent = self.agents[agent_id]
        self.add_channel(channel_type)
        agent.load[channel_type] = agent.load.get(channel_type, 0) + 1
        agent.last_assigned_at = now
        self._place(agent)

    def release(self, agent_id: str, channel_type: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        current = agent.load.get(channel_type, 0)
        if current <= 1:
            agent.load.pop(channel_type, None)
        else:
            agent.load[channel_type] = current - 1
        self._place(agent)

    # --- queries ---------------------------------------------------------------------

    def sorted_ids(self) -> list[str]:
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.agents)
        return self._sorted_ids

    def _keys_for(self, channel_type: str, skill: str | None, min_level: int) -> list[ListKey]:
        if skill is None:
            return [(None, 0, channel_type)]
        return [
            (skill, level, channel_type)
            for level in self._levels.get(skill, ())
            if level >= min_level
        ]

    def available(self, channel_type: str, skill: str | None = None, min_level: int = 1) -> int:
        """How many online agents (with this skill at this level or higher) have room on
        this channel."""
        counts = self._counts
        return sum(counts.get(k, 0) for k in self._keys_for(channel_type, skill, min_level))

    def has_room(self, agent: AgentState, channel_type: str) -> bool:
        """AgentState.has_room for an online agent of this index, looked up."""
        if agent.presence != ONLINE or channel_type not in self._channels:
            return agent.has_room(channel_type)
        placed = self._placed.get(agent.id)
        return placed is not None and channel_type in placed

    def listed(
        self, agent_id: str, channel_type: str, skill: str | None, min_level: int = 1
    ) -> bool:
        """Whether the agent is among the available agents of (skill at level, channel)."""
        if channel_type not in self._placed.get(agent_id, {}):
            return False
        return skill is None or self.agents[agent_id].skills.get(skill, 0) >= min_level

    def candidates(
        self, channel_type: str, skill: str | None, min_level: int = 1
    ) -> Generator[AgentState, None, None]:
        """Available agents, best first (lowest load ratio, then longest idle, then id).

        The walk pops entries off the heaps and pushes the current ones back when it is
        closed (stale ones met on the way are dropped for good, anchors whose agent's key
        grew are replaced by the current key): close it, or let it run out, before
        changing the index (``with closing(index.candidates(...))``)."""
        placed = self._placed
        agents = self.agents
        found = [
            (heap, self._anchors[key])
            for key in self._keys_for(channel_type, skill, min_level)
            if (heap := self._heaps.get(key))
        ]
        taken: list[tuple[list[Entry], Entry]] = []
        try:
            heads = [(heap[0], h) for h, (heap, _a) in enumerate(found)]
            heapq.heapify(heads)
            while heads:
                h = heads[0][1]
                heap, anchors = found[h]
                entry = heappop(heap)
                agent_id = entry[2]
                if anchors.get(agent_id) is entry:
                    current = placed[agent_id][channel_type]
                    if current == entry:
                        taken.append((heap, entry))
                        yield agents[agent_id]
                    else:  # the agent's key grew since: it belongs further back
                        anchors[agent_id] = current
                        heappush(heap, current)
                if heap:
                    heapq.heapreplace(heads, (heap[0], h))
                else:
                    heappop(heads)
        finally:
            for heap, entry in taken:
                heappush(heap, entry)

    def any_available(self) -> bool:
        return any(n for (skill, _l, _c), n in self._counts.items() if skill is None)

    def snapshot(self) -> dict[str, AgentState]:
        return self.agents

    def check(self) -> None:
        """Assert the heaps match the agents (for tests)."""
        for key, heap in self._heaps.items():
            skill, level, channel_type = key
            anchors = self._anchors[key]
            assert len(anchors) == self._counts[key], key
            present = {id(e) for e in heap}
            for agent_id, entry in anchors.items():
                assert id(entry) in present, (key, agent_id)
                agent = self.agents[agent_id]
                assert agent.presence == ONLINE, agent_id
                assert agent.has_room(channel_type), agent_id
                assert skill is None or agent.skills.get(skill) == level, agent_id
                current = (agent.ratio(channel_type), agent.last_assigned_at, agent.id)
                assert self._placed[agent_id][channel_type] == current, agent_id
                assert entry <= current, agent_id  # an anchor is never late
        for agent in self.agents.values():
            for channel_type in self._channels:
                placed = channel_type in self._placed.get(agent.id, {})
                assert placed == (agent.presence == ONLINE and agent.has_room(channel_type))
                if placed:
                    for key in self._heap_keys(agent, channel_type):
                        assert agent.id in self._anchors[key], (key, agent.id)
